"""Watched roots: which files are reloadable.

A file is reloadable when its real path (symlinks resolved) lies inside a watched
root, outside the standard library, site-packages, any virtualenv and hotmod's own
packages, and matches no exclude glob.
"""

from __future__ import annotations

import fnmatch
import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# ``hotmod`` is always imported before its subpackage ``hotmod.reloader``; its folder
# is the repository's ``hotmod/`` in an editable install and the parent of this
# folder in a wheel.
_TOP = Path(sys.modules[__name__.split(".")[0]].__file__ or _HERE).resolve().parent
#: hotmod's own packages are never reloadable, even inside a watched root.
OWN_PACKAGES = tuple(sorted({str(_HERE), str(_HERE.parent / "middleware"), str(_TOP)}))

#: Folders never watched nor loaded from, whatever the root.
EXCLUDED_DIRS = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", "node_modules", ".tox", ".nox",
     ".mypy_cache", ".pytest_cache", ".ruff_cache", ".venv", "venv", ".eggs"}
)


def _system_dirs() -> tuple[str, ...]:
    dirs: set[str] = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if key in paths:
            dirs.add(os.path.realpath(paths[key]))
    try:
        dirs.update(os.path.realpath(p) for p in site.getsitepackages())
    except AttributeError:  # some embedded interpreters have no getsitepackages
        pass
    user = site.getusersitepackages()
    if isinstance(user, str):
        dirs.add(os.path.realpath(user))
    return tuple(sorted(dirs))


SYSTEM_DIRS = _system_dirs()


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def resolve_roots(roots: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The real paths of ``roots``, refusing what is not a folder and any folder
    inside the standard library or site-packages (never loaded, never watched)."""
    if isinstance(roots, (str, os.PathLike)):
        raise ValueError("roots must be a sequence of folders, not one path")
    resolved: list[str] = []
    for root in roots:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise ValueError(f"watch root {os.fspath(root)!r} is not a folder")
        for system in SYSTEM_DIRS:
            if _inside(real, system):
                raise ValueError(
                    f"watch root {os.fspath(root)!r} lies inside {system!r} (the standard"
                    " library or site-packages): installed code is never reloaded; watch"
                    " your project's own folder instead"
                )
        resolved.append(real)
    if not resolved:
        raise ValueError("at least one root is needed to watch or reload from")
    return tuple(sorted(set(resolved)))


class Roots:
    """The watched roots of one engine, with the test that says what may be reloaded."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]], *, exclude: Sequence[str] = ()):
        self.paths: tuple[str, ...] = resolve_roots(roots)
        self.exclude: tuple[str, ...] = tuple(exclude)
        self._cache: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"<Roots {list(self.paths)!r}>"

    def root_of(self, real: str) -> str | None:
        for root in self.paths:
            if _inside(real, root):
                return root
        return None

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file at ``path`` may be reloaded (its real path is checked)."""
        key = os.fspath(path)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._check(os.path.realpath(key))
        return hit

    def _check(self, real: str) -> bool:
        root = self.root_of(real)
        if root is None:
            return False
        if any(_inside(real, d) for d in SYSTEM_DIRS + OWN_PACKAGES):
            return False
        rel = os.path.relpath(real, root)
        parts = rel.split(os.sep)
        if any(p in EXCLUDED_DIRS for p in parts[:-1]):
            return False
        if any(_is_virtualenv(os.path.join(root, *parts[:i])) for i in range(1, len(parts))):
            return False
        posix = "/".join(parts)
        return not any(
            fnmatch.fnmatch(posix, pat) or fnmatch.fnmatch(parts[-1], pat) for pat in self.exclude
        )


@lru_cache(maxsize=4096)
def _is_virtualenv(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, "pyvenv.cfg"))
