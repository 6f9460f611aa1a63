"""Signals, waits and grandchildren. A signal acts between two stdout lines, or at once while the
fake waits ("on the API", "in a tool", for stdin): SIGINT aborts the turn (`Interrupted`), SIGTERM
and SIGHUP end the process (143, 129) after killing the grandchildren it started."""

from __future__ import annotations

import os
import signal
import time

from .console import Exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


class Interrupted(Exception):
    """SIGINT: the turn is aborted."""


class Signals:
    """What the handler needs: whether a signal acts at once, those waiting, the parameters."""

    interruptible = False
    pending: ClassVar[list[int]] = []
    params: ClassVar[dict[str, str]] = {}


CHILDREN: list[int] = []  # grandchildren started by a tool, killed when a signal ends the fake


def kill_children() -> None:
    """SIGKILL and reap the grandchildren, unless the parameter ``kill_children`` is 0."""
    if Signals.params.get("kill_children", "1").strip() in ("0", "false", "no"):
        return
    for pid in CHILDREN:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _signal_exception(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return Interrupted()
    kill_children()
    return Exit(143 if signum == signal.SIGTERM else 129)


def _on_signal(signum: int, frame: object) -> None:
    if Signals.interruptible:
        Signals.interruptible = False
        raise _signal_exception(signum)
    Signals.pending.append(signum)


def install_signals(ignore: bool = False) -> None:
    """Handle SIGINT, SIGTERM and SIGHUP; with `ignore`, SIGINT and SIGTERM do nothing."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        handler = signal.SIG_IGN if ignore and signum != signal.SIGHUP else _on_signal
        signal.signal(signum, handler)


def check_signals() -> None:
    """Act on the first signal that came while the fake was writing."""
    if Signals.pending:
        raise _signal_exception(Signals.pending.pop(0))


def interruptible_sleep(seconds: float) -> None:
    """Sleep; a signal acts at once (SIGINT raises Interrupted, SIGTERM/SIGHUP exit)."""
    check_signals()
    Signals.interruptible = True
    try:
        time.sleep(seconds)
    finally:
        Signals.interruptible = False
