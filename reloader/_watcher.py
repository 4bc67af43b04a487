"""The watcher: file-system events in, one :class:`ChangeBatch` per burst out.

The watcher knows nothing of modules or generations. It watches the folders of the
watched roots, one non-recursive watch per folder (as hupper does), never descending
into a folder it does not own (``.git``, ``__pycache__``, virtualenvs, ``node_modules``
and the like), keeps the events of the ``.py`` files (and of the ``extra`` globs), and
gathers them until the tree has been quiet for a moment. Then it hands the burst, as
one batch, to ``on_change`` on its single dispatch thread.

Two backends sit behind one small interface (:class:`Backend`): inotify through
watchdog (:mod:`hotmod.reloader._watch_inotify`) and a stat-polling loop
(:mod:`hotmod.reloader._watch_polling`) for the places inotify does not reach.

Why a batch carries :meth:`ChangeBatch.still_valid` and :meth:`ChangeBatch.retry`:
an editor's save is a burst (truncate, write, close; or write a temporary file and
rename it over the target). A reload that reads a file between the truncate and the
write would make an empty module current. So a close-after-write event is tracked
per path, a path that is still being written holds the batch back (up to
``max_wait``), the consumer can ask whether an event arrived after the batch was cut,
and can hand the batch back to be delivered again after the next quiet window.
"""

from __future__ import annotations

import errno
import fnmatch
import importlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ._roots import EXCLUDED_DIRS, SYSTEM_DIRS, ExtraGlobs, resolve_roots

__all__ = ["EXCLUDED_DIRS", "ChangeBatch", "Watcher", "fork_epoch"]

logger = logging.getLogger("hotmod.watcher")


#: Names editors write next to the file they save: never a change of the file itself.
_EDITOR_PREFIXES = (".#", "#", ".goutputstream-")
_EDITOR_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".swpx", ".bak", ".orig")
_EDITOR_INFIXES = ("___jb_tmp___", "___jb_old___", "___jb_bak___")

#: How many times a batch handed back by :meth:`ChangeBatch.retry` is delivered again.
MAX_RETRIES = 5

#: A burst of one file, closed after writing (or renamed into place), is cut after
#: this fraction of ``quiet``: that is how one save reloads in a few ms. A burst of
#: several files waits the whole ``quiet``: events reach Python through several
#: threads, and gaps of 10-15 ms between two events of one ``git checkout`` are common
#: when other threads hold the GIL.
_SINGLE_FILE_FRACTION = 0.2

_INOTIFY_LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)


# The engine's list: what is never loaded is never watched either.
_SYSTEM_DIRS = SYSTEM_DIRS


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


# --- fork detection --------------------------------------------------------------------

# Bumped in every child right after fork(); a watcher compares it with the value it
# saw when it started. Written only by the at-fork hook, when the child has one thread.
_fork_epoch = 0
_live_watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()


def fork_epoch() -> int:
    """A number that changes in a child process after every ``fork()``.

    Save it, compare it later: a difference means this process is a fork of the one
    that saved it. One global read, cheap enough for every request.
    """
    return _fork_epoch


def _after_fork_in_child() -> None:
    global _fork_epoch
    _fork_epoch += 1
    for watcher in list(_live_watchers):
        try:
            watcher._drop_inherited()
        except Exception:  # an at-fork hook must not break the child; say what failed
            logger.exception("could not reset %r in the forked child", watcher)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- what backends report --------------------------------------------------------------


class RawEvent(NamedTuple):
    """One file-system event as a backend reports it.

    ``kind`` is ``"created"``, ``"modified"``, ``"closed"`` (closed after writing),
    ``"attrib"`` (metadata only: ``touch``, ``chmod``), ``"deleted"`` or ``"moved"``.
    For a move, ``path`` is the source and ``dest`` the destination; either may be
    ``""`` when it lies outside every watched folder.
    """

    kind: str
    path: str
    dest: str = ""
    is_dir: bool = False


