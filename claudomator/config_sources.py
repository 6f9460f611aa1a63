"""`[[sources]]` tables in config.toml: git checkouts whose committed task files run once each."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

from claudomator.config_values import boolean, choice, names, tables
from claudomator.duration import format_duration, parse_duration
from claudomator.errors import ConfigError
from claudomator.records import JSONObject
from claudomator.workspace import Mode

SOURCE_FIELDS = (
    "name",
    "kind",
    "path",
    "subdir",
    "branch",
    "remote",
    "fetch_interval",
    "ingest_existing",
    "workspace",
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
    workspace: Mode = "worktree"  # where its tasks that set no workspace run (shared | worktree)
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


# The defaults of a table's optional fields are GitSource's (by attribute).
_DEFAULT: JSONObject = {f.name: f.default for f in fields(GitSource) if f.default is not MISSING}


def git_sources(value: object, where: str) -> tuple[GitSource, ...]:
    """The checkouts in config.toml's `sources` array of tables (`where` is the file)."""
    sources: list[GitSource] = []
    for at, table in tables(value, where, "sources", SOURCE_FIELDS, "source"):
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


def _git_source(table: JSONObject) -> GitSource:
    def text(field: str, *, required: bool = False) -> str:
        value = table.get(field, None if required else _DEFAULT[field])
        if value is None:
            raise _FieldProblem(field, "required")
        if not isinstance(value, str):
            raise _FieldProblem(field, f"{value!r} is not a string")
        return value.strip()

    def parsed(field: str, parse: Callable[[object], Any], attr: str = "") -> Any:
        try:
            return parse(table.get(field, _DEFAULT[attr or field]))
        except ValueError as e:
            raise _FieldProblem(field, str(e)) from None

    name = text("name", required=True)
    if not _SOURCE_NAME.fullmatch(name):
        raise _FieldProblem(
            "name", f"{name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (the spool folders use @<name>/)"
        )  # fmt: skip
    kind = text("kind", required=True)
    if kind != "git":
        raise _FieldProblem("kind", f"{kind!r} is not a source kind (one of: git)")
    path = os.path.expanduser(text("path", required=True))
    if not os.path.isabs(path):
        raise _FieldProblem("path", f"{path!r} is not an absolute path")
    subdir = text("subdir").strip("/")
    parts = subdir.split("/") if subdir else []
    if any(p in ("", ".", "..", ".git") for p in parts):
        raise _FieldProblem("subdir", f"{subdir!r} is not a folder inside the checkout")
    branch = text("branch").removeprefix("refs/heads/")
    if not _is_ref_name(branch):
        raise _FieldProblem("branch", f"{branch!r} is not a branch name")
    remote = text("remote")
    if remote and not _is_ref_name(remote):
        raise _FieldProblem("remote", f"{remote!r} is not the name of a remote (e.g. origin)")
    interval = parsed("fetch_interval", parse_duration, "fetch_interval_s")
    if interval < 1:
        raise _FieldProblem("fetch_interval", "must be at least 1s")
    signers = os.path.expanduser(text("allowed_signers"))
    if signers and not os.path.isabs(signers):
        raise _FieldProblem("allowed_signers", f"{signers!r} is not an absolute path")
    keys = parsed("allowed_keys", names)
    keys = tuple(k.replace(" ", "").upper().removeprefix("0X") for k in keys)
    for key in keys:
        if not _FINGERPRINT.fullmatch(key):
            raise _FieldProblem("allowed_keys", f"{key!r} is not an OpenPGP fingerprint (40 hex)")
    authors = tuple(a.lower() for a in parsed("allowed_authors", names))
    for author in authors:
        if "@" not in author or any(c in author for c in " <>"):
            raise _FieldProblem("allowed_authors", f"{author!r} is not an e-mail address")
    workspace = parsed("workspace", choice("shared", "worktree"))
    require_signed = parsed("require_signed", boolean)
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
        ingest_existing=parsed("ingest_existing", boolean),
        workspace=workspace,
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


SOURCES_TEMPLATE = (
    "# Git sources: one [[sources]] table per checkout, none by default. Each committed version",
    "# of a task file below `subdir` on `branch` runs once (files already there when the source",
    "# is first seen do not, unless ingest_existing = true); copies show in the spool folders",
    "# under @<name>/. With `remote`, claudomator fetches every `fetch_interval` and",
    "# fast-forwards the branch (never resets). require_signed = true runs only commits with a",
    "# good signature from allowed_signers (an SSH allowed-signers file) or allowed_keys",
    "# (OpenPGP fingerprints); allowed_authors filters by author e-mail. Its tasks run in a git",
    "# worktree of their own unless they or `workspace` (shared | worktree) say otherwise.",
    "#   [[sources]]",
    '#   name = "team"',
    '#   kind = "git"',
    '#   path = "/srv/team-tasks"',
    '#   subdir = "tasks"',
    '#   branch = "main"',
    '#   remote = "origin"',
    '#   fetch_interval = "1m"',
    "#   ingest_existing = false",
    '#   workspace = "worktree"',
    "#   require_signed = false",
    '#   allowed_signers = "/etc/claudomator/allowed_signers"',
    '#   allowed_keys = ["0123456789ABCDEF0123456789ABCDEF01234567"]',
    '#   allowed_authors = ["alice@example.com"]',
)
"""The `[[sources]]` part of config.toml's template (`claudomator init`): commented out."""
