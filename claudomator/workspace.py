"""Where an execution runs, and the decisions about it: the `workspace:` field of a task (the
shared `working_dir`, or a git worktree of its own on a branch), the branch's name, a
working_dir mapped into the worktree, which running execution a task must wait for, whether the
worktrees have room left on disk, the commit message, and what the execution record says of
its workspace. Pure and stdlib only (the CLI's light read path may import it): paths are
compared as given, so callers pass them with links resolved; `worktree` does the git.

`Workspace` is a frozen dataclass that pydantic validates natively (inside `TaskSpec`, with
`workspace_input` as its before-validator so that a bare word is accepted too)."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePath
from typing import Any, ClassVar, Literal

Mode = Literal["shared", "worktree"]
MODES: tuple[Mode, ...] = ("shared", "worktree")
DEFAULT_PREFIX = "claudomator"
SLUG_MAX = 40  # characters of the task name kept in a branch name
SHORT_ID = 8  # characters of the task id kept in a branch name
WAITING = "waiting for "  # how the reason of a task that waits for a folder or disk begins
_WORKTREE_ONLY = ("base", "setup", "push")
_REF_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")

_DESCRIPTIONS = {
    "mode": "shared: run in working_dir itself; worktree: in a git worktree on a branch of its own",
    "base": "the ref the branch starts from; default: the repository's HEAD when the task starts",
    "setup": "a shell command run in a new worktree before claude (output in setup.log)",
    "commit": "commit what claude left uncommitted, on the task's branch",
    "push": "the remote the branch is pushed to after success (never forced); null: no push",
    "keep": "keep the worktree after the task is final (the branch is always kept)",
}


@dataclass(frozen=True)
class Workspace:
    """A task's `workspace:`, as the word `shared`/`worktree` or a mapping; a mapping without
    `mode` asks for a worktree, since its other keys only mean something there."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    mode: Mode = "worktree"
    base: str | None = None
    setup: str | None = None
    commit: bool = True
    push: str | None = None
    keep: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of shared, worktree")
        for name in ("commit", "keep"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false")
        for name in _WORKTREE_ONLY:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: expected a non-empty string or null")
            if self.mode == "shared":
                raise ValueError(f"{name}: applies to mode worktree only, not shared")
        for name in ("base", "push"):
            value = getattr(self, name)
            if value is not None and (value.startswith("-") or _UNSAFE.search(value)):
                what = "a git revision" if name == "base" else "a git remote"
                raise ValueError(f"{name}: {value!r} is not {what}")

    @classmethod
    def of(cls, value: object) -> Workspace:
        """The workspace a word or mapping asks for (without pydantic); ValueError otherwise."""
        found = workspace_input(value)
        return found if isinstance(found, Workspace) else cls(**found)

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: Any) -> Any:
        """The schema says what `workspace_input` accepts: a word, or the mapping."""
        mapping = handler.resolve_ref_schema(handler(core))
        for name, text in _DESCRIPTIONS.items():
            mapping.get("properties", {}).get(name, {})["description"] = text
        word = {"type": "string", "enum": list(MODES)}
        return {"anyOf": [word, mapping], "description": cls.__doc__}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def workspace_input(value: object) -> Workspace | dict[str, Any]:
    """`value` as `Workspace` takes it: a word becomes `{"mode": word}`; a mapping is checked
    for unknown keys (with a suggestion). The before-validator of the `workspace` field."""
    if isinstance(value, Workspace):
        return value
    if isinstance(value, str):
        if value not in MODES:
            raise ValueError(f"{value!r} is not one of shared, worktree (or a mapping)")
        return {"mode": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected shared, worktree or a mapping, got {type(value).__name__}")
    known = [f.name for f in fields(Workspace)]
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(known)}"
            raise ValueError(f"unknown field {key!r}{hint}")
    return dict(value)


def check_prefix(prefix: str) -> str:
    """`prefix` as a branch name prefix (`claudomator`, `bots/claudomator`), slashes at its ends
    dropped; ValueError when git would refuse a branch under it."""
    parts = prefix.strip("/").split("/")
    for part in parts:
        if not _REF_PART.fullmatch(part) or ".." in part or part.endswith((".", ".lock")):
            raise ValueError(f"branch prefix {prefix!r} is not a valid git branch name")
    return "/".join(parts)


def slug(text: str, limit: int = SLUG_MAX) -> str:
    """`text` in lowercase ascii letters, digits and single dashes, at most `limit` long; never
    empty ("task" when nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    dashed = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return dashed[:limit].rstrip("-") or "task"


def short_id(task_id: str) -> str:
    """The last `SHORT_ID` letters and digits of `task_id`, lowercase: the random end of an id
    that sorts by time, so tasks made in one millisecond still differ."""
    kept = re.sub(r"[^a-z0-9]", "", task_id.lower())
    if not kept:
        raise ValueError(f"task id {task_id!r} has no letters or digits")
    return kept[-SHORT_ID:]


def branch_name(prefix: str, task_name: str, task_id: str) -> str:
    """The task's branch: `<prefix>/<slug of the name>-<short id>`."""
    return f"{check_prefix(prefix)}/{slug(task_name)}-{short_id(task_id)}"


