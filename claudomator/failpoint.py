"""Named points of the task lifecycle where tests kill the process (SIGKILL, as a crash would),
to prove that a restart repairs whatever was left half done. Inert unless
CLAUDOMATOR_FAILPOINT names the point."""

from __future__ import annotations

import os
import signal


def reached(name: str) -> None:
    if os.environ.get("CLAUDOMATOR_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
