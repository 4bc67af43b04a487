"""The fresh-process probe: would the tree on disk load in a new interpreter?

A plan can fail in-process for two different reasons. Either the code is broken
(the same files fail anywhere), or the failure came from state that outlives
generations: a framework registry that already holds the old class, a shared
``MetaData`` that already defines the table, an app registry half-populated by an
earlier failure ("already registered", "populate() isn't reentrant"). The first
must stay an error page until the user fixes the file; the second must not: the
file is fine, and only a new process can load it.

No rule read off the exception can tell the two apart (a library's
``InvalidRequestError`` is raised the same way for a real mistake), so the engine
asks the only witness that knows: a fresh interpreter, started with the same
``sys.path``, working folder and environment, imports the target's module and
resolves the target (calling its factory) exactly as the engine's first load
would, and reports back whether it loaded, the failure if not, and which files of
the roots it imported. It never serves, never binds a socket, and ends with
``os._exit`` so that nothing the application registered at exit runs. Its output
goes nowhere: its only answer is the result file.

This file is also the child's script: run as ``python _probe.py`` it reads the
request (JSON) on stdin. It imports nothing of hotmod, so that the child loads the
application in an interpreter where nothing else ran.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hotmod")

#: Seconds a probe may take before it is stopped and counted as inconclusive.
PROBE_TIMEOUT = 60.0
#: ``HOTMOD_PROBE=0`` turns the probe off (a failed plan then always stays an error).
PROBE_ENV = "HOTMOD_PROBE"
#: Set in the probe's own environment: an application that starts hotmod at import
#: (a HotReload made at module level) does not probe again from inside a probe.
CHILD_ENV = "HOTMOD_PROBE_CHILD"


@dataclass(frozen=True)
class ProbeResult:
    """What the fresh interpreter said. ``loads`` is None when it gave no answer
    (it timed out, crashed, or could not be started): then nothing is concluded."""

    loads: bool | None
    seconds: float
    #: ``{"type", "message", "file", "line"}`` of the fresh process's failure.
    failure: Mapping[str, Any] | None = None
    #: Real path → module name, of each file of the roots the fresh process imported.
    files: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""


def enabled() -> bool:
    """Whether probes run in this process (not inside a probe, not turned off)."""
    return os.environ.get(PROBE_ENV, "1") != "0" and CHILD_ENV not in os.environ


def worth_asking(exc: BaseException, in_roots: Callable[[str], bool]) -> bool:
    """Whether a fresh process could load what failed here with ``exc``. Not when the
    failure is the code's own for certain: a syntax error; an ``ImportError`` of a
    module that the same ``sys.path`` cannot find; an exception the application's own
    code raised (its innermost frame lies in the roots). What a library raised on the
    code's behalf ("already registered", "already defined", "populate() isn't
    reentrant") may come from state the library keeps: that is asked about."""
    if isinstance(exc, SyntaxError) or type(exc).__name__ == "TargetError":
        return False
    parent = (exc.name or "").rpartition(".")[0] if isinstance(exc, ModuleNotFoundError) else ""
    if isinstance(exc, ModuleNotFoundError) and exc.name and (not parent or parent in sys.modules):
        try:
            if importlib.util.find_spec(exc.name) is None:
                return False
        except (ImportError, ValueError):
            return False
    innermost = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        innermost = frame.f_code.co_filename
    return innermost is None or not in_roots(innermost)


