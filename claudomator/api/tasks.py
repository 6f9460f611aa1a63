"""The task routes: create (a task or a batch, JSON or YAML), validate a task file, list a page,
show one, and the verbs run, cancel and retry. Each answer with the task is masked."""

from __future__ import annotations

from typing import Annotated, Literal, cast

import msgspec
from litestar import MediaType, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter

from claudomator.api.cache import PageCache
from claudomator.api.context import Req, service_of
from claudomator.api.errors import ERROR_RESPONSES
from claudomator.api.masking import masked
from claudomator.api.shapes import Batch, Problem, TaskDetail, TaskPage, Validation
from claudomator.errors import FieldError, TaskFileError
from claudomator.state import State as TaskState

_encode = msgspec.json.Encoder().encode

JSON_TYPES = frozenset({"application/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


@post(
    "/api/tasks",
    status_code=201,
    summary="Create a task or a batch (JSON, or YAML with Content-Type: application/yaml)",
    responses=ERROR_RESPONSES,
)
async def create_task(
    request: Req,
    run: Annotated[
        bool, QueryParameter(description="queue at once (else PENDING until run)")
    ] = False,
) -> TaskDetail | Batch:
    service = service_of(request)
    media_type = request.content_type[0].lower()
    body = await request.body()
    is_json = media_type in JSON_TYPES or media_type.endswith("+json")
    if media_type not in YAML_TYPES and not is_json:
        raise HTTPException(
            status_code=415,
            detail="send the task as application/json or application/yaml",
        )
    submitted = service.submit_body(body, as_yaml=media_type in YAML_TYPES, run=run)
    tasks = [service.task(task_id) for task_id in submitted.ids]
    return {"tasks": tasks} if submitted.is_batch else tasks[0]


@post(
    "/api/validate",
    status_code=200,
    summary="Check a task or batch file (YAML) as `claudomator validate` does; records nothing",
    responses=ERROR_RESPONSES,
)
async def validate(request: Req) -> Validation:
    service = service_of(request)
    if request.content_type[0].lower() not in YAML_TYPES:
        raise HTTPException(status_code=415, detail="send the task file as application/yaml")
    try:
        parsed = service.validate_body(await request.body())
    except TaskFileError as e:
        return {"ok": False, "tasks": 0, "problems": [_problem(f) for f in e.errors]}
    return {
        "ok": True,
        "tasks": len(parsed.tasks),
        "problems": [_problem(w) for w in parsed.warnings],
    }


def _problem(error: FieldError) -> Problem:
    return {
        "text": str(error),
        "field": error.field,
        "message": error.message,
        "line": error.line or None,
        "column": error.column or None,
        "warning": error.warning,
    }


@get("/api/tasks", summary="Tasks, newest first, a page at a time", responses=ERROR_RESPONSES)
async def list_tasks(
    request: Req,
    task_state: Annotated[
        str | None,
        QueryParameter(
            name="state", description=f"one of {', '.join(s.value for s in TaskState)}, any case"
        ),
    ] = None,
    tag: FromQuery[str | None] = None,
    priority: FromQuery[Literal["high", "normal", "low"] | None] = None,
    search: Annotated[str | None, QueryParameter(description="part of the name, any case")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, QueryParameter(description="next_cursor of the page before")
    ] = None,
) -> Response[TaskPage]:
    if task_state is not None:  # any case, as `claudomator list --state` takes it
        try:
            task_state = TaskState(task_state.upper()).value
        except ValueError:
            message = f"not a state: {task_state!r}"
            raise HTTPException(
                status_code=400, detail=message, extra=[{"key": "state", "message": message}]
            ) from None
    pages: PageCache = request.app.state.pages
    key = (task_state, tag, priority, search, limit, cursor)
    body = pages.get(key)
    if body is None:
        rows = service_of(request).tasks(
            state=task_state,
            tag=tag,
            priority=priority,
            search=search,
            limit=limit + 1,
            before_id=cursor,
        )
        more = len(rows) > limit
        items = rows[:limit]
        page: TaskPage = {"items": items, "next_cursor": items[-1]["id"] if more else None}
        body = _encode(page)
        pages.put(key, body)
    return Response(cast(TaskPage, body), media_type=MediaType.JSON)


@get("/api/tasks/{task_id:str}", summary="One task with its executions", responses=ERROR_RESPONSES)
async def get_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = service_of(request)
    return masked(service, task_id, service.task(task_id))


@post(
    "/api/tasks/{task_id:str}/run",
    status_code=200,
    summary="Run a task held PENDING",
    responses=ERROR_RESPONSES,
)
async def run_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = service_of(request)
    return masked(service, task_id, service.release(task_id))


@post(
    "/api/tasks/{task_id:str}/cancel",
    status_code=200,
    summary="Cancel a task",
    responses=ERROR_RESPONSES,
)
async def cancel_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = service_of(request)
    return masked(service, task_id, service.cancel(task_id))


@post(
    "/api/tasks/{task_id:str}/retry",
    status_code=200,
    summary="Queue a task that did not complete again",
    responses=ERROR_RESPONSES,
)
async def retry_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = service_of(request)
    return masked(service, task_id, service.retry(task_id))


__all__ = [
    "cancel_task",
    "create_task",
    "get_task",
    "list_tasks",
    "retry_task",
    "run_task",
    "validate",
]
