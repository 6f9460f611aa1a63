"""Recovery: what `serve` puts right at start after a crash, in one ordered procedure.

Each step relies on those before it:

1. executions — RUNNING executions whose owner process is gone end FAILED `interrupted`
   (what is left of their process trees is killed); the retry policy then applies.
2. runs — the unstarted tasks of a `claudomator run` that is gone end CANCELLED.
3. nodes — other nodes whose lease expired are lost: their executions end FAILED `node lost`.
4. dependents — PENDING tasks whose dependencies are all final are queued or cancelled (a
   crash between a dependency's final state and the settling of its dependents).
5. claims — claims a crash cut short are ingested or forgotten; files recorded but still
   staged are placed.
6. files — every recorded file is found by its fingerprint (a move cut short left it
   elsewhere, or twice), put where its tasks stand, its result file written when missing or
   stale; side files without their file are removed.
7. strangers — task files in queued/ or running/ that the store does not know (put there by
   a person) are ingested as new.
8. inbox — swept.

Steps 1-4 change only the store and 5-8 only the folders, after the store has settled: the
mirror follows no event while they run (it is attached to the publisher at the end), so no
file moves twice and none is taken for a new one.

Steps 1-3 are also what `run` does before it starts, and what a cancel does for a task whose
owner is gone; step 3 is what every node does every second (`Node.run`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from claudomator.dependents import Dependents
from claudomator.lifecycle import Lifecycle
from claudomator.node import Node
from claudomator.proctree import kill_tree, leftovers, process_started, process_tree
from claudomator.publisher import Publisher
from claudomator.records import Event
from claudomator.schedule import owner_gone
from claudomator.state import State
from claudomator.store.db import Store
from claudomator.store.reader import Reader

if TYPE_CHECKING:
    from claudomator.intake import Intake

log = structlog.get_logger("claudomator.recovery")


class Recovery:
    def __init__(
        self,
        store: Store,
        reader: Reader,
        node: Node,
        lifecycle: Lifecycle,
        dependents: Dependents,
        publisher: Publisher,
    ) -> None:
        self.store, self.reader, self.node = store, reader, node
        self.lifecycle, self.dependents, self.publisher = lifecycle, dependents, publisher

    @property
    def publish(self) -> Callable[[Iterable[Event]], None]:
        return self.publisher.publish

    def run(self, intake: Intake) -> None:
        """Steps 1-8; from then on the folders follow every committed change."""
        self.publisher.mirror = None  # the mirror follows no event until the folders are settled
        interrupted = self.end_orphans()  # 1-3
        settled = self.dependents.settle_waiting()  # 4
        intake.finish_claims()  # 5
        intake.mirror.recover()  # 6
        intake.ingest_strangers()  # 7
        intake.sweep()  # 8
        self.publisher.mirror = intake.mirror
        log.info("recovery.done", interrupted=len(interrupted), settled=settled)

    def end_orphans(self) -> list[str]:
        """Steps 1-3: what processes and nodes that are gone left RUNNING or waiting. Returns
        the executions interrupted (step 1)."""
        process = self.node.process
        interrupted = []
        for ex in self.store.running_executions():
            alive = process_started(ex["owner_pid"]) if ex["owner_pid"] else None
            if owner_gone(
                owner_host=ex["owner_host"],
                owner_pid=ex["owner_pid"],
                owner_started=ex["owner_started"],
                this_host=process.host,
                alive_started=alive,
            ):
                # every process of the execution carries its id in the environment
                kill_tree(process_tree(None, ex["id"]))
                self.lifecycle.fail(ex["task_id"], ex["id"], "interrupted")
                interrupted.append(ex["id"])
        for dispatcher in self.store.dispatchers():
            _, host, pid, started = [*dispatcher.split(":"), "", "", "0", "0"][:4]
            if dispatcher != process.identity and owner_gone(
                owner_host=host,
                owner_pid=int(pid),
                owner_started=float(started),
                this_host=process.host,
                alive_started=process_started(int(pid)),
            ):
                self._abandon_run(dispatcher)
        self.end_lost_nodes()
        return interrupted

    def end_lost_nodes(self) -> None:
        """Step 3: other nodes whose lease expired are lost: their RUNNING executions end FAILED
        `node lost` (then the retry policy applies), their `run` tasks not started end
        CANCELLED."""
        nodes, me = self.node.nodes, self.node.id
        expired, any_lost = nodes.expired()
        for node_id in expired:
            if node_id != me and (event := nodes.mark_lost(node_id)):
                log.warning("node.lost", node=node_id)
                self.publish([event])
                any_lost = True
        if not any_lost:
            return
        lost = [ex for ex in nodes.lost_executions() if ex["owner_node"] != me]
        if lost:  # a lost node on this host may have left its claude processes running
            here = leftovers()
            for ex in lost:
                kill_tree(here.get(ex["id"], []))
                self.lifecycle.fail(ex["task_id"], ex["id"], "node lost")
        for dispatcher in nodes.lost_runs():
            if dispatcher != me:
                self._abandon_run(dispatcher)

    def _abandon_run(self, dispatcher: str) -> None:
        """A `run` that died: what it never started ends CANCELLED, never runs unasked."""
        for task in self.reader.list_tasks(limit=None, dispatcher=dispatcher):
            if task["state"] in (State.PENDING.value, State.QUEUED.value):
                self.dependents.cancel(task["id"], [State(task["state"])], "interrupted")
        self.store.release_dispatcher(dispatcher)


__all__ = ["Recovery"]
