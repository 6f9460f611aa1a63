"""A task's git worktree, from its making to its removal: `<workspaces>/<task id>` on the task's
own branch, the commit of what claude left, the branch's figures and diff,
the push (never forced), removal (the branch stays) and pruning. git runs only through
`sources.gitcmd.Git`, in the repository or in the worktree, never in the person's checkout's
index or files: a worktree has its own.

The commit is claudomator's own, so it carries an identity of its own (a machine may have none
configured), is never signed and runs no commit hooks; git's automatic maintenance stays off,
since several worktrees of one repository commit at once."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from claudomator.datadir import DIR_MODE, create_private
from claudomator.sources.gitcmd import Git, real_path
from claudomator.sources.gitplan import GitError
from claudomator.workspace import WorkspaceRecord, commit_message

IDENTITY = ("claudomator", "claudomator@localhost")
NO_MAINTENANCE = ("-c", "maintenance.auto=false", "-c", "gc.auto=0")
PUSH_TIMEOUT_S = 300.0
_SHORTSTAT = re.compile(r"(\d+) (file|insertion|deletion)")


@dataclass(frozen=True)
class Listed:
    """One worktree as `git worktree list` tells it."""

    path: Path
    head: str | None = None
    branch: str | None = None  # short name; None when detached (or bare)
    bare: bool = False
    locked: str | None = None  # why it is locked ("" for no reason; "initializing": being made)
    prunable: bool = False  # its folder is gone: `git worktree prune` forgets it


@dataclass(frozen=True)
class Branch:
    """A branch under the prefix: its name, its commit and when that was committed."""

    name: str
    head: str
    committed_at: int  # seconds since the epoch


@dataclass(frozen=True)
class Attached:
    """A task's worktree, ready: where, on what branch of which repository, the commit the
    branch started from, and whether the folder was made just now (so setup is due)."""

    repo: Path
    path: Path
    branch: str
    base: str
    created: bool


def parse_worktrees(text: str) -> list[Listed]:
    """`git worktree list --porcelain` (blocks of `key value` lines) as records."""
    found: list[Listed] = []
    for block in text.split("\n\n"):
        fields = {k: v for k, _, v in (line.partition(" ") for line in block.splitlines())}
        if "worktree" in fields:
            branch = fields.get("branch")
            found.append(
                Listed(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    bare="bare" in fields,
                    locked=fields.get("locked"),
                    prunable="prunable" in fields,
                )
            )
    return found


def parse_shortstat(text: str) -> tuple[int, int, int]:
    """`git diff --shortstat` as (files changed, insertions, deletions)."""
    counts = {"file": 0, "insertion": 0, "deletion": 0}
    for number, kind in _SHORTSTAT.findall(text):
        counts[kind] = int(number)
    return counts["file"], counts["insertion"], counts["deletion"]


async def repo_root(path: Path) -> Path | None:
    """The top folder of the git checkout `path` is in, or the bare repository `path` is (links
    resolved); None when neither."""
    git = Git(Path(path))
    top = await git.toplevel()
    if top is not None:
        return top
    bare = await git.run("rev-parse", "--is-bare-repository", "--absolute-git-dir", ok=(0, 128))
    lines = bare.text.splitlines() if bare.code == 0 else []
    if lines[:1] == ["true"] and len(lines) == 2 and real_path(lines[1]) == real_path(path):
        return real_path(lines[1])
    return None


class Worktrees:
    """The worktrees under one `workspaces` folder, one per task, named by task id."""

    def __init__(self, workspaces: Path, *, identity: tuple[str, str] = IDENTITY) -> None:
        self.workspaces = workspaces
        self.identity = identity

    def path_of(self, task_id: str) -> Path:
        if not task_id or "/" in task_id or task_id.startswith("."):
            raise ValueError(f"task id {task_id!r} cannot name a folder")
        return self.workspaces / task_id

    async def attach(
        self, repo: Path, task_id: str, branch: str, base: str | None = None
    ) -> Attached:
        """The task's worktree on `branch`: made on a new branch from `base` (default: the
        repository's HEAD), or on the branch as an earlier execution left it, its folder made
        again if it was removed. `base` of an existing branch gives the commit it started from
        (their merge base)."""
        git = Git(real_path(repo))
        await self._check_branch(git, branch)
        _check_revision(base)
        self.workspaces.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        path = real_path(self.workspaces) / self.path_of(task_id).name
        async with git.worktree_lock():
            listed = {real_path(w.path): w for w in await self._list(git)}
            mine = listed.get(path)
            if mine is not None and mine.locked == "initializing":  # its making was cut short
                await git.run("worktree", "remove", "--force", "--force", str(path))
            elif mine is not None and not mine.prunable and path.exists():
                if mine.branch != branch:
                    on = mine.branch or "a detached HEAD"
                    raise GitError(f"{path} is a worktree on {on}, not on {branch}")
                return Attached(git.root, path, branch, await self._base(git, branch, base), False)
            if any(w.prunable or not w.path.exists() for w in listed.values()):
                await git.run("worktree", "prune")
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise GitError(f"{path} exists and is not a worktree of {git.root}")
            if await git.rev(f"refs/heads/{branch}") is not None:
                await git.run(*NO_MAINTENANCE, "worktree", "add", "--quiet", str(path), branch)
                return Attached(git.root, path, branch, await self._base(git, branch, base), True)
            start = await git.rev(base or "HEAD")
            if start is None:
                raise GitError(f"base {base or 'HEAD'!r} names no commit in {git.root}")
            await git.run(
                *NO_MAINTENANCE, "worktree", "add", "--quiet", "--no-track", "-b", branch,
                str(path), start,
            )  # fmt: skip
            return Attached(git.root, path, branch, start, True)

    async def commit(
        self, path: Path, task_name: str, task_id: str, execution_id: str
    ) -> str | None:
        """Commit everything uncommitted in the worktree at `path` (ignored files aside); the
        new commit, or None when nothing had changed."""
        git = Git(path)
        await git.run("add", "--all")
        if (await git.run("diff", "--cached", "--quiet", ok=(0, 1))).code == 0:
            return None
        name, email = self.identity
        await git.run(
            "-c", f"user.name={name}", "-c", f"user.email={email}", "-c", "commit.gpgsign=false",
            *NO_MAINTENANCE, "commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-F", "-",
            input=commit_message(task_name, task_id, execution_id).encode(),
        )  # fmt: skip
        return await git.rev("HEAD")

    async def record(self, tree: Attached, diff_path: Path | None = None) -> WorkspaceRecord:
        """What the branch holds from its base to its head, the diff saved to `diff_path` (a
        new private file, or one rewritten)."""
        git = Git(tree.repo)
        head = await git.rev(f"refs/heads/{tree.branch}")
        if head is None:
            raise GitError(f"branch {tree.branch} is gone from {tree.repo}")
        span = f"{tree.base}..{head}"
        commits = int((await git.run("rev-list", "--count", span)).text or "0")
        diff = ("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative")
        stat = await git.run(*diff, "--shortstat", tree.base, head)
        files, insertions, deletions = parse_shortstat(stat.text)
        if diff_path is not None:
            with contextlib.suppress(FileExistsError):
                os.close(create_private(diff_path))
            await git.run(
                *diff, "--src-prefix=a/", "--dst-prefix=b/", f"--output={diff_path}",
                tree.base, head,
            )  # fmt: skip
        return WorkspaceRecord(
            mode="worktree", path=str(tree.path), repo=str(tree.repo), branch=tree.branch,
            base=tree.base, head=head,
            commits=commits, files_changed=files, insertions=insertions, deletions=deletions,
            diff_path=None if diff_path is None else str(diff_path),
        )  # fmt: skip

    async def push(
        self, repo: Path, branch: str, remote: str, *, timeout_s: float = PUSH_TIMEOUT_S
    ) -> str | None:
        """Push `branch` to the branch of that name on `remote`, never forced; None when it
        went, else what went wrong."""
        ref = f"refs/heads/{branch}"
        try:
            done = await Git(repo).run(
                "push", "--quiet", "--no-follow-tags", "--", remote, f"{ref}:{ref}",
                ok=range(256), timeout_s=timeout_s,
            )  # fmt: skip
        except GitError as e:
            return e.message
        if done.code == 0:
            return None
        said = [ln for ln in done.err.splitlines() if ln and not ln.startswith(("To ", "hint:"))]
        return "; ".join(said)[-500:] or f"git push exited with {done.code}"

    async def remove(self, repo: Path, task_id: str) -> bool:
        """Remove the task's worktree, uncommitted changes and all; its branch stays. Whether
        there was one to remove."""
        git = Git(real_path(repo))
        path = real_path(self.path_of(task_id))
        async with git.worktree_lock():
            for tree in await self._list(git):
                if real_path(tree.path) != path:
                    continue
                if tree.prunable or not path.exists():
                    await git.run("worktree", "prune")
                else:
                    await git.run("worktree", "remove", "--force", str(path))
                return True
        return False

    async def prune(self, repo: Path) -> list[Listed]:
        """Forget the worktrees whose folders are gone; the task worktrees that remain."""
        git = Git(real_path(repo))
        async with git.worktree_lock():
            await git.run("worktree", "prune")
        return await self.owned(git.root)

    async def owned(self, repo: Path) -> list[Listed]:
        """The repository's worktrees that are task worktrees (folders of `workspaces`)."""
        here = real_path(self.workspaces)
        return [w for w in await self.listed(repo) if real_path(w.path).parent == here]

    async def listed(self, repo: Path) -> list[Listed]:
        """Every worktree of the repository, its main checkout first."""
        git = Git(real_path(repo))
        async with git.worktree_lock():
            return await self._list(git)

    async def branches(self, repo: Path, prefix: str) -> list[Branch]:
        """The branches under `prefix`, by name."""
        found = await Git(repo).run(
            "for-each-ref", "--format=%(refname)%00%(objectname)%00%(committerdate:unix)",
            "--sort=refname", f"refs/heads/{prefix.strip('/')}/",
        )  # fmt: skip
        out = []
        for line in found.text.splitlines():
            ref, head, when = line.split("\0")
            out.append(Branch(ref.removeprefix("refs/heads/"), head, int(when or 0)))
        return out

    async def commits_ahead(self, repo: Path, branch: str, base: str) -> int:
        """How many commits `branch` has that `base` has not (0 when there is no such branch)."""
        git = Git(repo)
        head = await git.rev(f"refs/heads/{branch}")
        if head is None:
            return 0
        _check_revision(base)
        return int((await git.run("rev-list", "--count", f"{base}..{head}")).text or "0")

    async def branch_has_commits(self, repo: Path, branch: str, base: str) -> bool:
        return await self.commits_ahead(repo, branch, base) > 0

    async def delete_branch(self, repo: Path, branch: str) -> None:
        """Delete `branch`, merged or not; git refuses while a worktree has it checked out."""
        git = Git(real_path(repo))
        await self._check_branch(git, branch)
        async with git.worktree_lock():  # git reads every worktree to see where it is out
            await git.run("branch", "--quiet", "-D", branch)

    async def _list(self, git: Git) -> list[Listed]:
        return parse_worktrees((await git.run("worktree", "list", "--porcelain")).text)

    async def _check_branch(self, git: Git, branch: str) -> None:
        if branch.startswith("-"):
            raise GitError(f"{branch!r} is not a branch name")
        await git.run("check-ref-format", f"refs/heads/{branch}")

    async def _base(self, git: Git, branch: str, base: str | None) -> str:
        """The commit `branch` started from, seen from `base` (default HEAD): their merge base,
        else the branch's own head."""
        found = await git.run("merge-base", base or "HEAD", f"refs/heads/{branch}", ok=(0, 1))
        return found.text or (await git.rev(f"refs/heads/{branch}") or "")


def _check_revision(name: str | None) -> None:
    if name is not None and (not name or name.startswith("-")):
        raise GitError(f"{name!r} is not a revision")


def size_on_disk(path: Path) -> int:
    """Bytes the files under `path` take on disk (links not followed; vanishing files
    skipped). Blocking: call it in a thread."""
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


__all__ = [
    "IDENTITY",
    "Attached",
    "Branch",
    "Listed",
    "Worktrees",
    "parse_shortstat",
    "parse_worktrees",
    "repo_root",
    "size_on_disk",
]
