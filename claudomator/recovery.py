"""Recovery: what `serve` repairs at start after a crash, in one ordered procedure.

Each step relies on those before it:

1. executions — RUNNING executions whose owner process is gone end FAILED `interrupted`
   (what is left of their process trees is killed); the retry policy then applies.
2. runs — the unstarted tasks of a `claudomator run` that is gone end CANCELLED.
3. nodes — other nodes whose lease expired are lost: their executions end FAILED `node lost`.
4. dependents — PENDING tasks whose dependencies are all final are queued or cancelled (a
   crash between a dependency's final state and the settling of its dependents).
5. claims — claims a crash cut short are ingested or forgotten; files recorded but still
   staged are placed.
6. files — every recorded file is found by its fingerprint (a move cut short left it
   elsewhere, or twice), put where its tasks stand, its result file written when missing or
   stale; side files without their file are removed.
7. strangers — task files in queued/ or running/ that the store does not know (put there by
   a person) are ingested as new.
8. inbox — swept.

Steps 1-4 change only the store and 5-8 only the folders, after the store has settled: the
mirror follows no event while they run (the intake is attached to the service at the end), so no
file moves twice and none is taken for a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from claudomator.intake import Intake
    from claudomator.service import Claudomator

log = structlog.get_logger("claudomator.recovery")


def recover(service: Claudomator, intake: Intake) -> None:
    service.intake = None  # the mirror follows no event until the folders are settled
    interrupted = service.recover()  # 1-3
    settled = service.settle_waiting()  # 4
    intake.finish_claims()  # 5
    intake.mirror.recover()  # 6
    intake.ingest_strangers()  # 7
    intake.sweep()  # 8
    service.intake = intake  # from now on the folders follow every committed change
    log.info("recovery.done", interrupted=len(interrupted), settled=settled)


__all__ = ["recover"]
