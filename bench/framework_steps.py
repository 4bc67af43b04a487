"""Framework by step: which edit each framework's app takes in-process, which one
restarts the server, and how long each takes to show (issue 11).

For each framework, the app of ``bench/frameworks.py`` (its standard layout, built by
the same ``prepare``) is served by ``hotmod serve TARGET`` with no flags, one server
for all the steps, which run in order:

1. **view**: the text the view returns changes;
2. **routing**: the view's route is renamed: the new URL answers, the old one 404;
3. **template**: a template's text changes (Flask and Pyramid: the other apps have none);
4. **restart-only**: a module the view shows a value of, which hotmod must not swap
   in-process, changes: Django's ``polls/models.py`` (restart-only by name), and for
   the others a module that declares ``__hotmod_restart__ = True``. The view is first
   edited to import it and show its ``LABEL`` (in-process, untimed: a flag counts from
   the instance that is loaded, docs/hooks.md); then ``LABEL`` changes, and the new
   label must be served by a restarted process. Then the **next view edit**, once the
   new process had time to start its watcher;
5. **syntax error**: the debug error page (500 with ``SyntaxError``) is served, then
   **its fix** is served again.

After each edit the step's URL is fetched over a fresh connection every 1 ms until the
expected text (or status) is served; latency runs from the edit landing to that
response. A step is a **restart** when the server's log gained a ``hotmod: serving``
line (``hotmod serve`` restarts with ``execv``: the pid stays), else **in-process**;
a step whose text is not served within the bound **FAILS**. Failed requests: refused
or reset connections, timeouts and 5xx on the way, and in a short window after.
The edits are those of the integration tests where the app is theirs (Flask,
Pyramid, Falcon, plain WSGI), the same kind of edit on the bench's own Django and
Bottle apps; the edited file is restored (and served again) after each step.

Run alone: ``python -m bench.framework_steps [--quick] [--framework NAME]... [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import (
    VENV_BIN,
    Server,
    emit,
    free_port,
    hotmod_cli,
    http_get,
    leaf_pid,
    log,
    machine,
    poll_until,
    save_edit,
    scratch_dir,
)
from bench.frameworks import FRAMEWORKS, AppCopy, Framework, probe_window_at

SERVING_LINE = "hotmod: serving "
RESTART_NEEDED_LINE = "hotmod: restart needed"
SCRATCH_PATH = re.compile(r"\S*/hotmod-bench-framework-steps-[^/]+/[^/]+/")
LABEL_LINE = re.compile(r'^LABEL = "[^"]*"$', re.MULTILINE)
#: A module that is restart-only by its own flag (docs/hooks.md).
RESTART_MODULE = '''"""Read once, at start-up (bench/framework_steps.py): a change needs a restart."""

__hotmod_restart__ = True

'''


@dataclass(frozen=True)
class Edit:
    """One edit of one file: ``old`` (it occurs once) becomes ``new``; ``{n}`` in
    ``new``, ``url`` and ``shows`` is the edit's number."""

    file: str  # relative to the app's folder
    old: str
    new: str
    url: str  # where the edit shows
    shows: str  # what ``url`` serves once the edit is live
    url_before: str  # where the unedited file shows ``shows_before`` (a renamed route: then 404)
    shows_before: str
    status: int = 200  # the status ``url`` answers with ``shows``

    def apply(self, source: str, n: int) -> str:
        if source.count(self.old) != 1:
            raise RuntimeError(f"{self.file} must hold {self.old!r} exactly once")
        return source.replace(self.old, self.new.replace("{n}", str(n)))

    def numbered(self, text: str, n: int) -> str:
        return text.replace("{n}", str(n))


@dataclass(frozen=True)
class Steps:
    """The edits one framework's app takes, besides its view edit (``bench.frameworks``)."""

    baseline: str  # what the framework's view URL serves unedited
    routing: Edit
    syntax: Edit
    restart_module: str  # the restart-only module the view is made to show
    restart_import: str  # the line the view gets to import it
    restart_expr: str  # what replaces ``Framework.original`` in the view: its LABEL
    template: Edit | None = None
    model: Edit | None = None  # a model module's edit (an ORM's models.py), where the app has one


