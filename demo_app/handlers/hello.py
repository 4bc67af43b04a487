"""``/legacy/hello`` and ``/legacy/hello/shout``. Edit ``GREETING`` and reload."""

from __future__ import annotations

from html import escape

from werkzeug.wrappers import Request

from . import _layout

GREETING = "Hello"


def index(request: Request, name: str = "world") -> str:
    return _layout.page(request, f"{GREETING}, {name}!", f"<p>{escape(GREETING)}, {escape(name)}.</p>")


def shout(request: Request, name: str = "world") -> str:
    return _layout.page(request, f"{GREETING}, {name}!".upper(), "<p>Shouted.</p>")


def _greeting() -> str:
    # Not reachable: names starting with "_" are never published.
    return GREETING
