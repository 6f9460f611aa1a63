"""`claudomator workspaces [prune]`: the worktrees and branches of worktree tasks, listed and
removed (never those of a task still to run)."""

from __future__ import annotations

import click

from claudomator.cli import render
from claudomator.cli.context import Context, pass_ctx
from claudomator.duration import parse_duration


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def workspaces(click_ctx: click.Context, as_json: bool) -> None:
    """The worktrees and branches of worktree tasks: task, state, size on disk, age."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.find_object(Context)
    assert ctx is not None  # the group made it
    with ctx.service() as service:
        rows = service.workspace_entries()
    render.listing(rows, as_json, "no worktrees and no task branches", render.workspaces_table)


@workspaces.command("prune")
@click.option("--older-than", help="Only branches whose last commit is older (e.g. 7d, 12h).")
@click.option("--merged", is_flag=True, help="Only branches merged into their repository's HEAD.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@pass_ctx
def workspaces_prune(ctx: Context, older_than: str | None, merged: bool, dry_run: bool) -> None:
    """Remove the worktrees and branches of final tasks (never of a task still to run)."""
    try:
        age = None if older_than is None else parse_duration(older_than)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--older-than") from None
    with ctx.service() as service:
        rows = service.prune_workspaces(older_than_s=age, merged=merged, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for r in rows:
        click.echo(f"{verb} {r['branch'] or r['path']} (task {r['task_id']}, {r['state']})")
    if not rows:
        click.echo("nothing to prune")


__all__ = ["workspaces"]