WELCOME = 'Welcome to <span class="font-normal">myproject</span>'
KANT = "~ Immanuel Kant"
DJANGO_INDEX = "Hello, world. You're at the polls index."

STEPS: dict[str, Steps] = {
    "flask": Steps(
        baseline="Hello, World!",
        routing=Edit("flaskr/__init__.py", "@app.route('/hello')", "@app.route('/hi-{n}')",
                     "/hi-{n}", "Hello, World!", "/hello", "Hello, World!"),
        template=Edit("flaskr/templates/blog/index.html", "Posts{% endblock %}",
                      "All posts, edit {n}{% endblock %}", "/", "<h1>All posts, edit {n}</h1>",
                      "/", "<h1>Posts</h1>"),
        syntax=Edit("flaskr/blog.py", "def index():", "def index(:", "/", "SyntaxError",
                    "/", "<h1>Posts</h1>", status=500),
        restart_module="flaskr/bench_restart.py",
        restart_import="from flaskr import bench_restart",
        restart_expr="bench_restart.LABEL",
    ),
    "flask-sqlalchemy": Steps(
        baseline="Inventory",
        routing=Edit("inventory/main/views.py", '@bp.route("/items")', '@bp.route("/things-{n}")',
                     "/things-{n}", "<Item widget>", "/items", "<Item widget>"),
        template=Edit("inventory/templates/main/index.html", "<h1>{{ heading }}</h1>",
                      "<h1>{{ heading }}, edit {n}</h1>", "/", "<h1>Inventory, edit {n}</h1>",
                      "/", "<h1>Inventory</h1>"),
        syntax=Edit("inventory/main/views.py", "def items():", "def items(:", "/items", "SyntaxError",
                    "/items", "<Item widget>", status=500),
        restart_module="inventory/bench_restart.py",
        restart_import="from .. import bench_restart",
        restart_expr="heading=bench_restart.LABEL",
        # db.Model classes: in-process since issue 20 (a fresh db and MetaData with them).
        model=Edit("inventory/models.py", 'return f"<Item {self.name}>"',
                   'return f"<Item {self.name}, edit {n}>"', "/items", "<Item widget, edit {n}>",
                   "/items", "<Item widget>"),
    ),
    "pyramid": Steps(
        baseline=WELCOME,
        routing=Edit("myproject/routes.py", "config.add_route('home', '/')",
                     "config.add_route('home', '/home-{n}')", "/home-{n}", WELCOME, "/", WELCOME),
        template=Edit("myproject/templates/mytemplate.jinja2", "Starter project</span></h1>",
                      "Starter project, edit {n}</span></h1>", "/", "Starter project, edit {n}</span>",
                      "/", "Starter project</span></h1>"),
        syntax=Edit("myproject/views/default.py", "def my_view(request):", "def my_view(request:",
                    "/", "SyntaxError", "/", WELCOME, status=500),
        restart_module="myproject/views/bench_restart.py",
        restart_import="from myproject.views import bench_restart",
        restart_expr="{'project': bench_restart.LABEL}",
    ),
    "django": Steps(
        baseline=DJANGO_INDEX,
        routing=Edit("polls/urls.py", 'path("", views.index, name="index")',
                     'path("index-{n}/", views.index, name="index")', "/polls/index-{n}/", DJANGO_INDEX,
                     "/polls/", DJANGO_INDEX),
        syntax=Edit("polls/views.py", "def index(request):", "def index(request:", "/polls/",
                    "SyntaxError", "/polls/", DJANGO_INDEX, status=500),
        restart_module="polls/models.py",  # startapp's; restart-only by its name
        restart_import="from . import models",
        restart_expr="models.LABEL",
    ),
    "bottle": Steps(
        baseline="Hello World!",
        routing=Edit("app.py", "@app.route('/hello')", "@app.route('/hi-{n}')", "/hi-{n}", "Hello World!",
                     "/hello", "Hello World!"),
        syntax=Edit("app.py", "def hello():", "def hello(:", "/hello", "SyntaxError", "/hello",
                    "Hello World!", status=500),
        restart_module="bench_restart.py",
        restart_import="import bench_restart",
        restart_expr="bench_restart.LABEL",
    ),
    "falcon": Steps(
        baseline=KANT,
        routing=Edit("things/app.py", "app.add_route('/things', ThingsResource())",
                     "app.add_route('/stuff-{n}', ThingsResource())", "/stuff-{n}", KANT, "/things", KANT),
        syntax=Edit("things/resources.py", "def on_get(self, req, resp):", "def on_get(self, req, resp:",
                    "/things", "SyntaxError", "/things", KANT, status=500),
        restart_module="things/bench_restart.py",
        restart_import="from things import bench_restart",
        # The original is the last of implicitly joined literals: join the label with +.
        restart_expr="'' + bench_restart.LABEL",
    ),
    "plain": Steps(
        baseline="home page",
        routing=Edit("plainapp/wsgi.py", "'/': views.home,", "'/home-{n}': views.home,", "/home-{n}",
                     "home page", "/", "home page"),
        syntax=Edit("plainapp/views.py", "def home(environ):", "def home(environ:", "/", "SyntaxError",
                    "/", "home page", status=500),
        restart_module="plainapp/bench_restart.py",
        restart_import="from plainapp import bench_restart",
        restart_expr="bench_restart.LABEL",
    ),
}

