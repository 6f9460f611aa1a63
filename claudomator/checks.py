"""A task's verify commands, run after claude ended with success: one after another in its working
directory (its worktree when it has one), with its environment, each bounded by the verify
timeout, up to the first that fails; their output in `executions/<id>/verify.log`. A cancel
stops the one running. What they said is a `verification.Verification`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path

from claudomator.shell import run_shell
from claudomator.task import VerifySpec
from claudomator.verification import TAIL_BYTES, Check, Verification, tail

VERIFY_LOG = "verify.log"  # in the execution's folder


async def run_checks(
    verify: VerifySpec,
    cwd: Path,
    folder: Path,
    env: Mapping[str, str],
    cancel: asyncio.Event,
) -> Verification:
    """Run `verify`'s commands in `cwd`, their output to `folder`/verify.log."""
    log_path = folder / VERIFY_LOG
    checks: list[Check] = []
    for command in verify.commands:
        running = asyncio.create_task(
            run_shell(cwd, command, log_path, timeout_s=verify.timeout, env=env)
        )
        stop = asyncio.create_task(cancel.wait())
        try:
            await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not running.done():  # cancelled: its process group is ended as it unwinds
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
        if running.cancelled():
            return Verification(tuple(checks), str(log_path), cancelled=True)
        ran = running.result()
        check = Check(
            command,
            ran.exit_code,
            ran.duration_ms,
            timed_out=ran.timed_out,
            output_tail="" if ran.ok else tail(ran.output(4 * TAIL_BYTES)),
        )
        checks.append(check)
        if not check.passed:
            break
    return Verification(tuple(checks), str(log_path))
