"""The write path: schema creation and migration, and every write.

Each state change is a compare-and-set (`UPDATE … WHERE id = ? AND state IN (…)`) checked against
the transition table, written with its event in one transaction; callers publish the returned
events only after the commit.

The same statements run on SQLite (the default: a file in the data dir) and on PostgreSQL
(`database_url`). Writers are serialized the same way on both: SQLite's `BEGIN IMMEDIATE` takes the
database's write lock up front; on PostgreSQL each write transaction first takes one
transaction-scoped advisory lock, so the read-modify-write steps (pool state, sources, git versions)
keep the semantics they were written for, and event ids are committed in order (the WebSocket feed
relies on it). A claim (`claim`, `start_execution`) is the compare-and-set QUEUED → RUNNING, which
exactly one of any number of racing nodes wins on both databases.

On PostgreSQL each write transaction that wrote events ends with a NOTIFY on the channel
`claudomator:<schema>` naming the node and the events' ids, so every other node's hub
(`store.relay`) hears of them at commit.
"""

from __future__ import annotations

import functools
import json
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    Float,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlmodel import SQLModel

from claudomator.config import FILE_MODE, is_postgresql_url, mask_url
from claudomator.errors import DatabaseUnavailable, LeaseLost, StoreError, TransitionError
from claudomator.ids import new_id
from claudomator.state import FINAL_STATES, State, valid_transition
from claudomator.store.files import SpoolRecords
from claudomator.store.schema import (
    DEPENDENCIES,
    EVENTS,
    EXECUTIONS,
    FILES,
    GIT_VERSIONS,
    META,
    MIGRATIONS,
    NODES,
    SCHEMA_VERSION,
    SOURCES,
    TASKS,
)

Event = dict[str, Any]


def event_type(state: State) -> str:
    """The dotted event a task entering `state` publishes."""
    if state in FINAL_STATES:
        return "task.finished"
    return {
        State.PENDING: "task.created",
        State.QUEUED: "task.queued",
        State.RUNNING: "task.started",
    }[state]


@dataclass(frozen=True)
class NewTask:
    """A task to record: its spec as JSON plus where it came from."""

    name: str
    spec_json: str
    priority: str
    priority_rank: int
    tags: list[str]
    depends_on: list[str]
    retry_json: str
    source: str
    source_path: str
    held: bool = False  # PENDING until `run`
    dispatcher: str = ""
    provenance_json: str = "{}"


# How long a SQLite write waits for another process's write lock before it fails (then it is
# DatabaseUnavailable: callers try again). The wait blocks the caller's thread, the event loop.
BUSY_TIMEOUT_S = 30.0

# pg_advisory_xact_lock keys: the schema's creation and migration, and every write transaction
_MIGRATE_LOCK = 0x636C61756431  # "claud1"
_WRITE_LOCK = 0x636C61756432  # "claud2"


