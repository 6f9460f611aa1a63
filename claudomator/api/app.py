"""`create_app(service)`: the Litestar app. Thin handlers (parse, call one service method, answer),
one error map, OpenAPI with Litestar's docs page at /api/schema, and the WebSocket at /api/ws.

Handlers are async and call the service directly, on the loop the pool runs on: the store's
writes take a millisecond, the hub must be told on its own loop, and a thread hand-off costs more
than it saves (perf-limits §6).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import msgspec
import structlog
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import FromPath, FromQuery, QueryParameter

from claudomator import __version__
from claudomator.api.cache import PageCache
from claudomator.api.door import Door, HostRule
from claudomator.api.errors import ERROR_RESPONSES, EXCEPTION_HANDLERS
from claudomator.api.feed import Feed
from claudomator.api.logs import read_log
from claudomator.api.openapi import complete_openapi
from claudomator.api.page import PAGE_PATHS, PAGE_ROUTES
from claudomator.api.shapes import (
    Batch,
    Costs,
    Execution,
    Health,
    LogPage,
    Node,
    Problem,
    Status,
    Task,
    TaskDetail,
    TaskPage,
    Validation,
)
from claudomator.api.ws import events
from claudomator.errors import (
    FieldError,
    NotFoundError,
    TaskFileError,
)
from claudomator.metrics import CONTENT_TYPE, Metrics
from claudomator.secret import scrub_bytes, secret_values
from claudomator.state import State as TaskState
from claudomator.store.reader import start_of_today
from claudomator.taskfile import parse_bytes, parse_object
from claudomator.token import Tokens

if TYPE_CHECKING:
    from claudomator.service import Claudomator

log = structlog.get_logger("claudomator.api")
_encode = msgspec.json.Encoder().encode

JSON_TYPES = frozenset({"application/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
BODY_SOURCE = "api"  # what errors and tasks name as the file

# -- handlers ------------------------------------------------------------------------------------


Req = Request[Any, Any, Any]


def _service(request: Req) -> Claudomator:
    service: Claudomator = request.app.state.service
    return service


@get("/api/health", summary="Liveness (needs no token, reveals nothing)", security=[{}])
async def health() -> Health:
    return {"status": "ok"}


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
    service = _service(request)
    media_type = request.content_type[0].lower()
    body = await request.body()
    known = service.store.resolve_name

    def known_name(name: str) -> bool:
        return known(name) is not None

    if media_type in YAML_TYPES:
        parsed = parse_bytes(
            body,
            BODY_SOURCE,
            known_name=known_name,
            unknown_dependency="error",
            max_bytes=service.config.max_file_bytes,
        )
    elif media_type in JSON_TYPES or media_type.endswith("+json"):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise HTTPException(status_code=400, detail=f"the body is not JSON: {e}") from None
        parsed = parse_object(data, BODY_SOURCE, known_name=known_name, unknown_dependency="error")
    else:
        raise HTTPException(
            status_code=415,
            detail="send the task as application/json or application/yaml",
        )
    ids = service.submit(parsed, source=BODY_SOURCE, held=not run)
    tasks = [cast(TaskDetail, service.task(task_id)) for task_id in ids]
    return {"tasks": tasks} if parsed.is_batch else tasks[0]


@post(
    "/api/validate",
    status_code=200,
    summary="Check a task or batch file (YAML) as `claudomator validate` does; records nothing",
    responses=ERROR_RESPONSES,
)
async def validate(request: Req) -> Validation:
    service = _service(request)
    if request.content_type[0].lower() not in YAML_TYPES:
        raise HTTPException(status_code=415, detail="send the task file as application/yaml")
    known = service.store.resolve_name
    try:
        parsed = parse_bytes(
            await request.body(),
            BODY_SOURCE,
            known_name=lambda name: known(name) is not None,
            unknown_dependency="error",
            max_bytes=service.config.max_file_bytes,
        )
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
    task_state: Annotated[TaskState | None, QueryParameter(name="state")] = None,
    tag: FromQuery[str | None] = None,
    priority: FromQuery[Literal["high", "normal", "low"] | None] = None,
    search: Annotated[str | None, QueryParameter(description="part of the name, any case")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, QueryParameter(description="next_cursor of the page before")
    ] = None,
) -> Response[TaskPage]:
    pages: PageCache = request.app.state.pages
    key = (task_state, tag, priority, search, limit, cursor)
    body = pages.get(key)
    if body is None:
        rows = _service(request).reader.list_tasks(
            state=task_state.value if task_state else None,
            tag=tag,
            priority=priority,
            search=search,
            limit=limit + 1,
            before_id=cursor,
        )
        more = len(rows) > limit
        items = cast(list[Task], rows[:limit])
        page: TaskPage = {"items": items, "next_cursor": items[-1]["id"] if more else None}
        body = _encode(page)
        pages.put(key, body)
    return Response(cast(TaskPage, body), media_type=MediaType.JSON)


@get("/api/tasks/{task_id:str}", summary="One task with its executions", responses=ERROR_RESPONSES)
async def get_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = _service(request)
    return cast(TaskDetail, _masked(service, task_id, service.task(task_id)))


@post(
    "/api/tasks/{task_id:str}/run",
    status_code=200,
    summary="Run a task held PENDING",
    responses=ERROR_RESPONSES,
)
async def run_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = _service(request)
    return cast(TaskDetail, _masked(service, task_id, service.run_task(task_id)))


@post(
    "/api/tasks/{task_id:str}/cancel",
    status_code=200,
    summary="Cancel a task",
    responses=ERROR_RESPONSES,
)
async def cancel_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = _service(request)
    return cast(TaskDetail, _masked(service, task_id, service.cancel(task_id)))


@post(
    "/api/tasks/{task_id:str}/retry",
    status_code=200,
    summary="Queue a task that did not complete again",
    responses=ERROR_RESPONSES,
)
async def retry_task(request: Req, task_id: FromPath[str]) -> TaskDetail:
    service = _service(request)
    return cast(TaskDetail, _masked(service, task_id, service.retry(task_id)))


@get("/api/executions/{execution_id:str}", summary="One execution", responses=ERROR_RESPONSES)
async def get_execution(request: Req, execution_id: FromPath[str]) -> Execution:
    service = _service(request)
    found = service.reader.execution(execution_id)
    if found is None:
        raise NotFoundError(f"no execution with id {execution_id!r}")
    return cast(Execution, _masked(service, found["task_id"], found))


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
    service = _service(request)
    ex = service.reader.execution(execution_id)
    if ex is None:
        raise NotFoundError(f"no execution with id {execution_id!r}")
    return read_log(
        ex,
        stream_name,
        executions=service.config.data_dir.executions,
        offset=offset,
        limit=limit,
        readable=log_format == "readable",
        task_env=_task_env(service, ex["task_id"]),
        this_node=service.node_id,
    )


def _task_env(service: Claudomator, task_id: str) -> dict[str, str]:
    row = service.store.task_row(task_id) or {}
    env = (json.loads(row.get("config_json") or "{}").get("claude") or {}).get("env") or {}
    return {str(k): str(v) for k, v in env.items()}


def _masked(service: Claudomator, task_id: str, data: Any) -> Any:
    """`data` with the values of secret-looking variables, ours and the task's, shown as ***:
    claude may print them, and its result and errors are recorded as it wrote them."""
    secrets = secret_values({**os.environ, **_task_env(service, task_id)})
    text = json.dumps(data).encode()
    masked = scrub_bytes(text, secrets)
    return data if masked == text else json.loads(masked)


def _status(service: Claudomator) -> Status:
    return service.reader.status(  # type: ignore[return-value]
        daily_budget_usd=service.config.daily_budget_usd, slots=service.pool.slots
    )


@get("/api/status", summary="Counts by state, running tasks, pool, today's spend")
async def status(request: Req) -> Status:
    return _status(_service(request))


@get("/api/nodes", summary="The nodes sharing the database: slots, heartbeat, what each runs")
async def nodes(request: Req) -> list[Node]:
    return cast(list[Node], _service(request).reader.nodes())


@get("/api/costs", summary="Spend per day and per tag over the last days")
async def costs(request: Req, days: Annotated[int, QueryParameter(ge=1, le=366)] = 30) -> Costs:
    """Per local day by when each execution started, and per tag (untagged: "(no tag)")."""
    since = start_of_today() - (days - 1) * 86400.0
    return cast(Costs, _service(request).reader.costs(since))


@post("/api/pool/pause", status_code=200, summary="Start no new task until resume")
async def pause(
    request: Req,
    reason: Annotated[str, QueryParameter(min_length=1, max_length=300)] = "paused by hand",
) -> Status:
    service = _service(request)
    service.set_pool(paused=True, reason=reason)
    return _status(service)


@post("/api/pool/resume", status_code=200, summary="Undo pause, drain and a rate-limit pause")
async def resume(request: Req) -> Status:
    service = _service(request)
    service.set_pool(paused=False, reason="", draining=False, rate_limited_until=0)
    return _status(service)


@post("/api/pool/drain", status_code=200, summary="Let running tasks finish, start nothing new")
async def drain(request: Req) -> Status:
    service = _service(request)
    service.set_pool(draining=True)
    return _status(service)


@get("/metrics", media_type=CONTENT_TYPE, summary="Prometheus metrics", include_in_schema=True)
async def metrics(request: Req) -> Response[bytes]:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)


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
    status,
    nodes,
    costs,
    pause,
    resume,
    drain,
    metrics,
    events,
    *PAGE_ROUTES,
]


class _OpenAPIJson(JsonRenderPlugin):
    """openapi.json with what Litestar cannot say from a handler's signature (the task body)."""

    _done: tuple[dict[str, Any], bytes] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._done is None or self._done[0] is not openapi_schema:  # Litestar caches it
            text = self.render_json(request, complete_openapi(openapi_schema))
            self._done = (openapi_schema, text)
        return self._done[1]


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
            lambda: service.reader.status(
                daily_budget_usd=config.daily_budget_usd, slots=service.pool.slots
            ),
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
            path="/api/schema",
            render_plugins=[ScalarRenderPlugin(), _OpenAPIJson()],
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
    # The front door sees every request before routing, 404s included (Litestar's own
    # middleware runs only once a route matched).
    app.asgi_handler = Door(
        app.asgi_handler,
        hosts=HostRule.build(config.server_host, config.server_allowed_hosts),
        cors_origins=frozenset(config.server_cors_origins),
        tokens=tokens,
    )
    return app


def routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of every API route the app serves, from its router (for the auth tests);
    the web page's files are public (door.OPEN_PAGE) and not listed."""
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
