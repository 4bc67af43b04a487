"""The app under hotmod's middleware, for any ASGI server: ``uvicorn hotreload:app``.

``HotReload`` of an ASGI target is itself an ASGI app: each connection is pinned to
the generation current when it began, and each generation's ``FastAPI`` object runs
its own lifespan. The bench serves it beside ``hotmod serve`` on request
(``python -m bench.asgi_save_to_serve --peer hotmod-middleware``), to measure the
middleware apart from the CLI.
"""

from __future__ import annotations

import hotmod

app = hotmod.HotReload("app.main:app")