class Store(SpoolRecords):
    """One database, safe to share between processes: a SQLite file (WAL, busy timeout,
    immediate write locks) or a PostgreSQL URL (`postgresql+psycopg://user@host:5432/db`)."""

    def __init__(self, location: Path | str, *, aging_s: float = 600.0) -> None:
        self.aging_s = aging_s
        self.node = ""  # the node using this store: its spool files, its name on notifications
        self._idle = True  # the last claim found nothing
        self.postgresql = is_postgresql_url(location)
        self.path: Path | None = None  # the SQLite file
        if self.postgresql:
            url = str(location)
            self.shown = mask_url(url)
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
            # no ping before each use (a round trip per transaction): a connection that died
            # fails its statement as DatabaseUnavailable, is dropped, and the caller tries again
            self.engine: Engine = create_engine(url)
            event.listen(self.engine, "connect", _postgresql_connect)
            new = False
        else:
            self.path = path = Path(location)
            self.shown = str(path)
            new = not path.exists()
            self.engine = create_engine(
                f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_S}
            )
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        event.listen(self.engine, "handle_error", self._unavailable)
        try:
            self._migrate()
            self.channel = self._channel()
            # one write lock per schema: clusters in other schemas do not wait for this one
            self._write_lock = _WRITE_LOCK + zlib.crc32(self.channel.encode())
        except (SQLAlchemyError, DatabaseUnavailable) as e:
            self.engine.dispose()
            reason = e.reason if isinstance(e, DatabaseUnavailable) else str(e)
            raise StoreError(f"{self.shown}: cannot open the database: {reason}") from e
        except BaseException:
            self.engine.dispose()
            raise
        if new and self.path is not None:
            self.path.chmod(FILE_MODE)

    def close(self) -> None:
        self.engine.dispose()

    def _unavailable(self, context: ExceptionContext) -> None:
        """Errors of the connection rather than of the statement become DatabaseUnavailable,
        which callers may try again; the URL in the message has its password masked."""
        error = context.sqlalchemy_exception
        if isinstance(error, OperationalError | InterfaceError):
            reason = str(context.original_exception)
            # SQLITE_BUSY ("database is locked"): another process held the write lock too long
            if str(getattr(context.original_exception, "sqlite_errorname", "")).startswith(
                "SQLITE_BUSY"
            ):
                reason += f" (another process held it past the busy timeout, {BUSY_TIMEOUT_S:g} s)"
            raise DatabaseUnavailable(self.shown, reason) from error

    # -- schema --------------------------------------------------------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A write transaction (see the module docstring for how writers are serialized)."""
        if not self.postgresql:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            ids: list[int] = []
            conn.info["event_ids"] = ids
            try:
                with conn.begin():
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({self._write_lock})")
                    yield conn
            finally:
                conn.info.pop("event_ids", None)
            if ids:  # after the commit, so that the lock is held no longer for it
                payload = f"{self.node} {ids[0]} {ids[-1]}"
                try:
                    conn.execute(_NOTIFY, {"p_channel": self.channel, "p_payload": payload})
                    conn.commit()
                except DatabaseUnavailable:  # the write stands: the feed's poll and the
                    pass  # intake's sweep catch what the other nodes were not told

    @property
    def now_sql(self) -> Any:
        """The database's clock in epoch seconds, as SQL: nodes' leases are judged by one clock."""
        if self.postgresql:
            return literal_column("extract(epoch from clock_timestamp())", Float)
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)

    def _tables(self, conn: Connection) -> set[str]:
        if self.postgresql:
            # nodes starting at once on an empty database: one creates, the others then see it
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK})")
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type='table'"
        return {r[0] for r in conn.exec_driver_sql(sql)}

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            tables = self._tables(conn)
            if "tasks" not in tables:
                SQLModel.metadata.create_all(
                    conn,
                    tables=[
                        TASKS,
                        EXECUTIONS,
                        EVENTS,
                        META,
                        FILES,
                        DEPENDENCIES,
                        GIT_VERSIONS,
                        SOURCES,
                        NODES,
                    ],
                )
                conn.execute(insert(META).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            if "meta" not in tables:
                raise StoreError(f"{self.shown}: not a claudomator database (no meta table)")
            version = int(
                conn.execute(
                    select(META.c.value).where(META.c.key == "schema_version")
                ).scalar_one()
            )
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.shown}: schema version {version} is newer than this claudomator "
                    f"({SCHEMA_VERSION}); upgrade claudomator"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    if isinstance(statement, str):
                        conn.exec_driver_sql(statement)
                    else:
                        SQLModel.metadata.tables[str(statement.__tablename__)].create(conn)
            if version != SCHEMA_VERSION:
                conn.execute(
                    update(META)
                    .where(META.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )

    def _channel(self) -> str:
        """The LISTEN/NOTIFY channel of this store's events: one per schema (channels are
        database-wide, and several clusters may share a database in their own schemas)."""
        if not self.postgresql:
            return ""
        with self.engine.connect() as conn:
            return f"claudomator:{conn.exec_driver_sql('SELECT current_schema()').scalar_one()}"

    def integrity_check(self) -> str:
        """SQLite's own check of the file; PostgreSQL keeps its own consistency ("ok")."""
        if self.postgresql:
            return "ok"
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar_one())

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _event(
        conn: Connection, type_: str, task_id: str = "", execution_id: str = "", **data: Any
    ) -> Event:
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
        if (ids := conn.info.get("event_ids")) is not None:
            ids.append(event_id)
        return {
            "id": event_id,
            "type": type_,
            "at": at,
            "task_id": task_id,
            "execution_id": execution_id,
            **data,
        }

    def _cas(
        self,
        conn: Connection,
        task_id: str,
        to: State,
        expect: Iterable[State],
        reason: str,
        values: dict[str, Any],
        bump_attempts: bool = False,
        execution_id: str = "",
        node: str = "",
        returned: dict[str, Any] | None = None,
    ) -> Event | None:
        """`returned` receives the task's row as updated (with `bump_attempts`: what an
        execution needs of it)."""
        allowed = [s.value for s in expect if valid_transition(s, to)]
        if not allowed:
            raise TransitionError(f"task {task_id}: no allowed transition to {to.value}")
        now = time.time()
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(p_id=task_id, p_allowed=allowed, p_to=to.value, p_reason=reason, p_now=now)
        params["p_aging"] = self.aging_s
        statement = _cas_statement(tuple(sorted(values)), to is State.QUEUED, bump_attempts)
        row = conn.execute(statement, params).first()
        if row is None:
            return None
        if returned is not None:
            returned.update(row._mapping)
        return self._task_event(conn, to, task_id, row._mapping, reason, values, execution_id, node)

    def _task_event(
        self,
        conn: Connection,
        to: State,
        task_id: str,
        row: Any,
        reason: str,
        values: dict[str, Any],
        execution_id: str,
        node: str,
    ) -> Event:
        """The event of a task entering `to` (`row`: its columns as updated, with its cost)."""
        return self._event(
            conn,
            event_type(to),
            task_id,
            execution_id,
            name=row["name"],
            state=to.value,
            reason=reason,
            attempts=row["attempts"],
            cost_usd=round(float(row["cost"]), 10),
            **({"not_before": values["not_before"]} if values.get("not_before") else {}),
            **({"file_id": row["file_id"]} if row["file_id"] else {}),
            **({"node": node} if node else {}),
        )

    # -- tasks ---------------------------------------------------------------------------------

    def resolve_name(self, name: str, conn: Connection | None = None) -> str | None:
        """The newest task with that name."""
        query = select(TASKS.c.id).where(TASKS.c.name == name).order_by(TASKS.c.id.desc()).limit(1)
        if conn is not None:
            return conn.execute(query).scalar_one_or_none()
        with self.engine.connect() as c:
            return c.execute(query).scalar_one_or_none()

    def add_tasks(
        self, tasks: Sequence[NewTask], file_id: str = ""
    ) -> tuple[list[str], list[Event]]:
        """Record the tasks of one file in one transaction."""
        with self._begin() as conn:
            return self._insert_tasks(conn, tasks, file_id)

    def _insert_tasks(
        self, conn: Connection, tasks: Sequence[NewTask], file_id: str
    ) -> tuple[list[str], list[Event]]:
        """`depends_on` resolves within the file first, then to the newest task of that name. A
        task is QUEUED unless held or waiting for dependencies that have not COMPLETED (PENDING)."""
        ids = [new_id() for _ in tasks]
        in_file = {t.name: i for t, i in zip(tasks, ids, strict=True)}
        events: list[Event] = []
        now = time.time()
        extra = {"file_id": file_id} if file_id else {}
        for task, task_id in zip(tasks, ids, strict=True):
            dep_ids = []
            for name in task.depends_on:
                dep = in_file.get(name) or self.resolve_name(name, conn)
                if dep is None:
                    raise StoreError(
                        f"task {task.name!r}: depends_on {name!r}: no task has that name"
                    )
                dep_ids.append(dep)
            waiting = any(d in ids for d in dep_ids) or bool(
                dep_ids
                and conn.execute(
                    select(func.count())
                    .select_from(TASKS)
                    .where(TASKS.c.id.in_(dep_ids), TASKS.c.state != State.COMPLETED.value)
                ).scalar_one()
            )
            state = State.PENDING if task.held or waiting else State.QUEUED
            conn.execute(
                _INSERT_TASK,
                {
                    "id": task_id,
                    "name": task.name,
                    "state": state.value,
                    "priority": task.priority,
                    "priority_rank": task.priority_rank,
                    "held": task.held,
                    "config_json": task.spec_json,
                    "retry_json": task.retry_json,
                    "tags_json": json.dumps(task.tags),
                    "depends_on_json": json.dumps(task.depends_on),
                    "depends_on_ids_json": json.dumps(dep_ids),
                    "source": task.source,
                    "source_path": task.source_path,
                    "provenance_json": task.provenance_json,
                    "file_id": file_id,
                    "dispatcher": task.dispatcher,
                    "sort_key": now + task.priority_rank * self.aging_s,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if dep_ids:
                conn.execute(
                    insert(DEPENDENCIES),
                    [{"task_id": task_id, "depends_on_id": d} for d in dict.fromkeys(dep_ids)],
                )
            events.append(
                self._event(
                    conn, "task.created", task_id, name=task.name, state=state.value, **extra
                )
            )
            if state is State.QUEUED:
                events.append(
                    self._event(
                        conn, "task.queued", task_id, name=task.name, state=state.value, **extra
                    )
                )
        return ids, events

    # -- spool files ---------------------------------------------------------------------------

    def ingest(
        self,
        entries: Sequence[tuple[str, Sequence[NewTask], str, str, str]],
        fingerprints: dict[str, str] | None = None,
    ) -> tuple[dict[str, list[str]], list[Event]]:
        """For each claimed file (file id, tasks, folder, name, error), in one transaction: its
        tasks recorded and the file's place (queued/ when valid, rejected/ with the error) and
        fingerprint (see `mirror.fingerprint`)."""
        out: dict[str, list[str]] = {}
        events: list[Event] = []
        now = time.time()
        with self._begin() as conn:
            for file_id, tasks, folder, name, error in entries:
                if tasks:
                    ids, evs = self._insert_tasks(conn, tasks, file_id)
                    out[file_id] = ids
                    events += evs
                conn.execute(
                    _PLACE_FILE,
                    {
                        "p_id": file_id,
                        "folder": folder,
                        "name": name,
                        "error": error,
                        "fingerprint": (fingerprints or {}).get(file_id, ""),
                        "updated_at": now,
                    },
                )
        return out, events

    # -- pool state (stored: every process sees it, and a restart keeps it) ---------------------

    def pool_state(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            value = conn.execute(select(META.c.value).where(META.c.key == "pool")).scalar()
        return dict(json.loads(value)) if value else {}

    def set_pool_state(self, **changes: Any) -> tuple[dict[str, Any], Event | None]:
        """Merge `changes` into the pool state; an event when something changed."""
        with self._begin() as conn:
            value = conn.execute(select(META.c.value).where(META.c.key == "pool")).scalar()
            state: dict[str, Any] = json.loads(value) if value else {}
            new = {**state, **changes}
            if new == state:
                return state, None
            if value is None:
                conn.execute(insert(META).values(key="pool", value=json.dumps(new)))
            else:
                conn.execute(update(META).where(META.c.key == "pool").values(value=json.dumps(new)))
            return new, self._event(conn, "pool.changed", **new)

    def task_row(self, task_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(TASKS).where(TASKS.c.id == task_id)).mappings().first()
        return dict(row) if row else None

    def transition(
        self,
        task_id: str,
        to: State,
        *,
        expect: Iterable[State],
        reason: str = "",
        **values: Any,
    ) -> Event | None:
        """Compare-and-set: move the task to `to` only if it is in one of `expect` (and the table
        allows it). Returns the event, or None when the task was not in an expected state."""
        with self._begin() as conn:
            return self._cas(conn, task_id, to, expect, reason, values)

    def pick(self, limit: int, now: float, dispatcher: str = "") -> list[str]:
        """QUEUED tasks for `dispatcher` whose back-off has passed, in priority order with aging
        (high before normal before low, oldest first; a task waiting long enough rises)."""
        with self.engine.connect() as conn:
            params = {"p_dispatcher": dispatcher, "p_now": now, "p_limit": limit}
            return list(conn.execute(_PICK, params).scalars())

    def release_dispatcher(self, dispatcher: str) -> None:
        """Tasks of a `run` that is gone: the servers may have them now."""
        with self._begin() as conn:
            conn.execute(
                update(TASKS).where(TASKS.c.dispatcher == dispatcher).values(dispatcher="")
            )

    def dispatchers(self) -> list[str]:
        """`run` processes that hold tasks not started yet."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(TASKS.c.dispatcher)
                    .where(
                        TASKS.c.dispatcher != "",
                        TASKS.c.state.in_([State.PENDING.value, State.QUEUED.value]),
                    )
                    .distinct()
                ).scalars()
            )

    def release_hold(self, task_id: str) -> None:
        with self._begin() as conn:
            conn.execute(update(TASKS).where(TASKS.c.id == task_id).values(held=False))

    def dependency_states(
        self, task_id: str, conn: Connection | None = None
    ) -> list[tuple[str, State]]:
        query = (
            select(TASKS.c.name, TASKS.c.state)
            .join(DEPENDENCIES, DEPENDENCIES.c.depends_on_id == TASKS.c.id)
            .where(DEPENDENCIES.c.task_id == task_id)
        )
        if conn is None:
            with self.engine.connect() as c:
                return [(r.name, State(r.state)) for r in c.execute(query)]
        return [(r.name, State(r.state)) for r in conn.execute(query)]

    def dependents(self, task_id: str) -> list[dict[str, Any]]:
        """PENDING tasks waiting for `task_id`, each with its dependencies' names and states."""
        with self.engine.connect() as conn:
            waiting = list(
                conn.execute(
                    select(TASKS.c.id, TASKS.c.held)
                    .join(DEPENDENCIES, DEPENDENCIES.c.task_id == TASKS.c.id)
                    .where(
                        DEPENDENCIES.c.depends_on_id == task_id,
                        TASKS.c.state == State.PENDING.value,
                    )
                )
            )
            return [
                {
                    "id": row.id,
                    "held": bool(row.held),
                    "dependencies": self.dependency_states(row.id, conn),
                }
                for row in waiting
            ]

    def waiting_dependents(self) -> dict[str, list[tuple[str, State]]]:
        """Every PENDING task waiting for dependencies (not held for `run`), with its
        dependencies' names and states: one query, for settling what a crash left waiting."""
        dep = TASKS.alias("dep")
        query = (
            select(DEPENDENCIES.c.task_id, dep.c.name, dep.c.state)
            .join(TASKS, TASKS.c.id == DEPENDENCIES.c.task_id)
            .join(dep, dep.c.id == DEPENDENCIES.c.depends_on_id)
            .where(TASKS.c.state == State.PENDING.value, TASKS.c.held.is_(False))
        )
        out: dict[str, list[tuple[str, State]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                out.setdefault(r.task_id, []).append((r.name, State(r.state)))
        return out

    # -- executions ----------------------------------------------------------------------------

    def start_execution(
        self, task_id: str, executions_dir: Path, **values: Any
    ) -> tuple[str, Event, dict[str, Any]] | None:
        """QUEUED → RUNNING with a new execution row (attempt n+1, its log paths under
        `executions_dir`); returns its id, the event and the task row (attempts already counted),
        or None if it lost the race. `values` name the owner (`owner_node` etc.)."""
        with self._begin() as conn:
            self._check_lease(conn, values.get("owner_node", ""), values.get("owner_pid", 0))
            return self._start(conn, task_id, executions_dir, values)

    def claim(
        self, limit: int, now: float, executions_dir: Path, dispatcher: str = "", **values: Any
    ) -> list[tuple[str, Event, dict[str, Any]]]:
        """Up to `limit` tasks `pick` would choose, started (as by `start_execution`) in one
        transaction whose one UPDATE picks and claims them: nodes racing for the queue never
        collide on a task. An empty queue costs one read, no write transaction."""
        params = {"p_dispatcher": dispatcher, "p_now": now, "p_limit": limit}
        if self._idle:  # the queue was empty last time: look before taking the write lock
            with self.engine.connect() as conn:
                if conn.execute(_PICK, {**params, "p_limit": 1}).first() is None:
                    return []
        node = values.get("owner_node", "")
        with self._begin() as conn:
            rows = conn.execute(
                self._claim_statement(bool(node)),
                {
                    **params,
                    "p_node": node,
                    "p_pid": values.get("owner_pid", 0),
                    "p_now_at": time.time(),
                },
            ).mappings()
            started = [self._started(conn, dict(row), executions_dir, values) for row in rows.all()]
            self._idle = not started
            if not started:  # nothing to claim, or no lease to claim with?
                self._check_lease(conn, node, values.get("owner_pid", 0))
            return started

    @functools.cache  # noqa: B019 (one Store per process: the two statements live as long)
    def _claim_statement(self, with_lease: bool) -> Any:
        pick = _pick(TASKS.alias("picked"))  # the UPDATE's own table, seen apart
        if with_lease:  # only while this node's lease holds
            pick = pick.where(self._lease_held.exists())
        return (
            update(TASKS)
            .where(TASKS.c.id.in_(pick), TASKS.c.state == State.QUEUED.value)
            .values(
                state=State.RUNNING.value,
                reason="",
                updated_at=bindparam("p_now_at"),
                attempts=TASKS.c.attempts + 1,
            )
            .returning(TASKS.c.id, *_STARTED)
        )

    @functools.cached_property
    def _lease_held(self) -> Any:
        return select(NODES.c.id).where(
            NODES.c.id == bindparam("p_node"),
            NODES.c.pid == bindparam("p_pid"),  # not another process that took the id since
            NODES.c.state == "up",
            NODES.c.heartbeat_at + NODES.c.lease_s >= self.now_sql,
        )

    def _check_lease(self, conn: Connection, node: str, pid: int) -> None:
        """A node claims only while its lease holds (it may have been stalled past it)."""
        if node and conn.execute(self._lease_held, {"p_node": node, "p_pid": pid}).first() is None:
            raise LeaseLost(f"node {node}: its lease expired or it was marked lost")

    def _start(
        self, conn: Connection, task_id: str, executions_dir: Path, values: dict[str, Any]
    ) -> tuple[str, Event, dict[str, Any]] | None:
        execution_id = new_id()
        row: dict[str, Any] = {}
        ev = self._cas(
            conn,
            task_id,
            State.RUNNING,
            [State.QUEUED],
            "",
            {},
            bump_attempts=True,
            execution_id=execution_id,
            node=values.get("owner_node", ""),
            returned=row,
        )
        if ev is None:
            return None
        return self._started(conn, row, executions_dir, values, execution_id, ev)

    def _started(
        self,
        conn: Connection,
        row: dict[str, Any],
        executions_dir: Path,
        values: dict[str, Any],
        execution_id: str = "",
        event: Event | None = None,
    ) -> tuple[str, Event, dict[str, Any]]:
        """The execution row of a task just claimed (`row`: its columns as updated), and its
        `task.started` event unless the compare-and-set wrote it."""
        execution_id = execution_id or new_id()
        if event is None:
            event = self._task_event(
                conn,
                State.RUNNING,
                row["id"],
                row,
                "",
                {},
                execution_id,
                values.get("owner_node", ""),
            )
        folder = executions_dir / execution_id
        conn.execute(
            _INSERT_EXECUTION,
            {
                "id": execution_id,
                "task_id": event["task_id"],
                "attempt": row["attempts"],
                "state": State.RUNNING.value,
                "started_at": time.time(),
                "stdout_path": str(folder / "stdout.log"),
                "stderr_path": str(folder / "stderr.log"),
                **values,
            },
        )
        return execution_id, event, row

    def add_events(self, events: Sequence[tuple[str, str, str, dict[str, Any]]]) -> list[Event]:
        """Progress events (type, task id, execution id, data) in one transaction."""
        if not events:
            return []
        with self._begin() as conn:
            return [self._event(conn, t, task, ex, **data) for t, task, ex, data in events]

    def finish_execution(
        self,
        execution_id: str,
        task_id: str,
        *,
        state: State,
        reason: str,
        task_state: State | None = None,
        task_reason: str | None = None,
        task_values: dict[str, Any] | None = None,
        then: tuple[State, str, dict[str, Any]] | None = None,
        progress: Sequence[tuple[str, str, str, dict[str, Any]]] = (),
        **values: Any,
    ) -> list[Event]:
        """Record how an execution ended (`state`, `reason`, `values`) and move its task
        RUNNING → `task_state` (default: `state`), then on to `then` (a retry), all in one
        transaction, after its last progress events. Empty when the execution was already final
        (marked `interrupted` or `node lost` by another process): then only the money it reports
        spent is added to it (the daily budget must count it); its state and result stand."""
        with self._begin() as conn:
            result = conn.execute(
                _FINISH_EXECUTION,
                {
                    "p_id": execution_id,
                    "state": state.value,
                    "reason": reason,
                    "finished_at": time.time(),
                    **values,
                },
            )
            if result.rowcount != 1:
                # already ended by another node (this one was found lost): its result stands,
                # but money spent is spent, and the daily budget must count it
                if values.get("cost_usd") and all(k in values for k in _SPEND):
                    spend = {f"s_{k}": values[k] for k in _SPEND}
                    conn.execute(_LATE_SPEND, {"p_id": execution_id, **spend})
                return []
            events = [self._event(conn, t, task, ex, **data) for t, task, ex, data in progress]
            first = task_state or state
            ev = self._cas(
                conn,
                task_id,
                first,
                [State.RUNNING],
                task_reason or reason,
                task_values or {},
                execution_id=execution_id,
            )
            if ev is not None:
                events.append(ev)
                if then is not None and (
                    nxt := self._cas(
                        conn, task_id, then[0], [first], *then[1:], execution_id=execution_id
                    )
                ):
                    events.append(nxt)
            return events

    def request_cancel(self, task_id: str) -> bool:
        """Flag the task's running execution for its owner to stop; False when none runs."""
        with self._begin() as conn:
            result = conn.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.task_id == task_id, EXECUTIONS.c.state == State.RUNNING.value)
                .values(cancel_requested=True)
            )
            return result.rowcount > 0

    def cancel_requested(self, task_ids: Iterable[str]) -> list[str]:
        ids = list(task_ids)
        if not ids:
            return []
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(EXECUTIONS.c.task_id).where(
                        EXECUTIONS.c.task_id.in_(ids),
                        EXECUTIONS.c.state == State.RUNNING.value,
                        EXECUTIONS.c.cancel_requested.is_(True),
                    )
                ).scalars()
            )

    def running_executions(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    EXECUTIONS.c.id,
                    EXECUTIONS.c.task_id,
                    EXECUTIONS.c.owner_host,
                    EXECUTIONS.c.owner_pid,
                    EXECUTIONS.c.owner_started,
                    EXECUTIONS.c.cancel_requested,
                ).where(EXECUTIONS.c.state == State.RUNNING.value)
            ).mappings()
            return [dict(r) for r in rows]


