"""The records claudomator shows and passes around, declared once: a task, an execution, a node,
a source, the status overview, spend, the stored pool state, and the rows the write path reads
back. The store builds them (`store.rows`), the service hands them out, the CLI renders them and
the API's schema is derived from them (`api.shapes`). Pure: types only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypedDict

from claudomator.state import State

# A JSON object whose shape is someone else's: a line of claude's stream-json, a TOML table, a
# JSON schema. Read with care (`.get`, isinstance); the records below are claudomator's own.
JSONObject = dict[str, Any]


class Tokens(TypedDict):
    input: int
    output: int
    cache_read: int
    cache_creation: int


class Owner(TypedDict):
    host: str
    pid: int
    node: str  # the node that runs it ("" before nodes existed)


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
    model_usage: JSONObject  # claude's own modelUsage object, as it reported it
    session_id: str
    num_turns: int | None
    duration_ms: int | None
    cli_version: str
    model: str
    result: str
    errors: list[Any]  # claude's `errors`, as it reported them
    permission_denials: list[Any]  # claude's `permission_denials`, as it reported them
    api_error_status: int | None
    stdout_path: str
    stderr_path: str
    owner: Owner


class TaskDetail(Task):
    spec: JSONObject  # the task as submitted (its schema: the task file's), env values masked
    requeues: int
    held: bool  # PENDING until POST /api/tasks/{id}/run
    depends_on_ids: list[str]
    not_before: str | None
    # a git source's task: commit, author, committed_at, path, blob; null for other sources
    provenance: dict[str, str] | None
    executions: list[Execution]


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


class Status(TypedDict):
    counts: dict[str, int]
    running: list[Running]
    cost_today_usd: float
    daily_budget_usd: float | None
    pool: Pool
    nodes: list[Node]


class DayCost(TypedDict):
    day: str  # YYYY-MM-DD, the server's local day
    cost_usd: float


class TagCost(TypedDict):
    tag: str
    cost_usd: float


class Costs(TypedDict):
    days: list[DayCost]  # oldest first; days without spend are left out
    tags: list[TagCost]  # most spent first


class StoredSource(TypedDict):
    """A node's progress on one source, as stored."""

    name: str
    kind: str
    last_commit: str
    error: str
    updated_at: float


class Source(TypedDict):
    """A configured source and this node's progress on it, as `claudomator sources` shows it."""

    name: str
    kind: str
    path: str
    subdir: str
    branch: str
    remote: str
    last_commit: str | None
    error: str | None
    updated_at: str | None


class PoolState(TypedDict, total=False):
    """The stored pool state (the `meta` row `pool`); a key never set is absent."""

    paused: bool
    reason: str
    draining: bool
    rate_limited_until: float
    rate_limit_reason: str
    budget_day: str


class StoredTask(TypedDict):
    """A `tasks` row as the write path reads it back."""

    id: str
    name: str
    state: str
    reason: str
    priority: str
    priority_rank: int
    attempts: int
    requeues: int
    held: bool
    dispatcher: str
    config_json: str
    retry_json: str
    tags_json: str
    depends_on_json: str
    depends_on_ids_json: str
    source: str
    source_path: str
    provenance_json: str
    file_id: str  # the spool file it came from, if any
    not_before: float
    sort_key: float
    created_at: float
    updated_at: float


class StoredFile(TypedDict):
    """A `files` row: one task file this node claimed, and where it is now."""

    id: str
    node: str
    source: str
    rel_path: str
    folder: str
    name: str
    error: str
    fingerprint: str
    provenance_json: str
    created_at: float
    updated_at: float


class ResultTask(TypedDict):
    """One task in a result file."""

    id: str
    name: str
    state: str
    reason: str
    attempts: int
    cost_usd: float
    tokens: Tokens
    execution_ids: list[str]
    executions: list[Execution]


class ResultFile(TypedDict):
    """`done/<name>.result.json`: what became of every task of a file."""

    file: str  # where it was found, relative to its source
    source: str
    tasks: list[ResultTask]


