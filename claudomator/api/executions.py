"""The execution routes: one execution (masked), and its stdout or stderr a page at a time."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import get
from litestar.params import FromPath, QueryParameter

from claudomator.api.context import Req, service_of
from claudomator.api.errors import ERROR_RESPONSES
from claudomator.api.logs import read_log
from claudomator.api.masking import masked
from claudomator.api.shapes import Execution, LogPage


@get("/api/executions/{execution_id:str}", summary="One execution", responses=ERROR_RESPONSES)
async def get_execution(request: Req, execution_id: FromPath[str]) -> Execution:
    service = service_of(request)
    found = service.execution(execution_id)
    return masked(service, found["task_id"], found)


@get(
    "/api/executions/{execution_id:str}/log",
    summary="An execution's stdout or stderr, a page of lines from a byte offset",
    responses=ERROR_RESPONSES,
)
async def get_log(
    request: Req,
    execution_id: FromPath[str],
    stream_name: Annotated[Literal["stdout", "stderr"], QueryParameter(name="stream")] = "stdout",
    log_format: Annotated[
        Literal["readable", "raw"],
        QueryParameter(
            name="format", description="readable: as `claudomator logs`; raw: stream-json"
        ),
    ] = "readable",
    offset: Annotated[
        int, QueryParameter(ge=0, description="byte offset: next_offset of the page before")
    ] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=10_000, description="lines at most")] = 1000,
) -> LogPage:
    service = service_of(request)
    ex = service.execution(execution_id)
    return read_log(
        ex,
        stream_name,
        executions=service.config.data_dir.executions,
        offset=offset,
        limit=limit,
        readable=log_format == "readable",
        task_env=service.task_env(ex["task_id"]),
        this_node=service.node_id,
    )


__all__ = ["get_execution", "get_log"]
