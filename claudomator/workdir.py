"""Where an execution runs: the task's working_dir, else the configured default; whether a path
lies inside the allowed roots; a file's working_dir confined to its checkout and those roots; and
a task's workspace settled at intake (its source's default filled in; a worktree only inside a
git repository). Pure but for resolving links and looking for `.git`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from claudomator.config import Config
from claudomator.errors import FieldError, TaskFileError
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile
from claudomator.workspace import Mode, Workspace


def working_dir(spec: TaskSpec, config: Config) -> Path:
    return Path(os.path.expanduser(spec.claude.working_dir or config.default_working_dir()))


def absolute(spec: TaskSpec, base: str | Path) -> TaskSpec:
    """`spec` with its working_dir absolute, as it is recorded and shown: `~` expanded, and a
    relative one resolved against `base` (a task file's folder for `claudomator run`, else
    `claude.working_dir`). A task that sets none keeps none (the default applies when it runs)."""
    wd = spec.claude.working_dir
    if not wd:
        return spec
    root = os.path.abspath(os.path.expanduser(base))
    full = os.path.normpath(os.path.join(root, os.path.expanduser(wd)))
    if full == wd:
        return spec
    return spec.model_copy(update={"claude": spec.claude.model_copy(update={"working_dir": full})})


def absolute_file(parsed: ParsedFile, base: str | Path) -> ParsedFile:
    """Every task of `parsed` with its working_dir absolute (`absolute`)."""
    return dataclasses.replace(parsed, tasks=[absolute(t, base) for t in parsed.tasks])


def within(path: Path, roots: tuple[str, ...]) -> bool:
    """Whether `path` (links resolved) is inside one of `roots`; no roots: anywhere."""
    if not roots:
        return True
    real = os.path.realpath(path)
    return any(
        real == r or real.startswith(r.rstrip("/") + "/") for r in map(os.path.realpath, roots)
    )


def confine(spec: TaskSpec, base: Path | None, allowed_roots: Sequence[str]) -> TaskSpec:
    """`spec` with its working_dir resolved: relative to a checkout (`base`, also its default),
    and inside the checkout or one of `allowed_roots` (links resolved); ValueError otherwise."""
    wd = spec.claude.working_dir
    if base is None:
        if not allowed_roots or not wd:
            return spec
        path = Path(os.path.expanduser(wd))
    else:
        path = base / os.path.expanduser(wd) if wd else base
    real = os.path.realpath(path)
    if not within(Path(real), ((str(base),) if base else ()) + tuple(allowed_roots)):
        where = "the checkout or allowed_roots" if base else "allowed_roots"
        raise ValueError(
            f"claude.working_dir: {wd or str(path)!r} resolves to {real}, outside {where}"
        )
    if base is None:
        return spec
    return spec.model_copy(update={"claude": spec.claude.model_copy(update={"working_dir": real})})


def git_repository(path: Path) -> Path | None:
    """The top folder of the git checkout `path` (links resolved) is in, by its `.git` (a folder,
    or the file of a worktree or submodule), or `path` itself when it is a bare repository;
    None when neither."""
    here = Path(os.path.realpath(path))
    if all(os.path.exists(here / part) for part in ("HEAD", "objects", "refs")):
        return here
    for folder in (here, *here.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return None


def settle(spec: TaskSpec, default_mode: Mode, default_dir: str) -> TaskSpec:
    """`spec` with its workspace said: its own, else `default_mode` (its source's default); a
    worktree needs its working_dir (else `default_dir`) inside a git repository: ValueError."""
    workspace = spec.workspace or Workspace(mode=default_mode)
    if workspace.mode == "worktree":
        path = Path(os.path.expanduser(spec.claude.working_dir or default_dir))
        if git_repository(path) is None:
            raise ValueError(
                f"workspace: worktree needs a git repository, and working_dir {str(path)!r} is "
                "not inside one (make it one, or use workspace: shared)"
            )
    return spec if spec.workspace == workspace else spec.model_copy(update={"workspace": workspace})


def settle_file(parsed: ParsedFile, default_mode: Mode, default_dir: str) -> ParsedFile:
    """Every task of `parsed` settled; TaskFileError naming the file and each task's field."""
    specs, errors = [], []
    for i, spec in enumerate(parsed.tasks):
        try:
            specs.append(settle(spec, default_mode, default_dir))
        except ValueError as e:
            where = f"tasks[{i}].workspace" if parsed.is_batch else "workspace"
            message = str(e).removeprefix("workspace: ")
            errors.append(FieldError(parsed.path, 0, 0, where, f"task {spec.name!r}: {message}"))
    if errors:
        raise TaskFileError(errors)
    return dataclasses.replace(parsed, tasks=specs)
