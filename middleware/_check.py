"""``hotmod check``: read modules, without running them, for the hook mistakes that
leak silently.

A reload runs a module's code again in a fresh, empty module object. Whatever that
code creates at module level (a connection, a pool, a thread, a file) is created
again on every reload, unless a guard (``if "pool" not in globals():``) finds it
handed over by ``__mp_clone__``; and whatever is never handed over must be closed by
``__mp_purge__``. Registrations with something process-wide (``logger.addHandler``,
``atexit.register``, ``signal.signal``) pile up the same way. This module reads the
syntax tree of each file and warns, with file and line, where that contract is
broken. It is a reading aid with known blind spots (it follows calls to functions
of the same module only, and knows resources by the names of common library calls),
never a proof; a ``# hotmod: ignore`` comment silences the line it is on.

Nothing here imports or executes the modules it reads.
"""

from __future__ import annotations

import ast
import builtins
import errno
import io
import os
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from ..reloader import excluded_folder

__all__ = ["CheckReport", "Finding", "check_paths", "check_source", "python_files"]

#: The comment that silences the findings on its line.
IGNORE_COMMENT = "hotmod: ignore"

CLONE = "__mp_clone__"
PURGE = "__mp_purge__"


@dataclass(frozen=True, order=True)
class Finding:
    """One warning: where, and a sentence that says what is wrong and what to do."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class CheckReport:
    """The files read and what was found in them, in file then line order."""

    files: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def clean(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        count = len(self.files)
        checked = f"{count} file{'s' if count != 1 else ''} checked"
        if self.clean:
            return f"hotmod check: {checked}, no warnings"
        with_findings = len({f.path for f in self.findings})
        total = len(self.findings)
        return (
            f"hotmod check: {total} warning{'s' if total != 1 else ''} in {with_findings}"
            f" file{'s' if with_findings != 1 else ''} ({checked})"
        )


def check_paths(paths: Iterable[str | os.PathLike[str]]) -> CheckReport:
    """Check every Python file named by ``paths`` (folders are walked recursively,
    skipping the folders hotmod never loads from: ``.venv``, ``__pycache__``, ``.git``
    and the like). Raises :class:`FileNotFoundError` for a path that does not exist."""
    files = python_files(paths)
    findings: list[Finding] = []
    for path in files:
        findings.extend(check_file(path))
    return CheckReport(tuple(files), tuple(findings))


def python_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The files to check: files named explicitly (whatever their extension), then the
    ``.py`` files under each folder, each real file once, as the path it was found by."""
    found: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(path)

    for given in paths:
        path = os.fspath(given)
        if os.path.isdir(path):
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(
                    d for d in subfolders
                    if not excluded_folder(os.path.join(folder, d))
                )
                for name in sorted(names):
                    if name.endswith(".py"):
                        add(os.path.join(folder, name))
        elif os.path.exists(path):
            add(path)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", path)
    return found


def check_file(path: str) -> list[Finding]:
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        return [Finding(path, 1, f"cannot be read: {exc.strerror or exc}")]
    return check_source(source, path)


def check_source(source: str | bytes, path: str = "<string>") -> list[Finding]:
    """The findings for one module's source (bytes honour a coding cookie)."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [Finding(path, exc.lineno or 1, f"SyntaxError: {exc.msg}")]
    except ValueError as exc:  # null bytes, on Python 3.11
        return [Finding(path, 1, f"SyntaxError: {exc}")]
    findings = _Module(tree).findings()
    ignored = _ignored_lines(source)
    return sorted(
        {Finding(path, line, message) for line, message in findings if line not in ignored}
    )


def _ignored_lines(source: str | bytes) -> set[int]:
    """Lines holding a ``# hotmod: ignore`` comment (comments only, never strings)."""
    if isinstance(source, bytes):
        readline = io.BytesIO(source).readline
        tokens = tokenize.tokenize(readline)
    else:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    lines: set[int] = set()
    try:
        for token in tokens:
            if token.type == tokenize.COMMENT and IGNORE_COMMENT in token.string:
                lines.add(token.start[0])
    except (tokenize.TokenError, SyntaxError):
        pass  # the file parsed; an odd tail the tokenizer dislikes only ends the scan early
    return lines


