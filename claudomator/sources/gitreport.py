"""What a git source's row says: the last commit ingested and what is wrong, if anything.

The `error` joins three things: the last fetch's problem (with the fast-forward), the last
pass's (cleared by one that works), and the notice of the last pass that found new commits
(rejected commits: kept, across restarts too, until new commits arrive)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claudomator.store.db import Store


class Report:
    """One source's row in the store, written only when it changes."""

    def __init__(self, store: Store, name: str, kind: str) -> None:
        self.store, self.name, self.kind = store, name, kind
        self.fetch_problem = self.problem = ""
        state = store.source_state(name)
        self.notice = state["error"] if state else ""

    def last_commit(self) -> str:
        """The last commit ingested ("" before the baseline)."""
        state = self.store.source_state(self.name)
        return state["last_commit"] if state else ""

    def write(self, last_commit: str | None = None) -> None:
        """Write the row: `last_commit` when given, and the error as it stands."""
        parts = [p for p in (self.fetch_problem, self.problem) if p and p not in self.notice]
        error = "; ".join([*parts, self.notice] if self.notice else parts)
        state = self.store.source_state(self.name)
        values: dict[str, Any] = {}
        if state is None or state["error"] != error:
            values["error"] = error
        if last_commit is not None and (state is None or state["last_commit"] != last_commit):
            values["last_commit"] = last_commit
        if values or state is None:
            self.store.set_source_state(self.name, self.kind, **values)


__all__ = ["Report"]
