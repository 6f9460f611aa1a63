"""A randomized crash campaign against real `serve` processes (tests/chaos/): rounds of task
files dropped and serve killed at random moments (a third of the kills a power loss), then one
serve settles everything; every invariant must hold. Seeded: CLAUDOMATOR_CHAOS_SEED replays the
choices of a campaign (the failure message names its seed); otherwise a random seed each run."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos import Campaign, campaign, check, summary


def seed() -> int:
    return int(os.environ.get("CLAUDOMATOR_CHAOS_SEED") or random.randrange(2**31))


def run_and_check(c: Campaign) -> None:
    try:
        c.run()
        violations = check(c)
    except BaseException as e:
        e.add_note(f"chaos seed {c.seed}: replay with CLAUDOMATOR_CHAOS_SEED={c.seed}")
        raise
    assert not any(violations.values()), summary(c, violations)


@pytest.mark.timeout(240)  # ~65 s on 2 idle cores; room for a loaded machine
def test_serve_killed_forty_times_on_sqlite(tmp_path: Path) -> None:
    with campaign(tmp_path / "chaos", seed(), 40, settle_s=40) as c:
        run_and_check(c)


@pytest.mark.timeout(150)  # ~25 s on 2 idle cores
def test_three_nodes_killed_and_stalled_on_postgresql(tmp_path: Path, postgresql_url: str) -> None:
    with campaign(
        tmp_path / "chaos", seed(), 10, nodes=3, database_url=postgresql_url, settle_s=30
    ) as c:
        run_and_check(c)
