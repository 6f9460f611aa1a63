"""The click commands: each parses its options, calls one function of the service (or of the
light read path), and renders the result; `main` is the one error map.

Heavy imports (SQLAlchemy, pydantic, structlog) happen only inside the commands that need them:
`list` and `status` read the database through the stdlib read path and start fast.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from claudomator import __version__
from claudomator.cli import render
from claudomator.cli.context import Context, pass_ctx
from claudomator.cli.demo import demo
from claudomator.cli.doctor import doctor
from claudomator.cli.terminal import Terminal
from claudomator.cli.workspaces import workspaces
from claudomator.errors import ClaudomatorError, NotFoundError, TaskFileError
from claudomator.state import State

INTERRUPTED = 130  # the exit code of every command an interrupt (Ctrl-C) ended


def main() -> None:
    """The one error map: messages start `Error:` (as click's own do); exit 2 for a usage
    error, 4 for an unknown id, 130 when interrupted, else 1."""
    try:
        cli.main(prog_name="claudomator", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except NotFoundError as e:
        click.echo(f"Error: {e.message}", err=True)
        sys.exit(4)
    except TaskFileError as e:
        click.echo(e.message, err=True)
        sys.exit(1)
    except ClaudomatorError as e:
        click.echo(f"Error: {e.message}", err=True)
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


cli.add_command(workspaces)
cli.add_command(demo)
cli.add_command(doctor)


# -- setup -------------------------------------------------------------------------------------


@cli.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the data dir, a commented config.toml and the database (idempotent)."""
    from claudomator.service import init

    data_dir = ctx.config.data_dir
    wrote, token_file = init(ctx.config)
    click.echo(
        f"wrote {data_dir.config_file}" if wrote else f"kept {data_dir.config_file} (already there)"
    )
    click.echo(f"API token in {token_file} (`claudomator token` prints it)")
    click.echo(f"data dir ready: {data_dir.root}")
    if ctx.config.resolve_claude() is None:  # every task would fail: say so now
        click.echo(
            f"Warning: claude not found (claude.binary = {ctx.config.claude_binary!r}, "
            f"{ctx.config.origins.get('claude.binary', 'default')}): tasks will fail until the "
            "Claude Code CLI is installed or CLAUDOMATOR_CLAUDE_BIN names it; "
            "`claudomator demo` tries claudomator without it",
            err=True,
        )


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
    if as_json:  # typed values: numbers, booleans, strings, lists
        typed = [*ctx.config.typed(), *ctx.config.tables()]
        render.emit_json(
            {
                "data_dir": str(ctx.config.data_dir.root),
                "keys": [{"key": k, "value": v, "origin": o} for k, v, o in typed],
            }
        )
        return
    rows = ctx.config.effective()
    click.echo(f"# data dir: {ctx.config.data_dir.root}")
    width = max(len(k) for k, _, _ in rows)
    for key, value, origin in rows:
        click.echo(f"{key:<{width}} = {value:<24} # {origin}")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of task and batch files (for editor completion)."""
    from claudomator.task import json_schema

    render.emit_json(json_schema())


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def validate(ctx: Context, files: tuple[Path, ...]) -> None:
    """Check task and batch files; exit 1 if any is invalid.

    Each file is checked on its own: a depends_on name found neither in the file nor in the
    store is a warning here, an error only when the task is submitted.
    """
    bad = 0
    for checked in ctx.views().check(list(files)):
        if checked.parsed is None:
            bad += 1
            click.echo(checked.error.message if checked.error else "", err=True)
            continue
        for warning in checked.parsed.warnings:
            click.echo(str(warning), err=True)
        kind = f"batch of {len(checked.parsed.tasks)} tasks" if checked.parsed.is_batch else "task"
        click.echo(f"{checked.path}: ok ({kind})")
    if bad:
        sys.exit(1)


# -- reading -----------------------------------------------------------------------------------


@cli.command("list")
@click.option("--state", type=click.Choice([s.value for s in State], case_sensitive=False))
@click.option("--tag", help="Only tasks with this tag.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of tasks.")
@pass_ctx
def list_cmd(ctx: Context, state: str | None, tag: str | None, limit: int, as_json: bool) -> None:
    """List tasks, newest first."""
    tasks = ctx.views().tasks(state=state.upper() if state else None, tag=tag, limit=limit)
    if as_json:
        render.emit_json(tasks)
    elif tasks:
        render.tasks_table(tasks)
    else:
        click.echo("no tasks")


@cli.command()
@click.argument("task_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def status(ctx: Context, task_id: str | None, as_json: bool) -> None:
    """Counts by state, running tasks and today's cost; or one task with its executions."""
    views = ctx.views()
    if task_id:
        task = views.task(task_id)
        defaults = {
            "model": ctx.config.claude_model,
            "working_dir": ctx.config.default_working_dir(),
        }
        render.emit_json(task) if as_json else render.task_detail(task, defaults)
    else:
        overview = views.status()
        render.emit_json(overview) if as_json else render.status(
            overview, ctx.config.daily_budget_usd
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of nodes.")
@pass_ctx
def nodes(ctx: Context, as_json: bool) -> None:
    """The nodes sharing this database: slots, last heartbeat, what each runs."""
    rows = ctx.views().nodes()
    empty = "no nodes: none has run `claudomator serve` or `run` on this database"
    render.listing(rows, as_json, empty, render.nodes_table)


@cli.command()
@click.argument("ref")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the execution runs.")
@click.option("--raw", is_flag=True, help="Print the stream-json as claude wrote it.")
@click.option("--stderr", "which", flag_value="stderr", help="Print stderr instead.")
@pass_ctx
def logs(ctx: Context, ref: str, follow: bool, raw: bool, which: str | None) -> None:
    """Print an execution's output readably (REF: a task id for its latest, or an execution id)."""
    from claudomator import logfiles
    from claudomator.transcript import render as readable

    views = ctx.views()
    found = views.log(ref, stderr=which == "stderr")
    out = sys.stdout.buffer
    term = Terminal()
    running = (lambda: views.running(found.execution_id)) if follow else (lambda: False)
    for line in logfiles.follow(found.path, running):
        if raw or which == "stderr":
            out.write(line)
        else:
            text = readable(line)
            if text is not None:
                text = "\n".join(render.log_line(term, part) for part in text.split("\n"))
                out.write(text.encode("utf-8", "replace") + b"\n")
        out.flush()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of sources.")
@pass_ctx
def sources(ctx: Context, as_json: bool) -> None:
    """The [[sources]] of config.toml, each with the last commit ingested and what is wrong."""
    rows = ctx.views().sources()
    empty = f"no sources: add [[sources]] tables to {ctx.config.data_dir.config_file}"
    render.listing(rows, as_json, empty, render.sources_table)


# -- acting ------------------------------------------------------------------------------------


@cli.command()
@click.option("--no-api", is_flag=True, help="Watcher and pool only, no HTTP API.")
@pass_ctx
def serve(ctx: Context, no_api: bool) -> None:
    """Watch the inbox and run its tasks until SIGTERM or Ctrl-C (twice: cancel running ones).

    Drop task files into <data dir>/inbox/ (any depth): they move through queued/, running/ and
    done/ (or rejected/ with the reason) as their tasks run.
    """
    from claudomator.serve import serve

    with ctx.service() as service:  # what cannot work (no claude, say) is logged at start
        stopped_by = serve(service, api=not no_api)
    if stopped_by == signal.SIGINT:
        sys.exit(INTERRUPTED)


@cli.command()
@click.option("--reason", default="paused by hand", show_default=True)
@pass_ctx
def pause(ctx: Context, reason: str) -> None:
    """Start no new task (running ones go on) until `resume`; kept across restarts."""
    with ctx.service(quiet=True) as service:
        gate = service.pause(reason)
    render.pool_line(gate.open, gate.reason)


@cli.command()
@pass_ctx
def resume(ctx: Context) -> None:
    """Undo `pause`, `drain` and a rate-limit pause."""
    with ctx.service(quiet=True) as service:
        gate = service.resume()
    render.pool_line(gate.open, gate.reason)


@cli.command()
@pass_ctx
def drain(ctx: Context) -> None:
    """Let running tasks finish and start nothing new until `resume`."""
    with ctx.service(quiet=True) as service:
        gate = service.drain()
    render.pool_line(gate.open, gate.reason)


CANCEL_WAIT_S = 30.0  # how long `cancel` waits for a running task's final state


@cli.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the task as a JSON object.")
@click.option(
    "--no-wait", is_flag=True, help="Return at once while a running task is being stopped."
)
@pass_ctx
def cancel(ctx: Context, task_id: str, as_json: bool, no_wait: bool) -> None:
    """Cancel a task; a running execution is stopped (its whole process tree) by its owner.

    Waits (at most 30 s) for a running task's final state, unless --no-wait.
    """
    with ctx.service(quiet=True) as service:
        task = service.cancel(task_id)
        if task["state"] == State.RUNNING.value and not no_wait:
            task = service.wait_final(task_id, CANCEL_WAIT_S)
    if as_json:
        render.emit_json(task)
    elif task["state"] == State.RUNNING.value:
        waited = "" if no_wait else f" (still running after {CANCEL_WAIT_S:.0f}s)"
        click.echo(f"{task['id']} {task['name']}: cancelling{waited}")
    else:
        render.task_line(task)


@cli.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the task as a JSON object.")
@pass_ctx
def retry(ctx: Context, task_id: str, as_json: bool) -> None:
    """Queue a failed, timed out, cancelled or budget-exceeded task again."""
    with ctx.service(quiet=True) as service:
        task = service.retry(task_id)
    render.emit_json(task) if as_json else render.task_line(task)


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
    from claudomator.run import run_files

    with ctx.service(quiet=True) as service:
        tasks, stopped_by = run_files(
            service,
            list(files),
            fail_on_rate_limit=fail_on_rate_limit,
            on_event=None if as_json else render.progress_printer(time.monotonic()),
        )
    if as_json:
        render.emit_json({"tasks": tasks})
    else:
        click.echo("")
        render.tasks_table(tasks)
    if stopped_by is not None:  # Ctrl-C: 130; SIGTERM: 143
        sys.exit(128 + stopped_by)
    if not tasks or any(t["state"] != State.COMPLETED.value for t in tasks):
        sys.exit(1)
