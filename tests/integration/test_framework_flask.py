"""The Flask tutorial's app (``flaskr``: a factory, blueprints, templates, SQLite),
served by ``hotmod serve 'flaskr:create_app()'`` with no flags: every kind of edit
shows on the next request, in the same process. One server for the module; each
test leaves the app as it found it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import Served, replace, twenty_edits

TARGET = "flaskr:create_app()"
FIXTURE = "flask"
PACKAGE = "flaskr"


def prepare(root: Path) -> None:
    """As the tutorial says: create the database before the first run."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "flaskr", "init-db"],
        cwd=root, check=True, capture_output=True, timeout=60,
    )


def test_nothing_is_reloaded_at_start_up(server: Served) -> None:
    generation, out = server.start_state
    assert generation == 1
    assert "reloaded" not in out and "refreshed" not in out
    assert server.get("/")[0] == 200


def test_a_view_edit_shows_in_the_same_process(server: Served, pkg: Path) -> None:
    assert server.get("/hello") == (200, "Hello, World!")
    replace(pkg / "__init__.py", "return 'Hello, World!'", "return 'Hello, hotmod!'")
    server.wait_served("/hello", "Hello, hotmod!")
    assert server.process.poll() is None  # still serving
    assert server.out().count("hotmod: serving ") == 1  # in-process: never restarted (execv keeps the pid)
    replace(pkg / "__init__.py", "return 'Hello, hotmod!'", "return 'Hello, World!'")
    server.wait_served("/hello", "Hello, World!")


def test_a_routing_edit_adds_a_route_and_a_renamed_route_answers_404(server: Served, pkg: Path) -> None:
    replace(pkg / "blog.py", "@bp.route('/')\n", "@bp.route('/')\n@bp.route('/posts')\n")
    server.wait_served("/posts", "<h1>Posts</h1>")
    replace(pkg / "__init__.py", "@app.route('/hello')", "@app.route('/hi')")
    server.wait_served("/hi", "Hello, World!")
    assert server.get("/hello")[0] == 404
    replace(pkg / "__init__.py", "@app.route('/hi')", "@app.route('/hello')")
    replace(pkg / "blog.py", "@bp.route('/')\n@bp.route('/posts')\n", "@bp.route('/')\n")
    server.wait_served("/posts", "Not Found", status=404)
    server.wait_served("/hello", "Hello, World!")


def test_a_template_edit_shows_without_running_python(server: Served, pkg: Path) -> None:
    before = server.status()["generation"]
    reloads = server.out().count("reloaded")
    replace(pkg / "templates" / "blog" / "index.html", "Posts{% endblock %}", "All posts{% endblock %}")
    server.wait_served("/", "<h1>All posts</h1>")
    replace(pkg / "templates" / "base.html", "<h1>Flaskr</h1>", "<h1>Flaskr, hot</h1>")
    server.wait_served("/auth/login", "<h1>Flaskr, hot</h1>")
    assert server.status()["generation"] == before  # Jinja reloaded them; no module ran
    replace(pkg / "templates" / "blog" / "index.html", "All posts{% endblock %}", "Posts{% endblock %}")
    replace(pkg / "templates" / "base.html", "<h1>Flaskr, hot</h1>", "<h1>Flaskr</h1>")
    server.wait_served("/", "<h1>Posts</h1>")
    assert server.status()["generation"] == before
    assert server.out().count("reloaded") == reloads


def test_an_exception_in_a_view_shows_the_traceback_page_in_debug_mode(server: Served, pkg: Path) -> None:
    replace(pkg / "__init__.py", "return 'Hello, World!'", "return {}['<missing>']")
    page = server.wait_served("/hello", "KeyError", status=500)
    assert "GET /hello" in page and "__init__.py" in page
    assert "&#x27;&lt;missing&gt;&#x27;" in page and "<missing>" not in page  # escaped
    assert "Internal Server Error</h1>" not in page  # not Flask's bare 500
    server.wait_for("GET /hello raised KeyError")  # its reader may lag behind the page
    assert "GET /hello raised KeyError" in server.err()
    replace(pkg / "__init__.py", "return {}['<missing>']", "return 'Hello, World!'")
    server.wait_served("/hello", "Hello, World!")


def test_a_syntax_error_shows_the_error_page_and_its_fix_shows(server: Served, pkg: Path) -> None:
    replace(pkg / "blog.py", "def index():", "def index(:")
    page = server.wait_served("/", "SyntaxError", status=500)
    assert "blog.py" in page
    server.wait_output(lambda out: "reload failed" in out and "blog.py:" in out, "the failure line")
    replace(pkg / "blog.py", "def index(:", "def index():")
    server.wait_served("/", "<h1>Posts</h1>")


def test_twenty_edits_leak_nothing_and_keep_descriptors_flat(server: Served, pkg: Path) -> None:
    def text(n: int) -> tuple[str, str]:
        served = f"Hello, edit {n}!" if n else "Hello, World!"
        return f"return '{served}'", served

    twenty_edits(server, pkg / "__init__.py", "/hello", text)
