"""A Flask-SQLAlchemy app in its documented app-factory layout (``db`` in
``extensions.py``, models in ``models.py``, a blueprint in ``main/``, templates in
``templates/main/``), served by ``hotmod serve 'inventory:create_app()'`` with no
flags: a view, a template in a sub-folder and ``models.py`` are edited, and each
edit serves in the same process (issue 20). One server for the module; each test
leaves the app as it found it."""

from __future__ import annotations

import os
from pathlib import Path

from support import Served, replace, wait_until

TARGET = "inventory:create_app()"
FIXTURE = "flask_sqla"
PACKAGE = "inventory"
EDITS = 8


def database_descriptors(server: Served, root: Path) -> int:
    """How many of the server's open descriptors lead to its SQLite database."""
    real = os.path.realpath(root / "instance" / "inventory.db")
    count = 0
    for fd in os.listdir(f"/proc/{server.pid}/fd"):
        try:
            if os.readlink(f"/proc/{server.pid}/fd/{fd}") == real:
                count += 1
        except OSError:  # closed since it was listed
            continue
    return count


def test_nothing_is_reloaded_at_start_up(server: Served) -> None:
    generation, out = server.start_state
    assert generation == 1
    assert "reloaded" not in out and "refreshed" not in out
    assert server.get("/")[0] == 200
    assert "<li>widget: 3</li>" in server.get("/")[1]


def test_a_view_edit_shows_in_the_same_process(server: Served, pkg: Path) -> None:
    replace(pkg / "main" / "views.py", 'heading="Inventory"', 'heading="Stock"')
    server.wait_served("/", "<h1>Stock</h1>")
    replace(pkg / "main" / "views.py", 'heading="Stock"', 'heading="Inventory"')
    server.wait_served("/", "<h1>Inventory</h1>")
    assert server.out().count("hotmod: serving ") == 1  # in-process: never restarted


def test_a_template_in_a_sub_folder_shows_its_edit_without_running_python(server: Served, pkg: Path) -> None:
    before = server.status()["generation"]
    template = pkg / "templates" / "main" / "index.html"
    replace(template, "<li>{{ item.name }}:", "<li>item {{ item.name }}:")
    server.wait_served("/", "<li>item widget: 3</li>")
    replace(template, "<li>item {{ item.name }}:", "<li>{{ item.name }}:")
    server.wait_served("/", "<li>widget: 3</li>")
    assert server.status()["generation"] == before


def test_a_models_edit_serves_in_the_same_process_three_times(server: Served, pkg: Path) -> None:
    """Issue 20: every edit of models.py failed with "Table 'inventory_item' is
    already defined for this MetaData instance", and every page was a 500."""
    models = pkg / "models.py"
    assert server.get("/items") == (200, "<Item widget>")
    for n in range(1, 4):
        replace(models, f"<Item{n - 1 if n > 1 else ''} {{self.name}}>", f"<Item{n} {{self.name}}>")
        server.wait_served("/items", f"<Item{n} widget>")
        assert "<li>widget: 3</li>" in server.get("/")[1]
    replace(models, "<Item3 {self.name}>", "<Item {self.name}>")
    server.wait_served("/items", "<Item widget>")
    assert "failed" not in server.out() and "already defined" not in server.output()
    assert server.out().count("hotmod: serving ") == 1


def test_eight_view_edits_keep_the_database_descriptors_and_leak_nothing(
    server: Served, pkg: Path, app_root: Path
) -> None:
    """Each edit makes a new app with its own engine; the retired app's engine is
    disposed when its generation retires, so the descriptors on the .db file come
    back to one (the current app's pooled connection) after every edit."""
    server.get("/")
    first = database_descriptors(server, app_root)
    assert first == 1
    views = pkg / "main" / "views.py"
    for n in range(1, EDITS + 1):
        replace(views, f'heading="Inventory{n - 1 if n > 1 else ""}"', f'heading="Inventory{n}"')
        server.wait_served("/", f"<h1>Inventory{n}</h1>")
        wait_until(lambda: database_descriptors(server, app_root) <= first, timeout=5.0,
                   what="the retired app's connection closed")
    replace(views, f'heading="Inventory{EDITS}"', 'heading="Inventory"')
    server.wait_served("/", "<h1>Inventory</h1>")
    status = server.settle()
    assert status["leaked"] == []
    assert "leak" not in server.err()
    assert database_descriptors(server, app_root) == first
