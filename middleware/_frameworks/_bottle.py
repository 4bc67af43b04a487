"""Bottle support: template cache cleared after every swap and template edit."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from ...reloader import Generation
from . import FrameworkSupport


class BottleSupport(FrameworkSupport):
    framework = "bottle"

    def _bottle(self) -> Any:
        return sys.modules["bottle"]

    def template_dirs(self) -> list[str]:
        """Bottle's template lookup path, as absolute folders inside the roots."""
        out = []
        for entry in getattr(self._bottle(), "TEMPLATE_PATH", ()):
            folder = os.path.realpath(os.path.abspath(entry))
            if os.path.isdir(folder) and self.reloader.roots.root_of(folder):
                out.append(folder)
        return out

    def extra(self) -> Sequence[str]:
        return [os.path.join(d, "*.tpl") for d in self.template_dirs()] + [
            os.path.join(d, "*.html") for d in self.template_dirs()
        ]

    def refresh(self, paths: Sequence[str]) -> Sequence[str]:
        dirs = self.template_dirs()
        mine = [p for p in paths if any(os.path.realpath(p).startswith(d + os.sep) for d in dirs)]
        if mine:
            self._bottle().TEMPLATES.clear()
        return mine

    def after_swap(self, generation: Generation, plan: Sequence[str]) -> None:
        self._bottle().TEMPLATES.clear()
