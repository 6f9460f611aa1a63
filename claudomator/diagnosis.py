"""What `claudomator doctor` concludes: one pure verdict per check, from the facts `doctor`
gathered, as a `Check` (ok, warning or problem, with what to do). Stdlib only, table-tested.

A problem is what stops this machine from running tasks (or `serve` from starting); a warning is
worth a look but runs go on. No value of a secret is ever in a check: a credential is named by
its variable or file, a database URL is shown masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from claudomator.billing import Credentials, Lane, allows
from claudomator.records import Node

Status = Literal["ok", "warning", "problem"]
STATUSES: tuple[Status, ...] = ("ok", "warning", "problem")
VERSION_TIMEOUT_S = 5.0  # how long `claude --version` may take
TOKEN_FILES = ("token", "token.read-only")  # the API refuses one that others may read


@dataclass(frozen=True)
class Check:
    """One thing looked at: how it stands, what was found, and what to do ("": nothing)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def healthy(checks: Sequence[Check]) -> bool:
    """Nothing is a problem (warnings allowed): `doctor`'s exit code 0."""
    return all(c.status != "problem" for c in checks)


# -- claude ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What `claude --version` said: its exit code (None: no answer in time), stdout, stderr."""

    code: int | None
    out: str = ""
    err: str = ""


def claude_verdict(binary: str, path: str | None, answer: Answer | None) -> Check:
    """The claude binary: found (`path`), and what its `--version` said."""
    if path is None or answer is None:
        where = "" if "/" in binary else " on PATH"
        return Check(
            "claude",
            "problem",
            f"{binary!r} not found{where}",
            "install Claude Code, or point claude.binary (CLAUDOMATOR_CLAUDE_BIN, --claude-bin) "
            "at it",
        )
    by_hand = f"run `{path} --version` as the user claudomator runs as, and see what it says"
    if answer.code is None:
        detail = f"{path} did not answer --version within {VERSION_TIMEOUT_S:g}s"
        return Check("claude", "warning", detail, by_hand)
    said = (answer.out.strip().splitlines() or [""])[0].strip()
    if answer.code != 0:
        why = (answer.err.strip().splitlines() or [f"exit {answer.code}"])[-1]
        return Check("claude", "problem", f"{path} --version failed: {why}", by_hand)
    if "Claude Code" not in said:
        return Check(
            "claude",
            "warning",
            f"{path} answers --version with {said!r}: is it Claude Code?",
            "point claude.binary at the Claude Code CLI",
        )
    return Check("claude", "ok", f"{path}, version {said.removesuffix(' (Claude Code)')}")


# -- credentials -------------------------------------------------------------------------------


def credentials_verdict(lane: Lane, found: Credentials) -> Check:
    """What claude would bill (from `billing.credentials`) against `claude.billing`."""
    configured = f'claude.billing = "{lane}"'
    if found.billed == "none":
        return Check(
            "credentials",
            "warning",
            f"none found (no API key or token in the environment, no claude login file); "
            f"{configured}",
            "log in once with `claude` as the user claudomator runs as, or set "
            "ANTHROPIC_API_KEY (a login kept in the macOS keychain is not seen here)",
        )
    what = _shown(found)
    if allows(lane, found):
        return Check("credentials", "ok", f"{what}; {configured}")
    if found.billed == "api_key":
        fix = (
            f"unset {found.source} where claudomator runs, or set "
            'claude.billing = "api_key" (or "any")'
        )
    else:
        fix = 'set ANTHROPIC_API_KEY where claudomator runs, or claude.billing = "subscription"'
    return Check(
        "credentials",
        "problem",
        f"claude would use {what}, but {configured}: each run would be stopped at its start "
        "and the pool paused",
        fix,
    )


def _shown(found: Credentials) -> str:
    """The kind of credential and where it comes from; never its value."""
    if found.billed == "api_key":
        kind = "an API key" if found.source.startswith("ANTHROPIC_") else "cloud billing"
    elif "/" in found.source:
        kind = "a subscription login"
    else:
        kind = "a subscription token"
    return f"{kind} ({found.source})"