_INSERT_EVENT = insert(EVENTS)
_SPEND = (
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "model_usage_json",
)
_LATE_SPEND = (
    update(EXECUTIONS)
    .where(EXECUTIONS.c.id == bindparam("p_id"), EXECUTIONS.c.cost_usd < bindparam("s_cost_usd"))
    .values({k: bindparam(f"s_{k}") for k in _SPEND})
)
_NOTIFY = select(func.pg_notify(bindparam("p_channel"), bindparam("p_payload")))
_INSERT_TASK = insert(TASKS)
_PLACE_FILE = update(FILES).where(FILES.c.id == bindparam("p_id"))
_INSERT_EXECUTION = insert(EXECUTIONS)
# what a state change returns for its event: the task's cost so far without another read
_CHANGED = (
    TASKS.c.name,
    TASKS.c.attempts,
    TASKS.c.file_id,
    select(func.coalesce(func.sum(EXECUTIONS.c.cost_usd), 0.0))
    # spelled out: SQLite's RETURNING is rendered unqualified, where `id` would be executions.id
    .where(EXECUTIONS.c.task_id == literal_column("tasks.id"))
    .scalar_subquery()
    .label("cost"),
)
# and what an execution starting needs of its task
_STARTED = (*_CHANGED, TASKS.c.requeues, TASKS.c.config_json, TASKS.c.retry_json)
_FINISH_EXECUTION = update(EXECUTIONS).where(
    EXECUTIONS.c.id == bindparam("p_id"), EXECUTIONS.c.state == State.RUNNING.value
)


