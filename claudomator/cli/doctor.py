"""`claudomator doctor [--json]`: whether this machine can run tasks, one line per check; exit 1
when one is a problem. A config with errors is still looked at: each error is a check."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict

import click

from claudomator.cli import render
from claudomator.cli.context import Context, pass_ctx
from claudomator.config import load_config
from claudomator.diagnosis import STATUSES, Check, healthy


@click.command()
@click.option("--json", "as_json", is_flag=True, help='Print {"checks": [...], "ok": bool}.')
@pass_ctx
def doctor(ctx: Context, as_json: bool) -> None:
    """Check the claude binary, credentials, data dir, config, database, API port, serve and git
    sources; each ok, warning or problem with what to do. Exit 1 if any is a problem."""
    from claudomator.doctor import checks

    problems: list[str] = []
    found = checks(load_config(flags=ctx.flags, problems=problems), problems=problems)
    if as_json:
        render.emit_json({"checks": [asdict(c) for c in found], "ok": healthy(found)})
    else:
        lines(found)
    if not healthy(found):
        sys.exit(1)


def lines(found: Sequence[Check]) -> None:
    """One aligned line per check: status, name, what was found, then what to do."""
    width = max(len(c.name) for c in found)
    status_width = max(len(s) for s in STATUSES)
    for c in found:
        fix = f" -> {c.fix}" if c.fix and c.status != "ok" else ""
        click.echo(f"{c.status:<{status_width}}  {c.name:<{width}}  {c.detail}{fix}")
    counts = {s: sum(c.status == s for c in found) for s in ("problem", "warning")}
    said = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    click.echo(", ".join(said) if said else "all ok")


__all__ = ["doctor"]
