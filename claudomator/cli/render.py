"""How the CLI shows things: tables, one task, the status overview, the nodes, the sources, and
the lines `run` prints as its tasks change (a log is read by `logfiles.follow`). Tables fit the
terminal and states are coloured on one (`terminal`); nothing shows Python's own syntax."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click

from claudomator.cli.terminal import Terminal
from claudomator.duration import format_duration as exact_duration
from claudomator.outcome import denial_summary
from claudomator.records import Event, Execution, JSONObject, Node, Source, Status, Task, TaskDetail
from claudomator.workspace import format_bytes


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def money(value: float) -> str:
    return f"${value:.4f}"


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: list[tuple[str, str]],
    *,
    flexible: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> None:
    """As `Terminal.table`, on stdout."""
    Terminal().table(rows, columns, flexible=flexible, optional=optional)


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
        }
        for t in tasks
    ]
    table(
        rows,
        TASK_COLUMNS,
        flexible=("reason", "name"),
        optional=("priority", "attempts", "created", "cost"),
    )


def task_line(task: Task) -> None:
    """`ID name: STATE`, as `cancel` and `retry` answer."""
    term = Terminal()
    term.echo(f"{task['id']} {task['name']}: {term.state(task['state'])}")


def shown(value: object) -> str:
    """A field's value for people: lists as `a, b`, mappings as `K=v K=v`, nothing as `-`."""
    if value in (None, "", [], {}):
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def task_detail(task: TaskDetail, defaults: Mapping[str, str]) -> None:
    """One task (`status ID`); `defaults`: the config's `model` and `working_dir`, shown for a
    task that sets none."""
    term = Terminal()

    def field(key: str, value: object) -> None:
        term.echo(f"{key + ':':<14}{shown(value)}")

    for key in ("id", "name"):
        field(key, task.get(key))
    term.echo(f"{'state:':<14}{term.state(task['state'])}")
    for key in ("reason", "priority", "tags", "depends_on", "attempts", "source", "source_path"):
        field(key, task.get(key))
    if provenance := task.get("provenance"):
        field("commit", provenance.get("commit"))
        field("author", provenance.get("author"))
        field("committed_at", provenance.get("committed_at"))
        field("blob", provenance.get("blob"))
    for key in ("created_at", "updated_at"):
        field(key, task.get(key))
    field("cost", money(task["cost_usd"]))
    if batch := task.get("batch"):
        field("batch budget", f"{money(batch['spent_usd'])} of {money(batch['budget_usd'])}")
    if breaker := (task["spec"].get("retry") or {}).get("max_cost_usd"):
        field("retry stops", f"at {money(breaker)} spent")
    spec = task["spec"]["claude"]
    for key in ("model", "working_dir"):
        field(key, spec.get(key) or f"{defaults.get(key) or '-'} (config default)")
    if spec.get("env"):
        field("env", spec["env"])
    for ex in task["executions"]:
        t = ex["tokens"]
        term.echo(
            f"  execution {ex['id']} #{ex['attempt']} {term.state(ex['state'])} "
            f"{money(ex['cost_usd'])} tokens in {t['input']} out {t['output']} "
            f"turns {ex['num_turns'] or '-'} {ex['reason'] or ''}".rstrip()
        )
        term.echo(f"    log: {ex['stdout_path']}")
        workspace = ex.get("workspace")
        if workspace and workspace.get("branch"):
            term.echo(
                f"    branch: {workspace['branch']} {(workspace['base'] or '')[:10]} → "
                f"{(workspace['head'] or '')[:10]}, {workspace['commits']} commit(s), "
                f"{workspace['files_changed']} file(s) changed "
                f"(+{workspace['insertions']} -{workspace['deletions']})"
            )
            if workspace.get("push_error"):
                term.echo(f"    push failed: {workspace['push_error']}")
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


def with_until(reason: str, until: str | None) -> str:
    """A pause's reason and until when, said once (a rate limit's reason may say it already)."""
    return f"{reason} until {until}" if until and "until" not in reason else reason


