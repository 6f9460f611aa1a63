"""One typed `Config` (defaults < config.toml < env `CLAUDOMATOR_*` < flags) and the data dir layout.

Stdlib only: every CLI command reads the config, including the ones that must start fast.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claudomator.duration import format_duration, parse_duration
from claudomator.errors import ConfigError

DIR_MODE = 0o700
FILE_MODE = 0o600


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise ValueError(f"{value!r} must be at least 1")
    return number


def _port(value: object) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise ValueError(f"{value!r} is not a TCP port (1-65535)")
    return number


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.strip().lower() in ("1", "true", "yes", "on")
    raise ValueError(f"{value!r} is not true or false")


def _count(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a whole number >= 0")
    return value


def _money(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not an amount in USD") from None
    if number < 0 or number != number:
        raise ValueError(f"{value!r} must be 0 (no limit) or more")
    return number


def _choice(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return check


@dataclass(frozen=True)
class Key:
    """One config key: where it lives in config.toml, its env name, type, default and meaning."""

    name: str  # dotted: "max_concurrency", "claude.binary"
    attr: str  # Config attribute
    parse: Callable[[object], Any]
    default: Any  # as written in config.toml
    doc: str
    env: str = ""

    @property
    def env_name(self) -> str:
        return self.env or "CLAUDOMATOR_" + self.name.replace(".", "_").upper()


KEYS: tuple[Key, ...] = (
    Key("max_concurrency", "max_concurrency", _positive_int, 4, "executions running at once"),
    Key(
        "claude.binary",
        "claude_binary",
        _text,
        "claude",
        "the Claude Code CLI: a name looked up on PATH, or a path",
        env="CLAUDOMATOR_CLAUDE_BIN",
    ),
    Key("claude.model", "claude_model", _text, "sonnet", "model for tasks that name none"),
    Key(
        "claude.timeout",
        "claude_timeout_s",
        parse_duration,
        "30m",
        "timeout for tasks that set none (e.g. 90s, 15m, 1h30m)",
    ),
    Key(
        "claude.working_dir",
        "claude_working_dir",
        _text,
        "",
        "working_dir for tasks that set none; empty means the user's home directory",
    ),
    Key(
        "runner.interrupt_grace",
        "interrupt_grace_s",
        parse_duration,
        "10s",
        "on timeout or cancel: wait this long after SIGINT (claude reports its cost)",
    ),
    Key(
        "runner.terminate_grace",
        "terminate_grace_s",
        parse_duration,
        "5s",
        "then wait this long after SIGTERM before SIGKILL of the whole process tree",
    ),
    Key(
        "runner.stop_grace",
        "stop_grace_s",
        parse_duration,
        "60s",
        "on shutdown: let running executions finish this long, then cancel them",
    ),
    Key(
        "intake.max_file_bytes",
        "max_file_bytes",
        _positive_int,
        1048576,
        "largest task file accepted, in bytes",
    ),
    Key(
        "intake.poll",
        "intake_poll",
        _bool,
        False,
        "poll the inbox instead of using inotify (for network filesystems)",
    ),
    Key(
        "intake.sweep_interval",
        "sweep_interval_s",
        parse_duration,
        "30s",
        "also scan the whole inbox this often, whatever the watcher says",
    ),
    Key(
        "intake.debounce",
        "debounce_s",
        parse_duration,
        "50ms",
        "the watcher reports a burst of changes after at most this long",
    ),
    Key(
        "intake.step",
        "step_s",
        parse_duration,
        "5ms",
        "the watcher looks for changes this often (lower: faster pickup, more idle CPU)",
    ),
    Key(
        "schedule.aging",
        "aging_s",
        parse_duration,
        "10m",
        "a waiting task rises one priority level per this much waiting",
    ),
    Key(
        "schedule.max_requeues",
        "max_requeues",
        _count,
        10,
        "rate-limit requeues of one task (they use no attempt) before it ends FAILED",
    ),
    Key(
        "budget.daily_usd",
        "daily_budget_usd",
        _money,
        0,
        "once today's spend reaches this, nothing new starts; 0 means no limit",
    ),
    Key("server.host", "server_host", _text, "127.0.0.1", "address the HTTP API binds to"),
    Key("server.port", "server_port", _port, 8484, "port the HTTP API listens on"),
    Key(
        "log.level",
        "log_level",
        _choice("debug", "info", "warning", "error"),
        "info",
        "least severe log level written (to stderr)",
    ),
    Key(
        "log.format",
        "log_format",
        _choice("auto", "console", "json"),
        "auto",
        "console on a terminal and JSON otherwise, or force one",
    ),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}


@dataclass(frozen=True)
class DataDir:
    """`~/.claudomator` and what lives in it."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def database(self) -> Path:
        return self.root / "claudomator.db"

    @property
    def executions(self) -> Path:
        return self.root / "executions"

    @property
    def spool(self) -> dict[str, Path]:
        return {
            name: self.root / name for name in ("inbox", "queued", "running", "done", "rejected")
        }

    def ensure(self) -> None:
        """Create the data dir and its folders (0700); idempotent."""
        for folder in (self.root, self.executions, *self.spool.values()):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.root, DIR_MODE)


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("CLAUDOMATOR_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".claudomator"


@dataclass(frozen=True)
class Config:
    data_dir: DataDir
    max_concurrency: int = 4
    claude_binary: str = "claude"
    claude_model: str = "sonnet"
    claude_timeout_s: float = 1800.0
    claude_working_dir: str = ""
    interrupt_grace_s: float = 10.0
    terminate_grace_s: float = 5.0
    stop_grace_s: float = 60.0
    max_file_bytes: int = 1048576
    intake_poll: bool = False
    sweep_interval_s: float = 30.0
    debounce_s: float = 0.05
    step_s: float = 0.005
    aging_s: float = 600.0
    max_requeues: int = 10
    daily_budget_usd: float = 0.0
    server_host: str = "127.0.0.1"
    server_port: int = 8484
    log_level: str = "info"
    log_format: str = "auto"
    # key name -> "default" | "config.toml" | "env CLAUDOMATOR_X" | "flag"
    origins: dict[str, str] = field(default_factory=dict, compare=False)

    def default_working_dir(self) -> str:
        return self.claude_working_dir or str(Path.home())

    def resolve_claude(self) -> str | None:
        """The claude executable's path, or None when it cannot be found."""
        return shutil.which(os.path.expanduser(self.claude_binary))

    def effective(self) -> list[tuple[str, str, str]]:
        """(key, value as written in TOML, origin) for `claudomator config`."""
        rows = []
        for key in KEYS:
            value = getattr(self, key.attr)
            if key.parse is parse_duration:
                value = format_duration(value)
            rows.append((key.name, _toml_value(value), self.origins.get(key.name, "default")))
        return rows


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _flatten(table: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in table.items():
        dotted = prefix + name
        if isinstance(value, dict) and dotted not in KEYS_BY_NAME:
            if not any(k.startswith(dotted + ".") for k in KEYS_BY_NAME):
                raise ConfigError(f"{where}: [{dotted}]: unknown section{_did_you_mean(dotted)}")
            out.update(_flatten(value, where, dotted + "."))
        elif dotted not in KEYS_BY_NAME:
            raise ConfigError(f"{where}: {dotted}: unknown key{_did_you_mean(dotted)}")
        else:
            out[dotted] = value
    return out


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, KEYS_BY_NAME, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_config(
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Config:
    """Read config.toml in the data dir (if any), then the environment, then `flags` (by key name)."""
    env = os.environ if env is None else env
    data_dir = DataDir(home if home is not None else home_dir(env))
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    path = data_dir.config_file
    if path.is_file():
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from e
        for name, value in _flatten(table, str(path)).items():
            values[name] = _check(KEYS_BY_NAME[name], value, str(path))
            origins[name] = "config.toml"
    for key in KEYS:
        if key.env_name in env:
            values[key.name] = _check(key, env[key.env_name], key.env_name)
            origins[key.name] = "env " + key.env_name
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in KEYS_BY_NAME:
            raise ConfigError(f"unknown config key {name!r}")
        values[name] = _check(KEYS_BY_NAME[name], value, "--" + name.replace(".", "-"))
        origins[name] = "flag"
    kwargs = {KEYS_BY_NAME[n].attr: v for n, v in values.items()}
    return Config(data_dir=data_dir, origins=origins, **kwargs)


def _check(key: Key, value: object, where: str) -> Any:
    if isinstance(value, str) and key.parse in (_positive_int, _port, _money, _count):
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
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str, *, exclusive: bool = True) -> bool:
    """Write `text` to a new 0600 file; with `exclusive`, never overwrite (returns False if it exists)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return True
