"""The execution routes: one execution (masked), its stdout or stderr a page at a time, and the
diff of what it changed in its worktree."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from litestar import get
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from claudomator.api.context import Req, service_of
from claudomator.api.diffs import MEDIA_TYPE, diff_chunks, open_diff
from claudomator.api.errors import ERROR_RESPONSES
from claudomator.api.logs import read_log
from claudomator.api.masking import masked
from claudomator.api.shapes import Execution, LogPage
from claudomator.secret import secret_values


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


@get(
    "/api/executions/{execution_id:str}/diff",
    summary="What an execution changed in its worktree: the diff of its branch, base..head",
    description="The unified diff saved when claude ended (`git diff base..head`, secret values "
    "masked); 404 when the execution is unknown, ran without a worktree, saved no diff, or its "
    "diff is gone or in another node's data dir (the message says which).",
    media_type=MEDIA_TYPE,
    response_description="a unified diff, as `git diff` writes it",
    responses=ERROR_RESPONSES,
)
async def get_diff(request: Req, execution_id: FromPath[str]) -> Stream:
    service = service_of(request)
    ex = service.execution(execution_id)
    secrets = secret_values({**os.environ, **service.task_env(ex["task_id"])})
    file = open_diff(ex, executions=service.config.data_dir.executions, this_node=service.node_id)
    return Stream(diff_chunks(file, secrets), media_type=MEDIA_TYPE)


__all__ = ["get_diff", "get_execution", "get_log"]
