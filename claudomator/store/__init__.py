"""The database: SQLModel tables and every SQL statement.

Two paths over the same tables, so that each costs only what it must:

- `claudomator.store.reader`: reads with a plain DB-API connection (stdlib sqlite3, or psycopg for
  a PostgreSQL `database_url`), no SQLAlchemy import, for the CLI's fast commands, list endpoints
  and `/metrics`;
- `claudomator.store.db`: the `Store` that creates and migrates the schema and makes every write
  (SQLAlchemy Core on the SQLModel tables; each state change a compare-and-set with its event in
  the same transaction), one part per table over `store.database` (see `store.db`'s docstring for
  the map); `store.nodes` is the nodes table's part.

What both paths must agree on (the schema version, the database's clock, a task's cost, the pool
state) is declared once in `store.sql`, which imports no SQLAlchemy. `store.schema` holds the
tables and their migrations, `store.rows` the JSON shape of a row, `store.relay` the LISTEN side of
PostgreSQL's NOTIFY.

Nothing here imports the heavy path at package import time.
"""
