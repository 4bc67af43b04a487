"""A notes app whose database pool survives every reload: hotmod's demo.

Serve it with ``make run`` (``hotmod serve demo_app.wsgi:app``); see
``docs/demo.md`` for the two-minute walkthrough.
"""
