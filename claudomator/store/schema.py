"""The tables (SQLModel) and the migrations that bring any older database to the current schema."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text
from sqlmodel import Field, SQLModel

from claudomator.store.sql import SCHEMA_VERSION as SCHEMA_VERSION  # declared there for the reader


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        # the pick of the next task: QUEUED rows in sort_key order (priority with aging)
        Index("ix_tasks_pick", "state", "dispatcher", "sort_key"),
        Index("ix_tasks_name", "name", "id"),
    )

    id: str = Field(primary_key=True)  # sorts by creation time
    name: str
    state: str = Field(index=False)
    reason: str = ""
    priority: str = "normal"
    priority_rank: int = 1  # 0 high, 1 normal, 2 low
    attempts: int = 0  # executions started for this task
    requeues: int = 0  # requeues that used no attempt (rate limits)
    held: bool = False  # PENDING until someone says `run` (not only until dependencies finish)
    config_json: str = Field(sa_column=Column(Text, nullable=False))  # the TaskSpec as JSON
    retry_json: str = "{}"
    tags_json: str = "[]"
    depends_on_json: str = "[]"  # names as written
    depends_on_ids_json: str = "[]"  # resolved task ids
    source: str = ""  # "run FILE", "inbox", "api", "git:<name>"
    source_path: str = ""  # the task file as given
    # where a git task came from: {"commit", "author", "committed_at", "path", "blob"}
    provenance_json: str = "{}"
    file_id: str = Field(default="", index=True)  # the spool file it came from, if any
    # a batch with a `budget_usd`: its first task's id, and that budget (0: none)
    batch_id: str = Field(default="", index=True)
    batch_budget_usd: float = 0.0
    not_before: float = 0.0  # epoch seconds: retry back-off
    # when it was queued + rank * aging: a waiting task rises one priority level per aging interval
    sort_key: float = 0.0
    dispatcher: str = ""  # "" = any server; "run:<host>:<pid>:<start>" = only that `run`
    created_at: float
    updated_at: float


class ExecutionRow(SQLModel, table=True):
    __tablename__ = "executions"
    # today's spend (the daily budget) without a scan: a covering index
    __table_args__ = (
        Index("ix_executions_spend", "started_at", "cost_usd"),
        # what runs, and on which node: the lease check reads it every second
        Index("ix_executions_running", "state", "owner_node"),
    )

    id: str = Field(primary_key=True)
    task_id: str = Field(foreign_key="tasks.id", index=True)
    attempt: int
    state: str  # RUNNING until it ends, then the final state it gave its task
    reason: str = ""
    started_at: float
    finished_at: float | None = None
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
    result_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    errors_json: str = "[]"
    permission_denials_json: str = "[]"
    api_error_status: int | None = None
    workspace_json: str = ""  # where it ran: `workspace.WorkspaceRecord` as JSON ("" before 4)
    # a verify round (0: the first execution of an attempt) and the execution whose claude
    # session it resumed ("": a fresh session); what the verify commands said (JSON, "": none)
    round: int = 0
    resumed_from: str = ""
    verify_json: str = ""
    stdout_path: str = ""
    stderr_path: str = ""
    # who owns it: a dispatcher finding a RUNNING execution whose owner is gone marks it FAILED
    owner_host: str = ""
    owner_pid: int = 0
    owner_started: float = 0.0  # the owner's process start time (pids are reused)
    owner_node: str = ""  # the node (`nodes.id`) that runs it: its lease vouches for it
    cancel_requested: bool = False


class DependencyRow(SQLModel, table=True):
    """`depends_on` resolved: task `task_id` waits for task `depends_on_id` (found by index)."""

    __tablename__ = "dependencies"

    task_id: str = Field(foreign_key="tasks.id", primary_key=True)
    depends_on_id: str = Field(foreign_key="tasks.id", primary_key=True, index=True)


class FileRow(SQLModel, table=True):
    """A task file in the spool: where it stands, so that the folders mirror the store and a
    crash between a claim and its record is repaired at start."""

    __tablename__ = "files"

    id: str = Field(primary_key=True)
    node: str = Field(default="", index=True)  # the node whose spool folders hold it
    source: str  # "inbox", or "@<source name>"
    rel_path: str  # where it was found, relative to its source
    folder: str  # staging | queued | running | done | rejected | deleted
    name: str = ""  # its path relative to `folder`
    # `<inode>:<mtime ns>` once placed: the same file wherever a move (a hard link, then an
    # unlink) that a crash interrupted left it, and never a file a person put there
    fingerprint: str = ""
    error: str = ""
    provenance_json: str = "{}"  # a git source's copy: commit, author, time, path, blob
    created_at: float
    updated_at: float


class GitVersionRow(SQLModel, table=True):
    """Each version of a task file in a git source, ingested at most once, ever."""

    __tablename__ = "git_versions"

    source: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    blob: str = Field(primary_key=True)
    commit: str
    file_id: str = ""
    created_at: float


class SourceRow(SQLModel, table=True):
    """A task source's progress: the last commit of its branch that was ingested."""

    __tablename__ = "sources"

    name: str = Field(primary_key=True)
    kind: str
    last_commit: str = ""
    error: str = ""  # why it is stuck (e.g. a non-fast-forward), "" when fine
    updated_at: float


