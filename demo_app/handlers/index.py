"""``/legacy/``: what the handler folder publishes."""

from __future__ import annotations

from werkzeug.wrappers import Request

from . import _layout


def index(request: Request) -> str:
    root = request.script_root
    return _layout.page(
        request,
        "Handlers, mod_python.publisher style",
        f"""<p>Each function of a module in <code>demo_app/handlers/</code> is a URL:</p>
<ul>
<li><a href="{root}/hello">{root}/hello</a>: <code>hello.index(request, name="world")</code></li>
<li><a href="{root}/hello?name=Grisha">{root}/hello?name=Grisha</a>: a query parameter</li>
<li><a href="{root}/hello/shout?name=Grisha">{root}/hello/shout?name=Grisha</a>: <code>hello.shout</code></li>
<li><a href="{root}/api/status">{root}/api/status</a>: a dict comes back as JSON</li>
</ul>
<p>Edit <code>GREETING</code> in <code>demo_app/handlers/hello.py</code> and reload; add a
new module and its URLs are live; delete it and they answer 404.</p>""",
    )