# -- what counts as a resource -----------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """One kind of thing module-level code may create or register."""

    noun: str  # "connection pool"
    verb: str  # what the code does to get one: "opens"
    release: str  # what __mp_purge__ should do with it
    #: What running it again does, when not the usual "opens another connection pool
    #: each time"; such a phrase says itself what becomes of the old one.
    repeat: str = ""
    #: The one fix to suggest, when it is not the guard and the hooks.
    advice: str = ""

    @property
    def again(self) -> str:
        return self.repeat or f"{self.verb} another {self.noun} each time"


_CONNECTION = _Kind("connection", "opens", "close it")
_POOL = _Kind("connection pool", "opens", "close it")
_ENGINE = _Kind("database engine with its pool", "creates", "dispose of it")
_EXECUTOR = _Kind("thread pool", "starts", "shut it down")
_SOCKET = _Kind("socket", "opens", "close it")
_FILE = _Kind("open file", "keeps", "close it")
_THREAD = _Kind("thread", "starts", "stop it (set an Event it checks, then join it)")
_SCHEDULER = _Kind("scheduler", "starts", "shut it down")
_HANDLER = _Kind("logging handler", "adds", "remove it with removeHandler()")
_EXIT = _Kind(
    "exit handler",
    "registers",
    "unregister it with atexit.unregister()",
    repeat="registers another exit handler each time, and each one keeps its instance alive",
    advice="do that cleanup in __mp_purge__() instead, which hotmod runs at shutdown",
)
_SIGNAL = _Kind(
    "signal handler",
    "installs",
    "put the previous handler back",
    repeat="installs this instance's function as the handler each time (one that calls the"
    " previous handler chains every old instance and keeps them all alive)",
)
_JOB = _Kind("scheduled job", "adds", "cancel it")

_POOL_CLASSES = frozenset({
    "ConnectionPool", "AsyncConnectionPool", "NullConnectionPool", "AsyncNullConnectionPool",
    "SimpleConnectionPool", "ThreadedConnectionPool", "PersistentConnectionPool",
})
_EXECUTOR_CLASSES = frozenset({"ThreadPoolExecutor", "ProcessPoolExecutor"})
_ENGINE_FACTORIES = frozenset({"create_engine", "create_async_engine"})
_THREAD_CLASSES = frozenset({"Thread", "Timer"})
_SCHEDULER_CLASSES = frozenset({
    "BackgroundScheduler", "AsyncIOScheduler", "GeventScheduler", "TornadoScheduler",
    "TwistedScheduler", "QtScheduler",
})
_SOCKET_CALLS = frozenset({
    "socket.socket", "socket.create_connection", "socket.create_server", "socket.socketpair",
    "socket.fromfd",
})
_FILE_CALLS = frozenset({"io.open", "codecs.open", "os.open", "os.fdopen"})


@dataclass(frozen=True)
class _Site:
    """A place in module-level code that creates or registers something."""

    line: int
    kind: _Kind
    subject: str  # "ConnectionPool(...)", "worker.start()", "_open()"
    via: str  # " (it calls sqlite3.connect(...) at line 12)" for a local function
    name: str | None  # the global the thing is kept in, when there is one
    around: _Around


@dataclass(frozen=True)
class _Guard:
    name: str
    line: int


@dataclass(frozen=True)
class _Around:
    """What encloses a statement: the innermost ``"name" not in globals()`` guard, and
    whether an ``if`` on a logger's ``.handlers`` does (``if not log.handlers:``: the
    logger, not the module, remembers that the handler is there)."""

    guard: _Guard | None = None
    handlers_checked: bool = False


_TOP = _Around()


@dataclass
class _Clone:
    """What ``__mp_clone__`` hands over, as far as the source says."""

    line: int
    copies: dict[str, int] = field(default_factory=dict)  # name → first line
    reads: dict[str, int] = field(default_factory=dict)  # global names its values read
    wholesale: bool = False  # copies names the source does not spell out


