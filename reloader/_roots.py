"""Watched roots: which files are reloadable.

A file is reloadable when its real path (symlinks resolved) lies inside a watched
root, outside the standard library, site-packages, any virtualenv and hotmod's own
packages, and matches no exclude glob.

A root is a promise that everyone who can write there may run code in the server,
so the file system's root and the home folder (or a folder above it) are refused as
roots, and a root holding more files than :data:`LARGE_ROOT` is reported.

The watcher places no watch where nothing is reloadable: it asks the same rules
(:func:`inside`, :func:`is_virtualenv`, :func:`in_system_dir`, :data:`EXCLUDED_DIRS`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("hotmod.roots")

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

#: A root holding more files than this (excluded folders aside) is logged as a warning:
#: every ``.py`` file in it is reloadable, and the watcher watches every folder in it.
LARGE_ROOT = 20_000
#: Entries kept by :meth:`Roots.contains`, beyond which the cache starts afresh.
CACHE_LIMIT = 4096


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both absolute, normalised)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def in_system_dir(path: str) -> bool:
    """Whether ``path`` lies in the standard library or site-packages: never loaded
    from, never watched."""
    return any(inside(path, d) for d in SYSTEM_DIRS)


def is_virtualenv(folder: str) -> bool:
    """Whether ``folder`` is a virtualenv (it holds a ``pyvenv.cfg``), whatever its
    name. Not cached: a folder can become one, or stop being one, at any time (the
    watcher asks each time a folder appears)."""
    return os.path.exists(os.path.join(folder, "pyvenv.cfg"))


#: The same rule, memoised for the engine's hot path (each file's parent folders).
_is_virtualenv = lru_cache(maxsize=4096)(is_virtualenv)


def excluded_folder(path: str) -> bool:
    """Whether hotmod never watches nor loads from the folder at ``path``, wherever it
    lies: a cache or version-control folder (:data:`EXCLUDED_DIRS`) or a virtualenv.
    What ``hotmod check`` skips when it walks a folder, so that it reads the files the
    engine would reload."""
    return os.path.basename(path) in EXCLUDED_DIRS or _is_virtualenv(path)


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
        _refuse_too_wide(os.fspath(root), real)
        for system in SYSTEM_DIRS:
            if inside(real, system):
                raise ValueError(
                    f"watch root {os.fspath(root)!r} lies inside {system!r} (the standard"
                    " library or site-packages): installed code is never reloaded; watch"
                    " your project's own folder instead"
                )
        resolved.append(real)
    if not resolved:
        raise ValueError("at least one root is needed to watch or reload from")
    return tuple(sorted(set(resolved)))


def _refuse_too_wide(given: str, real: str) -> None:
    home = os.path.expanduser("~")  # "~" itself when no home is known
    home = os.path.realpath(home) if os.path.isabs(home) else ""
    if real == os.sep:
        what = "the root of the file system"
    elif home and inside(home, real):
        what = "your home folder" if real == home else f"a folder above your home folder {home!r}"
    else:
        return
    raise ValueError(
        f"watch root {given!r} is {what}: every file below it would be watched and could be"
        " loaded as code; watch your project's own folder (a single-module target: move it"
        " into a folder of its own)"
    )


def count_files(root: str, limit: int) -> int:
    """Files below ``root`` outside excluded folders and virtualenvs, counted up to
    ``limit + 1`` at most (so a huge tree costs no more than a large one)."""
    count = 0
    stack = [root]
    while stack and count <= limit:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if count > limit:
                        break
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in EXCLUDED_DIRS and not _is_virtualenv(entry.path):
                            stack.append(entry.path)
                    else:
                        count += 1
        except OSError:
            continue  # unreadable or gone: nothing there to load either
    return min(count, limit + 1)


class Roots:
    """The watched roots of one engine, with the test that says what may be reloaded."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]], *, exclude: Sequence[str] = ()):
        self.paths: tuple[str, ...] = resolve_roots(roots)
        self.exclude: tuple[str, ...] = tuple(exclude)
        # Real path → verdict. Keyed by the real path, never the path asked about: a
        # file that becomes a symlink to elsewhere must be judged by where it leads now.
        self._cache: dict[str, bool] = {}
        for root in self.paths:
            if count_files(root, LARGE_ROOT) > LARGE_ROOT:
                log.warning(
                    "watch root %s holds more than %d files: every .py file in it is"
                    " reloadable and every folder is watched; watch a smaller folder",
                    root, LARGE_ROOT,
                )

    def __repr__(self) -> str:
        return f"<Roots {list(self.paths)!r}>"

    def root_of(self, real: str) -> str | None:
        for root in self.paths:
            if inside(real, root):
                return root
        return None

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file at ``path`` may be reloaded: its real path is resolved on
        every call and checked. A code object's pseudo-file (``<frozen runpy>``,
        ``<string>``) is never a file in a root, whatever the current folder."""
        text = os.fspath(path)
        if text.startswith("<") and text.endswith(">"):
            return False
        real = os.path.realpath(text)
        hit = self._cache.get(real)
        if hit is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache = {}  # a fresh dict: a concurrent reader keeps the old one
            hit = self._cache[real] = self._check(real)
        return hit

    def _check(self, real: str) -> bool:
        root = self.root_of(real)
        if root is None:
            return False
        if in_system_dir(real) or any(inside(real, d) for d in OWN_PACKAGES):
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




def glob_regex(pattern: str) -> re.Pattern[str]:
    """A compiled glob with path semantics: ``*`` and ``?`` stay within one folder,
    ``**/`` spans any number of folders (none included), ``[...]`` is a class."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace(r"\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _static_prefix(parts: list[str]) -> tuple[list[str], bool]:
    """The folders of a split glob before its first wildcard, and whether what follows
    them can span sub-folders."""
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return parts[:i], len(parts) - i > 1 or "**" in part
    return parts[:-1], False


