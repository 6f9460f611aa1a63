"""taskfile: real files in tmp_path; every error class with its exact position and field path."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

import claudomator.taskfile
from claudomator.errors import FieldError, TaskFileError
from claudomator.task import ClaudeSpec, RetryPolicy, TaskSpec
from claudomator.taskfile import ParsedFile, parse_bytes, parse_file, parse_object

EXAMPLES = Path(__file__).resolve().parent.parent / "inbox.example"
SHOWN = "inbox/a.yaml"


def parse(tmp_path: Path, text: str | bytes, **kwargs: Any) -> ParsedFile:
    """Write `text` to a real file and parse it, shown as inbox/a.yaml."""
    path = tmp_path / "a.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return parse_file(path, display_path=SHOWN, **kwargs)


def errors(tmp_path: Path, text: str | bytes, **kwargs: Any) -> list[str]:
    with pytest.raises(TaskFileError) as info:
        parse(tmp_path, text, **kwargs)
    assert str(info.value) == "\n".join(str(e) for e in info.value.errors)
    return [str(e) for e in info.value.errors]


# --- valid files -------------------------------------------------------------------------------


def test_task_file_every_field(tmp_path: Path) -> None:
    text = """\
        name: "My Task"
        claude:
          model: "sonnet"
          instructions: |
            Do something useful.
          working_dir: "/srv/project"
          max_budget_usd: 1.00
          permission_mode: "plan"
          allowed_tools: ["Bash", "Read"]
          disallowed_tools: ["WebFetch"]
          max_turns: 30
          append_system_prompt: "Commit nothing."
          add_dirs: ["/srv/lib"]
          fallback_model: "haiku"
          env: {MY_FLAG: "1", DEBUG: 1, VERBOSE: yes, HEX: 0x10, RATIO: 1.50}
        timeout: "15m"
        priority: "high"
        tags: ["ci"]
        depends_on: ["build"]
        retry: {max_attempts: 3, backoff: "30s", on_timeout: true}
        """
    parsed = parse(tmp_path, textwrap.dedent(text), known_name=lambda name: name == "build")
    assert parsed.path == SHOWN
    assert parsed.is_batch is False
    assert parsed.warnings == []
    [task] = parsed.tasks
    assert task.name == "My Task"
    assert task.claude.instructions == "Do something useful.\n"
    assert task.claude.model == "sonnet"
    assert task.claude.max_budget_usd == 1.0
    assert task.claude.permission_mode == "plan"
    assert task.claude.allowed_tools == ["Bash", "Read"]
    assert task.claude.max_turns == 30
    assert task.claude.add_dirs == ["/srv/lib"]
    # numbers and booleans in env become exactly the text written
    assert task.claude.env == {
        "MY_FLAG": "1",
        "DEBUG": "1",
        "VERBOSE": "yes",
        "HEX": "0x10",
        "RATIO": "1.50",
    }
    assert task.timeout == 900.0
    assert task.priority == "high"
    assert task.depends_on == ["build"]
    assert task.retry == RetryPolicy(
        max_attempts=3, backoff=30.0, on_timeout=True, max_cost_usd=None, resume=True
    )


def test_minimal_task_gets_defaults(tmp_path: Path) -> None:
    [task] = parse(tmp_path, "name: a\nclaude:\n  instructions: go\n").tasks
    assert task == TaskSpec.model_validate({"name": "a", "claude": {"instructions": "go"}})
    assert task.retry.max_attempts == 1
    assert task.priority == "normal"


def test_date_like_and_number_like_strings(tmp_path: Path) -> None:
    [task] = parse(tmp_path, "name: 2024-01-01\nclaude: {instructions: '42'}\n").tasks
    assert task.name == "2024-01-01"
    assert task.claude.instructions == "42"


def test_batch_defaults_deep_merge(tmp_path: Path) -> None:
    text = """\
        defaults:
          claude:
            model: sonnet
            max_budget_usd: 1.0
            allowed_tools: [Read, Edit]
            env: {A: "1", B: "2"}
          tags: [docs]
          priority: low
        tasks:
          - name: first
            claude: {instructions: one}
          - name: second
            priority: high
            tags: [release]
            claude:
              instructions: two
              model: opus
              allowed_tools: [Bash]
              env: {B: "3"}
        """
    parsed = parse(tmp_path, textwrap.dedent(text))
    assert parsed.is_batch is True
    first, second = parsed.tasks
    assert (first.name, first.claude.model, first.priority) == ("first", "sonnet", "low")
    assert first.tags == ["docs"]
    assert first.claude.allowed_tools == ["Read", "Edit"]
    assert first.claude.max_budget_usd == 1.0
    # the task wins; mappings merge key by key; lists are replaced, not appended
    assert (second.claude.model, second.priority) == ("opus", "high")
    assert second.tags == ["release"]
    assert second.claude.allowed_tools == ["Bash"]
    assert second.claude.env == {"A": "1", "B": "3"}
    assert second.claude.max_budget_usd == 1.0


def test_batch_dependency_in_file(tmp_path: Path) -> None:
    text = "tasks:\n  - {name: a, claude: {instructions: i}}\n"
    text += "  - {name: b, claude: {instructions: i}, depends_on: [a]}\n"
    asked: list[str] = []

    def known_name(name: str) -> bool:
        asked.append(name)
        return False

    parsed = parse(tmp_path, text, known_name=known_name)
    assert [t.depends_on for t in parsed.tasks] == [[], ["a"]]
    assert asked == []  # a name in the file is not looked up in the store


def test_merge_keys_supported(tmp_path: Path) -> None:
    text = """\
        tasks:
          - name: a
            claude: &base
              instructions: shared
              model: sonnet
              allowed_tools: [Read]
          - name: b
            claude:
              <<: *base
              model: opus
          - name: c
            claude:
              <<: [{model: first}, *base]
        """
    a, b, c = parse(tmp_path, textwrap.dedent(text)).tasks
    assert (b.claude.instructions, b.claude.model, b.claude.allowed_tools) == (
        "shared",
        "opus",
        ["Read"],
    )
    assert (c.claude.instructions, c.claude.model) == ("shared", "first")  # earlier wins
    shared = {"instructions": "shared", "model": "sonnet", "allowed_tools": ["Read"]}
    assert a.claude == ClaudeSpec.model_validate(shared)


def test_merged_value_error_points_at_anchor(tmp_path: Path) -> None:
    text = "tasks:\n  - name: a\n    claude: &base {instructions: i, max_turns: 0}\n"
    text += "  - name: b\n    claude:\n      <<: *base\n"
    assert errors(tmp_path, text) == [
        "inbox/a.yaml:3:48: tasks[0].claude.max_turns: must be greater than 0, got 0",
        "inbox/a.yaml:3:48: tasks[1].claude.max_turns: must be greater than 0, got 0",
    ]


# --- every error class, with line:column and field path -----------------------------------------

TASK = "name: a\nclaude: {instructions: i}\n"
KNOWN = "name, claude, timeout, priority, tags, depends_on, retry, concurrency_key, stall_timeout, verify, workspace"
MODES = "acceptEdits, auto, bypassPermissions, default, dontAsk, plan"
TWO = "tasks:\n  - name: a\n    claude: {instructions: i}\n"

ERROR_TABLE: list[tuple[str, str, list[str]]] = [
    (
        "unknown key, did you mean",
        "name: a\nclaude:\n  instructions: i\n  modle: sonnet\n",
        ["4:3: claude.modle: unknown field; did you mean 'model'?"],
    ),
    (
        "unknown top key, did you mean",
        TASK + "prioritty: high\n",
        ["3:1: prioritty: unknown field; did you mean 'priority'?"],
    ),
    (
        "unknown key, no close match",
        TASK + "zzzzzz: 1\n",
        [f"3:1: zzzzzz: unknown field; known fields are {KNOWN}"],
    ),
    (
        "unknown retry key",
        TASK + "retry:\n  max_attempt: 3\n",
        ["4:3: retry.max_attempt: unknown field; did you mean 'max_attempts'?"],
    ),
    (
        "permission_mode",
        "name: a\nclaude:\n  instructions: i\n  model: m\n  max_turns: 3\n"
        "  permission_mode: bogus\n",
        [f"6:20: claude.permission_mode: 'bogus' is not one of {MODES}"],
    ),
    (
        "priority",
        TASK + "priority: urgent\n",
        ["3:11: priority: 'urgent' is not one of high, normal, low"],
    ),
    ("missing name", "claude:\n  instructions: i\n", ["1:1: name: missing required field"]),
    (
        "missing instructions points at claude's mapping",
        "name: a\nclaude:\n  model: sonnet\n",
        ["3:3: claude.instructions: missing required field"],
    ),
    ("missing claude", "# comment\nname: a\n", ["2:1: claude: missing required field"]),
    ("empty name", "name: ''\nclaude: {instructions: i}\n", ["1:7: name: must not be empty"]),
    (
        "list given a string",
        TASK + "tags: ci\n",
        ["3:7: tags: expected a list of strings, got a string"],
    ),
    (
        "list item not a string",
        TASK + "tags: [ci, 7]\n",
        ["3:12: tags[1]: expected a string, got a number (7); put it in quotes"],
    ),
    (
        "string given a number",
        "name: a\nclaude: {instructions: i, model: 3}\n",
        ["2:34: claude.model: expected a string, got a number (3); put it in quotes"],
    ),
    (
        "string given a boolean",
        "name: yes\nclaude: {instructions: i}\n",
        ["1:7: name: expected a string, got a boolean (true); put it in quotes"],
    ),
    (
        "mapping given a string",
        "name: a\nclaude: do it\n",
        ["2:9: claude: expected a mapping, got a string"],
    ),
    (
        "money zero",
        "name: a\nclaude: {instructions: i, max_budget_usd: 0}\n",
        ["2:43: claude.max_budget_usd: must be greater than 0, got 0"],
    ),
    (
        "money negative",
        "name: a\nclaude: {instructions: i, max_budget_usd: -1.5}\n",
        ["2:43: claude.max_budget_usd: must be greater than 0, got -1.5"],
    ),
    (
        "money quoted",
        "name: a\nclaude: {instructions: i, max_budget_usd: '1.50'}\n",
        ["2:43: claude.max_budget_usd: expected a number, got a string"],
    ),
    (
        "money boolean",
        "name: a\nclaude: {instructions: i, max_budget_usd: true}\n",
        ["2:43: claude.max_budget_usd: expected a number, got a boolean (true)"],
    ),
    (
        "money infinite",
        "name: a\nclaude: {instructions: i, max_budget_usd: .inf}\n",
        ["2:43: claude.max_budget_usd: must be a finite number, got inf"],
    ),
    (
        "whole number given a fraction",
        "name: a\nclaude: {instructions: i, max_turns: 1.5}\n",
        ["2:38: claude.max_turns: expected a whole number, got a number (1.5)"],
    ),
    (
        "duration",
        TASK + "timeout: 15 minutes\n",
        [
            "3:10: timeout: '15 minutes' is not a duration (use whole numbers with units "
            "ms, s, m, h, d, e.g. 90s, 15m, 1h30m)"
        ],
    ),
    (
        "duration too long for a float",
        TASK + 'timeout: "' + "9" * 400 + 's"\n',
        ["3:10: timeout: duration too long (100 years at most)"],
    ),
    (
        "integer too large",
        TASK + "timeout: 1" + "0" * 400 + "\n",
        ["3:10: timeout: number too large"],
    ),
    (
        "bounds, two errors in one mapping",
        TASK + "retry: {max_attempts: 0, backoff: -1}\n",
        [
            "3:23: retry.max_attempts: must be at least 1, got 0",
            "3:35: retry.backoff: -1 is not a duration (must be a number >= 0)",
        ],
    ),
    (
        "upper bound",
        TASK + "retry: {max_attempts: 101}\n",
        ["3:23: retry.max_attempts: must be at most 100, got 101"],
    ),
    (
        "boolean given text",
        TASK + "retry: {on_timeout: maybe}\n",
        ["3:21: retry.on_timeout: expected true or false, got a string"],
    ),
    (
        "env not a mapping",
        "name: a\nclaude: {instructions: i, env: [A]}\n",
        ["2:32: claude.env: expected a mapping of strings, got a list"],
    ),
    (
        "env key read as a boolean",
        "name: a\nclaude:\n  instructions: i\n  env:\n    ON: 1\n",
        ["5:5: claude.env: keys must be strings: 'ON' is read as a boolean; put it in quotes"],
    ),
    (
        "env value null",
        "name: a\nclaude:\n  instructions: i\n  env:\n    A:\n",
        ["5:7: claude.env.A: expected a string, got null"],
    ),
    ("duplicate key", TASK + "name: b\n", ["3:1: name: duplicate key (first on line 1)"]),
    (
        "python tag",
        "name: !!python/object/apply:os.system ['echo hi']\nclaude: {instructions: i}\n",
        ["1:7: name: tag !!python/object/apply:os.system is not allowed"],
    ),
    (
        "custom tag",
        "name: a\nclaude: {instructions: !vault secret}\n",
        ["2:24: claude.instructions: tag !vault is not allowed"],
    ),
    ("set tag", TASK + "tags: !!set {a, b}\n", ["3:7: tags: tag !!set is not allowed"]),
    (
        "explicit int tag on text",
        "name: a\nclaude: {instructions: i, max_turns: !!int ten}\n",
        ["2:38: claude.max_turns: 'ten' is not a valid !!int"],
    ),
    (
        "syntax error",
        "name: a\nclaude:\n  instructions: [i\n",
        ["4:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)"],
    ),
    (
        "tab indentation",
        "name: a\nclaude:\n\tinstructions: i\n",
        [
            "3:1: invalid YAML: found character that cannot start any token "
            "(while scanning for the next token)"
        ],
    ),
    (
        "undefined alias",
        "name: *nope\nclaude: {instructions: i}\n",
        ["1:7: invalid YAML: found undefined alias"],
    ),
    ("empty file", "", ["1:1: the file is empty"]),
    ("only comments", "# nothing here\n\n", ["1:1: the file is empty"]),
    ("null document", "---\n", ["2:1: expected a task or batch mapping, got null"]),
    ("top level list", "- name: a\n", ["1:1: expected a task or batch mapping, got a list"]),
    ("top level text", "just text\n", ["1:1: expected a task or batch mapping, got a string"]),
    (
        "two documents",
        TASK + "---\nname: b\n",
        ["4:1: a second YAML document (---); put many tasks in one batch file"],
    ),
    (
        "control character",
        TASK + "tags: [\x01]\n",
        ["3:8: invalid YAML: character 0x1 is not allowed"],
    ),
    (
        "nested too deep",
        TASK + "tags: " + "[" * 70 + "]" * 70 + "\n",
        ["3:71: nested deeper than 64 levels"],
    ),
    (
        "merge of a non-mapping",
        "name: a\nclaude:\n  <<: [1]\n  instructions: i\n",
        ["3:8: claude: '<<' merges a mapping or a list of mappings"],
    ),
    (
        "recursive merge",
        "name: a\nclaude: &c\n  instructions: i\n  <<: *c\n",
        ["2:9: claude: recursive alias: the value contains itself"],
    ),
    (
        "recursive alias (an alias is its anchor's node, so the anchor's position)",
        TASK + "tags: &t [a, *t]\n",
        ["3:7: tags[1]: recursive alias: the value contains itself"],
    ),
    (
        "every error, in file order",
        "prioritty: high\nclaude:\n  model: 3\n",
        [
            "1:1: name: missing required field",
            "1:1: prioritty: unknown field; did you mean 'priority'?",
            "3:3: claude.instructions: missing required field",
            "3:10: claude.model: expected a string, got a number (3); put it in quotes",
        ],
    ),
    (
        "self dependency",
        TASK + "depends_on: [a]\n",
        ["3:14: depends_on[0]: task 'a' depends on itself"],
    ),
    (
        "unknown dependency is an error on submission",
        TASK + "depends_on: [build]\n",
        ["3:14: depends_on[0]: unknown dependency 'build': no task in this file has that name"],
    ),
    # batch files
    (
        "batch task field",
        TWO + "  - name: b\n    claude:\n      instructions: i\n      model: [x]\n",
        ["7:14: tasks[1].claude.model: expected a string, got a list"],
    ),
    (
        "batch value from defaults: reported once, at its line in defaults",
        "defaults:\n  claude:\n    model: 3\ntasks:\n  - name: a\n    claude: {instructions: i}\n"
        "  - name: b\n    claude: {instructions: i}\n",
        ["3:12: defaults.claude.model: expected a string, got a number (3); put it in quotes"],
    ),
    (
        "batch unknown key in defaults",
        "defaults:\n  tiemout: 5m\n" + TWO,
        ["2:3: defaults.tiemout: unknown field; did you mean 'timeout'?"],
    ),
    (
        "batch missing name points at the task's mapping",
        TWO + "  - claude: {instructions: i}\n",
        ["4:5: tasks[1].name: missing required field"],
    ),
    (
        "batch missing field in a mapping from defaults",
        "defaults:\n  claude:\n    model: m\ntasks:\n  - name: a\n",
        ["3:5: defaults.claude.instructions: missing required field"],
    ),
    ("batch without tasks", "defaults:\n  priority: low\n", ["1:1: tasks: missing required field"]),
    ("batch with no task", "tasks: []\n", ["1:8: tasks: a batch needs at least one task"]),
    (
        "batch tasks not a list",
        "tasks:\n  a: 1\n",
        ["2:3: tasks: expected a list of tasks, got a mapping"],
    ),
    (
        "batch task not a mapping",
        "tasks:\n  - just a string\n",
        ["2:5: tasks[0]: expected a task mapping, got a string"],
    ),
    (
        "batch defaults not a mapping",
        "defaults: [1]\n" + TWO,
        ["1:11: defaults: expected a mapping, got a list"],
    ),
    (
        "batch unknown top key",
        "task:\n  - name: a\ndefaults: {}\n",
        [
            "1:1: task: unknown field; did you mean 'tasks'?",
            "1:1: tasks: missing required field",
        ],
    ),
    (
        "batch duplicate name, at the second",
        TWO
        + "  - name: b\n    claude: {instructions: i}\n  - name: a\n    claude: {instructions: i}\n",
        ["6:11: tasks[2].name: duplicate task name 'a'; tasks[0] has it"],
    ),
    (
        "batch cycle of two",
        TWO + "    depends_on: [b]\n  - name: b\n    claude: {instructions: i}\n"
        "    depends_on: [a]\n",
        ["4:18: tasks[0].depends_on[0]: dependency cycle: a -> b -> a"],
    ),
    (
        "batch cycle of three",
        "defaults:\n  claude: {instructions: i}\ntasks:\n  - {name: a, depends_on: [b]}\n"
        "  - {name: b, depends_on: [c]}\n  - {name: c, depends_on: [a]}\n",
        ["4:28: tasks[0].depends_on[0]: dependency cycle: a -> b -> c -> a"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, expected) for _, text, expected in ERROR_TABLE],
    ids=[case for case, _, _ in ERROR_TABLE],
)
def test_error_messages(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert errors(tmp_path, text) == [f"{SHOWN}:{line}" for line in expected]


def test_no_pydantic_wording_leaks(tmp_path: Path) -> None:
    for _, text, _ in ERROR_TABLE:
        for message in errors(tmp_path, text):
            assert "Input should" not in message
            assert "pydantic" not in message


# --- dependencies --------------------------------------------------------------------------------


def test_unknown_dependency_warn_vs_error(tmp_path: Path) -> None:
    text = TASK + "depends_on: [build]\n"
    parsed = parse(tmp_path, text, unknown_dependency="warn")
    assert parsed.tasks[0].depends_on == ["build"]
    assert parsed.warnings == [
        FieldError(
            SHOWN,
            3,
            14,
            "depends_on[0]",
            "unknown dependency 'build': no task in this file has that name",
            warning=True,
        )
    ]
    assert str(parsed.warnings[0]).startswith(f"{SHOWN}:3:14: warning: depends_on[0]: ")
    with pytest.raises(TaskFileError) as info:
        parse(tmp_path, text, unknown_dependency="error")
    assert [e.warning for e in info.value.errors] == [False]


def test_known_name_resolves_dependency(tmp_path: Path) -> None:
    text = TASK + "depends_on: [build, lint]\n"
    store = {"build"}
    assert errors(tmp_path, text, known_name=store.__contains__) == [
        f"{SHOWN}:3:21: depends_on[1]: unknown dependency 'lint': no task in this file or the "
        "store has that name"
    ]
    store.add("lint")
    assert parse(tmp_path, text, known_name=store.__contains__).tasks[0].depends_on == [
        "build",
        "lint",
    ]


def test_warnings_travel_with_errors(tmp_path: Path) -> None:
    text = TWO + "    depends_on: [x]\n  - {name: b, claude: {instructions: i, max_turns: 0}}\n"
    with pytest.raises(TaskFileError) as info:
        parse(tmp_path, text, unknown_dependency="warn")
    assert [(e.line, e.warning) for e in info.value.errors] == [(4, True), (5, False)]


# --- bytes, size, encoding, limits --------------------------------------------------------------


def test_size_limit(tmp_path: Path) -> None:
    text = TASK + "# " + "x" * 100 + "\n"
    size = len(text.encode())
    assert errors(tmp_path, text, max_bytes=100) == [
        f"{SHOWN}: file is too large: {size} bytes, the limit is 100 bytes"
    ]
    with pytest.raises(TaskFileError, match=f"{size} bytes, the limit is 100 bytes"):
        parse_bytes(text.encode(), SHOWN, max_bytes=100)
    assert parse(tmp_path, text, max_bytes=size).tasks[0].name == "a"


def test_utf8_bom_is_fine(tmp_path: Path) -> None:
    assert parse(tmp_path, b"\xef\xbb\xbf" + TASK.encode()).tasks[0].name == "a"
    # positions count from after the BOM
    bad = b"\xef\xbb\xbfname: a\nclaude: {instructions: i, model: 3}\n"
    assert errors(tmp_path, bad) == [
        f"{SHOWN}:2:34: claude.model: expected a string, got a number (3); put it in quotes"
    ]


def test_non_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    data = b"name: caf\xe9\nclaude: {instructions: i}\n"
    assert errors(tmp_path, data) == [
        f"{SHOWN}:1:10: not UTF-8: byte 0xe9 at offset 9; save it as UTF-8"
    ]
    utf16 = "name: a\n".encode("utf-16")
    assert "not UTF-8: byte 0xff at offset 0" in errors(tmp_path, utf16)[0]


def test_non_ascii_columns_count_characters(tmp_path: Path) -> None:
    text = "name: ééé\nclaude: {instructions: ü, model: 3}\n"
    assert errors(tmp_path, text) == [
        f"{SHOWN}:2:34: claude.model: expected a string, got a number (3); put it in quotes"
    ]


@pytest.mark.timeout(5)
def test_alias_bomb_refused_fast(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    assert errors(tmp_path, "\n".join(lines) + "\n") == [
        f"{SHOWN}:1:14: more than 100000 values after expanding aliases"
    ]
    assert time.perf_counter() - started < 2


@pytest.mark.timeout(5)
def test_deep_nesting_refused(tmp_path: Path) -> None:
    for text in ("a: " + "[" * 100_000 + "]" * 100_000, "- " * 20_000 + "x"):
        [message] = errors(tmp_path, text)
        assert "nest" in message  # libyaml's own cap, or ours


# --- parse_file's file handling ------------------------------------------------------------------


def test_parse_file_shows_the_path_given(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: a\n")
    with pytest.raises(TaskFileError) as info:
        parse_file(path)
    assert str(info.value) == f"{path}:1:1: claude: missing required field"
    path.write_text(TASK)
    assert parse_file(str(path)).path == str(path)
    assert parse_file(path, display_path="inbox/t.yaml").path == "inbox/t.yaml"


def test_parse_file_refuses_unreadable(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match=r"^gone\.yaml: cannot read the file: No such file"):
        parse_file(tmp_path / "missing.yaml", display_path="gone.yaml")
    with pytest.raises(TaskFileError, match=r"^dir: cannot read the file: Is a directory$"):
        parse_file(tmp_path, display_path="dir")


@pytest.mark.timeout(5)
def test_parse_file_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(TaskFileError, match="not a regular file"):
        parse_file(fifo)


def test_parse_file_size_limit_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 5000)
    with pytest.raises(TaskFileError) as info:
        parse_file(path, display_path="big.yaml", max_bytes=4096)
    assert str(info.value) == "big.yaml: file is too large: 5000 bytes, the limit is 4096 bytes"


# --- parse_object (the API's JSON body) ----------------------------------------------------------


def test_parse_object_task_and_batch() -> None:
    body = {"name": "a", "claude": {"instructions": "i", "env": {"X": True, "N": 2}}}
    parsed = parse_object(body, "api")
    assert (parsed.path, parsed.is_batch) == ("api", False)
    assert parsed.tasks[0].claude.env == {"X": "true", "N": "2"}
    batch = {
        "defaults": {"claude": {"model": "haiku"}, "tags": ["x"]},
        "tasks": [
            {"name": "a", "claude": {"instructions": "i"}},
            {"name": "b", "claude": {"instructions": "j"}, "depends_on": ["a"]},
        ],
    }
    parsed = parse_object(batch, "api")
    assert parsed.is_batch is True
    assert [(t.name, t.claude.model, t.tags) for t in parsed.tasks] == [
        ("a", "haiku", ["x"]),
        ("b", "haiku", ["x"]),
    ]


def test_parse_object_errors_have_no_position() -> None:
    batch = {
        "tasks": [{"name": "a", "claude": {"instructions": "i", "modle": "x"}}, {"name": 3}],
    }
    with pytest.raises(TaskFileError) as info:
        parse_object(batch, "api", unknown_dependency="warn")
    assert [str(e) for e in info.value.errors] == [
        "api: tasks[0].claude.modle: unknown field; did you mean 'model'?",
        "api: tasks[1].name: expected a string, got a number (3)",  # no YAML quoting advice
        "api: tasks[1].claude: missing required field",
    ]
    assert {(e.line, e.column) for e in info.value.errors} == {(0, 0)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "api: expected a task or batch mapping, got a list"),
        ({"name": "a", "claude": {"instructions": "i", 1: "x"}}, "keys must be strings"),
        ({"name": "a", "claude": {"instructions": object()}}, "unsupported value of type object"),
        ({"name": "a", "claude": {"instructions": "i", "max_turns": 10**5000}}, "too large"),
        ({"name": "a", "claude": {"instructions": "i", "env": {"A": -(10**5000)}}}, "too large"),
        ({"name": "a", "claude": {"instructions": "i"}, "depends_on": ["z"]}, "unknown dep"),
    ],
)
def test_parse_object_bad_bodies(body: object, message: str) -> None:
    with pytest.raises(TaskFileError, match=message):
        parse_object(body, "api")


def test_parse_object_recursive_and_deep() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(TaskFileError, match="recursive value"):
        parse_object({"name": "a", "claude": {"instructions": "i"}, "tags": loop}, "api")
    deep: object = "x"
    for _ in range(sys.getrecursionlimit() + 10):
        deep = [deep]
    with pytest.raises(TaskFileError, match="nested deeper than 64 levels"):
        parse_object({"tags": deep}, "api")


# --- the examples --------------------------------------------------------------------------------


def test_every_example_parses() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert {f.name for f in files} >= {"minimal.yaml", "full.yaml", "batch.yaml"}
    for path in files:
        parsed = parse_file(path, known_name=lambda name: True)
        assert parsed.tasks, path
        assert parsed.warnings == [], path
    batch = parse_file(EXAMPLES / "batch.yaml")
    assert batch.is_batch and len(batch.tasks) == 3
    assert any(t.depends_on for t in batch.tasks)


def _unset(model: BaseModel, prefix: str = "") -> set[str]:
    missing = {prefix + name for name in type(model).model_fields} - {
        prefix + name for name in model.model_fields_set
    }
    for name in model.model_fields_set:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            missing |= _unset(value, f"{prefix}{name}.")
    return missing


def test_full_example_sets_every_field() -> None:
    """When TaskSpec grows a field, full.yaml must show it."""
    [task] = parse_file(EXAMPLES / "full.yaml", known_name=lambda name: True).tasks
    assert _unset(task) == set()
    assert _unset(task.claude) == set() and _unset(task.retry) == set()
    assert task.verify is not None and _unset(task.verify) == set()


def test_minimal_example_is_minimal_and_may_write_its_file() -> None:
    [task] = parse_file(EXAMPLES / "minimal.yaml").tasks
    assert task.model_fields_set == {"name", "claude"}
    assert task.claude.model_fields_set == {"instructions", "permission_mode", "working_dir"}
    assert task.claude.permission_mode == "acceptEdits"  # else its write would be denied
    assert task.claude.working_dir is not None and Path(task.claude.working_dir).is_dir()


@pytest.mark.timeout(10)
def test_pure_python_loader_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyaml the same errors come out, at the same places (bar YAML's own wording)."""
    with_libyaml = {case: errors(tmp_path, text) for case, text, _ in ERROR_TABLE}
    monkeypatch.setattr(claudomator.taskfile, "_LOADER", yaml.SafeLoader)
    for case, text, _ in ERROR_TABLE:
        got, want = errors(tmp_path, text), with_libyaml[case]
        assert [e.split(": ")[1] for e in got] == [e.split(": ")[1] for e in want], case
        if case != "two documents":  # libyaml places it after the `---`
            assert [e.split(": ")[0] for e in got] == [e.split(": ")[0] for e in want], case
    assert errors(tmp_path, "a: " + "[" * 10_000 + "]" * 10_000) == [
        f"{SHOWN}: nested deeper than 64 levels"
    ]
    assert parse(tmp_path, TASK).tasks[0].name == "a"
