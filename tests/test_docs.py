"""The README is the user manual: its examples parse, its commands exist, CI runs what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claudomator.cli import cli
from claudomator.taskfile import parse_bytes

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, re.S)


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: b.splitlines()[0][:30])
def test_every_yaml_example_parses(block: str) -> None:
    parsed = parse_bytes(block.encode(), "README.md", unknown_dependency="warn")
    assert parsed.tasks


def test_there_are_examples() -> None:
    assert len(yaml_blocks()) >= 3


def documented_commands() -> set[str]:
    return set(re.findall(r"^\| `claudomator (\w[\w-]*)", README, re.M))


def test_documented_commands_exist_and_every_command_is_documented() -> None:
    commands = set(cli.commands)
    assert documented_commands() <= commands, documented_commands() - commands
    assert commands <= documented_commands(), commands - documented_commands()


def quickstart() -> tuple[str, str]:
    """The quickstart's two commands: in a first terminal, then in a new one."""
    section = README.split("## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    first, second = re.findall(r"```sh\n(.*?)```", section, re.S)[:2]
    return first.strip(), second.strip()


def test_setup_commands_are_what_ci_runs() -> None:
    install, second = quickstart()
    tests = re.search(r"to run them:\n\n```sh\n(.*?)```", README, re.S).group(1).strip()  # type: ignore[union-attr]
    assert ".venv/bin/pip install . " in install and ".venv/bin/claudomator init" in install
    assert "[dev]" not in install  # the tool alone; the extras are for the tests
    assert second.endswith(".venv/bin/claudomator list")  # found from a new shell
    assert "pip install -e '.[dev]'" in tests and tests.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet --disable-pip-version-check -e '.[dev]'" in ci
    assert re.search(r"^pytest$", ci, re.M)
