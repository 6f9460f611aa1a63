"""The fake's stdout and stderr, and how it leaves: `Exit` carries the code to `main.entry`."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class Exit(Exception):
    """Leave with an exit code (after the record is written)."""

    def __init__(self, code: int) -> None:
        self.code = code


def out(text: str) -> None:
    """Write and flush stdout; a reader that went away ends the fake, as it ends the real CLI."""
    try:
        sys.stdout.buffer.write(text.encode())
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os._exit(1)


def err(text: str) -> None:
    try:
        sys.stderr.buffer.write(text.encode())
        sys.stderr.buffer.flush()
    except BrokenPipeError:
        pass


def fail(message: str, code: int = 1) -> NoReturn:
    """`message` on stderr, then exit `code` (1: what the real CLI does for a usage error)."""
    err(message + "\n")
    raise Exit(code)
