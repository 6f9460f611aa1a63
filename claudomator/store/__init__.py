"""The database: SQLModel tables and every SQL statement.

Two paths over the same tables, so that each costs only what it must:

- `claudomator.store.reader`: reads with a plain DB-API connection (stdlib sqlite3, or psycopg for
  a PostgreSQL `database_url`), no SQLAlchemy import, for the CLI's fast commands, list endpoints
  and `/metrics`;
- `claudomator.store.db`: the `Store` that creates and migrates the schema and makes every write
  (SQLAlchemy Core on the SQLModel tables; each state change a compare-and-set with its event in
  the same transaction).

Nothing here imports the heavy path at package import time.
"""
