"""The HTTP surface: Litestar REST + WebSocket, served by uvicorn beside the pool.

- `app`: `create_app(service)` and the REST routes; `errors`: the one error shape and map;
- `door`: Host allow-list, Origin check and tokens, before routing;
- `feed`: hub events to WebSocket clients, gapless, bounded per client; `ws`: the handler;
- `cache`: list pages kept until the next event;
- `logs`: an execution's log a page at a time; `openapi`, `shapes`: the schema;
- `server`: `Api`, the app and its uvicorn server on the service's loop;
- `page`: the web page (`/`, `/ui/…`) from `static/`.

The only package that imports litestar and uvicorn.
"""

from __future__ import annotations

from claudomator.api.app import create_app, routes
from claudomator.api.server import Api

__all__ = ["Api", "create_app", "routes"]