#: The table's columns: (step, heading).
COLUMNS = (
    ("view", "view edit"),
    ("routing", "routing edit"),
    ("template", "template edit"),
    ("model", "model edit"),
    ("restart", "restart-only edit"),
    ("after_restart", "next view edit"),
    ("syntax_error", "syntax error page"),
    ("syntax_fix", "its fix"),
    ("broken_restart", "syntax error in a restart-only module"),
    ("broken_restart_fix", "its fix"),
)


@dataclass(frozen=True)
class Settings:
    reps: int  # edits per step; the table shows their median
    edit_timeout: float  # the bound of an in-process step
    restart_timeout: float  # the bound of the restart-only step
    warmup: float  # seconds between "ready" (or a restart) and the next edit
    after: float  # the window after the new text appeared in which failures still count


SETTINGS = {
    "full": Settings(3, 10.0, 30.0, 1.5, 0.3),
    "quick": Settings(1, 10.0, 30.0, 1.5, 0.2),
}


@dataclass(frozen=True)
class Snapshot:
    """What says whether a process restarted, read between edits."""

    serving: int  # "hotmod: serving " lines in the log so far
    restart_needed: int
    pid: int
    generation: int | None  # from /__hotmod__


class StepRun:
    """One framework's app on one ``hotmod serve``, taking the steps in order."""

    def __init__(self, copy: AppCopy, steps: Steps, server: Server, settings: Settings) -> None:
        self.copy = copy
        self.framework: Framework = copy.framework
        self.steps = steps
        self.server = server
        self.settings = settings
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self._originals: dict[str, str] = {}

    # -- files --------------------------------------------------------------------------------

    def path(self, file: str) -> Path:
        return self.copy.root / file

    def original(self, file: str) -> str:
        if file not in self._originals:
            self._originals[file] = self.path(file).read_text()
        return self._originals[file]

    def write(self, file: str, text: str) -> None:
        self.original(file)
        save_edit(self.path(file), text, atomic=True)

    def restore(self, edit: Edit) -> None:
        """Put ``edit.file`` back as it was and wait (untimed) until it serves again."""
        self.write(edit.file, self.original(edit.file))
        self.settle(edit.url_before, edit.shows_before)

    def settle(self, url: str, needle: str) -> None:
        """Wait, untimed, for ``url`` to serve ``needle``; a note when it never does."""
        result = poll_until(self.server.port, needle.encode(), since=time.perf_counter(),
                            timeout=self.settings.edit_timeout, interval=0.01, path=url)
        if not result.seen:
            self.notes.append(f"{url} did not serve {needle!r} again within "
                              f"{self.settings.edit_timeout:.0f} s (untimed restore)")
            log(f"  {self.framework.key}: {self.notes[-1]}")

    # -- what the server says -------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.server.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def snapshot(self) -> Snapshot:
        text = self.log_text()
        return Snapshot(
            serving=text.count(SERVING_LINE),
            restart_needed=text.count(RESTART_NEEDED_LINE),
            pid=leaf_pid(self.server.pid),
            generation=generation(self.server.port),
        )

    # -- one timed edit -----------------------------------------------------------------------

    def timed(
        self, step: str, rep: int, apply: Callable[[], None], url: str, needle: str, *,
        status: int = 200, timeout: float | None = None, fixes_error_page: bool = False,
    ) -> dict[str, Any]:
        """Apply an edit, then fetch ``url`` every 1 ms until it answers ``status`` with
        ``needle``; the record of that step. With ``fixes_error_page``, the 500s served
        until the fix shows are the error page it replaces, not failed requests."""
        bound = self.settings.edit_timeout if timeout is None else timeout
        record: dict[str, Any] = {"step": step, "rep": rep, "url": url, "expect": needle, "status": status}
        if not self.server.alive():
            record.update(outcome="FAILS: the server had exited", seen=False, latency_ms=None, failed=0,
                          errors={}, log_tail=self.server.log_tail(10))
            self.records.append(record)
            return record
        before = self.snapshot()
        apply()
        since = time.perf_counter()
        port = self.server.port
        if status == 200:
            result = poll_until(port, needle.encode(), since=since, timeout=bound, path=url)
        else:
            result = poll_until(port, needle.encode(), since=since, timeout=bound, path=url, status=status)
        window = (probe_window_at(port, url, needle.encode(), self.settings.after)
                  if result.seen and status == 200 else {})
        after = self.snapshot()
        errors = dict(result.errors)
        if fixes_error_page:
            record["error_page_until_fixed"] = errors.pop("http 500", 0)
        for kind, count in window.items():
            if kind != "stale":
                errors[kind] = errors.get(kind, 0) + count
        restarted = after.serving > before.serving
        record.update(
            seen=result.seen,
            latency_ms=round(result.latency_s * 1000, 2) if result.seen else None,
            failed=sum(errors.values()),
            errors=errors,
            stale_after=window.get("stale", 0),
            restarted=restarted,
            serving_lines=[before.serving, after.serving],
            restart_needed_lines=after.restart_needed - before.restart_needed,
            pid_changed=after.pid != before.pid,
            generation=[before.generation, after.generation],
        )
        if result.seen:
            record["outcome"] = "restart" if restarted else "in-process"
        else:
            why = f"{needle!r} ({status}) not served at {url} within {bound:.0f} s; {answers_now(port, url)}"
            if step == "restart" and not record["restart_needed_lines"]:
                why += "; no 'restart needed' line"
            record["outcome"] = f"FAILS: {why}"
            record["log_tail"] = self.server.log_tail(10)
        shown = f"{result.latency_s * 1000:.1f} ms" if result.seen else "NOT SERVED"
        log(f"  {self.framework.key:8} {step:14} {rep} {record['outcome'][:60]:30} {shown:>10}"
            f" failed={record['failed']}")
        self.records.append(record)
        return record

    def numbered_edit(self, edit: Edit, n: int) -> Callable[[], None]:
        return lambda: self.write(edit.file, edit.apply(self.original(edit.file), n))

    # -- the steps ---------------------------------------------------------------------------

    def view(self, step: str, rep: int) -> None:
        """``AppCopy.edit`` (rename and in-place writes alternate, as in bench.frameworks)."""
        marker = f"bench-edit-{self.copy.edits + 1:05d}"  # the one AppCopy.edit writes next

        def apply() -> None:
            self.copy.edit(atomic=self.copy.edits % 2 == 0)

        self.timed(step, rep, apply, self.framework.url, marker)

    def restore_view(self) -> None:
        save_edit(self.copy.view, self.copy.source, atomic=True)
        self.settle(self.framework.url, self.steps.baseline)

    def routing(self, rep: int) -> None:
        edit = self.steps.routing
        record = self.timed("routing", rep, self.numbered_edit(edit, rep), edit.numbered(edit.url, rep),
                            edit.numbered(edit.shows, rep))
        if record["seen"]:
            # The renamed route's old URL, served by the same generation: 404 at once.
            old = poll_until(self.server.port, b"", since=time.perf_counter(),
                             timeout=self.settings.edit_timeout, path=edit.url_before, status=404)
            record["old_url_404"] = old.seen
            if not old.seen:
                record["old_url_answers"] = answers_now(self.server.port, edit.url_before)

    def template(self, edit: Edit, rep: int) -> None:
        self.timed("template", rep, self.numbered_edit(edit, rep), edit.url, edit.numbered(edit.shows, rep))

    def restart(self, rep: int) -> None:
        """Make the view show the restart-only module's LABEL (in-process, untimed), change
        the LABEL (timed: a restart), then the next view edit (timed: in-process)."""
        steps, module = self.steps, self.steps.restart_module
        path = self.path(module)
        if rep == 1:
            base = path.read_text() + "\n" if path.exists() else RESTART_MODULE
            self._originals[module] = base
            self.write(module, f'{base}LABEL = "bench-restart-000"\n')
        label = LABEL_LINE.search(path.read_text())
        current = label.group(0).split('"')[1] if label else ""
        shows_label = self.copy.source.replace(self.framework.original, steps.restart_expr)
        view = f"{steps.restart_import}\n{shows_label}"
        save_edit(self.copy.view, view, atomic=True)
        self.settle(self.framework.url, current)
        new = f"bench-restart-{rep:03d}"
        text = f'{self.original(module)}LABEL = "{new}"\n'
        self.timed("restart", rep, lambda: self.write(module, text), self.framework.url, new,
                   timeout=self.settings.restart_timeout)
        time.sleep(self.settings.warmup)  # the new process starts its watcher
        self.view("after_restart", rep)
        self.restore_view()

    def broken_restart(self, rep: int) -> None:
        """A syntax error in the restart-only module (issue 20): the restart it makes
        cannot load, and the new process must answer the error page on the kept socket
        (timed until the 500 page with ``SyntaxError``); then its fix, timed until the
        fixed module's label serves."""
        module = self.steps.restart_module
        base = self.original(module)
        shows_label = self.copy.source.replace(self.framework.original, self.steps.restart_expr)
        save_edit(self.copy.view, f"{self.steps.restart_import}\n{shows_label}", atomic=True)
        label = f"bench-broken-{rep:03d}"
        shown = LABEL_LINE.search(self.path(module).read_text())
        self.settle(self.framework.url, shown.group(0).split('"')[1] if shown else "")
        broken = f'{base}LABEL = "{label}"\n\ndef broken(:\n    pass\n'
        self.timed("broken_restart", rep, lambda: self.write(module, broken), self.framework.url,
                   "SyntaxError", status=500, timeout=self.settings.restart_timeout)
        fixed = f'{base}LABEL = "{label}"\n'
        self.timed("broken_restart_fix", rep, lambda: self.write(module, fixed), self.framework.url, label,
                   timeout=self.settings.restart_timeout, fixes_error_page=True)
        time.sleep(self.settings.warmup)  # a restart may have come: its watcher starts
        self.restore_view()

    def syntax(self, rep: int) -> None:
        edit = self.steps.syntax
        self.timed("syntax_error", rep, self.numbered_edit(edit, rep), edit.url, edit.shows,
                   status=edit.status)
        self.timed("syntax_fix", rep, lambda: self.write(edit.file, self.original(edit.file)),
                   edit.url_before, edit.shows_before, fixes_error_page=True)

    def run(self) -> None:
        reps = range(1, self.settings.reps + 1)
        for rep in reps:
            self.view("view", rep)
        self.restore_view()
        for rep in reps:
            self.routing(rep)
        self.restore(self.steps.routing)
        if self.steps.template is not None:
            for rep in reps:
                self.template(self.steps.template, rep)
            self.restore(self.steps.template)
        if self.steps.model is not None:
            for rep in reps:
                self.timed("model", rep, self.numbered_edit(self.steps.model, rep), self.steps.model.url,
                           self.steps.model.numbered(self.steps.model.shows, rep))
            self.restore(self.steps.model)
        for rep in reps:
            self.restart(rep)
        for rep in reps:
            self.syntax(rep)
        for rep in reps:
            self.broken_restart(rep)


