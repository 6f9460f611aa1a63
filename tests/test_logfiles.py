"""logfiles: where an execution's logs are, and the one reader `claudomator logs` and the API share
(real files in tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claudomator.logfiles import (
    MAX_READ,
    elsewhere,
    execution_logs,
    follow,
    inside,
    read_page,
    whole_lines,
)

RESULT = json.dumps({"type": "result", "subtype": "success", "result": "Done."}).encode()


def test_execution_logs_layout(tmp_path: Path) -> None:
    logs = execution_logs(tmp_path / "executions", "ex1")
    assert logs.folder == tmp_path / "executions" / "ex1"
    assert (logs.stdout, logs.stderr) == (logs.folder / "stdout.log", logs.folder / "stderr.log")


WHOLE_LINES = [
    pytest.param(b"", False, None, [], id="empty"),
    pytest.param(b"a\nb\n", False, None, [(b"a\n", 2), (b"b\n", 4)], id="whole lines"),
    pytest.param(b"a\nb", False, None, [(b"a\n", 2)], id="the last line is still being written"),
    pytest.param(b"a\nb", True, None, [(b"a\n", 2), (b"b", 3)], id="final: the rest is a line"),
    pytest.param(b"\r\n\n", False, None, [(b"\r\n", 2), (b"\n", 3)], id="blank lines kept"),
    pytest.param(b"abcd", False, 4, [(b"abcd", 4)], id="a piece of a longer line"),
    pytest.param(b"a\nbcd", False, 4, [(b"a\n", 2)], id="rest shorter than cut waits"),
]


@pytest.mark.parametrize(("data", "final", "cut", "expected"), WHOLE_LINES)
def test_whole_lines(
    data: bytes, final: bool, cut: int | None, expected: list[tuple[bytes, int]]
) -> None:
    assert list(whole_lines(data, final=final, cut=cut)) == expected


def page_of(
    path: Path,
    offset: int = 0,
    *,
    limit: int = 100,
    finished: bool = True,
    readable: bool = False,
    secrets: tuple[bytes, ...] = (),
) -> tuple[int, int, int, bool, list[str]]:
    page = read_page(
        path, offset, limit=limit, finished=finished, readable=readable, secrets=list(secrets)
    )
    return page.offset, page.next_offset, page.size, page.eof, page.lines


def test_read_page_raw_and_readable(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"not json\n" + RESULT + b"\n\n")
    size = log.stat().st_size
    assert page_of(log) == (0, size, size, True, ["not json", RESULT.decode(), ""])
    # readable: a blank line is not shown, and not counted against the limit
    assert page_of(log, readable=True) == (
        0,
        size,
        size,
        True,
        ["not json", "[result] success: Done."],
    )
    assert page_of(log, limit=1) == (0, 9, size, False, ["not json"])
    assert page_of(log, offset=9, limit=1)[:2] == (9, 9 + len(RESULT) + 1)
    assert page_of(log, offset=10 * size) == (size, size, size, True, [])


def test_read_page_leaves_a_line_being_written_unless_finished(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"one\ntw")
    assert page_of(log, finished=False) == (0, 4, 6, False, ["one"])
    assert page_of(log, finished=True) == (0, 6, 6, True, ["one", "tw"])


def test_read_page_masks_secrets_and_cuts_huge_lines(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"token=s3cr3t-value\n" + b"x" * (MAX_READ + 10))
    first = page_of(log, finished=False, limit=1, secrets=(b"s3cr3t-value",))
    assert first[4] == ["token=***"]
    cut = page_of(log, offset=first[1], finished=False)
    assert (cut[1] - cut[0], cut[4]) == (MAX_READ, ["x" * MAX_READ])


def test_read_page_without_a_file(tmp_path: Path) -> None:
    assert page_of(tmp_path / "absent") == (0, 0, 0, True, [])
    assert read_page(None, 7, limit=1, finished=True, readable=True, secrets=[]).lines == []


def test_follow_reads_every_line_however_long(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    huge = b"y" * (2 * MAX_READ + 3)
    log.write_bytes(b"a\n" + huge + b"\nlast")
    assert list(follow(log, lambda: False)) == [b"a\n", huge + b"\n", b"last"]
    assert list(follow(tmp_path / "absent", lambda: False)) == []


def test_follow_waits_while_running(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"first\nsec")
    asked: list[int] = []

    def running() -> bool:  # the execution writes the rest, then ends
        asked.append(1)
        if len(asked) == 1:
            with open(log, "ab") as f:
                f.write(b"ond\n")
        return len(asked) == 1

    assert list(follow(log, running, poll_s=0.0)) == [b"first\n", b"second\n"]
    assert len(asked) == 2


def test_inside_the_executions_folder(tmp_path: Path) -> None:
    executions = tmp_path / "executions"
    assert inside(str(executions / "ex1" / "stdout.log"), executions) is not None
    assert inside(str(tmp_path / "elsewhere.log"), executions) is None
    assert inside("", executions) is None


@pytest.mark.parametrize(
    ("node", "this_node", "exists", "expected"),
    [
        ("", "a", False, False),  # no node recorded: a single-node setup
        ("a", "a", False, False),  # ran here: its log is simply missing
        ("b", "a", True, False),  # ran elsewhere but the log is here (a shared data dir)
        ("b", "a", False, True),
    ],
)
def test_elsewhere(tmp_path: Path, node: str, this_node: str, exists: bool, expected: bool) -> None:
    log = tmp_path / "stdout.log"
    if exists:
        log.write_bytes(b"")
    assert elsewhere(node, this_node, log) is expected
    assert elsewhere(node, this_node, None) is (bool(node) and node != this_node)
