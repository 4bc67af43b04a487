"""hotmod: reload the changed modules of a running WSGI application into fresh
module objects, carrying resources across with mod_python 3.3's
``__mp_clone__``/``__mp_purge__`` hooks.

One import name for users::

    from hotmod import HotReload          # WSGI middleware
    from hotmod import Publisher          # a folder of handler modules, by URL
    from hotmod import Reloader           # the engine, without WSGI

The distribution installs the repository's ``reloader/`` and ``middleware/``
folders as :mod:`hotmod.reloader` and :mod:`hotmod.middleware`; this module only
re-exports their public names. See docs/api.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: The one source of the version: pyproject.toml reads it from here.
__version__ = "0.2.0"

from .middleware import (
    GENERATION_HEADER,
    GENERATION_KEY,
    STATUS_PATH,
    HotReload,
    log_reloads,
)
from .reloader import (
    Generation,
    HotmodError,
    LoadFailure,
    Reloader,
    ReloadError,
    ReloadEvent,
    SourceChanged,
    TargetError,
)

if TYPE_CHECKING:
    from .middleware import Publisher

__all__ = [
    "GENERATION_HEADER",
    "GENERATION_KEY",
    "STATUS_PATH",
    "ChangeBatch",
    "Generation",
    "HotReload",
    "HotmodError",
    "LoadFailure",
    "Publisher",
    "ReloadError",
    "ReloadEvent",
    "Reloader",
    "SourceChanged",
    "TargetError",
    "Watcher",
    "__version__",
    "log_reloads",
]


def __getattr__(name: str) -> Any:
    # The watcher (watchdog only through its watchdog backend) and the Publisher (werkzeug):
    # imported on first use only.
    if name in ("Watcher", "ChangeBatch"):
        from . import reloader

        return getattr(reloader, name)
    if name == "Publisher":
        from . import middleware

        return middleware.Publisher
    raise AttributeError(f"module 'hotmod' has no attribute {name!r}")
