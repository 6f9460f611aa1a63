"""One typed `Config` (defaults < config.toml < env `CLAUDOMATOR_*` < flags) and the data dir layout.

Stdlib only: every CLI command reads the config, including the ones that must start fast.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from claudomator.duration import format_duration, parse_duration
from claudomator.errors import ConfigError
from claudomator.state import State

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


def _paths(value: object) -> tuple[str, ...]:
    """Absolute folders, from a TOML array or a colon-separated string (environment)."""
    if isinstance(value, str):
        value = [p for p in value.split(":") if p]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{value!r} is not a list of folders")
    paths = tuple(os.path.expanduser(v) for v in value)
    for path in paths:
        if not os.path.isabs(path):
            raise ValueError(f"{path!r} is not an absolute path")
    return paths


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


POSTGRESQL_SCHEMES = ("postgresql+psycopg://", "postgresql://")
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """A database URL fit to show: its password (in the authority or the query) masked."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


def is_postgresql_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRESQL_SCHEMES)


def _database_url(value: object) -> str:
    """ "" (SQLite in the data dir) or a PostgreSQL URL; the password never shown in errors."""
    url = _text(value).strip()
    if url and not is_postgresql_url(url):
        raise ValueError(
            f"{mask_url(url)!r} is not a PostgreSQL URL (postgresql+psycopg://user@host:5432/db); "
            "leave it empty for SQLite in the data dir"
        )
    return url


