"""The facts the checks read, all at once after the campaign: the store's tasks, executions,
files and task events, and each node's spool folders."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from claudomator.state import FINAL_STATES, State
from tests.chaos.database import Database
from tests.chaos.drops import Drop
from tests.chaos.node import Node

FINAL = frozenset(s.value for s in FINAL_STATES)


@dataclass
class Facts:
    """The store's rows, each node's spool folders and node id, read once the campaign is over."""

    tasks: dict[str, dict[str, Any]]  # id -> row
    executions: dict[str, dict[str, Any]]  # id -> row
    files: list[dict[str, Any]]
    events: dict[str, list[tuple[str, str, str]]]  # task id -> [(type, state, execution id)]
    listings: dict[int, dict[str, list[str]]]  # node index -> folder -> names
    node_ids: dict[int, str]

    @classmethod
    def read(cls, db: Database, nodes: list[Node]) -> Facts:
        def table(query: str, names: str) -> list[dict[str, Any]]:
            keys = [k.strip() for k in names.split(",")]
            return [dict(zip(keys, row, strict=True)) for row in db.rows(query.format(names))]

        tasks = table(
            "SELECT {} FROM tasks", "id, name, state, reason, attempts, requeues, file_id"
        )
        executions = table(
            "SELECT {} FROM executions",
            "id, task_id, state, reason, owner_pid, attempt, round, resumed_from",
        )
        files = table("SELECT {} FROM files", "id, node, source, rel_path, folder, name, error")
        events: dict[str, list[tuple[str, str, str]]] = {}
        for _, type_, task_id, execution_id, data in db.rows(
            "SELECT id, type, task_id, execution_id, data_json FROM events "
            "WHERE type LIKE 'task.%' OR type = 'execution.round' ORDER BY id"
        ):
            state = json.loads(data).get("state", "")
            events.setdefault(task_id, []).append((type_, state, execution_id))
        return cls(
            {t["id"]: t for t in tasks},
            {e["id"]: e for e in executions},
            files,
            events,
            {n.index: n.listing() for n in nodes},
            {n.index: n.node_id for n in nodes},
        )

    def rows_of(self, drop: Drop) -> list[dict[str, Any]]:
        """The `files` rows of a drop: its node's, found at its path in the inbox."""
        node = self.node_ids[drop.node]
        return [
            f
            for f in self.files
            if f["node"] == node and f["source"] == "inbox" and f["rel_path"] == drop.rel
        ]

    def tasks_of(self, file_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = set(file_ids)
        return sorted(
            (t for t in self.tasks.values() if t["file_id"] in ids), key=lambda t: t["id"]
        )

    def executions_of(self, task_id: str) -> list[dict[str, Any]]:
        return sorted(
            (e for e in self.executions.values() if e["task_id"] == task_id), key=lambda e: e["id"]
        )


def implied_folder(tasks: list[dict[str, Any]]) -> str:
    """Where a valid file stands (README, "The directory runner"): `queued/` until its first
    task starts, `running/` until all its tasks are final, then `done/`."""
    if all(t["state"] in FINAL for t in tasks):
        return "done"
    if any(t["state"] == State.RUNNING.value or t["attempts"] > 0 for t in tasks):
        return "running"
    return "queued"
