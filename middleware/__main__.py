"""``python -m hotmod.middleware``: the same as the ``hotmod`` console script."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