# -- data dir ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """The data dir ("") or one thing directly in it, as `stat` saw it."""

    name: str
    is_dir: bool
    mode: int  # the permission bits
    uid: int


def data_dir_verdict(root: str, entries: Sequence[Entry] | None, uid: int) -> Check:
    """The data dir and what is directly in it: there, a folder, yours, private (0700, 0600)."""
    name = "data dir"
    if entries is None:
        made = "`claudomator init` makes it (so does `serve`)"
        return Check(name, "warning", f"{root} does not exist yet", made)
    if not entries or not entries[0].is_dir:
        return Check(
            name, "problem", f"{root} is not a folder", "move it away, or set CLAUDOMATOR_HOME"
        )
    everyone = f"chmod -R go-rwx {root}"
    # a data dir others cannot go into hides what is in it, whatever the modes in there say
    reachable = entries if entries[0].mode & 0o011 else entries[:1]
    rules: tuple[tuple[list[Entry], Status, str, str], ...] = (
        ([e for e in entries if e.uid != uid], "problem", "another user's",
         f"run claudomator as their owner, or chown -R {uid} {root}"),
        ([e for e in entries if not e.mode & 0o200], "problem", "read-only to you",
         f"chmod -R u+w {root}"),
        ([e for e in entries if e.name in TOKEN_FILES and e.mode & 0o077], "problem",
         "others may read it (the API refuses such a token)", f"chmod 600 {root}/token*"),
        ([e for e in reachable if e.mode & 0o022], "problem",
         "others may write there (and drop task files that run as you)", everyone),
        ([e for e in reachable if e.mode & 0o044], "warning",
         "others may read there (prompts, logs, the config)", everyone),
    )  # fmt: skip
    for found, status, detail, fix in rules:
        if found:
            return Check(name, status, f"{_names(root, found)}: {detail}", fix)
    return Check(name, "ok", f"{root}, private to you")


def _names(root: str, entries: Sequence[Entry], most: int = 3) -> str:
    names = [f"{root}/{e.name}" if e.name else root for e in entries]
    more = f" (and {len(names) - most} more)" if len(names) > most else ""
    return ", ".join(names[:most]) + more


# -- config ------------------------------------------------------------------------------------


def config_verdict(
    path: str, exists: bool, problems: Sequence[str], origins: Mapping[str, str]
) -> list[Check]:
    """The config: a problem per error (each names its file, variable or flag), else ok."""
    if problems:
        return [Check("config", "problem", p, _config_fix(p, path)) for p in problems]
    from_file = sum(o == "config.toml" for o in origins.values())
    from_env = sum(o.startswith("env ") for o in origins.values())
    env = f", {from_env} from the environment" if from_env else ""
    if not exists:
        return [Check("config", "ok", f"no {path}: the defaults{env}")]
    keys = f"{from_file} key{'s' if from_file != 1 else ''}" if from_file else "no key"
    return [Check("config", "ok", f"{path}: {keys} set{env}")]


def _config_fix(problem: str, path: str) -> str:
    where = problem.split(":", 1)[0]
    if where.startswith("CLAUDOMATOR_"):
        return f"correct {where}, or unset it"
    if where.startswith("--"):
        return f"correct {where}"
    if problem.startswith("node.lease"):
        return "make node.lease longer than node.heartbeat"
    return f"correct it in {path} (`claudomator init` wrote every key there, commented)"


