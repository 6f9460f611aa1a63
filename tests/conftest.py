from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Never touch the real ~/.claudomator: every test gets its own data dir."""
    home = tmp_path / "home"
    monkeypatch.setenv("CLAUDOMATOR_HOME", str(home))
    for name in ("CLAUDOMATOR_CLAUDE_BIN", "CLAUDOMATOR_MAX_CONCURRENCY", "CLAUDECODE"):
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
