"""Publisher: mod_python.publisher-style dispatch of a handler folder, safe by default,
reloaded through the engine's generations.

The handler modules are files in ``tests/fixtures/publisher/`` copied into a tmp
folder. Tests that only read share one Publisher per mode (module-scoped); tests that
edit files build their own, with the real watcher, and wait with bounded polls.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import wait_until, write
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client as WerkzeugClient
from werkzeug.test import TestResponse, create_environ

import hotmod
import hotmod.middleware
from hotmod import Publisher
from hotmod.middleware._publisher import _TableFinder
from hotmod.reloader import ReloadError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "publisher"


def copy_handlers(destination: Path) -> Path:
    folder = destination / "handlers"
    shutil.copytree(FIXTURES / "handlers", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


class Client(WerkzeugClient):
    """werkzeug's test client, reading and closing every response: an unclosed one
    would keep its request, and so its generation, in flight."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publisher]:
    """One Publisher in production mode over a copy of the fixture handlers."""
    publisher = Publisher(copy_handlers(tmp_path_factory.mktemp("production")))
    yield publisher
    publisher.close()


@pytest.fixture(scope="module")
def debug(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publisher]:
    publisher = Publisher(copy_handlers(tmp_path_factory.mktemp("debug")), debug=True)
    yield publisher
    publisher.close()


@pytest.fixture
def client(production: Publisher) -> Client:
    return Client(production)


@pytest.fixture
def debug_client(debug: Publisher) -> Client:
    return Client(debug)


@pytest.fixture
def handlers(tmp_path: Path) -> Path:
    """A fresh copy of the fixture handlers, for a test that edits them."""
    return copy_handlers(tmp_path)


@pytest.fixture
def publish() -> Iterator[Callable[..., Publisher]]:
    """Builds Publishers with the real watcher and closes them all at the end."""
    made: list[Publisher] = []

    def make(folder: Path, **options: Any) -> Publisher:
        publisher = Publisher(folder, **options)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


# -- the public name ------------------------------------------------------------------------


def test_publisher_is_exported_beside_hotreload_from_hotmod_and_hotmod_middleware() -> None:
    assert hotmod.Publisher is hotmod.middleware.Publisher is Publisher
    assert "Publisher" in hotmod.__all__
    assert "Publisher" in hotmod.middleware.__all__


