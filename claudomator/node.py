"""This process as a node: its id (one per data dir for `serve`), its lease, renewed every
heartbeat, and the loop that notices other nodes' expired leases and the loss of its own.

A node is lost when its lease runs out (crash, `kill -9`, network cut, a stalled process): the
first other node to notice marks it lost, and its RUNNING executions end FAILED `node lost`
(retry policy applies). A node that comes back and finds itself lost stops those executions and
records no second result (every result is a compare-and-set on a RUNNING execution), then joins
again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import structlog

from claudomator.config import DataDir, write_private
from claudomator.errors import ClaudomatorError, DatabaseUnavailable
from claudomator.store.db import Event
from claudomator.store.nodes import UP, Nodes

log = structlog.get_logger("claudomator.node")

REAP_S = 1.0  # how often expired leases are looked for: a lost node is noticed within lease + 1 s


def node_id_for(data_dir: DataDir, configured: str, host: str) -> str:
    """`node.id` when configured, else the id kept in the data dir (made once: host + random)."""
    if configured:
        return configured
    for _ in range(2):
        if text := data_dir.node_id():
            return text
        write_private(data_dir.node_id_file, f"{host}-{secrets.token_hex(3)}\n")
    raise ClaudomatorError(f"{data_dir.node_id_file}: cannot make a node id (an empty file?)")


def may_take(
    row: dict[str, Any] | None,
    *,
    host: str,
    pid: int,
    process_started: float,
    alive_started: float | None,
    now: float,
) -> str:
    """Why this process may not become node `row["id"]`, or "" when it may. The id is free when no
    process holds it: never used, stopped, lost, its lease expired, or its process on this host is
    gone (`alive_started`: the start time of the process holding its pid now, None when none)."""
    if row is None or row["state"] != UP:
        return ""
    if (row["host"], row["pid"], row["process_started"]) == (host, pid, process_started):
        return ""
    if row["heartbeat_at"] + row["lease_s"] < now:
        return ""
    if row["host"] == host and (
        alive_started is None or abs(alive_started - row["process_started"]) > 1.0
    ):
        return ""
    return (
        f"node {row['id']} is in use by pid {row['pid']} on {row['host']} (heartbeat "
        f"{max(0.0, now - row['heartbeat_at']):.0f} s ago); give this data dir its own node.id, "
        "or stop that process"
    )


class Membership:
    """This process's row in `nodes`: join, renew, notice, leave."""

    def __init__(
        self,
        nodes: Nodes,
        node_id: str,
        *,
        kind: str,
        host: str,
        pid: int,
        process_started: float,
        heartbeat_s: float,
        lease_s: float,
        **fields: Any,
    ) -> None:
        self.nodes = nodes
        self.id = node_id
        self.kind = kind
        self.host = host
        self.pid = pid
        self.process_started = process_started
        self.heartbeat_s = heartbeat_s
        self.lease_s = lease_s
        self.fields = fields
        self.doubt = asyncio.Event()  # a claim was refused: renew (or learn of the loss) now

    def join(self, alive_started: Callable[[int], float | None]) -> Event:
        row = self.nodes.get(self.id)
        why = may_take(
            row,
            host=self.host,
            pid=self.pid,
            process_started=self.process_started,
            alive_started=alive_started(row["pid"]) if row and row["host"] == self.host else None,
            now=self.nodes.clock(),
        )
        if why:
            raise ClaudomatorError(why)
        return self.nodes.register(
            self.id,
            kind=self.kind,
            host=self.host,
            pid=self.pid,
            process_started=self.process_started,
            heartbeat_s=self.heartbeat_s,
            lease_s=self.lease_s,
            **self.fields,
        )

    def renew(self) -> bool:
        return self.nodes.heartbeat(self.id, self.pid, self.process_started)

    def leave(self) -> Event | None:
        return self.nodes.stop(self.id, self.pid)

    async def run(
        self, stop: asyncio.Event, reap: Callable[[], None], lost: Callable[[], None]
    ) -> None:
        """Until `stop`: renew the lease every heartbeat (`lost()` when it was lost meanwhile),
        and `reap()` other nodes' expired leases every `REAP_S`."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.heartbeat_s
        away = False
        while not stop.is_set():
            try:
                if loop.time() >= due or self.doubt.is_set():
                    self.doubt.clear()
                    due = loop.time() + self.heartbeat_s
                    if not self.renew():
                        log.error("node.lease_lost", node=self.id)
                        lost()
                reap()
                if away:
                    log.info("node.database_back", node=self.id)
                away = False
            except DatabaseUnavailable as e:  # away for a moment: told once, tried every round
                if not away:
                    log.warning("node.database_away", node=self.id, error=str(e))
                away = True
            except Exception:  # one bad round must not end the node
                log.exception("node.loop_error", node=self.id)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.doubt.wait())]
            await asyncio.wait(
                waits, timeout=min(REAP_S, self.heartbeat_s), return_when="FIRST_COMPLETED"
            )
            for w in waits:
                w.cancel()
