"""One attempt of a task, as a chain of executions (rounds): claude, then the task's verify
commands; when one fails, claude resumed in the same session with what failed, up to the
verify `rounds`, all within the task's `max_budget_usd`. A retry's first round resumes the
session of the execution before it when it can (`resume.plan`), and falls back to a fresh
session when claude has no such conversation.

Each round is an execution of its own (its log, cost, tokens; `round` and `resumed_from` on its
record): the lifecycle records a round that is followed by another (`advance`) and the last one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from claudomator import failpoint
from claudomator.checks import run_checks
from claudomator.command import Invocation, build_env
from claudomator.config import Config
from claudomator.logfiles import execution_logs
from claudomator.outcome import Outcome
from claudomator.progress import ProgressBatch
from claudomator.resume import carry_on_prompt, missing_note, plan, session_missing, with_note
from claudomator.runner import Runner, RunResult
from claudomator.state import State
from claudomator.store.db import Store
from claudomator.stored import StartedTask
from claudomator.task import TaskSpec
from claudomator.verification import Verification, after_checks, chain_budget_reason, retry_prompt
from claudomator.workdir import working_dir

log = structlog.get_logger("claudomator.rounds")


@dataclass
class Step:
    """The execution at hand in an attempt's chain of rounds."""

    execution_id: str
    session_id: str  # the session a fresh claude of this execution begins
    batch: ProgressBatch
    number: int = 0  # its round
    resumed_from: str = ""  # the execution whose session it resumed
    note: str = ""  # why a resume that was wanted did not happen, for its reason
    spent_usd: float = 0.0  # what the chain's earlier rounds spent
    verification: Verification | None = None


# records a round that another follows (its end, with `reason`) and gives the next one's step;
# None when the record was refused (this node was found lost)
Advance = Callable[[Step, RunResult, str, str], Awaitable["Step | None"]]


class Rounds:
    def __init__(self, config: Config, runner: Runner, store: Store, host: str) -> None:
        self.config, self.runner, self.store, self.host = config, runner, store, host

    async def run(
        self,
        task_id: str,
        row: StartedTask,
        spec: TaskSpec,
        step: Step,
        where: tuple[Path | None, float | None],
        cancel: asyncio.Event,
        advance: Advance,
    ) -> tuple[Step, RunResult] | None:
        """The rounds of one attempt, in `where`: its worktree's folder (None: its working_dir)
        and the money it may spend (`budget.money_left`; None: no limit); the last round's step
        and result (None: refused)."""
        cwd, budget = where
        asked = self._first(task_id, row, spec, step, budget)
        fallback = spec.claude.instructions
        while True:
            result = await self._claude(spec, step, asked, fallback, cwd, cancel)
            result = _with(result, result.outcome, step.note)
            spent = step.spent_usd + result.stream.cost_usd
            if result.outcome.state is State.BUDGET_EXCEEDED and step.number and budget:
                reason = chain_budget_reason(budget, spent, step.number + 1)
                return step, _with(result, Outcome(State.BUDGET_EXCEEDED, reason), step.note)
            if result.outcome.state is not State.COMPLETED or spec.verify is None:
                return step, result
            step.verification = await self._check(spec, step, cwd, cancel)
            final, reason = after_checks(
                step.verification,
                round_number=step.number,
                rounds=spec.verify.rounds,
                budget_usd=budget,
                spent_usd=spent,
                timeout_s=spec.verify.timeout,
                cancelled=cancel.is_set(),
            )
            if final is not None:
                return step, _with(result, final, step.note)
            failed = step.verification.failed
            assert failed is not None  # another round follows a failed check only
            task_reason = f"verify round {step.number + 1}/{spec.verify.rounds}: {reason}"
            nxt = await advance(step, result, reason, task_reason)
            if nxt is None:
                return None
            log.info("execution.round", task_id=task_id, execution_id=nxt.execution_id,
                     round=nxt.number, resumed_from=nxt.resumed_from)  # fmt: skip
            nxt.spent_usd = spent
            step = nxt
            prompt = retry_prompt(failed, spec.verify.timeout)
            left = None if budget is None else budget - spent
            session = result.stream.session_id or step.session_id
            asked = Invocation(prompt, session, resume=True, budget_usd=left)
            fallback = f"{spec.claude.instructions}\n\n{prompt}"

    def _first(
        self, task_id: str, row: StartedTask, spec: TaskSpec, step: Step, budget: float | None
    ) -> Invocation:
        """The first round: a retry resumes the last execution's session when it can."""
        fresh = Invocation(spec.claude.instructions, step.session_id, False, budget)
        if row["attempts"] <= 1 and row["requeues"] == 0:
            return fresh
        previous = self.store.previous_execution(task_id, step.execution_id)
        chosen = plan(previous, host=self.host, enabled=spec.retry.resume)
        step.note = chosen.note
        if chosen.session is None or previous is None:
            return fresh
        self.store.resuming(step.execution_id, chosen.session, chosen.resumed_from)
        step.resumed_from = chosen.resumed_from
        prompt = carry_on_prompt(previous["reason"])
        return Invocation(prompt, chosen.session, resume=True, budget_usd=budget)

    async def _claude(
        self,
        spec: TaskSpec,
        step: Step,
        asked: Invocation,
        fallback: str,
        cwd: Path | None,
        cancel: asyncio.Event,
    ) -> RunResult:
        """One claude process, or two: a resume claude refuses (no such conversation) is run
        again as a fresh session told `fallback`, and the execution's reason says so."""
        result = await self._spawn(spec, step, asked, cwd, cancel)
        if asked.resume and session_missing(
            exit_code=result.exit_code,
            stderr_tail=result.stderr_tail,
            initialized=result.stream.initialized,
            errors=(result.stream.result or {}).get("errors"),
        ):
            log.info("execution.resume_missed", execution_id=step.execution_id,
                     session_id=asked.session_id)  # fmt: skip
            self.store.resuming(step.execution_id, step.session_id, "")
            step.note, step.resumed_from = missing_note(asked.session_id), ""
            fresh = Invocation(fallback, step.session_id, resume=False, budget_usd=asked.budget_usd)
            result = await self._spawn(spec, step, fresh, cwd, cancel)
        return result

    async def _spawn(
        self,
        spec: TaskSpec,
        step: Step,
        asked: Invocation,
        cwd: Path | None,
        cancel: asyncio.Event,
    ) -> RunResult:
        return await self.runner.run(
            spec,
            step.execution_id,
            cancel=cancel,
            on_spawn=lambda pid, t: failpoint.reached("spawned"),
            on_progress=step.batch.add,
            cwd=cwd,
            invocation=asked,
        )

    async def _check(
        self, spec: TaskSpec, step: Step, cwd: Path | None, cancel: asyncio.Event
    ) -> Verification:
        assert spec.verify is not None
        where = cwd or working_dir(spec, self.config)
        env = build_env(spec, step.execution_id)
        folder = execution_logs(self.config.data_dir.executions, step.execution_id).folder
        return await run_checks(spec.verify, where, folder, env, cancel)


def _with(result: RunResult, outcome: Outcome, note: str = "") -> RunResult:
    """`result` ending as `outcome`, its reason carrying `note`."""
    reason = with_note(outcome.reason, note)
    return dataclasses.replace(result, outcome=dataclasses.replace(outcome, reason=reason))
