"""What the API answers, as types for the OpenAPI schema. Handlers return the store's plain dicts
(`claudomator.store.rows`: one shape of a task and an execution for the CLI and the API)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Health(TypedDict):
    status: Literal["ok"]


class Task(TypedDict):
    id: str
    name: str
    state: str
    reason: str
    priority: str
    tags: list[str]
    depends_on: list[str]
    attempts: int
    cost_usd: float
    source: str
    source_path: str
    created_at: str | None
    updated_at: str | None


class Tokens(TypedDict):
    input: int
    output: int
    cache_read: int
    cache_creation: int


class Owner(TypedDict):
    host: str
    pid: int
    node: str  # the node that runs it ("" before nodes existed)


class NodeRunning(TypedDict):
    task_id: str
    name: str
    execution_id: str


class Node(TypedDict):
    id: str
    kind: Literal["serve", "run"]
    host: str
    pid: int
    state: Literal["up", "stopped", "lost"]
    expired: bool  # up, but its lease ran out: the next check marks it lost
    slots: int
    busy: int
    running: list[NodeRunning]
    heartbeat_at: str | None
    heartbeat_age_s: float
    heartbeat_s: float
    lease_s: float
    started_at: str | None
    stopped_at: str | None
    data_dir: str
    version: str


class Execution(TypedDict):
    id: str
    task_id: str
    attempt: int
    state: str
    reason: str
    started_at: str | None
    finished_at: str | None
    exit_code: int | None
    cost_usd: float
    tokens: Tokens
    model_usage: dict[str, Any]
    session_id: str
    num_turns: int | None
    duration_ms: int | None
    cli_version: str
    model: str
    result: str
    errors: list[Any]
    permission_denials: list[Any]
    api_error_status: int | None
    stdout_path: str
    stderr_path: str
    owner: Owner


class TaskDetail(Task):
    spec: dict[str, Any]  # the task as submitted, secret-looking env values shown as ***
    requeues: int
    held: bool  # PENDING until POST /api/tasks/{id}/run
    depends_on_ids: list[str]
    not_before: str | None
    # a git source's task: commit, author, committed_at, path, blob; null for other sources
    provenance: dict[str, Any] | None
    executions: list[Execution]


class Batch(TypedDict):
    tasks: list[TaskDetail]


class TaskPage(TypedDict):
    items: list[Task]
    next_cursor: str | None  # give it as `cursor` for the next page; null on the last


class Running(TypedDict):
    execution_id: str
    task_id: str
    name: str
    elapsed_s: float
    cost_usd: float
    owner: Owner


class Pool(TypedDict):
    paused: bool
    reason: str
    until: str | None
    draining: bool
    slots: int
    busy: int


class DayCost(TypedDict):
    day: str  # YYYY-MM-DD, the server's local day
    cost_usd: float


class TagCost(TypedDict):
    tag: str
    cost_usd: float


class Costs(TypedDict):
    days: list[DayCost]  # oldest first; days without spend are left out
    tags: list[TagCost]  # most spent first


class Status(TypedDict):
    counts: dict[str, int]
    running: list[Running]
    cost_today_usd: float
    daily_budget_usd: float | None
    pool: Pool
    nodes: list[Node]


class LogPage(TypedDict):
    execution_id: str
    stream: Literal["stdout", "stderr"]
    format: Literal["readable", "raw"]
    offset: int  # where this page starts, in bytes
    next_offset: int  # give it as `offset` for the next page
    size: int  # bytes in the log now
    eof: bool  # next_offset reached the end of the log as it is now
    running: bool  # the execution may still write more
    lines: list[str]
    node: str  # the node that ran it
    elsewhere: bool  # its log is in that other node's data dir, not here


class Problem(TypedDict):
    text: str  # as `claudomator validate` prints it: file:line:column field: message
    field: str
    message: str
    line: int | None
    column: int | None
    warning: bool


class Validation(TypedDict):
    ok: bool
    tasks: int  # how many tasks the file asks for (0 when it is invalid)
    problems: list[Problem]  # the errors, or the warnings of a valid file


class ErrorDetail(TypedDict, total=False):
    field: str | None  # dotted field path, as `claudomator validate` names it
    message: str
    line: int | None  # YAML bodies only
    column: int | None


class Error(TypedDict):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorBody(TypedDict):
    error: Error
