"""The events table: every event is written here, in the transaction of the change it tells of
(callers publish it only after the commit), and read back by id (`Reader.events_after`) by the
WebSocket feed and by other nodes' relays.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from claudomator.records import Event
from claudomator.state import FINAL_STATES, State
from claudomator.store.database import EVENT_IDS, Database
from claudomator.store.schema import EVENTS


def event_type(state: State) -> str:
    """The dotted event a task entering `state` publishes."""
    if state in FINAL_STATES:
        return "task.finished"
    return {
        State.PENDING: "task.created",
        State.QUEUED: "task.queued",
        State.RUNNING: "task.started",
    }[state]


def write_event(
    conn: Connection, type_: str, task_id: str = "", execution_id: str = "", **data: Any
) -> Event:
    """Write one event in the transaction `conn` (`Database.begin`); the event as published."""
    at = time.time()
    result = conn.execute(
        _INSERT_EVENT,
        {
            "at": at,
            "type": type_,
            "task_id": task_id,
            "execution_id": execution_id,
            "data_json": json.dumps(data),
        },
    )
    event_id = result.inserted_primary_key[0]  # type: ignore[index]
    if (ids := conn.info.get(EVENT_IDS)) is not None:  # told to the other nodes at commit
        ids.append(event_id)
    event: Event = {
        "id": event_id,
        "type": type_,
        "at": at,
        "task_id": task_id,
        "execution_id": execution_id,
    }
    return cast(Event, event | data)


class Events(Database):
    """The part of `Store` that records events that change no row (an execution's progress)."""

    def add_events(self, events: Sequence[tuple[str, str, str, dict[str, Any]]]) -> list[Event]:
        """Progress events (type, task id, execution id, data) in one transaction."""
        if not events:
            return []
        with self.begin() as conn:
            if len(events) == 1:
                return [write_event(conn, *events[0][:3], **events[0][3])]
            return write_events(conn, events)


def write_events(
    conn: Connection, events: Sequence[tuple[str, str, str, dict[str, Any]]]
) -> list[Event]:
    """Many events in one statement (a burst of progress: every tool call is told), their ids
    in the order given."""
    at = time.time()
    rows = [
        {"at": at, "type": t, "task_id": task, "execution_id": ex, "data_json": json.dumps(data)}
        for t, task, ex, data in events
    ]
    ids = conn.execute(_INSERT_EVENTS, rows).scalars().all()
    if (told := conn.info.get(EVENT_IDS)) is not None:
        told.extend(ids)
    return [
        cast(Event, {"id": i, "type": t, "at": at, "task_id": task, "execution_id": ex} | data)
        for i, (t, task, ex, data) in zip(ids, events, strict=True)
    ]


_INSERT_EVENT = insert(EVENTS)
_INSERT_EVENTS = insert(EVENTS).returning(EVENTS.c.id, sort_by_parameter_order=True)
