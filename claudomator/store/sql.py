"""What the two paths over the database must agree on, declared once as plain text: the schema
version, the database's clock, a task's cost, the stored pool state.

The write path (`store.db`, SQLAlchemy) and the light read path (`store.reader`, a DB-API
connection) both run these; this module imports no SQLAlchemy so that the reader may import it.
"""

from __future__ import annotations

import json
from typing import cast

from claudomator.stored import PoolState

# The schema `store.schema` declares: its MIGRATIONS bring any older database to it; the reader
# reads this one (a database older than it is migrated first, see `Reader.outdated`).
SCHEMA_VERSION = 6

# rows of the `meta` table (key, value)
STORED_VERSION = "SELECT value FROM meta WHERE key = 'schema_version'"
POOL_STATE = "SELECT value FROM meta WHERE key = 'pool'"


def pool_state_from(value: str | None) -> PoolState:
    """The pool state (paused, why, until when, draining …) from its `meta` value; {} when none."""
    return cast(PoolState, json.loads(value)) if value else {}


def clock(postgresql: bool) -> str:
    """The database's clock in epoch seconds, as an SQL expression: nodes' leases are judged by
    this one clock, whatever the hosts' clocks say."""
    if postgresql:
        return "extract(epoch from clock_timestamp())"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def task_cost(tasks: str) -> str:
    """A task's cost so far (the sum over its executions), as a scalar subquery; `tasks` names the
    tasks table in the enclosing statement (an alias, or `tasks` in an UPDATE's RETURNING)."""
    return f"(SELECT COALESCE(SUM(e.cost_usd), 0) FROM executions e WHERE e.task_id = {tasks}.id)"


def tagged(tag: str) -> str:
    """The LIKE pattern (escape character backslash) of a tags list (`tags_json`: a JSON array
    of strings) holding `tag`."""
    quoted = json.dumps(tag)
    return "%" + quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
