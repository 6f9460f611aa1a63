"""An execution's progress as it streams (a tool call, text, the cost so far), written to the
events table in batches: at most every `PROGRESS_S`, and with the execution's final record.

A batch keeps the order things happened in, and merges only what is superseded: of its texts and
of its cost ticks, the latest one each (in the place of that latest one). Every tool call is
written, and so is every other kind (started, api_retry, rate_limit: few, and each says
something of its own)."""

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
MERGED = frozenset({"execution.text", "execution.cost"})  # a batch keeps the latest of each


class ProgressBatch:
    """One execution's progress, written in batches, with the final record or every
    `PROGRESS_S`, in the order it came, texts and cost ticks merged (`merge`): so a chatty
    execution neither floods the events table nor slows the pool, and no tool call is lost."""

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
        self.pending: list[ProgressEvent] = []
        self.flushing: list[asyncio.TimerHandle] = []
        self.loop = asyncio.get_running_loop()

    def add(self, progress: Progress, stream: StreamState) -> None:
        data = {"name": self.name, **progress.fields}
        if progress.kind == "tool_call":
            data["tool_calls"] = stream.tool_calls
        event = (f"execution.{progress.kind}", self.task_id, self.execution_id, data)
        self.pending.append(event)  # merged when written (`merge`)
        if not self.flushing:
            self.flushing.append(self.loop.call_later(PROGRESS_S, self.flush))

    def flush(self) -> None:
        self.flushing.clear()
        batch, self.pending = merge(self.pending), []
        with self.faults.carry_on("progress"):
            try:
                self.publish(self.store.add_events(batch))
            except (DatabaseUnavailable, OSError):  # kept for the next flush or the record
                self.pending = merge([*batch, *self.pending])
                raise

    def close(self) -> list[ProgressEvent]:
        """No more flushes: what is still pending goes with the final record."""
        for handle in self.flushing:
            handle.cancel()
        return merge(self.pending)


def merge(events: Iterable[ProgressEvent]) -> list[ProgressEvent]:
    """`events` in order, but of each `MERGED` type only the last one, where it came: a text or
    a cost tick tells what the next one tells again, newer."""
    listed = list(events)
    last = {event[0]: i for i, event in enumerate(listed) if event[0] in MERGED}
    return [e for i, e in enumerate(listed) if e[0] not in MERGED or last[e[0]] == i]


__all__ = ["MERGED", "PROGRESS_S", "ProgressBatch", "ProgressEvent", "merge"]
