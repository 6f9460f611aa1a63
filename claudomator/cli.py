"""The `claudomator` command: click commands over one service, with one error map.

Heavy imports (SQLAlchemy, pydantic, structlog) happen only inside the commands that need them:
`list` and `status` read the database through the stdlib read path and start fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from claudomator import __version__
from claudomator.config import Config, load_config, write_private
from claudomator.errors import ClaudomatorError, NotFoundError, TaskFileError
from claudomator.state import FINAL_STATES, State

if TYPE_CHECKING:
    from claudomator.events import Subscription
    from claudomator.service import Claudomator
    from claudomator.store.reader import Reader

FINAL = {s.value for s in FINAL_STATES}


class Context:
    def __init__(self, flags: dict[str, object]) -> None:
        self.flags = flags
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(flags=self.flags)
        return self._config

    def reader(self) -> Reader:
        from claudomator.store.reader import Reader

        reader = Reader(self.config.database)
        if reader.outdated():  # written by an older claudomator: migrate it first (rare)
            from claudomator.store.db import Store

            reader.close()
            Store(self.config.database).close()
        return reader

    def service(self, quiet: bool = False) -> Claudomator:
        """The service; `quiet` logs warnings only unless log.level was set explicitly (the
        command prints its own progress)."""
        from claudomator import log
        from claudomator.service import Claudomator

        level = self.config.log_level
        if quiet and "log.level" not in self.config.origins:
            level = "warning"
        log.configure(level, self.config.log_format)
        return Claudomator(self.config)


pass_ctx = click.make_pass_decorator(Context)


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except NotFoundError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(4)
    except TaskFileError as e:
        click.echo(e.message, err=True)
        sys.exit(1)
    except ClaudomatorError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(1)


@click.group()
@click.version_option(__version__, prog_name="claudomator")
@click.option("--claude-bin", help="The claude executable (config claude.binary).")
@click.option("--max-concurrency", type=int, help="Executions at once (config max_concurrency).")
@click.option("--model", help="Model for tasks that name none (config claude.model).")
@click.pass_context
def cli(
    ctx: click.Context, claude_bin: str | None, max_concurrency: int | None, model: str | None
) -> None:
    """claudomator: queue coding work for Claude Code and let it run.

    The data dir is ~/.claudomator, or CLAUDOMATOR_HOME.
    """
    ctx.obj = Context(
        {"claude.binary": claude_bin, "max_concurrency": max_concurrency, "claude.model": model}
    )


# -- setup -------------------------------------------------------------------------------------


@cli.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the data dir, a commented config.toml and the database (idempotent)."""
    from claudomator.config import config_template
    from claudomator.store.db import Store

    data_dir = ctx.config.data_dir
    data_dir.ensure()
    if write_private(data_dir.config_file, config_template()):
        click.echo(f"wrote {data_dir.config_file}")
    else:
        click.echo(f"kept {data_dir.config_file} (already there)")
    Store(ctx.config.database).close()
    from claudomator.token import ensure_token, token_path

    ensure_token(data_dir.root)
    click.echo(f"API token in {token_path(data_dir.root)} (`claudomator token` prints it)")
    click.echo(f"data dir ready: {data_dir.root}")


