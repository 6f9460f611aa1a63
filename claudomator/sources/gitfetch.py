"""Fetch and fast-forward a source's branch from its remote, never reset.

`git fetch <remote> +refs/heads/B:refs/remotes/<remote>/B`, then B is fast-forwarded: with
`git merge --ff-only` when B is checked out in the checkout, and only while no tracked file has
uncommitted changes there; with a compare-and-swap `git update-ref` when B is checked out
nowhere. History that does not fast-forward is refused, and what went wrong is returned for the
source's `error`."""

from __future__ import annotations

from pathlib import Path

import structlog

from claudomator.config import GitSource
from claudomator.sources.gitcmd import Git, real_path

log = structlog.get_logger("claudomator.sources.git")

NO_MAINTENANCE = ("-c", "maintenance.auto=false", "-c", "gc.auto=0")


async def fetch_branch(git: Git, source: GitSource) -> str:
    """Fetch the branch and fast-forward it; returns what went wrong ("" when nothing did)."""
    await git.open()
    branch, remote = source.branch, source.remote
    tracking = f"refs/remotes/{remote}/{branch}"
    refspec = f"+refs/heads/{branch}:{tracking}"
    await git.run(
        *NO_MAINTENANCE, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote,
        refspec, timeout_s=max(60.0, source.fetch_interval_s),
    )  # fmt: skip
    theirs = await git.rev(tracking)
    ours = await git.rev(f"refs/heads/{branch}")
    if theirs is None or theirs == ours:
        return ""
    if ours is not None and not await git.is_ancestor(ours, theirs):
        if await git.is_ancestor(theirs, ours):
            return ""  # local commits not pushed yet: nothing to take
        log.warning("source.refused", source=source.name, ours=ours, theirs=theirs)
        return (
            f"refused: {remote}/{branch} ({theirs[:12]}) does not fast-forward from "
            f"{branch} ({ours[:12]}): history was rewritten (an amend and a force-push?) or "
            "has diverged; claudomator never resets, reconcile the checkout by hand"
        )
    where = await checked_out(git, branch)
    if where is None:
        message = f"claudomator: fast-forward from {remote}"
        await git.run("update-ref", "-m", message, f"refs/heads/{branch}", theirs, ours or "")
    elif where != git.root:
        return f"not fast-forwarded: {branch} is checked out in another worktree, {where}"
    elif (await git.run("status", "--porcelain", "--untracked-files=no")).out.strip():
        return f"not fast-forwarded to {theirs[:12]}: uncommitted changes in {git.root}"
    else:
        await git.run("merge", "--ff-only", "--quiet", "--no-stat", theirs)
    log.info("source.fast_forwarded", source=source.name, commit=theirs)
    return ""


async def checked_out(git: Git, branch: str) -> Path | None:
    """The worktree that has `branch` checked out, if any."""
    listed = await git.run("worktree", "list", "--porcelain")
    path: Path | None = None
    for line in listed.out.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            path = real_path(value)
        elif key == "branch" and value == f"refs/heads/{branch}":
            return path
    return None


__all__ = ["checked_out", "fetch_branch"]
