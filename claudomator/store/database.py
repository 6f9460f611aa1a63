"""The database every part of the store writes through: the engine, the write transaction, the
NOTIFY after it, the database's clock, the schema's creation and migration, and the mapping of
connection errors to `DatabaseUnavailable`.

The same statements run on SQLite (the default: a file in the data dir) and on PostgreSQL
(`database_url`). Writers are serialized the same way on both: SQLite's `BEGIN IMMEDIATE` takes the
database's write lock up front; on PostgreSQL each write transaction first takes one
transaction-scoped advisory lock, so the read-modify-write steps (pool state, sources, git versions)
keep the semantics they were written for, and event ids are committed in order (the WebSocket feed
relies on it).

On PostgreSQL each write transaction that wrote events ends with a NOTIFY on the channel
`claudomator:<schema>` naming the node and the events' ids, so every other node's hub
(`store.relay`) hears of them at commit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
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

from claudomator.config_values import is_postgresql_url, mask_url
from claudomator.datadir import FILE_MODE
from claudomator.errors import DatabaseUnavailable, StoreError
from claudomator.store.schema import META, MIGRATIONS, TABLES
from claudomator.store.sql import SCHEMA_VERSION, STORED_VERSION, clock

# How long a SQLite write waits for another process's write lock before it fails (then it is
# DatabaseUnavailable: callers try again). The wait blocks the caller's thread, the event loop.
BUSY_TIMEOUT_S = 30.0

# pg_advisory_xact_lock keys: the schema's creation and migration, and every write transaction
_MIGRATE_LOCK = 0x636C61756431  # "claud1"
_WRITE_LOCK = 0x636C61756432  # "claud2"

# where a PostgreSQL write transaction collects the ids of the events it wrote (`write_event`)
EVENT_IDS = "event_ids"


class Database:
    """One database, safe to share between processes: a SQLite file (WAL, busy timeout,
    immediate write locks) or a PostgreSQL URL (`postgresql+psycopg://user@host:5432/db`)."""

    def __init__(self, location: Path | str) -> None:
        self.node = ""  # the node using this store: its spool files, its name on notifications
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

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (see the module docstring for how writers are serialized). Reads
        outside one use `engine.connect()`."""
        if not self.postgresql:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            ids: list[int] = []
            conn.info[EVENT_IDS] = ids
            try:
                with conn.begin():
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({self._write_lock})")
                    yield conn
            finally:
                conn.info.pop(EVENT_IDS, None)
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
        return literal_column(clock(self.postgresql), Float)

    # -- the schema ----------------------------------------------------------------------------

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
                SQLModel.metadata.create_all(conn, tables=TABLES)
                conn.execute(insert(META).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            if "meta" not in tables:
                raise StoreError(f"{self.shown}: not a claudomator database (no meta table)")
            version = int(conn.exec_driver_sql(STORED_VERSION).scalar_one())
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


_NOTIFY = select(func.pg_notify(bindparam("p_channel"), bindparam("p_payload")))


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
