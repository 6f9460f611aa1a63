"""The rows as the write path reads them back (one per table it reads whole), and the records an
execution's start and end pass between the store and the lifecycle. Pure: types only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypedDict

from claudomator.records import Event
from claudomator.state import State
from claudomator.workspace import Admitted


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
    batch_id: str
    batch_budget_usd: float
    not_before: float
    sort_key: float
    created_at: float
    updated_at: float


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
    round: int
    resumed_from: str
    verify_json: str
    stdout_path: str
    stderr_path: str
    owner_host: str
    owner_pid: int
    owner_started: float
    owner_node: str
    cancel_requested: bool


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


class FileTask(TypedDict):
    """One of a file's tasks, as its result file and the intake read it."""

    id: str
    name: str
    state: str
    reason: str
    attempts: int
    executions: list[StoredExecution]


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


class StoredSource(TypedDict):
    """A node's progress on one source, as stored."""

    name: str
    kind: str
    last_commit: str
    error: str
    updated_at: float


class PoolState(TypedDict, total=False):
    """The stored pool state (the `meta` row `pool`); a key never set is absent."""

    paused: bool
    reason: str
    guard: str  # "auth" | "billing": paused by a guard, not by hand ("" or absent: not)
    draining: bool
    rate_limited_until: float
    rate_limit_reason: str
    budget_day: str


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
    batch_id: str  # its batch, when the batch has a budget ("": none)
    batch_budget_usd: float


class AdmissionRound(Protocol):
    """One start's admission: the queue is offered to it page by page, in pick order."""

    def consider(self, candidates: Sequence[str], slots: int) -> Admitted: ...


# a round begins with the tasks running on this node, a way to read tasks' configs (task id ->
# config_json) and one to read the tasks running on every node (which serialises the start
# among the nodes until it commits), all in the start's own transaction
Admission = Callable[
    [
        Sequence[str],
        Callable[[Sequence[str]], Mapping[str, str]],
        Callable[[], Sequence[str]],
    ],
    AdmissionRound,
]


class Started(NamedTuple):
    """An execution just started: its id, its `task.started` event, its task and the id of the
    claude session it begins (or resumes: `session_id` passed to its start)."""

    execution_id: str
    event: Event
    task: StartedTask
    session_id: str = ""


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
    workspace_json: str = ""
    verify_json: str = ""
    resumed_from: str = ""  # the execution whose session it resumed

    def columns(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class PreviousExecution(TypedDict):
    """A task's execution before the one starting: what a retry may resume."""

    id: str
    state: str
    reason: str
    session_id: str
    owner_host: str


class LiveExecution(TypedDict):
    """A RUNNING execution and who owns it, as recovery and the cancel watch read it."""

    id: str
    task_id: str
    owner_host: str
    owner_pid: int
    owner_started: float
    cancel_requested: bool


class LostExecution(TypedDict):
    """A RUNNING execution whose node was found lost."""

    id: str
    task_id: str
    owner_node: str


class Dependent(TypedDict):
    """A PENDING task waiting for another, with its dependencies' names and states."""

    id: str
    held: bool
    dependencies: list[tuple[str, State]]  # (name, state)
