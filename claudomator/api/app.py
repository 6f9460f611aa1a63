"""`create_app(service)`: the Litestar app. Thin handlers (parse, call one service method, answer),
one error map, OpenAPI with a docs page of our own at /api/schema (`page.DocsPage`: no CDN), and
the WebSocket at /api/ws.

The routes live by noun: `tasks`, `executions`, `status`, `pool`, `ws` and `page`; this module
puts them together with the app's state, the error map, OpenAPI, CORS and access control.

Handlers are async and call the service directly, on the loop the pool runs on: the store's
writes take a millisecond, the hub must be told on its own loop, and a thread hand-off costs more
than it saves (perf-limits §6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from claudomator import __version__
from claudomator.api.access import AccessControl, HostRule
from claudomator.api.cache import PageCache
from claudomator.api.errors import EXCEPTION_HANDLERS
from claudomator.api.executions import get_diff, get_execution, get_log
from claudomator.api.openapi import OpenAPIJson
from claudomator.api.page import DOCS_PATH, PAGE_PATHS, PAGE_ROUTES, DocsPage, docs_router
from claudomator.api.pool import drain, pause, resume
from claudomator.api.status import costs, health, metrics, nodes, status
from claudomator.api.tasks import (
    cancel_task,
    create_task,
    get_task,
    list_tasks,
    retry_task,
    run_task,
    validate,
)
from claudomator.api.ws import events, events_upgrade
from claudomator.api.ws_feed import Feed
from claudomator.metrics import Metrics
from claudomator.token import Tokens

if TYPE_CHECKING:
    from claudomator.service import Claudomator

ROUTES = [
    health,
    create_task,
    validate,
    list_tasks,
    get_task,
    run_task,
    cancel_task,
    retry_task,
    get_execution,
    get_log,
    get_diff,
    status,
    nodes,
    costs,
    pause,
    resume,
    drain,
    metrics,
    events,
    events_upgrade,
    *PAGE_ROUTES,
]


def create_app(
    service: Claudomator,
    *,
    feed: Feed | None = None,
    metrics: Metrics | None = None,
    tokens: Tokens | None = None,
) -> Litestar:
    """The app for `service`. `tokens` None means auth off (loopback without server.auth)."""
    config = service.config
    if feed is None:
        feed = Feed(service.hub, service.reader, buffer=config.server_ws_buffer)
    if metrics is None:
        metrics = Metrics(
            config.database,
            service.status,
        )
    if feed.on_overflow is None:
        feed.on_overflow = metrics.ws_dropped.inc
    app = Litestar(
        route_handlers=ROUTES,
        state=State(
            {
                "service": service,
                "auth": tokens is not None,
                "feed": feed,
                "metrics": metrics,
                "pages": PageCache(service.hub, lambda: feed.last_id),
            }
        ),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="claudomator",
            version=__version__,
            path=DOCS_PATH,
            openapi_router=docs_router(),
            render_plugins=[DocsPage(), OpenAPIJson()],
            security=[{"bearer": []}],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http", scheme="bearer", description="claudomator token"
                    )
                }
            ),
        ),
        cors_config=CORSConfig(
            allow_origins=list(config.server_cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
        if config.server_cors_origins
        else None,
        request_max_body_size=config.max_file_bytes,
        logging_config=None,
        debug=False,
    )
    # Access control sees every request before routing, 404s included (Litestar's own
    # middleware runs only once a route matched).
    app.asgi_handler = AccessControl(
        app.asgi_handler,
        hosts=HostRule.build(config.server_host, config.server_allowed_hosts),
        cors_origins=frozenset(config.server_cors_origins),
        tokens=tokens,
    )
    return app


def routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of every API route the app serves, from its router (for the auth tests);
    the pages and the web page's files are public (access.OPEN_PATHS, OPEN_PAGE) and not
    listed."""
    out = []
    for route in app.routes:
        if route.path in PAGE_PATHS:
            continue
        methods = getattr(route, "methods", None) or {"WEBSOCKET"}
        for method in sorted(methods):
            if method != "OPTIONS":
                out.append((method, route.path))
    return out


__all__ = ["ROUTES", "create_app", "routes"]
