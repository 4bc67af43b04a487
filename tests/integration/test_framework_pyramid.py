"""The Pyramid starter layout (``main(global_config, **settings)`` in the package,
``config.include('.routes')``, ``config.scan()`` of ``views/``, Jinja2 templates, a
``development.ini`` with ``use = egg:myproject``), served by ``hotmod serve
development.ini`` with no flags: every kind of edit shows on the next request, in
the same process. One server for the module; each test leaves the app as it found it."""

from __future__ import annotations

from pathlib import Path

from support import Served, replace, twenty_edits

TARGET = "development.ini"
FIXTURE = "pyramid"
PACKAGE = "myproject"

WELCOME = "Welcome to <span class=\"font-normal\">myproject</span>"
ABOUT_VIEW = """

@view_config(route_name='about', renderer='string')
def about_view(request):
    return 'about page'
"""


def test_nothing_is_reloaded_at_start_up(server: Served) -> None:
    generation, out = server.start_state
    assert generation == 1
    assert "reloaded" not in out
    assert "serving development.ini" in out
    server.wait_served("/", WELCOME)


def test_a_scanned_view_edit_shows_in_the_same_process(server: Served, pkg: Path) -> None:
    replace(pkg / "views" / "default.py", "{'project': 'myproject'}", "{'project': 'edited project'}")
    server.wait_served("/", "Welcome to <span class=\"font-normal\">edited project</span>")
    assert server.process.poll() is None  # still serving
    assert server.out().count("hotmod: serving ") == 1  # in-process: never restarted (execv keeps the pid)
    replace(pkg / "views" / "default.py", "{'project': 'edited project'}", "{'project': 'myproject'}")
    server.wait_served("/", WELCOME)


def test_an_included_routes_edit_adds_a_route_and_a_renamed_route_answers_404(
    server: Served, pkg: Path
) -> None:
    view = pkg / "views" / "default.py"
    view.write_text(view.read_text() + ABOUT_VIEW)
    replace(pkg / "routes.py", "config.add_route('home', '/')",
            "config.add_route('home', '/')\n    config.add_route('about', '/about')")
    server.wait_served("/about", "about page")
    replace(pkg / "routes.py", "config.add_route('home', '/')", "config.add_route('home', '/home')")
    server.wait_served("/home", WELCOME)
    server.wait_served("/", "404</span> Page Not Found", status=404)  # the starter's notfound view
    replace(pkg / "routes.py", "config.add_route('home', '/home')\n    config.add_route('about', '/about')",
            "config.add_route('home', '/')")
    replace(view, ABOUT_VIEW, "")
    server.wait_served("/", WELCOME)
    server.wait_served("/about", "Page Not Found", status=404)


def test_a_template_edit_shows_without_running_python(server: Served, pkg: Path) -> None:
    before = server.status()["generation"]
    reloads = server.out().count("reloaded")
    template = pkg / "templates" / "mytemplate.jinja2"
    replace(template, "Starter project</span></h1>", "Starter project, hot</span></h1>")
    server.wait_served("/", "Starter project, hot")
    replace(template, "Starter project, hot</span></h1>", "Starter project</span></h1>")
    server.wait_served("/", "Starter project</span></h1>")
    # pyramid.reload_templates = true (development.ini): the renderer re-read it.
    assert server.status()["generation"] == before
    assert server.out().count("reloaded") == reloads


def test_a_syntax_error_shows_the_error_page_and_its_fix_shows(server: Served, pkg: Path) -> None:
    replace(pkg / "views" / "default.py", "def my_view(request):", "def my_view(request:")
    page = server.wait_served("/", "SyntaxError", status=500)
    assert "default.py" in page
    replace(pkg / "views" / "default.py", "def my_view(request:", "def my_view(request):")
    server.wait_served("/", WELCOME)


def test_twenty_edits_leak_nothing_and_keep_descriptors_flat(server: Served, pkg: Path) -> None:
    def text(n: int) -> tuple[str, str]:
        project = f"edit {n}" if n else "myproject"
        return f"{{'project': '{project}'}}", f"<span class=\"font-normal\">{project}</span>"

    twenty_edits(server, pkg / "views" / "default.py", "/", text)
