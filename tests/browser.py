"""A real headless browser for the live-reload tests (issue 22), beside ``support.py``.

- ``find_browser``: Debian's ``chromium`` and ``chromedriver`` (``HOTMOD_CHROMIUM`` and
  ``HOTMOD_CHROMEDRIVER`` name others), or why there are none;
- ``headless_chromium``: a Selenium driver for them, given both paths explicitly, so
  that Selenium Manager never looks for (or downloads) a driver or a browser;
- the ``browser`` fixture (one browser per test module, always quit): skips with the
  reason where no browser can be found or started, but fails under ``CI=true``, as
  the PostgreSQL fixture does, so that CI can never pass without the browser tests;
- ``wait_js``: a bounded poll of a JavaScript expression in the current tab;
- ``established_connections``: the TCP connections a server holds on its port, read
  from ``/proc/net/tcp*`` (how many sockets a browser keeps open to it).

A test module uses the fixture with ``pytest_plugins = ["browser"]``. It imports the
helpers before pytest loads it as a plugin, too late to rewrite its asserts (it has
none): PYTEST_DONT_REWRITE says so.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

#: Where Debian's packages put them (``chromium``, ``chromium-driver``), then other names.
CHROMIUM_NAMES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER_NAMES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver", "chromedriver")

#: Bound of a page load, and of a script the driver runs, in seconds.
PAGE_LOAD_TIMEOUT = 20.0
SCRIPT_TIMEOUT = 10.0

#: The window every tab gets: tall pages scroll in it.
WINDOW_SIZE = (1200, 800)


class NoBrowser(Exception):
    """No browser could be found or started here; the message says why."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _executable(override: str, names: tuple[str, ...], what: str) -> str:
    """The path of ``what``: the environment variable ``override`` when set (it must
    name an executable file), else the first of ``names`` found."""
    named = os.environ.get(override)
    if named:
        if os.path.isfile(named) and os.access(named, os.X_OK):
            return named
        raise NoBrowser(f"{override}={named} is not an executable file")
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise NoBrowser(
        f"no {what} found (looked for {', '.join(names)}; {override} names another;"
        " `bash .ci/browser.sh` installs Debian's chromium and chromium-driver)"
    )


def find_browser() -> tuple[str, str]:
    """The paths of chromium and chromedriver; ``NoBrowser`` says why there are none."""
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        raise NoBrowser(f"selenium is not installed ({exc}); `make install` installs it") from None
    return (
        _executable("HOTMOD_CHROMIUM", CHROMIUM_NAMES, "chromium"),
        _executable("HOTMOD_CHROMEDRIVER", CHROMEDRIVER_NAMES, "chromedriver"),
    )


def headless_chromium(chromium: str, chromedriver: str) -> WebDriver:
    """A headless Chromium driven by ``chromedriver``, with bounded page loads and
    scripts. Both paths are given, so Selenium Manager is never asked for anything."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root in a container, the sandbox cannot start
        "--disable-dev-shm-usage",  # a small /dev/shm crashes the renderer
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-component-update",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(SCRIPT_TIMEOUT)
    except BaseException:
        driver.quit()
        raise
    return driver


def no_browser(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail under ``CI=true``, where the browser tests must run."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires the browser tests to run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the test module, quit at its end. Where none can be
    found or started: skipped with the reason, or failed under ``CI=true``."""
    try:
        chromium, chromedriver = find_browser()
    except NoBrowser as exc:
        no_browser(str(exc))
    try:
        driver = headless_chromium(chromium, chromedriver)
    except Exception as exc:  # whatever stops it from starting means the same thing here
        no_browser(f"{chromium} did not start under {chromedriver} ({type(exc).__name__}: {exc})")
    try:
        yield driver
    finally:
        driver.quit()


def wait_js(driver: WebDriver, expression: str, timeout: float = 10.0, *, what: str = "") -> Any:
    """Evaluate the JavaScript ``expression`` in the current tab until it is truthy; its
    value then. Fails after ``timeout`` seconds, naming the last value. While the tab
    navigates (a full reload), an evaluation may find no document: it is asked again."""
    from selenium.common.exceptions import JavascriptException, WebDriverException

    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = driver.execute_script(f"return ({expression});")
        except JavascriptException:
            raise  # a mistake in the expression, not a page still loading
        except WebDriverException as exc:
            last = f"{type(exc).__name__}: {exc.msg}"
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or expression}; last value: {last!r}"
            )
        time.sleep(0.01)


def established_connections(port: int) -> int:
    """How many TCP connections to ``127.0.0.1:port`` (or ``[::1]``) are established,
    counted on the server's side (local port ``port``) in ``/proc/net/tcp`` and
    ``tcp6``. Linux only."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                count += 1
    return count
