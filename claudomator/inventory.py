"""The worktrees and branches this node's tasks left: what start-up puts right (`recover`), what
`claudomator workspaces` lists, and what `workspaces prune` removes.

Recovery looks at each folder under `<data dir>/workspaces/`: the worktree of a task that is
final (or unknown to the store) has what is left uncommitted committed on its branch (unless
its task said `commit: false`), then is removed unless `keep`; a folder that never became a
worktree is deleted; `git worktree prune` runs in each repository seen. Branches are never
deleted here: only `prune`, asked by a person, deletes the branches of final tasks.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from claudomator.sources.gitcmd import Git
from claudomator.sources.gitplan import GitError
from claudomator.state import FINAL_STATES
from claudomator.store.db import Store
from claudomator.task import TaskSpec
from claudomator.workspace import Workspace, WorkspaceRecord
from claudomator.workspaces import Workspaces

log = structlog.get_logger("claudomator.workspaces")
_FINAL = frozenset(s.value for s in FINAL_STATES)


@dataclass(frozen=True)
class Entry:
    """One task branch or worktree, as `claudomator workspaces` shows it."""

    task_id: str
    name: str | None  # None: a folder no task of the store knows
    state: str | None
    branch: str | None
    repo: str | None
    path: str | None  # its worktree, while there is one
    size_bytes: int
    age_s: float | None  # since the branch's last commit
    node: str | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def repository_of(folder: Path) -> Path | None:
    """The repository a worktree folder belongs to (its main checkout, or a bare repository)."""
    found = await Git(folder).run(
        "rev-parse", "--path-format=absolute", "--git-common-dir", ok=(0, 128)
    )
    if found.code != 0 or not found.text:
        return None
    common = Path(found.text)
    return common.parent if common.name == ".git" else common


class Inventory:
    def __init__(self, workspaces: Workspaces) -> None:
        self.workspaces = workspaces
        self.store = workspaces.store
        self.trees = workspaces.trees

    def _folders(self) -> list[Path]:
        root = self.trees.workspaces
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    async def recover(self) -> int:
        """Put the worktrees right after a crash (see the module's docstring); how many were
        removed."""
        removed, repos = 0, set()
        for folder in self._folders():
            task_id = folder.name
            row = self.store.task_row(task_id)
            repo = await repository_of(folder)
            if repo is None:  # its making was cut short before git made it a worktree
                if row is None or row["state"] in _FINAL:
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            repos.add(repo)
            if row is not None and row["state"] not in _FINAL:
                await self.workspaces.measure(task_id)  # its next execution goes on there
                continue
            spec = TaskSpec.model_validate_json(row["config_json"]) if row else None
            workspace = (spec.workspace if spec else None) or Workspace()
            try:
                if workspace.commit:
                    name = spec.name if spec else "recovered worktree"
                    execution = self.store.latest_execution_id(task_id) or "recovery"
                    await self.trees.commit(folder, name, task_id, execution)
                if not workspace.keep:
                    removed += await self.trees.remove(repo, task_id)
            except GitError as e:
                log.warning("workspace.recovery_failed", task_id=task_id, error=str(e))
            await self.workspaces.measure(task_id)
        for repo in repos:
            try:
                await self.trees.prune(repo)
            except GitError as e:
                log.warning("workspace.prune_failed", repo=str(repo), error=str(e))
        if removed:
            log.info("workspace.recovered", removed=removed)
        return removed

    async def entries(self) -> list[Entry]:
        """Every task branch that still exists (with its worktree, if any) and every folder
        under workspaces/, oldest task first."""
        records = _records(self.store)
        rows = {t: self.store.task_row(t) for t in records}
        folders = {p.name: p for p in self._folders()}
        now, out = time.time(), []
        for task_id in sorted(set(records) | set(folders)):
            record, row, folder = records.get(task_id), rows.get(task_id), folders.get(task_id)
            repo = record.repo if record else None
            if repo is None and folder is not None:
                found = await repository_of(folder)
                repo = str(found) if found else None
            committed = None
            if record and record.branch and repo:
                committed = await _committed_at(Path(repo), record.branch)
            if folder is None and committed is None:  # branch and worktree both gone
                continue
            size = await self._size(task_id) if folder else 0
            out.append(Entry(
                task_id=task_id, name=row["name"] if row else None,
                state=row["state"] if row else None, branch=record.branch if record else None,
                repo=repo, path=str(folder) if folder else None, size_bytes=size,
                age_s=None if committed is None else max(0.0, now - committed),
                node=record.node if record else None,
            ))  # fmt: skip
        return out

    async def _size(self, task_id: str) -> int:
        await self.workspaces.measure(task_id)
        return self.workspaces.sizes.get(task_id, 0)

    async def prune(
        self, *, older_than_s: float | None = None, merged: bool = False, dry_run: bool = False
    ) -> list[Entry]:
        """Remove the worktrees and branches of final tasks (those whose branch's last commit
        is older than `older_than_s`; only those merged into their repository's HEAD with
        `merged`); what was (or, with `dry_run`, would be) removed."""
        chosen = []
        for entry in await self.entries():
            if entry.state not in _FINAL:
                continue
            if older_than_s is not None and (entry.age_s is None or entry.age_s < older_than_s):
                continue
            if merged and not (entry.branch and entry.repo
                               and await _merged(Path(entry.repo), entry.branch)):  # fmt: skip
                continue
            chosen.append(entry)
            if dry_run or entry.repo is None:
                continue
            repo = Path(entry.repo)
            if entry.path is not None:
                await self.trees.remove(repo, entry.task_id)
                await self.workspaces.measure(entry.task_id)
            if entry.branch and await Git(repo).rev(f"refs/heads/{entry.branch}"):
                await self.trees.delete_branch(repo, entry.branch)
        return chosen


def _records(store: Store) -> dict[str, WorkspaceRecord]:
    """The latest worktree record of each task that ran in a worktree."""
    found = {}
    for task_id, text in store.workspaces_of(None).items():
        record = WorkspaceRecord.from_json(json.loads(text))
        if record.mode == "worktree":
            found[task_id] = record
    return found


async def _committed_at(repo: Path, branch: str) -> float | None:
    found = await Git(repo).run(
        "log", "-1", "--format=%ct", f"refs/heads/{branch}", "--", ok=(0, 128)
    )
    return float(found.text) if found.code == 0 and found.text.isdigit() else None


async def _merged(repo: Path, branch: str) -> bool:
    found = await Git(repo).run(
        "merge-base", "--is-ancestor", f"refs/heads/{branch}", "HEAD", ok=(0, 1, 128)
    )
    return found.code == 0


__all__ = ["Entry", "Inventory", "repository_of"]
