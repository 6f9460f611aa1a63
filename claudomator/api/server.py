"""`Api`: the app and its uvicorn server, on the loop the pool runs on (`ServeLoop.run(also)`).

Everything that can refuse happens in the constructor, before the pool starts: auth needs a token
off loopback, and the socket is bound here (so "address in use" is a clear error, and tests can
bind port 0). uvicorn runs with the plain asyncio loop and h11 (uvloop spawns subprocesses 3x
slower, perf-limits §1), no access log (it costs 15-45 %, and a WebSocket URL may carry a token),
and without its own signal handlers: the service owns SIGINT/SIGTERM and sets `stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog
import uvicorn

from claudomator.api.access import auth_required, is_loopback
from claudomator.api.app import create_app
from claudomator.api.ws_feed import Feed
from claudomator.errors import ClaudomatorError, ConfigError
from claudomator.metrics import Metrics
from claudomator.token import Tokens

if TYPE_CHECKING:
    from claudomator.notify import Notifier
    from claudomator.service import Claudomator

log = structlog.get_logger("claudomator.api")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ClaudomatorError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host.strip("[]") == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as e:
        sock.close()
        raise ClaudomatorError(
            f"cannot listen on {host}:{port}: {e.strerror or e} (server.host, server.port)"
        ) from None
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service handles SIGINT/SIGTERM and tells us through `stop`


class Api:
    """The HTTP API of one service."""

    def __init__(
        self,
        service: Claudomator,
        *,
        notifier: Notifier | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        config = service.config
        self.service = service
        self.auth = auth_required(config.server_host, config.server_auth)
        self.tokens: Tokens | None = None
        if self.auth:
            self.tokens = Tokens.load(config.data_dir.root)
            if not self.tokens:
                why = (
                    "server.auth = true"
                    if is_loopback(config.server_host)
                    else f"server.host {config.server_host} is not loopback"
                )
                other = (
                    "or set server.auth = false"
                    if is_loopback(config.server_host)
                    else "or bind to 127.0.0.1"
                )
                raise ConfigError(
                    f"the API requires a token ({why}) but {config.data_dir.root} has none: "
                    f"create one with `claudomator token`, {other}"
                )
        self.sock = sock if sock is not None else bind(config.server_host, config.server_port)
        self.metrics = Metrics(
            config.database,
            service.status,
            notify_stats=(lambda: notifier.stats) if notifier is not None else None,
        )
        self.feed = Feed(
            service.hub,
            service.reader,
            buffer=config.server_ws_buffer,
            on_overflow=self.metrics.ws_dropped.inc,
        )
        self.app = create_app(service, feed=self.feed, metrics=self.metrics, tokens=self.tokens)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; open WebSockets are closed (1012) on the way out."""
        server = _Server(
            uvicorn.Config(
                self.app,
                loop="none",
                http="h11",
                ws="websockets-sansio",
                ws_per_message_deflate=False,  # events are small: compression costs CPU per client
                ws_max_size=1 << 16,  # clients have nothing to send
                lifespan="off",
                access_log=False,
                log_config=None,
                proxy_headers=False,
                server_header=False,
                timeout_graceful_shutdown=5,
            )
        )
        # Everything built so far (imported modules, the app) lives as long as the process: keep
        # it out of the collector's full passes, which otherwise stall the loop for ~150 ms now
        # and then (a WebSocket broadcast held up past 150 ms: bench/ws.py).
        gc.freeze()
        # Fewer, not longer, young-generation passes: a fan-out to many WebSocket clients
        # allocates a burst of short-lived objects, and each pass is a pause for all of them.
        gc.set_threshold(max(gc.get_threshold()[0], 50_000), *gc.get_threshold()[1:])
        feeding = asyncio.create_task(self.feed.run(stop), name="api:feed")
        serving = asyncio.create_task(server.serve(sockets=[self.sock]), name="api:serve")
        log.info("api.listening", url=self.url, auth=self.auth)
        waiting = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.should_exit = True
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            feeding.cancel()
            await asyncio.gather(feeding, waiting, return_exceptions=True)
        log.info("api.stopped")

    def close(self) -> None:
        self.sock.close()
