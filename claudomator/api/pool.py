"""The pool routes: pause, resume and drain; each answers with the status overview."""

from __future__ import annotations

from typing import Annotated

from litestar import post
from litestar.params import QueryParameter

from claudomator.api.context import Req, service_of
from claudomator.api.shapes import Status


@post("/api/pool/pause", status_code=200, summary="Start no new task until resume")
async def pause(
    request: Req,
    reason: Annotated[str, QueryParameter(min_length=1, max_length=300)] = "paused by hand",
) -> Status:
    service = service_of(request)
    service.pause(reason)
    return service.status()


@post("/api/pool/resume", status_code=200, summary="Undo pause, drain and a rate-limit pause")
async def resume(request: Req) -> Status:
    service = service_of(request)
    service.resume()
    return service.status()


@post("/api/pool/drain", status_code=200, summary="Let running tasks finish, start nothing new")
async def drain(request: Req) -> Status:
    service = service_of(request)
    service.drain()
    return service.status()


__all__ = ["drain", "pause", "resume"]