@cli.command()
@click.option("--read-only", is_flag=True, help="The token that can read but not act.")
@click.option("--rotate", is_flag=True, help="Replace it with a new one (restart serve to apply).")
@pass_ctx
def token(ctx: Context, read_only: bool, rotate: bool) -> None:
    """Print the API token alone on stdout; made (0600, in the data dir) if there is none yet.

    The API asks for it as `Authorization: Bearer TOKEN` when auth is on: with
    [server] auth = true, and always when server.host is not loopback.
    """
    from claudomator.token import ensure_token

    ctx.config.data_dir.ensure()
    click.echo(ensure_token(ctx.config.data_dir.root, read_only=read_only, rotate=rotate))


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def config_cmd(ctx: Context, as_json: bool) -> None:
    """Print the effective configuration and where each value came from."""
    rows = ctx.config.effective()
    if as_json:
        emit_json(
            {
                "data_dir": str(ctx.config.data_dir.root),
                "keys": [{"key": k, "value": v, "origin": o} for k, v, o in rows],
            }
        )
        return
    click.echo(f"# data dir: {ctx.config.data_dir.root}")
    width = max(len(k) for k, _, _ in rows)
    for key, value, origin in rows:
        click.echo(f"{key:<{width}} = {value:<24} # {origin}")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of task and batch files (for editor completion)."""
    from claudomator.task import json_schema

    emit_json(json_schema())


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def validate(ctx: Context, files: tuple[Path, ...]) -> None:
    """Check task and batch files; exit 1 if any is invalid.

    Each file is checked on its own: a depends_on name found neither in the file nor in the
    store is a warning here, an error only when the task is submitted.
    """
    from claudomator.taskfile import parse_file

    reader = ctx.reader()
    bad = 0
    for path in files:
        try:
            parsed = parse_file(
                path,
                known_name=reader.name_exists,
                unknown_dependency="warn",
                max_bytes=ctx.config.max_file_bytes,
            )
        except TaskFileError as e:
            bad += 1
            click.echo(e.message, err=True)
            continue
        for warning in parsed.warnings:
            click.echo(str(warning), err=True)
        kind = f"batch of {len(parsed.tasks)} tasks" if parsed.is_batch else "task"
        click.echo(f"{path}: ok ({kind})")
    if bad:
        sys.exit(1)


# -- reading -----------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"${value:.4f}"


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
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


def _task_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **t,
            "cost": _money(t["cost_usd"]),
            "created": (t["created_at"] or "")[:19].replace("T", " "),
            "reason": (t["reason"] or "")[:60],
        }
        for t in tasks
    ]


@cli.command("list")
@click.option("--state", type=click.Choice([s.value for s in State], case_sensitive=False))
@click.option("--tag", help="Only tasks with this tag.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of tasks.")
@pass_ctx
def list_cmd(ctx: Context, state: str | None, tag: str | None, limit: int, as_json: bool) -> None:
    """List tasks, newest first."""
    tasks = ctx.reader().list_tasks(state=state.upper() if state else None, tag=tag, limit=limit)
    if as_json:
        emit_json(tasks)
    elif tasks:
        _table(_task_rows(tasks), TASK_COLUMNS)
    else:
        click.echo("no tasks")


@cli.command()
@click.argument("task_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def status(ctx: Context, task_id: str | None, as_json: bool) -> None:
    """Counts by state, running tasks and today's cost; or one task with its executions."""
    reader = ctx.reader()
    if task_id:
        task = reader.task(task_id)
        if task is None:
            raise NotFoundError(f"no task with id {task_id!r}")
        if as_json:
            emit_json(task)
        else:
            _show_task(task)
        return
    data = reader.status(
        daily_budget_usd=ctx.config.daily_budget_usd, slots=ctx.config.max_concurrency
    )
    counts, pool = data["counts"], data["pool"]
    if as_json:
        emit_json(data)
        return
    click.echo("  ".join(f"{k} {v}" for k, v in counts.items()))
    budget = f" of {_money(ctx.config.daily_budget_usd)}" if ctx.config.daily_budget_usd else ""
    click.echo(f"cost today: {_money(data['cost_today_usd'])}{budget}")
    if pool["paused"]:
        until = f" until {pool['until']}" if pool["until"] else ""
        click.echo(f"pool: not starting new tasks: {pool['reason']}{until}")
    nodes = data["nodes"]
    for r in data["running"]:
        where = f" on {r['owner']['node']}" if len(nodes) > 1 and r["owner"]["node"] else ""
        click.echo(
            f"running: {r['task_id']} {r['name']}{where} for {r['elapsed_s']}s, "
            f"{_money(r['cost_usd'])}"
        )
    if len(nodes) > 1:
        click.echo("nodes: " + ", ".join(f"{n['id']} {_node_state(n)}" for n in nodes))


