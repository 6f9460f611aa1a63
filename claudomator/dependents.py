"""What a task's final state does to the tasks that depend on it: a PENDING dependent whose
dependencies all COMPLETED is queued (unless held for `run`), one whose dependency ended otherwise
is cancelled, and so on down the `depends_on` chain. The verdict is `schedule.dependency_verdict`,
a pure function."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from claudomator.records import Event
from claudomator.schedule import dependency_verdict
from claudomator.state import State
from claudomator.store.db import Store


class Dependents:
    def __init__(self, store: Store, publish: Callable[[Iterable[Event]], None]) -> None:
        self.store, self.publish = store, publish

    def cancel(self, task_id: str, expect: list[State], reason: str) -> bool:
        """Cancel a task that has not started (it is in one of `expect`); its dependents
        follow. False when it was not in one of them."""
        event = self.store.transition(task_id, State.CANCELLED, expect=expect, reason=reason)
        if event is None:
            return False
        self.publish([event])
        self.settle(task_id)
        return True

    def settle(self, task_id: str) -> None:
        """Queue dependents whose dependencies all COMPLETED; cancel those whose dependency did not."""
        for dep in self.store.dependents(task_id):
            self._settle(dep["id"], dep["dependencies"], dep["held"])

    def settle_waiting(self) -> int:
        """Settle every PENDING task whose dependencies are already final: a crash (or a node
        lost) between a dependency's final state and the settling of its dependents leaves them
        waiting on a state that will never change again. Returns how many were settled."""
        return sum(
            self._settle(task_id, deps, held=False)
            for task_id, deps in self.store.waiting_dependents().items()
        )

    def _settle(self, task_id: str, dependencies: list[tuple[str, State]], held: bool) -> bool:
        verdict, reason = dependency_verdict(dependencies)
        if verdict == "ready" and not held:
            event = self.store.transition(task_id, State.QUEUED, expect=[State.PENDING])
        elif verdict == "cancel":
            event = self.store.transition(
                task_id, State.CANCELLED, expect=[State.PENDING], reason=reason
            )
        else:
            return False
        if event is None:
            return False
        self.publish([event])
        if verdict == "cancel":
            self.settle(task_id)
        return True


__all__ = ["Dependents"]
