"""What claudomator shows: tasks, one task, an execution and its log, the status overview, the
nodes, the sources, and the check of task files against what is recorded. Read through the
stdlib read path (`store.reader`), so that the CLI's `list` and `status` start fast: nothing here
imports SQLAlchemy, pydantic or structlog at module level, and nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from claudomator.config import Config
from claudomator.errors import NotFoundError, TaskFileError
from claudomator.logfiles import elsewhere
from claudomator.records import Costs, Execution, Node, Source, Status, Task, TaskDetail
from claudomator.state import State
from claudomator.store.reader import Reader, source_key, start_of_today
from claudomator.store.rows import iso

if TYPE_CHECKING:
    from claudomator.taskfile import ParsedFile


@dataclass(frozen=True)
class LogFile:
    """Where one execution's stdout or stderr is."""

    execution_id: str
    path: Path


@dataclass(frozen=True)
class Checked:
    """One task file checked: parsed, or why not."""

    path: Path
    parsed: ParsedFile | None
    error: TaskFileError | None


class Views:
    def __init__(self, config: Config, reader: Reader) -> None:
        self.config, self.reader = config, reader

    @classmethod
    def open(cls, config: Config) -> Views:
        """Over a reader of its own; a database written by an older claudomator is migrated
        first (rare: it pays the write path's import)."""
        reader = Reader(config.database)
        if reader.outdated():
            from claudomator.store.db import Store

            reader.close()
            Store(config.database).close()
        return cls(config, reader)

    def close(self) -> None:
        self.reader.close()

    @property
    def this_node(self) -> str:
        """This data dir's node id, if it has one yet (never made here)."""
        return self.config.node_id or self.config.data_dir.node_id()

    def tasks(self, **filters: Any) -> list[Task]:
        """Newest first; `filters` as for `Reader.list_tasks` (state, tag, ids, limit, …)."""
        return self.reader.list_tasks(**filters)

    def task(self, task_id: str) -> TaskDetail:
        """One task with its executions."""
        data = self.reader.task(task_id)
        if data is None:
            raise NotFoundError(f"no task with id {task_id!r}")
        return data

    def execution(self, execution_id: str) -> Execution:
        found = self.reader.execution(execution_id)
        if found is None:
            raise NotFoundError(f"no execution with id {execution_id!r}")
        return found

    def status(self) -> Status:
        """Counts by state, running executions, the pool, today's spend, the nodes."""
        return self.reader.status(
            daily_budget_usd=self.config.daily_budget_usd,
            slots=self.config.max_concurrency,
            tag_budgets=self.config.tag_budgets,
        )

    def nodes(self) -> list[Node]:
        return self.reader.nodes()

    def costs(self, days: int) -> Costs:
        """Spend per local day and per tag over the last `days` days (today included)."""
        return self.reader.costs(start_of_today() - (days - 1) * 86400.0)

    def sources(self) -> list[Source]:
        """The configured sources, each with this node's progress (each node walks its own
        checkout; a row from before nodes existed is keyed by the name alone)."""
        stored = {row["name"]: row for row in self.reader.sources()}
        node = self.this_node
        rows: list[Source] = []
        for source in self.config.sources:
            state = stored.get(source_key(source.name, node)) or stored.get(source.name)
            rows.append(
                {
                    "name": source.name,
                    "kind": source.kind,
                    "path": source.path,
                    "subdir": source.subdir,
                    "branch": source.branch,
                    "remote": source.remote,
                    "last_commit": state["last_commit"] or None if state else None,
                    "error": state["error"] or None if state else None,
                    "updated_at": iso(state["updated_at"]) if state else None,
                }
            )
        return rows

    def log(self, ref: str, *, stderr: bool = False) -> LogFile:
        """The log of execution `ref`, or of task `ref`'s latest execution; refused when it
        ran on another node, whose data dir holds its log."""
        ex = self.reader.execution(ref) or self.reader.latest_execution(ref)
        if ex is None:
            if self.reader.task(ref) is not None:
                raise NotFoundError(f"task {ref} has no execution yet")
            raise NotFoundError(f"no task or execution with id {ref!r}")
        path = Path(ex["stderr_path"] if stderr else ex["stdout_path"])
        node = ex["owner"]["node"]
        if elsewhere(node, self.this_node, path):
            raise NotFoundError(
                f"execution {ex['id']} ran on node {node} ({ex['owner']['host']}): its log is in "
                f"that node's data dir ({path}); run `claudomator logs` there"
            )
        return LogFile(ex["id"], path)

    def running(self, execution_id: str) -> bool:
        ex = self.reader.execution(execution_id)
        return ex is not None and ex["state"] == State.RUNNING.value

    def check(self, paths: list[Path]) -> list[Checked]:
        """Each file on its own, recording nothing: a depends_on name found neither in the file
        nor in the store is a warning here, an error only when the task is submitted."""
        from claudomator.taskfile import parse_file

        out = []
        for path in paths:
            try:
                parsed = parse_file(
                    path,
                    known_name=self.reader.name_exists,
                    unknown_dependency="warn",
                    max_bytes=self.config.max_file_bytes,
                )
            except TaskFileError as e:
                out.append(Checked(path, None, e))
            else:
                out.append(Checked(path, parsed, None))
        return out


__all__ = ["Checked", "LogFile", "Views"]
