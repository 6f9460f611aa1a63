"""The `claudomator` command (`claudomator.cli:main`).

- `commands`: the click commands, one-call adapters over the service, and the one error map;
- `context`: what each command gets: the flags, the config, the read path or the service;
- `workspaces`: `workspaces [prune]`; `doctor`: `doctor` (its checks are `claudomator.doctor`);
- `render`: how they show tables, tasks, status, nodes, sources, `run`'s progress and logs;
- `terminal`: the terminal's width and colour, and tables that fit it;
- `demo`: `demo` (its data dir and stand-in claude are `claudomator.demo`).

The only package that imports click.
"""

from __future__ import annotations

from claudomator.cli.commands import cli, main

__all__ = ["cli", "main"]
