"""Open pages follow the generations (issue 22), proven in a real headless Chromium
against ``hotmod serve`` as users run it, and by plain HTTP for what the injection must
leave alone.

One ``hotmod serve livesite.app:app`` (tests/fixtures/live/site, a copy) and one browser
serve the module; each test opens tabs of its own, closed after it, and leaves the
site's files as it found them (the ``site`` fixture puts back what a test edited and
waits until the pristine pages serve again). The restart, the servers with live reload
off and the multi-worker test start servers of their own.

The pages report what the live script did through what it exposes for tests
(``data-hotmod-clock``, ``data-hotmod-state``, ``window.__hotmod_live``) and through
the site's own script (base.html): ``window.livesite.load`` counts the tab's full
loads (a morph keeps it at 1), ``sessionStorage["livesite.seen"]`` lists every state
the page showed, across reloads.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import established_connections, wait_js
from support import EDIT_TIMEOUT, Reply, Served, call, free_port, replace, wait_until

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytest_plugins = ["browser"]

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "live"
TARGET = "livesite.app:app"
#: A host the module's server allows besides the loopback names (``--allow-host``).
ALLOWED_HOST = "livesite.test"
#: The tag the server injects into an HTML page (its attributes in any order).
TAG = re.compile(rb'<script src="[^"]*/__hotmod__/live\.js"[^>]*></script>')
#: How long an open page may take to show an edit that is served (generous: two
#: xdist workers share two cores; the goal of issue 22 is 50 ms).
SHOWN = EDIT_TIMEOUT
#: What every tab reports: the live script's exposed state and the site's own.
PAGE_STATE = """
var data = document.documentElement.dataset;
var live = window.__hotmod_live || null;
var headline = document.getElementById("headline");
return {
  clock: data.hotmodClock ? Number(data.hotmodClock) : null,
  state: data.hotmodState || null,
  live: live && {updates: live.updates, reloads: live.reloads, swaps: live.swaps, mode: live.mode},
  load: window.livesite ? window.livesite.load : null,
  kept: window.kept === undefined ? null : window.kept,
  seen: JSON.parse(sessionStorage.getItem("livesite.seen") || "[]"),
  headline: headline ? headline.textContent : null,
  url: location.href
};
"""
#: The text a user sees in the live script's own elements (overlay, badge): the text
#: nodes of every open shadow root, those whose element is rendered.
LIVE_UI_TEXT = """
var texts = [];
document.querySelectorAll("*").forEach(function (host) {
  if (!host.shadowRoot) return;
  var walker = document.createTreeWalker(host.shadowRoot, NodeFilter.SHOW_TEXT);
  for (var node = walker.nextNode(); node; node = walker.nextNode()) {
    var parent = node.parentElement;
    if (!parent || /^(STYLE|SCRIPT|LINK|TEMPLATE)$/.test(parent.tagName)) continue;
    if (!parent.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    if (node.textContent.trim()) texts.push(node.textContent.trim());
  }
});
return texts.join("\\n");
"""

#: How many ``<b>`` elements the live script's shadow roots hold: the broken line's
#: markup, had it gone through innerHTML anywhere (the overlay uses none of its own).
MARKUP_FROM_SERVER = """
var count = 0;
document.querySelectorAll("*").forEach(function (host) {
  if (host.shadowRoot) count += host.shadowRoot.querySelectorAll("b").length;
});
return count;
"""

# -- the site and its server ---------------------------------------------------------------


@dataclass
class Site:
    """A copy of the fixture site (``root`` holds the package) and its server."""

    root: Path
    server: Served

    @property
    def pkg(self) -> Path:
        return self.root / "livesite"

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def live(self) -> dict[str, Any]:
        """The live channel's part of the status endpoint (``waiting``: held polls)."""
        live: dict[str, Any] = self.server.status()["live"]
        return live


def copy_site(parent: Path) -> Path:
    root = parent / "site"
    shutil.copytree(FIXTURE / "site", root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@contextmanager
def hotmod_serve(root: Path, *flags: str) -> Iterator[Served]:
    """``hotmod serve livesite.app:app --port N *flags`` in ``root``, once it serves;
    stopped afterwards, its whole process group with it."""
    port = free_port()
    server = Served(["serve", TARGET, "--port", str(port), *flags], root, port=port)
    try:
        server.wait_for(rf"^hotmod: serving .* on http://127\.0\.0\.1:{port}/", timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = copy_site(tmp_path_factory.mktemp("live"))
    with hotmod_serve(root, "--allow-host", ALLOWED_HOST) as server:
        yield Site(root, server)


#: What the pristine site serves, which a test's edits must give way to again.
PRISTINE = {
    "/": ("Headline one", "Note one"),
    "/long": ("Form one",),
    "/static/site.css": ("rgb(10, 20, 30)",),
}


@pytest.fixture
def site(site_server: Site) -> Iterator[Site]:
    """The module's site; whatever file a test edited is put back afterwards, and the
    next test starts once the pristine pages serve again."""
    yield site_server
    restored = False
    for original in (FIXTURE / "site").rglob("*"):
        if not original.is_file() or "__pycache__" in original.parts:
            continue
        copy = site_server.root / original.relative_to(FIXTURE / "site")
        text = original.read_text()
        if copy.read_text() != text:
            replace(copy, copy.read_text(), text)
            restored = True
    if restored:
        for path, needles in PRISTINE.items():
            for needle in needles:
                site_server.server.wait_served(path, needle)


# -- tabs ----------------------------------------------------------------------------------


@pytest.fixture
def tab(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser in a new tab of its own; every tab the test opened is closed after it."""
    home = browser.current_window_handle
    browser.switch_to.new_window("tab")
    yield browser
    for handle in browser.window_handles:
        if handle != home:
            browser.switch_to.window(handle)
            browser.close()
    browser.switch_to.window(home)


def page_state(driver: WebDriver) -> dict[str, Any]:
    state: dict[str, Any] = driver.execute_script(PAGE_STATE)
    return state


def open_page(driver: WebDriver, url: str) -> dict[str, Any]:
    """Load ``url`` in the current tab and wait until the live script runs there."""
    driver.get(url)
    wait_js(driver, "window.__hotmod_live && document.documentElement.dataset.hotmodClock", 10.0,
            what=f"the live script to start on {url}")
    return page_state(driver)


def wait_headline(driver: WebDriver, text: str, timeout: float = SHOWN) -> dict[str, Any]:
    """Wait, with no action on the page, until it shows ``text`` as its headline; its state."""
    try:
        wait_js(driver, f"(document.getElementById('headline') || {{}}).textContent === {json.dumps(text)}",
                timeout, what=f"the page to show {text!r}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nthe page: {page_state(driver)}") from None
    return page_state(driver)


def live_ui_text(driver: WebDriver) -> str:
    text: str = driver.execute_script(LIVE_UI_TEXT)
    return text


def wait_one_held_poll(site: Site, what: str) -> None:
    """Wait until the server holds exactly one poll (the browser's, once settled);
    fail at once if it is ever seen holding more."""

    def one() -> bool:
        held = site.live()["waiting"]
        assert held <= 1, f"{held} polls held ({established_connections(site.port)} connections open)"
        return held == 1

    try:
        wait_until(one, timeout=10.0, interval=0.05, what=what)
    except AssertionError as exc:
        held, open_ = site.live()["waiting"], established_connections(site.port)
        raise AssertionError(f"{exc}: {held} polls held, {open_} connections open") from None


def set_headline(site: Site, old: str, new: str) -> None:
    replace(site.pkg / "views.py", f'HEADLINE = "{old}"', f'HEADLINE = "{new}"')


# -- an open page follows the edits --------------------------------------------------------


def test_an_open_page_shows_a_view_edit_by_itself_and_keeps_its_script_state(
    site: Site, tab: WebDriver
) -> None:
    before = open_page(tab, site.url("/"))
    assert before["state"] == "ok" and before["headline"] == "Headline one"
    tab.execute_script("window.kept = 'the page kept its script state'")
    set_headline(site, "Headline one", "Headline two")
    after = wait_headline(tab, "Headline two")
    wait_js(tab, f"window.__hotmod_live.updates > {before['live']['updates']}", 5.0)
    after = page_state(tab)
    assert after["clock"] > before["clock"]
    assert after["state"] == "ok"
    # Morphed in place, once: no reload, the page's own script state kept.
    assert after["load"] == 1 and after["kept"] == "the page kept its script state"
    assert after["live"]["updates"] == before["live"]["updates"] + 1
    assert after["live"]["reloads"] == 0
    assert tab.find_element("id", "note").text == "Note one"  # the rest of the page intact


def test_an_open_page_shows_a_template_edit_by_itself(site: Site, tab: WebDriver) -> None:
    before = open_page(tab, site.url("/"))
    tab.execute_script("window.kept = 'kept'")
    replace(site.pkg / "templates" / "page.html", "Note one", "Note two")
    wait_js(tab, "document.getElementById('note').textContent === 'Note two'", SHOWN,
            what="the page to show the template edit")
    wait_js(tab, f"window.__hotmod_live.updates > {before['live']['updates']}", 5.0)
    after = page_state(tab)
    assert after["clock"] > before["clock"]
    assert after["load"] == 1 and after["kept"] == "kept"
    assert after["live"]["updates"] == before["live"]["updates"] + 1


def test_a_broken_edit_shows_the_overlay_with_file_and_line_and_its_fix_clears_it(
    site: Site, tab: WebDriver
) -> None:
    before = open_page(tab, site.url("/"))
    views = site.pkg / "views.py"
    line = views.read_text().splitlines().index('HEADLINE = "Headline one"') + 1
    # A syntax error on that line, with markup in it that must show as text.
    replace(views, 'HEADLINE = "Headline one"', 'HEADLINE = "<b>broken</b>" +')
    wait_js(tab, "document.documentElement.dataset.hotmodState === 'failed'", SHOWN,
            what="the page to show the failed edit")
    overlay = wait_until(lambda: live_ui_text(tab) or None, timeout=5.0, what="the overlay's text")
    assert re.search(rf"views\.py:{line}\b", overlay), overlay
    assert "SyntaxError" in overlay, overlay
    assert '"<b>broken</b>"' in overlay, overlay  # the excerpt as text, never as markup
    assert tab.execute_script(MARKUP_FROM_SERVER) == 0
    assert re.search(r"serving generation \d+, edit failed", overlay), overlay
    failed = page_state(tab)
    assert failed["headline"] == "Headline one"  # the page stays as it was under the overlay
    assert failed["load"] == 1
    # A page opened now is hotmod's error page, which follows the fix too.
    first = tab.current_window_handle
    tab.switch_to.new_window("tab")
    open_page(tab, site.url("/"))
    assert "SyntaxError" in tab.find_element("tag name", "body").text
    error_page = tab.current_window_handle

    replace(views, 'HEADLINE = "<b>broken</b>" +', 'HEADLINE = "Headline fixed"')
    wait_headline(tab, "Headline fixed")
    tab.switch_to.window(first)
    wait_headline(tab, "Headline fixed")
    wait_js(tab, "document.documentElement.dataset.hotmodState === 'ok'", 5.0)
    wait_until(lambda: live_ui_text(tab) == "", timeout=5.0, what="the overlay and the badge to clear")
    after = page_state(tab)
    assert after["clock"] > before["clock"]
    assert after["load"] == 1
    assert [state for _, state, _ in after["seen"]].count("failed") >= 1
    tab.switch_to.window(error_page)
    assert page_state(tab)["state"] == "ok"


def test_an_update_keeps_the_scroll_position_and_the_typed_form_values(site: Site, tab: WebDriver) -> None:
    open_page(tab, site.url("/long"))
    name = tab.find_element("id", "name")
    tab.execute_script("arguments[0].scrollIntoView({block: 'center'})", name)
    name.send_keys("Ada Lovelace")
    tab.find_element("id", "message").send_keys("typed, not saved")
    tab.find_element("id", "agree").click()
    scrolled = tab.execute_script("return [window.scrollX, window.scrollY]")
    assert scrolled[1] > 2000, scrolled  # far down the page

    replace(site.pkg / "templates" / "long.html", "Form one", "Form two")
    set_headline(site, "Headline one", "Headline scrolled")
    wait_js(tab, "document.getElementById('form-note').textContent === 'Form two'", SHOWN,
            what="the page to show the template edit")
    wait_headline(tab, "Headline scrolled")
    assert tab.execute_script("return [window.scrollX, window.scrollY]") == scrolled
    values = tab.execute_script(
        "return [document.getElementById('name').value, document.getElementById('message').value,"
        " document.getElementById('agree').checked]"
    )
    assert values == ["Ada Lovelace", "typed, not saved", True]
    assert page_state(tab)["load"] == 1


def test_a_stylesheet_edit_is_swapped_in_place_without_a_reload(site: Site, tab: WebDriver) -> None:
    color = "getComputedStyle(document.getElementById('headline')).color"
    before = open_page(tab, site.url("/"))
    assert tab.execute_script(f"return {color}") == "rgb(10, 20, 30)"
    tab.execute_script("window.kept = 'kept'")
    replace(site.pkg / "static" / "site.css", "rgb(10, 20, 30)", "rgb(200, 30, 40)")
    wait_js(tab, f"{color} === 'rgb(200, 30, 40)'", SHOWN, what="the new stylesheet to apply")
    wait_js(tab, f"window.__hotmod_live.swaps > {before['live']['swaps']}", 5.0)
    after = page_state(tab)
    assert after["kept"] == "kept" and after["load"] == 1
    assert after["live"]["swaps"] == before["live"]["swaps"] + 1
    assert after["live"]["updates"] == before["live"]["updates"]  # no morph for a stylesheet alone
    assert after["live"]["reloads"] == 0
    links = tab.execute_script("return document.querySelectorAll('link[rel=stylesheet]').length")
    assert links == 1  # swapped, not added beside the old one


def test_in_reload_mode_an_edit_reloads_the_page_once(tab: WebDriver, tmp_path: Path) -> None:
    root = copy_site(tmp_path)
    with hotmod_serve(root, "--live-reload", "reload") as server:
        site = Site(root, server)
        before = open_page(tab, site.url("/long"))
        tab.execute_script("window.kept = 'lost on reload'")
        set_headline(site, "Headline one", "Headline reloaded")
        wait_headline(tab, "Headline reloaded")
        # Settled once the reloaded page's live script runs at the server's clock.
        wait_js(tab, f"window.__hotmod_live && document.documentElement.dataset.hotmodClock"
                     f" === '{site.live()['clock']}'", 5.0, what="the reloaded page to follow")
        after = page_state(tab)
        assert after["load"] == 2 and after["kept"] is None  # one full reload
        assert after["clock"] > before["clock"]
        assert after["live"]["updates"] == 0


def test_seven_tabs_follow_an_edit_over_one_poll_and_an_eighth_page_loads_at_once(
    site: Site, tab: WebDriver
) -> None:
    # One connection for the browser, however many tabs: one held poll (waited for
    # after each tab opens: a second one fails at once).
    handles = []
    for n in range(7):
        if n:
            tab.switch_to.new_window("tab")
        state = open_page(tab, site.url("/"))
        assert state["live"]["mode"] == "sharedworker", state
        handles.append(tab.current_window_handle)
        wait_one_held_poll(site, f"one held poll for {n + 1} tabs")

    # Seven tabs that each held a poll would take the browser's six connections to
    # the host, and an eighth page would wait for a poll's hold to end.
    tab.switch_to.new_window("tab")
    started = time.monotonic()
    open_page(tab, site.url("/long"))
    took = time.monotonic() - started
    assert took < 5.0, f"the eighth page took {took:.2f} s (a poll is held {site.live()['hold']} s)"
    handles.append(tab.current_window_handle)
    wait_one_held_poll(site, "one held poll for eight tabs")

    set_headline(site, "Headline one", "Headline for every tab")
    for handle in reversed(handles):  # a hidden tab updates when it becomes visible
        tab.switch_to.window(handle)
        state = wait_headline(tab, "Headline for every tab")
        assert state["load"] == 1, state
    wait_one_held_poll(site, "one held poll again after the edit")


# -- restart-only edits --------------------------------------------------------------------


def test_a_restart_only_edit_waits_for_the_restarted_process_and_updates_once(
    tab: WebDriver, tmp_path: Path
) -> None:
    root = copy_site(tmp_path)
    with hotmod_serve(root) as server:
        site = Site(root, server)
        before = open_page(tab, site.url("/restart"))
        assert before["headline"] == "Greeting one"
        mark = server.mark()
        replace(site.pkg / "settings.py", 'GREETING = "Greeting one"', 'GREETING = "Greeting two"')
        server.wait_for(r"^hotmod: restarting: ", after=mark, timeout=30)
        after = wait_headline(tab, "Greeting two", timeout=30)
        # The page is settled once the restarted process holds its next poll.
        wait_one_held_poll(site, "the page to poll the restarted process")
        after = page_state(tab)
        live = after["live"]
        # Once: a morph (the load stays 1) or a reload (the counters start again).
        assert (after["load"] - 1) + live["updates"] + live["reloads"] == 1, after
        assert after["state"] == "ok"
        assert "failed" not in [state for _, state, _ in after["seen"]], after["seen"]
        assert int(tab.find_element("id", "pid").text) == server.pid  # exec keeps the pid
        assert len([x for x in server.lines[mark:] if x.startswith("hotmod: restarting")]) == 1


# -- no script where there must be none ----------------------------------------------------


def untagged(body: bytes) -> bytes:
    """``body`` with the one injected tag taken out (it must have exactly one)."""
    stripped, found = TAG.subn(b"", body)
    assert found == 1, body[-400:]
    return stripped


def test_a_page_gets_one_tag_before_its_body_end_with_its_length_corrected(site: Site) -> None:
    reply = call(site.port, "GET", "/long")
    assert reply.status == 200
    tags = TAG.findall(reply.body)
    assert len(tags) == 1, reply.body[-400:]
    assert reply.body.index(tags[0]) + len(tags[0]) == reply.body.rindex(b"</body>")
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    for attribute in (b'data-hotmod-base="/__hotmod__/"', b"data-hotmod-key=", b"data-hotmod-clock=",
                      b'data-hotmod-mode="morph"', b" async"):
        assert attribute in tags[0], tags[0]
    script = call(site.port, "GET", "/__hotmod__/live.js")
    assert script.status == 200
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert script.headers["Cache-Control"] in ("no-cache", "no-store")  # never a stale script
    # A host the user allowed gets it too.
    allowed = call(site.port, "GET", "/long", headers={"Host": f"{ALLOWED_HOST}:{site.port}"})
    assert untagged(allowed.body) == untagged(reply.body)


def test_a_foreign_host_gets_not_one_byte_added(site: Site) -> None:
    page = call(site.port, "GET", "/long")
    foreign = call(site.port, "GET", "/long", headers={"Host": "example.com"})
    assert foreign.status == 200
    assert foreign.body == untagged(page.body)
    assert int(foreign.headers["Content-Length"]) == len(foreign.body)
    assert call(site.port, "GET", "/__hotmod__/live.js", headers={"Host": "example.com"}).status != 200
    poll = call(site.port, "GET", "/__hotmod__/live/poll", headers={"Host": "example.com"})
    assert poll.status != 200


@pytest.mark.parametrize("flags", [("--production",), ("--no-live-reload",), ("--live-reload", "off")])
def test_a_server_with_live_reload_off_adds_not_one_byte(
    site: Site, tmp_path: Path, flags: Sequence[str]
) -> None:
    reference = untagged(call(site.port, "GET", "/long").body)
    with hotmod_serve(copy_site(tmp_path), *flags) as server:
        assert server.port is not None
        page = call(server.port, "GET", "/long")
        assert page.status == 200
        assert page.body == reference
        assert int(page.headers["Content-Length"]) == len(page.body)
        assert call(server.port, "GET", "/__hotmod__/live.js").status == 404
        assert call(server.port, "GET", "/__hotmod__/live/poll").status == 404


LEFT_ALONE: dict[str, tuple[str, str, dict[str, str], int, bytes]] = {
    # name: (method, path, request headers, status, the body exactly as the app made it)
    "not HTML": ("GET", "/plain", {}, 200, b"<html><body>plain</body></html>"),
    "streamed": ("GET", "/stream", {}, 200, b"<html><body><p>streamed</p></body></html>"),
    "compressed": ("GET", "/gzip", {}, 200,
                   gzip.compress(b"<html><body><p>compressed</p></body></html>", mtime=0)),
    "attachment": ("GET", "/download", {}, 200, b"<html><body><p>saved</p></body></html>"),
    "304": ("GET", "/etag", {"If-None-Match": '"livesite-v1"'}, 304, b""),
    "HEAD": ("HEAD", "/long", {}, 200, b""),
}


@pytest.mark.parametrize("case", list(LEFT_ALONE))
def test_the_injection_leaves_alone(site: Site, case: str) -> None:
    method, path, headers, status, body = LEFT_ALONE[case]
    reply = call(site.port, method, path, headers=headers)
    assert (reply.status, reply.body) == (status, body)
    if case == "streamed":
        assert reply.headers["Content-Length"] is None
    elif case == "HEAD":
        # The length of the page as the app made it, with no tag counted.
        assert int(reply.headers["Content-Length"]) == len(untagged(call(site.port, "GET", path).body))
    elif status == 200:
        assert int(reply.headers["Content-Length"]) == len(body)


# -- a multi-worker server -----------------------------------------------------------------


def worker_pids(folder: Path) -> dict[str, int]:
    """The pids the two workers wrote (``watching``, ``lagging``), once both have."""
    files = {part: folder / f"{part}.pid" for part in ("watching", "lagging")}
    wait_until(lambda: all(f.exists() and f.read_text() for f in files.values()), timeout=30,
               what="both gunicorn workers to import the entry")
    return {part: int(f.read_text()) for part, f in files.items()}


def shown_pid(reply: Reply) -> int:
    match = re.search(rb'<p id="pid">(\d+)</p>', reply.body)
    assert match, reply.body[-400:]
    return int(match[1])


def test_under_gunicorn_with_two_workers_a_page_never_shows_a_worker_s_old_page(
    tab: WebDriver, tmp_path: Path
) -> None:
    """gunicorn ``-w 2`` serving HotReload in debug mode. One worker notices edits
    itself, the other never does (it scans once an hour), so every edit the second
    serves, it loaded because a request carried a newer clock: first proven by HTTP,
    then in the browser, whose morph fetches land on either worker."""
    root = copy_site(tmp_path)
    entry = tmp_path / "entry"
    shutil.copytree(FIXTURE / "entry", entry)
    workers = tmp_path / "workers"
    workers.mkdir()
    port = free_port()
    env = {
        "PYTHONPATH": os.pathsep.join([str(entry), str(root)]),
        "LIVESITE_ROOT": str(root),
        "LIVESITE_WORKERS": str(workers),
    }
    gunicorn = [str(Path(sys.executable).parent / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}",
                "--graceful-timeout", "5", "hm_live_entry:application"]
    server = Served([], entry, command=gunicorn, env=env, port=port)
    site = Site(root, server)
    try:
        pids = worker_pids(workers)
        wait_until(lambda: {shown_pid(r) for r in fetch_many(port, "/")} == set(pids.values()),
                   timeout=30, what="both workers to answer")

        # By HTTP: the lagging worker serves its old page until asked with a newer clock.
        set_headline(site, "Headline one", "Headline two")

        def watching_state() -> dict[str, Any] | None:
            state: dict[str, Any] = call(port, "GET", "/__hotmod__/live/poll").json()
            return state if state["pid"] == pids["watching"] and state["status"] == "ok" and \
                state["changes"]["modules"] else None

        clock = wait_until(watching_state, timeout=EDIT_TIMEOUT, what="the watching worker to load")["clock"]

        def lagging_still_old() -> bool:
            replies = fetch_many(port, "/")
            return any(shown_pid(r) == pids["lagging"] and b"Headline one" in r.body for r in replies)

        wait_until(lagging_still_old, timeout=10, what="the lagging worker to serve its old page")
        seen_lagging = False
        deadline = time.monotonic() + 20
        while not seen_lagging:
            assert time.monotonic() < deadline, "the lagging worker never answered a page fetch"
            for reply in fetch_many(port, "/", headers={"X-Hotmod-Live": str(clock)}):
                pid = shown_pid(reply)
                assert reply.status == 200 and b"Headline two" in reply.body, (
                    f"worker {pid} ({pids}) answered a page that saw clock {clock} with its old page")
                assert int(reply.headers["X-Hotmod-Live-Clock"]) >= clock, dict(reply.headers)
                seen_lagging |= pid == pids["lagging"]

        # In the browser: each edit shows, and the page never records a new clock with
        # the old headline.
        state = open_page(tab, f"http://127.0.0.1:{port}/")
        assert state["headline"] == "Headline two"
        old = "Headline two"
        answered_by = []
        for n in ("three", "four", "five"):
            new = f"Headline {n}"
            clock = page_state(tab)["clock"]
            set_headline(site, old, new)
            state = wait_headline(tab, new)
            stale = [seen for seen in state["seen"] if seen[0] and int(seen[0]) > clock and seen[2] == old]
            assert not stale, f"the page showed the old headline at a newer clock: {state['seen']}"
            assert state["load"] == 1, state
            answered_by.append(int(tab.find_element("id", "pid").text))
            old = new
        assert set(answered_by) <= set(pids.values())
    finally:
        server.stop()


def fetch_many(port: int, path: str, *, headers: dict[str, str] | None = None, count: int = 8) -> list[Reply]:
    """Concurrent requests, so that both workers of a sync server answer some."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(port, "GET", path, headers=headers, timeout=15.0), range(count)))