class _Module:
    """The facts of one module's syntax tree, and the findings they lead to."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.aliases: dict[str, str] = {}  # local name → dotted name it was imported as
        self.module_names: set[str] = set()  # local names bound by ``import x``
        self._collect_imports()
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.defined: set[str] = set()
        self.dynamic = False  # star imports or writes through globals(): names unknown
        self.looked_up: set[str] = set()  # names read by string: globals().pop("x")
        self._collect_definitions(tree.body)
        self._collect_globals_of_functions()
        self._summaries: dict[str, tuple[_Kind, str, int] | None] = {}
        self.guards: list[_Guard] = []

    # -- facts ------------------------------------------------------------------

    def _collect_imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                        self.module_names.add(alias.asname)
                    else:
                        top = alias.name.partition(".")[0]
                        self.aliases[top] = top
                        self.module_names.add(top)
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name != "*":
                        self.aliases[alias.asname or alias.name] = f"{base}.{alias.name}"

    def _collect_definitions(self, body: Sequence[ast.stmt]) -> None:
        for stmt in _module_level(body):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defined.add(stmt.name)
                self.functions[stmt.name] = stmt
            elif isinstance(stmt, ast.ClassDef):
                self.defined.add(stmt.name)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for alias in stmt.names:
                    if alias.name == "*":
                        self.dynamic = True
                    else:
                        self.defined.add((alias.asname or alias.name).partition(".")[0])
            elif isinstance(stmt, (ast.Try, ast.TryStar)):
                self.defined.update(h.name for h in stmt.handlers if h.name)
            for node in _expressions_of(stmt):
                for sub in _walk_expression(node):
                    if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                        self.defined.add(sub.id)
                    elif isinstance(sub, ast.Call) and _writes_globals(sub):
                        self.dynamic = True
                    elif isinstance(sub, ast.Subscript) and isinstance(sub.ctx, ast.Store):
                        if _is_call_to(sub.value, "globals"):
                            self.dynamic = True
            if isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    for sub in ast.walk(case.pattern):
                        name = getattr(sub, "name", None) or getattr(sub, "rest", None)
                        if isinstance(name, str):
                            self.defined.add(name)

    def _collect_globals_of_functions(self) -> None:
        """A ``global x`` in any function may bind ``x`` at module level; a string
        looked up in ``globals()`` (``globals().pop("x", {})``) names what the code
        expects a clone to have put there."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Global):
                self.defined.update(node.names)
            elif isinstance(node, ast.Call) and _writes_globals(node):
                self.dynamic = True
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("get", "pop") and _is_call_to(node.func.value, "globals"):
                    key = _string(node.args[0]) if node.args else None
                    if key is not None:
                        self.looked_up.add(key)
            elif isinstance(node, ast.Subscript) and _is_call_to(node.value, "globals"):
                key = _string(node.slice)
                if key is not None:
                    self.looked_up.add(key)

    def qualified(self, node: ast.expr) -> str | None:
        """``sqlite3.connect`` for ``sqlite3.connect``, ``socket.socket`` for a
        ``socket`` imported with ``from socket import socket``; None for calls."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        return None

    def _from_a_module(self, func: ast.expr) -> bool:
        """Whether ``func`` is a function reached through an imported module
        (``sqlite3.connect``, or ``connect`` from ``from sqlite3 import connect``),
        not a method of some object (``signal.connect`` of a blinker signal)."""
        if isinstance(func, ast.Name):
            return func.id in self.aliases and func.id not in self.module_names
        root = func
        while isinstance(root, ast.Attribute):
            root = root.value
        return isinstance(root, ast.Name) and root.id in self.module_names

    def kind_of(self, call: ast.Call) -> _Kind | None:
        """The kind of resource ``call`` creates or registers, if it is one."""
        func = call.func
        last = _last_name(func)
        if last is None:
            return None
        qualified = self.qualified(func) or ""
        if last in _POOL_CLASSES:
            return _POOL
        if last in _EXECUTOR_CLASSES:
            return _EXECUTOR
        if last in _ENGINE_FACTORIES:
            return _ENGINE
        if last == "connect" and self._from_a_module(func):
            return _CONNECTION
        if qualified in _SOCKET_CALLS:
            return _SOCKET
        if qualified in _FILE_CALLS or (isinstance(func, ast.Name) and func.id == "open"
                                         and "open" not in self.aliases):
            return _FILE
        if last == "addHandler":
            return _HANDLER
        if qualified == "atexit.register":
            return _EXIT
        if qualified == "signal.signal":
            return _SIGNAL
        if qualified == "schedule.every":
            return _JOB
        return None

    def starter_kind(self, call: ast.Call) -> _Kind | None:
        """Things that only run once ``.start()`` is called on them."""
        last = _last_name(call.func)
        if last in _THREAD_CLASSES:
            return _THREAD
        if last in _SCHEDULER_CLASSES:
            return _SCHEDULER
        return None

    # -- sites ------------------------------------------------------------------

    def sites_in(
        self, body: Sequence[ast.stmt], *, module_level: bool, visiting: frozenset[str] = frozenset()
    ) -> Iterator[_Site]:
        """What ``body`` creates or registers when it runs. At module level, each site
        carries the innermost guard around it."""
        starters: dict[str, _Kind] = {}  # names assigned a Thread/scheduler in this body
        for stmt, around in _statements_with_guards(body, _TOP, self.guards if module_level else None):
            name = _assigned_name(stmt)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                # A definition runs its decorators (and a class its bases) on import.
                evaluated: list[ast.expr] = list(stmt.decorator_list)
                if isinstance(stmt, ast.ClassDef):
                    evaluated += [*stmt.bases, *(k.value for k in stmt.keywords)]
                for decorator in stmt.decorator_list:
                    if self.qualified(decorator) == "atexit.register":
                        yield _Site(decorator.lineno, _EXIT, "@atexit.register", "", None, around)
                expressions: Iterable[ast.expr] = evaluated
            else:
                expressions = _expressions_of(stmt)
            for call in _calls(expressions):
                kind = self.kind_of(call)
                subject = f"{_short(call.func)}(...)"
                if kind is not None:
                    site_name = name or _registered_name(call, kind)
                    yield _Site(call.lineno, kind, subject, "", site_name, around)
                    continue
                starter = self.starter_kind(call)
                if starter is not None and name is not None:
                    starters[name] = starter
                    continue
                func = call.func
                if isinstance(func, ast.Attribute) and func.attr == "start":
                    receiver = func.value
                    if isinstance(receiver, ast.Call) and (kind := self.starter_kind(receiver)):
                        yield _Site(call.lineno, kind, f"{_short(receiver.func)}(...).start()", "",
                                    None, around)
                    elif isinstance(receiver, ast.Name) and receiver.id in starters:
                        yield _Site(call.lineno, starters[receiver.id], f"{receiver.id}.start()", "",
                                    receiver.id, around)
                    continue
                if isinstance(func, ast.Name) and func.id in self.functions and func.id not in visiting:
                    found = self.summary(func.id, visiting)
                    if found is not None:
                        kind, inner, line = found
                        yield _Site(call.lineno, kind, f"{func.id}()", f" (it calls {inner} at line {line})",
                                    name, around)

    def summary(self, function: str, visiting: frozenset[str]) -> tuple[_Kind, str, int] | None:
        """The first thing a function of this module creates or registers when called."""
        if function in self._summaries:
            return self._summaries[function]
        node = self.functions[function]
        sites = self.sites_in(node.body, module_level=False, visiting=visiting | {function})
        first = next((s for s in sites if not _checked_by_logger(s)), None)
        found = (first.kind, first.subject, first.line) if first is not None else None
        self._summaries[function] = found
        return found

    # -- findings -----------------------------------------------------------------

    def findings(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        hooks = self._hooks()
        out.extend(self._hook_signatures(hooks))
        clone = self._clone(hooks) if CLONE in hooks else None
        if clone is not None:
            out.extend(self._clone_names(clone))
        sites = list(self.sites_in(self.tree.body, module_level=True))
        for site in sites:
            message = self._site_message(site, clone, PURGE in hooks)
            if message:
                out.append((site.line, message))
        if not self.dynamic:
            reported = {site.around.guard for site in sites}
            for guard in self.guards:
                if guard.name not in self.defined and guard not in reported:
                    out.append((guard.line, (
                        f'the guard \'if "{guard.name}" not in globals():\' tests a name this module'
                        f" never assigns (a typo?), so its block runs again on every reload:"
                        " test the name the block assigns"
                    )))
        return out

    def _hooks(self) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef | None]:
        """The hooks this module defines (None: defined, but not by a ``def``)."""
        hooks: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | None] = {}
        for name in (CLONE, PURGE):
            if name in self.functions:
                hooks[name] = self.functions[name]
            elif name in self.defined:
                hooks[name] = None
        return hooks

    def _hook_signatures(
        self, hooks: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | None]
    ) -> Iterator[tuple[int, str]]:
        for name, node in hooks.items():
            if node is None:
                continue
            if isinstance(node, ast.AsyncFunctionDef):
                if name == CLONE:
                    yield node.lineno, (
                        f"{CLONE} is async: clone runs on the reloading thread, off any event loop,"
                        " before the new code; hotmod refuses it and hands nothing over; make it a"
                        f" plain def that only copies references (an async {PURGE} is fine)"
                    )
                    continue
                # An async __mp_purge__ is awaited: on the server's event loop under the
                # ASGI middleware, else in a loop of its own (docs/hooks.md).
            args = node.args
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            required = positional[: len(positional) - len(args.defaults)]
            required_keywords = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                                 if d is None]
            if name == CLONE:
                if not positional and args.vararg is None:
                    yield node.lineno, (
                        f"{CLONE} takes no parameter, but hotmod calls {CLONE}(new_module): it raises"
                        " TypeError and nothing is handed over; give it one parameter, the new module"
                    )
                extra = [a.arg for a in required[1:]] + required_keywords
                if extra:
                    yield node.lineno, (
                        f'{CLONE} has a required parameter "{extra[0]}" besides the new module, but'
                        f" hotmod passes only the module: it raises TypeError and nothing is handed"
                        f' over; give "{extra[0]}" a default or drop it'
                    )
            else:
                extra = [a.arg for a in required[1:]] + required_keywords
                if extra:
                    yield node.lineno, (
                        f'{PURGE} has a required parameter "{extra[0]}" other than the module, but'
                        f" hotmod calls {PURGE}() (or {PURGE}(module) when it takes exactly one):"
                        f' it raises TypeError and nothing is closed; give "{extra[0]}" a default or'
                        " drop it"
                    )

    def _clone(self, hooks: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | None]) -> _Clone:
        node = hooks[CLONE]
        if node is None:
            return _Clone(line=0, wholesale=True)
        clone = _Clone(line=node.lineno)
        positional = [*node.args.posonlyargs, *node.args.args]
        if not positional:
            clone.wholesale = True  # a broken signature: reported on its own
            return clone
        param = positional[0].arg
        local = _local_names(node)
        for sub in _walk_function_body(node):
            if isinstance(sub, ast.Name) and sub.id == param and isinstance(sub.ctx, ast.Load):
                if not _is_known_use(sub, node):
                    clone.wholesale = True
            if isinstance(sub, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                for target in targets:
                    copied = _copied_name(target, param)
                    if copied is not None:
                        clone.copies.setdefault(copied, target.lineno)
                        if sub.value is not None:
                            self._note_reads(clone, sub.value, local)
            elif isinstance(sub, ast.Call):
                self._note_call_in_clone(clone, sub, param, local)
        return clone

    def _note_call_in_clone(self, clone: _Clone, call: ast.Call, param: str, local: set[str]) -> None:
        func = call.func
        if _is_name(func, "setattr") and call.args and _is_name(call.args[0], param):
            key = call.args[1] if len(call.args) > 1 else None
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                clone.copies.setdefault(key.value, call.lineno)
                if len(call.args) > 2:
                    self._note_reads(clone, call.args[2], local)
            else:
                clone.wholesale = True
        elif (isinstance(func, ast.Attribute) and func.attr in ("update", "setdefault")
              and _is_namespace_of(func.value, param)):
            if func.attr == "setdefault":
                key = call.args[0] if call.args else None
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    clone.copies.setdefault(key.value, call.lineno)
                else:
                    clone.wholesale = True
                for value in call.args[1:]:
                    self._note_reads(clone, value, local)
                return
            for keyword in call.keywords:
                if keyword.arg is None:
                    clone.wholesale = True
                else:
                    clone.copies.setdefault(keyword.arg, call.lineno)
                    self._note_reads(clone, keyword.value, local)
            for arg in call.args:
                keys = [_string(k) for k in arg.keys] if isinstance(arg, ast.Dict) else [None]
                if None in keys or not isinstance(arg, ast.Dict):
                    clone.wholesale = True
                    continue
                for text, value in zip(keys, arg.values, strict=True):
                    clone.copies.setdefault(str(text), call.lineno)
                    self._note_reads(clone, value, local)

    def _note_reads(self, clone: _Clone, value: ast.expr, local: set[str]) -> None:
        for sub in _walk_expression(value):
            if (isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in local
                    and not hasattr(builtins, sub.id)):
                clone.reads.setdefault(sub.id, sub.lineno)

    def _clone_names(self, clone: _Clone) -> Iterator[tuple[int, str]]:
        if self.dynamic:
            return
        reported: set[tuple[str, int]] = set()
        for name, line in clone.copies.items():
            if name not in self.defined and name not in self.looked_up:
                reported.add((name, line))
                yield line, (
                    f'{CLONE} hands over "{name}", which this module never defines (a typo?): the'
                    f" new code never looks for it; hand over the name the module assigns"
                )
        for name, line in clone.reads.items():
            if name not in self.defined and (name, line) not in reported:
                yield line, (
                    f'{CLONE} reads "{name}", which this module never defines: the clone raises'
                    f" NameError and nothing is handed over; use the name the module assigns"
                )

    def _site_message(self, site: _Site, clone: _Clone | None, has_purge: bool) -> str | None:
        kind = site.kind
        if _checked_by_logger(site):
            return None
        guard = site.around.guard
        what = f"{site.subject}{site.via} at module level"
        name = site.name
        if guard is not None and clone is not None and (clone.wholesale or guard.name in clone.copies):
            if has_purge:
                return None
            return (
                f"{what} {kind.verb} {_a(kind.noun)} that {CLONE} hands over, but there is no"
                f" {PURGE}: nothing releases it at shutdown, after a failed clone or when the"
                f" file is deleted; define {PURGE}() and {kind.release} there"
            )
        fixes: list[str] = []
        if guard is None:
            problem = "runs again on every reload"
            fixes.append(
                f"guard it with 'if \"{name}\" not in globals():'" if name
                else "keep it in a global and guard it with 'if \"NAME\" not in globals():'"
            )
            if clone is not None and not clone.wholesale and name not in clone.copies:
                fixes.append(f'hand "{name}" over in {CLONE}' if name else f"hand it over in {CLONE}")
        elif guard.name not in self.defined and not self.dynamic:
            problem = (
                f"is guarded by 'if \"{guard.name}\" not in globals():', a name this module never"
                " assigns (a typo?), so the guard is true on every reload"
            )
            fixes.append(f'test "{name}" in the guard' if name else "test the name the block assigns")
        elif clone is not None:
            problem = (
                f"is guarded by 'if \"{guard.name}\" not in globals():', but {CLONE} does not hand"
                f' "{guard.name}" over, so the guard is true on every reload'
            )
            fixes.append(f'hand "{guard.name}" over in {CLONE}')
        else:
            problem = (
                "runs again on every reload, since a new instance starts empty and its guard never skips it"
            )
        if clone is None:
            fixes.append(f'hand "{name}" to the new instance in {CLONE}(module)' if name
                         else f"hand it to the new instance in {CLONE}(module)")
        if not has_purge:
            fixes.append(f"{kind.release} in {PURGE}()")
        # Without a clone the old instance is purged once drained; with one that did not
        # carry this, the old instance counts as handed over and is never purged.
        consequence = f"it {kind.again}"
        if (clone is not None or not has_purge) and not kind.repeat:
            consequence += " and never releases the old one"
        return f"{what} {problem}: {consequence}; {kind.advice or ', '.join(fixes)}"


# -- walking the tree ---------------------------------------------------------------


def _module_level(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported, through every block except
    function and class bodies."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for child in _child_bodies(stmt):
            yield from _module_level(child)


def _child_bodies(stmt: ast.stmt) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        block = getattr(stmt, name, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield block
    for handler in getattr(stmt, "handlers", ()):
        yield handler.body
    for case in getattr(stmt, "cases", ()):
        yield case.body


def _statements_with_guards(
    body: Sequence[ast.stmt], around: _Around, guards: list[_Guard] | None
) -> Iterator[tuple[ast.stmt, _Around]]:
    """Each statement that runs when ``body`` runs (class bodies included, function
    bodies not), with what encloses it. ``if __name__ == "__main__":`` and
    ``if TYPE_CHECKING:`` blocks never run on import. Guards found are appended to
    ``guards`` when it is given."""
    for stmt in body:
        yield stmt, around
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(stmt, ast.ClassDef):
            yield from _statements_with_guards(stmt.body, around, guards)
        elif isinstance(stmt, ast.If):
            if _never_runs_on_import(stmt.test):
                yield from _statements_with_guards(stmt.orelse, around, guards)
                continue
            tested = _guard_name(stmt.test)
            body_around = else_around = around
            if tested is not None:
                name, absent = tested
                new = _Guard(name, stmt.lineno)
                if guards is not None:
                    guards.append(new)
                if absent:
                    body_around = replace(around, guard=new)
                else:
                    else_around = replace(around, guard=new)
            elif _reads_handlers(stmt.test):
                body_around = replace(around, handlers_checked=True)
            yield from _statements_with_guards(stmt.body, body_around, guards)
            yield from _statements_with_guards(stmt.orelse, else_around, guards)
        elif isinstance(stmt, (ast.Try, ast.TryStar)):
            probed = _probed_name(stmt)
            yield from _statements_with_guards(stmt.body, around, guards)
            for handler in stmt.handlers:
                handler_around = around
                if probed is not None and _catches_name_error(handler):
                    handler_around = replace(around, guard=_Guard(probed, stmt.lineno))
                yield from _statements_with_guards(handler.body, handler_around, guards)
            yield from _statements_with_guards(stmt.orelse, around, guards)
            yield from _statements_with_guards(stmt.finalbody, around, guards)
        else:
            for child in _child_bodies(stmt):
                yield from _statements_with_guards(child, around, guards)


def _checked_by_logger(site: _Site) -> bool:
    """``if not log.handlers: log.addHandler(...)``: added once per process."""
    return site.kind is _HANDLER and site.around.handlers_checked


def _reads_handlers(test: ast.expr) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "handlers" for n in ast.walk(test))


def _expressions_of(stmt: ast.stmt) -> list[ast.expr]:
    """The expressions a statement evaluates itself (not those of nested blocks, and
    not the context managers of a ``with``: what they open, they close)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return []
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return [item.optional_vars for item in stmt.items if item.optional_vars is not None]
    out: list[ast.expr] = []
    for name, value in ast.iter_fields(stmt):
        if name in ("body", "orelse", "finalbody", "handlers", "cases"):
            continue
        if isinstance(value, ast.expr):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.expr))
    return out


