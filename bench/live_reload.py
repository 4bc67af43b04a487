"""Save → page shows the edit, in a real headless Chromium (issue 22).

A page is open in headless Chromium (Debian's ``chromium`` driven through
``chromedriver``); the bench writes a file and the page, with no action by the bench,
ends up showing the new text. The page measures itself: a script added to every
document the tab loads (CDP ``Page.addScriptToEvaluateOnNewDocument``, so it survives
full reloads) watches the DOM with a ``MutationObserver`` and records
``performance.timeOrigin + performance.now()`` when the awaited text appears; the
latency is that minus ``time.time()`` taken right after the write. Both are this
machine's wall clock: each batch checks that they agree (bracketed readings), and each
hit records ``Date.now()`` beside the high-resolution reading.

Servers, each on its own tmp copy, alone in its own process group on a free
127.0.0.1 port, killed in a ``finally``; rounds alternate the servers (A B C D E,
A B C D E), a fresh server per round:

- ``hotmod serve app.wsgi:app`` on the bench Flask app (debug mode: the live-reload
  script is injected), a view edit and a template edit;
- Django ``runserver`` with django-browser-reload on the bench Django app, the same two;
- python-livereload serving the Flask app (``Server(app.wsgi_app)``), a view edit;
- the restart reloaders (werkzeug's stat reloader, ``gunicorn --reload``) with a page
  the bench makes poll for a changed response (every 100 ms it fetches its own URL and,
  if the body differs, replaces ``document.body.innerHTML``), a view edit.

An edit that does not show within the bound counts as never shown (the page is then
opened afresh). Then, for hotmod alone: the injection's cost per HTML response
(in-process, a subprocess of its own), the connections seven open tabs hold, and a page
left open through many reloads (the server's threads, descriptors, RSS and held polls
before and after, and the page's own count of updates).

Run alone: ``python -m bench.live_reload [--quick|--smoke] [--server NAME]...``
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._harness import (
    BENCH_DIR,
    VENV_BIN,
    AppCopy,
    Pending,
    Server,
    emit,
    fmt,
    free_port,
    http_get,
    kill_group,
    leaf_pid,
    log,
    mode_of,
    percentile,
    postgres_dsn,
    save_edit,
    scratch_dir,
    section_parser,
)

APPS = BENCH_DIR / "apps" / "livereload"
#: Seeded, so that two runs pause alike.
JITTER = random.Random(22)
HOTMOD = "hotmod"
GOAL_MS = 50.0


# --- the browser -----------------------------------------------------------------------------

#: Added to every document the measuring tab loads, before the page's own scripts: it
#: records when the awaited text (``needle``, kept in sessionStorage so that it survives
#: a full reload) first appears in the DOM, in the page's own clock.
OBSERVER_JS = r"""
(() => {
  const KEY = "hotmod-bench";
  let loads = 0;
  try {
    loads = Number(sessionStorage.getItem(KEY + "-loads") || 0) + 1;
    sessionStorage.setItem(KEY + "-loads", String(loads));
  } catch (e) { return; }  // an opaque origin (about:blank, an error page): nothing to watch
  const check = () => {
    let state = null;
    try { state = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { return; }
    if (!state || state.seen !== null) return;
    const root = document.documentElement;
    if (!root || !root.textContent.includes(state.needle)) return;
    state.seen = performance.timeOrigin + performance.now();
    state.date = Date.now();
    state.loads = loads;
    // The request that brought the text: the page's last fetch of itself (a morph, the
    // bench's poller) or, after a full reload, this document's own navigation.
    const here = location.href.split("#")[0];
    const fetched = performance.getEntriesByType("resource").filter(
      (e) => e.initiatorType === "fetch" && e.name.split("#")[0] === here);
    const request = loads !== state.armed_loads
      ? performance.getEntriesByType("navigation")[0] : fetched[fetched.length - 1];
    if (request) {
      state.request_start = performance.timeOrigin + request.startTime;
      state.request_end = request.responseEnd > 0 ? performance.timeOrigin + request.responseEnd : null;
    }
    sessionStorage.setItem(KEY, JSON.stringify(state));
    if (bench.notify) bench.notify(state);
  };
  // Resolves with the state as soon as a hit is recorded, or after 500 ms.
  const wait = () => new Promise((resolve) => {
    const now = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (!now || now.seen !== null) { resolve(now); return; }
    const timer = setTimeout(() => { bench.notify = null; resolve(now); }, 500);
    bench.notify = (state) => { clearTimeout(timer); bench.notify = null; resolve(state); };
  });
  const bench = window.__hotmodBench = {check, loads, wait, notify: null};
  // room for a poller's requests between two edits (the bench clears it now and then)
  performance.setResourceTimingBufferSize(1000);
  new MutationObserver(check).observe(document, {childList: true, subtree: true, characterData: true});
})();
"""

ARM_FN = r"""
function (needle) {
  const state = {needle, seen: null, date: null, armed_loads: window.__hotmodBench.loads};
  // Seldom: each clear costs the page a few hundred bytes it keeps.
  if (performance.getEntriesByType("resource").length > 500) performance.clearResourceTimings();
  sessionStorage.setItem("hotmod-bench", JSON.stringify(state));
  window.__hotmodBench.check();
  return JSON.parse(sessionStorage.getItem("hotmod-bench")).seen;
}
"""


WAIT_CALL = {"expression": "window.__hotmodBench.wait()", "awaitPromise": True, "returnByValue": True}

#: The page a restart reloader gets from the bench: poll its own URL every 100 ms and
#: put a changed body in place (no reloader of these ships a browser side).
POLLER_JS = r"""
if (!window.__benchPoller) {
  const stats = window.__benchPoller = {polls: 0, swaps: 0, errors: 0};
  const parser = new DOMParser();
  let last = parser.parseFromString(document.documentElement.outerHTML, "text/html").body.innerHTML;
  const tick = async () => {
    const started = performance.now();
    try {
      const response = await fetch(location.href, {cache: "no-store"});
      const text = await response.text();
      stats.polls++;
      if (response.ok) {
        const body = parser.parseFromString(text, "text/html").body.innerHTML;
        if (body !== last) { last = body; document.body.innerHTML = body; stats.swaps++; }
      }
    } catch (e) { stats.errors++; }
    setTimeout(tick, Math.max(0, 100 - (performance.now() - started)));
  };
  setTimeout(tick, 100);
}
"""

CLOCK_JS = "return performance.timeOrigin + performance.now();"
FETCH_LOOP_JS = r"""
const done = arguments[arguments.length - 1];
(async () => {
  for (let i = 0; i < arguments[0]; i++) {
    const response = await fetch(location.href, {cache: "no-store"});
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    document.body.replaceChildren(...page.body.childNodes);
  }
  done(true);
})();
"""
NOT_RUNNING = "hotmod's page script is not running on the page (window.__hotmod_live is missing)"
SHOWS_FN = "function (needle) { return document.documentElement.textContent.includes(needle); }"


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver): ``HOTMOD_CHROMIUM`` / ``HOTMOD_CHROMEDRIVER``, else PATH.

    Raises ``Pending`` with what to install where either is missing (the section then
    says so in RESULTS.md; ``.ci/run`` installs Debian's ``chromium chromium-driver``)."""
    chromium = os.environ.get("HOTMOD_CHROMIUM") or next(
        filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None
    )
    driver = os.environ.get("HOTMOD_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver:
        raise Pending(
            "no headless browser here: install Debian's `chromium` and `chromium-driver` "
            "(or set HOTMOD_CHROMIUM and HOTMOD_CHROMEDRIVER)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        raise Pending("selenium is missing: `make install` (the dev extra)") from exc
    return chromium, driver


@dataclass
class Hit:
    """One awaited text, as the page saw it."""

    seen: bool
    page_ms: float | None = None  # performance.timeOrigin + performance.now() at the hit
    date_ms: float | None = None  # Date.now() at the hit
    navigated: bool = False  # a new document showed it (a full reload), not the same one
    request_start_ms: float | None = None  # the request that brought the text: its start
    request_end_ms: float | None = None  # and the end of its response


class Browser:
    """One headless Chromium (through chromedriver, both alone in their own process group)
    and one measuring tab."""

    def __init__(self, scratch: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, chromedriver = find_browser()
        self.log_path = scratch / "chromedriver.log"
        self.service = Service(
            chromedriver, log_output=str(self.log_path), popen_kw={"start_new_session": True}
        )
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--window-size=1280,900",
            # the page's own memory, read precisely after a full collection (long-open page)
            "--enable-precise-memory-info",
            "--js-flags=--expose-gc",
            f"--user-data-dir={scratch / 'chromium-profile'}",
        ):
            options.add_argument(arg)
        started = time.perf_counter()
        try:
            self.driver = webdriver.Chrome(options=options, service=self.service)
        except Exception:
            self._kill()
            raise
        self.start_s = time.perf_counter() - started
        self.driver.set_page_load_timeout(10)
        self.driver.set_script_timeout(30)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER_JS})
        self.version = self.driver.capabilities.get("browserVersion", "?")

    def close(self) -> None:
        try:
            self.driver.quit()
        except Exception as exc:  # the group is killed below either way
            log(f"live_reload: chromedriver quit failed ({exc!r}); killing its group")
        finally:
            self._kill()

    def _kill(self) -> None:
        process = getattr(self.service, "process", None)
        if process is not None:
            kill_group(process, timeout=3.0)

    def open(self, url: str, *, poller: bool = False) -> None:
        """Load ``url`` in the measuring tab (waits for its load event, bounded)."""
        self.driver.get(url)
        if poller:
            self.driver.execute_script(POLLER_JS)

    def blank(self) -> None:
        """Leave the page: its connections (and a SharedWorker) go with it."""
        with contextlib.suppress(Exception):
            self.driver.get("about:blank")

    def where(self) -> str:
        """The tab's URL and title (what a miss left on screen)."""
        try:
            return f"{self.driver.current_url} ({self.driver.title!r})"
        except Exception as exc:  # a wedged tab is itself the answer
            return f"unknown ({type(exc).__name__})"

    def script(self, expression: str) -> Any:
        return self.driver.execute_script(f"return {expression};")

    def call(self, function: str, *args: Any) -> Any:
        """``function(*args)`` in the page, the arguments passed as values over CDP.

        Not ``execute_script(source, *args)``: chromedriver compiles its arguments into
        a new script for each distinct value, and the page keeps every script it
        compiled (about 23 KB each here), which a long-open page would count as its own
        memory. Scripts whose source never changes are compiled once."""
        group = {"objectGroup": "hotmod-bench"}
        window = self.driver.execute_cdp_cmd("Runtime.evaluate", {"expression": "window", **group})
        try:
            out = self.driver.execute_cdp_cmd(
                "Runtime.callFunctionOn",
                {
                    "functionDeclaration": function,
                    "objectId": window["result"]["objectId"],
                    "arguments": [{"value": arg} for arg in args],
                    "returnByValue": True,
                },
            )
        finally:
            self.driver.execute_cdp_cmd("Runtime.releaseObjectGroup", group)
        if "exceptionDetails" in out:
            raise RuntimeError(f"the page's script failed: {out['exceptionDetails'].get('exception')}")
        return out["result"].get("value")

    def arm(self, needle: str, *, absent: bool = True) -> None:
        """Await ``needle``; it must not be on the page yet unless ``absent`` is False
        (the long-open page's control: the bench's own calls with nothing to wait for)."""
        if self.call(ARM_FN, needle) is not None and absent:
            raise RuntimeError(f"the page already shows {needle!r} before the edit")

    def wait(self, since: float, timeout: float) -> Hit:
        """Until the armed text shows (the page's own record), at most ``timeout`` s after
        ``since`` (a ``time.time()``): a later hit counts as none."""
        from selenium.common.exceptions import WebDriverException

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Hit(False)
            try:
                # CDP, not execute_async_script: chromedriver's async wrapper leaves the
                # page ~200 bytes per call; a constant expression is compiled once.
                out = self.driver.execute_cdp_cmd("Runtime.evaluate", WAIT_CALL)
            except WebDriverException:
                # the document went away while waiting (a full reload): ask the next one
                time.sleep(0.02)
                continue
            if "exceptionDetails" in out:  # a document without the observer (yet): an error page
                time.sleep(0.02)
                continue
            state = out["result"].get("value")
            if state and state.get("seen") is not None:
                if float(state["seen"]) / 1000.0 - since > timeout:
                    return Hit(False)
                return Hit(
                    True,
                    page_ms=float(state["seen"]),
                    date_ms=float(state["date"]),
                    navigated=state.get("loads") != state.get("armed_loads"),
                    request_start_ms=state.get("request_start"),
                    request_end_ms=state.get("request_end"),
                )

    def clock_offset(self, readings: int = 12) -> dict[str, float]:
        """The page's clock minus ``time.time()``: each reading is bracketed by two of
        ours; the one with the shortest round trip bounds the offset best."""
        best: tuple[float, float] | None = None
        outside = 0
        for _ in range(readings):
            before = time.time()
            page = float(self.driver.execute_script(CLOCK_JS)) / 1000.0
            after = time.time()
            if not before - 0.001 <= page <= after + 0.001:
                outside += 1
            rtt = after - before
            if best is None or rtt < best[1]:
                best = (page - (before + after) / 2, rtt)
        assert best is not None
        return {
            "offset_ms": round(best[0] * 1000, 3),
            "bound_ms": round(best[1] * 500, 3),
            "outside_bracket": outside,
            "readings": readings,
        }


# --- the apps and their edits ------------------------------------------------------------------


@dataclass(frozen=True)
class Spot:
    """Where one kind of edit writes: ``anchor`` (once in ``file``) becomes ``replacement``."""

    file: str
    anchor: str
    replacement: str  # with {needle}


FLASK_SPOTS = {
    "view": Spot("app/views/pages.py", 'MARKER = "bench-edit-00000"', 'MARKER = "{needle}"'),
    "template": Spot("app/templates/index.html", "items in stock.", "items in stock. {needle}"),
}
DJANGO_SPOTS = {
    "view": Spot("polls/views.py", 'MARKER = "bench-edit-00000"', 'MARKER = "{needle}"'),
    "template": Spot(
        "polls/templates/polls/index.html",
        "This is the polls index.",
        "This is the polls index. {needle}",
    ),
}


@dataclass
class Site:
    """A private copy of an app and the edits the bench makes to it."""

    root: Path
    path: str  # the page left open
    spots: dict[str, Spot]
    env: dict[str, str]
    originals: dict[str, str] = field(default_factory=dict)
    edits: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, spot in self.spots.items():
            text = (self.root / spot.file).read_text()
            if text.count(spot.anchor) != 1:
                raise RuntimeError(f"{self.root / spot.file} must hold {spot.anchor!r} exactly once")
            self.originals[kind] = text

    def next_needle(self, kind: str) -> str:
        """The text the page shows once the next edit of ``kind`` serves."""
        return f"bench-{kind}-{self.edits + 1:05d}"

    def edit(self, kind: str) -> str:
        """Write the next edit of ``kind`` (atomic rename and in-place write alternate per
        kind); returns how it was written."""
        needle = self.next_needle(kind)
        self.edits += 1
        count = self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        atomic = count % 2 == 1
        spot = self.spots[kind]
        text = self.originals[kind].replace(spot.anchor, spot.replacement.format(needle=needle))
        save_edit(self.root / spot.file, text, atomic=atomic)
        return "rename" if atomic else "in-place"


def flask_site(parent: Path, name: str, dsn: str) -> Site:
    copy = AppCopy.create(parent, name)
    shutil.copy(APPS / "livereload_server.py", copy.root / "livereload_server.py")
    env = copy.env(database_url=dsn, application_name=f"hotmod-bench-live-{name}")
    return Site(copy.root, "/", FLASK_SPOTS, env)


def django_site(parent: Path, name: str, dsn: str) -> Site:
    """The bench Django app (bench/frameworks.py), its index view rendering a template,
    with django-browser-reload installed as its README says."""
    from bench.frameworks import _prepare_django

    root = parent / name
    _prepare_django(root)
    shutil.copy(APPS / "django" / "polls_views.py", root / "polls" / "views.py")
    shutil.copy(APPS / "django" / "mysite_urls.py", root / "mysite" / "urls.py")
    templates = root / "polls" / "templates" / "polls"
    templates.mkdir(parents=True)
    shutil.copy(APPS / "django" / "index.html", templates / "index.html")
    settings = root / "mysite" / "settings.py"
    text = settings.read_text()
    text, apps = re.subn(
        r"(INSTALLED_APPS = \[.*?)\n\]", r"\1\n    'django_browser_reload',\n]", text, count=1, flags=re.S
    )
    text, middleware = re.subn(
        r"(MIDDLEWARE = \[.*?)\n\]",
        r"\1\n    'django_browser_reload.middleware.BrowserReloadMiddleware',\n]",
        text,
        count=1,
        flags=re.S,
    )
    if not apps or not middleware or "django.contrib.staticfiles" not in text:
        raise RuntimeError(f"{settings}: cannot install django-browser-reload (unexpected layout)")
    settings.write_text(text)
    env = dict(os.environ)
    for key in ("WERKZEUG_RUN_MAIN", "WERKZEUG_SERVER_FD", "RUN_MAIN", "HOTMOD_SERVER_FD", "DATABASE_URL"):
        env.pop(key, None)
    env.update(
        {
            "PYTHONPATH": str(root),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return Site(root, "/polls/", DJANGO_SPOTS, env)


# --- the servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    kinds: tuple[str, ...]
    site: Callable[[Path, str, str], Site]
    argv: Callable[[int], list[str]]
    #: a JS expression, true when the page carries the tool's own browser script
    script_check: str
    poller: bool = False  # the bench adds the polling script to the page
    how: str = ""
    #: a JS expression, true once the tool's browser script runs (checked after the warm-up)
    ready_check: str = "true"


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender(
            HOTMOD,
            "`hotmod serve app.wsgi:app` (debug mode: its live-reload script)",
            ("view", "template"),
            flask_site,
            lambda port: [str(VENV_BIN / "hotmod"), "serve", "app.wsgi:app", "--port", str(port)],
            "!!document.querySelector('script[data-hotmod-key]')",
            ready_check="!!(window.__hotmod_live && window.__hotmod_live.mode)",
            how="after the swap commits, the long poll answers the page's SharedWorker; the "
            "page fetches itself (the server first catches up to the announced clock) and "
            "morphs the DOM in place",
        ),
        Contender(
            "django-browser-reload",
            "`manage.py runserver` + django-browser-reload",
            ("view", "template"),
            django_site,
            lambda port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
            "!!document.querySelector('script[data-worker-script-path]')",
            how="a view edit: the StatReloader (1 s scans) restarts the process; the "
            "SharedWorker's event stream breaks, reconnects to the new process, sees a new "
            "version id and reloads the page. A template edit: no restart, runserver's "
            "reloader signals the change and the stream says reload",
        ),
        Contender(
            "python-livereload",
            "python-livereload `Server(app.wsgi_app)` (tornado, debug)",
            ("view",),
            flask_site,
            lambda port: [sys.executable, "livereload_server.py", str(port)],
            "!!document.querySelector('script[src*=\"livereload.js\"]')",
            how="tornado's autoreload (a 0.5 s scan) re-executes the process on a module's "
            "change; the new process queues one reload for `restart_delay` (2 s) and its first "
            "check, 800 ms after start, takes that reload off the queue even when no page has "
            "reconnected yet (`LiveReloadHandler.poll_tasks` after `Watcher.examine`): a page "
            "whose livereload.js reconnects later gets no reload, and the edit never shows "
            "(what the tab showed then: the app's page, old text)",
        ),
        Contender(
            "werkzeug-stat",
            "werkzeug stat reloader (`flask run --reload`'s reloader without watchdog:"
            ' `run_simple(use_reloader=True, reloader_type="stat")`) + a polling page',
            ("view",),
            flask_site,
            lambda port: [sys.executable, "serve.py", "werkzeug", "--port", str(port), "--reloader", "stat"],
            "true",
            poller=True,
            how="a 1 s scan, a new serving child (the parent keeps the socket); the page "
            "polls every 100 ms and swaps in the changed body",
        ),
        Contender(
            "gunicorn",
            "`gunicorn --reload -w 1` + a polling page",
            ("view",),
            flask_site,
            lambda port: [
                str(VENV_BIN / "gunicorn"), "--reload", "-w", "1", "-b", f"127.0.0.1:{port}", "app.wsgi:app",
            ],
            "true",
            poller=True,
            how="a 1 s scan (no `inotify` package), a new worker (the arbiter keeps the "
            "socket); the page polls every 100 ms and swaps in the changed body",
        ),
    )
}
PEERS = tuple(name for name in CONTENDERS if name != HOTMOD)


@dataclass(frozen=True)
class Settings:
    edits: int  # per row (server, kind)
    rounds: int
    edit_timeout: float  # seconds an edit may take to show before it counts as never shown
    warmup: float  # seconds between the page's load and the first edit
    settle: float  # seconds between an edit showing and the next edit
    peers: tuple[str, ...]
    soak_reloads: int
    soak_sample_every: int
    tabs: int
    inject_calls: int


SETTINGS = {
    "full": Settings(10, 2, 10.0, 1.5, 1.0, PEERS, 1000, 100, 7, 400_000),
    "quick": Settings(4, 2, 10.0, 1.5, 1.0, PEERS, 200, 50, 7, 100_000),
    "smoke": Settings(1, 1, 10.0, 0.5, 0.3, (), 10, 5, 7, 20_000),
}


PEER_PACKAGES = (
    "django", "django-browser-reload", "livereload", "tornado", "werkzeug", "gunicorn", "selenium",
)


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in PEER_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def live_reload_available() -> str:
    """"" when this install's hotmod has live reload, else why not."""
    try:
        from hotmod.middleware import HotReload
    except ImportError as exc:
        return f"hotmod.middleware does not import ({exc})"
    if "live_reload" not in inspect.signature(HotReload).parameters:
        return "`HotReload(live_reload=...)` has not landed yet (issue 22, the lead's server side)"
    if not (VENV_BIN / "hotmod").exists():
        return "the `hotmod` script is missing: run `make install`"
    return ""


@dataclass
class Row:
    server: str
    kind: str
    records: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


@contextlib.contextmanager
def serving(contender: Contender, site: Site, log_path: Path) -> Iterator[Server]:
    port = free_port()
    server = Server(contender.name, contender.argv(port), site.root, site.env, port, log_path)
    try:
        server.start()
        server.wait_ready(site.path, timeout=60.0)
        yield server
    finally:
        server.stop()


def run_batch(
    browser: Browser,
    contender: Contender,
    site: Site,
    rows: dict[tuple[str, str], Row],
    clocks: list[dict[str, Any]],
    *,
    settings: Settings,
    edits: int,
    round_no: int,
    log_path: Path,
) -> None:
    """A fresh server, the page open, ``edits`` edits of each kind (the kinds alternate)."""
    from selenium.common.exceptions import WebDriverException

    try:
        with serving(contender, site, log_path) as server:
            url = f"http://127.0.0.1:{server.port}{site.path}"
            try:
                browser.open(url, poller=contender.poller)
                if not browser.script(contender.script_check):
                    raise RuntimeError(f"the page at {url} carries no reload script")
                clocks.append({"server": contender.name, "round": round_no, **browser.clock_offset()})
                time.sleep(settings.warmup)
                if not browser.script(contender.ready_check):
                    raise RuntimeError(f"the page's reload script is not running ({contender.ready_check})")
                for _ in range(edits):
                    for kind in contender.kinds:
                        record = one_edit(browser, contender, site, kind, settings, round_no, url)
                        rows[contender.name, kind].records.append(record)
            finally:
                browser.blank()  # before the server stops: the page's connections go first
    except (RuntimeError, WebDriverException) as exc:
        note = f"failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        log(f"  {contender.name}: {note}")
        for kind in contender.kinds:
            rows[contender.name, kind].note = note


def one_edit(
    browser: Browser, contender: Contender, site: Site, kind: str, settings: Settings, round_no: int, url: str
) -> dict[str, Any]:
    browser.arm(site.next_needle(kind))
    how = site.edit(kind)
    written = time.time()
    hit = browser.wait(written, settings.edit_timeout)
    record: dict[str, Any] = {
        "server": contender.name,
        "kind": kind,
        "round": round_no,
        "edit": site.edits,
        "how": how,
        "seen": hit.seen,
        "latency_ms": round(hit.page_ms - written * 1000, 2) if hit.page_ms is not None else None,
        "date_latency_ms": round(hit.date_ms - written * 1000, 2) if hit.date_ms is not None else None,
        "full_reload": hit.navigated,
        # the split: write → the request that brought the text starts → its response
        # ends → the DOM shows the text
        "to_request_ms": _since(hit.request_start_ms, written),
        "request_ms": _between(hit.request_start_ms, hit.request_end_ms),
        "to_dom_ms": _between(hit.request_end_ms, hit.page_ms),
    }
    shown = f"{record['latency_ms']:.1f} ms" if hit.seen else "NEVER SHOWN"
    log(
        f"  {contender.name:22} {kind:8} round {round_no} edit {site.edits:3} ({how:8}) {shown:>12}"
        f"{'  (full reload)' if hit.navigated else ''}"
    )
    if hit.seen:
        # A random pause: the peers scan files once a second, and a fixed pause after the
        # edit showed would lock the next edit to the same phase of their scan.
        time.sleep(settings.settle * (1.0 + JITTER.random()))
    else:
        record["page_at_miss"] = browser.where()
        log(f"    the page at the miss: {record['page_at_miss']}")
        browser.open(url, poller=contender.poller)  # a fresh page for the next edit
        time.sleep(settings.warmup)
    return record


def _since(page_ms: float | None, written: float) -> float | None:
    return round(page_ms - written * 1000, 2) if page_ms is not None else None


def _between(start_ms: float | None, end_ms: float | None) -> float | None:
    return round(end_ms - start_ms, 2) if start_ms is not None and end_ms is not None else None


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def summarize(row: Row) -> dict[str, Any]:
    shown = [r for r in row.records if r["seen"]]
    latencies = [r["latency_ms"] for r in shown]
    out: dict[str, Any] = {
        "server": row.server,
        "kind": row.kind,
        "edits": len(row.records),
        "shown": len(shown),
        "never_shown": len(row.records) - len(shown),
        "median_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p90_ms": round(percentile(latencies, 90), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "full_reloads": sum(1 for r in shown if r["full_reload"]),
        "to_request_median_ms": _median([r.get("to_request_ms") for r in shown]),
        "request_median_ms": _median([r.get("request_ms") for r in shown]),
        "to_dom_median_ms": _median([r.get("to_dom_ms") for r in shown]),
        "note": row.note,
    }
    for how in ("rename", "in-place"):
        subset = [r["latency_ms"] for r in shown if r["how"] == how]
        out[f"median_ms_{how}"] = round(statistics.median(subset), 1) if subset else None
    return out


# --- hotmod alone: tabs, a long-open page, the injection's cost ---------------------------------


def established(port: int) -> int:
    """TCP connections to ``port`` on loopback, counted at the server's end (/proc/net/tcp*)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state = fields[1], fields[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def hotmod_status(port: int) -> dict[str, Any]:
    code, body, error = http_get(port, "/__hotmod__", timeout=5.0)
    if code != 200:
        raise RuntimeError(f"/__hotmod__ answered {code or error}")
    data: dict[str, Any] = json.loads(body)
    return data


def held_polls(status: dict[str, Any]) -> int | None:
    live = status.get("live")
    waiting = live.get("waiting") if isinstance(live, dict) else None
    return waiting if isinstance(waiting, int) else None


PAGE_STATE_JS = (
    # the resource timing entries are the bench's (it reads them): out of the page's heap
    "performance.clearResourceTimings(); if (window.gc) window.gc();"
    "const live = window.__hotmod_live || {};"
    "return {updates: live.updates ?? null, reloads: live.reloads ?? null, swaps: live.swaps ?? null,"
    " mode: live.mode ?? null, visibility: document.visibilityState,"
    " clock: document.documentElement.dataset.hotmodClock ?? null,"
    " state: document.documentElement.dataset.hotmodState ?? null,"
    " nodes: document.getElementsByTagName('*').length,"
    " heap: performance.memory ? performance.memory.usedJSHeapSize : null,"
    " loads: window.__hotmodBench ? window.__hotmodBench.loads : null};"
)


def seven_tabs(browser: Browser, site: Site, settings: Settings, log_path: Path) -> dict[str, Any]:
    """``settings.tabs`` tabs on one page: the connections they hold, the polls the server
    holds, an extra page's load time, and whether every tab follows an edit."""
    driver = browser.driver
    first = driver.current_window_handle
    extra: list[str] = []
    result: dict[str, Any] = {"tabs": settings.tabs}
    with serving(CONTENDERS[HOTMOD], site, log_path) as server:
        url = f"http://127.0.0.1:{server.port}{site.path}"
        try:
            browser.open(url)
            time.sleep(1.0)
            if not browser.script(CONTENDERS[HOTMOD].ready_check):
                return {"skipped": NOT_RUNNING}
            result["one_tab"] = {
                "established": established(server.port),
                "held_polls": held_polls(hotmod_status(server.port)),
            }
            for _ in range(settings.tabs - 1):
                driver.switch_to.new_window("tab")
                extra.append(driver.current_window_handle)
                driver.get(url)
            time.sleep(1.0)  # every tab has joined the worker; idle keep-alives settle
            result["all_tabs"] = {
                "established": established(server.port),
                "held_polls": held_polls(hotmod_status(server.port)),
            }
            modes = []
            for handle in [first, *extra]:
                driver.switch_to.window(handle)
                modes.append(driver.execute_script(PAGE_STATE_JS)["mode"])
            result["modes"] = modes
            # one more page: does it load at once while the tabs hold their connections?
            driver.switch_to.new_window("tab")
            extra.append(driver.current_window_handle)
            started = time.perf_counter()
            driver.get(url)
            result["extra_page_load_ms"] = round((time.perf_counter() - started) * 1000, 1)
            navigation = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                " return n.responseEnd - n.startTime;"
            )
            result["extra_page_navigation_ms"] = round(float(navigation), 1)
            driver.close()
            extra.pop()
            # every tab follows one edit (a hidden tab once it is shown)
            needle = site.next_needle("view")
            site.edit("view")
            written = time.monotonic()
            followed = 0
            for handle in [first, *extra]:
                driver.switch_to.window(handle)
                deadline = written + settings.edit_timeout
                while time.monotonic() < deadline:
                    if browser.call(SHOWS_FN, needle):
                        followed += 1
                        break
                    time.sleep(0.05)
            result["followed"] = followed
        finally:
            for handle in extra:
                with contextlib.suppress(Exception):
                    driver.switch_to.window(handle)
                    driver.close()
            driver.switch_to.window(first)
            browser.blank()
    return result


def page_soak(browser: Browser, site: Site, settings: Settings, log_path: Path) -> dict[str, Any]:
    """One page open through ``settings.soak_reloads`` view edits, each made once the
    previous one shows (at least 60 ms apart)."""
    from bench.soak import settled

    samples: list[dict[str, Any]] = []
    latencies: list[float] = []
    misses = in_a_row = 0
    stopped = ""
    with serving(CONTENDERS[HOTMOD], site, log_path) as server:
        url = f"http://127.0.0.1:{server.port}{site.path}"
        pid = leaf_pid(server.pid)
        try:
            browser.open(url)
            time.sleep(settings.warmup)
            if not browser.script(CONTENDERS[HOTMOD].ready_check):
                return {"skipped": NOT_RUNNING}

            def sample(reloads: int) -> None:
                status = hotmod_status(server.port)
                samples.append(
                    {
                        "reloads": reloads,
                        **settled(pid),
                        "generation": status.get("generation"),
                        "held_polls": held_polls(status),
                        "established": established(server.port),
                        "page": browser.driver.execute_script(PAGE_STATE_JS),
                    }
                )

            sample(0)
            started = time.monotonic()
            for n in range(1, settings.soak_reloads + 1):
                begun = time.monotonic()
                browser.arm(site.next_needle("view"))
                site.edit("view")
                written = time.time()
                hit = browser.wait(written, settings.edit_timeout)
                if hit.seen and hit.page_ms is not None:
                    latencies.append(hit.page_ms - written * 1000)
                    in_a_row = 0
                else:
                    misses += 1
                    in_a_row += 1
                    log(f"  soak: reload {n} never showed")
                    if in_a_row >= 3:
                        stopped = f"stopped after {n} reloads: 3 in a row never showed"
                        sample(n)
                        break
                if n % settings.soak_sample_every == 0 or n == settings.soak_reloads:
                    if n == settings.soak_reloads:
                        time.sleep(1.0)  # the last update's requests end; the poll is held again
                    sample(n)
                    log(f"  soak: {n} reloads, {samples[-1]}")
                pause = 0.06 - (time.monotonic() - begun)
                if pause > 0:
                    time.sleep(pause)
            seconds = time.monotonic() - started
            # The control: as many rounds of the bench's own calls (arm, wait) with no edit,
            # the awaited text already on the page; what they add to the page's heap is
            # the bench's share of the growth above.
            heap_before = browser.driver.execute_script(PAGE_STATE_JS)["heap"]
            for _ in range(len(latencies) + misses):
                browser.arm("items in stock", absent=False)
                browser.wait(time.time(), settings.edit_timeout)
            heap_after = browser.driver.execute_script(PAGE_STATE_JS)["heap"]
            control_kib = _kib(heap_after, heap_before)
            # Chromium's own share: as many rounds of a bare fetch of the page, parsed and
            # put in place of the body, with no live-reload code involved.
            browser.driver.set_script_timeout(300)
            browser.driver.execute_async_script(FETCH_LOOP_JS, len(latencies) + misses)
            browser.driver.set_script_timeout(30)
            heap_loop = browser.driver.execute_script(PAGE_STATE_JS)["heap"]
            fetch_loop_kib = _kib(heap_loop, heap_after)
        finally:
            browser.blank()
    first, last = samples[0], samples[-1]
    second = samples[1] if len(samples) > 2 else None
    return {
        "control_heap_kib": control_kib,
        "fetch_loop_heap_kib": fetch_loop_kib,
        "growth_after_first_sample": (
            {
                "rss_mib": round((last["rss_kib"] - second["rss_kib"]) / 1024, 1),
                "threads": last["threads"] - second["threads"],
                "fds": last["fds"] - second["fds"],
                "held_polls": _delta(last["held_polls"], second["held_polls"]),
                "established": last["established"] - second["established"],
                "page_heap_kib": _kib(last["page"]["heap"], second["page"]["heap"]),
            }
            if second
            else None
        ),
        "reloads": samples[-1]["reloads"],
        "stopped": stopped,
        "seconds": round(seconds, 1),
        "misses": misses,
        "latency_median_ms": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p90_ms": round(percentile(latencies, 90), 1) if latencies else None,
        "samples": samples,
        "growth": {
            "rss_mib": round((last["rss_kib"] - first["rss_kib"]) / 1024, 1),
            "threads": last["threads"] - first["threads"],
            "fds": last["fds"] - first["fds"],
            "held_polls": _delta(last["held_polls"], first["held_polls"]),
            "established": last["established"] - first["established"],
            "page_updates": _delta(last["page"]["updates"], first["page"]["updates"]),
            "page_reloads": _delta(last["page"]["reloads"], first["page"]["reloads"]),
            "page_loads": _delta(last["page"]["loads"], first["page"]["loads"]),
            "page_nodes": _delta(last["page"]["nodes"], first["page"]["nodes"]),
            "page_heap_kib": (
                round((last["page"]["heap"] - first["page"]["heap"]) / 1024)
                if last["page"]["heap"] is not None and first["page"]["heap"] is not None
                else None
            ),
        },
    }


def _kib(after: Any, before: Any) -> int | None:
    return round((after - before) / 1024) if isinstance(after, int) and isinstance(before, int) else None


def _delta(after: Any, before: Any) -> int | None:
    return after - before if isinstance(after, int) and isinstance(before, int) else None


INJECT_APP = '''
BODY = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>page</title></head><body>"
    + b"<main>" + b"<p>a paragraph of the page</p>" * 30 + b"</main></body></html>"
)
LENGTH = str(len(BODY))


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", LENGTH)])
    return [BODY]
'''


def injection_child(root: str, calls: int, chunk: int) -> None:
    """In a process of its own (``injection_cost`` runs it): the same small HTML response
    through ``HotReload(debug=True)`` with live reload on and with it off, and bare."""
    sys.path.insert(0, root)
    import hm_live_app  # type: ignore[import-not-found]

    from hotmod.middleware import HotReload

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
    }
    heard: dict[str, list[tuple[str, str]]] = {}

    def chunk_ns(name: str, app: Any, n: int) -> float:
        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            heard[name] = headers

        begin = time.thread_time_ns()
        for _ in range(n):
            result = app(dict(environ), start_response)
            body = b"".join(result)
            close = getattr(result, "close", None)
            if close is not None:
                close()
        heard[name + ":body"] = [("", body.decode())]
        return (time.thread_time_ns() - begin) / n

    on = HotReload("hm_live_app:app", watch=[root], debug=True)
    off = HotReload("hm_live_app:app", watch=[root], debug=True, live_reload=False)
    sides = {"bare": hm_live_app.app, "off": off, "on": on}
    samples: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for name, app in sides.items():
            chunk_ns(name, app, chunk)
        for _ in range(calls // chunk):
            for name, app in sides.items():
                samples[name].append(chunk_ns(name, app, chunk))
    finally:
        on.close()
        off.close()
    body_on = heard["on:body"][0][1]
    body_off = heard["off:body"][0][1]
    length_on = dict((k.lower(), v) for k, v in heard["on"]).get("content-length")
    paired = [a - b for a, b in zip(samples["on"], samples["off"], strict=True)]
    print(
        json.dumps(
            {
                "calls_per_side": calls,
                "chunk": chunk,
                "response_bytes": len(hm_live_app.BODY),
                "injected_bytes": len(body_on) - len(body_off),
                "injected": "data-hotmod-key" in body_on and "data-hotmod-key" not in body_off,
                "content_length_corrected": length_on == str(len(body_on.encode())),
                "bare_ns": round(statistics.median(samples["bare"])),
                "off_ns": round(statistics.median(samples["off"])),
                "on_ns": round(statistics.median(samples["on"])),
                "injection_ns_paired_median": round(statistics.median(paired)),
            }
        )
    )


def injection_cost(calls: int) -> dict[str, Any]:
    """The live-reload injection's cost per HTML response, in a subprocess (HotReload's
    watcher threads stay out of the bench's own process)."""
    chunk = min(2000, calls)
    with tempfile.TemporaryDirectory(prefix="hotmod-bench-inject-") as root:
        Path(root, "hm_live_app.py").write_text(INJECT_APP)
        code = f"from bench.live_reload import injection_child; injection_child({root!r}, {calls}, {chunk})"
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(f"the injection measure failed:\n{out.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


# --- the section ----------------------------------------------------------------------------------


def run(mode: str = "full", *, servers: Sequence[str] | None = None) -> dict[str, Any]:
    settings = SETTINGS[mode]
    find_browser()
    missing = live_reload_available()
    if servers:
        chosen = tuple(servers)
    else:
        chosen = ((HOTMOD,) if not missing else ()) + settings.peers
    if HOTMOD in chosen and missing:
        raise Pending(missing)
    if not chosen:
        raise Pending(missing)
    if missing:
        log(f"live_reload: hotmod's row is pending ({missing}); measuring the peers")
    dsn = postgres_dsn()
    rows = {(name, kind): Row(name, kind) for name in chosen for kind in CONTENDERS[name].kinds}
    clocks: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "mode": mode,
        "settings": settings.__dict__,
        "database": "postgresql" if dsn else "sqlite",
        "hotmod_pending": missing,
    }
    with scratch_dir("live-reload") as scratch:
        browser = Browser(scratch)
        try:
            result["browser"] = {"version": browser.version, "start_s": round(browser.start_s, 2)}
            result["versions"] = versions()
            sites = {name: CONTENDERS[name].site(scratch, name, dsn) for name in chosen}
            per_round = -(-settings.edits // settings.rounds)
            for round_no in range(1, settings.rounds + 1):
                batch = min(per_round, settings.edits - (round_no - 1) * per_round)
                if batch <= 0:
                    break
                for name in chosen:
                    contender = CONTENDERS[name]
                    kinds = "/".join(contender.kinds)
                    log(f"live_reload: round {round_no}: {name}, {batch} edit(s) of {kinds}")
                    run_batch(
                        browser, contender, sites[name], rows, clocks, settings=settings, edits=batch,
                        round_no=round_no, log_path=scratch / f"{name}.log",
                    )
            if HOTMOD in chosen:
                log("live_reload: the injection's cost per HTML response")
                result["injection"] = injection_cost(settings.inject_calls)
                log(f"live_reload: {settings.tabs} tabs")
                result["tabs"] = seven_tabs(browser, sites[HOTMOD], settings, scratch / "hotmod-tabs.log")
                log(f"live_reload: a page open through {settings.soak_reloads} reloads")
                result["soak"] = page_soak(browser, sites[HOTMOD], settings, scratch / "hotmod-soak.log")
        finally:
            browser.close()
    result["rows"] = [summarize(row) for row in rows.values()]
    result["records"] = [r for row in rows.values() for r in row.records]
    result["clocks"] = clocks
    hits = [r for r in result["records"] if r["seen"]]
    result["clock_check"] = {
        "offset_ms_min": min((c["offset_ms"] for c in clocks), default=None),
        "offset_ms_max": max((c["offset_ms"] for c in clocks), default=None),
        "bound_ms_max": max((c["bound_ms"] for c in clocks), default=None),
        "outside_bracket": sum(c["outside_bracket"] for c in clocks),
        "readings": sum(c["readings"] for c in clocks),
        "date_vs_performance_ms_max": (
            round(max(abs(r["date_latency_ms"] - r["latency_ms"]) for r in hits), 2) if hits else None
        ),
    }
    return result


def goals(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows of the targets table (issue 22)."""
    out = []
    for row in result.get("rows", []):
        if row["server"] != HOTMOD or row["median_ms"] is None:
            continue
        median = row["median_ms"]
        out.append(
            (
                f"save → page shows the edit, median <= {GOAL_MS:.0f} ms (issue 22, {row['kind']} edit,"
                " headless Chromium)",
                f"{median:.1f} ms (p90 {fmt(row['p90_ms'])} ms, {row['never_shown']} never shown)",
                "met" if median <= GOAL_MS and not row["never_shown"] else "**missed**",
            )
        )
    return out


def render(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "## Save → page shows the edit (live reload, headless Chromium)",
        "",
        f"A page open in headless Chromium {result.get('browser', {}).get('version', '?')} (Debian's "
        f"`chromium` through `chromedriver`); the bench writes the file and the page, with no action "
        f"by the bench, ends up showing the new text. Latency: from `time.time()` right after the "
        f"write to the moment the page's own `MutationObserver` sees the text in the DOM "
        f"(`performance.timeOrigin + performance.now()`, recorded by a script the bench adds to every "
        f"document the tab loads, so a full reload is measured too). {s['edits']} edits per row in "
        f"{s['rounds']} rounds, the servers alternating (a fresh server per round); atomic rename and "
        f"in-place write alternate per row; the first edit {s['warmup']:.1f} s after the page loaded, "
        f"the next {s['settle']:.1f} to {2 * s['settle']:.1f} s after the previous one showed "
        f"(seeded random: the peers scan once a second, and a fixed pause would lock the edits to "
        f"one phase of their scan). An edit not shown within "
        f"{s['edit_timeout']:.0f} s counts as never shown. Flask bench app ({result['database']} pool) "
        f"and the bench Django app (`bench/apps/livereload/README.md`).",
        "",
        "| server | edit | shown/edits | median ms | p90 ms | max ms | never shown | by full reload "
        "| median rename / in-place ms | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    if result.get("hotmod_pending"):
        pending = result["hotmod_pending"]
        lines.append(f"| hotmod | view, template | - | - | - | - | - | - | - | pending: {pending} |")
    for r in result["rows"]:
        lines.append(
            f"| {r['server']} | {r['kind']} | {r['shown']}/{r['edits']} | {fmt(r['median_ms'])} "
            f"| {fmt(r['p90_ms'])} | {fmt(r['max_ms'])} | {r['never_shown']} | {r['full_reloads']} "
            f"| {fmt(r['median_ms_rename'])} / {fmt(r['median_ms_in-place'])} | {r['note'] or 'ok'} |"
        )
    split = [r for r in result["rows"] if r.get("to_request_median_ms") is not None]
    if split:
        lines += [
            "",
            "Where the time goes (medians, from the page's Resource and Navigation Timing): from the "
            "write to the start of the request that brought the new text (the page's fetch of itself "
            "for a morph or the bench's poller, the new document's navigation for a full reload), that "
            "request until its response ended, and from there until the DOM showed the text:",
            "",
            "| server | edit | write → request starts ms | request ms | response → DOM ms |",
            "|---|---|---|---|---|",
            *[
                f"| {r['server']} | {r['kind']} | {fmt(r['to_request_median_ms'])} "
                f"| {fmt(r['request_median_ms'])} | {fmt(r['to_dom_median_ms'])} |"
                for r in split
            ],
        ]
    misses = [r for r in result["records"] if not r["seen"] and r.get("page_at_miss")]
    if misses:
        lines += ["", "What the tab showed when an edit had not shown by the bound:", ""]
        lines += [
            f"- {r['server']}, {r['kind']} edit {r['edit']} (round {r['round']}): {r['page_at_miss']}"
            for r in misses
        ]
    c = result["clock_check"]
    if c["readings"]:
        lines += [
            "",
            f"Clocks: the page's clock minus the bench's, read once per page load bracketed by two "
            f"readings of ours, was between {fmt(c['offset_ms_min'], 2)} and {fmt(c['offset_ms_max'], 2)} "
            f"ms (each within ±{fmt(c['bound_ms_max'], 2)} ms, half the shortest round trip); "
            f"{c['outside_bracket']} of {c['readings']} readings fell outside their bracket. At each hit "
            f"`Date.now()` and `performance.timeOrigin + performance.now()` differed by at most "
            f"{fmt(c['date_vs_performance_ms_max'], 2)} ms.",
        ]
    lines += ["", "How each reaches the page:", ""]
    if result.get("versions"):
        lines += [
            "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
            "",
        ]
    shown = {r["server"] for r in result["rows"]}
    for name, contender in CONTENDERS.items():
        if name in shown:
            lines.append(f"- **{name}** ({contender.label}): {contender.how}.")
    inj = result.get("injection")
    if inj:
        lines += [
            "",
            f"The injection's cost per HTML response, in-process: the same {inj['response_bytes']}-byte "
            f"HTML response (`Content-Length` given) through `HotReload(debug=True)` with live reload "
            f"on and with `live_reload=False`, {inj['calls_per_side']:,} calls per side in alternating "
            f"chunks of {inj['chunk']:,}, thread CPU time:",
            "",
            "| app | ns per response (median of chunks) |",
            "|---|---|",
            f"| bare app | {inj['bare_ns']} |",
            f"| `HotReload(debug=True, live_reload=False)` | {inj['off_ns']} |",
            f"| `HotReload(debug=True)` (live reload on) | {inj['on_ns']} |",
            f"| **the injection** (paired median, on minus off) | **{inj['injection_ns_paired_median']}** |",
            "",
            f"The tag adds {inj['injected_bytes']} bytes; injected: {inj['injected']}; Content-Length "
            f"corrected: {inj['content_length_corrected']}.",
        ]
    tabs = result.get("tabs")
    if tabs and tabs.get("skipped"):
        lines += ["", f"Tabs: not measured: {tabs['skipped']}."]
    elif tabs:
        one, all_ = tabs["one_tab"], tabs["all_tabs"]
        lines += [
            "",
            f"{tabs['tabs']} tabs on the same hotmod page (one browser): TCP connections to the server "
            f"(ESTABLISHED at the server's end, `/proc/net/tcp`) and polls the server holds "
            f"(`GET /__hotmod__` `live.waiting`), one second after the last tab loaded:",
            "",
            "| open tabs | connections | held polls |",
            "|---|---|---|",
            f"| 1 | {one['established']} | {fmt(one['held_polls'])} |",
            f"| {tabs['tabs']} | {all_['established']} | {fmt(all_['held_polls'])} |",
            "",
            f"Modes the tabs report: {', '.join(sorted(set(map(str, tabs['modes']))))}. An extra page "
            f"loaded in {tabs['extra_page_load_ms']} ms (navigation {tabs['extra_page_navigation_ms']} ms); "
            f"{tabs['followed']} of {tabs['tabs']} tabs followed one edit (each shown in turn). Connections "
            f"include the idle keep-alive ones Chromium keeps from the page loads.",
        ]
    soak = result.get("soak")
    if soak and soak.get("skipped"):
        lines += ["", f"A page left open through many reloads: not measured: {soak['skipped']}."]
    elif soak:
        g = soak["growth"]
        first, last = soak["samples"][0], soak["samples"][-1]
        lines += [
            "",
            f"A page left open through {soak['reloads']} view edits, each made once the previous one "
            f"showed (at least 60 ms apart): {soak['seconds']} s, {soak['misses']} never shown, "
            f"latency median {fmt(soak['latency_median_ms'])} ms, p90 {fmt(soak['latency_p90_ms'])} ms"
            + (f"; {soak['stopped']}." if soak.get("stopped") else "."),
            "",
            "| | reloads | generation | threads | fds | RSS MiB | held polls | connections "
            "| page updates | page full reloads | page DOM nodes | page JS heap KiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, smp in (("before", first), ("after", last)):
            page = smp["page"]
            heap = page["heap"] // 1024 if isinstance(page["heap"], int) else None
            lines.append(
                f"| {label} | {smp['reloads']} | {fmt(smp['generation'])} | {smp['threads']} | {smp['fds']} "
                f"| {smp['rss_kib'] / 1024:.1f} | {fmt(smp['held_polls'])} | {smp['established']} "
                f"| {fmt(page['updates'])} | {fmt(page['reloads'])} | {page['nodes']} | {fmt(heap)} |"
            )
        later = soak.get("growth_after_first_sample")
        if later:
            lines.append(
                f"| growth after the first {soak['samples'][1]['reloads']} reloads | | "
                f"| {later['threads']:+d} | {later['fds']:+d} | {later['rss_mib']:+.1f} "
                f"| {fmt(later['held_polls'])} | {later['established']:+d} | | | "
                f"| {fmt(later.get('page_heap_kib'))} |"
            )
        lines.append(
            f"| growth | | | {g['threads']:+d} | {g['fds']:+d} | {g['rss_mib']:+.1f} "
            f"| {fmt(g['held_polls'])} | {g['established']:+d} | {fmt(g['page_updates'])} "
            f"| {fmt(g['page_reloads'])} "
            f"| {fmt(g['page_nodes'])} | {fmt(g['page_heap_kib'])} |"
        )
        if soak.get("control_heap_kib") is not None:
            lines += [
                "",
                f"The page's JS heap is read after a full collection (`--js-flags=--expose-gc`). The "
                f"bench's own calls into the page (arm, wait) leave some of it: the same number of them "
                f"afterwards, with no edit, added {soak['control_heap_kib']} KiB. Chromium keeps some "
                f"per request too: then as many rounds of a bare loop in the page (fetch the page, "
                f"parse it, put its body in place; no live-reload code) added "
                f"{fmt(soak.get('fetch_loop_heap_kib'))} KiB.",
            ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = section_parser("python -m bench.live_reload")
    parser.add_argument("--server", action="append", choices=list(CONTENDERS))
    args = parser.parse_args(argv)
    result = run(mode_of(args), servers=args.server)
    emit(result, render, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