def test_directory_that_is_not_a_folder_is_refused_with_a_plain_sentence(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a folder"):
        Publisher(tmp_path / "missing")
    with pytest.raises(ValueError, match="path to a folder"):
        Publisher(42)  # type: ignore[arg-type]


def table_finders() -> list[object]:
    """The Publishers' table-module finders now on ``sys.meta_path``."""
    return [f for f in sys.meta_path if isinstance(f, _TableFinder)]


def test_handler_that_fails_to_import_raises_at_construction_naming_file_and_line(
    handlers: Path,
) -> None:
    write(handlers / "bad.py", "def index():\n    return 'x'\n\n1 / 0\n")
    finders = table_finders()
    with pytest.raises(ReloadError) as caught:
        Publisher(handlers)
    assert caught.value.failure.file == str(handlers / "bad.py")
    assert caught.value.failure.line == 4
    assert table_finders() == finders  # nothing left behind


def test_repr_names_the_folder_the_generation_and_the_state(production: Publisher) -> None:
    assert repr(production) == f"<Publisher {str(production.directory)!r} generation=1 watching>"


def test_close_removes_the_table_module_and_its_finder_and_is_idempotent(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    publisher = publish(handlers)
    table_file = Path(publisher.reloader.current.modules[publisher.package].__file__ or "")
    assert table_file.exists()
    publisher.close()
    publisher.close()
    assert not table_file.parent.exists()
    assert publisher.package not in sys.modules
    assert not any(f.package == publisher.package for f in table_finders())  # type: ignore[attr-defined]
    assert repr(publisher).endswith("closed>")


# -- the routing table ----------------------------------------------------------------------


def test_root_calls_index_in_index_py(client: Client) -> None:
    assert text(client.get("/")) == "published index.index"


def test_module_path_calls_the_modules_index(client: Client) -> None:
    assert text(client.get("/notes")) == "published notes.index shared v1"


def test_module_and_function_path_calls_that_function(client: Client) -> None:
    response = client.get("/notes/list")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert text(response) == "published notes.list"


def test_one_trailing_slash_is_ignored(client: Client) -> None:
    assert text(client.get("/notes/")) == "published notes.index shared v1"
    assert text(client.get("/notes/list/")) == "published notes.list"
    assert client.get("/notes/list//").status_code == 404


def test_py_suffix_on_the_module_names_the_same_module(client: Client) -> None:
    assert text(client.get("/notes.py/list")) == "published notes.list"
    assert text(client.get("/index.py")) == "published index.index"
    assert client.get("/notes/list.py").status_code == 404


def test_one_segment_that_is_no_module_names_a_function_of_index_py(client: Client) -> None:
    assert text(client.get("/about")) == "published index.about"
    assert text(client.get("/index/about")) == "published index.about"


def test_module_without_index_function_answers_404_at_its_own_path(client: Client) -> None:
    assert client.get("/exported").status_code == 404


def test_paths_deeper_than_module_and_function_are_404(client: Client) -> None:
    assert client.get("/notes/list/more").status_code == 404


def test_routes_lists_every_published_url_and_nothing_else(production: Publisher) -> None:
    assert production.routes() == {
        "/": "index.index",
        "/exported/shown": "exported.shown",
        "/index/about": "index.about",
        "/notes": "notes.index",
        "/notes/add": "notes.add",
        "/notes/broken": "notes.broken",
        "/notes/forbidden": "notes.forbidden",
        "/notes/legacy": "notes.legacy",
        "/notes/list": "notes.list",
        "/notes/nothing": "notes.nothing",
        "/notes/preflight": "notes.preflight",
        "/notes/raw": "notes.raw",
        "/notes/read_only": "notes.read_only",
        "/notes/search": "notes.search",
        "/notes/show": "notes.show",
        "/notes/tags": "notes.tags",
        "/notes/upload": "notes.upload",
        "/notes/where": "notes.where",
    }


# -- parameters -----------------------------------------------------------------------------


def test_parameter_named_request_receives_the_werkzeug_request(client: Client) -> None:
    assert text(client.get("/notes/legacy")) == "published notes.legacy GET /notes/legacy"


def test_parameter_named_req_receives_the_request_as_mod_python_named_it(client: Client) -> None:
    assert text(client.post("/notes/legacy")) == "published notes.legacy POST /notes/legacy"


def test_query_parameters_fill_the_handlers_named_parameters(client: Client) -> None:
    response = client.get("/notes/show?id=7&style=bold&ignored=1")
    assert response.json == {"published": "notes.show", "id": "7", "style": "bold"}


def test_form_fields_fill_the_handlers_named_parameters(client: Client) -> None:
    response = client.post("/notes/show", data={"id": "8"})
    assert response.json == {"published": "notes.show", "id": "8", "style": "plain"}


def test_a_field_given_several_times_arrives_as_a_list(client: Client) -> None:
    assert client.get("/notes/tags?tag=a").json == ["published notes.tags", "a"]
    assert client.get("/notes/tags?tag=a&tag=b").json == ["published notes.tags", ["a", "b"]]


def test_missing_required_parameter_is_400_naming_it(client: Client) -> None:
    response = client.get("/notes/show?style=bold")
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert text(response) == "Bad Request: missing parameter 'id'\n"


def test_var_keyword_receives_every_field_not_named_by_a_parameter(client: Client) -> None:
    response = client.get("/notes/search?q=tea&colour=green&colour=black&size=2")
    assert response.json == {
        "published": "notes.search",
        "q": "tea",
        "filters": {"colour": ["green", "black"], "size": "2"},
    }


def test_uploaded_file_arrives_as_a_file_object(client: Client) -> None:
    response = client.post(
        "/notes/upload", data={"attachment": (io.BytesIO(b"hello"), "hello.txt")}
    )
    assert response.json == {"published": "notes.upload", "filename": "hello.txt", "content": "hello"}


# -- what a handler returns -----------------------------------------------------------------


def test_a_str_is_served_as_html_and_bytes_too(client: Client) -> None:
    response = client.get("/notes/raw")
    assert (response.mimetype, response.mimetype_params) == ("text/html", {"charset": "utf-8"})
    assert response.data == b"published notes.raw"


def test_a_dict_or_list_is_served_as_json(client: Client) -> None:
    assert client.get("/notes/show?id=1").mimetype == "application/json"
    assert client.get("/notes/tags?tag=x").mimetype == "application/json"


def test_a_werkzeug_response_is_served_as_it_is(client: Client) -> None:
    response = client.post("/notes/add", data={"title": "tea"})
    assert (response.status_code, response.mimetype) == (201, "text/plain")
    assert text(response) == "published notes.add tea"


def test_a_raised_http_exception_is_its_response(client: Client) -> None:
    response = client.get("/notes/forbidden")
    assert response.status_code == 403
    assert "published notes.forbidden says no" in text(response)


def test_a_handler_that_raises_is_a_plain_500_in_production_with_the_traceback_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="hotmod.publisher"):
        response = client.get("/notes/broken")
    assert response.status_code == 500
    assert (response.mimetype, text(response)) == ("text/plain", "Internal Server Error\n")
    record = next(r for r in caplog.records if r.name == "hotmod.publisher")
    assert "notes.broken" in record.getMessage()
    assert "ValueError" in record.getMessage() and "notes.py" in record.getMessage()


def test_debug_mode_shows_the_traceback_html_escaped(debug_client: Client) -> None:
    response = debug_client.get("/notes/broken")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    page = text(response)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;published notes.broken&#x27;)&lt;/script&gt;" in page
    assert "Traceback (most recent call last)" in page
    assert "notes.py" in page


def test_returning_none_is_a_500_whose_debug_page_names_the_handler(
    client: Client, debug_client: Client
) -> None:
    assert client.get("/notes/nothing").status_code == 500
    page = text(debug_client.get("/notes/nothing"))
    assert "handler notes.nothing" in page and "returned NoneType" in page


# -- exposure: what is never reachable ------------------------------------------------------


def assert_not_found(client: Client, *paths: str) -> None:
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert text(response) == "Not Found\n", path


def test_function_whose_name_starts_with_underscore_is_404(client: Client) -> None:
    assert_not_found(client, "/notes/_helper", "/notes/_unreachable")


def test_imported_function_is_404(client: Client) -> None:
    assert_not_found(client, "/notes/join", "/notes/partial")


def test_alias_of_a_published_function_is_404(client: Client) -> None:
    assert_not_found(client, "/notes/start")


def test_lambda_bound_to_a_name_is_404(client: Client) -> None:
    assert_not_found(client, "/notes/shout")


def test_class_is_404_and_so_is_calling_it(client: Client) -> None:
    assert_not_found(client, "/notes/Note", "/notes/Note/__init__", "/notes/Request")


def test_module_bound_to_a_name_is_404_and_so_are_its_attributes(client: Client) -> None:
    assert_not_found(client, "/notes/os", "/notes/os/system", "/notes/sys/exit", "/notes/_shared")


def test_builtin_bound_to_a_name_and_the_builtins_are_404(client: Client) -> None:
    assert_not_found(client, "/notes/length", "/notes/__builtins__", "/__builtins__", "/notes/open")


def test_partial_and_other_callable_objects_are_404(client: Client) -> None:
    assert_not_found(client, "/notes/greet")


def test_constants_are_404_where_mod_python_published_their_str(client: Client) -> None:
    assert_not_found(client, "/notes/SECRET", "/notes/SETTINGS", "/notes/__file__", "/notes/__name__")


def test_module_internals_cannot_be_reached_through_attribute_paths(client: Client) -> None:
    # The historical mod_python.publisher holes: traversal into a function's globals
    # and code, and the module's namespace itself.
    assert_not_found(
        client,
        "/notes/list/__globals__",
        "/notes/list/func_globals",
        "/notes/index/func_code",
        "/notes/list/__globals__/os/system",
        "/notes/__dict__",
        "/notes/__dict__/SECRET",
        "/notes.list.__globals__",
        "/notes/list.__globals__",
    )


def test_all_limits_publishing_to_the_functions_it_lists(client: Client) -> None:
    assert text(client.get("/exported/shown")) == "published exported.shown"
    assert_not_found(client, "/exported/hidden", "/exported/NOT_A_FUNCTION", "/exported/missing")


def test_private_modules_and_subfolders_are_404(client: Client) -> None:
    assert_not_found(client, "/_shared", "/_shared/footer", "/sub", "/sub/inner", "/sub/inner/index")


def test_files_other_than_py_modules_are_404(client: Client) -> None:
    assert_not_found(client, "/config.ini", "/config", "/config.ini/secret", "/notes.pyc", "/notes.txt")


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def call_raw(app: Any, path: str, *, method: str = "GET", raw: str | None = None) -> Raw:
    """Call ``app`` with ``path`` as PATH_INFO exactly as given, and ``raw`` as the
    request URI the server received (by default ``path``, URL-quoted)."""
    environ = create_environ("/", method=method)
    environ["PATH_INFO"] = path
    environ["REQUEST_URI"] = raw if raw is not None else quote(path, safe="/", encoding="latin-1")
    environ.pop("RAW_URI", None)
    started: list[tuple[str, list[tuple[str, str]]]] = []
    result = app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        data = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    status, headers = started[0]
    return Raw(int(status.split()[0]), dict(headers), data)


def test_dot_segments_and_absolute_paths_are_404(production: Publisher) -> None:
    for path in ["/../handlers/notes/list", "/notes/../index", "/./notes", "/notes/..", "//etc/passwd",
                 "/notes/.", "/..", "/.", "notes/list", "/etc/passwd"]:
        assert call_raw(production, path).status == 404, path


def test_empty_path_info_is_the_folders_root(production: Publisher) -> None:
    # What a mount at "/legacy" gives for a request to "/legacy".
    reply = call_raw(production, "")
    assert (reply.status, reply.text) == (200, "published index.index")


def test_encoded_slashes_and_backslashes_are_404_whether_or_not_the_server_decoded_them(
    production: Publisher,
) -> None:
    # A server that decodes %2F gives PATH_INFO "/notes/list": the raw URI tells.
    assert call_raw(production, "/notes/list", raw="/notes%2Flist").status == 404
    assert call_raw(production, "/notes/list", raw="/notes%2flist").status == 404
    # A server that keeps it gives PATH_INFO "/notes%2Flist".
    assert call_raw(production, "/notes%2Flist").status == 404
    assert call_raw(production, "/notes\\list", raw="/notes%5Clist").status == 404
    assert call_raw(production, "/notes/list\x00", raw="/notes/list%00").status == 404
    assert call_raw(production, "/notes/list").status == 200


def test_symlinked_module_is_never_loaded_nor_published(
    tmp_path: Path, handlers: Path, publish: Callable[..., Publisher]
) -> None:
    outside = tmp_path / "outside.py"
    marker = tmp_path / "outside-ran"
    outside.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef index():\n    return 'outside'\n")
    (handlers / "linked.py").symlink_to(outside)
    (handlers / "inside.py").symlink_to(handlers / "index.py")
    client = Client(publish(handlers))
    assert_not_found(client, "/linked", "/inside")
    assert not marker.exists()


def test_file_whose_name_is_no_identifier_is_never_loaded(
    tmp_path: Path, handlers: Path, publish: Callable[..., Publisher]
) -> None:
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').close()\n\ndef index():\n    return 'ran'\n"
    for name in ("my-page.py", "2fast.py", "café.py", "_private.py"):
        (handlers / name).write_text(source)
    client = Client(publish(handlers))
    assert_not_found(client, "/my-page", "/2fast", "/_private")
    assert not marker.exists()


def test_handler_module_named_like_the_stdlib_shadows_nothing(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    write(handlers / "json.py", "def index():\n    return 'published json.index'\n")
    client = Client(publish(handlers))
    assert text(client.get("/json")) == "published json.index"
    assert client.get("/notes/show?id=1").json["id"] == "1"  # the real json module serialized it
    assert sys.modules["json"] is json


# -- methods --------------------------------------------------------------------------------


def test_head_answers_like_get_without_a_body(client: Client) -> None:
    get, head = client.get("/notes/list"), client.head("/notes/list")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.data))


