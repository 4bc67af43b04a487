"""The watcher: file-system events in, one :class:`ChangeBatch` per burst out.

The watcher knows nothing of modules or generations. It watches the folders of the
watched roots, one non-recursive watch per folder (as hupper does), never descending
into a folder it does not own (``.git``, ``__pycache__``, virtualenvs, ``node_modules``
and the like: :mod:`._watch_tree`), keeps the events of the ``.py`` files (and of the
``extra`` globs), gathers them into bursts (:mod:`._debounce`) and hands each burst,
as one batch, to ``on_change`` on its single dispatch thread.

Three backends sit behind one small interface (:mod:`._watch_backend`): on Linux,
inotify, one descriptor and one reader thread for the whole tree
(:mod:`._watch_inotify`); elsewhere, the platform's native events through
watchdog's public observer (:mod:`._watch_watchdog`: FSEvents, kqueue,
``ReadDirectoryChangesW``); and a stat-polling thread (:mod:`._watch_polling`) for
the places native events do not reach, or when a kernel limit is reached.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ._debounce import CLOSED, GONE, LISTED, MAX_RETRIES, WRITING, ChangeBatch, Cut, Debouncer, PathState
from ._fork import fork_epoch, on_fork
from ._roots import inside, resolve_roots
from ._signature import file_signature
from ._watch_backend import BACKENDS, Backend, BackendName, RawEvent, RawKind, backend_class, native_backend
from ._watch_tree import WatchedTree

__all__ = ["MAX_RETRIES", "ChangeBatch", "Watcher", "fork_epoch"]

logger = logging.getLogger("hotmod.watcher")

#: What a backend raises when a kernel limit is reached (watches, instances, files).
_LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)

#: The state a file is in after each kind of event.
_STATE_AFTER = {
    RawKind.CREATED: WRITING,
    RawKind.MODIFIED: WRITING,
    RawKind.CLOSED: CLOSED,
    RawKind.MOVED_IN: CLOSED,
    RawKind.DELETED: GONE,
}


def choose_backend(backend: str | None, poll: bool | None) -> BackendName:
    """The backend asked for: by name, by ``poll``, by the environment
    (``HOTMOD_WATCHER=inotify|watchdog|polling``, or ``HOTMOD_POLL=1``), or this
    platform's native one. Raises :class:`ValueError` for a name that is none of them,
    and where ``backend`` and ``poll`` contradict each other."""
    if backend is not None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if poll is not None and poll != (backend == "polling"):
            raise ValueError(f"poll={poll!r} contradicts backend={backend!r}: give one of them")
        return backend  # type: ignore[return-value]  # checked against BACKENDS above
    if poll is not None:
        return "polling" if poll else native_backend()
    named = os.environ.get("HOTMOD_WATCHER", "").strip().lower()
    if named:
        if named not in BACKENDS:
            raise ValueError(
                f"HOTMOD_WATCHER={named!r} in the environment is not a watcher backend"
                f" (one of {', '.join(BACKENDS)})"
            )
        return named  # type: ignore[return-value]  # checked against BACKENDS above
    if os.environ.get("HOTMOD_POLL", "").strip().lower() in ("1", "true", "yes", "on"):
        return "polling"
    return native_backend()


class Watcher:
    """Watch the roots; call ``on_change(batch)`` once per burst of changes.

    :param roots: folders whose ``.py`` files are watched, with their sub-folders
        (excluded folders and virtualenvs aside). A root inside the standard library
        or site-packages raises :class:`ValueError`.
    :param on_change: called with a :class:`ChangeBatch` on the watcher's one dispatch
        thread, never concurrently, never on a backend thread. What it raises is
        logged with its traceback.
    :param extra: glob patterns of other files whose change is reported (templates,
        config). Relative patterns match a path relative to its root, or the file
        name; absolute ones match the absolute path, and their folder is watched.
    :param exclude: glob patterns of files never reported (same matching). A folder
        whose every path matches a pattern ending in ``*`` (``tests/*``) gets no watch.
    :param backend: ``"inotify"`` (Linux), ``"watchdog"`` (watchdog's native
        observer: FSEvents, kqueue, ``ReadDirectoryChangesW``) or ``"polling"``. By
        default, ``HOTMOD_WATCHER`` in the environment names it, else
        ``HOTMOD_POLL=1`` means polling, else this platform's native backend
        (inotify on Linux, watchdog elsewhere). One that cannot start falls back to
        polling, with one WARNING; so does one that reaches a kernel limit later.
    :param poll: True for polling, False for the native backend; a shorthand for
        ``backend`` (give one of them).
    :param quiet: seconds without events that end a burst of several files (or a
        deletion, or any burst under polling). One file closed after writing (or
        renamed into place) is handed over at once, once a barrier has shown that no
        other event is on its way. While a file is still open for writing, the
        burst waits for its close.
    :param max_wait: seconds after a burst's first event when the batch is cut
        anyway: a never-ending stream of changes still reloads.
    :param poll_interval: seconds between two scans of the polling backend.
    """

    def __init__(
        self,
        roots: Sequence[str | os.PathLike[str]],
        *,
        on_change: Callable[[ChangeBatch], None],
        extra: Sequence[str] = (),
        exclude: Sequence[str] = (),
        backend: BackendName | None = None,
        poll: bool | None = None,
        quiet: float = 0.05,
        max_wait: float = 0.5,
        poll_interval: float = 0.5,
    ) -> None:
        resolved = resolve_roots(roots)
        if not callable(on_change):
            raise ValueError("on_change must be callable")
        if not quiet > 0:
            raise ValueError(f"quiet must be a positive number of seconds, not {quiet!r}")
        if not max_wait >= quiet:
            raise ValueError(f"max_wait ({max_wait!r}) must be at least quiet ({quiet!r})")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive, not {poll_interval!r}")

        self.roots: tuple[Path, ...] = tuple(Path(r) for r in sorted(set(resolved)))
        self._tree = WatchedTree(tuple(str(r) for r in self.roots), extra, exclude)
        self._on_change = on_change
        self.quiet = float(quiet)
        self.max_wait = float(max_wait)
        self.poll_interval = float(poll_interval)
        self._requested: BackendName = choose_backend(backend, poll)
        #: The backend in use: the one requested, or "polling" after a fallback.
        self.backend: BackendName = self._requested

        self._renew_locks()
        # Lifecycle, owned by _life_lock.
        self._backend: Backend | None = None
        self._dispatcher: threading.Thread | None = None
        self._started = False
        self._epoch = fork_epoch()
        self._restart_after_fork = False
        self._fallback_warned = False
        # Watched folders -> wanted file names in them; owned by _tree_lock, which is
        # never held while calling a backend.
        self._folders: dict[str, set[str]] = {}
        # The burst being gathered, the stop flag and the fallback request; owned by _cond.
        self._debounce = Debouncer(quiet=self.quiet, max_wait=self.max_wait)
        self._stopping = False
        self._fallback_reason: str | None = None
        # In a child right after fork(), while it has one thread (see _fork.py).
        on_fork(self, after_in_child=Watcher._drop_inherited)

    def _renew_locks(self) -> None:
        self._life_lock = threading.Lock()
        self._tree_lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())

    def _drop_inherited(self) -> None:
        """In a child right after ``fork()``, while it has one thread: forget the
        parent's threads, close the descriptors inherited from it (whoever restarts the
        watcher, none leaks), and remember whether to start again in :meth:`after_fork`.
        """
        # A parent thread may have held a lock at the moment of the fork; in the child
        # that thread does not exist and would never release it.
        self._renew_locks()
        if self._backend is not None:
            self._backend.abandon()
        self._restart_after_fork = self._started
        self._backend = None
        self._dispatcher = None
        self._started = False
        self._stopping = False
        self._debounce.clear()
        self._folders.clear()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        roots = [str(r) for r in self.roots]
        return f"<Watcher {self.backend} {state}, {len(self._folders)} folders, roots={roots!r}>"

    # --- public ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`, in the process that started it."""
        return self._started and self._epoch == fork_epoch()

    def start(self) -> None:
        """Place the watches and start the threads. Idempotent.

        In a forked child of a process where the watcher ran, it starts afresh
        (see :meth:`after_fork`).
        """
        with self._life_lock:
            self._epoch = fork_epoch()
            self._restart_after_fork = False
            if self._started:
                return
            try:
                self._start_locked()
            except BaseException:
                self._stop_locked(2.0)
                raise

    def stop(self, timeout: float = 2.0) -> None:
        """Stop watching; join every thread the watcher started within ``timeout``.

        After it returns no watcher thread runs and no descriptor of the watcher stays
        open (a thread that did not finish in time is named in a WARNING; watchdog
        7.1.1's own observer may leave descriptors behind: docs/watcher.md). Idempotent.
        """
        with self._life_lock:
            self._epoch = fork_epoch()
            self._restart_after_fork = False
            if self._started:
                self._stop_locked(timeout)

    def after_fork(self) -> bool:
        """In a child process after ``fork()``: start afresh if the parent's watcher ran.

        The parent's threads do not exist in the child and its inotify descriptor was
        closed in the child as it forked (``os.register_at_fork``); if the watcher
        was running, it starts again here with threads and a descriptor of its own.
        Returns True when it restarted. Cheap when nothing forked (one integer
        comparison), so it may be called per request.
        """
        if self._epoch == fork_epoch():
            return False
        with self._life_lock:
            if self._epoch == fork_epoch():
                return False
            self._epoch = fork_epoch()
            restart, self._restart_after_fork = self._restart_after_fork, False
            if restart and not self._started:
                try:
                    self._start_locked()
                except BaseException:
                    self._stop_locked(2.0)
                    raise
            return restart

    def folders(self) -> frozenset[Path]:
        """The folders that have a watch now."""
        with self._tree_lock:
            return frozenset(Path(f) for f in self._folders)

    def stats(self) -> dict[str, Any]:
        """Plain counters: backend, folders, files, events, batches, retries, gave_up."""
        with self._tree_lock:
            folders = len(self._folders)
            files = sum(len(v) for v in self._folders.values())
        with self._cond:
            d = self._debounce
            return {
                "backend": self.backend,
                "running": self.running,
                "folders": folders,
                "files": files,
                "events": d.events,
                "batches": d.batches,
                "retries": d.retries,
                "gave_up": d.gave_up,
                "pending": len(d.pending),
            }

    def touched(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Report files that changed while no watcher ran, so that no event will
        come for them: they are delivered as saved (or gone), through the same
        checks as any save."""
        for path in paths:
            real = os.fspath(path)
            self._note(real, CLOSED if os.path.exists(real) else GONE)

    # --- lifecycle -----------------------------------------------------------------------

    def _start_locked(self) -> None:
        with self._cond:
            self._stopping = False
        self._epoch = fork_epoch()
        self._started = True
        self._backend = self._open_backend(self._requested)
        for base in self._tree.bases():
            self._watch_tree(base, report=False)
        reason = self._take_fallback_reason()
        if reason is not None:
            self._switch_to_polling(reason)
        # Only now: until here this thread alone may switch backends (a limit reached
        # during the walk), from here on the dispatcher alone. Two switches at once
        # made two polling backends, one of them never stopped. Events that came
        # meanwhile wait in the debouncer.
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="hotmod-watch-dispatch", daemon=True
        )
        self._dispatcher.start()
        logger.debug("watching %d folders with %s", len(self._folders), self.backend)

    def _stop_locked(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        survivors: list[threading.Thread] = []
        if self._backend is not None:
            survivors += self._backend.stop(timeout)
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(max(0.0, deadline - time.monotonic()))
            if dispatcher.is_alive():
                survivors.append(dispatcher)
        if survivors:
            logger.warning(
                "watcher threads still running %.1fs after stop(): %s",
                timeout, ", ".join(t.name for t in survivors),
            )
        self._backend = None
        self._dispatcher = None
        self._started = False
        with self._cond:
            self._debounce.clear()
        with self._tree_lock:
            self._folders.clear()

    def _open_backend(self, name: BackendName) -> Backend:
        backend: Backend | None = None
        if name != "polling":
            try:
                backend = backend_class(name)(self._on_raw)
            except OSError as exc:
                self._warn_fallback(self._describe_limit(name, exc))
            except ImportError as exc:  # inotify off Linux; watchdog without a native observer
                self._warn_fallback(f"{name} is not available here ({exc})")
        if backend is None:
            backend = backend_class("polling")(
                self._on_raw,
                interval=self.poll_interval,
                recheck=self.quiet / 2,
                relevant=self._tree_relevant,
            )
        with self._cond:
            self._debounce.reports_close = backend.reports_close
            # Polling confirms a file by seeing it unchanged again: give a slow writer
            # at least one scan to show its next change before a handed-back path.
            self._debounce.retry_floor = self.poll_interval if backend.scans else 0.0
        backend.start()
        self.backend = backend.name
        return backend

    def _tree_relevant(self, path: str) -> bool:
        return os.path.basename(path) == "pyvenv.cfg" or self._tree.wants(path)

    def _describe_limit(self, name: str, exc: OSError) -> str:
        if not sys.platform.startswith("linux"):
            return (
                f"the {name} watcher reached a limit ({exc}); raise the open-file limit"
                " (ulimit -n), or watch fewer folders (exclude)"
            )
        if exc.errno == errno.EMFILE:
            return (
                f"the inotify instance limit is reached ({exc}); raise"
                " fs.inotify.max_user_instances (and fs.inotify.max_user_watches) with sysctl"
            )
        return (
            f"the inotify watch limit is reached ({exc}); raise fs.inotify.max_user_watches"
            " with sysctl (e.g. sysctl fs.inotify.max_user_watches=524288)"
        )

    def _warn_fallback(self, reason: str) -> None:
        if not self._fallback_warned:
            self._fallback_warned = True
            logger.warning("watcher falls back to polling: %s", reason)

    def _take_fallback_reason(self) -> str | None:
        with self._cond:
            reason, self._fallback_reason = self._fallback_reason, None
            return reason

    def _switch_to_polling(self, reason: str) -> None:
        """Replace the native backend by polling over the same folders. Runs on the
        thread that starts the watcher, before the dispatcher exists, or on the
        dispatcher: never two at once, never on a backend thread (it stops that one)."""
        old = self._backend
        if old is None or old.name == "polling":
            return
        self._warn_fallback(reason)
        new = self._open_backend("polling")
        with self._cond:
            if self._stopping:  # stop() has read (and stopped) the old one: not this one
                new.stop(2.0)
                return
            # Swapped first: a folder that appears from now on is scheduled on the new one.
            self._backend = new
        with self._tree_lock:
            folders = list(self._folders)
        for folder in folders:
            new.schedule(folder)
        old.stop(2.0)
        # Changes made while no backend watched are not lost: every known file is
        # delivered once; the consumer compares content and skips what is unchanged.
        self._note_known_files()

    def _note_known_files(self) -> None:
        with self._tree_lock:
            known = [os.path.join(f, n) for f, names in self._folders.items() for n in names]
        for path in known:
            self._note(path, LISTED)

    # --- folders -------------------------------------------------------------------------

    def _watch_tree(self, top: str, *, report: bool) -> None:
        """Watch ``top`` and its wanted sub-folders; with ``report``, the files found
        there are delivered (they may have been written before the watch existed)."""
        for folder, files in self._tree.walk(top):
            if not self._watch_folder(folder):
                continue
            with self._tree_lock:
                known = self._folders.get(folder)
                if known is not None:
                    known.update(os.path.basename(f) for f in files)
            if report:
                for path in files:
                    self._note(path, LISTED)

    def _watch_folder(self, folder: str) -> bool:
        backend = self._backend
        if backend is None:
            return False
        with self._tree_lock:
            if folder in self._folders:
                return False
            self._folders[folder] = set()
        if backend.name != "polling" and self._fallback_reason is not None:
            return True  # the native backend is full: the polling backend will take this folder
        try:
            placed = backend.schedule(folder)
        except OSError as exc:
            placed = False
            if exc.errno in _LIMIT_ERRNOS and backend.name != "polling":
                with self._cond:
                    self._fallback_reason = self._describe_limit(backend.name, exc)
                    self._cond.notify_all()
                return True  # the polling backend will watch it
            logger.warning("cannot watch %s: %s", folder, exc)
        if not placed:
            with self._tree_lock:
                self._folders.pop(folder, None)
        return placed

    def _forget_tree(self, top: str, *, report: bool) -> None:
        """Drop the watches at and below ``top``; with ``report``, its known files
        are delivered as deleted (a folder moved away sends no event per file)."""
        with self._tree_lock:
            gone = [f for f in self._folders if inside(f, top)]
            files = [os.path.join(f, n) for f in gone for n in self._folders[f]]
            for folder in gone:
                del self._folders[folder]
        backend = self._backend
        if backend is not None:
            for folder in gone:
                backend.unschedule(folder)
        if report:
            for path in files:
                self._note(path, GONE)

    # --- events (backend threads) ----------------------------------------------------------

    def _on_raw(self, event: RawEvent) -> None:
        """Called by a backend on its own thread, for every event in a watched folder."""
        try:
            if event.kind is RawKind.OVERFLOW:
                self._rescan()
            else:
                self._on_path(event.path, event.kind, event.is_dir)
        except Exception:
            logger.exception("watcher failed to handle %r", event)

    def _on_path(self, path: str, kind: RawKind, is_dir: bool) -> None:
        folder, name = os.path.split(path)
        if is_dir:
            if kind in (RawKind.CREATED, RawKind.MOVED_IN):
                with self._tree_lock:
                    parent_watched = folder in self._folders
                if parent_watched and self._tree.folder_wanted(path):
                    self._watch_tree(path, report=True)
            elif kind is RawKind.DELETED:
                self._forget_tree(path, report=True)
            return
        if name == "pyvenv.cfg" and kind in (RawKind.CREATED, RawKind.MOVED_IN):
            # A virtualenv is being created here: it is not ours to watch.
            self._forget_tree(folder, report=False)
            return
        if not self._tree.wants(path):
            return
        if kind is RawKind.ATTRIB:
            self._refresh(path)
            return
        with self._tree_lock:
            known = self._folders.get(folder)
            if known is not None:
                if kind is RawKind.DELETED:
                    known.discard(name)
                else:
                    known.add(name)
        self._note(path, _STATE_AFTER[kind])

    def _rescan(self) -> None:
        """The kernel's queue overflowed and events were lost: every known file is
        delivered once (the consumer compares content), and folders created meanwhile
        get their watches."""
        logger.warning(
            "%s lost events (its queue overflowed): looking at every file again", self.backend
        )
        self._note_known_files()
        for base in self._tree.bases():
            self._watch_tree(base, report=True)

    def _refresh(self, path: str) -> None:
        signature = file_signature(path)
        with self._cond:
            self._debounce.refresh(path, signature)
            self._cond.notify_all()

    def _note(self, path: str, state: PathState) -> None:
        # The file as this event leaves it: a later difference without an event means
        # a write whose events have not arrived yet (Debouncer.hold_in_flight).
        signature = file_signature(path)
        with self._cond:
            if self._stopping:
                return
            self._debounce.note(path, state, signature)
            self._cond.notify_all()

    # --- batches (dispatch thread) ---------------------------------------------------------

    def _dispatch_loop(self) -> None:
        debounce = self._debounce
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    reason, self._fallback_reason = self._fallback_reason, None
                    if reason is not None:
                        break
                    due = debounce.due()
                    now = time.monotonic()
                    if due is not None and due <= now:
                        break
                    self._cond.wait(None if due is None else due - now)
                seq = debounce.seq
                paths = list(debounce.pending)
                deadline = debounce.deadline()
                backend = self._backend if debounce.needs_barrier() else None
            if reason is not None:
                try:
                    self._switch_to_polling(reason)
                except Exception:
                    logger.exception("watcher could not switch to polling")
                continue
            # Outside the lock: the backend's thread keeps delivering events meanwhile.
            # First make sure no event that happened before now is still on its way
            # (the next file of a burst), then look at the files. The file being
            # edited skips this: the consumer's still_valid() carries the barrier.
            timeout = self.max_wait if deadline is None else deadline - time.monotonic()
            confirmed = self._sync(backend, paths, max(self.quiet, timeout))
            signatures = {path: file_signature(path) for path in paths}
            with self._cond:
                if self._stopping:
                    return
                if debounce.seq != seq:
                    continue  # new events came in meanwhile: judge the burst again
                if not confirmed and debounce.hold_unconfirmed():
                    continue
                if debounce.hold_in_flight(signatures):
                    continue
                cut = debounce.cut(signatures)
            batch = ChangeBatch(self, cut)
            try:
                self._on_change(batch)
            except Exception:
                logger.exception("on_change failed for %r", batch)

    def _sync(self, backend: Backend | None, paths: Iterable[str], timeout: float) -> bool:
        """Wait until every event older than now has been handled (inotify); True when
        that is sure. The barrier goes through the folders of ``paths`` or a root."""
        if backend is None or not backend.reports_close:
            return True
        where = [os.path.dirname(p) for p in paths] + [str(r) for r in self.roots]
        return backend.sync(dict.fromkeys(where), timeout)

    # --- what a batch asks (any thread) ----------------------------------------------------

    def _changed_since(self, cut: Cut) -> bool:
        # A write that the consumer's read saw happened before now: once the barrier
        # is back, its event has been counted, however far it lagged behind.
        self._sync(self._backend, cut.states, self.max_wait)
        with self._cond:
            return self._debounce.changed_since(cut)

    def _requeue(self, cut: Cut) -> None:
        with self._cond:
            if self._stopping:
                return
            given_up = self._debounce.requeue(cut)
            self._cond.notify_all()
            if given_up:
                # Logged before stats() can show the count: whoever sees one sees both.
                logger.warning(
                    "gave up on %d changed file(s) after %d retries (%s); the next change"
                    " of a file brings it back",
                    len(given_up), MAX_RETRIES, ", ".join(sorted(given_up)[:3]),
                )
