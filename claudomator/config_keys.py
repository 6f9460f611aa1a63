"""The config keys: each one's name in config.toml, env variable, parser, default and meaning.

This table is the only place a key's default is declared. `Config` declares a field per key
with `field_for(name)`, whose default is the key's, parsed; `claudomator init`'s template, the
`claudomator config` listing, the README and deploy/config.example.toml (checked by tests) all
show the same defaults, as written in config.toml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claudomator.billing import LANES
from claudomator.config_values import (
    boolean,
    branch_prefix,
    byte_size,
    choice,
    count,
    count_by_name,
    database_url,
    hosts,
    mask_url,
    money,
    money_by_name,
    origins,
    paths,
    port,
    positive_int,
    text,
)
from claudomator.duration import parse_duration


@dataclass(frozen=True)
class Key:
    """One config key: where it lives in config.toml, its env name, type, default and meaning."""

    name: str  # dotted: "max_concurrency", "claude.binary"
    parse: Callable[[object], Any]
    default: Any  # as written in config.toml
    doc: str
    env: str = ""
    shown: Callable[[Any], Any] | None = None  # how `claudomator config` shows it (secrets masked)

    @property
    def value(self) -> Any:
        """The default, typed as in `Config`."""
        return self.parse(self.default)

    @property
    def env_name(self) -> str:
        return self.env or "CLAUDOMATOR_" + self.name.replace(".", "_").upper()


KEYS: tuple[Key, ...] = (
    Key("max_concurrency", positive_int, 4, "executions running at once"),
    Key(
        "database_url",
        database_url,
        "",
        "the store: empty for SQLite in the data dir, or postgresql+psycopg://user@host:5432/db "
        "to share one PostgreSQL",
        shown=mask_url,
    ),
    Key(
        "claude.binary",
        text,
        "claude",
        "the Claude Code CLI: a name looked up on PATH, or a path",
        env="CLAUDOMATOR_CLAUDE_BIN",
    ),
    Key("claude.model", text, "sonnet", "model for tasks that name none"),
    Key(
        "claude.timeout",
        parse_duration,
        "30m",
        "timeout for tasks that set none (e.g. 90s, 15m, 1h30m)",
    ),
    Key(
        "claude.billing",
        choice(*LANES),
        "any",
        "any, subscription or api_key: a run claude would bill otherwise is stopped at its "
        "init line and the pool paused",
    ),
    Key(
        "claude.stall_timeout",
        parse_duration,
        "10m",
        "no new line on claude's stdout for this long stops it (TIMED_OUT); 0 is none",
    ),
    Key(
        "claude.startup_timeout",
        parse_duration,
        "2m",
        "no system/init line from claude within this long fails it (FAILED); 0 is none",
    ),
    Key(
        "claude.allowed_roots",
        paths,
        [],
        "if set, every task's working_dir must be inside one of these folders",
    ),
    Key(
        "claude.working_dir",
        text,
        "",
        "working_dir for tasks that set none; empty means the user's home directory",
    ),
    Key(
        "claude.workspace",
        choice("shared", "worktree"),
        "shared",
        "where inbox, API and `run` tasks that set no workspace run: shared (working_dir "
        "itself) or worktree (a git worktree on a branch of the task's own)",
    ),
    Key(
        "workspace.branch_prefix",
        branch_prefix,
        "claudomator",
        "a worktree task's branch is <prefix>/<slug of its name>-<short id>",
    ),
    Key(
        "workspace.max_disk",
        byte_size,
        0,
        "new worktree tasks wait in QUEUED while all worktrees together use this much disk "
        "(e.g. 20G); 0 means no limit",
    ),
    Key(
        "workspace.setup_timeout",
        parse_duration,
        "15m",
        "a worktree's setup command is stopped after this long, failing the execution",
    ),
    Key(
        "runner.interrupt_grace",
        parse_duration,
        "10s",
        "on timeout or cancel: wait this long after SIGINT (claude reports its cost)",
    ),
    Key(
        "runner.terminate_grace",
        parse_duration,
        "5s",
        "then wait this long after SIGTERM before SIGKILL of the whole process tree",
    ),
    Key(
        "runner.stop_grace",
        parse_duration,
        "60s",
        "on shutdown: let running executions finish this long, then cancel them",
    ),
    Key(
        "intake.max_file_bytes",
        positive_int,
        1048576,
        "largest task file accepted, in bytes",
    ),
    Key(
        "intake.poll",
        boolean,
        False,
        "poll the inbox instead of using inotify (for network filesystems)",
    ),
    Key(
        "intake.sweep_interval",
        parse_duration,
        "30s",
        "also scan the whole inbox this often, whatever the watcher says",
    ),
    Key(
        "intake.debounce",
        parse_duration,
        "50ms",
        "the watcher reports a burst of changes after at most this long",
    ),
    Key(
        "intake.step",
        parse_duration,
        "2ms",
        "the watcher looks for changes this often (lower: faster pickup, more idle CPU)",
    ),
    Key(
        "schedule.aging",
        parse_duration,
        "10m",
        "a waiting task rises one priority level per this much waiting",
    ),
    Key(
        "schedule.max_requeues",
        count,
        10,
        "rate-limit requeues of one task (they use no attempt) before it ends FAILED",
    ),
    Key(
        "budget.daily_usd",
        money,
        0,
        "once today's spend reaches this, nothing new starts; 0 means no limit",
    ),
    Key(
        "budget.tags",
        money_by_name,
        {},
        "per tag, per day: once a tag's spend today reaches its amount, its tasks wait (e.g. "
        "{nightly = 5.0})",
    ),
    Key(
        "limits.tags",
        count_by_name,
        {},
        "at most this many running tasks with the tag, cluster-wide (e.g. {gpu = 1, deploy = 1})",
    ),
    Key(
        "limits.models",
        count_by_name,
        {},
        "at most this many running tasks whose model contains the name (e.g. {opus = 2})",
    ),
    Key(
        "node.id",
        text,
        "",
        "this node's name among the nodes sharing one database; empty: made once per data dir",
    ),
    Key(
        "node.heartbeat",
        parse_duration,
        "10s",
        "a node renews its lease this often",
    ),
    Key(
        "node.lease",
        parse_duration,
        "30s",
        "a node silent this long is lost: another node fails its running tasks (`node lost`)",
    ),
    Key("server.host", text, "127.0.0.1", "address the HTTP API binds to"),
    Key("server.port", port, 8484, "port the HTTP API listens on"),
    Key(
        "server.auth",
        boolean,
        False,
        "require an API token on loopback too (any other bind always requires one)",
    ),
    Key(
        "server.allowed_hosts",
        hosts,
        [],
        "Host names the API answers besides localhost, loopback and server.host (*.x.com, or *)",
    ),
    Key(
        "server.cors_origins",
        origins,
        [],
        "browser origins allowed to call the API and open its WebSocket from another site",
    ),
    Key(
        "server.ws_buffer",
        positive_int,
        1000,
        "events a WebSocket client may fall behind before it is told and disconnected",
    ),
    Key(
        "log.level",
        choice("debug", "info", "warning", "error"),
        "info",
        "least severe log level written (to stderr)",
    ),
    Key(
        "log.format",
        choice("auto", "console", "json"),
        "auto",
        "console on a terminal and JSON otherwise, or force one",
    ),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}

KEY = "config_key"  # the metadata entry of a Config field that names its key


def field_for(name: str, *, repr: bool = True) -> Any:
    """The `Config` field that holds key `name`, with the key's default (`repr=False` keeps a
    value that may hold a secret out of the repr)."""
    return field(default=KEYS_BY_NAME[name].value, repr=repr, metadata={KEY: name})
