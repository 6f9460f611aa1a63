"""Rows as JSON for people and programs: the one shape of a task and an execution, shared by the
read path and the write path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from claudomator.records import Execution, Node, NodeRunning, Task, TaskDetail
from claudomator.secret import mask_env


class RowLike(Protocol):
    """A row by column name: sqlite3.Row, a SQLAlchemy mapping, a dict."""

    def __getitem__(self, key: str) -> Any: ...


TASK_COLUMNS = (
    "id, name, state, reason, priority, attempts, requeues, held, config_json, retry_json, "
    "tags_json, depends_on_json, depends_on_ids_json, source, source_path, provenance_json, "
    "not_before, "
    "created_at, updated_at"
)
EXECUTION_COLUMNS = (
    "id, task_id, attempt, state, reason, started_at, finished_at, exit_code, cost_usd, "
    "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, model_usage_json, "
    "session_id, num_turns, duration_ms, cli_version, model, result_text, errors_json, "
    "permission_denials_json, api_error_status, workspace_json, round, resumed_from, "
    "verify_json, stdout_path, stderr_path, "
    "owner_host, owner_pid, owner_node, cancel_requested"
)


def iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def task_json(row: RowLike, cost_usd: float = 0.0) -> Task:
    return {
        "id": row["id"],
        "name": row["name"],
        "state": row["state"],
        "reason": row["reason"],
        "priority": row["priority"],
        "tags": json.loads(row["tags_json"]),
        "depends_on": json.loads(row["depends_on_json"]),
        "attempts": row["attempts"],
        "cost_usd": round(float(cost_usd or 0.0), 10),
        "source": row["source"],
        "source_path": row["source_path"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def task_detail(row: RowLike, cost_usd: float, executions: list[Execution]) -> TaskDetail:
    """A task with everything `status ID` shows: its spec (secret-looking env values masked),
    where it came from and its executions."""
    spec = json.loads(row["config_json"])
    spec.setdefault("claude", {})["env"] = mask_env(spec.get("claude", {}).get("env") or {})
    return {
        **task_json(row, cost_usd),
        "spec": spec,
        "requeues": row["requeues"],
        "held": bool(row["held"]),
        "depends_on_ids": json.loads(row["depends_on_ids_json"]),
        "not_before": iso(row["not_before"]),
        "provenance": json.loads(row["provenance_json"]) or None,
        "executions": executions,
        "batch": None,  # the reader adds it
    }


def execution_json(row: RowLike) -> Execution:
    return {
        "id": row["id"],
        "task_id": row["task_id"],
        "attempt": row["attempt"],
        "state": row["state"],
        "reason": row["reason"],
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "exit_code": row["exit_code"],
        "cost_usd": row["cost_usd"],
        "tokens": {
            "input": row["input_tokens"],
            "output": row["output_tokens"],
            "cache_read": row["cache_read_tokens"],
            "cache_creation": row["cache_creation_tokens"],
        },
        "model_usage": json.loads(row["model_usage_json"]),
        "session_id": row["session_id"],
        "num_turns": row["num_turns"],
        "duration_ms": row["duration_ms"],
        "cli_version": row["cli_version"],
        "model": row["model"],
        "result": row["result_text"],
        "errors": json.loads(row["errors_json"]),
        "permission_denials": json.loads(row["permission_denials_json"]),
        "api_error_status": row["api_error_status"],
        "workspace": json.loads(row["workspace_json"]) if row["workspace_json"] else None,
        "round": row["round"],
        "resumed_from": row["resumed_from"] or None,
        "verify": json.loads(row["verify_json"]) if row["verify_json"] else None,
        "stdout_path": row["stdout_path"],
        "stderr_path": row["stderr_path"],
        "owner": {"host": row["owner_host"], "pid": row["owner_pid"], "node": row["owner_node"]},
    }


def node_json(row: RowLike, running: list[NodeRunning], now: float) -> Node:
    """A `nodes` row as the API shows it; `running`: its executions, `now`: the database's time."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "host": row["host"],
        "pid": row["pid"],
        "state": row["state"],
        "expired": row["state"] == "up" and row["heartbeat_at"] + row["lease_s"] < now,
        "slots": row["slots"],
        "busy": len(running),
        "running": running,
        "heartbeat_at": iso(row["heartbeat_at"]),
        "heartbeat_age_s": round(max(0.0, now - row["heartbeat_at"]), 1),
        "heartbeat_s": row["heartbeat_s"],
        "lease_s": row["lease_s"],
        "started_at": iso(row["started_at"]),
        "stopped_at": iso(row["stopped_at"]),
        "data_dir": row["data_dir"],
        "version": row["version"],
    }