class Backend(Protocol):
    """What the watcher needs from a backend; each method is thread-safe."""

    name: str
    #: Whether the backend reports close-after-write events.
    reports_close: bool

    def start(self) -> None: ...

    def schedule(self, folder: str) -> bool:
        """Watch ``folder`` (not its sub-folders). False if it vanished meanwhile.

        Raises :class:`OSError` with ``ENOSPC``/``EMFILE`` when a kernel limit is hit.
        """

    def unschedule(self, folder: str) -> None: ...

    def sync(self, folders: Iterable[str], timeout: float) -> bool:
        """Return once the events of ``folders`` that happened before the call have
        reached the sink (False if unsure after ``timeout``)."""

    def stop(self, timeout: float) -> list[threading.Thread]:
        """Stop and join; returns the threads still alive after ``timeout``."""

    def abandon(self) -> None:
        """In a forked child: drop the parent's threads, close inherited descriptors."""


#: Backends by name, imported on first use (so polling never imports watchdog).
_BACKENDS = {
    "inotify": "hotmod.reloader._watch_inotify:InotifyBackend",
    "polling": "hotmod.reloader._watch_polling:PollingBackend",
}


def _backend_class(name: str) -> Callable[..., Backend]:
    module_name, _, class_name = _BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


# --- batches ---------------------------------------------------------------------------

# Per-path states within a burst.
_WRITING = "writing"  # created or modified, no close-after-write seen yet
_CLOSED = "closed"  # closed after writing, or renamed into place: content complete
_GONE = "gone"  # deleted or moved away
_LISTED = "listed"  # seen by looking at the file (a new folder's listing, a change
# noticed before its event arrived): no event describes what it holds


# What a file looked like: (size, mtime_ns, inode), or None when it does not exist.
_Signature = tuple[int, int, int] | None


def _signature(path: str) -> _Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class _Pending:
    state: str
    seq: int
    #: For _CLOSED: the file as it was when its close (or move) event was handled.
    signature: _Signature = None
    requeued: bool = False


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

    __slots__ = (
        "_cut_seq",
        "_handed_back",
        "_signatures",
        "_states",
        "_unsettled",
        "_watcher",
        "closed",
        "paths",
    )

    def __init__(
        self,
        watcher: Watcher,
        states: dict[str, _Pending],
        closed: frozenset[Path],
        cut_seq: int,
        signatures: dict[str, _Signature],
        unsettled: bool,
    ) -> None:
        self._watcher = watcher
        self._states = states
        self._cut_seq = cut_seq
        self._signatures = signatures
        # Cut (at the hard cap) while a file was still being written: never valid.
        self._unsettled = unsettled
        self._handed_back = False
        self.paths: frozenset[Path] = frozenset(Path(p) for p in states)
        self.closed: frozenset[Path] = closed

    def __repr__(self) -> str:
        return f"<ChangeBatch {len(self.paths)} path(s), {len(self.closed)} closed>"

    def still_valid(self) -> bool:
        """False if one of these files changed after the batch was cut.

        That is: an event for it arrived since, or its size, mtime or inode differ
        from what they were at the cut (a write whose events are still on their way
        through the observer's threads). A consumer calls it after reading the
        files: False means what it read may be a write in progress, and a newer
        batch with these paths is coming. Also False for a batch cut by the cap
        (``2 x max_wait``) while one of its files was still being written (inotify):
        it is delivered, so that the consumer knows, but nothing read from it can be
        trusted; that file's close brings it back.
        """
        if self._unsettled:
            return False
        if not self._watcher._unchanged_since(self._states, self._cut_seq):
            return False
        return all(_signature(path) == sig for path, sig in self._signatures.items())

    def retry(self) -> None:
        """Deliver these paths again after the next quiet window.

        For a consumer that found a file mid-write. Bounded: a path handed back more
        than a few times in a row is dropped with a WARNING (its next change brings
        it back). Calling it twice is harmless.
        """
        if not self._handed_back:
            self._handed_back = True
            self._watcher._requeue(self._states, self._cut_seq, self._signatures)


# --- which folders and files matter ----------------------------------------------------


