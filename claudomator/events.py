"""The in-process hub: events (immutable facts with a dotted type) fanned out to subscribers.

Publishing never blocks: each subscriber has a bounded queue, and one that falls too far behind is
dropped and told so by a final `hub.overflow` event. Events other nodes committed (PostgreSQL)
are published as `remote`: a subscriber that acts once per event cluster-wide (webhooks) skips them.
"""

from __future__ import annotations

import asyncio

from claudomator.records import Event


class Subscription:
    def __init__(self, hub: Hub, maxsize: int, remote: bool) -> None:
        self.hub = hub
        self.remote = remote
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.closed = False

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self.hub.unsubscribe(self)


class Hub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, maxsize: int = 1000, *, remote: bool = True) -> Subscription:
        """`remote=False`: only this node's own events."""
        sub = Subscription(self, maxsize, remote)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.closed = True

    def publish(self, event: Event, *, remote: bool = False) -> None:
        for sub in list(self._subs):
            if remote and not sub.remote:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.unsubscribe(sub)
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait({"type": "hub.overflow", "id": event.get("id", 0)})
