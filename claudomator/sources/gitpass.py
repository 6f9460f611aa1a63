"""One pass over a git source: every commit its branch gained since the last pass, carried out.

1. the tip is `git rev-parse refs/heads/<branch>`; the new commits are
   `git rev-list --first-parent --reverse <tip> ^<last ingested>` (a merge counts as its diff
   against its first parent);
2. their objects (`git cat-file --batch`) give author, commit time and signature; their changes
   below `subdir` come from `git diff-tree --stdin -r -z -M` (renames detected); file contents
   are read by blob id, again with `git cat-file --batch`;
3. commit by commit, `gitplan.plan` turns changes into actions and the `Applier` carries them
   out. The source's `last_commit` advances once the whole pass is carried out, so a pass
   interrupted by a crash or a stop is done again, harmlessly (a version is offered at most
   once, ever) and with the same outcome (what counts as "from before this pass" is decided by
   commit).

The first sight of a source (or of its branch) is a baseline: nothing runs, unless
`ingest_existing`. Trust (`allowed_authors`, `require_signed`) is checked per commit; a commit
that fails it changes nothing, and its files go to `rejected/@<name>/` with the reason."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from claudomator.config import GitSource
from claudomator.sources.gitapply import Applier
from claudomator.sources.gitcmd import Git
from claudomator.sources.gitplan import (
    Action,
    Commit,
    Offer,
    Reject,
    author_verdict,
    parse_commit,
    parse_diff_tree,
    parse_tree,
    plan,
    refuse,
    signature_verdict,
)
from claudomator.sources.gitreport import Report
from claudomator.spool import is_watched_path

if TYPE_CHECKING:
    from claudomator.store.db import Store

log = structlog.get_logger("claudomator.sources.git")

CHUNK = 256  # commits read per round of cat-file and diff-tree
DIFF = ("diff-tree", "--stdin", "-r", "-z", "-M", "--raw", "--no-abbrev", "--root")


class GitPass:
    """Passes over one source's branch; each `run` ingests what the branch gained."""

    def __init__(
        self,
        source: GitSource,
        git: Git,
        store: Store,
        report: Report,
        applier: Applier,
        max_bytes: int,
    ) -> None:
        self.source, self.git, self.store = source, git, store
        self.report, self.applier, self.max_bytes = report, applier, max_bytes
        self.key = "@" + source.name

    async def run(self) -> str:
        """Ingest every commit the branch gained since the last pass; returns what stops that
        ("" when nothing does)."""
        await self.git.open()
        last = self.report.last_commit()
        tip = await self.git.rev(f"refs/heads/{self.source.branch}")
        if tip is None:
            return f"branch {self.source.branch} not found" + (" (it was there)" if last else "")
        if not last:
            await self._baseline(tip)
        elif tip != last and await self.git.rev(last) is None:
            self.report.notice = (
                f"the last ingested commit {last[:12]} is gone from the checkout: "
                f"{tip[:12]} is the new baseline, nothing in between ran"
            )
            log.warning("source.rebased", source=self.source.name, last=last, tip=tip)
            self.report.write(last_commit=tip)
        elif tip != last:
            listed = await self.git.run("rev-list", "--first-parent", "--reverse", tip, "^" + last)
            commits = listed.text.split()
            # files from before this pass: a changed file withdraws only those (told apart by
            # commit, so that a pass redone after a crash decides as the first attempt did)
            walked = set(commits)
            earlier = {
                row["id"]
                for row in self.store.files(["queued", "running"])
                if row["source"] == self.key
                and json.loads(row["provenance_json"] or "{}").get("commit") not in walked
            }
            self.report.notice = ""
            rejected: list[str] = []
            for i in range(0, len(commits), CHUNK):
                rejected += await self._ingest(commits[i : i + CHUNK], earlier)
                notice = "; ".join(rejected[-3:])
                if len(rejected) > 3:
                    notice = f"{len(rejected)} commits rejected, the last: {notice}"
                self.report.notice = notice
            self.report.write(last_commit=tip)
            log.info("source.ingested", source=self.source.name, commits=len(commits), tip=tip)
        return ""

    async def _ingest(self, shas: list[str], earlier: set[str]) -> list[str]:
        """Carry out commits in order; returns why commits were rejected."""
        objects = await self.git.objects(shas, 1 << 20)
        commits = [parse_commit(sha, objects[sha][1]) for sha in shas]
        lines = "".join(f"{c.sha} {c.parents[0]}\n" if c.parents else f"{c.sha}\n" for c in commits)
        pathspec = ("--", self.source.subdir) if self.source.subdir else ()
        diffs = parse_diff_tree((await self.git.run(*DIFF, *pathspec, input=lines.encode())).out)
        plans = [
            (c, plan(diffs.get(c.sha, []), self.source.subdir, c.sha, is_watched_path))
            for c in commits
        ]
        contents = await self._contents(a for _, p in plans for a in p)
        rejected = []
        for commit, actions in plans:
            if actions:
                reason = await self.trust(commit)
                if reason:
                    rejected.append(reason)
                    actions = refuse(actions, reason)
                await self.applier.apply(commit, actions, contents, earlier)
                await asyncio.sleep(0)  # let the pool and the API run between commits
        return rejected

    async def _baseline(self, tip: str) -> None:
        """First sight of the branch: its files are the baseline (they run with ingest_existing)."""
        offered = 0
        if self.source.ingest_existing:
            pathspec = ("--", self.source.subdir) if self.source.subdir else ()
            tree = await self.git.run("ls-tree", "-r", "-z", "--full-tree", tip, *pathspec)
            actions = plan(parse_tree(tree.out), self.source.subdir, tip, is_watched_path)
            if actions:
                commit = parse_commit(tip, (await self.git.objects([tip], 1 << 20))[tip][1])
                reason = await self.trust(commit)
                if reason:
                    self.report.notice, actions = reason, refuse(actions, reason)
                offered = await self.applier.apply(
                    commit, actions, await self._contents(actions), set()
                )
        self.report.write(last_commit=tip)
        log.info("source.baseline", source=self.source.name, commit=tip, offered=offered)

    async def _contents(self, actions: Iterable[Action]) -> dict[str, tuple[int, bytes]]:
        blobs = sorted({a.blob for a in actions if isinstance(a, Offer | Reject)})
        return await self.git.objects(blobs, self.max_bytes + 1) if blobs else {}

    async def trust(self, commit: Commit) -> str:
        """Why `commit` may not ask for runs ("" when it may): allowed_authors, then, with
        require_signed, `git verify-commit` against allowed_signers and allowed_keys."""
        source = self.source
        reason = author_verdict(commit.author, source.allowed_authors)
        if not reason and source.require_signed:
            if not commit.signed:
                reason = "not signed, and require_signed is on"
            else:
                signers = f"gpg.ssh.allowedSignersFile={source.allowed_signers or os.devnull}"
                verified = await self.git.run(
                    "-c", signers, "verify-commit", "--raw", commit.sha, ok=range(256)
                )
                reason = signature_verdict(verified.code, verified.err, source.allowed_keys)
        if not reason:
            return ""
        reason = f"commit {commit.sha[:12]} by {commit.author or '?'}: {reason}"
        log.warning("source.commit_rejected", source=source.name, reason=reason)
        return reason


__all__ = ["GitPass"]
