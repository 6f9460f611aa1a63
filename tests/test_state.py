from __future__ import annotations

import itertools

import pytest

from claudomator.state import FINAL_STATES, TRANSITIONS, State, valid_transition

S = State
ALLOWED = {
    (S.PENDING, S.QUEUED),
    (S.PENDING, S.CANCELLED),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.TIMED_OUT),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.BUDGET_EXCEEDED),
    (S.RUNNING, S.QUEUED),
    (S.FAILED, S.QUEUED),
    (S.TIMED_OUT, S.QUEUED),
    (S.CANCELLED, S.QUEUED),
    (S.BUDGET_EXCEEDED, S.QUEUED),
}


@pytest.mark.parametrize(
    ("src", "dst"), list(itertools.product(State, State)), ids=lambda s: s.value
)
def test_every_transition(src: State, dst: State) -> None:
    assert valid_transition(src, dst) is ((src, dst) in ALLOWED)
    assert valid_transition(src.value, dst.value) is ((src, dst) in ALLOWED)


def test_table_covers_every_state_and_completed_is_final() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[S.COMPLETED] == frozenset()
    assert S.COMPLETED in FINAL_STATES and S.RUNNING not in FINAL_STATES


@pytest.mark.parametrize(
    ("src", "dst"), [("BOGUS", "QUEUED"), ("PENDING", "bogus"), ("pending", "QUEUED")]
)
def test_unknown_names_are_never_valid(src: str, dst: str) -> None:
    assert valid_transition(src, dst) is False
