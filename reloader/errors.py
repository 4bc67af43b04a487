"""Exceptions raised by the engine, and the structured record of a failed plan."""

from __future__ import annotations

import os
import traceback as _traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from ._roots import in_system_dir

__all__ = ["HotmodError", "LoadFailure", "ReloadError", "SourceChanged", "TargetError"]

_OWN_DIR = str(Path(__file__).resolve().parent)


class HotmodError(Exception):
    """Base class of every error hotmod raises on purpose."""


class TargetError(HotmodError):
    """The target string is malformed, its module cannot be found, or its attribute is
    missing or not callable."""


class SourceChanged(HotmodError):
    """A file changed while its plan was loading (or is mid-write): nothing was swapped,
    and the same change should be tried again once the tree is quiet."""


@dataclass(frozen=True)
class LoadFailure:
    """Why a plan failed: the module being loaded, the file and line where the error
    was raised (the innermost frame inside the watched roots), and the traceback."""

    module: str
    file: str | None
    line: int | None
    type: str
    message: str
    traceback: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def where(self) -> str:
        """``file:line``, the file alone, or ``module NAME`` when no frame of the
        error lies in the watched roots."""
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or f"module {self.module}"

    def __str__(self) -> str:
        return f"{self.where}: {self.type}: {self.message} (while loading {self.module})"

    @classmethod
    def from_exception(
        cls, exc: BaseException, module: str, in_roots: _Contains
    ) -> LoadFailure:
        file: str | None = None
        line: int | None = None
        if isinstance(exc, SyntaxError) and _is_source_file(exc.filename):
            # Its own file and line, wherever the module lies: a module imported by name
            # (Django's models) has no frame of its own on the stack.
            file, line = exc.filename, exc.lineno
        else:
            # The innermost frame in the user's own code says where the edit went wrong:
            # in the roots, else (a file the roots do not hold yet, as at start-up before
            # a framework's support added its project folder) outside the interpreter's
            # own libraries and hotmod.
            outside: tuple[str, int] | None = None
            for frame, lineno in _traceback.walk_tb(exc.__traceback__):
                name = frame.f_code.co_filename
                if in_roots(name):
                    file, line = name, lineno
                elif _is_user_file(name):
                    outside = (name, lineno)
            if file is None and outside is not None:
                file, line = outside
        message = str(exc) if not isinstance(exc, SyntaxError) else (exc.msg or str(exc))
        return cls(
            module=module,
            file=file,
            line=line,
            type=type(exc).__name__,
            message=message,
            traceback=_format(exc, in_roots),
        )


def _is_source_file(path: str | None) -> bool:
    return bool(path) and not (path or "").startswith("<")


#: hotmod's own folders (the engine's and the middleware's).
_OWN_DIRS = (_OWN_DIR, str(Path(_OWN_DIR).parent / "middleware"))


def _is_user_file(path: str) -> bool:
    """A file of the application, as far as a traceback can tell: a real file, not in
    the interpreter's libraries or site-packages, not hotmod's own."""
    if not _is_source_file(path) or path.startswith(_OWN_DIRS):
        return False
    return not in_system_dir(os.path.realpath(path))


class _Contains(Protocol):
    def __call__(self, path: str, /) -> bool: ...


def _format(exc: BaseException, in_roots: _Contains) -> str:
    """The traceback without hotmod's own frames: they say nothing about the edit.

    Only files inside the watched roots have their lines shown: the traceback reaches
    the debug pages, which must not show the text of other files (any frame's file,
    line number and function stay)."""
    te = _traceback.TracebackException.from_exception(exc, lookup_lines=False)
    _strip(te, exc, in_roots, set())
    return "".join(te.format())


def _strip(
    te: _traceback.TracebackException, exc: BaseException, in_roots: _Contains, seen: set[int]
) -> None:
    # ``exc`` is the exception ``te`` was built from, walked alongside it: the type is
    # read from the exception itself, because ``TracebackException.exc_type`` is
    # deprecated since 3.13 and its replacement (``exc_type_str``) is a string that
    # 3.11 and 3.12 lack.
    if id(te) in seen:
        return
    seen.add(id(te))
    frames = []
    for f in te.stack:
        if (f.filename or "").startswith(_OWN_DIR):
            continue
        if not in_roots(f.filename):
            f = _traceback.FrameSummary(f.filename, f.lineno, f.name, lookup_line=False, line="")
        frames.append(f)
    te.stack = _traceback.StackSummary.from_list(frames)
    if isinstance(exc, SyntaxError):
        if not (te.filename and in_roots(te.filename)):
            # The offending line, printed under "File ..., line N"; None prints nothing.
            te.text = None  # type: ignore[assignment]
    # A linked TracebackException exists only where the exception has the same link
    # (its cause, its context, the members of its group, in order).
    linked: list[tuple[_traceback.TracebackException | None, BaseException | None]] = [
        (te.__cause__, exc.__cause__),
        (te.__context__, exc.__context__),
    ]
    if isinstance(exc, BaseExceptionGroup):
        linked.extend(zip(getattr(te, "exceptions", None) or (), exc.exceptions, strict=False))
    for linked_te, linked_exc in linked:
        if linked_te is not None and linked_exc is not None:
            _strip(linked_te, linked_exc, in_roots, seen)


class ReloadError(HotmodError):
    """A plan failed to load; the last good generation stays current.

    ``failure`` holds the structured record (module, file, line, type, message,
    traceback)."""

    def __init__(self, failure: LoadFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure
