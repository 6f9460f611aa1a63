"""An execution's progress as it streams (a tool call, text, the cost so far), written to the
events table in batches: at most every `PROGRESS_S`, and with the execution's final record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from claudomator.errors import DatabaseUnavailable
from claudomator.faults import Faults
from claudomator.records import Event
from claudomator.store.db import Store
from claudomator.stream import Progress, StreamState

PROGRESS_S = 0.25  # progress is written at most this often (and with the final record)

ProgressEvent = tuple[str, str, str, dict[str, Any]]  # type, task id, execution id, data


class ProgressBatch:
    """One execution's progress, written in batches, with the final record or every
    `PROGRESS_S`, and coalesced: the latest of each kind per batch (a tool call carries the count
    so far), so that a chatty execution neither floods the events table nor slows the pool."""

    def __init__(
        self,
        store: Store,
        publish: Callable[[Iterable[Event]], None],
        faults: Faults,
        task_id: str,
        execution_id: str,
        name: str,
    ) -> None:
        self.store, self.publish, self.faults = store, publish, faults
        self.task_id, self.execution_id, self.name = task_id, execution_id, name
        self.pending: dict[str, ProgressEvent] = {}
        self.flushing: list[asyncio.TimerHandle] = []
        self.loop = asyncio.get_running_loop()

    def add(self, progress: Progress, stream: StreamState) -> None:
        data = {"name": self.name, **progress.fields}
        if progress.kind == "tool_call":
            data["tool_calls"] = stream.tool_calls
        self.pending[progress.kind] = (
            f"execution.{progress.kind}",
            self.task_id,
            self.execution_id,
            data,
        )
        if not self.flushing:
            self.flushing.append(self.loop.call_later(PROGRESS_S, self.flush))

    def flush(self) -> None:
        self.flushing.clear()
        batch = dict(self.pending)
        self.pending.clear()
        with self.faults.carry_on("progress"):
            try:
                self.publish(self.store.add_events(list(batch.values())))
            except (DatabaseUnavailable, OSError):  # kept for the next flush or the record
                self.pending.update({k: v for k, v in batch.items() if k not in self.pending})
                raise

    def close(self) -> list[ProgressEvent]:
        """No more flushes: what is still pending goes with the final record."""
        for handle in self.flushing:
            handle.cancel()
        return list(self.pending.values())


__all__ = ["PROGRESS_S", "ProgressBatch", "ProgressEvent"]