def test_options_answers_with_the_allowed_methods(client: Client) -> None:
    response = client.options("/notes/list")
    assert response.status_code == 200
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert response.data == b""
    assert client.options("/notes/_helper").status_code == 404


def test_a_method_no_handler_declared_is_405_with_the_allow_header(client: Client) -> None:
    for method in ("PUT", "DELETE", "PATCH", "TRACE", "BREW"):
        response = client.open("/notes/list", method=method)
        assert response.status_code == 405, method
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
        assert text(response) == "Method Not Allowed\n"


def test_methods_attribute_declares_what_a_handler_accepts(client: Client) -> None:
    assert client.get("/notes/add?title=x").status_code == 405
    assert client.head("/notes/add").status_code == 405
    assert client.get("/notes/add").headers["Allow"] == "OPTIONS, POST"
    assert client.post("/notes/add", data={"title": "x"}).status_code == 201


def test_declaring_get_accepts_head_too_and_a_single_string_is_one_method(client: Client) -> None:
    assert client.get("/notes/read_only").status_code == 200
    assert client.head("/notes/read_only").status_code == 200
    assert client.post("/notes/read_only").status_code == 405
    assert client.options("/notes/read_only").headers["Allow"] == "GET, HEAD, OPTIONS"


def test_handler_that_declares_options_answers_it_itself(client: Client) -> None:
    response = client.options("/notes/preflight")
    assert text(response) == "published notes.preflight"
    assert client.put("/notes/preflight").status_code == 200
    assert client.get("/notes/preflight").status_code == 405


