"""The routes that tell how the installation stands: health (open, reveals nothing), the status
overview (counts by state, running tasks, pool, today's spend), the nodes, costs, and the
Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get, route
from litestar.params import QueryParameter

from claudomator.api.context import Req, service_of
from claudomator.api.shapes import Costs, Health, Node, Status
from claudomator.metrics import MEDIA_TYPE, Metrics


@get("/api/health", summary="Liveness (needs no token, reveals nothing)", security=[{}])
async def health() -> Health:
    return {"status": "ok"}


@get("/api/status", summary="Counts by state, running tasks, pool, today's spend")
async def status(request: Req) -> Status:
    return service_of(request).status()


@get("/api/nodes", summary="The nodes sharing the database: slots, heartbeat, what each runs")
async def nodes(request: Req) -> list[Node]:
    return service_of(request).nodes()


@get("/api/costs", summary="Spend per day and per tag over the last days")
async def costs(request: Req, days: Annotated[int, QueryParameter(ge=1, le=366)] = 30) -> Costs:
    """Per local day by when each execution started, and per tag (untagged: "(no tag)")."""
    return service_of(request).costs(days)


@route(
    "/metrics",
    http_method=["GET", "HEAD"],
    media_type=MEDIA_TYPE,
    summary="Prometheus metrics",
    include_in_schema=True,
)
async def metrics(request: Req) -> Response[bytes]:
    """HEAD too (a probe that a scrape would work): the same headers, no body."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=MEDIA_TYPE)


__all__ = ["costs", "health", "metrics", "nodes", "status"]