class StoredExecution(TypedDict):
    """An `executions` row."""

    id: str
    task_id: str
    attempt: int
    state: str
    reason: str
    started_at: float
    finished_at: float | None
    exit_code: int | None
    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    model_usage_json: str
    session_id: str
    num_turns: int | None
    duration_ms: int | None
    cli_version: str
    model: str
    result_text: str
    errors_json: str
    permission_denials_json: str
    api_error_status: int | None
    stdout_path: str
    stderr_path: str
    owner_host: str
    owner_pid: int
    owner_started: float
    owner_node: str
    cancel_requested: bool


@dataclass(frozen=True)
class ExecutionEnd:
    """What an execution reported as it ended, as its row records it (one field per column)."""

    exit_code: int | None = None
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    model_usage_json: str = "{}"
    session_id: str = ""
    num_turns: int | None = None
    duration_ms: int | None = None
    cli_version: str = ""
    model: str = ""
    result_text: str = ""
    errors_json: str = "[]"
    permission_denials_json: str = "[]"
    api_error_status: int | None = None

    def columns(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class RetryCounts(TypedDict):
    """What the retry policy judges a task by: its attempts (the execution at hand counted), the
    requeues that used no attempt, and its policy as JSON."""

    attempts: int
    requeues: int
    retry_json: str


class StartedTask(RetryCounts):
    """A task as its start updated it (the columns its `task.started` event and its execution
    need)."""

    id: str
    name: str
    file_id: str
    cost: float  # its executions' cost so far
    config_json: str  # its TaskSpec as JSON


class Started(NamedTuple):
    """An execution just started: its id, its `task.started` event and its task."""

    execution_id: str
    event: Event
    task: StartedTask


class FileTask(TypedDict):
    """One of a file's tasks, as its result file and the intake read it."""

    id: str
    name: str
    state: str
    reason: str
    attempts: int
    executions: list[StoredExecution]


class Dependent(TypedDict):
    """A PENDING task waiting for another, with its dependencies' names and states."""

    id: str
    held: bool
    dependencies: list[tuple[str, State]]  # (name, state)


class LostExecution(TypedDict):
    """A RUNNING execution whose node was found lost."""

    id: str
    task_id: str
    owner_node: str


class LiveExecution(TypedDict):
    """A RUNNING execution and who owns it, as recovery and the cancel watch read it."""

    id: str
    task_id: str
    owner_host: str
    owner_pid: int
    owner_started: float
    cancel_requested: bool


class StoredNode(TypedDict):
    """A `nodes` row."""

    id: str
    kind: str
    host: str
    pid: int
    process_started: float
    state: str
    slots: int
    heartbeat_at: float
    heartbeat_s: float
    lease_s: float
    started_at: float
    stopped_at: float | None
    data_dir: str
    version: str


# The events a task's state changes publish (`store.events.event_type`), then the others.
TASK_EVENTS = ("task.created", "task.queued", "task.started", "task.finished")
EVENT_TYPES = (
    *TASK_EVENTS,
    # an execution's progress, at most every 0.25 s (`claudomator.stream.Progress`)
    *("execution.started", "execution.tool_call", "execution.text", "execution.cost"),
    *("execution.api_retry", "execution.rate_limit"),
    "node.up",
    "node.stopped",
    "node.lost",
    "pool.changed",  # paused, resumed, drained, rate limited (the stored pool state)
    "pool.waiting",  # a notice, never stored: `claudomator run` waits for the pool
    "hub.overflow",  # to a subscriber that fell behind, before it is dropped
)


class Event(TypedDict, total=False):
    """A committed fact, as published and stored (`events` table: id, at, type, task and
    execution ids, the rest as `data_json`). Every stored event has id, type, at, task_id and
    execution_id; the other keys depend on its type."""

    id: int
    type: str  # one of EVENT_TYPES
    at: float
    task_id: str
    execution_id: str
    # task.*: the task's name, the state entered, why, attempts and cost so far
    name: str
    state: str
    reason: str
    attempts: int
    cost_usd: float
    not_before: float  # task.queued by a retry policy: not before then
    file_id: str  # the spool file the task came from
    node: str  # task.started: the node that runs it; node.*: the node
    kind: str  # node.*: serve | run
    # pool.changed / pool.waiting: the pool state
    paused: bool
    draining: bool
    rate_limited_until: float
    rate_limit_reason: str
    until: float | None