def answers_now(port: int, path: str) -> str:
    """What ``path`` answers now, in a few words (for a FAILS cell)."""
    status, body, error = http_get(port, path, timeout=2.0)
    if error:
        return f"it now fails ({error})"
    text = re.sub(r"\s+", " ", re.sub(rb"<[^>]*>", b" ", body).decode(errors="replace")).strip()
    return f"it now answers {status}: {text[:80]!r}"


def generation(port: int) -> int | None:
    """The generation ``/__hotmod__`` reports (debug mode), None without an answer."""
    status, body, _ = http_get(port, "/__hotmod__", timeout=2.0)
    if status != 200:
        return None
    try:
        value = json.loads(body).get("generation")
    except ValueError:
        return None
    return value if isinstance(value, int) else None


def run_framework(key: str, scratch: Path, settings: Settings) -> dict[str, Any]:
    framework = FRAMEWORKS[key]
    copy = AppCopy(framework, scratch / key)
    port = free_port()
    framework.before_start(copy.root, port)
    server = Server(
        name=f"{key}-hotmod",
        argv=[str(VENV_BIN / "hotmod"), "serve", framework.hotmod_target, "--port", str(port)],
        cwd=copy.root, env=copy.env(), port=port, log_path=scratch / f"{key}.log",
    )
    run = StepRun(copy, STEPS[key], server, settings)
    row: dict[str, Any] = {"framework": framework.name, "key": key, "target": framework.hotmod_target}
    try:
        server.start()
        row["ready_s"] = round(server.wait_ready(framework.url, timeout=60.0), 2)
        time.sleep(settings.warmup)  # the watcher's catch-up at start-up
        run.run()
    except RuntimeError as exc:
        row["error"] = str(exc).splitlines()[0]
        run.notes.append(f"failed to serve: {exc}")
        log(f"  {key}: {row['error']}")
    finally:
        server.stop()
        row["hotmod_lines"] = [line for line in run.log_text().splitlines() if line.startswith("hotmod:")]
    row["records"] = run.records
    row["notes"] = run.notes
    row["cells"] = {step: cell(row, step) for step, _ in COLUMNS}
    return row


