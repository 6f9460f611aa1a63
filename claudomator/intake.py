"""The directory runner's intake: claims out of the inbox (and a git source's versions, staged),
handed to the one ingest path (`claudomator.ingest`), and the repair of claims cut short.

Claim protocol, so that a crash anywhere is repaired at start:
1. the file is not being written (read lease; see `Spool.being_written`);
2. a `files` row records the claim (folder `staging`, the staged name) — committed;
3. one rename moves it into the private staging folder (the rename is the lock);
4. the staged copy is parsed (`Ingest.record`); its tasks and the file's next place (`queued/<path>` or
   `rejected/<path>`) are committed in one transaction;
5. the file is moved there (never overwriting), `.error` written beside a rejected one.
After that the mirror (`claudomator.mirror`) keeps the file where its tasks' committed states
say: `queued/` until its first task starts, `running/` while one runs or may run again, then
`done/` with `<name>.result.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from claudomator import failpoint
from claudomator.config import Config
from claudomator.ids import new_id
from claudomator.ingest import Claim, Ingest
from claudomator.mirror import Mirror
from claudomator.records import Event
from claudomator.spool import Spool, is_watched_path
from claudomator.state import State
from claudomator.store.db import Store

# withdraw a task that has not started (it was expected in one of the states); False if it had
CancelIf = Callable[[str, list[State], str], bool]


class Parts(Protocol):
    """What an intake is built from (the service has them all)."""

    config: Config
    store: Store

    def publish(self, events: Iterable[Event]) -> None: ...
    def cancel_if(self, task_id: str, expect: list[State], reason: str) -> bool: ...


class Intake:
    @classmethod
    def of(cls, parts: Parts) -> Intake:
        return cls(parts.config, parts.store, parts.publish, parts.cancel_if)

    def __init__(
        self,
        config: Config,
        store: Store,
        publish: Callable[[Iterable[Event]], None],
        cancel_if: CancelIf,
    ) -> None:
        self.store, self.cancel_if = store, cancel_if
        self.spool = Spool(config.data_dir)
        self.spool.ensure()
        self.mirror = Mirror(store, self.spool)
        self.ingest = Ingest(config, store, self.spool, publish)
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
        self.ingest.record(claims)
        return len(claims)

    def offer_bytes(
        self,
        source: str,
        rel: str,
        data: bytes,
        *,
        provenance: dict[str, str],
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
        self.ingest.record([Claim(file_id, rel, staged, "@" + source, provenance, base_dir)])
        return True

    def refuse_bytes(
        self,
        source: str,
        rel: str,
        data: bytes,
        *,
        provenance: dict[str, str],
        reason: str,
        version: tuple[str, str],
    ) -> bool:
        """A version of a source's task file that never runs (`reason`): recorded (at most
        once, ever) and put in `rejected/@source/<rel>` with the reason, never parsed. False
        when the version was seen before."""
        file_id = new_id()
        claim = Claim(
            file_id, rel, self.spool.staging / f"{file_id}-{Path(rel).name}", "@" + source
        )
        blob, commit = version
        if not self.store.add_files(
            [(file_id, claim.folder, rel, claim.staged.name)],
            provenance_json=json.dumps(provenance),
            version=(claim.folder, rel, blob, commit),
        ):
            return False
        self.ingest.refuse(claim, reason, data)
        return True

    def recheck_pending(self) -> None:
        if self.pending:
            self.offer(list(self.pending))

    def deleted(self, folder: str, names: Iterable[str]) -> None:
        """A person deleted files from `folder`; from queued/, their tasks that have not
        started are cancelled."""
        for row in self.mirror.deleted(folder, names):
            if folder != "queued":
                continue
            for task in self.store.file_tasks(row["id"]):
                state = State(task["state"])
                if state in (State.PENDING, State.QUEUED):
                    self.cancel_if(task["id"], [state], "task file deleted from queued/")

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
                self.ingest.record(
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
                display = f"{row['source'] if row['source'].startswith('@') else 'inbox'}/{row['rel_path']}"
                self.ingest.place(
                    row["id"], path, row["folder"], row["name"], row["error"], display
                )

    def ingest_strangers(self) -> None:
        """Files in queued/ or running/ that the store does not know (put there by a person, or
        by a claudomator whose database is gone) are ingested as new. Only after every recorded
        file was found and placed (`Mirror.recover`): a file the store knows is never new."""
        known = {(row["folder"], row["name"]) for row in self.store.files(("queued", "running"))}
        for folder in ("queued", "running"):
            strangers = [rel for rel in self.spool.scan(folder) if (folder, rel) not in known]
            if strangers:
                self.offer(strangers, folder)


__all__ = ["CancelIf", "Intake", "Parts"]