def _choice(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return check


def _names(value: object) -> tuple[str, ...]:
    """A TOML array of strings, or a comma-separated string (environment)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ValueError(f"{value!r} is not a list of strings")


def _hosts(value: object) -> tuple[str, ...]:
    hosts = _names(value)
    for host in hosts:
        if host != "*" and (not host.strip("*.") or any(c in host for c in "/:@ ")):
            raise ValueError(f"{host!r} is not a host name (e.g. example.com, *.example.com)")
    return hosts


def _origins(value: object) -> tuple[str, ...]:
    origins = _names(value)
    for origin in origins:
        if not _is_origin(origin):
            raise ValueError(f"{origin!r} is not an origin like https://example.com:8443")
    return tuple(o.rstrip("/").lower() for o in origins)


def _is_origin(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username)
    )


@dataclass(frozen=True)
class Key:
    """One config key: where it lives in config.toml, its env name, type, default and meaning."""

    name: str  # dotted: "max_concurrency", "claude.binary"
    attr: str  # Config attribute
    parse: Callable[[object], Any]
    default: Any  # as written in config.toml
    doc: str
    env: str = ""
    shown: Callable[[Any], Any] | None = None  # how `claudomator config` shows it (secrets masked)

    @property
    def env_name(self) -> str:
        return self.env or "CLAUDOMATOR_" + self.name.replace(".", "_").upper()


KEYS: tuple[Key, ...] = (
    Key("max_concurrency", "max_concurrency", _positive_int, 4, "executions running at once"),
    Key(
        "database_url",
        "database_url",
        _database_url,
        "",
        "the store: empty for SQLite in the data dir, or postgresql+psycopg://user@host:5432/db "
        "to share one PostgreSQL",
        shown=mask_url,
    ),
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
        "claude.allowed_roots",
        "allowed_roots",
        _paths,
        [],
        "if set, every task's working_dir must be inside one of these folders",
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
        "2ms",
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
    Key(
        "node.id",
        "node_id",
        _text,
        "",
        "this node's name among the nodes sharing one database; empty: made once per data dir",
    ),
    Key(
        "node.heartbeat",
        "heartbeat_s",
        parse_duration,
        "10s",
        "a node renews its lease this often",
    ),
    Key(
        "node.lease",
        "lease_s",
        parse_duration,
        "30s",
        "a node silent this long is lost: another node fails its running tasks (`node lost`)",
    ),
    Key("server.host", "server_host", _text, "127.0.0.1", "address the HTTP API binds to"),
    Key("server.port", "server_port", _port, 8484, "port the HTTP API listens on"),
    Key(
        "server.auth",
        "server_auth",
        _bool,
        False,
        "require an API token on loopback too (any other bind always requires one)",
    ),
    Key(
        "server.allowed_hosts",
        "server_allowed_hosts",
        _hosts,
        [],
        "Host names the API answers besides localhost, loopback and server.host (*.x.com, or *)",
    ),
    Key(
        "server.cors_origins",
        "server_cors_origins",
        _origins,
        [],
        "browser origins allowed to call the API and open its WebSocket from another site",
    ),
    Key(
        "server.ws_buffer",
        "server_ws_buffer",
        _positive_int,
        1000,
        "events a WebSocket client may fall behind before it is told and disconnected",
    ),
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

# What a [[notify]] receiver can ask for: final task states, and two conditions of the pool.
RATE_LIMITED = "RATE_LIMITED"  # the pool paused new starts for an API rate limit
DAILY_BUDGET_REACHED = "DAILY_BUDGET_REACHED"  # today's spend reached budget.daily_usd
NOTIFY_STATES = (
    *(s.value for s in State if s not in (State.PENDING, State.QUEUED, State.RUNNING)),
    RATE_LIMITED,
    DAILY_BUDGET_REACHED,
)
NOTIFY_DEFAULT_STATES = (
    State.FAILED.value,
    State.TIMED_OUT.value,
    State.BUDGET_EXCEEDED.value,
    RATE_LIMITED,
    DAILY_BUDGET_REACHED,
)
_NOTIFY_FIELDS = ("url", "states", "secret")


@dataclass(frozen=True)
class NotifyTarget:
    """One webhook receiver from a `[[notify]]` table."""

    url: str
    states: tuple[str, ...] = NOTIFY_DEFAULT_STATES
    secret: str = field(default="", repr=False)  # HMAC-SHA256 key for the signature header

    def __repr__(self) -> str:
        return f"NotifyTarget(url={self.shown_url!r}, states={self.states!r})"

    @property
    def shown_url(self) -> str:
        """The URL without path or query, which may carry a secret (chat webhooks do)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."


def _tables(
    value: object, where: str, key: str, fields: Sequence[str], what: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """An array of tables (`[[key]]`): each table with where it is, unknown keys refused."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key}: write each {what} as a [[{key}]] table")
    for i, table in enumerate(value):
        at = f"{where}: {key}[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{at}: write each {what} as a [[{key}]] table")
        for name in table:
            if name not in fields:
                raise ConfigError(f"{at}.{name}: unknown key{_did_you_mean(name, fields)}")
        yield at, table


def _notify_targets(value: object, where: str) -> tuple[NotifyTarget, ...]:
    targets = []
    for at, table in _tables(value, where, "notify", _NOTIFY_FIELDS, "receiver"):
        url = table.get("url")
        if not isinstance(url, str) or not _is_url(url):
            raise ConfigError(f"{at}.url: {url!r} is not an http(s) URL")
        states = table.get("states", list(NOTIFY_DEFAULT_STATES))
        try:
            names = _names(states)
        except ValueError as e:
            raise ConfigError(f"{at}.states: {e}") from None
        if not names:
            raise ConfigError(f"{at}.states: empty: this receiver would never be told anything")
        for state in names:
            if state not in NOTIFY_STATES:
                raise ConfigError(
                    f"{at}.states: {state!r} is not one of {', '.join(NOTIFY_STATES)}"
                )
        secret = table.get("secret", "")
        if not isinstance(secret, str):
            raise ConfigError(f"{at}.secret: not a string")
        targets.append(NotifyTarget(url, tuple(dict.fromkeys(names)), secret))
    return tuple(targets)


def _is_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# A [[sources]] table: a git checkout whose committed task files run once each (kind "git").
_SOURCE_FIELDS = (
    "name",
    "kind",
    "path",
    "subdir",
    "branch",
    "remote",
    "fetch_interval",
    "ingest_existing",
    "require_signed",
    "allowed_signers",
    "allowed_keys",
    "allowed_authors",
)
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REF_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./-]*")
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


@dataclass(frozen=True)
class GitSource:
    """One git checkout from a `[[sources]]` table: each committed version of a task file below
    `subdir` on `branch` runs once; spool copies live under `@<name>/`."""

    name: str
    path: str  # the checkout (absolute); task working_dirs resolve against it
    kind: str = "git"
    subdir: str = ""  # "" = the whole tree; no leading or trailing "/"
    branch: str = "main"
    remote: str = ""  # a remote of the checkout (e.g. "origin"): fetched and fast-forwarded
    fetch_interval_s: float = 60.0
    ingest_existing: bool = False  # run the task files already there when first seen
    require_signed: bool = False
    allowed_signers: str = ""  # SSH allowed-signers file (git's gpg.ssh.allowedSignersFile)
    allowed_keys: tuple[str, ...] = ()  # OpenPGP fingerprints, upper-case hex
    allowed_authors: tuple[str, ...] = ()  # author e-mails, lower-case

    @property
    def shown(self) -> str:
        parts = [f"{self.kind} {self.path}", f"branch {self.branch}"]
        if self.subdir:
            parts.append(f"subdir {self.subdir}")
        if self.remote:
            parts.append(f"remote {self.remote} every {format_duration(self.fetch_interval_s)}")
        if self.require_signed:
            parts.append("signed only")
        if self.allowed_authors:
            parts.append("authors " + ",".join(self.allowed_authors))
        return ", ".join(parts)


def _git_sources(value: object, where: str) -> tuple[GitSource, ...]:
    sources: list[GitSource] = []
    for at, table in _tables(value, where, "sources", _SOURCE_FIELDS, "source"):
        try:
            source = _git_source(table)
        except _FieldProblem as e:
            raise ConfigError(f"{at}.{e.field}: {e.reason}") from None
        if any(s.name == source.name for s in sources):
            raise ConfigError(f"{at}.name: {source.name!r} is used by another source")
        sources.append(source)
    return tuple(sources)


class _FieldProblem(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


def _git_source(table: dict[str, Any]) -> GitSource:
    def text(field: str, default: str | None = None) -> str:
        value = table.get(field, default)
        if value is None:
            raise _FieldProblem(field, "required")
        if not isinstance(value, str):
            raise _FieldProblem(field, f"{value!r} is not a string")
        return value.strip()

    def parsed(field: str, parse: Callable[[object], Any], default: object) -> Any:
        try:
            return parse(table.get(field, default))
        except ValueError as e:
            raise _FieldProblem(field, str(e)) from None

    name = text("name")
    if not _SOURCE_NAME.fullmatch(name):
        raise _FieldProblem(
            "name", f"{name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (the spool folders use @<name>/)"
        )  # fmt: skip
    kind = text("kind")
    if kind != "git":
        raise _FieldProblem("kind", f"{kind!r} is not a source kind (one of: git)")
    path = os.path.expanduser(text("path"))
    if not os.path.isabs(path):
        raise _FieldProblem("path", f"{path!r} is not an absolute path")
    subdir = text("subdir", "").strip("/")
    parts = subdir.split("/") if subdir else []
    if any(p in ("", ".", "..", ".git") for p in parts):
        raise _FieldProblem("subdir", f"{subdir!r} is not a folder inside the checkout")
    branch = text("branch", "main").removeprefix("refs/heads/")
    if not _is_ref_name(branch):
        raise _FieldProblem("branch", f"{branch!r} is not a branch name")
    remote = text("remote", "")
    if remote and not _is_ref_name(remote):
        raise _FieldProblem("remote", f"{remote!r} is not the name of a remote (e.g. origin)")
    interval = parsed("fetch_interval", parse_duration, "1m")
    if interval < 1:
        raise _FieldProblem("fetch_interval", "must be at least 1s")
    signers = os.path.expanduser(text("allowed_signers", ""))
    if signers and not os.path.isabs(signers):
        raise _FieldProblem("allowed_signers", f"{signers!r} is not an absolute path")
    keys = parsed("allowed_keys", _names, [])
    keys = tuple(k.replace(" ", "").upper().removeprefix("0X") for k in keys)
    for key in keys:
        if not _FINGERPRINT.fullmatch(key):
            raise _FieldProblem("allowed_keys", f"{key!r} is not an OpenPGP fingerprint (40 hex)")
    authors = tuple(a.lower() for a in parsed("allowed_authors", _names, []))
    for author in authors:
        if "@" not in author or any(c in author for c in " <>"):
            raise _FieldProblem("allowed_authors", f"{author!r} is not an e-mail address")
    require_signed = parsed("require_signed", _bool, False)
    if require_signed and not (signers or keys):
        raise _FieldProblem(
            "require_signed", "needs allowed_signers (SSH keys) or allowed_keys (OpenPGP)"
        )
    return GitSource(
        name=name,
        path=os.path.normpath(path),
        kind=kind,
        subdir=subdir,
        branch=branch,
        remote=remote,
        fetch_interval_s=interval,
        ingest_existing=parsed("ingest_existing", _bool, False),
        require_signed=require_signed,
        allowed_signers=signers,
        allowed_keys=keys,
        allowed_authors=authors,
    )


def _is_ref_name(name: str) -> bool:
    """A conservative subset of git's ref-name rules (git check-ref-format)."""
    return (
        bool(_REF_NAME.fullmatch(name))
        and ".." not in name
        and "//" not in name
        and not name.endswith(("/", ".", ".lock"))
        and not any(part.startswith(".") for part in name.split("/"))
    )


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
    def node_id_file(self) -> Path:
        return self.root / "node-id"

    def node_id(self) -> str:
        """The node id kept here ("" before the first `serve`)."""
        try:
            return self.node_id_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

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
    database_url: str = field(default="", repr=False)  # may hold a password
    claude_binary: str = "claude"
    claude_model: str = "sonnet"
    claude_timeout_s: float = 1800.0
    claude_working_dir: str = ""
    allowed_roots: tuple[str, ...] = ()
    interrupt_grace_s: float = 10.0
    terminate_grace_s: float = 5.0
    stop_grace_s: float = 60.0
    max_file_bytes: int = 1048576
    intake_poll: bool = False
    sweep_interval_s: float = 30.0
    debounce_s: float = 0.05
    step_s: float = 0.002
    aging_s: float = 600.0
    max_requeues: int = 10
    daily_budget_usd: float = 0.0
    node_id: str = ""
    heartbeat_s: float = 10.0
    lease_s: float = 30.0
    server_host: str = "127.0.0.1"
    server_port: int = 8484
    server_auth: bool = False
    server_allowed_hosts: tuple[str, ...] = ()
    server_cors_origins: tuple[str, ...] = ()
    server_ws_buffer: int = 1000
    notify: tuple[NotifyTarget, ...] = ()
    sources: tuple[GitSource, ...] = ()
    log_level: str = "info"
    log_format: str = "auto"
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
        rows = []
        for key in KEYS:
            value = getattr(self, key.attr)
            if key.parse is parse_duration:
                value = format_duration(value)
            if key.shown is not None:
                value = key.shown(value)
            rows.append((key.name, _toml_value(value), self.origins.get(key.name, "default")))
        for i, target in enumerate(self.notify):
            shown = f"{target.shown_url} {list(target.states)}" + (
                " signed" if target.secret else ""
            )
            rows.append((f"notify[{i}]", shown, self.origins.get("notify", "default")))
        for i, source in enumerate(self.sources):
            rows.append(
                (
                    f"sources[{i}]",
                    f"{source.name}: {source.shown}",
                    self.origins.get("sources", "default"),
                )
            )
        return rows


def _toml_value(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
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


def _did_you_mean(name: str, choices: Iterable[str] = KEYS_BY_NAME) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
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
        if "notify" in table:
            values["notify"] = _notify_targets(table.pop("notify"), str(path))
            origins["notify"] = "config.toml"
        if "sources" in table:
            values["sources"] = _git_sources(table.pop("sources"), str(path))
            origins["sources"] = "config.toml"
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
    kwargs = {(KEYS_BY_NAME[n].attr if n in KEYS_BY_NAME else n): v for n, v in values.items()}
    config = Config(data_dir=data_dir, origins=origins, **kwargs)
    if not 0 < config.heartbeat_s < config.lease_s:
        raise ConfigError(
            f"node.lease ({format_duration(config.lease_s)}, from "
            f"{origins.get('node.lease', 'default')}) must be longer than node.heartbeat "
            f"({format_duration(config.heartbeat_s)}, from "
            f"{origins.get('node.heartbeat', 'default')}), and the heartbeat above zero"
        )
    return config


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
    lines += [
        "",
        "# Webhook notifications: one [[notify]] table per receiver, none by default. A JSON POST",
        "# when a task ends in one of `states` or the pool needs attention; with a `secret`, the",
        "# header X-Claudomator-Signature is sha256=HMAC-SHA256(secret, body) in hex.",
        "#   [[notify]]",
        '#   url = "https://example.com/hooks/claudomator"',
        "#   states = [" + ", ".join(f'"{s}"' for s in NOTIFY_DEFAULT_STATES) + "]",
        "#   # one of: " + ", ".join(NOTIFY_STATES),
        '#   secret = "a long random string"',
        "",
        "# Git sources: one [[sources]] table per checkout, none by default. Each committed version",
        "# of a task file below `subdir` on `branch` runs once (files already there when the source",
        "# is first seen do not, unless ingest_existing = true); copies show in the spool folders",
        "# under @<name>/. With `remote`, claudomator fetches every `fetch_interval` and",
        "# fast-forwards the branch (never resets). require_signed = true runs only commits with a",
        "# good signature from allowed_signers (an SSH allowed-signers file) or allowed_keys",
        "# (OpenPGP fingerprints); allowed_authors filters by author e-mail.",
        "#   [[sources]]",
        '#   name = "team"',
        '#   kind = "git"',
        '#   path = "/srv/team-tasks"',
        '#   subdir = "tasks"',
        '#   branch = "main"',
        '#   remote = "origin"',
        '#   fetch_interval = "1m"',
        "#   ingest_existing = false",
        "#   require_signed = false",
        '#   allowed_signers = "/etc/claudomator/allowed_signers"',
        '#   allowed_keys = ["0123456789ABCDEF0123456789ABCDEF01234567"]',
        '#   allowed_authors = ["alice@example.com"]',
    ]
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