def status(data: Status, daily_budget_usd: float, now: float | None = None) -> None:
    """`status`: tasks by state, the pool, the serves and their uptime, today's cost, what runs
    and, when several share the database, the nodes."""
    term = Terminal()
    now = time.time() if now is None else now
    counts = [term.state(f"{n} {state}", state) for state, n in data["counts"].items() if n]
    term.echo(f"tasks: {', '.join(counts) if counts else 'none'}")
    pool = data["pool"]
    starting = (
        "not starting new tasks: " + with_until(pool["reason"], pool["until"])
        if pool["paused"]
        else "starting tasks"
    )
    term.echo(term.cut(f"pool: {pool['busy']}/{pool['slots']} slots busy; {starting}"))
    serves = [n for n in data["nodes"] if n["kind"] == "serve" and n["state"] == "up"]
    if not serves:
        term.echo("serve: none running (`claudomator serve` starts one)")
    for n in serves:
        up = node_state(n) if n["expired"] else f"up {uptime(n['started_at'], now)}"
        term.echo(f"serve: {up}, node {n['id']}, {where(n)}")
    budget = f" of {money(daily_budget_usd)}" if daily_budget_usd else ""
    term.echo(f"cost today: {money(data['cost_today_usd'])}{budget}")
    for tag in data.get("tag_budgets") or []:
        reached = " (reached: its tasks wait)" if tag["spent_usd"] >= tag["budget_usd"] else ""
        term.echo(
            f"tag {tag['tag']} today: {money(tag['spent_usd'])} of {money(tag['budget_usd'])}"
            f"{reached}"
        )
    nodes = data["nodes"]
    for r in data["running"]:
        on = f" on {r['owner']['node']}" if len(nodes) > 1 and r["owner"]["node"] else ""
        term.echo(
            term.cut(
                f"running: {r['task_id']} {r['name']}{on} for {r['elapsed_s']}s, "
                f"{money(r['cost_usd'])}"
            )
        )
    if len(nodes) > 1:
        term.echo("nodes: " + ", ".join(f"{n['id']} {node_state(n)}" for n in nodes))


def uptime(started_at: str | None, now: float) -> str:
    """`for 3m12s`: how long since `started_at` (ISO 8601), in its two largest units."""
    if not started_at:
        return "(since when unknown)"
    return "for " + rough(max(0.0, now - datetime.fromisoformat(started_at).timestamp()))


def rough(seconds: float) -> str:
    """3m12s, 2h5m, 1d, 40s: a duration in its two largest units."""
    parts: list[str] = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, rest = divmod(rest, size)
        if n or parts:
            parts.append(f"{n}{unit}" if n else "")
    return "".join(parts[:2]) or "0s"


def where(node: Node) -> str:
    return f"pid {node['pid']} on {node['host']}"


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
    table(
        shown,
        [*columns, ("slots", "SLOTS"), ("beat", "HEARTBEAT"), ("tasks", "RUNNING")],
        flexible=("tasks", "where"),
    )


def sources_table(rows: list[Source]) -> None:
    shown = [
        {**r, "spool": f"@{r['name']}/", "commit": (r["last_commit"] or "-")[:12]} for r in rows
    ]
    columns = [("name", "NAME"), ("kind", "KIND"), ("branch", "BRANCH"), ("commit", "LAST COMMIT")]
    table(shown, [*columns, ("spool", "SPOOL"), ("path", "PATH")], flexible=("path",))
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
    table(
        shown,
        [*columns, ("size", "SIZE"), ("age", "AGE"), ("path", "WORKTREE")],
        flexible=("path", "name", "branch"),
    )


def format_duration(seconds: float) -> str:
    """3h, 2d, 40m: how old, roughly."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def pool_line(gate_open: bool, reason: str) -> None:
    click.echo(f"pool: {'starting tasks' if gate_open else 'not starting new tasks: ' + reason}")


def log_line(term: Terminal, text: str) -> str:
    """A line of `claudomator logs` coloured by what it is: a tool call, a failed tool, the
    result (green for a success), a retry or rate limit, claude's own setup."""
    if text.startswith("→ "):
        return term.paint(text, "cyan")
    if text.startswith("← error"):
        return term.paint(text, "red")
    if text.startswith("[result] "):
        return term.paint(text, "green" if text.startswith("[result] success") else "red")
    if text.startswith(("[retry]", "[rate limit]")):
        return term.paint(text, "yellow")
    if text.startswith(("[init]", "[compact]", "← ok")):
        return term.paint(text, dim=True)
    return text


def progress_printer(t0: float) -> Callable[[Event], None]:
    """What `run` prints on stderr as its tasks change state, and while it waits."""
    term = Terminal(err=True)

    def show(event: Event) -> None:
        at = f"[{time.monotonic() - t0:7.1f}s]"
        if event["type"] == "pool.waiting":
            until = event.get("until")
            clock = time.strftime("%H:%M:%S", time.localtime(until)) if until else None
            term.echo(term.cut(f"{at} waiting: {with_until(event['reason'], clock)}"))
            return
        if not event["type"].startswith("task.") or event["type"] == "task.created":
            return
        reason = f"  {event['reason']}" if event.get("reason") else ""
        if event.get("not_before"):
            clock = time.strftime("%H:%M:%S", time.localtime(event["not_before"]))
            if "until" not in reason:
                reason += f" (waiting until {clock})"
        cost = f"  {money(event['cost_usd'])}" if event.get("cost_usd") else ""
        head = f"{at} {event.get('name', '')}  "
        line = term.cut(f"{head}{event['state']}{cost}{reason}")
        state = event["state"]
        if line.startswith(head + state):
            line = head + term.state(state) + line[len(head) + len(state) :]
        term.echo(line)

    return show