# -- database ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What the database said: there at all (a SQLite file), its schema version (None: no
    schema yet), or why it could not be read."""

    found: bool
    version: int | None = None
    error: str = ""


def database_verdict(shown: str, stored: Stored, current: int) -> Check:
    """The database (`shown`: its file, or its URL masked) and its schema version against this
    claudomator's (`current`)."""
    name = "database"
    made = "`claudomator init` makes it (so does `serve`)"
    if stored.error:
        fix = "check database_url (CLAUDOMATOR_DATABASE_URL) and that the database is up"
        if not shown.startswith("postgresql"):
            fix = "move the file away if it is not claudomator's, or set database_url"
        return Check(name, "problem", f"{shown}: {stored.error}", fix)
    if not stored.found:
        return Check(name, "warning", f"{shown} does not exist yet", made)
    if stored.version is None:
        return Check(name, "warning", f"{shown} has no claudomator schema yet", made)
    if stored.version > current:
        return Check(
            name,
            "problem",
            f"{shown}: schema {stored.version}, newer than this claudomator's ({current})",
            "upgrade claudomator (the database was written by a newer one)",
        )
    if stored.version < current:
        return Check(
            name,
            "warning",
            f"{shown}: schema {stored.version}, older than this claudomator's ({current})",
            f"none: the next `serve` (or `init`) migrates it to {current}",
        )
    return Check(name, "ok", f"{shown}, schema {stored.version}")


# -- API port ----------------------------------------------------------------------------------


def port_verdict(host: str, port: int, error: str, in_use: bool, serve: str | None) -> Check:
    """Whether the API could listen on host:port (`error`: why not; `in_use`: taken), and if
    taken, whether by this data dir's serve (`serve`: the lock's holder, None: none runs)."""
    name, at = "api port", f"{host}:{port}"
    if not error:
        return Check(name, "ok", f"{at} is free")
    if in_use and serve is not None:
        return Check(name, "ok", f"{at} is held by this data dir's serve ({serve})")
    fix = "set server.host and server.port (CLAUDOMATOR_SERVER_*), or serve with --no-api"
    if in_use:
        return Check(name, "problem", f"{at} is in use by another program", "stop it, or " + fix)
    return Check(name, "problem", f"cannot listen on {at}: {error}", fix)


# -- serve -------------------------------------------------------------------------------------


def serve_verdict(holder: str | None, since: str | None, node: Node | None, host: str) -> Check:
    """Whether a serve holds this data dir's lock (`holder`) and since when; `node`: this data
    dir's row in the nodes table, if any (`host`: this machine)."""
    name = "serve"
    if holder is not None:
        return Check(name, "ok", f"running since {since or 'an unknown time'} ({holder})")
    if node is not None and (node["kind"], node["state"], node["host"]) == ("serve", "up", host):
        return Check(
            name,
            "warning",
            f"not running, but node {node['id']} (pid {node['pid']}, started "
            f"{node['started_at']}) is recorded as up: it ended without stopping",
            "start `claudomator serve`: its recovery repairs what that one left",
        )
    return Check(name, "ok", "not running (`claudomator serve` starts it)")


# -- git sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    """What a git source's checkout looked like: there, why git could not open it, its
    branch's tip (None: no such branch)."""

    exists: bool
    error: str = ""
    tip: str | None = None


def source_verdict(
    name: str, path: str, branch: str, remote: str, checkout: Checkout, last_error: str
) -> Check:
    """One `[[sources]]` checkout: there, a checkout's top folder, its branch there; and what
    went wrong last time `serve` looked (`last_error`, as `claudomator sources` shows it)."""
    check = f"source {name}"
    if not checkout.exists:
        return Check(
            check,
            "problem",
            f"{path}: no such folder",
            f"clone the repository to {path}, or correct the path of [[sources]] {name!r}",
        )
    if checkout.error:
        return Check(
            check, "problem", checkout.error, "point its path at the top folder of a checkout"
        )
    if checkout.tip is None:
        if remote:
            return Check(
                check,
                "warning",
                f"{path}: no branch {branch} yet",
                f"none: the first fetch from {remote} makes it (check that {remote} has it)",
            )
        return Check(
            check,
            "problem",
            f"{path}: no branch {branch}",
            f"create it, or correct the branch of [[sources]] {name!r}",
        )
    if last_error:
        return Check(
            check,
            "warning",
            f"{path}, {branch} at {checkout.tip[:12]}; last time: {last_error}",
            "see `claudomator sources`",
        )
    return Check(check, "ok", f"{path}, {branch} at {checkout.tip[:12]}")