def duration(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.1f} s"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def cell(row: dict[str, Any], step: str) -> str:
    """``in-process 24 ms``, ``restart 1.9 s, 0 failed``, ``FAILS: ...``, or ``n/a``."""
    records = [r for r in row["records"] if r["step"] == step]
    if not records:
        if step == "template" and STEPS[row["key"]].template is None:
            return "n/a (no templates)"
        if step == "model" and STEPS[row["key"]].model is None:
            return "n/a" if row["key"] != "django" else "see restart-only (models.py)"
        return f"FAILS: {row['error']}" if "error" in row else "-"
    n = len(records)
    failing = [r for r in records if not r["seen"]]
    if failing:
        share = f" ({len(failing)}/{n})" if n > 1 else ""
        return f"{failing[0]['outcome']}{share}"
    outcomes = sorted({r["outcome"] for r in records})
    if len(outcomes) == 1:
        text = outcomes[0]
    else:
        text = ", ".join(f"{o} {sum(r['outcome'] == o for r in records)}/{n}" for o in outcomes)
    text += " " + duration(statistics.median(r["latency_ms"] for r in records))
    failed = sum(r["failed"] for r in records)
    if failed or any(r["outcome"] == "restart" for r in records):
        text += f", {failed} failed"
    stale = sum(r.get("stale_after", 0) for r in records)
    if stale:
        text += f", {stale} stale after"
    old = [r for r in records if r.get("old_url_404") is False]
    if old:
        text += f"; old URL still answers ({old[0]['old_url_answers']})"
    return text


