"""One typed `Config` (defaults < config.toml < env `CLAUDOMATOR_*` < flags): how it is read,
shown (`claudomator config`) and templated (`claudomator init`).

The parts live beside it: the keys and their defaults in `config_keys`, the value parsers in
`config_values`, the `[[notify]]` and `[[sources]]` tables in `config_notify` and
`config_sources`, the data dir in `datadir`. Stdlib only: every CLI command reads the config,
including the ones that must start fast.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

from claudomator.billing import Lane
from claudomator.config_keys import KEY, KEYS, KEYS_BY_NAME, Key, field_for
from claudomator.config_notify import NOTIFY_TEMPLATE, NotifyTarget, notify_targets
from claudomator.config_sources import SOURCES_TEMPLATE, GitSource, git_sources
from claudomator.config_values import NUMBERS, did_you_mean
from claudomator.datadir import DataDir, home_dir
from claudomator.duration import format_duration, parse_duration
from claudomator.errors import ConfigError
from claudomator.records import JSONObject
from claudomator.workspace import Mode

__all__ = [
    "KEYS",
    "Config",
    "DataDir",
    "GitSource",
    "Key",
    "NotifyTarget",
    "config_template",
    "home_dir",
    "load_config",
]


@dataclass(frozen=True)
class Config:
    """Everything claudomator is configured with; each key's default is in `KEYS`."""

    data_dir: DataDir
    max_concurrency: int = field_for("max_concurrency")
    database_url: str = field_for("database_url", repr=False)  # may hold a password
    claude_binary: str = field_for("claude.binary")
    claude_model: str = field_for("claude.model")
    claude_timeout_s: float = field_for("claude.timeout")
    billing: Lane = field_for("claude.billing")  # noqa: RUF009 (a Literal of str)
    stall_timeout_s: float = field_for("claude.stall_timeout")
    startup_timeout_s: float = field_for("claude.startup_timeout")
    claude_working_dir: str = field_for("claude.working_dir")
    allowed_roots: tuple[str, ...] = field_for("claude.allowed_roots")
    workspace_mode: Mode = field_for("claude.workspace")  # noqa: RUF009 (a Literal of str)
    branch_prefix: str = field_for("workspace.branch_prefix")
    max_disk: int = field_for("workspace.max_disk")
    setup_timeout_s: float = field_for("workspace.setup_timeout")
    interrupt_grace_s: float = field_for("runner.interrupt_grace")
    terminate_grace_s: float = field_for("runner.terminate_grace")
    stop_grace_s: float = field_for("runner.stop_grace")
    max_file_bytes: int = field_for("intake.max_file_bytes")
    intake_poll: bool = field_for("intake.poll")
    sweep_interval_s: float = field_for("intake.sweep_interval")
    debounce_s: float = field_for("intake.debounce")
    step_s: float = field_for("intake.step")
    aging_s: float = field_for("schedule.aging")
    max_requeues: int = field_for("schedule.max_requeues")
    daily_budget_usd: float = field_for("budget.daily_usd")
    tag_budgets: tuple[tuple[str, float], ...] = field_for("budget.tags")
    tag_limits: tuple[tuple[str, int], ...] = field_for("limits.tags")
    model_limits: tuple[tuple[str, int], ...] = field_for("limits.models")
    node_id: str = field_for("node.id")
    heartbeat_s: float = field_for("node.heartbeat")
    lease_s: float = field_for("node.lease")
    server_host: str = field_for("server.host")
    server_port: int = field_for("server.port")
    server_auth: bool = field_for("server.auth")
    server_allowed_hosts: tuple[str, ...] = field_for("server.allowed_hosts")
    server_cors_origins: tuple[str, ...] = field_for("server.cors_origins")
    server_ws_buffer: int = field_for("server.ws_buffer")
    notify: tuple[NotifyTarget, ...] = ()
    sources: tuple[GitSource, ...] = ()
    log_level: str = field_for("log.level")
    log_format: str = field_for("log.format")
    # key name -> "default" | "config.toml" | "env CLAUDOMATOR_X" | "flag"
    origins: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def database(self) -> Path | str:
        """Where the store lives: the PostgreSQL URL, or the SQLite file in the data dir."""
        return self.database_url or self.data_dir.database

    def default_working_dir(self) -> str:
        return self.claude_working_dir or str(Path.home())

    def resolve_claude(self) -> str | None:
        """The claude executable's path, or None when it cannot be found."""
        return shutil.which(os.path.expanduser(self.claude_binary))

    def effective(self) -> list[tuple[str, str, str]]:
        """(key, value as written in TOML, origin) for `claudomator config`."""
        rows = [(name, _toml_value(value), origin) for name, value, origin in self.typed()]
        return rows + self.tables()

    def typed(self) -> list[tuple[str, Any, str]]:
        """(key, value as TOML holds it: a number, a boolean, a string, a list of them;
        origin) for `claudomator config --json`. Durations as written (`30m`)."""
        rows: list[tuple[str, Any, str]] = []
        for key in KEYS:
            value = getattr(self, _ATTRS[key.name])
            if key.parse is parse_duration:
                value = format_duration(value)
            if key.shown is not None:
                value = key.shown(value)
            if isinstance(value, tuple):
                value = list(value)
            rows.append((key.name, value, self.origins.get(key.name, "default")))
        return rows

    def tables(self) -> list[tuple[str, str, str]]:
        """(`notify[i]` or `sources[i]`, how it is shown, origin): the config's tables."""
        rows = []
        for i, target in enumerate(self.notify):
            rows.append((f"notify[{i}]", target.shown, self.origins.get("notify", "default")))
        for i, source in enumerate(self.sources):
            rows.append(
                (
                    f"sources[{i}]",
                    f"{source.name}: {source.shown}",
                    self.origins.get("sources", "default"),
                )
            )
        return rows