def _node_state(node: dict[str, Any]) -> str:
    if node["state"] == "up" and node["expired"]:
        return f"silent {node['heartbeat_age_s']:.0f}s"
    if node["state"] == "up":
        return f"up {node['busy']}/{node['slots']}"
    return str(node["state"])


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of nodes.")
@pass_ctx
def nodes(ctx: Context, as_json: bool) -> None:
    """The nodes sharing this database: slots, last heartbeat, what each runs."""
    rows = ctx.reader().nodes()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no nodes: none has run `claudomator serve` or `run` on this database")
        return
    shown = [
        {
            **n,
            "state": _node_state(n),
            "where": f"{n['host']}:{n['pid']}",
            "beat": f"{n['heartbeat_age_s']:.0f}s ago",
            "tasks": " ".join(r["name"] for r in n["running"]) or "-",
        }
        for n in rows
    ]
    columns = [("id", "NODE"), ("kind", "KIND"), ("state", "STATE"), ("where", "HOST:PID")]
    _table(shown, [*columns, ("slots", "SLOTS"), ("beat", "HEARTBEAT"), ("tasks", "RUNNING")])


def _show_task(task: dict[str, Any]) -> None:
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
    click.echo(f"{'cost:':<13} {_money(task['cost_usd'])}")
    spec = task["spec"]["claude"]
    click.echo(f"{'model:':<13} {spec.get('model') or '(config default)'}")
    click.echo(f"{'working_dir:':<13} {spec.get('working_dir') or '(config default)'}")
    if spec.get("env"):
        click.echo(f"{'env:':<13} {spec['env']}")
    for ex in task["executions"]:
        t = ex["tokens"]
        click.echo(
            f"  execution {ex['id']} #{ex['attempt']} {ex['state']} {_money(ex['cost_usd'])} "
            f"tokens in {t['input']} out {t['output']} turns {ex['num_turns'] or '-'} "
            f"{ex['reason'] or ''}".rstrip()
        )
        click.echo(f"    log: {ex['stdout_path']}")


@cli.command()
@click.argument("ref")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the execution runs.")
@click.option("--raw", is_flag=True, help="Print the stream-json as claude wrote it.")
@click.option("--stderr", "which", flag_value="stderr", help="Print stderr instead.")
@pass_ctx
def logs(ctx: Context, ref: str, follow: bool, raw: bool, which: str | None) -> None:
    """Print an execution's output readably (REF: a task id for its latest, or an execution id)."""
    from claudomator.stream import render

    reader = ctx.reader()
    ex = reader.execution(ref) or reader.latest_execution(ref)
    if ex is None:
        if reader.task(ref) is not None:
            raise NotFoundError(f"task {ref} has no execution yet")
        raise NotFoundError(f"no task or execution with id {ref!r}")
    path = Path(ex["stderr_path"] if which == "stderr" else ex["stdout_path"])
    node = ex["owner"]["node"]
    if node and not path.exists() and node != (ctx.config.node_id or ctx.config.data_dir.node_id()):
        raise NotFoundError(
            f"execution {ex['id']} ran on node {node} ({ex['owner']['host']}): its log is in that "
            f"node's data dir ({path}); run `claudomator logs` there"
        )
    out = sys.stdout.buffer
    for line in _follow_lines(path, lambda: _is_running(reader, ex["id"]) if follow else False):
        if raw or which == "stderr":
            out.write(line)
        else:
            text = render(line)
            if text is not None:
                out.write(text.encode("utf-8", "replace") + b"\n")
        out.flush()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of sources.")
