"""A notes app whose database pool survives every reload: hotmod's demo.

Serve it with ``make run`` (``hotmod serve demo_app.wsgi:app``), or its ASGI face,
FastAPI on the same pool, with ``make run-asgi`` (``hotmod serve demo_app.asgi:app``);
see ``docs/demo.md`` for the two-minute walkthrough.
"""
