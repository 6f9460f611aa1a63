"""Whether an execution resumes the claude session of the one before it, and what it is told.
Pure and stdlib-only, table-tested.

A retry (automatic or by hand, after FAILED, TIMED_OUT, `interrupted`, `node lost` or a
rate-limit requeue) resumes the last execution's session when its transcript can be on this
node: that execution ran on this host. Otherwise, or when claude answers that it has no such
conversation, the execution starts a fresh session with the task's own instructions, and its
reason says so. `retry: {resume: false}` opts out.
"""

from __future__ import annotations

from dataclasses import dataclass

from claudomator.state import State
from claudomator.stored import PreviousExecution

# what the CLI writes on stderr (exit 1, no stdout) for a --resume of an unknown session
NO_CONVERSATION = "No conversation found with session ID"
_RESUMABLE = frozenset({State.FAILED.value, State.TIMED_OUT.value})


@dataclass(frozen=True)
class Plan:
    """How an execution begins: `session` to resume (None: a fresh one), from which execution,
    and a note for its reason when a resume was wanted but is not possible."""

    session: str | None = None
    resumed_from: str = ""
    note: str = ""


def plan(previous: PreviousExecution | None, *, host: str, enabled: bool) -> Plan:
    if not enabled or previous is None or previous["state"] not in _RESUMABLE:
        return Plan()
    if not previous["session_id"]:  # it ended before claude began a session
        return Plan()
    if previous["owner_host"] != host:
        where = previous["owner_host"] or "another node"
        return Plan(note=f"fresh session: the last one ran on {where}")
    return Plan(previous["session_id"], previous["id"])


def carry_on_prompt(reason: str) -> str:
    """What a resumed claude is told when its last run stopped before the work was done."""
    why = f" ({reason})" if reason else ""
    return (
        f"Your previous run of this task stopped before it finished{why}. "
        "Carry on from where you stopped and finish the task."
    )


def session_missing(
    *, exit_code: int | None, stderr_tail: str, initialized: bool, errors: object = None
) -> bool:
    """Whether claude refused a --resume because it has no such session: exit 1 before any
    init line, saying so on stderr or (with stream-json) in the `errors` of its one result."""
    said = NO_CONVERSATION in stderr_tail or (
        isinstance(errors, list) and any(NO_CONVERSATION in str(e) for e in errors)
    )
    return exit_code == 1 and not initialized and said


def missing_note(session: str) -> str:
    return f"fresh session: no conversation found for session {session}"


def with_note(reason: str, note: str) -> str:
    return f"{reason}; {note}" if reason and note else reason or note