def inside(path: PurePath, root: PurePath) -> bool:
    """Whether `path` is `root` or below it (lexically: resolve links first). By their text:
    admission asks it of every queued task against every running one."""
    here, top = str(path), str(root)
    return here == top or here.startswith(top if top.endswith("/") else top + "/")


def in_worktree(working_dir: PurePath, repo_root: PurePath, worktree: PurePath) -> PurePath:
    """The folder of `worktree` that is to it what `working_dir` is to `repo_root`."""
    if not inside(working_dir, repo_root):
        raise ValueError(f"{working_dir} is not inside the repository {repo_root}")
    return worktree / working_dir.relative_to(repo_root)


def overlaps(a: PurePath, b: PurePath) -> bool:
    """Whether one folder is the other, inside it, or above it."""
    return inside(a, b) or inside(b, a)


@dataclass(frozen=True)
class Occupant:
    """A running execution, as far as overlap goes: its task, where it runs and, in a
    worktree, its branch and the repository the branch is in."""

    task_id: str
    directory: PurePath
    branch: str | None = None
    repo: PurePath | None = None


@dataclass(frozen=True)
class Wait:
    """Why a task must wait: what it waits for (a folder or a branch) and whose it is."""

    on: str
    task_id: str

    def __str__(self) -> str:
        return f"{WAITING}{self.on} (task {self.task_id})"


def blocker(
    directory: PurePath,
    running: Iterable[Occupant],
    *,
    branch: str | None = None,
    repo: PurePath | None = None,
) -> Wait | None:
    """The first running execution a task must wait for, or None. `directory` is where the task
    would run (its working_dir; a worktree task's own worktree folder); a folder that is the
    same as, inside or above a running one's waits, and so does a branch already in use in the
    same repository."""
    for occupant in running:
        if branch is not None and occupant.branch == branch and occupant.repo == repo:
            return Wait(f"branch {branch}", occupant.task_id)
        if overlaps(directory, occupant.directory):
            return Wait(str(occupant.directory), occupant.task_id)
    return None


@dataclass(frozen=True)
class Admitted:
    """One round of admission: the tasks that may start, in queue order; why others wait (task
    id -> reason); and those that need wait for nothing but a free slot."""

    allowed: list[str]
    waits: dict[str, str]
    ready: list[str] = field(default_factory=list)


def admit(
    candidates: Iterable[tuple[Occupant, bool]],
    running: Iterable[Occupant],
    slots: int,
    disk: str | None = None,
) -> Admitted:
    """Which of `candidates` (in queue order; each with whether it needs a new worktree) start
    beside `running`, at most `slots`: one that overlaps a running or admitted one waits, and
    tasks behind it still start; while `disk` says why (`disk_wait`), a new worktree waits."""
    occupied = list(running)
    done = Admitted([], {})
    for occupant, new_worktree in candidates:
        if new_worktree and disk is not None:
            done.waits[occupant.task_id] = disk
        elif wait := blocker(
            occupant.directory, occupied, branch=occupant.branch, repo=occupant.repo
        ):
            done.waits[occupant.task_id] = str(wait)
        elif len(done.allowed) < slots:
            done.allowed.append(occupant.task_id)
            occupied.append(occupant)
        else:
            done.ready.append(occupant.task_id)
    return done


def disk_wait(sizes: Iterable[int], max_disk: int | None) -> str | None:
    """Why a new worktree must wait for disk (its reason), or None: the worktrees together use
    `max_disk` bytes or more. No limit: never."""
    if max_disk is None:
        return None
    used = sum(sizes)
    if used < max_disk:
        return None
    return (
        f"{WAITING}disk: worktrees use {format_bytes(used)} of workspace.max_disk "
        f"{format_bytes(max_disk)}"
    )


def format_bytes(n: int) -> str:
    """1536 -> 1.5 KiB: a size for people."""
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def commit_message(task_name: str, task_id: str, execution_id: str) -> str:
    """The message of the commit of what claude left: the task's name on one line, then the
    trailers that tie the commit to its task and execution."""
    subject = " ".join(task_name.split()) or "task"
    return (
        f"claudomator: {subject}\n\n"
        f"Claudomator-Task: {task_id}\nClaudomator-Execution: {execution_id}\n"
    )


@dataclass(frozen=True)
class WorkspaceRecord:
    """The `workspace` of an execution record: where it ran and, in a worktree, what its branch
    holds from `base` to `head` (commits, files, lines) and where the diff was saved."""

    mode: Mode
    path: str
    repo: str | None = None  # the repository the branch is in
    node: str | None = None  # the node whose disk holds the worktree
    branch: str | None = None
    base: str | None = None
    head: str | None = None
    commits: int = 0
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    diff_path: str | None = None
    push_error: str | None = None  # the push failed: why (the task's state is unchanged)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkspaceRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


__all__ = [
    "DEFAULT_PREFIX",
    "MODES",
    "WAITING",
    "Admitted",
    "Mode",
    "Occupant",
    "Wait",
    "Workspace",
    "WorkspaceRecord",
    "admit",
    "blocker",
    "branch_name",
    "check_prefix",
    "commit_message",
    "disk_wait",
    "format_bytes",
    "in_worktree",
    "inside",
    "overlaps",
    "short_id",
    "slug",
    "workspace_input",
]