def test_invalid_methods_attribute_fails_the_load_naming_file_and_line(handlers: Path) -> None:
    write(handlers / "bad.py", "def index():\n    return 'x'\n\nindex.methods = 42\n")
    with pytest.raises(ReloadError, match=re.escape(f"{handlers / 'bad.py'}:1: index.methods must be")):
        Publisher(handlers)


# -- production and debug messages ----------------------------------------------------------


def test_production_errors_are_short_plain_and_not_sniffable(client: Client) -> None:
    response = client.get("/notes/os")
    assert (response.status_code, response.mimetype, text(response)) == (404, "text/plain", "Not Found\n")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_debug_404_and_405_say_why(debug_client: Client) -> None:
    assert text(debug_client.get("/notes/join")) == (
        "Not Found: notes.join is not published: 'join' was imported from posixpath;"
        " only the module's own functions are published\n"
    )
    assert "'shout' is a lambda" in text(debug_client.get("/notes/shout"))
    assert "is a type" in text(debug_client.get("/notes/Note"))
    assert "__all__ does not list 'hidden'" in text(debug_client.get("/exported/hidden"))
    assert "no handler module nope.py" in text(debug_client.get("/nope/x"))
    assert "at most a module and a function" in text(debug_client.get("/notes/list/__globals__"))
    assert text(debug_client.put("/notes/add")) == "Method Not Allowed: notes.add accepts OPTIONS, POST\n"