def run(mode: str = "full", *, frameworks: Sequence[str] | None = None) -> dict[str, Any]:
    settings = SETTINGS[mode]
    if hotmod_cli() is None:
        raise RuntimeError("`hotmod serve` is not installed: run `make install`")
    chosen = tuple(frameworks) if frameworks else tuple(STEPS)
    rows = []
    started = machine()
    with scratch_dir("framework-steps") as scratch:
        for key in chosen:
            log(f"framework_steps: {key}, {settings.reps} edit(s) per step")
            rows.append(run_framework(key, scratch, settings))
    return {"mode": mode, "settings": settings.__dict__, "machine": started,
            "loadavg_after": machine()["loadavg"], "rows": rows}


def render(result: dict[str, Any]) -> str:
    s, m = result["settings"], result["machine"]
    per_step = f"the median of {s['reps']} edits per step" if s["reps"] > 1 else "one edit per step"
    lines = [
        "## Framework by step",
        "",
        f"{m['date_utc']}, git {m['git']}, {m['nproc']} CPUs, load average {m['loadavg']} before and "
        f"{result['loadavg_after']} after; mode {result['mode']}.",
        "",
        "Each framework's app as `bench/frameworks.py` builds it, served by `hotmod serve TARGET` with "
        "no flags; one server takes the steps in order. After each edit the step's URL is fetched over "
        "a fresh connection every 1 ms until the expected text (or status) is served; latency from the "
        f"edit landing to that response, {per_step}. *restart*: the server's log gained a `hotmod: "
        "serving` line (the pid stays: `execv`); *in-process*: it did not. Failed requests (refused, "
        f"reset, timeouts, 5xx) from the edit until {s['after'] * 1000:.0f} ms after the text appeared, "
        "summed over the edits; the error page itself, still served until its fix shows, is not one. "
        f"A step not served within {s['edit_timeout']:.0f} s (restart-only: "
        f"{s['restart_timeout']:.0f} s) FAILS. The next view edit comes {s['warmup']:.1f} s after the "
        "restart. The watcher hands over a file that was saved alone before at once, and waits a "
        "10 ms settle window (`quiet / 5`, reloader/_debounce.py) for the first save of a file in a "
        "process: a step whose file an earlier step edited (Flask's and Bottle's routing, every "
        "syntax error, every later repetition) skips that wait.",
        "",
        "| framework | " + " | ".join(heading for _, heading in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for row in result["rows"]:
        cells = " | ".join(row["cells"][step] for step, _ in COLUMNS)
        lines.append(f"| {row['framework']} | {cells} |")
    lines += [
        "",
        "The edits: **view**, the text the view returns (`bench/frameworks.py`'s edit); **routing**, "
        "the view's route renamed (the old URL must then answer 404); **template**, a heading of the "
        "page's template; **model**, the `__repr__` of a Flask-SQLAlchemy `db.Model` class (the "
        "issue 20 case: `Table ... is already defined` before); **restart-only**, the `LABEL` of a "
        "module the view was first made to show "
        "(Django: `polls/models.py`, restart-only by name; the others: a module with "
        "`__hotmod_restart__ = True`); **syntax error**, a `def` line's closing parenthesis removed "
        "(then put back: **its fix**); **syntax error in a restart-only module**, the restart-only "
        "module given a new `LABEL` and a broken `def` (the restart it makes cannot load: the new "
        "process must answer the error page, 500, on the kept socket), then **its fix** (the new "
        "`LABEL` served).",
        "",
    ]
    for row in result["rows"]:
        steps = STEPS[row["key"]]
        edits = [("routing", steps.routing), ("template", steps.template), ("model", steps.model),
                 ("syntax error", steps.syntax)]
        shown = "; ".join(f"{name}: `{e.file}` `{e.old}` → `{e.new}`" for name, e in edits if e is not None)
        lines.append(f"- **{row['framework']}** (`hotmod serve {row['target']}`): {shown}; "
                     f"restart-only: `{steps.restart_module}`, shown by the view as `{steps.restart_expr}`.")
    problems = [
        (row, r) for row in result["rows"] for r in row["records"] if not r["seen"]
    ]
    notes = [(row, note) for row in result["rows"] for note in row["notes"]]
    if problems or notes:
        lines += ["", "What failed, with the server's last log lines:", ""]
        for row, r in problems:
            lines += [f"- **{row['framework']}, {r['step']} {r['rep']}**: {r['outcome']}", "", "```",
                      r.get("log_tail", ""), "```", ""]
        for row, note in notes:
            lines.append(f"- **{row['framework']}**: {note}")
    evidence = []
    for row in result["rows"]:
        said = Counter(
            SCRATCH_PATH.sub("", line) for line in row["hotmod_lines"]
            if line.startswith(("hotmod: restart needed", "hotmod: restarting", "hotmod: reload failed"))
        )
        evidence += [f"{row['key']:8} {n}x {line}" for line, n in said.items()]
    if evidence:
        lines += ["", "What the servers said about the restarts and the syntax errors (paths relative to "
                  "the app's copy):", "", "```", *evidence, "```"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.framework_steps")
    parser.add_argument("--quick", action="store_true", help="one edit per step (else 3, and their median)")
    parser.add_argument("--framework", action="append", choices=list(STEPS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run("quick" if args.quick else "full", frameworks=args.framework)
    emit(result, render, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