class _Tree:
    """The watched roots with the rules that say which folders to watch, which
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
        return list(self.roots) + [b for b in self.extra_bases if os.path.isdir(b)]

    def _root_of(self, path: str) -> str | None:
        for root in self.roots:
            if _inside(path, root):
                return root
        return None

    def folder_wanted(self, folder: str) -> bool:
        """Whether ``folder`` gets a watch: inside a base, not excluded, not system."""
        root = self._root_of(folder)
        if root is None and not any(
            folder == base or (deep and _inside(folder, base)) for base, deep in self.extra_bases.items()
        ):
            return False  # (one base may lie inside another: any that takes it will do)
        name = os.path.basename(folder)
        if folder != root and (name in EXCLUDED_DIRS or _is_virtualenv(folder)):
            return False
        if any(_inside(folder, d) for d in _SYSTEM_DIRS):
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
        if _is_editor_file(name):
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


def _is_virtualenv(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, "pyvenv.cfg"))


def _is_editor_file(name: str) -> bool:
    return (
        name.startswith(_EDITOR_PREFIXES)
        or name.endswith(_EDITOR_SUFFIXES)
        or any(i in name for i in _EDITOR_INFIXES)
        or name.isdigit()  # vim's write probe, "4913"
    )


def _env_wants_polling() -> bool:
    return os.environ.get("HOTMOD_POLL", "").strip().lower() in ("1", "true", "yes", "on")


# --- the watcher -----------------------------------------------------------------------


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
    :param poll: True for the polling backend, False for inotify, None (default) for
        polling when the environment has ``HOTMOD_POLL=1``, else inotify.
    :param quiet: seconds without events that end a burst. For a burst of one file
        closed after writing (or renamed into place), a fifth of it is enough: one
        save reloads in about 10 ms by default. While a file is still open for
        writing, the burst waits for its close (up to ``max_wait``).
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
        self._tree = _Tree(tuple(str(r) for r in self.roots), extra, exclude)
        self._on_change = on_change
        self.quiet = float(quiet)
        self.max_wait = float(max_wait)
        self.poll_interval = float(poll_interval)
        self._poll_requested = _env_wants_polling() if poll is None else bool(poll)
        #: "inotify" or "polling": the backend in use (after a fallback too).
        self.backend: str = "polling" if self._poll_requested else "inotify"

        self._renew_locks()
        # Lifecycle, owned by _life_lock.
        self._backend: Backend | None = None
        self._dispatcher: threading.Thread | None = None
        self._started = False
        self._epoch = _fork_epoch
        self._restart_after_fork = False
        self._fallback_warned = False
        # Watched folders -> wanted file names in them; owned by _tree_lock, which is
        # never held while calling a backend.
        self._folders: dict[str, set[str]] = {}
        # The burst being gathered and the fallback request, owned by _cond.
        self._stopping = False
        self._pending: dict[str, _Pending] = {}
        self._seq = 0
        self._last_seq: dict[str, int] = {}
        self._burst_start: float | None = None
        self._last_event: float | None = None
        self._retry_at: float | None = None
        self._hold_until: float | None = None
        self._attempts: dict[str, int] = {}
        self._fallback_reason: str | None = None
        # Counters for stats(), owned by _cond.
        self._events = 0
        self._batches = 0
        self._retries = 0
        self._gave_up = 0
        _live_watchers.add(self)

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
        self._clear_burst()
        self._folders.clear()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        roots = [str(r) for r in self.roots]
        return f"<Watcher {self.backend} {state}, {len(self._folders)} folders, roots={roots!r}>"

    # --- public ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`, in the process that started it."""
        return self._started and self._epoch == _fork_epoch

    def start(self) -> None:
        """Place the watches and start the threads. Idempotent.

        In a forked child of a process where the watcher ran, it starts afresh
        (see :meth:`after_fork`).
        """
        with self._life_lock:
            self._epoch = _fork_epoch
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

        After it returns no watcher thread runs and no inotify descriptor stays open
        (a thread that did not finish in time is named in a WARNING). Idempotent.
        """
        with self._life_lock:
            self._epoch = _fork_epoch
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
        if self._epoch == _fork_epoch:
            return False
        with self._life_lock:
            if self._epoch == _fork_epoch:
                return False
            self._epoch = _fork_epoch
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
            return {
                "backend": self.backend,
                "running": self.running,
                "folders": folders,
                "files": files,
                "events": self._events,
                "batches": self._batches,
                "retries": self._retries,
                "gave_up": self._gave_up,
                "pending": len(self._pending),
            }

    # --- lifecycle -----------------------------------------------------------------------

    def _start_locked(self) -> None:
        with self._cond:
            self._stopping = False
        self._epoch = _fork_epoch
        self._started = True
        self._backend = self._open_backend("polling" if self._poll_requested else "inotify")
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="hotmod-watch-dispatch", daemon=True
        )
        self._dispatcher.start()
        for base in self._tree.bases():
            self._watch_tree(base, report=False)
        reason = self._take_fallback_reason()
        if reason is not None:
            self._switch_to_polling(reason)
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
            self._clear_burst()
        with self._tree_lock:
            self._folders.clear()

    def _open_backend(self, name: str) -> Backend:
        if name == "inotify":
            try:
                backend = _backend_class("inotify")(self._on_raw)
                backend.start()
                self.backend = "inotify"
                return backend
            except OSError as exc:
                self._warn_fallback(self._describe_limit(exc))
            except ImportError as exc:  # not Linux, or a libc without inotify
                self._warn_fallback(f"inotify is not available here ({exc})")
        backend = _backend_class("polling")(
            self._on_raw,
            interval=self.poll_interval,
            recheck=self.quiet / 2,
            relevant=self._tree_relevant,
        )
        backend.start()
        self.backend = "polling"
        return backend

    def _tree_relevant(self, path: str) -> bool:
        return os.path.basename(path) == "pyvenv.cfg" or self._tree.wants(path)

    def _describe_limit(self, exc: OSError) -> str:
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
        """Replace the inotify backend by polling over the same folders. Never runs
        on a backend thread (it stops that backend)."""
        old = self._backend
        if old is None or old.name == "polling":
            return
        self._warn_fallback(reason)
        # Swapped first: a folder that appears from now on is scheduled on the new one.
        new = self._backend = self._open_backend("polling")
        with self._tree_lock:
            folders = list(self._folders)
        for folder in folders:
            new.schedule(folder)
        old.stop(2.0)
        # Changes made while no backend watched are not lost: every known file is
        # delivered once; the consumer compares content and skips what is unchanged.
        with self._tree_lock:
            known = [os.path.join(f, n) for f, names in self._folders.items() for n in names]
        for path in known:
            self._note(path, _LISTED)

    def _clear_burst(self) -> None:
        self._pending.clear()
        self._last_seq.clear()
        self._attempts.clear()
        self._burst_start = self._last_event = self._retry_at = self._hold_until = None

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
                    self._note(path, _LISTED)

    def _watch_folder(self, folder: str) -> bool:
        backend = self._backend
        if backend is None:
            return False
        with self._tree_lock:
            if folder in self._folders:
                return False
            self._folders[folder] = set()
        if backend.name == "inotify" and self._fallback_reason is not None:
            return True  # inotify is full: the polling backend will take this folder
        try:
            placed = backend.schedule(folder)
        except OSError as exc:
            placed = False
            if exc.errno in _INOTIFY_LIMIT_ERRNOS and backend.name == "inotify":
                with self._cond:
                    self._fallback_reason = self._describe_limit(exc)
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
            gone = [f for f in self._folders if _inside(f, top)]
            files = [os.path.join(f, n) for f in gone for n in self._folders[f]]
            for folder in gone:
                del self._folders[folder]
        backend = self._backend
        if backend is not None:
            for folder in gone:
                backend.unschedule(folder)
        if report:
            for path in files:
                self._note(path, _GONE)

    # --- events (backend threads) ----------------------------------------------------------

    def _on_raw(self, event: RawEvent) -> None:
        """Called by a backend on its own thread, for every event in a watched folder."""
        try:
            if event.kind == "moved":
                if event.path:
                    self._on_path(event.path, "deleted", event.is_dir)
                if event.dest:
                    self._on_path(event.dest, "moved_in", event.is_dir)
            else:
                self._on_path(event.path, event.kind, event.is_dir)
        except Exception:
            logger.exception("watcher failed to handle %r", event)

    def _on_path(self, path: str, kind: str, is_dir: bool) -> None:
        folder, name = os.path.split(path)
        if is_dir:
            if kind in ("created", "moved_in"):
                with self._tree_lock:
                    parent_watched = folder in self._folders
                if parent_watched and self._tree.folder_wanted(path):
                    self._watch_tree(path, report=True)
            elif kind == "deleted":
                self._forget_tree(path, report=True)
            return
        if name == "pyvenv.cfg" and kind in ("created", "moved_in"):
            # A virtualenv is being created here: it is not ours to watch.
            self._forget_tree(folder, report=False)
            return
        if not self._tree.wants(path):
            return
        if kind == "attrib":
            self._refresh(path)
            return
        with self._tree_lock:
            known = self._folders.get(folder)
            if known is not None:
                if kind == "deleted":
                    known.discard(name)
                else:
                    known.add(name)
        state = {
            "created": _WRITING,
            "modified": _WRITING,
            "closed": _CLOSED,
            "moved_in": _CLOSED,
            "deleted": _GONE,
        }[kind]
        self._note(path, state)

    def touched(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Report files that changed while no watcher ran, so that no event will
        come for them: they are delivered as saved (or gone), through the same
        quiet window and checks as any save."""
        for path in paths:
            real = os.fspath(path)
            self._note(real, _CLOSED if os.path.exists(real) else _GONE)

    def _refresh(self, path: str) -> None:
        """A metadata change (``touch``): not a reload on its own, but the file's new
        signature is expected, not the sign of a write still in flight."""
        signature = _signature(path)
        with self._cond:
            pending = self._pending.get(path)
            if pending is not None and not pending.requeued:
                pending.signature = signature

    def _note(self, path: str, state: str) -> None:
        # The file as this event leaves it: a later difference without an event means
        # a write whose events have not arrived yet (see _in_flight).
        signature = _signature(path)
        with self._cond:
            if self._stopping:
                return
            self._seq += 1
            self._events += 1
            self._last_seq[path] = self._seq
            self._pending[path] = _Pending(state, self._seq, signature)
            self._attempts.pop(path, None)
            now = time.monotonic()
            if self._burst_start is None:
                self._burst_start = now
            self._last_event = now
            self._cond.notify_all()

    # --- batches (dispatch thread) ---------------------------------------------------------

    def _due(self) -> float | None:
        """When the gathered burst is to be cut; None if there is nothing. Under _cond."""
        if not self._pending:
            return None
        if self._last_event is None or self._burst_start is None:
            return self._retry_at  # only handed-back paths: their own schedule
        fresh = [p.state for p in self._pending.values() if not p.requeued]
        cap = self._burst_start + self.max_wait
        reports_close = self._backend is not None and self._backend.reports_close
        hard = self._burst_start + 2 * self.max_wait
        if reports_close and _WRITING in fresh:
            # A file is still open for writing: its close ends the wait. Even past
            # max_wait, cutting now would hand over a file in the middle of a save.
            due = hard
        elif reports_close and fresh == [_CLOSED]:
            due = min(cap, self._last_event + self.quiet * _SINGLE_FILE_FRACTION)
        else:
            due = min(cap, self._last_event + self.quiet)
        if self._hold_until is not None:
            due = max(due, min(hard, self._hold_until))
        return due

    def _cut(self, signatures: dict[str, _Signature], in_flight: list[str]) -> ChangeBatch:
        """Take the gathered burst as a batch; ``signatures`` are its files as they were
        just before, ``in_flight`` those that changed with no event yet. Under _cond."""
        states, self._pending = self._pending, {}
        reports_close = self._backend is not None and self._backend.reports_close
        unsettled = reports_close and (
            bool(in_flight) or any(p.state == _WRITING and not p.requeued for p in states.values())
        )

        def complete(path: str, p: _Pending) -> bool:
            sig = signatures.get(path)
            if sig is None:
                return False
            if p.requeued:
                # Handed back and unchanged since: a second look confirms it, even empty.
                return sig == p.signature and (p.state == _CLOSED or not reports_close)
            return p.state == _CLOSED and sig == p.signature and sig[0] > 0

        closed = frozenset(Path(path) for path, p in states.items() if complete(path, p))
        self._burst_start = self._last_event = self._retry_at = self._hold_until = None
        self._batches += 1
        return ChangeBatch(self, states, closed, self._seq, signatures, unsettled)

    def _in_flight(self, signatures: dict[str, _Signature]) -> list[str]:
        """Files that changed since their last event was handled, with no event for it
        yet: a write whose events are still in the observer's threads, or that the
        polling scan has not seen. Under _cond."""
        return [
            path
            for path, p in self._pending.items()
            if not p.requeued and signatures.get(path) != p.signature
        ]

    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    reason, self._fallback_reason = self._fallback_reason, None
                    if reason is not None:
                        break
                    due = self._due()
                    now = time.monotonic()
                    if due is not None and due <= now:
                        break
                    self._cond.wait(None if due is None else due - now)
                seq = self._seq
                paths = list(self._pending)
                burst_start = self._burst_start
                backend = self._backend
            if reason is not None:
                try:
                    self._switch_to_polling(reason)
                except Exception:
                    logger.exception("watcher could not switch to polling")
                continue
            # Outside the lock: the backend's thread keeps delivering events meanwhile.
            # First make sure no event that happened before now is still on its way
            # (a save's truncate queued behind the close of the previous save), then
            # look at the files.
            if backend is not None and backend.reports_close and burst_start is not None:
                hard = burst_start + 2 * self.max_wait
                timeout = max(self.quiet, hard - time.monotonic())
                backend.sync({os.path.dirname(p) for p in paths}, timeout)
            signatures = {path: _signature(path) for path in paths}
            with self._cond:
                if self._stopping:
                    return
                if self._seq != seq:
                    continue  # new events came in while the files were looked at
                in_flight = self._in_flight(signatures)
                if self._burst_start is not None:
                    now = time.monotonic()
                    if in_flight and now < self._burst_start + 2 * self.max_wait:
                        reports_close = self._backend is not None and self._backend.reports_close
                        for path in in_flight:
                            pending = self._pending[path]
                            pending.signature = signatures[path]
                            # With inotify the events of that write are on their way
                            # (a touch has its own): wait for its close, as for any
                            # file open for writing. Polling gets one more look.
                            pending.state = _WRITING if reports_close else _LISTED
                        self._hold_until = now + self.quiet * _SINGLE_FILE_FRACTION
                        continue
                batch = self._cut(signatures, in_flight)
            try:
                self._on_change(batch)
            except Exception:
                logger.exception("on_change failed for %r", batch)

    def _unchanged_since(self, states: dict[str, _Pending], cut_seq: int) -> bool:
        with self._cond:
            return all(self._last_seq.get(p, 0) <= cut_seq for p in states)

    def _requeue(
        self, states: dict[str, _Pending], cut_seq: int, signatures: dict[str, _Signature]
    ) -> None:
        given_up: list[str] = []
        with self._cond:
            if self._stopping:
                return
            attempts_max = 0
            reports_close = self._backend is not None and self._backend.reports_close
            for path, pending in states.items():
                if self._last_seq.get(path, 0) > cut_seq:
                    continue  # a newer event already brings it back
                if reports_close and pending.state == _WRITING:
                    continue  # still open for writing: its close-after-write brings it back
                attempts = self._attempts.get(path, 0) + 1
                if attempts > MAX_RETRIES:
                    self._attempts.pop(path, None)
                    given_up.append(path)
                    continue
                self._attempts[path] = attempts
                attempts_max = max(attempts_max, attempts)
                self._pending.setdefault(
                    path, _Pending(pending.state, pending.seq, signatures.get(path), requeued=True)
                )
            if attempts_max:
                self._retries += 1
                delay = self.quiet * 2 ** (attempts_max - 1)
                if not reports_close:
                    # Polling confirms a file by seeing it unchanged again: give a slow
                    # writer at least one scan to show its next change.
                    delay = max(delay, self.poll_interval)
                at = time.monotonic() + delay
                self._retry_at = at if self._retry_at is None else min(self._retry_at, at)
                self._cond.notify_all()
            self._gave_up += len(given_up)
        if given_up:
            logger.warning(
                "gave up on %d changed file(s) after %d retries (%s); the next change"
                " of a file brings it back",
                len(given_up), MAX_RETRIES, ", ".join(sorted(given_up)[:3]),
            )
