"""hotmod's engine: reload changed modules into fresh module objects, one atomic
generation at a time, with mod_python 3.3's ``__mp_clone__``/``__mp_purge__`` hooks.

Knows nothing of web protocols: :class:`Reloader` loads any ``"module:attribute"`` target.
See docs/api.md and docs/hooks.md.
"""

from __future__ import annotations

from typing import Any

from ._engine import Reloader
from ._events import ReloadEvent
from ._extension import RESTART_FLAG, Extension
from ._generation import Generation
from ._roots import excluded_folder
from ._signature import file_signature
from ._target import default_root
from .errors import HotmodError, LoadFailure, ReloadError, SourceChanged, TargetError

__all__ = [
    "RESTART_FLAG",
    "ChangeBatch",
    "Extension",
    "Generation",
    "HotmodError",
    "LoadFailure",
    "ReloadError",
    "ReloadEvent",
    "Reloader",
    "SourceChanged",
    "TargetError",
    "Watcher",
    "default_root",
    "excluded_folder",
    "file_signature",
]


def __getattr__(name: str) -> Any:
    # The watcher is imported on first use only (watchdog itself only by its watchdog backend).
    if name in ("Watcher", "ChangeBatch"):
        from . import _watcher

        return getattr(_watcher, name)
    raise AttributeError(f"module 'hotmod.reloader' has no attribute {name!r}")
