"""What a git source's commits do to the spool and the store: new versions offered to the intake,
not-started tasks withdrawn, renamed files followed, refused versions put in `rejected/`. No git
here (`gitpass` reads the commits; `gitplan` decides); the calls upward are the `Hooks`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import structlog

from claudomator.sources.gitplan import Action, Commit, Follow, Offer, Reject, Withdraw
from claudomator.sources.links import Links
from claudomator.state import State
from claudomator.stored import StoredFile

log = structlog.get_logger("claudomator.sources.git")

NOT_STARTED = (State.PENDING, State.QUEUED)


class Applier:
    """Carries out one source's actions. `earlier` (per pass) names the files from before it."""

    def __init__(self, name: str, root: Path, links: Links, max_bytes: int) -> None:
        self.name, self.key, self.root = name, "@" + name, root
        self.store, self.spool, self.hooks = links.store, links.spool, links.hooks
        self.max_bytes = max_bytes

    async def apply(
        self,
        commit: Commit,
        actions: Sequence[Action],
        contents: dict[str, tuple[int, bytes]],
        earlier: set[str],
    ) -> int:
        """Carry out one commit's actions: withdrawals and renames, then (once the folders have
        followed them) the new versions. Returns how many versions were offered for the first
        time. Interrupted, it is simply done again: each step is idempotent."""
        at: dict[str, list[StoredFile]] = {}  # this source's open files by path
        if any(isinstance(a, Withdraw | Follow) for a in actions):
            for row in self.store.files(["queued", "running"]):
                if row["source"] == self.key:
                    at.setdefault(row["rel_path"], []).append(row)
            for action in actions:
                if isinstance(action, Withdraw):
                    for row in at.get(action.rel, []):
                        blob = json.loads(row["provenance_json"] or "{}").get("blob")
                        if (
                            not action.earlier_only or row["id"] in earlier
                        ) and blob != action.keep:
                            self._withdraw(row, action.reason)
                elif isinstance(action, Follow):
                    moved = at.pop(action.old_rel, [])
                    for row in moved:
                        self._follow(row, action.new_rel)
                    at.setdefault(action.new_rel, []).extend(moved)
            await asyncio.sleep(0)  # the cancelled files leave queued/ (their places are free)
        offered = 0
        for action in actions:
            if isinstance(action, Reject):
                self.reject(commit, action, contents[action.blob][1])
            elif isinstance(action, Offer):
                size, data = contents[action.blob]
                if size > self.max_bytes:
                    reason = f"{size} bytes, more than intake.max_file_bytes ({self.max_bytes})"
                    self.reject(commit, Reject(action.rel, action.path, action.blob, reason), data)
                    continue
                offered += self.hooks.offer(
                    self.name,
                    action.rel,
                    data,
                    provenance=commit.provenance(self.name, action.path, action.blob),
                    base_dir=self.root,
                    version=(action.blob, commit.sha),
                )
        return offered

    def _withdraw(self, row: StoredFile, reason: str) -> None:
        for task in self.store.file_tasks(row["id"]):
            state = State(task["state"])
            if state in NOT_STARTED:
                self.hooks.cancel_if(task["id"], [state], reason)

    def _follow(self, row: StoredFile, new_rel: str) -> None:
        """A renamed task file: its tasks and its spool copy follow the new path."""
        self.store.set_source_path(row["id"], new_rel)
        folder = row["folder"]
        placed = self.spool.move(folder, row["name"], folder, f"{self.key}/{new_rel}")
        if placed is not None:
            self.store.set_file(row["id"], name=placed)
        log.info("source.renamed", source=self.name, file=row["rel_path"], to=new_rel)

    def reject(self, commit: Commit, action: Reject, data: bytes) -> bool:
        """A version that never runs: into `rejected/@name/<rel>` with the reason."""
        return self.hooks.refuse(
            self.name,
            action.rel,
            data,
            provenance=commit.provenance(self.name, action.path, action.blob),
            reason=action.reason,
            version=(action.blob, commit.sha),
        )


__all__ = ["NOT_STARTED", "Applier"]
