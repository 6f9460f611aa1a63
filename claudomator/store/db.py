"""The write path: `Store`, the one object the rest of the package writes through, made of one
part per table over one database.

    Database             store.database      engine, write transaction + NOTIFY, clock, migrations
     ├ Events            store.events        the events table (`write_event`: in every change)
     ├ Dependencies      store.dependencies  `depends_on` resolved; who waits for whom
     │ └ Tasks           store.tasks         recording tasks, compare-and-set changes, the pick
     │   ├ Executions    store.executions    QUEUED → RUNNING + an execution row, finish, cancel
     │   │ └ Rounds      store.rounds        an attempt's later executions: resumes, rounds
     │   └ Files         store.files         the spool's files; ingesting a claimed file
     ├ Sources           store.sources       each node's progress on its git sources
     ├ Spend             store.spend         money spent by a tag today, by a batch
     └ PoolState         store.pool_state    the stored pool state (paused, draining)

The parts are mixins over the real base class `Database` (each one typed against it, so its
`begin()` is real), not objects holding a reference to it: `Store` keeps its whole surface with no
forwarding methods, and the state shared by the parts (the node, the aging interval, the
statements built once) lives on the one object. `store.nodes.Nodes` is a part of its own over
the database's public face, built by who needs it.
"""

from __future__ import annotations

from pathlib import Path

from claudomator.records import Event
from claudomator.store.events import Events, event_type
from claudomator.store.files import Files
from claudomator.store.pool_state import PoolState
from claudomator.store.rounds import Rounds
from claudomator.store.sources import Sources
from claudomator.store.spend import Spend
from claudomator.store.tasks import NewTask


class Store(Rounds, Files, Sources, Spend, PoolState, Events):
    """One database, safe to share between processes: a SQLite file (WAL, busy timeout,
    immediate write locks) or a PostgreSQL URL (`postgresql+psycopg://user@host:5432/db`)."""

    def __init__(self, location: Path | str, *, aging_s: float = 600.0) -> None:
        self.aging_s = aging_s
        super().__init__(location)


__all__ = ["Event", "NewTask", "Store", "event_type"]