_ATTRS = {f.metadata[KEY]: f.name for f in fields(Config) if KEY in f.metadata}
"""Config key name -> the `Config` attribute that holds it."""


def _toml_value(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _flatten(
    table: Mapping[str, Any], where: str, fail: Callable[[ConfigError], None], prefix: str = ""
) -> JSONObject:
    out: JSONObject = {}
    for name, value in table.items():
        dotted = prefix + name
        if isinstance(value, dict) and dotted not in KEYS_BY_NAME:
            if not any(k.startswith(dotted + ".") for k in KEYS_BY_NAME):
                fail(
                    ConfigError(
                        f"{where}: [{dotted}]: unknown section{did_you_mean(dotted, KEYS_BY_NAME)}"
                    )
                )
                continue
            out.update(_flatten(value, where, fail, dotted + "."))
        elif dotted not in KEYS_BY_NAME:
            fail(ConfigError(f"{where}: {dotted}: unknown key{did_you_mean(dotted, KEYS_BY_NAME)}"))
        else:
            out[dotted] = value
    return out


def load_config(
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
    *,
    problems: list[str] | None = None,
) -> Config:
    """Read config.toml in the data dir (if any), then the environment, then `flags` (by key name).

    With `problems`, every error is appended to it instead of raised, and what it is about keeps
    its default (a whole `[[notify]]` or `[[sources]]` array, one key otherwise): for `doctor`."""
    env = os.environ if env is None else env
    data_dir = DataDir(home if home is not None else home_dir(env))
    values: JSONObject = {}
    origins: dict[str, str] = {}

    def fail(error: ConfigError) -> None:
        if problems is None:
            raise error
        problems.append(error.message)

    def take(name: str, value: Callable[[], object], origin: str) -> None:
        try:
            values[name] = value()
        except ConfigError as e:
            fail(e)
        else:
            origins[name] = origin

    path = data_dir.config_file
    if path.is_file():
        table: dict[str, Any] = {}
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            fail(ConfigError(f"{path}: {e}"))
        if "notify" in table:
            notify = table.pop("notify")
            take("notify", lambda: notify_targets(notify, str(path)), "config.toml")
        if "sources" in table:
            sources = table.pop("sources")
            take("sources", lambda: git_sources(sources, str(path)), "config.toml")
        for name, value in _flatten(table, str(path), fail).items():
            take(name, partial(_check, KEYS_BY_NAME[name], value, str(path)), "config.toml")
    for key in KEYS:
        if key.env_name in env:
            take(
                key.name,
                partial(_check, key, env[key.env_name], key.env_name),
                "env " + key.env_name,
            )
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in KEYS_BY_NAME:
            fail(ConfigError(f"unknown config key {name!r}"))
            continue
        where = "--" + name.replace(".", "-")
        take(name, partial(_check, KEYS_BY_NAME[name], value, where), "flag")
    kwargs = {_ATTRS.get(n, n): v for n, v in values.items()}
    config = Config(data_dir=data_dir, origins=origins, **kwargs)
    if not 0 < config.heartbeat_s < config.lease_s:
        fail(
            ConfigError(
                f"node.lease ({format_duration(config.lease_s)}, from "
                f"{origins.get('node.lease', 'default')}) must be longer than node.heartbeat "
                f"({format_duration(config.heartbeat_s)}, from "
                f"{origins.get('node.heartbeat', 'default')}), and the heartbeat above zero"
            )
        )
    return config


def _check(key: Key, value: object, where: str) -> Any:
    if isinstance(value, str) and key.parse in NUMBERS:
        value = value.strip()
    try:
        return key.parse(value)
    except ValueError as e:
        raise ConfigError(f"{where}: {key.name}: {e}") from None


def config_template() -> str:
    """config.toml written by `claudomator init`: every key present, commented out, with its
    default and meaning, so the file documents the defaults without pinning them."""
    lines = [
        "# claudomator configuration. Every key is shown with its default, commented out.",
        "# Precedence: defaults < this file < environment (CLAUDOMATOR_<KEY>) < command-line flags.",
        "",
    ]
    section = ""
    for key in KEYS:
        head, _, leaf = key.name.rpartition(".")
        if head != section:
            lines += ["", f"[{head}]"]
            section = head
        lines.append(f"# {key.doc} (env {key.env_name})")
        lines.append(f"# {leaf} = {_toml_value(key.default)}")
    lines += ["", *NOTIFY_TEMPLATE, "", *SOURCES_TEMPLATE]
    return "\n".join(lines) + "\n"
