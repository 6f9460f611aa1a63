"""The workspaces of the executions of this node: which queued tasks may start beside those
running (a folder in use, a branch in use, the disk limit: `workspace.admit` decides), and a
worktree task's worktree from its making to its removal.

    prepare   the worktree made (or found again) on the task's branch, its setup run when new;
              the folder claude runs in, or why the execution fails before claude starts
    conclude  what claude left committed, the branch's record and diff.patch, the push
    release   the worktree removed once its task is final (unless `keep`); the branch stays

The branch starts from `base`, else from a dependency's branch when a `depends_on` task ran in
a worktree of the same repository, else from the commit that asked for the task (a git
source), else from the repository's HEAD; a later execution of the task continues its branch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from claudomator.command import build_env
from claudomator.config import Config
from claudomator.datadir import DIR_MODE
from claudomator.logfiles import execution_logs
from claudomator.shell import run_shell
from claudomator.sources.gitplan import GitError
from claudomator.store.db import Store
from claudomator.task import TaskSpec
from claudomator.workdir import git_repository, within, working_dir
from claudomator.workspace import (
    Admitted,
    Occupant,
    Workspace,
    WorkspaceRecord,
    admit,
    branch_name,
    disk_wait,
    in_worktree,
)
from claudomator.worktree import Attached, Worktrees, repo_root, size_on_disk

log = structlog.get_logger("claudomator.workspaces")

DIFF, SETUP_LOG = "diff.patch", "setup.log"  # in the execution's folder
_KNOWN_MAX = 10_000  # footprints remembered (a task's config never changes)


@dataclass(frozen=True)
class Prepared:
    """Where an execution runs: `cwd` in its worktree (None: its working_dir, shared), or why
    it fails before claude starts."""

    workspace: Workspace
    working_dir: Path
    tree: Attached | None = None
    cwd: Path | None = None
    failure: str | None = None


class Workspaces:
    def __init__(self, config: Config, store: Store, node_id: str) -> None:
        self.config, self.store, self.node_id = config, store, node_id
        self.trees = Worktrees(config.data_dir.workspaces)
        self.sizes: dict[str, int] = {}  # task id -> bytes its worktree takes on disk
        self._known: dict[str, Occupant] = {}

    # -- admission ---------------------------------------------------------------------------

    def footprint(self, task_id: str, spec: TaskSpec) -> Occupant:
        """Where the task would run, as far as overlap goes: its working_dir (links resolved),
        or its own worktree folder and branch in its repository (remembered)."""
        place = self._place(spec)
        if self._workspace(spec).mode == "worktree":
            branch = branch_name(self.config.branch_prefix, spec.name, task_id)
            folder = Path(os.path.realpath(self.trees.path_of(task_id)))
            found = Occupant(task_id, folder, branch, git_repository(place))
        else:
            found = Occupant(task_id, place)
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[task_id] = found
        return found

    def _place(self, spec: TaskSpec) -> Path:
        """The task's working_dir, links resolved."""
        return Path(os.path.realpath(working_dir(spec, self.config)))

    def _workspace(self, spec: TaskSpec) -> Workspace:
        """The task's workspace (one recorded before the field was settled: the default's)."""
        return spec.workspace or Workspace(mode=self.config.workspace_mode)

    def footprints(
        self, task_ids: Sequence[str], configs: Callable[[Sequence[str]], Mapping[str, str]]
    ) -> list[Occupant]:
        """The footprints of `task_ids`, reading (by `configs`) only the tasks not seen yet."""
        missing = [t for t in task_ids if t not in self._known]
        read = configs(missing) if missing else {}
        specs = {k: TaskSpec.model_validate_json(v) for k, v in read.items()}
        return [
            self._known[t] if t in self._known else self.footprint(t, specs[t])
            for t in task_ids
            if t in self._known or t in specs
        ]

    def admission(
        self,
        running: Sequence[str],
        configs: Callable[[Sequence[str]], Mapping[str, str]],
        everywhere: Callable[[], Sequence[str]] | None = None,
    ) -> Round:
        """One start's admission (`Store.start`), beside the tasks `running` on this node (a
        worktree is this node's: `everywhere` is not needed)."""
        return Round(self, running, configs)

    def disk_wait(self) -> str | None:
        return disk_wait(self.sizes.values(), self.config.max_disk or None)

    async def measure(self, task_id: str) -> None:
        """What the task's worktree takes on disk now (in a thread: it walks the folder)."""
        path = self.trees.path_of(task_id)
        size = await asyncio.to_thread(size_on_disk, path) if path.exists() else 0
        if size:
            self.sizes[task_id] = size
        else:
            self.sizes.pop(task_id, None)

    # -- one execution -----------------------------------------------------------------------

    async def prepare(self, task_id: str, execution_id: str, spec: TaskSpec) -> Prepared:
        place, workspace = self._place(spec), self._workspace(spec)
        done = Prepared(workspace, place)
        if workspace.mode == "shared":
            return done
        if not within(place, self.config.allowed_roots):
            failure = f"working_dir {str(place)!r} is outside claude.allowed_roots"
            return dataclasses.replace(done, failure=failure)
        repo = await repo_root(place) if _is_dir(place) else None
        if repo is None:
            failure = f"workspace: working_dir {str(place)!r} is not inside a git repository"
            return dataclasses.replace(done, failure=failure)
        branch, base = self._branch_and_base(task_id, spec, workspace, repo)
        try:
            tree = await self.trees.attach(repo, task_id, branch, base)
        except (GitError, ValueError) as e:
            return dataclasses.replace(done, failure=f"workspace: {e}")
        cwd = _made(Path(in_worktree(place, repo, tree.path)))  # git may not track it
        done = dataclasses.replace(done, tree=tree, cwd=cwd)
        log.info("workspace.attached", task_id=task_id, path=str(tree.path), branch=branch,
                 created=tree.created)  # fmt: skip
        if tree.created and workspace.setup:
            folder = execution_logs(self.config.data_dir.executions, execution_id).folder
            _made(folder)
            setup = await run_shell(
                cwd,
                workspace.setup,
                folder / SETUP_LOG,
                timeout_s=self.config.setup_timeout_s,
                env=build_env(spec, execution_id),
            )
            if setup.timed_out:
                done = dataclasses.replace(done, failure=f"setup timed out (see {SETUP_LOG})")
            elif not setup.ok:
                failure = f"setup failed with exit code {setup.exit_code} (see {SETUP_LOG})"
                done = dataclasses.replace(done, failure=failure)
        await self.measure(task_id)
        return done

    def _branch_and_base(
        self, task_id: str, spec: TaskSpec, workspace: Workspace, repo: Path
    ) -> tuple[str, str | None]:
        """The task's branch (as its last execution left it, else a new name) and the ref it
        starts from (see the module's docstring)."""
        row = self.store.task_row(task_id)
        dependencies: list[str] = json.loads(row["depends_on_ids_json"] or "[]") if row else []
        records = {
            key: WorkspaceRecord.from_json(json.loads(text))
            for key, text in self.store.workspaces_of([task_id, *dependencies]).items()
        }
        own = records.get(task_id)
        if own is not None and own.branch and own.base:
            return own.branch, own.base
        branch = branch_name(self.config.branch_prefix, spec.name, task_id)
        if workspace.base:
            return branch, workspace.base
        for dependency in dependencies:
            record = records.get(dependency)
            if record and record.branch and record.repo and Path(record.repo) == repo:
                return branch, f"refs/heads/{record.branch}"
        provenance = json.loads(row["provenance_json"] or "{}") if row else {}
        return branch, provenance.get("commit") or None

    async def conclude(
        self,
        prepared: Prepared,
        spec: TaskSpec,
        task_id: str,
        execution_id: str,
        *,
        succeeded: bool,
    ) -> tuple[WorkspaceRecord, str | None]:
        """The execution's workspace record once claude ended: in a worktree, what it left
        committed (unless `commit: false`) and the branch pushed after a success. The second
        value says why the work could not be kept (a failed commit), failing the execution."""
        tree, workspace = prepared.tree, prepared.workspace
        if tree is None:
            return WorkspaceRecord(mode=workspace.mode, path=str(prepared.working_dir)), None
        failure = None
        if workspace.commit and prepared.failure is None:  # claude ran: what it left is work
            try:
                await self.trees.commit(tree.path, spec.name, task_id, execution_id)
            except GitError as e:
                failure = f"workspace: cannot commit what claude left: {e}"
        folder = execution_logs(self.config.data_dir.executions, execution_id).folder
        try:
            record = await self.trees.record(tree, folder / DIFF)
        except GitError as e:
            record = WorkspaceRecord(mode="worktree", path=str(tree.path), repo=str(tree.repo),
                                     branch=tree.branch, base=tree.base)  # fmt: skip
            failure = failure or f"workspace: {e}"
        record = dataclasses.replace(record, node=self.node_id or None)
        if succeeded and failure is None and workspace.push:
            error = await self.trees.push(tree.repo, tree.branch, workspace.push)
            if error is not None:
                log.warning("workspace.push_failed", task_id=task_id, branch=tree.branch,
                            error=error)  # fmt: skip
                record = dataclasses.replace(record, push_error=error)
        await self.measure(task_id)
        return record, failure

    async def release(self, task_id: str, prepared: Prepared) -> None:
        """The worktree of a task that is final removed, unless `keep`; its branch stays."""
        if prepared.tree is None or prepared.workspace.keep:
            return
        try:
            await self.trees.remove(prepared.tree.repo, task_id)
        except GitError as e:  # recovery or `workspaces prune` tries again
            log.warning("workspace.remove_failed", task_id=task_id, error=str(e))
        await self.measure(task_id)


class Round:
    """One start's admission: footprints of the running and offered tasks, then `admit`."""

    def __init__(
        self,
        workspaces: Workspaces,
        running: Sequence[str],
        configs: Callable[[Sequence[str]], Mapping[str, str]],
    ) -> None:
        self.workspaces, self.configs = workspaces, configs
        self.disk = workspaces.disk_wait()
        self.occupied = workspaces.footprints(running, configs)

    def consider(self, candidates: Sequence[str], slots: int) -> Admitted:
        offered = self.workspaces.footprints(candidates, self.configs)
        verdict = admit(
            ((o, o.branch is not None and not Path(o.directory).exists()) for o in offered),
            self.occupied,
            slots,
            self.disk,
        )
        chosen = set(verdict.allowed)
        self.occupied += [o for o in offered if o.task_id in chosen]
        return verdict


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def _made(folder: Path) -> Path:
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return folder


__all__ = ["Prepared", "Round", "Workspaces"]
