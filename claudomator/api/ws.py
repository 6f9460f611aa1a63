"""`/api/ws`: the WebSocket handler. The feed (`ws_feed`) decides what each client gets;
this holds one connection: refuse a bad `after`, send until the client leaves or overflows.
A plain HTTP GET of the same path is answered 426 Upgrade Required (not 405: GET is right, the
upgrade is missing)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import WebSocket, get, websocket
from litestar.exceptions import HTTPException
from litestar.params import FromQuery

from claudomator.api.access import POLICY_VIOLATION, deny_websocket
from claudomator.api.ws_feed import Feed, stream
from claudomator.metrics import Metrics


@websocket("/api/ws")
async def events(
    socket: WebSocket[Any, Any, Any],
    task: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None,
) -> None:
    """Every event as JSON ({"id", "type", "at", "task_id", ...}); ?task=ID narrows to one task,
    ?after=EVENT_ID resumes after a disconnect."""
    if after is not None and not (after.isascii() and after.isdigit() and len(after) < 19):
        message = "after must be an event id: a whole number >= 0"
        await deny_websocket(socket.scope, socket.receive, socket.send, 400, "bad_request", message)
        return
    feed: Feed = socket.app.state.feed
    registry: Metrics = socket.app.state.metrics
    client = feed.join(task)
    await socket.accept()
    registry.ws_clients.inc()

    async def send(text: str) -> None:
        await socket.send({"type": "websocket.send", "text": text, "bytes": None})

    resume = None if after is None else int(after)
    sender = asyncio.create_task(stream(feed, client, send, resume), name="api:ws-send")
    receiver = asyncio.create_task(_until_disconnect(socket), name="api:ws-receive")
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        feed.leave(client)
        registry.ws_clients.dec()
        receiver.cancel()
        if not sender.done():
            sender.cancel()
        results = await asyncio.gather(sender, receiver, return_exceptions=True)
    if results[0] == "overflow":
        with contextlib.suppress(Exception):
            await socket.close(code=POLICY_VIOLATION, reason="too far behind")


@get("/api/ws", include_in_schema=False)
async def events_upgrade() -> None:
    """The WebSocket's path asked without the upgrade (curl, a browser's address bar)."""
    raise HTTPException(
        status_code=426,
        detail="this is a WebSocket: connect with an Upgrade: websocket request (ws://…/api/ws)",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    while (await socket.receive())["type"] != "websocket.disconnect":
        pass  # clients have nothing to say; what they send is ignored
