"""How the CLI shows things: tables, one task, the status overview, the nodes, the sources, and
the lines `run` prints as its tasks change (a log is read by `logfiles.follow`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from claudomator.duration import format_duration as exact_duration
from claudomator.outcome import denial_summary
from claudomator.records import Event, Execution, JSONObject, Node, Source, Status, Task, TaskDetail
from claudomator.workspace import format_bytes


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def money(value: float) -> str:
    return f"${value:.4f}"


def table(rows: Sequence[Mapping[str, Any]], columns: list[tuple[str, str]]) -> None:
    cells = [[str(r.get(key, "")) for key, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    click.echo("  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


TASK_COLUMNS = [
    ("id", "ID"),
    ("name", "NAME"),
    ("state", "STATE"),
    ("priority", "PRIORITY"),
    ("attempts", "ATTEMPTS"),
    ("cost", "COST"),
    ("created", "CREATED"),
    ("reason", "REASON"),
]


def tasks_table(tasks: list[Task]) -> None:
    rows = [
        {
            **t,
            "cost": money(t["cost_usd"]),
            "created": (t["created_at"] or "")[:19].replace("T", " "),
            "reason": (t["reason"] or "")[:60],
        }
        for t in tasks
    ]
    table(rows, TASK_COLUMNS)


def task_detail(task: TaskDetail) -> None:
    for key in (
        "id",
        "name",
        "state",
        "reason",
        "priority",
        "tags",
        "depends_on",
        "attempts",
        "source",
        "source_path",
        "created_at",
        "updated_at",
    ):
        value = task.get(key)
        click.echo(f"{key + ':':<13} {value if value not in (None, '', []) else '-'}")
    click.echo(f"{'cost:':<13} {money(task['cost_usd'])}")
    spec = task["spec"]["claude"]
    click.echo(f"{'model:':<13} {spec.get('model') or '(config default)'}")
    click.echo(f"{'working_dir:':<13} {spec.get('working_dir') or '(config default)'}")
    if spec.get("env"):
        click.echo(f"{'env:':<13} {spec['env']}")
    for ex in task["executions"]:
        t = ex["tokens"]
        click.echo(
            f"  execution {ex['id']} #{ex['attempt']} {ex['state']} {money(ex['cost_usd'])} "
            f"tokens in {t['input']} out {t['output']} turns {ex['num_turns'] or '-'} "
            f"{ex['reason'] or ''}".rstrip()
        )
        click.echo(f"    log: {ex['stdout_path']}")
        workspace = ex.get("workspace")
        if workspace and workspace.get("branch"):
            click.echo(
                f"    branch: {workspace['branch']} {(workspace['base'] or '')[:10]} → "
                f"{(workspace['head'] or '')[:10]}, {workspace['commits']} commit(s), "
                f"{workspace['files_changed']} file(s) changed "
                f"(+{workspace['insertions']} -{workspace['deletions']})"
            )
            if workspace.get("push_error"):
                click.echo(f"    push failed: {workspace['push_error']}")
        execution_checks(ex)


def execution_checks(ex: Execution) -> None:
    """An execution's round and the session it resumed, what its verify commands said, and each
    permission claude was denied, a line each."""
    chain = [f"round {ex['round']}"] if ex["round"] else []
    if ex["resumed_from"]:
        chain.append(f"resumed from {ex['resumed_from']}")
    if chain:
        click.echo(f"    {', '.join(chain)}")
    if (verify := ex["verify"]) is not None:
        click.echo(
            f"    verify: {'passed' if verify['passed'] else 'failed'}, log {verify['log_path']}"
        )
        for check in verify["commands"]:
            click.echo(f"      {check['command']}: {check_result(check)}")
    for denial in ex["permission_denials"]:
        if isinstance(denial, dict):
            click.echo(f"    permission denied: {denial_summary(denial)}")


def check_result(check: JSONObject) -> str:
    """`exit 1, 120ms`, `timed out, 5m`, or `stopped, 2s` (a cancel stopped it)."""
    code = check["exit_code"]
    ended = "timed out" if check["timed_out"] else "stopped" if code is None else f"exit {code}"
    return f"{ended}, {exact_duration(check['duration_ms'] / 1000)}"


def status(data: Status, daily_budget_usd: float) -> None:
    counts, pool = data["counts"], data["pool"]
    click.echo("  ".join(f"{k} {v}" for k, v in counts.items()))
    budget = f" of {money(daily_budget_usd)}" if daily_budget_usd else ""
    click.echo(f"cost today: {money(data['cost_today_usd'])}{budget}")
    if pool["paused"]:
        until = f" until {pool['until']}" if pool["until"] else ""
        click.echo(f"pool: not starting new tasks: {pool['reason']}{until}")
    nodes = data["nodes"]
    for r in data["running"]:
        where = f" on {r['owner']['node']}" if len(nodes) > 1 and r["owner"]["node"] else ""
        click.echo(
            f"running: {r['task_id']} {r['name']}{where} for {r['elapsed_s']}s, "
            f"{money(r['cost_usd'])}"
        )
    if len(nodes) > 1:
        click.echo("nodes: " + ", ".join(f"{n['id']} {node_state(n)}" for n in nodes))


def node_state(node: Node) -> str:
    if node["state"] == "up" and node["expired"]:
        return f"silent {node['heartbeat_age_s']:.0f}s"
    if node["state"] == "up":
        return f"up {node['busy']}/{node['slots']}"
    return str(node["state"])


def nodes_table(rows: list[Node]) -> None:
    shown = [
        {
            **n,
            "state": node_state(n),
            "where": f"{n['host']}:{n['pid']}",
            "beat": f"{n['heartbeat_age_s']:.0f}s ago",
            "tasks": " ".join(r["name"] for r in n["running"]) or "-",
        }
        for n in rows
    ]
    columns = [("id", "NODE"), ("kind", "KIND"), ("state", "STATE"), ("where", "HOST:PID")]
    table(shown, [*columns, ("slots", "SLOTS"), ("beat", "HEARTBEAT"), ("tasks", "RUNNING")])


def sources_table(rows: list[Source]) -> None:
    shown = [
        {**r, "spool": f"@{r['name']}/", "commit": (r["last_commit"] or "-")[:12]} for r in rows
    ]
    columns = [("name", "NAME"), ("kind", "KIND"), ("branch", "BRANCH"), ("commit", "LAST COMMIT")]
    table(shown, [*columns, ("spool", "SPOOL"), ("path", "PATH")])
    for r in rows:
        if r["error"]:
            click.echo(f"{r['name']}: {r['error']}")


def listing(rows: Sequence[Any], as_json: bool, empty: str, show: Callable[[Any], None]) -> None:
    """Rows as a JSON array, else `show`n as a table, else `empty` said when there are none."""
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo(empty)
    else:
        show(rows)


def workspaces_table(rows: Sequence[Mapping[str, Any]]) -> None:
    shown = [
        {
            **r,
            "name": r["name"] or "(unknown task)",
            "state": r["state"] or "-",
            "branch": r["branch"] or "-",
            "size": format_bytes(r["size_bytes"]) if r["path"] else "-",
            "age": "-" if r["age_s"] is None else format_duration(r["age_s"]),
            "path": r["path"] or "(removed)",
        }
        for r in rows
    ]
    columns = [("task_id", "TASK"), ("name", "NAME"), ("state", "STATE"), ("branch", "BRANCH")]
    table(shown, [*columns, ("size", "SIZE"), ("age", "AGE"), ("path", "WORKTREE")])


def format_duration(seconds: float) -> str:
    """3h, 2d, 40m: how old, roughly."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def pool_line(gate_open: bool, reason: str) -> None:
    click.echo(f"pool: {'starting tasks' if gate_open else 'not starting new tasks: ' + reason}")


def progress_printer(t0: float) -> Callable[[Event], None]:
    """What `run` prints on stderr as its tasks change state, and while it waits."""

    def show(event: Event) -> None:
        if event["type"] == "pool.waiting":
            until = event.get("until")
            when = f" until {time.strftime('%H:%M:%S', time.localtime(until))}" if until else ""
            click.echo(
                f"[{time.monotonic() - t0:7.1f}s] waiting{when}: {event['reason']}", err=True
            )
            return
        if not event["type"].startswith("task.") or event["type"] == "task.created":
            return
        reason = f"  {event['reason']}" if event.get("reason") else ""
        if event.get("not_before"):
            at = time.strftime("%H:%M:%S", time.localtime(event["not_before"]))
            reason += f" (waiting until {at})"
        cost = f"  {money(event['cost_usd'])}" if event.get("cost_usd") else ""
        click.echo(
            f"[{time.monotonic() - t0:7.1f}s] {event.get('name', '')}  {event['state']}{cost}{reason}",
            err=True,
        )

    return show
