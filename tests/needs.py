"""What some tests need that a machine may lack (PostgreSQL, chromium, the real CLI, gpg…).

On a developer's machine such a test is skipped, saying what is missing and how to get it. Under
CI (`CI` set to 1/true/yes) nothing is skipped for that: a missing need is a failure, so a green
CI run means every test ran."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def needs(available: object, reason: str) -> pytest.MarkDecorator:
    """A mark: skip with `reason` when not `available`, except under CI, where the test runs."""
    return pytest.mark.skipif(not available and not ON_CI, reason=reason)


def unavailable(reason: str) -> NoReturn:
    """From a fixture or test: skip with `reason`, or fail under CI."""
    if ON_CI:
        pytest.fail(f"CI runs every test, and this one cannot run: {reason}")
    pytest.skip(f"cannot run here: {reason}")