def probe(
    module: str,
    attr: str,
    *,
    call: bool,
    roots: Iterable[str],
    factory_args: Sequence[Any] = (),
    factory_kwargs: Mapping[str, Any] | None = None,
    timeout: float = PROBE_TIMEOUT,
    started_child: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> ProbeResult:
    """Load ``module:attr`` (``attr()`` when ``call``) in a fresh interpreter;
    ``started_child`` is handed the child process (to stop it early)."""
    started = time.monotonic()
    request: dict[str, Any] = {
        "module": module,
        "attr": attr,
        "call": call,
        "args": list(factory_args),
        "kwargs": dict(factory_kwargs or {}),
        "path": list(sys.path),
        "cwd": os.getcwd(),
        "roots": [os.path.join(os.path.realpath(r), "") for r in roots],
    }
    with tempfile.TemporaryDirectory(prefix="hotmod-probe-") as folder:
        request["out"] = os.path.join(folder, "result.json")
        try:
            payload = json.dumps(request)
        except (TypeError, ValueError):
            # Factory arguments JSON cannot carry: the module and the attribute are
            # still checked, the factory is not called.
            request.update(call=False, args=[], kwargs={})
            payload = json.dumps(request)
        env = dict(os.environ)
        env[CHILD_ENV] = "1"
        try:
            # -P: the script's folder (this package) is not put on the child's path.
            child = subprocess.Popen(
                [sys.executable, "-P", os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            return ProbeResult(None, time.monotonic() - started, detail=f"could not start: {exc}")
        if started_child is not None:
            started_child(child)
        try:
            child.communicate(payload.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            return ProbeResult(None, time.monotonic() - started, detail=f"no answer within {timeout:.0f} s")
        except (OSError, ValueError):  # killed by stop() while writing its request
            child.wait()
        try:
            with open(request["out"], encoding="utf-8") as answer:
                result = json.load(answer)
        except (OSError, ValueError):
            return ProbeResult(None, time.monotonic() - started, detail="it ended without an answer")
    return ProbeResult(
        loads=bool(result["ok"]),
        seconds=time.monotonic() - started,
        failure=result.get("failure"),
        files=dict(result.get("files", {})),
    )


@dataclass
class Job:
    """What a probe is to answer: whether the tree that failed in-process with
    ``failure`` loads in a fresh process, and/or whether a fresh process imports the
    ``new_files`` (new module files nothing here imported)."""

    failure: Any = None
    new_files: frozenset[str] = frozenset()

    def merge(self, newer: Job) -> Job:
        # The newest failure is the one that counts; new files add up.
        return Job(newer.failure or self.failure, self.new_files | newer.new_files)


class Prober:
    """Runs probes one at a time on a thread of its own, never on the reload path:
    requests that come while one runs are merged into the next. ``run()`` makes a
    :class:`ProbeResult`; ``decide(job, result)`` acts on it."""

    def __init__(
        self,
        run: Callable[[Callable[[subprocess.Popen[bytes]], None]], ProbeResult],
        decide: Callable[[Job, ProbeResult], None],
        *,
        name: str,
    ) -> None:
        self._run = run
        self._decide = decide
        self._name = name
        self._lock = threading.Lock()  # guards the fields below
        self._pending: Job | None = None
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._closed = False
        self.idle = threading.Event()
        self.idle.set()

    def request(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending = job if self._pending is None else self._pending.merge(job)
            if self._thread is not None:
                return  # the running thread takes it next
            self.idle.clear()
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None or self._closed:
                    self._thread = None
                    self.idle.set()
                    return
            try:
                result = self._run(self._started)
                self._decide(job, result)
            except Exception:  # a probe must never take the engine down with it
                log.exception("the fresh-process probe failed")
            finally:
                with self._lock:
                    self._child = None

    def _started(self, child: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._child = child
            closed = self._closed
        if closed:
            child.kill()

    def close(self, timeout: float = 5.0) -> None:
        """Stop: the running probe's child is killed, its thread joined."""
        with self._lock:
            self._closed = True
            self._pending = None
            child, thread = self._child, self._thread
        if child is not None:
            child.kill()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork(self) -> None:
        """In a forked child: the parent's probe thread does not exist here."""
        self._lock = threading.Lock()
        self._pending, self._thread, self._child = None, None, None
        self.idle = threading.Event()
        self.idle.set()


# -- the child ------------------------------------------------------------------------


def _child() -> None:
    request = json.loads(sys.stdin.read())
    os.chdir(request["cwd"])
    sys.path[:] = request["path"]
    roots = tuple(request["roots"])
    try:
        result: dict[str, Any] = {"ok": True}
        _load(request)
    except BaseException as exc:  # every failure is the answer
        result = {"ok": False, "failure": _describe(exc, roots)}
    result["files"] = _files_in(roots)
    with open(request["out"], "w", encoding="utf-8") as out:
        json.dump(result, out)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _load(request: Mapping[str, Any]) -> None:
    obj: Any = importlib.import_module(request["module"])
    for part in request["attr"].split("."):
        obj = getattr(obj, part)
    if request["call"]:
        obj = obj(*request["args"], **request["kwargs"])
    if not callable(obj):
        raise TypeError(f"{request['module']}:{request['attr']} is not callable")


def _describe(exc: BaseException, roots: tuple[str, ...]) -> dict[str, Any]:
    file = line = None
    if isinstance(exc, SyntaxError) and exc.filename:
        file, line = exc.filename, exc.lineno
    else:
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if os.path.realpath(frame.f_code.co_filename).startswith(roots):
                file, line = frame.f_code.co_filename, lineno
    message = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    # Where it went, frame by frame, without the text of any line: the parent shows
    # the lines of the roots' files itself, and no other file's.
    frames = [
        f'  File "{frame.f_code.co_filename}", line {lineno}, in {frame.f_code.co_name}\n'
        for frame, lineno in traceback.walk_tb(exc.__traceback__)
    ]
    text = "Traceback (in a fresh process):\n" + "".join(frames[1:]) + f"{type(exc).__name__}: {message}\n"
    return {"type": type(exc).__name__, "message": message, "file": file, "line": line, "traceback": text}


def _files_in(roots: tuple[str, ...]) -> dict[str, str]:
    files = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            real = os.path.realpath(path)
            if real.startswith(roots):
                files[real] = name
    return files


if __name__ == "__main__":
    _child()
