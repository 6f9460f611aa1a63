"""The HTTP surface: Litestar REST + WebSocket, served by uvicorn beside the pool.

- `app`: `create_app(service)`, the routes put together; `errors`: the one error shape and map;
- the routes by noun: `tasks`, `executions`, `status` (health, status, nodes, costs, metrics),
  `pool` (pause, resume, drain), `ws` (the WebSocket); `context`: what a handler finds on the app;
- `access`: Host allow-list, Origin check and tokens, before routing;
- `ws_feed`: hub events to WebSocket clients, gapless, bounded per client;
- `cache`: list pages kept until the next event; `masking`: secret values in answers as ***;
- `logs`: an execution's log a page at a time; `openapi`, `shapes`: the schema;
- `server`: `Api`, the app and its uvicorn server on the service's loop;
- `page`: the web page (`/`, `/ui/…`) from `static/`.

The only package that imports litestar and uvicorn.
"""

from __future__ import annotations

from claudomator.api.app import create_app, routes
from claudomator.api.server import Api

__all__ = ["Api", "create_app", "routes"]