class NodeRow(SQLModel, table=True):
    """A process that executes tasks: a `serve` (one per data dir) or a `run`. It renews its lease
    every heartbeat; once `heartbeat_at + lease_s` has passed, any other node marks it `lost` and
    fails its RUNNING executions. Times are the database's clock, so hosts' clocks may differ."""

    __tablename__ = "nodes"

    id: str = Field(primary_key=True)
    kind: str  # "serve" | "run"
    host: str
    pid: int
    process_started: float  # the process's start time (pids are reused)
    data_dir: str = ""
    slots: int = 0
    version: str = ""
    state: str  # "up" | "stopped" | "lost"
    heartbeat_s: float
    lease_s: float
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None


class EventRow(SQLModel, table=True):
    __tablename__ = "events"

    # monotonically increasing: BIGSERIAL on PostgreSQL; on SQLite the rowid (INTEGER PRIMARY KEY)
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    at: float
    type: str  # dotted: task.created, task.queued, task.started, task.finished, ...
    task_id: str = Field(default="", index=True)
    execution_id: str = ""
    data_json: str = "{}"


class MetaRow(SQLModel, table=True):
    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


# Each migration takes the schema from version N-1 to N: a list of portable SQL statements, or
# of tables to create from the models above (so a migrated database equals a new one).
# Version 1 was the tables above without `nodes` and the node columns.
MIGRATIONS: dict[int, list[str | type[SQLModel]]] = {
    2: [
        NodeRow,
        "ALTER TABLE executions ADD COLUMN owner_node VARCHAR NOT NULL DEFAULT ''",
        "CREATE INDEX ix_executions_running ON executions (state, owner_node)",
        "ALTER TABLE files ADD COLUMN node VARCHAR NOT NULL DEFAULT ''",
        "CREATE INDEX ix_files_node ON files (node)",
    ],
    3: ["ALTER TABLE files ADD COLUMN fingerprint VARCHAR NOT NULL DEFAULT ''"],
    4: ["ALTER TABLE executions ADD COLUMN workspace_json VARCHAR NOT NULL DEFAULT ''"],
    5: [
        "ALTER TABLE executions ADD COLUMN round INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE executions ADD COLUMN resumed_from VARCHAR NOT NULL DEFAULT ''",
        "ALTER TABLE executions ADD COLUMN verify_json VARCHAR NOT NULL DEFAULT ''",
    ],
    6: [
        "ALTER TABLE tasks ADD COLUMN batch_id VARCHAR NOT NULL DEFAULT ''",
        "ALTER TABLE tasks ADD COLUMN batch_budget_usd FLOAT NOT NULL DEFAULT 0",
        "CREATE INDEX ix_tasks_batch_id ON tasks (batch_id)",
    ],
}

TASKS: Table = SQLModel.metadata.tables[TaskRow.__tablename__]
EXECUTIONS: Table = SQLModel.metadata.tables[ExecutionRow.__tablename__]
EVENTS: Table = SQLModel.metadata.tables[EventRow.__tablename__]
META: Table = SQLModel.metadata.tables[MetaRow.__tablename__]
FILES: Table = SQLModel.metadata.tables[FileRow.__tablename__]
DEPENDENCIES: Table = SQLModel.metadata.tables[DependencyRow.__tablename__]
GIT_VERSIONS: Table = SQLModel.metadata.tables[GitVersionRow.__tablename__]
SOURCES: Table = SQLModel.metadata.tables[SourceRow.__tablename__]
NODES: Table = SQLModel.metadata.tables[NodeRow.__tablename__]
# what a new database is made of
TABLES = [TASKS, EXECUTIONS, EVENTS, META, FILES, DEPENDENCIES, GIT_VERSIONS, SOURCES, NODES]