def _pick(tasks: Any) -> Any:
    """QUEUED tasks of a dispatcher whose back-off has passed, in priority order with aging."""
    return (
        select(tasks.c.id)
        .where(
            tasks.c.state == State.QUEUED.value,
            tasks.c.dispatcher == bindparam("p_dispatcher"),
            tasks.c.not_before <= bindparam("p_now"),
        )
        .order_by(tasks.c.sort_key)
        .limit(bindparam("p_limit"))
    )


_PICK = _pick(TASKS)


@functools.cache
def _cas_statement(keys: tuple[str, ...], queued: bool, bump_attempts: bool) -> Any:
    """The compare-and-set UPDATE for one shape of change, built once: hot paths then skip
    SQLAlchemy's statement construction and hit its compiled cache."""
    values: dict[str, Any] = {
        "state": bindparam("p_to"),
        "reason": bindparam("p_reason"),
        "updated_at": bindparam("p_now"),
        **{k: bindparam(f"v_{k}") for k in keys},
    }
    if queued:  # a waiting task rises one priority level per aging interval
        values["sort_key"] = TASKS.c.priority_rank * bindparam("p_aging") + bindparam("p_now")
    returning = list(_STARTED if bump_attempts else _CHANGED)
    if bump_attempts:  # an execution starts: what it needs of the task, without another read
        values["attempts"] = TASKS.c.attempts + 1
    return (
        update(TASKS)
        .where(
            TASKS.c.id == bindparam("p_id"),
            TASKS.c.state.in_(bindparam("p_allowed", expanding=True)),
        )
        .values(**values)
        .returning(*returning)
    )


def _postgresql_connect(dbapi_connection: Any, _record: Any) -> None:
    # A node stalled in the middle of a write transaction (a stopped process, a half-open
    # connection) would hold the write lock, and every other node's writes, for as long as it is
    # stalled: the server ends such a session after 10 s instead.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET idle_in_transaction_session_timeout = '10s'")
    dbapi_connection.commit()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let us issue BEGIN ourselves (IMMEDIATE: take the write lock up front, so concurrent
    # writers queue on the busy timeout instead of failing with "database is locked").
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute(f"PRAGMA busy_timeout = {round(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


__all__ = ["Event", "NewTask", "Store", "event_type"]
