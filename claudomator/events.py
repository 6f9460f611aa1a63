"""The in-process hub: events (immutable facts with a dotted type) fanned out to subscribers.

Publishing never blocks: each subscriber has a bounded queue, and one that falls too far behind is
dropped and told so by a final `hub.overflow` event.
"""

from __future__ import annotations

import asyncio
from typing import Any

Event = dict[str, Any]


class Subscription:
    def __init__(self, hub: Hub, maxsize: int) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.closed = False

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self.hub.unsubscribe(self)


class Hub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.closed = True

    def publish(self, event: Event) -> None:
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.unsubscribe(sub)
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait({"type": "hub.overflow", "id": event.get("id")})