@pass_ctx
def sources(ctx: Context, as_json: bool) -> None:
    """The [[sources]] of config.toml, each with the last commit ingested and what is wrong."""
    from claudomator.store.rows import iso

    config = ctx.config
    from claudomator.store.reader import source_key

    stored = {row["name"]: row for row in ctx.reader().sources()}
    node = config.node_id or config.data_dir.node_id()
    rows = []
    for source in config.sources:  # this node's progress (each node walks its own checkout)
        state = stored.get(source_key(source.name, node)) or stored.get(source.name) or {}
        rows.append(
            {
                "name": source.name,
                "kind": source.kind,
                "path": source.path,
                "subdir": source.subdir,
                "branch": source.branch,
                "remote": source.remote,
                "last_commit": state.get("last_commit") or None,
                "error": state.get("error") or None,
                "updated_at": iso(state.get("updated_at")),
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no sources: add [[sources]] tables to {config.data_dir.config_file}")
        return
    shown = [
        {**r, "spool": f"@{r['name']}/", "commit": (r["last_commit"] or "-")[:12]} for r in rows
    ]
    columns = [("name", "NAME"), ("kind", "KIND"), ("branch", "BRANCH"), ("commit", "LAST COMMIT")]
    _table(shown, [*columns, ("spool", "SPOOL"), ("path", "PATH")])
    for r in rows:
        if r["error"]:
            click.echo(f"{r['name']}: {r['error']}")


def _is_running(reader: Reader, execution_id: str) -> bool:
    ex = reader.execution(execution_id)
    return ex is not None and ex["state"] == State.RUNNING.value


def _follow_lines(path: Path, running: Callable[[], bool]) -> Iterator[bytes]:
    """Lines of `path`; while `running()` says so, wait for more."""
    pending = b""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line + b"\n"
                continue
            if not running():
                if pending:
                    yield pending
                return
            time.sleep(0.2)


# -- acting ------------------------------------------------------------------------------------


@cli.command()
@click.option("--no-api", is_flag=True, help="Watcher and pool only, no HTTP API.")
@pass_ctx
def serve(ctx: Context, no_api: bool) -> None:
    """Watch the inbox and run its tasks until SIGTERM or Ctrl-C (twice: cancel running ones).

    Drop task files into <data dir>/inbox/ (any depth): they move through queued/, running/ and
    done/ (or rejected/ with the reason) as their tasks run.
    """
    import asyncio

    service = ctx.service()
    try:
        also, close = _beside(service, api=not no_api)
        try:
            asyncio.run(service.serve(also=also))
        finally:
            close()
    finally:
        service.close()


def _beside(
    service: Claudomator, *, api: bool
) -> tuple[Callable[[Any], Coroutine[Any, Any, None]] | None, Callable[[], None]]:
    """What runs beside the pool on its loop: webhook notifications, and the HTTP API (which
    refuses here, before anything starts, when it cannot listen or lacks a token)."""
    import asyncio

    from claudomator.notify import Notifier
    from claudomator.store.reader import start_of_today

    config = service.config
    runs: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = []
    notifier = None
    if config.notify:
        notifier = Notifier(
            config.notify,
            budget=lambda: (service.reader.cost_since(start_of_today()), config.daily_budget_usd),
        )
        runs.append(lambda stop: notifier.run(service.hub, stop, lambda: not service.pool.running))
    server = None
    if api:
        from claudomator.api import Api

        server = Api(service, notifier=notifier)
        runs.append(server.run)

    async def beside(stop: asyncio.Event) -> None:
        await asyncio.gather(*(run(stop) for run in runs))

    return (beside if runs else None), (server.close if server else lambda: None)


def _pool_command(ctx: Context, **changes: Any) -> None:
    service = ctx.service(quiet=True)
    try:
        state = service.set_pool(**changes)
        gate = service.gate()
    finally:
        service.close()
    click.echo(
        f"pool: {'starting tasks' if gate.open else 'not starting new tasks: ' + gate.reason}"
    )
    del state


@cli.command()
@click.option("--reason", default="paused by hand", show_default=True)
@pass_ctx
def pause(ctx: Context, reason: str) -> None:
    """Start no new task (running ones go on) until `resume`; kept across restarts."""
    _pool_command(ctx, paused=True, reason=reason)


@cli.command()
@pass_ctx
def resume(ctx: Context) -> None:
    """Undo `pause`, `drain` and a rate-limit pause."""
    _pool_command(ctx, paused=False, reason="", draining=False, rate_limited_until=0)


@cli.command()
@pass_ctx
def drain(ctx: Context) -> None:
    """Let running tasks finish and start nothing new until `resume`."""
    _pool_command(ctx, draining=True)


@cli.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def cancel(ctx: Context, task_id: str, as_json: bool) -> None:
    """Cancel a task; a running execution is stopped (its whole process tree) by its owner."""
    service = ctx.service(quiet=True)
    try:
        task = service.cancel(task_id)
    finally:
        service.close()
    emit_json(task) if as_json else click.echo(f"{task['id']} {task['name']}: {task['state']}")


@cli.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def retry(ctx: Context, task_id: str, as_json: bool) -> None:
    """Queue a failed, timed out, cancelled or budget-exceeded task again."""
    service = ctx.service(quiet=True)
    try:
        task = service.retry(task_id)
    finally:
        service.close()
    emit_json(task) if as_json else click.echo(f"{task['id']} {task['name']}: {task['state']}")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"tasks": [...]} on stdout at the end.'
)
@click.option(
    "--fail-on-rate-limit", is_flag=True, help="Fail rate-limited tasks at once instead of waiting."
)
@pass_ctx
def run(ctx: Context, files: tuple[Path, ...], as_json: bool, fail_on_rate_limit: bool) -> None:
    """Run task and batch files now, without a server; exit 0 only if every task COMPLETED.

    Tasks run in depends_on order; Ctrl-C cancels them cleanly.
    """
    import asyncio

    service = ctx.service(quiet=True)
    if fail_on_rate_limit:
        service.max_requeues = 0
    try:
        tasks = asyncio.run(_run(service, list(files), progress=not as_json))
    finally:
        service.close()
    if as_json:
        emit_json({"tasks": tasks})
    else:
        click.echo("")
        _table(_task_rows(tasks), TASK_COLUMNS)
    if not tasks or any(t["state"] != State.COMPLETED.value for t in tasks):
        sys.exit(1)


