"""Fixtures of the framework proofs: one ``hotmod serve`` per test module.

A module declares ``TARGET`` (what ``hotmod serve`` is given), ``FIXTURE`` (its app
under ``tests/fixtures/frameworks/``) and ``PACKAGE`` (the app's package, which
``pkg`` names), and may define ``prepare(root)`` for what the framework's own docs
say to run before the first start. Modules that serve differently define their own
``server``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Served, copy_fixture, hotmod_serving, quiet_start


@pytest.fixture(scope="module")
def app_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name = request.module.FIXTURE
    root = copy_fixture(name, tmp_path_factory.mktemp(name))
    prepare = getattr(request.module, "prepare", None)
    if prepare is not None:
        prepare(root)
    return root


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, app_root: Path) -> Iterator[Served]:
    """The app served with no flags; ``start_state`` is the generation and output after
    its first seconds with no edit."""
    with hotmod_serving(request.module.TARGET, app_root) as served:
        served.start_state = quiet_start(served)
        yield served


@pytest.fixture
def pkg(request: pytest.FixtureRequest, app_root: Path) -> Path:
    return app_root / request.module.PACKAGE
