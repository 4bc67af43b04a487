"""The response iterable that keeps a request's generation entered until the server closes it.

PEP 3333 says a request ends when the server calls ``close()`` on the iterable the
application returned, not when the application function returns: a streamed body
runs the generation's code while the server iterates it. So the generation is
released by ``close()``, exactly once, after the application's own ``close()``.

"Exactly once" holds when two threads close the same response at the same moment
(a server's I/O thread and its worker, say): the generation waits in a one-item
list, and ``list.pop()`` hands it to one caller only. A check of a field followed
by clearing it would let both through, and the second ``exit()`` would take away
another request's token: that generation could retire, and run its purge hooks,
under a request still running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol


class Releasable(Protocol):
    """What the wrapper needs from a generation: a way to leave it."""

    def exit(self) -> None: ...


def _take(held: list[Releasable]) -> Releasable | None:
    """The generation still held, for the first caller only (``list.pop`` is atomic)."""
    try:
        return held.pop()
    except IndexError:
        return None


class ClosingIterable:
    """Iterates the application's response unchanged; ``close()`` releases the generation.

    Nothing is buffered: iteration is handed straight to the application's iterable.
    """

    __slots__ = ("_held", "_iterable")

    def __init__(self, iterable: Iterable[bytes], generation: Releasable) -> None:
        self._iterable = iterable
        self._held = [generation]  # emptied by the one close() that releases it

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._iterable)

    def close(self) -> None:
        generation = _take(self._held)
        if generation is None:
            return
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            generation.exit()


class SizedClosingIterable(ClosingIterable):
    """A :class:`ClosingIterable` that keeps ``len()``, which servers use to set
    ``Content-Length`` for a one-item body (waitress does)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]


class _CloseThenRelease:
    """Replaces ``close`` on a server's own file wrapper object (see :func:`wrap_response`)."""

    __slots__ = ("_close", "_held")

    def __init__(self, close: Callable[[], Any] | None, generation: Releasable) -> None:
        self._close = close
        self._held = [generation]  # emptied by the one call that releases it

    def __call__(self) -> None:
        generation = _take(self._held)
        if generation is None:
            return
        try:
            if self._close is not None:
                self._close()
        finally:
            generation.exit()


def wrap_response(
    result: Iterable[bytes], generation: Releasable, environ: Mapping[str, Any]
) -> Iterable[bytes]:
    """Return an iterable for the server that releases ``generation`` when it is closed.

    A plain ``list`` or ``tuple`` body is returned as it is, the generation released
    at once: the application has finished, and sending a list of bytes runs none of
    its generation's code (this saves the wrapper on the most common response).

    When ``result`` is an instance of the server's ``wsgi.file_wrapper`` type, the
    very same object is handed back with its ``close`` replaced on the instance, so
    the server still recognizes it and can send the file with ``sendfile()``
    (gunicorn checks ``isinstance``, waitress too, and both call ``close()``
    afterwards: gunicorn from the worker, waitress from its channel once the file
    has been sent). An object that refuses a new attribute is wrapped like any other
    iterable, which is correct but loses the fast path.
    """
    cls = result.__class__
    if cls is list or cls is tuple:
        generation.exit()
        return result
    file_wrapper = environ.get("wsgi.file_wrapper")
    if file_wrapper is not None and isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
        try:
            result.close = _CloseThenRelease(  # type: ignore[attr-defined]
                getattr(result, "close", None), generation
            )
        except (AttributeError, TypeError):
            pass
        else:
            return result
    if isinstance(result, (list, tuple)):  # a subclass: it may have a close() of its own
        return SizedClosingIterable(result, generation)
    return ClosingIterable(result, generation)