def test_debug_details_are_for_loopback_and_allowed_hosts_only(
    debug_client: Client, handlers: Path, publish: Callable[..., Publisher]
) -> None:
    # A page on another site that resolves its name to this server (DNS rebinding)
    # sends its own Host: it gets the production answers, as from HotReload.
    foreign = {"base_url": "http://evil.example/"}
    assert text(debug_client.get("/notes/join", **foreign)) == "Not Found\n"
    assert text(debug_client.put("/notes/add", **foreign)) == "Method Not Allowed\n"
    broken = debug_client.get("/notes/broken", **foreign)
    assert (broken.mimetype, text(broken)) == ("text/plain", "Internal Server Error\n")
    assert "X-Hotmod-Generation" not in debug_client.get("/", **foreign).headers
    assert "is not published" in text(debug_client.get("/notes/join", base_url="http://127.0.0.1:8000/"))
    allowed = Client(publish(handlers, debug=True, allow_hosts=["shop.test"]))
    assert "is not published" in text(allowed.get("/notes/join", base_url="http://shop.test/"))
    assert "Traceback" in text(allowed.get("/notes/broken", base_url="http://shop.test:8080/"))
    with pytest.raises(ValueError, match="list of host names"):
        Publisher(handlers, allow_hosts="shop.test")


