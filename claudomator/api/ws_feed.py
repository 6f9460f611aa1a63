"""The WebSocket feed: every event the hub publishes, in id order, to every client that wants it.

One `Feed` per app subscribes to the hub and keeps `last_id`, the newest event it has passed on.
An event whose id jumps past `last_id + 1` was written by another process (`claudomator cancel`
in a terminal): the feed reads the gap from the events table before passing the event on, and a
poll once a second catches such events when nothing happens here. So a client sees one gapless,
duplicate-free sequence of ids.

Each client has a bounded queue of encoded events, filled without waiting. A client whose queue
is full falls too far behind: it is sent a `ws.overflow` notice and closed, and never slows
anyone else. `?after=ID` replays from the table (pages of `PAGE`), then goes live: the client
joins the feed before the first read, so an event is either in a page or in its queue (or both:
ids at or below the last one sent are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import msgspec
import structlog

from claudomator.events import Hub
from claudomator.records import Event
from claudomator.secret import scrub_bytes, secret_values

log = structlog.get_logger("claudomator.api")

PAGE = 500
POLL_S = 1.0
QUIET_S = 0.5  # the poll leaves events this young to the hub, which publishes right after commit
CLOSE = ""  # queue sentinel: the client is done

_encode = msgspec.json.Encoder().encode


class EventLog(Protocol):
    """The events table, read in id order (the store's `Reader`)."""

    def events_after(self, after: int, limit: int = ...) -> Iterable[Event]: ...


@dataclass(eq=False)
class Client:
    """One WebSocket client's place in the feed."""

    task: str | None
    queue: asyncio.Queue[tuple[int, str]]
    replaying: bool = True  # reading the table: a full queue is no loss, the table has it
    overflowed: bool = False
    closed: bool = False
    sent_id: int = 0

    def wants(self, event: Event) -> bool:
        return self.task is None or event.get("task_id") == self.task


class Feed:
    def __init__(
        self,
        hub: Hub,
        reader: EventLog,
        *,
        buffer: int = 1000,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.hub = hub
        self.reader = reader
        self.buffer = buffer
        self.on_overflow = on_overflow
        self.clients: set[Client] = set()  # every client, for overflow and leave
        self.everyone: set[Client] = set()  # clients of every event
        self.by_task: dict[str, set[Client]] = {}  # clients of one task's events
        self.secrets = secret_values()
        self.last_id = last_event_id(reader)

    def encode(self, event: Event) -> str:
        """An event as the JSON text sent to clients, with secret values masked."""
        return scrub_bytes(_encode(event), self.secrets).decode()

    # -- the one producer ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Pass hub events on until `stop`; between them, poll the table for other processes'."""
        sub = self.hub.subscribe(100_000)
        try:
            while not stop.is_set():
                try:
                    event = await asyncio.wait_for(sub.get(), POLL_S)
                except TimeoutError:
                    event = None
                try:
                    if event is None:
                        self.catch_up(time.time() - QUIET_S)
                    elif event.get("type") == "hub.overflow":  # behind: the table has it all
                        sub = self.hub.subscribe(100_000)
                        self.catch_up(time.time())
                    else:
                        self.publish(event)
                except Exception:  # one bad event or a busy database must not end the feed
                    log.exception("api.feed_error", event_id=event and event.get("id"))
        finally:
            sub.close()

    def publish(self, event: Event) -> None:
        """One hub event to every client, after any gap before it (read from the table)."""
        event_id = event.get("id")
        if not isinstance(event_id, int):
            return
        if event_id <= self.last_id:
            return  # already passed on (read from the table by a gap fill or the poll)
        if event_id > self.last_id + 1:
            self.catch_up(None, below=event_id)
        self._fan_out(event)

    def catch_up(self, before: float | None, below: int | None = None) -> None:
        """Pass on stored events after `last_id` (and below `below`, written before `before`)."""
        while True:
            page = list(self.reader.events_after(self.last_id, PAGE))
            for event in page:
                if (below is not None and event["id"] >= below) or (
                    before is not None and event["at"] > before
                ):
                    return
                self._fan_out(event)
            if len(page) < PAGE:
                return

    def _fan_out(self, event: Event) -> None:
        self.last_id = event["id"]
        narrow = self.by_task.get(event.get("task_id") or "")
        if not self.everyone and not narrow:
            return
        item = (event["id"], self.encode(event))
        for client in [*self.everyone, *(narrow or ())]:
            self._offer(client, item)

    def _offer(self, client: Client, item: tuple[int, str]) -> None:
        try:
            client.queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            pass
        if client.replaying:  # the table has every event: drop the live tail, read it later
            while not client.queue.empty():
                client.queue.get_nowait()
            return
        self._forget(client)
        client.overflowed = True
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait((0, CLOSE))  # the sender tells it, with the last id it sent
        if self.on_overflow is not None:
            self.on_overflow()
        log.warning("api.ws_overflow", after=client.sent_id, buffer=self.buffer)

    # -- clients ---------------------------------------------------------------------------------

    def join(self, task: str | None) -> Client:
        client = Client(task, asyncio.Queue(self.buffer + 2))
        self.clients.add(client)
        if task is None:
            self.everyone.add(client)
        else:
            self.by_task.setdefault(task, set()).add(client)
        return client

    def _forget(self, client: Client) -> None:
        self.clients.discard(client)
        self.everyone.discard(client)
        if client.task is not None and (narrow := self.by_task.get(client.task)) is not None:
            narrow.discard(client)
            if not narrow:
                del self.by_task[client.task]

    def leave(self, client: Client) -> None:
        self._forget(client)
        client.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait((0, CLOSE))

    def replay_page(self, client: Client) -> list[tuple[int, str]]:
        """The next page of stored events for a client catching up; empty once it has caught
        up, and from then on its queue holds everything newer."""
        while True:
            page = list(self.reader.events_after(client.sent_id, PAGE))
            if not page:
                client.replaying = False
                return []
            wanted = [(e["id"], self.encode(e)) for e in page if client.wants(e)]
            if wanted:
                return wanted
            client.sent_id = page[-1]["id"]  # nothing for this client in that page: skip it


def last_event_id(reader: EventLog) -> int:
    """The newest event id in the table (0 when none).

    TODO(store): `Reader.last_event_id()` (asked for) is one `SELECT MAX(id)`; until it exists
    this finds the same with a few `events_after(x, 1)` probes: exponential, then binary search.
    """
    if not list(reader.events_after(0, 1)):
        return 0
    low, high = 0, 1  # invariant: an event with id > low exists
    while list(reader.events_after(high, 1)):
        low, high = high, high * 2
    while high - low > 1:  # an event > low exists, none > high
        mid = (low + high) // 2
        if list(reader.events_after(mid, 1)):
            low = mid
        else:
            high = mid
    return high


async def stream(
    feed: Feed, client: Client, send: Callable[[str], Awaitable[None]], after: int | None
) -> str:
    """Send a client its events until it leaves or overflows; says which."""
    client.sent_id = feed.last_id if after is None else max(0, min(after, feed.last_id))
    if after is None:
        client.replaying = False
    else:
        while page := feed.replay_page(client):
            for event_id, text in page:
                if client.closed:
                    return "closed"
                await send(text)
                client.sent_id = event_id
    while True:
        event_id, text = await client.queue.get()
        if text == CLOSE:
            if not client.overflowed:
                return "closed"
            notice = {
                "type": "ws.overflow",
                "after": client.sent_id,
                "message": f"fell more than {feed.buffer} events behind; "
                f"reconnect with ?after={client.sent_id} to resume",
            }
            await send(_encode(notice).decode())
            return "overflow"
        if event_id and event_id <= client.sent_id:
            continue  # also read from the table while catching up
        await send(text)
        if event_id:
            client.sent_id = event_id
