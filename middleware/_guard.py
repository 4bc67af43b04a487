"""Who may see the debug pages, and the headers every debug response carries.

A page on another site can have a browser send requests to ``127.0.0.1`` by making
its own DNS name resolve there (DNS rebinding); the browser then lets that page read
the answers, since to it they come from the attacker's own origin. What gives such a
request away is its ``Host`` header: it still names the attacker's domain. So, in the
spirit of Django's ``ALLOWED_HOSTS``, the debug pages answer only a ``Host`` that names
this machine (``localhost``, ``127.0.0.1``, ``[::1]``, any port) or a name the user
allowed; a server bound to another interface is then no more open than that either.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Host names always allowed to see the debug pages (with any port).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")

#: Headers of every debug response (status, error page, refusal): never cached by a
#: browser or a proxy, never sniffed into another content type.
PROTECTIVE_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
)
#: The Content-Security-Policy of a debug response that is not the error page.
NOTHING_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

# A Host header: a DNS name or IPv4 address, or a bracketed IPv6 address, and a port.
_HOST = re.compile(r"(?P<name>[a-z0-9.-]+|\[[a-f0-9:.]+\])(?::[0-9]{1,5})?")
_NAME = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")
# Verdicts per raw Host value seen; dropped whole beyond this many distinct values.
_SEEN_LIMIT = 256


def host_name(value: str) -> str | None:
    """The name in a ``Host`` header value: lower case, without its port or a final
    dot. None when the value is not a well-formed host."""
    match = _HOST.fullmatch(value.lower())
    if match is None:
        return None
    return match["name"].removesuffix(".")


def host_of(environ: Mapping[str, Any]) -> str:
    """The host a request is for: its ``Host`` header or, without one (HTTP/1.0, or an
    empty one), ``SERVER_NAME`` as PEP 3333 rebuilds a URL: the address the server
    was bound to. (The middleware inlines this expression on its request path.)"""
    return environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")  # type: ignore[no-any-return]


def allowed_name(entry: str) -> str:
    """Check one ``allow_hosts`` entry and return it in the form requests are matched
    against: a name (``shop.test``), a domain with its subdomains (``.shop.test``), an
    address (``192.168.1.20``, ``[fe80::1]`` or ``fe80::1``), or ``*`` for any host."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"allow_hosts takes host names, got {entry!r}")
    name = entry.strip().lower().removesuffix(".")
    if name == "*":
        return name
    bare = name.strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    if _NAME.fullmatch(name.removeprefix(".")) is None:
        raise ValueError(
            f"allow_hosts entry {entry!r} is not a host name (give a name without a port:"
            " any port is allowed)"
        )
    return name


class HostCheck:
    """Decides whether a request may see the debug pages, from its ``Host`` header."""

    __slots__ = ("_any", "_names", "_suffixes", "allowed", "seen")

    def __init__(self, allow: Iterable[str] = ()) -> None:
        #: The names the user allowed, as given to :func:`allowed_name`.
        self.allowed: tuple[str, ...] = tuple(dict.fromkeys(allowed_name(e) for e in allow))
        self._any = "*" in self.allowed
        self._names = frozenset(LOOPBACK_HOSTS) | {n for n in self.allowed if not n.startswith(".")}
        self._suffixes = tuple(n for n in self.allowed if n.startswith("."))
        #: Raw ``Host`` value → verdict. Read by the middleware per request (one dict
        #: lookup); written by :meth:`judge`.
        self.seen: dict[str, bool] = {}

    def allows(self, environ: Mapping[str, Any]) -> bool:
        """Whether the request's host may see the debug pages."""
        return self.judge(host_of(environ))

    def judge(self, host: str) -> bool:
        """Whether a request for ``host`` (a ``Host`` value) may see the debug pages;
        the verdict is kept in :attr:`seen`."""
        verdict = self.seen.get(host)
        if verdict is None:
            if len(self.seen) >= _SEEN_LIMIT:
                self.seen = {}  # a fresh dict: a concurrent reader keeps the old one
            verdict = self.seen[host] = isinstance(host, str) and self.allows_name(host_name(host))
        return verdict

    def allows_name(self, name: str | None) -> bool:
        if name is None:
            return False
        if self._any or name in self._names:
            return True
        return any(name == s[1:] or name.endswith(s) for s in self._suffixes)

    def describe(self) -> str:
        """The hosts that may see the debug pages, for a person to read."""
        if self._any:
            return "any host (allowed with '*')"
        return ", ".join([*LOOPBACK_HOSTS, *self.allowed])

    def refusal(self, environ: Mapping[str, Any]) -> bytes:
        """The body of the 400 a host that may not see the debug pages gets."""
        raw = host_of(environ)
        name = host_name(raw) if isinstance(raw, str) else None
        which = f"the host {name!r}" if name is not None else "this Host header"
        option = name if name is not None else "NAME"
        return (
            f"400 Bad Request: hotmod's debug pages answer only {self.describe()}, not"
            f" {which}. To allow it, pass --allow-host {option} to hotmod serve"
            f" (allow_hosts=[{option!r}] to HotReload or Publisher).\n"
        ).encode()
