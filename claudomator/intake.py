"""The directory runner's intake: claims out of the inbox, task rows for valid files, rejections
with the reason beside them, and the folders kept mirroring the store.

Claim protocol, so that a crash anywhere is repaired at start:
1. the file is not being written (read lease; see `Spool.being_written`);
2. a `files` row records the claim (folder `staging`, the staged name) — committed;
3. one rename moves it into the private staging folder (the rename is the lock);
4. the staged copy is parsed; its tasks and the file's next place (`queued/<path>` or
   `rejected/<path>`) are committed in one transaction;
5. the file is moved there (never overwriting), `.error` written beside a rejected one.
After that the mirror (`claudomator.mirror`) keeps the file where its tasks' committed states
say: `queued/` until its first task starts, `running/` while one runs or may run again, then
`done/` with `<name>.result.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from claudomator import failpoint
from claudomator.errors import DatabaseUnavailable, FieldError, TaskFileError
from claudomator.ids import new_id
from claudomator.mirror import Mirror, fingerprint
from claudomator.spool import Spool, is_watched_path
from claudomator.state import State
from claudomator.task import TaskSpec
from claudomator.taskfile import ParsedFile, parse_file
from claudomator.workdir import within

if TYPE_CHECKING:
    from claudomator.service import Claudomator

log = structlog.get_logger("claudomator.intake")


@dataclass
class Claim:
    file_id: str
    rel: str  # relative to where it was found
    staged: Path
    folder: str  # where it was found: inbox, queued or running (repair), or "@<source name>"
    provenance: dict[str, Any] | None = None
    base_dir: Path | None = None  # a checkout: working_dir defaults to it and must stay inside

    @property
    def source(self) -> str:
        return self.folder if self.folder.startswith("@") else "inbox"

    @property
    def spool_rel(self) -> str:
        """Its path in the spool folders: sources other than the inbox live under `@name/`."""
        return f"{self.folder}/{self.rel}" if self.folder.startswith("@") else self.rel


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


class Intake:
    def __init__(self, service: Claudomator) -> None:
        self.service = service
        self.store = service.store
        self.spool = Spool(service.config.data_dir)
        self.spool.ensure()
        self.mirror = Mirror(self.store, self.spool)
        self.pending: set[str] = set()  # inbox paths still being written
        self.base_dirs: dict[str, Path] = {}  # "@name" -> checkout root, set by the sources

    # -- claims ------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Claim what the inbox holds (at start, periodically, after a watcher error)."""
        self.offer(list(self.spool.scan("inbox")))

    def offer(self, rels: Iterable[str], folder: str = "inbox") -> int:
        """Claim and ingest what is ready among `rels`; returns how many files were claimed."""
        ready: list[tuple[str, str]] = []
        for rel in dict.fromkeys(rels):
            if folder == "inbox" and not is_watched_path(rel):
                continue
            path = self.spool.folder(folder) / rel
            kind = self.spool.kind(path)
            if kind == "gone":
                self.pending.discard(rel)
                continue
            if kind == "regular" and self.spool.being_written(path):
                self.pending.add(rel)
                continue
            self.pending.discard(rel)
            ready.append((rel, new_id()))
        if not ready:
            return 0
        source = "inbox"
        self.store.add_files([(fid, source, rel, fid + "-" + Path(rel).name) for rel, fid in ready])
        claims, gone = [], []
        for rel, fid in ready:
            staged = self.spool.claim(rel, fid, folder)
            if staged is None:
                gone.append(fid)
            else:
                claims.append(Claim(fid, rel, staged, folder))
        self.store.drop_files(gone)
        failpoint.reached("claimed")
        self.ingest(claims)
        return len(claims)

    def offer_bytes(
        self,
        source: str,
        rel: str,
        data: bytes,
        *,
        provenance: dict[str, Any],
        base_dir: Path,
        version: tuple[str, str],
    ) -> bool:
        """A task file from a source other than the inbox (e.g. one version of a file in a git
        commit): a copy is staged, its version claimed (at most once, ever) together with the
        file's row, then ingested like an inbox file. False when the version was seen before."""
        file_id = new_id()
        staged = self.spool.stage_bytes(file_id + "-" + Path(rel).name, data)
        blob, commit = version
        recorded = self.store.add_files(
            [(file_id, "@" + source, rel, staged.name)],
            provenance_json=json.dumps(provenance),
            version=("@" + source, rel, blob, commit),
        )
        if not recorded:
            staged.unlink()
            return False
        self.ingest([Claim(file_id, rel, staged, "@" + source, provenance, base_dir)])
        return True

    def recheck_pending(self) -> None:
        if self.pending:
            self.offer(list(self.pending))

    def ingest(self, claims: list[Claim]) -> None:
        """Parse staged files; record tasks and places in one transaction; then move the files."""
        entries: list[tuple[str, list[Any], str, str, str]] = []
        fingerprints: dict[str, str] = {}
        moves: list[tuple[Claim, str, str, str]] = []  # claim, folder, name, error text
        names: set[str] = set()
        for claim in claims:
            display = f"{claim.folder}/{claim.rel}"
            error = ""
            tasks: list[Any] = []
            provenance = json.dumps(claim.provenance or {})
            if self.spool.kind(claim.staged) != "regular":
                error = f"{display}: not a regular file (a link or a special file is never read)"
            else:
                try:
                    parsed = parse_file(
                        claim.staged,
                        display_path=display,
                        known_name=lambda n: n in names or self.store.resolve_name(n) is not None,
                        unknown_dependency="error",
                        max_bytes=self.service.config.max_file_bytes,
                    )
                    specs = [
                        confine(t, claim.base_dir, self.service.config.allowed_roots)
                        for t in parsed.tasks
                    ]
                except TaskFileError as e:
                    error = e.message
                except ValueError as e:
                    error = f"{display}: {e}"
                else:
                    names.update(t.name for t in specs)
                    parsed = ParsedFile(parsed.path, specs, parsed.is_batch, parsed.warnings)
                    tasks = self.service.new_tasks(
                        parsed,
                        source=claim.source,
                        source_path=claim.rel,
                        provenance_json=provenance,
                    )
            folder = "rejected" if error else "queued"
            name = self.spool.free_name(folder, claim.spool_rel)
            with contextlib.suppress(FileNotFoundError):
                fingerprints[claim.file_id] = fingerprint(os.lstat(claim.staged))
            entries.append((claim.file_id, tasks, folder, name, error))
            moves.append((claim, folder, name, error))
        try:
            _, events = self.store.ingest(entries, fingerprints)
        except (DatabaseUnavailable, OSError):
            raise  # nothing recorded: the claims are ingested again at the next sweep
        except Exception as e:  # e.g. a dependency that vanished meanwhile: reject file by file
            log.warning("intake.batch_failed", error=repr(e))
            if len(claims) > 1:
                for claim in claims:
                    self.ingest([claim])
                return
            claim = claims[0]
            err = str(FieldError(f"{claim.folder}/{claim.rel}", 0, 0, "", str(e)))
            name = self.spool.free_name("rejected", claim.spool_rel)
            _, events = self.store.ingest(
                [(claim.file_id, [], "rejected", name, err)], fingerprints
            )
            moves = [(claim, "rejected", name, err)]
        failpoint.reached("recorded")
        failed: OSError | None = None  # a move that failed is done again by `finish_claims`
        for claim, folder, name, error in moves:
            try:
                placed = self.spool.place(claim.staged, folder, name)
                if placed != name:
                    self.store.set_file(claim.file_id, name=placed)
                if error:
                    self.spool.write_error(placed, error)
            except OSError as e:
                failed = failed or e
                placed = f"(still staged: {e.strerror})"
            if error:
                log.warning("intake.rejected", file=f"{claim.folder}/{claim.rel}", reason=error)
            else:
                log.info("intake.queued", file=f"{claim.folder}/{claim.rel}", name=placed)
        self.service.publish(events)
        if failed is not None:
            raise failed

    def deleted(self, folder: str, names: Iterable[str]) -> None:
        """A person deleted files from `folder`; from queued/, their tasks that have not
        started are cancelled."""
        for row in self.mirror.deleted(folder, names):
            if folder != "queued":
                continue
            for task in self.store.file_tasks(row["id"]):
                state = State(task["state"])
                if state in (State.PENDING, State.QUEUED):
                    self.service.cancel_if(task["id"], [state], "task file deleted from queued/")

    def finish_claims(self) -> None:
        """Claims cut short (by a crash, a full disk, a folder not writable): a staged file whose
        record says staging is ingested, one already recorded is moved where its record says,
        one never recorded (a source's copy) is removed; a staging record without its file is
        a rename that never happened. At start and at every sweep: claims never wait across an
        event-loop turn, so whatever is staged now was cut short."""
        for staging in self.store.files(["staging"]):
            if not self.spool.exists("staging", staging["name"]):
                self.store.drop_files([staging["id"]])
        for path in sorted(self.spool.staging.iterdir()):
            row = self.store.file(path.name.split("-", 1)[0])
            if row is None:
                path.unlink()
            elif row["folder"] == "staging":
                source = row["source"]
                self.ingest(
                    [
                        Claim(
                            row["id"],
                            row["rel_path"],
                            path,
                            source if source.startswith("@") else "inbox",
                            json.loads(row["provenance_json"]) or None,
                            self.base_dirs.get(source),
                        )
                    ]
                )
            elif row["folder"] in ("queued", "rejected"):  # recorded, not yet moved out
                placed = self.spool.place(path, row["folder"], row["name"])
                self.store.set_file(row["id"], name=placed)
                if row["folder"] == "rejected":
                    self.spool.write_error(placed, row["error"])

    def ingest_strangers(self) -> None:
        """Files in queued/ or running/ that the store does not know (put there by a person, or
        by a claudomator whose database is gone) are ingested as new. Only after every recorded
        file was found and placed (`Mirror.recover`): a file the store knows is never new."""
        known = {(row["folder"], row["name"]) for row in self.store.files(("queued", "running"))}
        for folder in ("queued", "running"):
            strangers = [rel for rel in self.spool.scan(folder) if (folder, rel) not in known]
            if strangers:
                self.offer(strangers, folder)


__all__ = ["Claim", "Intake", "confine"]
