"""The records claudomator shows, declared once: a task, an execution, a node, a source, the
status overview, spend, a result file, and the events. The store builds them (`store.rows`), the
service hands them out, the CLI renders them and the API's schema is derived from them
(`api.shapes`). The rows as stored are in `claudomator.stored`. Pure: types only."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

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
    # where it ran: mode, path and, in a worktree, branch, base, head, commits, files_changed,
    # insertions, deletions, diff_path, push_error, node (`workspace.WorkspaceRecord`)
    workspace: JSONObject | None
    round: int  # its verify round: 0 for an attempt's first execution
    resumed_from: str | None  # the execution whose claude session it resumed; null: fresh
    # what the verify commands said: passed, commands [{command, exit_code, duration_ms,
    # timed_out}], log_path; null when none ran (`verification.Verification`)
    verify: JSONObject | None
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
    batch: BatchBudget | None  # its batch's budget_usd and the batch's spend; null: none


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


class TagBudget(TypedDict):
    """A `budget.tags` cap and what the tag's tasks spent today."""

    tag: str
    budget_usd: float
    spent_usd: float


class BatchBudget(TypedDict):
    """A batch file's `budget_usd` and what its tasks spent (`id`: the batch's first task)."""

    id: str
    budget_usd: float
    spent_usd: float


class Status(TypedDict):
    counts: dict[str, int]
    running: list[Running]
    cost_today_usd: float
    daily_budget_usd: float | None
    pool: Pool
    nodes: list[Node]
    tag_budgets: list[TagBudget]  # each budget.tags cap, with the tag's spend today


class DayCost(TypedDict):
    day: str  # YYYY-MM-DD, the server's local day
    cost_usd: float


class TagCost(TypedDict):
    tag: str
    cost_usd: float


class Costs(TypedDict):
    days: list[DayCost]  # oldest first; days without spend are left out
    tags: list[TagCost]  # most spent first


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


class ResultTask(TypedDict):
    """One task in a result file."""

    id: str
    name: str
    state: str
    reason: str
    attempts: int
    cost_usd: float
    tokens: Tokens
    branch: str | None  # its work's branch: of its latest execution that recorded a workspace
    head: str | None  # that branch's head commit then
    execution_ids: list[str]
    executions: list[Execution]


class ResultFile(TypedDict):
    """`done/<name>.result.json`: what became of every task of a file."""

    file: str  # where it was found, relative to its source
    source: str
    # a git source's copy: source, commit, author, committed_at, path, blob; null otherwise
    provenance: dict[str, str] | None
    tasks: list[ResultTask]


class Event(TypedDict, total=False):
    """A committed fact, as published and stored (`events` table: id, at, type, task and
    execution ids, the rest as `data_json`). Every stored event has id, type, at, task_id and
    execution_id; the other keys depend on its type:

    - task.created, task.queued, task.started, task.finished: a task entered a state
      (`store.events.event_type`);
    - execution.started, .tool_call, .text, .cost, .api_retry, .rate_limit: an execution's
      progress, at most every 0.25 s (`stream.Progress`);
    - execution.round: a verify round's execution began, its task RUNNING still (name, round,
      resumed_from, reason: why);
    - node.up, node.stopped, node.lost; pool.changed (the stored pool state);
    - never stored: pool.waiting (`claudomator run` waits for the pool), hub.overflow (to a
      subscriber that fell behind, before it is dropped)."""

    id: int
    type: str
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
    node: str  # task.started, execution.round: the node that runs it; node.*: the node
    round: int  # execution.round: a verify round began (the new execution's round number)
    resumed_from: str  # execution.round: the execution whose session it resumes
    kind: str  # node.*: serve | run
    # pool.changed / pool.waiting: the pool state
    paused: bool
    draining: bool
    rate_limited_until: float
    rate_limit_reason: str
    guard: str  # pool.changed: "auth" | "billing" when a guard paused the pool
    until: float | None
