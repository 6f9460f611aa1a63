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


def test_setup_commands_are_what_ci_runs() -> None:
    install = re.findall(r"```sh\n(.*?)```", README, re.S)[0].strip()
    tests = re.search(r"To run the tests:\n\n```sh\n(.*?)```", README, re.S).group(1).strip()  # type: ignore[union-attr]
    assert "pip install -e '.[dev]'" in install and "claudomator init" in install
    assert tests.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet --disable-pip-version-check -e '.[dev]'" in ci
    assert re.search(r"^pytest$", ci, re.M)
