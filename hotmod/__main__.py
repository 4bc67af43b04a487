"""``python -m hotmod``: the same as the ``hotmod`` console script."""

from __future__ import annotations

from .middleware.cli import main

raise SystemExit(main())