async def _run(service: Claudomator, files: list[Path], *, progress: bool) -> list[dict[str, Any]]:
    """Record the files' tasks (all or none), run them, print a line per state change."""
    import asyncio
    import signal

    ids = service.submit_files(files, source="run")
    service.recover()
    printer = None
    if progress:  # subscribed before the first claim publishes anything
        sub = service.hub.subscribe()
        printer = asyncio.create_task(_print_progress(sub, time.monotonic()))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(
            sig, lambda: asyncio.ensure_future(service.interrupt("interrupted"))
        )
    try:
        await service.run_tasks(ids)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if printer is not None:
            await asyncio.sleep(0)
            printer.cancel()
    return service.reader.list_tasks(ids=ids, limit=None)[::-1]


async def _print_progress(sub: Subscription, t0: float) -> None:
    try:
        while True:
            event = await sub.get()
            if event["type"] == "pool.waiting":
                until = event.get("until")
                when = f" until {time.strftime('%H:%M:%S', time.localtime(until))}" if until else ""
                click.echo(
                    f"[{time.monotonic() - t0:7.1f}s] waiting{when}: {event['reason']}", err=True
                )
                continue
            if not event["type"].startswith("task.") or event["type"] == "task.created":
                continue
            reason = f"  {event['reason']}" if event.get("reason") else ""
            if event.get("not_before"):
                until = time.strftime("%H:%M:%S", time.localtime(event["not_before"]))
                reason += f" (waiting until {until})"
            cost = f"  {_money(event['cost_usd'])}" if event.get("cost_usd") else ""
            click.echo(
                f"[{time.monotonic() - t0:7.1f}s] {event.get('name', '')}  {event['state']}{cost}{reason}",
                err=True,
            )
    finally:
        sub.close()


if __name__ == "__main__":
    main()
