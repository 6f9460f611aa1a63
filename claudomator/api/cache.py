"""Encoded pages of `GET /api/tasks`, kept until the next event.

A list page changes only when an event is written (every state change, cost and attempt comes
with one), so an answer can be served again, byte for byte, until the hub publishes anything or
the feed passes on an event of another process (within about a second, its poll). Building a
page of 50 from the store costs about 0.4 ms of Python; serving it from here costs nothing, and
that is the difference between a third and most of the HTTP ceiling (bench/api.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from claudomator.events import Hub

MAX_PAGES = 64


class PageCache:
    def __init__(self, hub: Hub, last_event_id: Callable[[], int], size: int = MAX_PAGES) -> None:
        self.hub = hub
        self.last_event_id = last_event_id  # the feed's: moves with other processes' events too
        self.size = size
        self.sub = hub.subscribe(1)  # only "something happened" matters, not what
        self.seen = last_event_id()
        self.pages: OrderedDict[Hashable, bytes] = OrderedDict()

    def _check(self) -> None:
        sub = self.sub
        seen = self.last_event_id()
        if sub.closed or not sub.queue.empty() or seen != self.seen:
            self.pages.clear()
            self.seen = seen
            if sub.closed:  # it overflowed while nobody asked: the hub let it go
                self.sub = self.hub.subscribe(1)
            else:
                while not sub.queue.empty():
                    sub.queue.get_nowait()

    def get(self, key: Hashable) -> bytes | None:
        self._check()
        page = self.pages.get(key)
        if page is not None:
            self.pages.move_to_end(key)
        return page

    def put(self, key: Hashable, page: bytes) -> None:
        self._check()
        self.pages[key] = page
        while len(self.pages) > self.size:
            self.pages.popitem(last=False)

    def close(self) -> None:
        self.sub.close()
