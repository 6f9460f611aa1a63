"""Access control: every request and WebSocket passes here before routing (unknown paths too).

Three checks, in this order, each answered in the API's one error shape:

1. `Host` must be on the allow-list (DNS rebinding: a hostile page whose name resolves to
   127.0.0.1 still sends its own name) → 400;
2. a browser's `Origin` must be this server or one of `server.cors_origins` (cross-site requests
   and WebSocket hijacking; browsers send Origin on every cross-site request) → 403;
3. when auth is on, a token: `Authorization: Bearer …` (or `?token=` on the WebSocket, which
   browsers cannot give headers) → 401; a read-only token on anything but GET/HEAD (and POST /api/validate, which
   records nothing) → 403.
   `GET /api/health`, the web page (`/`, `/ui/…`) and the docs page (`/api/schema`, not the
   schema it reads) need none: they reveal nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
    WebSocketCloseEvent,
    WebSocketResponseBodyEvent,
    WebSocketResponseStartEvent,
)

from claudomator.api.errors import error_body
from claudomator.token import Tokens

SAFE_METHODS = frozenset({"GET", "HEAD"})
# POSTs that only read: checking a task file records nothing, so a read-only token may
READING_POSTS = frozenset({"/api/validate"})
OPEN_PATHS = frozenset({"/api/health", "/", "/api/schema", "/api/schema/"})
OPEN_PAGE = "/ui/"  # the web page's static files: they hold no data, the page asks for a token
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# The WebSocket close code for a policy violation: a refused handshake (when the server cannot
# answer it with HTTP), and a client closed because it fell too far behind.
POLICY_VIOLATION = 1008


def is_loopback(host: str) -> bool:
    """True for a bind address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_required(host: str, auth: bool) -> bool:
    """Auth is on when asked for, and always off loopback."""
    return auth or not is_loopback(host)


def host_name(header: str) -> str:
    """The name in a Host header, without port or brackets, lower-case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rpartition(":")[0] if header.count(":") == 1 else header


@dataclass(frozen=True)
class HostRule:
    """Host names the API answers: exact names, `*.suffix`, or `*` for any."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    anything: bool = False

    @classmethod
    def build(cls, bind: str, extra: Iterable[str]) -> HostRule:
        names = {*LOOPBACK_NAMES}
        if bind and not _wildcard(bind):
            names.add(host_name(bind) or bind.lower())
        suffixes = []
        anything = False
        for entry in extra:
            entry = entry.lower()
            if entry == "*":
                anything = True
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), anything)

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if not name:
            return False
        if self.anything or name in self.names or name.endswith(self.suffixes):
            return True
        try:
            return ipaddress.ip_address(name).is_loopback  # 127.0.0.2 is as local as .1
        except ValueError:
            return False


def _wildcard(bind: str) -> bool:
    return bind.strip("[]") in ("0.0.0.0", "::", "")


def origin_allowed(origin: str, host: str, allowed: frozenset[str]) -> bool:
    """Same origin as the Host the request was sent to, or configured for CORS."""
    origin = origin.strip().lower().rstrip("/")
    if origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host.lower()


class AccessControl:
    """An ASGI wrapper around the Litestar router; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: HostRule,
        cors_origins: frozenset[str],
        tokens: Tokens | None,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.cors_origins = cors_origins
        self.tokens = tokens  # None: auth off

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
            await self.app(scope, receive, send)
            return
        http = kind == ScopeType.HTTP
        headers = _headers(scope["headers"])
        host = headers.get("host", "")
        method = str(scope.get("method", "GET")) if http else "GET"
        denied: tuple[int, str, str] | None = None
        if not self.hosts.allows(host):
            denied = (400, "host_not_allowed", "this Host is not on server.allowed_hosts")
        elif "origin" in headers and not origin_allowed(headers["origin"], host, self.cors_origins):
            denied = (403, "origin_not_allowed", "cross-site requests are refused")
        elif self.tokens is not None and not self._open(scope, method, headers):
            access = self.tokens.access(_token(scope, headers, websocket=not http))
            if access is None:
                denied = (401, "unauthorized", "a valid API token is required")
            elif (
                access == "read"
                and method not in SAFE_METHODS
                and str(scope.get("path", "")) not in READING_POSTS
            ):
                denied = (403, "read_only", "this token can read but not act")
        if denied is None:
            await self.app(scope, receive, send)
        elif http:
            await _deny_http(send, *denied)
        else:
            await deny_websocket(scope, receive, send, *denied)

    def _open(self, scope: Scope, method: str, headers: dict[str, str]) -> bool:
        path = scope["path"]
        if (path in OPEN_PATHS or path.startswith(OPEN_PAGE)) and method in SAFE_METHODS:
            return True
        # a CORS preflight carries no token; the CORS middleware answers it
        return (
            method == "OPTIONS"
            and bool(self.cors_origins)
            and "access-control-request-method" in headers
        )


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}


def _token(scope: Scope, headers: dict[str, str], *, websocket: bool) -> str:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if websocket:
        query = scope.get("query_string", b"").decode("latin-1")
        for name, given in parse_qsl(query):
            if name == "token":
                return given
    return ""


async def _deny_http(send: Send, status: int, code: str, message: str) -> None:
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="claudomator"'))
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    body: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": error_body(code, message),
        "more_body": False,
    }
    await send(start)
    await send(body)


async def deny_websocket(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
) -> None:
    await receive()  # websocket.connect
    if "websocket.http.response" in (scope.get("extensions") or {}):
        start: WebSocketResponseStartEvent = {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
        body: WebSocketResponseBodyEvent = {
            "type": "websocket.http.response.body",
            "body": error_body(code, message),
            "more_body": False,
        }
        await send(start)
        await send(body)
    else:
        close: WebSocketCloseEvent = {
            "type": "websocket.close",
            "code": POLICY_VIOLATION,
            "reason": code,
        }
        await send(close)