class ExtraGlobs:
    """The ``extra`` patterns: non-Python files (templates, config) whose change
    reloads the modules that read them.

    - a pattern without a slash matches a file name at any depth under a root
      (``*.html``);
    - a relative pattern with a slash matches the path relative to a root
      (``templates/*.html``, ``**/*.jinja``);
    - an absolute pattern matches the real absolute path, inside a root or not
      (config outside the roots); its folders are resolved like the files are.

    A pattern that can never match (empty, with a ``..`` part, or whose fixed
    folders exist under no root) raises :class:`ValueError` naming it.
    """

    def __init__(self, patterns: Iterable[str], roots: Sequence[str]) -> None:
        if isinstance(patterns, str):
            raise ValueError("extra takes a list of glob patterns, not a single string")
        self.patterns: tuple[str, ...] = tuple(patterns)
        self._by_name: list[re.Pattern[str]] = []
        self._relative: list[re.Pattern[str]] = []
        self._absolute: list[re.Pattern[str]] = []
        #: folders outside every root that an absolute pattern points into: folder →
        #: whether its sub-folders are wanted too.
        self.outside_bases: dict[str, bool] = {}
        for pattern in self.patterns:
            self._add(pattern, roots)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"<ExtraGlobs {list(self.patterns)!r}>"

    def _add(self, pattern: str, roots: Sequence[str]) -> None:
        if not pattern.strip():
            raise ValueError(f"extra pattern {pattern!r} is empty; give a glob such as 'templates/*.html'")
        posix = pattern.replace(os.sep, "/")
        parts = posix.split("/")
        if ".." in parts:
            raise ValueError(
                f"extra pattern {pattern!r} has a '..' part: patterns name files below a"
                " watched root, or an absolute path"
            )
        if os.path.isabs(pattern):
            fixed, deep = _static_prefix(parts)
            base = os.path.realpath("/".join(fixed) or "/")
            if not os.path.isdir(base):
                raise ValueError(f"extra pattern {pattern!r} can never match: there is no folder {base!r}")
            rest = "/".join(parts[len(fixed) :])
            self._absolute.append(glob_regex(base.rstrip("/") + "/" + rest))
            if not any(inside(base, root) for root in roots):
                self.outside_bases[base] = self.outside_bases.get(base, False) or deep
            return
        if len(parts) == 1:
            self._by_name.append(glob_regex(posix))
            return
        fixed, _ = _static_prefix(parts)
        if fixed and not any(os.path.isdir(os.path.join(root, *fixed)) for root in roots):
            folder = "/".join(fixed)
            raise ValueError(
                f"extra pattern {pattern!r} can never match: no watched root"
                f" ({', '.join(roots)}) has a folder {folder!r}; a relative pattern starts"
                f" at a root (for example {'/'.join(parts[-2:])!r}), an absolute one"
                " names the full path"
            )
        self._relative.append(glob_regex(posix))

    def match(self, real: str, root: str | None) -> bool:
        """Whether the file at real path ``real`` (inside ``root``, or outside every
        root for ``None``) is an extra file."""
        if root is not None:
            name = os.path.basename(real)
            if any(rx.match(name) for rx in self._by_name):
                return True
            if self._relative:
                rel = os.path.relpath(real, root).replace(os.sep, "/")
                if any(rx.match(rel) for rx in self._relative):
                    return True
        return any(rx.match(real) for rx in self._absolute)
