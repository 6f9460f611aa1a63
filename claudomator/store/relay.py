"""Other nodes' events, as they commit: LISTEN on PostgreSQL.

Every write transaction that wrote events ends with a NOTIFY `'<node> <first> <last>'` on the
store's channel (`Database.begin`); PostgreSQL delivers it at commit. The relay reads those events
(ids `first` to `last`) and hands them on, unless this node wrote them (its hub has them
already). A dropped connection is retried every second; what was said meanwhile is not replayed
here (the WebSocket feed reads gaps from the table, and the intake's sweep re-syncs its folders).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql

from claudomator.records import Event
from claudomator.store.reader import Reader

log = structlog.get_logger("claudomator.relay")

RETRY_S = 1.0


def parse_payload(payload: str) -> tuple[str, int, int] | None:
    """'<node> <first id> <last id>' → its parts; None when it is not one of ours."""
    node, _, ids = payload.rpartition(" ")
    node, _, first = node.rpartition(" ")
    try:
        return node, int(first), int(ids)
    except ValueError:
        return None


class Relay:
    def __init__(
        self,
        url: str,
        channel: str,
        node: str,
        reader: Reader,
        deliver: Callable[[list[Event]], None],
    ) -> None:
        self.url = "postgresql://" + url.split("://", 1)[1]  # psycopg's own form of the URL
        self.channel = channel
        self.node = node
        self.reader = reader
        self.deliver = deliver

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (psycopg.Error, OSError) as e:
                log.warning("relay.disconnected", error=str(e))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_S)

    async def _listen(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            while not stop.is_set():
                async for note in conn.notifies(timeout=0.5):
                    self._heard(note.payload)
                    if stop.is_set():
                        break

    def _heard(self, payload: str) -> None:
        parsed = parse_payload(payload)
        if parsed is None or parsed[0] == self.node:
            return
        _, first, last = parsed
        events = list(self.reader.events_after(first - 1, last - first + 1))
        if events:
            self.deliver(events)
