"""Pyramid support.

* Code: modules that ``config.include()`` and ``config.scan()`` import by name are
  dependencies of the target (the engine records every import made while the target
  is built), so an edit of a view or of a routes module runs the application factory
  again: a new ``Configurator``, a new registry, the new views and routes. Nothing
  of the old registry is kept.
* Templates (``*.jinja2``, ``*.pt``, ``*.mako`` anywhere in the roots) are watched.
  With ``pyramid.reload_templates`` on (the starter's development.ini has it), the
  renderer re-reads an edited template itself and no Python runs; with it off, the
  edit reloads the target, whose new registry builds new renderers.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence

from . import FrameworkSupport

#: Template files of the renderers Pyramid's starters use (pyramid_jinja2,
#: pyramid_chameleon, pyramid_mako).
TEMPLATE_GLOBS = ("*.jinja2", "*.pt", "*.mako")


class PyramidSupport(FrameworkSupport):
    framework = "pyramid"

    def extra(self) -> Sequence[str]:
        return TEMPLATE_GLOBS

    def _reloads_templates(self) -> bool:
        """Whether the current generation's registry has ``pyramid.reload_templates``."""
        registry = getattr(self.reloader.current.target, "registry", None)
        settings = getattr(registry, "settings", None) or {}
        value = settings.get("pyramid.reload_templates", False)
        return value is True or str(value).strip().lower() in ("true", "yes", "on", "1")

    def refresh(self, paths: Sequence[str]) -> Sequence[str]:
        templates = [
            path
            for path in paths
            if any(fnmatch.fnmatch(os.path.basename(path), pattern) for pattern in TEMPLATE_GLOBS)
        ]
        return templates if templates and self._reloads_templates() else []