def test_debug_pages_carry_the_protective_headers(debug_client: Client) -> None:
    for response in (debug_client.get("/notes/broken"), debug_client.get("/notes/join")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in debug_client.get("/notes/broken").headers["Content-Security-Policy"]


def test_debug_mode_adds_hotreloads_status_endpoint_and_generation_header(debug_client: Client) -> None:
    assert debug_client.get("/").headers["X-Hotmod-Generation"] == "1"
    assert debug_client.get("/__hotmod__").json["generation"] == 1


# -- mounting -------------------------------------------------------------------------------


def test_mounted_with_dispatcher_middleware_handlers_see_script_name_and_path_info(
    production: Publisher,
) -> None:
    def front(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"front"]

    client = Client(DispatcherMiddleware(front, {"/legacy": production}))
    assert client.get("/legacy/notes/where").json == {
        "published": "notes.where",
        "script_root": "/legacy",
        "path": "/notes/where",
    }
    assert text(client.get("/legacy")) == "published index.index"
    assert text(client.get("/legacy/")) == "published index.index"
    assert text(client.get("/legacyx")) == "front"
    assert text(client.get("/notes/list")) == "front"


# -- reloading through the real engine ------------------------------------------------------


def body(client: Client, path: str) -> tuple[int, str]:
    response = client.get(path)
    return response.status_code, text(response)


def test_new_file_makes_its_urls_live(handlers: Path, publish: Callable[..., Publisher]) -> None:
    publisher = publish(handlers)
    client = Client(publisher)
    assert client.get("/fresh").status_code == 404
    write(handlers / "fresh.py", """
        def index():
            return 'fresh index'

        def more():
            return 'fresh more'
        """)
    wait_until(lambda: body(client, "/fresh") == (200, "fresh index"), what="the new module's index")
    assert body(client, "/fresh/more") == (200, "fresh more")
    assert publisher.routes()["/fresh/more"] == "fresh.more"


def test_edited_handler_serves_its_new_code_in_a_new_generation(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    publisher = publish(handlers)
    client = Client(publisher)
    write(handlers / "index.py", "def index():\n    return 'index v2'\n\ndef added():\n    return 'added'\n")
    wait_until(lambda: body(client, "/") == (200, "index v2"), what="the edited index")
    assert body(client, "/added") == (200, "added")
    assert client.get("/about").status_code == 404  # removed from the module by the edit
    assert publisher.generation >= 2


def test_deleted_file_makes_its_urls_404(handlers: Path, publish: Callable[..., Publisher]) -> None:
    publisher = publish(handlers)
    client = Client(publisher)
    (handlers / "exported.py").unlink()
    wait_until(lambda: client.get("/exported/shown").status_code == 404, what="the deleted module's 404")
    assert "/exported/shown" not in publisher.routes()
    assert publisher.package + ".exported" not in publisher.reloader.current.modules


def test_edit_of_a_private_shared_module_reloads_the_handlers_that_import_it(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    publisher = publish(handlers)
    client = Client(publisher)
    write(handlers / "_shared.py", "FOOTER = 'shared v2'\n")
    wait_until(lambda: body(client, "/notes") == (200, "published notes.index shared v2"), what="v2")
    package = publisher.package
    # The edited module, its importer, and the table module that imports every handler.
    assert set(publisher.reloader.stats()["history"][-1]["modules"]) == {
        f"{package}._shared", f"{package}.notes", package
    }
    # The superseded generation's instances (its table included) are garbage collected.
    assert publisher.reloader.wait_idle(10)
    assert publisher.reloader.stats()["leaked"] == []


def test_failed_edit_in_debug_mode_shows_the_error_page_on_every_url_until_fixed(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    client = Client(publish(handlers, debug=True))
    write(handlers / "notes.py", "def index(:\n")
    wait_until(lambda: client.get("/notes/list").status_code == 500, what="the error page")
    page = text(client.get("/"))
    assert "SyntaxError" in page and "notes.py" in page
    write(handlers / "notes.py", "def index():\n    return 'fixed'\n")
    wait_until(lambda: body(client, "/notes") == (200, "fixed"), what="the fix")


def test_failed_edit_keeps_the_last_good_generation_serving(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    publisher = publish(handlers)
    client = Client(publisher)
    write(handlers / "index.py", "def index(:\n")
    wait_until(lambda: publisher.reloader.last_error is not None, what="the failed reload")
    assert body(client, "/") == (200, "published index.index")
    assert publisher.generation == 1


def test_reload_picks_up_edited_new_and_deleted_files_synchronously(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    publisher = publish(handlers)
    publisher.reloader.unwatch()  # no watcher: only reload() can see the changes
    write(handlers / "late.py", "def index():\n    return 'late'\n")
    write(handlers / "index.py", "def index():\n    return 'index v2'\n")
    (handlers / "exported.py").unlink()
    client = Client(publisher)
    assert body(client, "/late")[0] == 404
    assert publisher.reload() > 1
    assert body(client, "/late") == (200, "late")
    assert body(client, "/") == (200, "index v2")
    assert client.get("/exported/shown").status_code == 404
    assert publisher.reload() == publisher.generation  # nothing left to do


def test_clone_hook_in_a_handler_module_carries_its_resource_across_an_edit(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    shutil.copy(FIXTURES / "extra" / "resource.py", handlers / "resource.py")
    publisher = publish(handlers)
    client = Client(publisher)
    first = client.get("/resource").json
    assert first["version"] == "v1"
    write(handlers / "resource.py", (handlers / "resource.py").read_text().replace('"v1"', '"v2"'))
    second = wait_until(
        lambda: (r := client.get("/resource").json)["version"] == "v2" and r, what="resource v2"
    )
    assert second["resource"] == first["resource"]  # the same object, handed over
    assert second["created_by"] == "v1"
    publisher.reloader.wait_idle(10)
    assert not (handlers.parent / "purged.log").exists()  # cloned: nothing to purge


def test_deleted_handler_module_is_purged_once_its_generation_drains(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    shutil.copy(FIXTURES / "extra" / "stream.py", handlers / "stream.py")
    purged = handlers.parent / "purged.log"
    publisher = publish(handlers)
    captured: list[str] = []
    response = publisher(
        create_environ("/stream"), lambda status, headers, exc_info=None: captured.append(status)
    )
    chunks = iter(response)
    assert (captured, next(chunks)) == (["200 OK"], b"first v1\n")
    (handlers / "stream.py").unlink()
    wait_until(lambda: Client(publisher).get("/stream").status_code == 404, what="stream.py gone")
    # The request that began on generation 1 still runs there: no purge yet.
    assert [d["in_flight"] for d in publisher.reloader.stats()["draining"]] == [1]
    assert next(chunks) == b"second v1\n"
    assert not purged.exists()
    response.close()  # type: ignore[attr-defined]
    del chunks, response  # the generator's frame would keep the old instance alive
    # The hook appends its line: the file may exist a moment before the line is in it.
    wait_until(lambda: purged.exists() and purged.read_text() == "stream v1\n", what="the purge")
    assert publisher.reloader.wait_idle(10)
    assert purged.read_text() == "stream v1\n"  # once


def test_close_runs_the_handler_modules_purge_hooks(
    handlers: Path, publish: Callable[..., Publisher]
) -> None:
    shutil.copy(FIXTURES / "extra" / "resource.py", handlers / "resource.py")
    publisher = publish(handlers)
    publisher.close()
    assert (handlers.parent / "purged.log").read_text() == "resource v1\n"


# -- fuzzing --------------------------------------------------------------------------------

#: What the fixture folder publishes, as (module, function).
PUBLISHED = {tuple(name.split(".")) for name in [
    "index.index", "index.about", "exported.shown",
    *(f"notes.{n}" for n in (
        "index", "list", "show", "tags", "search", "legacy", "where", "upload", "add",
        "read_only", "preflight", "raw", "forbidden", "broken", "nothing",
    )),
]}
#: Published handlers that fail on purpose: the only ones allowed a 500.
FAILING = {("notes", "broken"), ("notes", "nothing")}
#: Segments that name a module, or look as if they might, and segments that name a
#: function or something else in a module: published names, every kind of unpublished
#: one, and the pieces of traversal attempts.
MODULE_SEGMENTS = sorted(
    {module for module, _ in PUBLISHED}
    | {"notes.py", "index.py", "exported.py", "_shared", "_shared.py", "sub", "inner", "config.ini",
       "config", "os", "__init__", "__init__.py", "__builtins__", "..", ".", "", "%2F", "~"}
)
NAME_SEGMENTS = sorted(
    {name for _, name in PUBLISHED}
    | {
        "_helper", "_unreachable", "join", "partial", "start", "shout", "greet", "length",
        "Note", "Request", "os", "sys", "system", "exit", "SECRET", "SETTINGS", "_shared",
        "footer", "hidden", "NOT_A_FUNCTION", "missing", "inner", "config.ini", "notes.py",
        "__globals__", "func_globals", "func_code", "__dict__", "__builtins__", "__file__",
        "__class__", "__mp_clone__", "__hotmod_dispatch__", "__hotmod_modules__", "__all__",
        "..", ".", "", "%2F", "%2f", "%5C", "\\", "\x00", "notes.list", "list.py", "index.py",
    }
)
SEGMENT = (
    st.sampled_from(MODULE_SEGMENTS)
    | st.sampled_from(NAME_SEGMENTS)
    | st.text(st.characters(codec="latin-1"), max_size=6)
)
METHOD = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "BREW", "get"])


def expected_handler(path: str, raw: str) -> tuple[str, str] | None:
    """The routing table of docs/publisher.md, written out independently."""
    if re.search("%(2f|5c|00)", raw, re.IGNORECASE):
        return None
    if path == "":
        path = "/"
    if not path.startswith("/"):
        return None
    parts = [] if path == "/" else path[1:].split("/")
    if parts and parts[-1] == "":
        parts.pop()
    if len(parts) > 2 or "" in parts:
        return None
    modules = {module for module, _ in PUBLISHED}
    parts = [parts[0].removesuffix(".py"), *parts[1:]] if parts else parts
    if not parts:
        wanted = ("index", "index")
    elif len(parts) == 1:
        wanted = (parts[0], "index") if parts[0] in modules else ("index", parts[0])
    else:
        wanted = (parts[0], parts[1])
    return wanted if wanted in PUBLISHED else None


def check_against_the_routing_table(publisher: Publisher, path: str, raw: str, method: str) -> None:
    """Never a 500 but from a handler that fails on purpose; 404 for every path that
    names nothing published; and a 2xx body only from the published function named."""
    reply = call_raw(publisher, path, method=method, raw=raw)
    wanted = expected_handler(path, raw)
    if wanted is None:
        assert reply.status == 404, (path, raw, method, reply.status, reply.body[:80])
        return
    assert reply.status != 404, (path, raw, method)
    assert reply.status != 500 or wanted in FAILING, (path, raw, method)
    if reply.status in (200, 201) and reply.body:
        name = ".".join(wanted)
        assert f"published {name}" in reply.text or f'"published": "{name}"' in reply.text, (path, reply.text)


def test_every_pair_of_known_segments_reaches_only_published_functions(production: Publisher) -> None:
    for module in MODULE_SEGMENTS:
        for name in NAME_SEGMENTS:
            path = f"/{module}/{name}"
            raw = quote(path, safe="/", encoding="latin-1")
            for method in ("GET", "POST", "OPTIONS"):
                check_against_the_routing_table(production, path, raw, method)
            # The same path as a server that decoded "%2F" into PATH_INFO received it.
            check_against_the_routing_table(production, path, "/" + raw[1:].replace("/", "%2F", 1), "GET")
        check_against_the_routing_table(production, f"/{module}", quote(f"/{module}", safe="/"), "GET")


@settings(max_examples=500, deadline=None)
@given(
    segments=st.lists(SEGMENT, max_size=4),
    leading=st.sampled_from(["/", "", "//", "./"]),
    encode_slashes=st.booleans(),
    method=METHOD,
)
def test_random_paths_never_fail_and_reach_only_published_functions(
    production: Publisher, segments: list[str], leading: str, encode_slashes: bool, method: str
) -> None:
    path = leading + "/".join(segments)
    raw = quote(path, safe="/", encoding="latin-1")
    if encode_slashes and raw.count("/") > 1:
        # As a server that decodes %2F into PATH_INFO would have received it.
        first, _, rest = raw[1:].partition("/")
        raw = f"/{first}%2F{rest}"
    check_against_the_routing_table(production, path, raw, method)
