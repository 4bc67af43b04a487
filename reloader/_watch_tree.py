"""Which folders get a watch and which files are reported.

The path rules themselves (inside a folder, virtualenvs, the standard library and
site-packages, folders never loaded from) live in :mod:`._roots`, shared with the
engine; this module adds what only a watcher needs: the folders an absolute
``extra`` glob points into, exclude globs that prune whole folders, and the files
editors write next to the one they save.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence

from ._roots import EXCLUDED_DIRS, ExtraGlobs, in_system_dir, inside, is_virtualenv

__all__ = ["WatchedTree", "is_editor_file"]

#: Names editors write next to the file they save: never a change of the file itself.
#: ``.tmp``: the temporary file of a save by rename (``.index.html.1234.tmp``), which a
#: folder-wide extra glob (``templates/**/*``) would take for a second changed file,
#: making the save wait out the quiet window of a many-file burst.
_EDITOR_PREFIXES = (".#", "#", ".goutputstream-")
_EDITOR_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".swpx", ".bak", ".orig", ".tmp")
_EDITOR_INFIXES = ("___jb_tmp___", "___jb_old___", "___jb_bak___")


def is_editor_file(name: str) -> bool:
    """Whether a file name is an editor's backup, swap, lock, probe or temporary file."""
    return (
        name.startswith(_EDITOR_PREFIXES)
        or name.endswith(_EDITOR_SUFFIXES)
        or any(i in name for i in _EDITOR_INFIXES)
        or name.isdigit()  # vim's write probe, "4913"
    )


class WatchedTree:
    """The watched roots with the rules that say which folders to watch and which
    files matter. Pure functions of paths (plus one ``pyvenv.cfg`` stat per folder).
    """

    def __init__(
        self, roots: tuple[str, ...], extra: Sequence[str], exclude: Sequence[str]
    ) -> None:
        self.roots = roots
        self.exclude = tuple(exclude)
        self.extra = ExtraGlobs(extra, roots)
        # Folders outside the roots that an absolute extra glob points into:
        # base -> whether its sub-folders are watched too.
        self.extra_bases = self.extra.outside_bases

    def bases(self) -> list[str]:
        """The folders whose trees are watched: the roots, and the existing folders
        that absolute extra globs point into."""
        return list(self.roots) + [b for b in self.extra_bases if os.path.isdir(b)]

    def _root_of(self, path: str) -> str | None:
        for root in self.roots:
            if inside(path, root):
                return root
        return None

    def folder_wanted(self, folder: str) -> bool:
        """Whether ``folder`` gets a watch: inside a base, not excluded, not system."""
        root = self._root_of(folder)
        if root is None and not any(
            folder == base or (deep and inside(folder, base)) for base, deep in self.extra_bases.items()
        ):
            return False  # (one base may lie inside another: any that takes it will do)
        name = os.path.basename(folder)
        if folder != root and (name in EXCLUDED_DIRS or is_virtualenv(folder)):
            return False
        if in_system_dir(folder):
            return False
        if root is not None and folder != root and self.exclude:
            rel = _relative(folder, root) + "/"
            # Pruned only when the glob swallows every path below the folder.
            if any(p.endswith("*") and fnmatch.fnmatch(rel, p) for p in self.exclude):
                return False
        return True

    def wants(self, path: str) -> bool:
        """Whether a change of the file at ``path`` is reported."""
        name = os.path.basename(path)
        if is_editor_file(name):
            return False
        root = self._root_of(path)
        if root is not None:
            is_source = name.endswith(".py")
            if not self.exclude and (is_source or not self.extra):
                return is_source  # the common case, without computing a relative path
            rel = _relative(path, root)
            if any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in self.exclude):
                return False
            if is_source:
                return True
        return self.extra.match(path, root)

    def walk(self, top: str) -> Iterator[tuple[str, list[str]]]:
        """Each wanted folder at or below ``top`` with its wanted files, pruning as it goes."""
        if not self.folder_wanted(top):
            return
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    listing = list(entries)
            except OSError:
                continue  # vanished or unreadable meanwhile: nothing to watch there
            files: list[str] = []
            for entry in listing:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if self.folder_wanted(entry.path):
                        stack.append(entry.path)
                elif self.wants(entry.path):
                    files.append(entry.path)
            yield folder, files


def _relative(path: str, root: str) -> str:
    """``path`` relative to ``root`` (which holds it), with forward slashes."""
    return path[len(root.rstrip(os.sep)) + 1 :].replace(os.sep, "/")
