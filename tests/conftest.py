from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.needs import unavailable


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Never touch the real ~/.claudomator: every test gets its own data dir."""
    home = tmp_path / "home"
    monkeypatch.setenv("CLAUDOMATOR_HOME", str(home))
    for name in (
        "CLAUDOMATOR_CLAUDE_BIN",
        "CLAUDOMATOR_MAX_CONCURRENCY",
        "CLAUDOMATOR_DATABASE_URL",
        "CLAUDECODE",
    ):
        monkeypatch.delenv(name, raising=False)
    yield home


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    return _isolated_home


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `claude` on CLAUDOMATOR_CLAUDE_BIN."""
    from tests.fakes import make_fake_claude

    path = make_fake_claude(tmp_path / "bin")
    monkeypatch.setenv("CLAUDOMATOR_CLAUDE_BIN", str(path))
    return path


# The PostgreSQL the store tests also run against (CI starts one on 127.0.0.1; point this at yours).
POSTGRESQL = os.environ.get(
    "CLAUDOMATOR_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL, as a `database_url` whose search_path is that
    schema; dropped afterwards. Skips when PostgreSQL is unreachable, unless CI is set."""
    import psycopg

    from claudomator.config_values import mask_url

    try:
        admin = psycopg.connect(POSTGRESQL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        unavailable(
            f"PostgreSQL at {mask_url(POSTGRESQL)} is unreachable ({e}); "
            "set CLAUDOMATOR_TEST_POSTGRESQL to one you have"
        )
    schema = "claudomator_test_" + secrets.token_hex(6)
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            url = POSTGRESQL.replace("postgresql://", "postgresql+psycopg://", 1)
            yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store lives, once per backend: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "claudomator.db"
    return str(request.getfixturevalue("postgresql_url"))
