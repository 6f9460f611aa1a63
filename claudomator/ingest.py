"""The one ingest path: task files to recorded tasks, and claimed files to their place.

- `new_tasks`: the tasks of one parsed file as the store records them — for every source (the
  inbox, a git source, an API body, `claudomator run`).
- `Ingest.record`: claimed files (staged in the spool) parsed, their tasks and places (`queued/`,
  or `rejected/` with the reason) committed in one transaction, then the files moved there.
- `Ingest.place`: the one mover of a recorded file out of staging, and the one writer of a
  rejected file's `.error` — used by `record`, by a refused version, and by the repair of a
  claim cut short.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from claudomator import failpoint
from claudomator.config import Config
from claudomator.errors import DatabaseUnavailable, FieldError, TaskFileError
from claudomator.mirror import fingerprint
from claudomator.records import Event
from claudomator.spool import Spool
from claudomator.store.db import NewTask, Store
from claudomator.task import PRIORITY_RANK
from claudomator.taskfile import ParsedFile, parse_file
from claudomator.workdir import absolute_file, confine, settle_file
from claudomator.workspace import Mode

log = structlog.get_logger("claudomator.intake")


@dataclass
class Claim:
    """A file taken into staging, about to be ingested."""

    file_id: str
    rel: str  # relative to where it was found
    staged: Path
    folder: str  # where it was found: inbox, queued or running (repair), or "@<source name>"
    provenance: dict[str, str] | None = None  # a git source's: commit, author, path, blob
    base_dir: Path | None = None  # a checkout: working_dir defaults to it and must stay inside

    @property
    def source(self) -> str:
        return self.folder if self.folder.startswith("@") else "inbox"

    @property
    def spool_rel(self) -> str:
        """Its path in the spool folders: sources other than the inbox live under `@name/`."""
        return f"{self.folder}/{self.rel}" if self.folder.startswith("@") else self.rel

    @property
    def display(self) -> str:
        return f"{self.folder}/{self.rel}"


def new_tasks(
    parsed: ParsedFile,
    *,
    source: str,
    source_path: str = "",
    held: bool = False,
    dispatcher: str = "",
    provenance_json: str = "{}",
) -> list[NewTask]:
    """The tasks of one parsed file as the store records them."""
    return [
        NewTask(
            name=spec.name,
            spec_json=spec.model_dump_json(),
            priority=spec.priority,
            priority_rank=PRIORITY_RANK[spec.priority],
            tags=list(spec.tags),
            depends_on=list(spec.depends_on),
            retry_json=spec.retry.model_dump_json(),
            source=source,
            source_path=source_path or parsed.path,
            held=held,
            dispatcher=dispatcher,
            provenance_json=provenance_json,
            batch_budget_usd=parsed.budget_usd or 0.0,
        )
        for spec in parsed.tasks
    ]


# one file's entry in a recording transaction: file id, tasks, folder, name, error
Entry = tuple[str, list[NewTask], str, str, str]


class Ingest:
    def __init__(
        self,
        config: Config,
        store: Store,
        spool: Spool,
        publish: Callable[[Iterable[Event]], None],
    ) -> None:
        self.config, self.store, self.spool, self.publish = config, store, spool, publish

    def record(self, claims: list[Claim]) -> None:
        """Parse staged files; record tasks and places in one transaction; then move the files."""
        entries: list[Entry] = []
        fingerprints: dict[str, str] = {}
        names: set[str] = set()
        for claim in claims:
            tasks, error = self._parse(claim, names)
            folder = "rejected" if error else "queued"
            name = self.spool.free_name(folder, claim.spool_rel)
            with contextlib.suppress(FileNotFoundError):
                fingerprints[claim.file_id] = fingerprint(os.lstat(claim.staged))
            entries.append((claim.file_id, tasks, folder, name, error))
        try:
            _, events = self.store.ingest(entries, fingerprints)
        except (DatabaseUnavailable, OSError):
            raise  # nothing recorded: the claims are ingested again at the next sweep
        except Exception as e:  # e.g. a dependency that vanished meanwhile: reject file by file
            log.warning("intake.batch_failed", error=repr(e))
            if len(claims) > 1:
                for claim in claims:
                    self.record([claim])
                return
            claim = claims[0]
            error = str(FieldError(claim.display, 0, 0, "", str(e)))
            name = self.spool.free_name("rejected", claim.spool_rel)
            entries = [(claim.file_id, [], "rejected", name, error)]
            _, events = self.store.ingest(entries, fingerprints)
        failpoint.reached("recorded")
        failed: OSError | None = None  # a move that failed is done again by `finish_claims`
        for claim, (file_id, _, folder, name, error) in zip(claims, entries, strict=True):
            try:
                self.place(file_id, claim.staged, folder, name, error, claim.display)
            except OSError as e:
                failed = failed or e
        self.publish(events)
        if failed is not None:
            raise failed

    def refuse(self, claim: Claim, reason: str, data: bytes) -> None:
        """A version that never runs (refused before parsing, its file row already recorded):
        its place in `rejected/` is committed before any copy is staged, so a crash at any
        point may lose the copy but never lets the repair of claims run it."""
        error = f"{claim.display}: {reason}"
        name = self.spool.free_name("rejected", claim.spool_rel)
        _, events = self.store.ingest([(claim.file_id, [], "rejected", name, error)])
        staged = self.spool.stage_bytes(claim.staged.name, data)
        self.place(claim.file_id, staged, "rejected", name, error, claim.display)
        self.publish(events)

    def place(
        self, file_id: str, staged: Path, folder: str, name: str, error: str, display: str
    ) -> str:
        """Move a recorded file from staging to its place (`queued/` or `rejected/`, never
        overwriting: its record follows a new name), the reason beside a rejected one."""
        placed = self.spool.place(staged, folder, name)
        if placed != name:
            self.store.set_file(file_id, name=placed)
        if error:
            self.spool.write_error(placed, error)
            log.warning("intake.rejected", file=display, reason=error)
        else:
            log.info("intake.queued", file=display, name=placed)
        return placed

    def _workspace_mode(self, source: str) -> Mode:
        """Where the tasks of `source` that set no workspace run: a git source's own default,
        else `claude.workspace`."""
        for git in self.config.sources:
            if source == f"@{git.name}":
                return git.workspace
        return self.config.workspace_mode

    def _parse(self, claim: Claim, names: set[str]) -> tuple[list[NewTask], str]:
        """The tasks of one staged file, or why it is rejected. `names`: the task names of the
        files before it in the same transaction (a dependency may name them)."""
        if self.spool.kind(claim.staged) != "regular":
            return (
                [],
                f"{claim.display}: not a regular file (a link or a special file is never read)",
            )
        try:
            parsed = parse_file(
                claim.staged,
                display_path=claim.display,
                known_name=lambda n: n in names or self.store.resolve_name(n) is not None,
                unknown_dependency="error",
                max_bytes=self.config.max_file_bytes,
            )
            if claim.base_dir is None:  # a relative working_dir: from claude.working_dir
                parsed = absolute_file(parsed, self.config.default_working_dir())
            specs = [confine(t, claim.base_dir, self.config.allowed_roots) for t in parsed.tasks]
            parsed = settle_file(
                dataclasses.replace(parsed, tasks=specs),
                self._workspace_mode(claim.source),
                self.config.default_working_dir(),
            )
        except TaskFileError as e:
            return [], e.message
        except ValueError as e:
            return [], f"{claim.display}: {e}"
        names.update(t.name for t in parsed.tasks)
        return new_tasks(
            parsed,
            source=claim.source,
            source_path=claim.rel,
            provenance_json=json.dumps(claim.provenance or {}),
        ), ""


__all__ = ["Claim", "Entry", "Ingest", "new_tasks"]