def _walk_expression(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` that stays out of lambdas: their bodies run later, if ever."""
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if not isinstance(child, ast.Lambda):
                todo.append(child)


def _calls(expressions: Iterable[ast.expr]) -> Iterator[ast.Call]:
    """The calls in ``expressions`` in source order, without those whose result is
    only the receiver of a method call: ``connect(...).close()`` and
    ``open(path).read()`` keep nothing (``.start()`` is looked at by the caller)."""
    temporary: set[int] = set()
    found: list[ast.Call] = []
    for expression in expressions:
        for node in _walk_expression(expression):
            if isinstance(node, ast.Call):
                found.append(node)
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr != "start":
                    temporary.add(id(func.value))
    for call in sorted(found, key=lambda c: (c.lineno, c.col_offset)):
        if id(call) not in temporary:
            yield call


def _walk_function_body(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """Every node of a function's body, without nested functions, classes and lambdas."""
    todo: list[ast.AST] = list(node.body)
    while todo:
        current = todo.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                todo.append(child)


def _local_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function binds for itself: parameters and assignments not declared global."""
    args = node.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    declared: set[str] = set()
    for sub in _walk_function_body(node):
        if isinstance(sub, ast.Global):
            declared.update(sub.names)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).partition(".")[0] for a in sub.names)
        elif isinstance(sub, (ast.comprehension,)):
            names.update(n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name))
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return names - declared


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _last_name(func: ast.expr) -> str | None:
    """``connect`` for ``sqlite3.connect`` and for ``connect``."""
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_call_to(node: ast.AST, function: str) -> bool:
    return isinstance(node, ast.Call) and _is_name(node.func, function)


def _is_namespace_of(node: ast.AST, param: str) -> bool:
    """``vars(module)`` or ``module.__dict__``."""
    if isinstance(node, ast.Call) and _is_name(node.func, "vars"):
        return len(node.args) == 1 and _is_name(node.args[0], param)
    return isinstance(node, ast.Attribute) and node.attr == "__dict__" and _is_name(node.value, param)


def _copied_name(target: ast.AST, param: str) -> str | None:
    """The name an assignment target sets on the new module: ``module.x`` or
    ``vars(module)["x"]`` give ``x``."""
    if isinstance(target, ast.Attribute) and _is_name(target.value, param):
        return target.attr if target.attr != "__dict__" else None
    if isinstance(target, ast.Subscript) and _is_namespace_of(target.value, param):
        key = target.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
    return None


def _is_known_use(name: ast.Name, function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a use of the clone's parameter is one the analysis understands: an
    attribute of it (read or set), ``vars(module)``, ``setattr``/``getattr``/
    ``hasattr``/``isinstance`` with it. Anything else (passing it to a helper) may set
    any name on it."""
    parent = _parent_of(name, function)
    if isinstance(parent, ast.Attribute):
        return True
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name):
        if parent.func.id in ("vars", "getattr", "hasattr", "isinstance", "id", "repr", "str", "type"):
            return True
        if parent.func.id == "setattr":
            return True  # constant names are read by the caller, others make it wholesale
    return False


def _parent_of(target: ast.AST, root: ast.AST) -> ast.AST | None:
    for node in ast.walk(root):
        for child in ast.iter_child_nodes(node):
            if child is target:
                return node
    return None


def _writes_globals(call: ast.Call) -> bool:
    """``globals().update(...)``, ``globals().setdefault(...)``, ``vars().update(...)``."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in ("update", "setdefault")
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id in ("globals", "vars")
        and not func.value.args
    )


def _guard_name(test: ast.expr) -> tuple[str, bool] | None:
    """For ``"x" not in globals()`` (also inside an ``and``): ``("x", True)``; for
    ``"x" in globals()``: ``("x", False)``; else None. ``globals().get("x") is None``
    counts as absent."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        for value in test.values:
            found = _guard_name(value)
            if found is not None and found[1]:
                return found
        return None
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if (isinstance(left, ast.Constant) and isinstance(left.value, str)
            and isinstance(op, (ast.In, ast.NotIn))
            and (_is_call_to(right, "globals") or _is_call_to(right, "vars"))):
        return left.value, isinstance(op, ast.NotIn)
    if (isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value is None
            and isinstance(left, ast.Call) and isinstance(left.func, ast.Attribute)
            and left.func.attr == "get" and _is_call_to(left.func.value, "globals")
            and left.args and isinstance(left.args[0], ast.Constant)
            and isinstance(left.args[0].value, str)):
        return left.args[0].value, True
    return None


def _probed_name(stmt: ast.Try | ast.TryStar) -> str | None:
    """``try: pool`` / ``except NameError: pool = ...``: the old guard idiom."""
    if len(stmt.body) == 1 and isinstance(stmt.body[0], ast.Expr):
        value = stmt.body[0].value
        if isinstance(value, ast.Name):
            return value.id
    return None


def _catches_name_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    if caught is None:
        return True
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    return any(isinstance(n, ast.Name) and n.id in ("NameError", "Exception") for n in names)


def _never_runs_on_import(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (hotmod loads modules under their own name) and
    ``TYPE_CHECKING``."""
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        sides = [test.left, test.comparators[0]]
        return any(_is_name(s, "__name__") for s in sides) and any(
            isinstance(s, ast.Constant) and s.value == "__main__" for s in sides
        )
    return False


def _assigned_name(stmt: ast.stmt) -> str | None:
    """The one global a statement assigns (``pool = ...``, ``pool: Pool = ...``)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id
    return None


def _registered_name(call: ast.Call, kind: _Kind) -> str | None:
    """``logger.addHandler(handler)`` keeps ``handler``: the name to guard and hand over."""
    if kind is _HANDLER and call.args and isinstance(call.args[0], ast.Name):
        return call.args[0].id
    return None


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _short(node: ast.expr) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
