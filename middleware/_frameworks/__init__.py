"""Framework support: what hotmod does for a framework its target imports.

Each supported framework has one private module here (``_django.py``,
``_bottle.py``, ...) defining a :class:`FrameworkSupport`, an engine
:class:`~hotmod.reloader.Extension` that knows that framework's registries and
caches. A support module is imported only when the target imports its framework
(:func:`attach`, after the target's first load), so no framework is ever a
dependency of hotmod, and a target that imports none gets none.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from ...reloader import Extension, Reloader

log = logging.getLogger("hotmod.frameworks")

#: Framework's top-level package → the support module that serves it (relative to
#: this package) and the name of its class.
SUPPORT: dict[str, tuple[str, str]] = {
    "django": ("._django", "DjangoSupport"),
    "bottle": ("._bottle", "BottleSupport"),
    "flask": ("._flask", "FlaskSupport"),
    "pyramid": ("._pyramid", "PyramidSupport"),
}


class FrameworkSupport(Extension):
    """An engine extension for one framework, made for one engine.

    Subclasses set :attr:`framework` (the top-level package whose import reveals
    the framework) and override the :class:`~hotmod.reloader.Extension` hooks they
    need. :meth:`applies` may refine detection.
    """

    #: The framework's top-level package ("django", "bottle").
    framework = ""
    #: HotReload's debug mode, set by :func:`attach` before :meth:`attached` runs.
    debug = False

    def __init__(self, reloader: Reloader) -> None:
        self.reloader = reloader
        self.name = self.framework

    @classmethod
    def applies(cls, reloader: Reloader) -> bool:
        """Whether the engine's target uses this framework: by default, whether a
        module of the current generation imports it, directly or through a
        non-reloadable package (a settings module, say)."""
        return cls.framework in sys.modules and cls.framework in imported_tops(reloader)

    def attached(self) -> None:
        """Called once the engine was extended with this support (its roots and
        extra globs are in place): configure the framework for the current generation."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "roots": list(self.roots()), "extra": list(self.extra())}


def imported_tops(reloader: Reloader) -> set[str]:
    """Top-level names of every module that the current generation's modules import."""
    return {name.partition(".")[0] for name in reloader.imports()}


def attach(reloader: Reloader, *, debug: bool = False) -> list[FrameworkSupport]:
    """Detect the frameworks the loaded target imports and extend ``reloader`` with
    their support (``debug``: HotReload's debug mode). Returns the supports attached
    (empty for plain WSGI)."""
    attached: list[FrameworkSupport] = []
    tops = imported_tops(reloader)
    for framework, (module_name, class_name) in SUPPORT.items():
        if framework not in tops or framework not in sys.modules:
            continue
        module = importlib.import_module(module_name, __name__)
        cls: type[FrameworkSupport] = getattr(module, class_name)
        if not cls.applies(reloader):
            continue
        support = cls(reloader)
        support.debug = debug
        reloader.extend(support)
        support.attached()
        attached.append(support)
        log.info("%s support attached", framework)
    return attached


__all__ = ["SUPPORT", "FrameworkSupport", "attach", "imported_tops"]
