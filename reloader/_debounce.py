"""Debounce: file events in, one :class:`ChangeBatch` per burst out.

A save is a burst of events (truncate, write, close; or write a temporary file and
rename it over the target; vim: rename to a backup, probe, write, delete the backup),
and a ``git checkout`` is a burst over many files. :class:`Debouncer` keeps, for every
path of the current burst, the state its last event left it in, and says when to cut:

- one file, closed after writing or renamed into place, that was the only file of
  an earlier batch (the file being edited): at once, with no barrier. The consumer's
  :meth:`ChangeBatch.still_valid` sends the barrier through the backend before it
  acts (every event older than it has then arrived): an event that came after the
  cut voids the batch, and :meth:`ChangeBatch.retry` puts the file back into the
  burst that goes on. A file whose batch was followed within ``quiet`` by another
  file's event, or handed back, is no longer taken as being edited.
- one file closed after writing that was not saved alone before: after a short
  settle window (``quiet / 5``) and a barrier. Nothing tells the first file of a
  burst from a single save but what comes next, and a writer may need a few
  milliseconds to get the processor back: a ``git checkout`` on a busy machine, or a
  writer thread in this very process that our own threads kept off the GIL since
  its close.
- a file still open for writing (modified, no close yet; inotify): at its close, at
  most ``2 x max_wait`` after the burst began.
- anything else (several files, a deletion, anything under polling, which sees no
  close): after ``quiet`` seconds without an event, at most ``max_wait`` after the
  burst began (then at the first moment no file is open for writing).

A batch of one file cut at once is a bet that the burst is over. When any other
event arrives before the consumer has used it (a ``git checkout`` whose writer paused
right after its first file), :meth:`ChangeBatch.still_valid` says False, and the
consumer's :meth:`ChangeBatch.retry` puts the file back into the burst that goes on:
the consumer never acts on the first file of a burst alone.

Pure state: no thread, no lock, no sleep. Time comes from the ``clock`` given at
construction; the owner (the watcher) holds one lock around every call.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ._signature import Signature, file_signature

__all__ = [
    "CLOSED",
    "GONE",
    "LISTED",
    "MAX_RETRIES",
    "WRITING",
    "ChangeBatch",
    "Cut",
    "Debouncer",
    "PathState",
]

#: How many times in a row a path handed back by :meth:`ChangeBatch.retry` is
#: delivered again before it is dropped.
MAX_RETRIES = 5

#: The fraction of ``quiet`` that a single file not saved alone before waits, that a
#: single file waits when the barrier cannot be sent (no watched folder may be
#: touched), and that polling waits before looking again at a file that changed with
#: no event yet.
SETTLE = 0.2

#: How many files saved alone are remembered (the oldest is forgotten first).
EDITED_MEMORY = 256

class PathState(enum.StrEnum):
    """The state a path of the burst is in, after its last event."""

    #: Created or modified, no close-after-write seen yet.
    WRITING = "writing"
    #: Closed after writing, or renamed into place: the content is complete.
    CLOSED = "closed"
    #: Deleted or moved away.
    GONE = "gone"
    #: Seen by looking at the file (a new folder's listing, a change noticed before
    #: its event arrived, a catch-up): no event describes what it holds.
    LISTED = "listed"


WRITING, CLOSED, GONE, LISTED = PathState.WRITING, PathState.CLOSED, PathState.GONE, PathState.LISTED


@dataclass
class Pending:
    """One path of the burst being gathered."""

    state: PathState
    seq: int
    #: The file as the event that set ``state`` left it; None when it does not exist.
    signature: Signature | None = None
    #: Handed back by :meth:`ChangeBatch.retry`, not brought by an event.
    requeued: bool = False
    #: When ``state`` was guessed from a look at the file (it changed with no event
    #: yet) rather than set by an event: the state the last event had set.
    guessed_from: PathState | None = None


@dataclass(frozen=True)
class Cut:
    """A burst as it was cut: what a :class:`ChangeBatch` carries."""

    states: dict[str, Pending]
    #: The paths whose content is known to be complete.
    closed: frozenset[str]
    #: The debouncer's event count at the cut.
    seq: int
    #: Each file as it was just before the cut.
    signatures: dict[str, Signature | None]
    #: Cut (at the hard cap) while a file was still being written: never valid.
    unsettled: bool
    #: One file closed after writing, cut alone: any later event voids it.
    single: bool


class Debouncer:
    """The burst being gathered, and when to cut it.

    :param quiet: seconds without an event that end a burst of several files.
    :param max_wait: seconds after a burst's first event when it is cut anyway.
    :param clock: monotonic seconds; ``time.monotonic`` unless a test gives its own.
    """

    def __init__(
        self, *, quiet: float, max_wait: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.quiet = quiet
        self.max_wait = max_wait
        self.clock = clock
        #: Whether the backend reports close-after-write events (inotify does,
        #: polling does not); set by the owner when the backend changes.
        self.reports_close = True
        #: The least delay before a handed-back path comes again (polling: one scan).
        self.retry_floor = 0.0
        self.pending: dict[str, Pending] = {}
        #: Events noted so far; a cut remembers it, to tell what came after.
        self.seq = 0
        self._last_seq: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._burst_start: float | None = None
        self._last_event: float | None = None
        self._retry_at: float | None = None
        self._hold_until: float | None = None
        # Files that were the only file of a batch, oldest first: being edited.
        self._edited: dict[str, None] = {}
        # The last batch of one file and when it was cut: a burst that follows within
        # ``quiet`` shows that the file starts bursts rather than being edited alone.
        self._last_single: tuple[str, float] | None = None
        # Counters for the owner's stats().
        self.events = 0
        self.batches = 0
        self.retries = 0
        self.gave_up = 0

    # --- events ----------------------------------------------------------------------

    def note(self, path: str, state: PathState, signature: Signature | None) -> None:
        """An event left the file at ``path`` in ``state``, looking like ``signature``."""
        now = self.clock()
        if self._last_single is not None:
            alone, cut_at = self._last_single
            if path != alone and now - cut_at < self.quiet:
                self._edited.pop(alone, None)
            self._last_single = None
        self.seq += 1
        self.events += 1
        self._last_seq[path] = self.seq
        self.pending[path] = Pending(state, self.seq, signature)
        self._attempts.pop(path, None)
        if self._burst_start is None:
            self._burst_start = now
        self._last_event = now

    def refresh(self, path: str, signature: Signature | None) -> None:
        """A metadata change (``touch``): not a change on its own, but the file's new
        signature is expected, not the sign of a write still in flight."""
        pending = self.pending.get(path)
        if pending is None or pending.requeued:
            return
        pending.signature = signature
        if pending.guessed_from is not None:
            # The change seen before its event was this one: nothing is being written.
            pending.state, pending.guessed_from = pending.guessed_from, None

    # --- when to cut -----------------------------------------------------------------

    def due(self) -> float | None:
        """When the gathered burst is to be cut (clock time); None if nothing is pending."""
        if not self.pending:
            return None
        if self._last_event is None or self._burst_start is None:
            return self._retry_at  # only handed-back paths: their own schedule
        fresh = [p.state for p in self.pending.values() if not p.requeued]
        hard = self._burst_start + 2 * self.max_wait
        if self.reports_close and WRITING in fresh:
            # A file is still open for writing: its close ends the wait. Even past
            # max_wait, cutting now would hand over a file in the middle of a save.
            due = hard
        elif self.reports_close and fresh == [CLOSED]:
            path = next(p for p, pending in self.pending.items() if not pending.requeued)
            settle = 0.0 if path in self._edited else self.quiet * SETTLE
            due = min(self._burst_start + self.max_wait, self._last_event + settle)
        else:
            due = min(self._burst_start + self.max_wait, self._last_event + self.quiet)
        if self._hold_until is not None:
            due = max(due, min(hard, self._hold_until))
        return due

    def deadline(self) -> float | None:
        """The hard cap of the burst (``2 x max_wait`` after its first event); None
        when only handed-back paths are pending."""
        if self._burst_start is None:
            return None
        return self._burst_start + 2 * self.max_wait

    def is_single(self) -> bool:
        """Whether the burst is one file closed after writing (or renamed into place)."""
        fresh = [p.state for p in self.pending.values() if not p.requeued]
        return self.reports_close and fresh == [CLOSED]

    def needs_barrier(self) -> bool:
        """Whether the watcher sends a barrier before the cut. Not for the file being
        edited, saved alone again: the consumer's :meth:`ChangeBatch.still_valid`
        sends one before it acts, and any event older than it voids the batch."""
        if not self.is_single() or len(self.pending) != 1:
            return True
        return next(iter(self.pending)) not in self._edited

    # --- just before a cut: the owner has sent the barrier and looked at the files ---------

    def hold_unconfirmed(self) -> bool:
        """The backend could not make sure that no event is still on its way: a single
        file then waits a short settle window after its event. True if it must wait."""
        if not self.is_single() or self._last_event is None:
            return False
        until = self._last_event + self.quiet * SETTLE
        if self.clock() >= until:
            return False
        self._hold_until = until
        return True

    def hold_in_flight(self, signatures: dict[str, Signature | None]) -> bool:
        """Given the files as they are now, whether the cut must wait.

        A file that changed since its last event, with no event for it yet, is being
        written right now. With inotify its events are certain to come (a ``touch``
        has its own), so it is treated as open for writing and the batch waits for
        its close; no time window would do, since a stalled writer can leave a
        half-written file unchanged for longer than any. Polling gets one more look a
        moment later. Past the hard cap nothing waits any more.
        """
        in_flight = self._in_flight(signatures)
        if not in_flight or self._burst_start is None:
            return False
        now = self.clock()
        if now >= self._burst_start + 2 * self.max_wait:
            return False
        for path in in_flight:
            pending = self.pending[path]
            pending.signature = signatures[path]
            if pending.guessed_from is None:
                pending.guessed_from = pending.state
            pending.state = WRITING if self.reports_close else LISTED
        if not self.reports_close:
            self._hold_until = now + self.quiet * SETTLE
        return True

    def cut(self, signatures: dict[str, Signature | None]) -> Cut:
        """Take the gathered burst; ``signatures`` are its files as they were just before."""
        in_flight = self._in_flight(signatures)
        states, self.pending = self.pending, {}
        fresh = [p for p in states.values() if not p.requeued]
        unsettled = self.reports_close and (
            bool(in_flight) or any(p.state == WRITING for p in fresh)
        )
        single = self.reports_close and len(states) == len(fresh) == 1 and fresh[0].state == CLOSED

        def complete(path: str, p: Pending) -> bool:
            sig = signatures.get(path)
            if sig is None:
                return False
            if p.requeued:
                # Handed back and unchanged since: a second look confirms it, even empty.
                return sig == p.signature and (p.state == CLOSED or not self.reports_close)
            # An empty file just after its close may be the next save's truncate.
            return p.state == CLOSED and sig == p.signature and sig[0] > 0

        closed = frozenset(path for path, p in states.items() if complete(path, p))
        if single:
            (path,) = states
            self._edited.pop(path, None)
            self._edited[path] = None
            if len(self._edited) > EDITED_MEMORY:
                del self._edited[next(iter(self._edited))]
            self._last_single = (path, self.clock())
        self._burst_start = self._last_event = self._retry_at = self._hold_until = None
        self.batches += 1
        return Cut(states, closed, self.seq, dict(signatures), unsettled, single)

    def _in_flight(self, signatures: dict[str, Signature | None]) -> list[str]:
        return [
            path
            for path, p in self.pending.items()
            if not p.requeued and signatures.get(path) != p.signature
        ]

    # --- after a cut ---------------------------------------------------------------------

    def changed_since(self, cut: Cut) -> bool:
        """Whether an event came, after ``cut``, for one of its paths; for a single
        file cut at its close, whether any event came at all (the burst went on)."""
        if cut.single and self.seq > cut.seq:
            return True
        return any(self._last_seq.get(path, 0) > cut.seq for path in cut.states)

    def requeue(self, cut: Cut) -> list[str]:
        """Put the paths of ``cut`` back, to be delivered again after the next quiet
        window (doubling per attempt). Returns the paths given up on after
        :data:`MAX_RETRIES` attempts in a row."""
        given_up: list[str] = []
        attempts_max = 0
        if cut.single:
            # The bet that the burst was over was lost, or the file was mid-write.
            for path in cut.states:
                self._edited.pop(path, None)
        for path, pending in cut.states.items():
            if self._last_seq.get(path, 0) > cut.seq:
                continue  # a newer event already brings it back
            if self.reports_close and pending.state == WRITING:
                continue  # still open for writing: its close-after-write brings it back
            attempts = self._attempts.get(path, 0) + 1
            if attempts > MAX_RETRIES:
                self._attempts.pop(path, None)
                given_up.append(path)
                continue
            self._attempts[path] = attempts
            attempts_max = max(attempts_max, attempts)
            self.pending.setdefault(
                path,
                Pending(pending.state, pending.seq, cut.signatures.get(path), requeued=True),
            )
        if attempts_max:
            self.retries += 1
            delay = max(self.quiet * 2 ** (attempts_max - 1), self.retry_floor)
            at = self.clock() + delay
            self._retry_at = at if self._retry_at is None else min(self._retry_at, at)
        self.gave_up += len(given_up)
        return given_up

    def clear(self) -> None:
        """Forget the burst and every path's history (stop, fork)."""
        self.pending.clear()
        self._last_seq.clear()
        self._attempts.clear()
        self._edited.clear()
        self._last_single = None
        self._burst_start = self._last_event = self._retry_at = self._hold_until = None


