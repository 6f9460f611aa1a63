"""`claudomator demo`: claudomator tried without a Claude account (`claudomator.demo`), and
where to look while it runs."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import click

from claudomator.cli import render


@click.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="The demo's data dir (new, or an earlier demo's); default: a new one in /tmp.",
)
@click.option(
    "--port", type=int, default=8484, show_default=True, help="The web page's port (if taken: any)."
)
@click.option("--exit-when-done", is_flag=True, help="Stop once the example tasks are done.")
def demo(home: Path | None, port: int, exit_when_done: bool) -> None:
    """Try claudomator without a Claude account: a scratch data dir whose claude is a STAND-IN
    (it speaks claude's stream-json; no model, no cost), three example tasks run live through
    its folders, and the web page, until Ctrl-C."""
    from claudomator import log
    from claudomator.demo import TASK_COUNT, drop_tasks, prepare, settled
    from claudomator.serve import serve
    from claudomator.service import Claudomator

    ready = prepare(home, port)
    config = ready.config
    drop_tasks(config)
    me = f"CLAUDOMATOR_HOME={ready.home} {program()}"
    click.echo(
        f"claudomator demo in {ready.home}: claude is a stand-in there (no model is called, "
        f"nothing is spent).\n{TASK_COUNT} example tasks are in its inbox; watch them go through "
        f"queued/, running/ and done/:\n"
        f"  the web page  {ready.url}\n"
        f"  the folders   ls -R {ready.home}/{{queued,running,done}}\n"
        f"  the tasks     {me} status\n"
        f"                {me} list\n"
        f"  a task's log  {me} logs ID\n"
        + ("" if exit_when_done else "Ctrl-C stops it; the data dir stays until you remove it.")
    )
    log.configure(config.log_level, config.log_format)
    with Claudomator(config) as service:
        stopped_by = serve(service, until=(lambda: settled(config)) if exit_when_done else None)
        tasks = service.tasks(limit=None)
    if stopped_by == signal.SIGINT:
        sys.exit(130)
    if exit_when_done:
        click.echo("")
        render.tasks_table(tasks)
        if any(t["state"] != "COMPLETED" for t in tasks):
            sys.exit(1)


def program() -> str:
    """How to run this claudomator again: `claudomator` if that is what PATH finds, else the
    path it was started by (`.venv/bin/claudomator`), or `python -m claudomator.cli`."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) != "claudomator":
        return f"{sys.executable} -m claudomator.cli"
    found = shutil.which("claudomator")
    return "claudomator" if found and os.path.samefile(found, argv0) else argv0


__all__ = ["demo"]
