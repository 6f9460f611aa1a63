"""`Claudomator`: one data dir's parts, wired, and the verbs a person or a program uses: submit,
validate, release a held task, cancel, retry, pause/resume/drain, and the read views. The CLI and
the API are one-call adapters over it.

    Claudomator
    ├ store, reader, hub, runner, pool    the adapters
    ├ publisher    committed events out: log, hub, listeners, the spool mirror   (publisher)
    ├ dependents   what a task's end does to those that depend on it            (dependents)
    ├ pool_gate    whether the pool may start tasks: pause, budget, disk        (gate)
    ├ node         this process as a node: join, lease, leave                  (node)
    ├ workspaces   where executions run: admission beside the running, worktrees (workspaces)
    ├ lifecycle    an execution from its start to its recorded end             (lifecycle)
    ├ recovery     what start-up puts right after a crash, in order             (recovery)
    └ views        what is shown: tasks, status, nodes, sources, logs           (views)

The loops that run it live apart: `claudomator.run` (`claudomator run`) and `claudomator.serve`
(`claudomator serve`, which also builds the intake, the sources, the notifier and the API).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from claudomator import records
from claudomator.config import Config
from claudomator.dependents import Dependents
from claudomator.errors import ClaudomatorError, NotFoundError, TaskFileError, TransitionError
from claudomator.events import Hub
from claudomator.faults import Faults
from claudomator.gate import PoolGate
from claudomator.ingest import new_tasks
from claudomator.inventory import Inventory
from claudomator.lifecycle import Lifecycle
from claudomator.node import Node, Process
from claudomator.pool import Pool
from claudomator.publisher import Listener, Publisher
from claudomator.records import Event
from claudomator.recovery import Recovery
from claudomator.runner import Runner
from claudomator.schedule import Gate, dependency_verdict
from claudomator.state import MANUAL_RETRY_ONLY, State
from claudomator.store.db import Store
from claudomator.store.reader import Reader
from claudomator.taskbuild import Unknown
from claudomator.taskfile import ParsedFile, parse_bytes, parse_file, parse_object
from claudomator.views import Views
from claudomator.workdir import absolute_file, settle_file
from claudomator.workspaces import Workspaces

if TYPE_CHECKING:
    from claudomator.intake import Intake

BODY_SOURCE = "api"  # what a task sent as a request body names as its file and source


@dataclass(frozen=True)
class Submitted:
    """The tasks one body or file asked for, in order."""

    ids: list[str]
    is_batch: bool


class Claudomator:
    """One data dir's store, pool and hub."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.data_dir.ensure()
        self.store = Store(config.database, aging_s=config.aging_s)
        self.reader = Reader(config.database)
        self.hub = Hub()
        self.pool = Pool(config.max_concurrency)
        self.faults = Faults()
        self.publisher = Publisher(self.hub, self.pool.wake, self.faults)
        self.publish = self.publisher.publish
        self.dependents = Dependents(self.store, self.publish)
        self.pool_gate = PoolGate(config, self.store, self.reader, self.publish)
        self.publisher.remote_listeners.append(_spent_by_others(self.pool_gate))
        self.node = Node(config, self.store, self.pool, Process.this(), self.publish)
        self.workspaces = Workspaces(config, self.store, self.node.id)
        self.lifecycle = Lifecycle(
            config,
            self.store,
            Runner(config),
            self.pool,
            self.node,
            publish=self.publish,
            dependents=self.dependents,
            gate=self.pool_gate,
            faults=self.faults,
            workspaces=self.workspaces,
        )
        self.recovery = Recovery(
            self.store, self.reader, self.node, self.lifecycle, self.dependents, self.publisher
        )
        self.views = Views(config, self.reader)
        self._intake: Intake | None = None

    def close(self) -> None:
        self.reader.close()
        self.store.close()

    def __enter__(self) -> Claudomator:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def runner(self) -> Runner:
        return self.lifecycle.rounds.runner

    @property
    def identity(self) -> str:
        """How a `run` process names itself as the dispatcher of its tasks."""
        return self.node.process.identity

    @property
    def node_id(self) -> str:
        return self.node.id

    @property
    def intake(self) -> Intake | None:
        """`serve`'s intake, whose spool mirror follows every committed change (`run` leaves
        the folders alone)."""
        return self._intake

    @intake.setter
    def intake(self, intake: Intake | None) -> None:
        self._intake = intake
        self.publisher.mirror = intake.mirror if intake is not None else None

    # -- submitting ----------------------------------------------------------------------------

    def workspace_entries(self) -> list[dict[str, Any]]:
        """The worktrees and task branches (`claudomator workspaces`)."""
        return [e.to_json() for e in asyncio.run(Inventory(self.workspaces).entries())]

    def prune_workspaces(self, **options: Any) -> list[dict[str, Any]]:
        """The worktrees and branches of final tasks removed (`Inventory.prune`'s options)."""
        return [e.to_json() for e in asyncio.run(Inventory(self.workspaces).prune(**options))]

    def submit(
        self, parsed: ParsedFile, *, source: str, base: Path | None = None, **options: Any
    ) -> list[str]:
        """Record the tasks of one file (`options` as for `ingest.new_tasks`); QUEUED unless held or
        waiting for dependencies. A relative working_dir is recorded resolved against `base`
        (else `claude.working_dir`)."""
        default_dir = self.config.default_working_dir()
        parsed = absolute_file(parsed, base or default_dir)
        parsed = settle_file(parsed, self.config.workspace_mode, default_dir)
        ids, events = self.store.add_tasks(new_tasks(parsed, source=source, **options))
        self.publish(events)
        return ids

    def submit_files(self, paths: list[Path], *, source: str) -> list[str]:
        """Parse every file first (all valid or nothing is recorded), then record them in order so
        that a later file may depend on an earlier one's tasks."""
        names: set[str] = set()
        parsed_files, errors = [], []
        for path in paths:
            try:
                parsed = parse_file(
                    path,
                    known_name=lambda n: n in names or self._known(n),
                    unknown_dependency="error",
                    max_bytes=self.config.max_file_bytes,
                )
            except TaskFileError as e:
                errors.extend(e.errors)
                continue
            names.update(t.name for t in parsed.tasks)
            parsed_files.append(parsed)
        if errors:
            raise TaskFileError(errors)
        ids: list[str] = []
        for path, parsed in zip(paths, parsed_files, strict=True):  # a relative working_dir is
            base = path.absolute().parent  # the task file's folder's
            ids += self.submit(parsed, source=source, base=base, dispatcher=self.identity)
        return ids

    def submit_body(self, body: bytes, *, as_yaml: bool, run: bool) -> Submitted:
        """A task or batch sent as a request body, YAML or JSON: PENDING until `release`d, or
        QUEUED at once with `run`."""
        parsed = self._parse_yaml(body, "error") if as_yaml else self._parse_json(body)
        return Submitted(self.submit(parsed, source=BODY_SOURCE, held=not run), parsed.is_batch)

    def validate_body(self, body: bytes) -> ParsedFile:
        """A task or batch file sent as YAML, checked as `claudomator validate` checks a file;
        records nothing (TaskFileError lists every problem). A depends_on name found neither in
        the file nor in the store is a warning here, an error only when it is submitted."""
        return self._parse_yaml(body, "warn")

    def _parse_yaml(self, body: bytes, unknown_dependency: Unknown) -> ParsedFile:
        return parse_bytes(
            body,
            BODY_SOURCE,
            known_name=self._known,
            unknown_dependency=unknown_dependency,
            max_bytes=self.config.max_file_bytes,
        )

    def _parse_json(self, body: bytes) -> ParsedFile:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise ClaudomatorError(f"the body is not JSON: {e}") from None
        return parse_object(data, BODY_SOURCE, known_name=self._known, unknown_dependency="error")

    def _known(self, name: str) -> bool:
        return self.store.resolve_name(name) is not None

    # -- acting on a task ----------------------------------------------------------------------

    def release(self, task_id: str) -> records.TaskDetail:
        """A task held PENDING (created without `run`) becomes runnable: QUEUED, or PENDING until
        its dependencies complete."""
        row = self.store.task_row(task_id)
        if row is None:
            raise NotFoundError(f"no task with id {task_id!r}")
        if row["state"] != State.PENDING.value or not row["held"]:
            raise TransitionError(
                f"task {task_id} is {row['state']}: only a task waiting for run can be run"
            )
        self.store.release_hold(task_id)
        verdict, reason = dependency_verdict(self.store.dependency_states(task_id))
        if verdict == "ready":
            event = self.store.transition(task_id, State.QUEUED, expect=[State.PENDING])
            self.publish([event] if event else [])
        elif verdict == "cancel":
            self.cancel_if(task_id, [State.PENDING], reason)
        return self.task(task_id)

    def cancel_if(self, task_id: str, expect: list[State], reason: str) -> bool:
        """Cancel a task that has not started; its dependents follow."""
        return self.dependents.cancel(task_id, expect, reason)

    def cancel(self, task_id: str) -> records.TaskDetail:
        """PENDING/QUEUED → CANCELLED at once; a RUNNING task's execution is stopped by its owner."""
        state = State(self.task(task_id)["state"])
        if state in (State.PENDING, State.QUEUED):
            if self.cancel_if(task_id, [state], "cancelled"):
                return self.task(task_id)
            state = State(self.task(task_id)["state"])
        if state is State.RUNNING:
            if not self.pool.cancel(task_id):
                self.store.request_cancel(task_id)  # its owner stops it within a second
                self.recovery.end_orphans()  # or, if its owner is gone, it ends now
            return self.task(task_id)
        raise TransitionError(
            f"task {task_id} is {state.value}: only PENDING, QUEUED or RUNNING can be cancelled"
        )

    def wait_final(self, task_id: str, timeout_s: float) -> records.TaskDetail:
        """The task once it no longer runs (a cancelled execution is stopped by its owner, within
        its graces), or as it stands after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.task(task_id)
            if task["state"] != State.RUNNING.value or time.monotonic() >= deadline:
                return task
            time.sleep(0.1)

    def retry(self, task_id: str) -> records.TaskDetail:
        """A final task that did not complete goes back to QUEUED, by hand."""
        state = State(self.task(task_id)["state"])
        if state not in (State.FAILED, State.TIMED_OUT) and state not in MANUAL_RETRY_ONLY:
            raise TransitionError(
                f"task {task_id} is {state.value}: only a failed, timed out, cancelled or budget-exceeded task can be retried"
            )
        event = self.store.transition(
            task_id, State.QUEUED, expect=[state], reason="retry by hand", not_before=0.0
        )
        if event is None:
            raise TransitionError(f"task {task_id} changed state meanwhile; try again")
        self.publish([event])
        return self.task(task_id)

    # -- the pool ------------------------------------------------------------------------------

    def pause(self, reason: str = "paused by hand") -> Gate:
        """Start no new task (running ones go on) until `resume`; kept across restarts."""
        self.pool_gate.set(paused=True, reason=reason)
        return self.gate()

    def resume(self) -> Gate:
        """Undo `pause`, `drain` and a rate-limit pause."""
        self.pool_gate.set(paused=False, reason="", guard="", draining=False, rate_limited_until=0)
        return self.gate()

    def drain(self) -> Gate:
        """Let running tasks finish and start nothing new until `resume`."""
        self.pool_gate.set(draining=True)
        return self.gate()

    def gate(self) -> Gate:
        """Whether the pool starts tasks now, and if not why and until when."""
        return self.pool_gate.check()

    # -- reading -------------------------------------------------------------------------------

    def tasks(self, **filters: Any) -> list[records.Task]:
        return self.views.tasks(**filters)

    def task(self, task_id: str) -> records.TaskDetail:
        return self.views.task(task_id)

    def execution(self, execution_id: str) -> records.Execution:
        return self.views.execution(execution_id)

    def status(self) -> records.Status:
        return self.views.status()

    def nodes(self) -> list[records.Node]:
        return self.views.nodes()

    def costs(self, days: int) -> records.Costs:
        return self.views.costs(days)

    def task_env(self, task_id: str) -> dict[str, str]:
        """The env a task gives claude (its values are masked wherever they are shown)."""
        row = self.store.task_row(task_id)
        env = (json.loads(row["config_json"]).get("claude") or {}).get("env") if row else None
        return {str(k): str(v) for k, v in (env or {}).items()}


def _spent_by_others(gate: PoolGate) -> Listener:
    def listen(event: Event) -> None:
        if event["type"] == "task.finished":
            gate.spent_changed()  # the daily budget is the cluster's

    return listen


def init(config: Config) -> tuple[bool, Path]:
    """`claudomator init`: the data dir, a commented config.toml (False: one was kept), the
    database and the API token (idempotent). Returns whether the config was written, and the
    token file."""
    from claudomator.config import config_template
    from claudomator.datadir import write_private
    from claudomator.token import ensure_token, token_path

    data_dir = config.data_dir
    data_dir.ensure()
    wrote = write_private(data_dir.config_file, config_template())
    Store(config.database).close()
    ensure_token(data_dir.root)
    return wrote, token_path(data_dir.root)


__all__ = ["BODY_SOURCE", "Claudomator", "Submitted", "init"]