class BatchOwner(Protocol):
    """Who cut a batch: answers for it under its own lock."""

    def _changed_since(self, cut: Cut) -> bool: ...

    def _requeue(self, cut: Cut) -> None: ...


class ChangeBatch:
    """The changed files of one burst, handed to ``on_change``.

    :ivar paths: resolved absolute paths that were created, modified, renamed into
        place (a move counts for its destination, and its source as deleted) or
        deleted during the burst.
    :ivar closed: the subset whose last event was a close-after-write, or a rename
        into place, and that have not changed since: their content is complete, so
        an empty file there really is empty. A file found empty just after its close
        is left out (that emptiness may be the next save's truncate), until a batch
        handed back by :meth:`retry` brings it again unchanged. Under polling, where
        no close events exist, that second look is the only way in.
    """

    __slots__ = ("_cut", "_handed_back", "_owner", "closed", "paths")

    def __init__(self, owner: BatchOwner, cut: Cut) -> None:
        self._owner = owner
        self._cut = cut
        self._handed_back = False
        self.paths: frozenset[Path] = frozenset(Path(p) for p in cut.states)
        self.closed: frozenset[Path] = frozenset(Path(p) for p in cut.closed)

    def __repr__(self) -> str:
        return f"<ChangeBatch {len(self.paths)} path(s), {len(self.closed)} closed>"

    def still_valid(self) -> bool:
        """False if one of these files changed after the batch was cut.

        That is: an event for it arrived since, or its size, mtime or inode differ
        from what they were at the cut (a write whose events are still on their way).
        A consumer calls it after reading the files: False means what it read may be
        a write in progress, and a newer batch with these paths is coming. Also
        False for a batch cut by the cap (``2 x max_wait``) while one of its files
        was still being written (inotify): that file's close brings it back; and for
        a batch of one file cut at its close when any other event has come since (a
        burst going on): :meth:`retry` puts it into that burst.
        """
        if self._cut.unsettled or self._owner._changed_since(self._cut):
            return False
        return all(file_signature(path) == sig for path, sig in self._cut.signatures.items())

    def retry(self) -> None:
        """Deliver these paths again after the next quiet window.

        For a consumer that found a file mid-write. Bounded: a path handed back more
        than a few times in a row is dropped with a WARNING (its next change brings
        it back). Calling it twice is harmless.
        """
        if not self._handed_back:
            self._handed_back = True
            self._owner._requeue(self._cut)
