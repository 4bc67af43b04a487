"""python-livereload serving the bench Flask app, as its Flask examples do.

``python livereload_server.py PORT``: ``Server(app.wsgi_app)`` injects livereload.js
into every HTML page and tells the page to reload when a watched file changes; with a
WSGI app it runs tornado in debug mode, whose autoreload re-executes the process when an
imported module changes. ``app.debug = True`` makes Flask reload its templates.
"""

from __future__ import annotations

import sys

from app.wsgi import app
from livereload import Server


def main() -> None:
    app.debug = True
    server = Server(app.wsgi_app)
    server.watch("app/")
    server.serve(host="127.0.0.1", port=int(sys.argv[1]))


if __name__ == "__main__":
    main()
