"""taskfile never raises anything but TaskFileError, whatever the bytes or the data."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claudomator.errors import TaskFileError
from claudomator.task import PERMISSION_MODES, PRIORITIES, TaskSpec
from claudomator.taskfile import ParsedFile, parse_bytes, parse_object

FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

big = st.sampled_from([2**63, -(2**64), 10**400])  # past float() and past 64 bits
scalars = st.none() | st.booleans() | st.integers() | big | st.floats() | st.text(max_size=20)
keys = st.text(max_size=10) | st.integers() | st.booleans() | st.none()
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
names = st.sampled_from(["a", "b", "c", ""]) | st.text(max_size=8)
strings = st.lists(names, max_size=3)
claude = st.fixed_dictionaries(
    {"instructions": names | st.integers()},
    optional={
        "model": names | st.integers() | st.none(),
        "max_budget_usd": st.floats() | st.integers() | st.booleans() | names,
        "permission_mode": st.sampled_from(PERMISSION_MODES) | names,
        "allowed_tools": strings | names,
        "max_turns": st.integers(-2, 50) | st.floats() | st.booleans(),
        "env": st.dictionaries(names, names | st.integers() | st.booleans() | st.none()),
        "modle": names,
    },
)
task = st.fixed_dictionaries(
    {},
    optional={
        "name": names | st.integers(),
        "claude": claude | nested,
        "timeout": st.sampled_from(["15m", "1h30m", "x", "90"]) | st.integers() | st.floats(),
        "priority": st.sampled_from(PRIORITIES) | names,
        "tags": strings | names,
        "depends_on": strings,
        "retry": st.fixed_dictionaries(
            {}, optional={"max_attempts": st.integers(-1, 200), "backoff": names | st.integers()}
        ),
        "bogus": scalars,
    },
)
batch = st.fixed_dictionaries(
    {"tasks": st.lists(task, max_size=4) | nested},
    optional={"defaults": task | nested},
)
yaml_ish = st.text(
    alphabet=string.ascii_letters[:6] + "0129 :-[]{},&*!|>'\"#%@<\n\t\\.~?", max_size=120
)


def check(outcome: ParsedFile | TaskFileError, path: str) -> None:
    """A valid ParsedFile, or errors that are all well formed."""
    if isinstance(outcome, TaskFileError):
        assert outcome.errors
        for error in outcome.errors:
            assert error.file == path
            assert error.line >= 0 and error.column >= 0
            assert (error.line == 0) == (error.column == 0)
            assert error.message and "Input should" not in error.message
            assert str(error).startswith(path)
        assert any(not e.warning for e in outcome.errors)
        return
    assert outcome.path == path
    assert outcome.tasks and all(isinstance(t, TaskSpec) for t in outcome.tasks)
    assert all(w.warning for w in outcome.warnings)
    assert len({t.name for t in outcome.tasks}) == len(outcome.tasks)


def from_bytes(data: bytes) -> ParsedFile | TaskFileError:
    try:
        return parse_bytes(data, "p.yaml", unknown_dependency="warn")
    except TaskFileError as e:
        return e


def from_object(data: object) -> ParsedFile | TaskFileError:
    try:
        return parse_object(data, "api", unknown_dependency="warn")
    except TaskFileError as e:
        return e


def dump(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()  # allow_unicode mangles U+0085


@FAST
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check(from_bytes(data), "p.yaml")


@FAST
@given(yaml_ish)
def test_random_yaml_like_text(text: str) -> None:
    check(from_bytes(text.encode()), "p.yaml")


@FAST
@given(nested)
def test_random_data_dumped(data: Any) -> None:
    check(from_bytes(dump(data)), "p.yaml")
    check(from_object(data), "api")


@FAST
@given(task | batch)
def test_task_like_data_same_answer_as_yaml_or_json(data: dict[str, Any]) -> None:
    from_yaml, from_json = from_bytes(dump(data)), from_object(data)
    check(from_yaml, "p.yaml")
    check(from_json, "api")
    assert type(from_yaml) is type(from_json)
    if isinstance(from_yaml, ParsedFile) and isinstance(from_json, ParsedFile):
        assert from_yaml.tasks == from_json.tasks
        assert from_yaml.is_batch == from_json.is_batch
    if isinstance(from_yaml, TaskFileError) and isinstance(from_json, TaskFileError):
        assert {e.field for e in from_yaml.errors} == {e.field for e in from_json.errors}


@FAST
@given(task)
def test_valid_tasks_round_trip(data: dict[str, Any]) -> None:
    """Whatever parses, parses again from its own JSON dump to the same task."""
    outcome = from_bytes(dump(data))
    if isinstance(outcome, ParsedFile):
        [spec] = outcome.tasks
        again = parse_object(spec.model_dump(mode="json"), "api", known_name=lambda n: True)
        assert again.tasks == [spec]


EXAMPLES = sorted(
    p.read_bytes()
    for p in (Path(__file__).resolve().parent.parent / "inbox.example").glob("*.yaml")
)
edits = st.lists(
    st.tuples(
        st.integers(0, 3000), st.integers(0, 3), st.sampled_from(list(b" :-[]{}&*!\n\t'\"#<x1"))
    ),
    min_size=1,
    max_size=4,
)


@FAST
@given(st.sampled_from(EXAMPLES), edits)
def test_damaged_example_files(data: bytes, changes: list[tuple[int, int, int]]) -> None:
    """Near-valid files reach the deep paths (merging, validation, dependencies)."""
    text = bytearray(data)
    for at, cut, char in changes:
        at %= len(text) + 1
        text[at : at + cut] = bytes([char])
    check(from_bytes(bytes(text)), "p.yaml")
