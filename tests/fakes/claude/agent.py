"""Tool turns under the real CLI's limits: planned API calls shaped like sample-stream.jsonl,
--max-turns and --max-budget-usd enforced with their real endings, and the permission check
that lets the success scenario's write through or denies it."""

from __future__ import annotations

from .models import TITLE_USAGE, Usage, price
from .run import Run
from .tools import DONT_ASK
from .values import js_str, rand_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def turn_usage(k: int, final: bool) -> Usage:
    """Usage of main-loop call k, shaped like sample-stream.jsonl (k = 0, 1, 2 reproduce it)."""
    if k == 0:
        return (3, 12431, 0, 52 if final else 84)
    creates = [12431] + [214 if i % 2 else 187 for i in range(1, k + 1)]
    return (1, creates[k], sum(creates[:k]), 52 if final else 66)


class Turn:
    """One planned API call: content blocks, then the tool's output (if any)."""

    def __init__(
        self, blocks: list[dict[str, Any]], output: str | None, *, writes: bool = False
    ) -> None:
        self.blocks = blocks
        self.output = output
        self.writes = writes


def bash(command: str, description: str) -> dict[str, Any]:
    """A Bash tool_use block."""
    return {
        "type": "tool_use",
        "id": rand_id("toolu_01"),
        "name": "Bash",
        "input": {"command": command, "description": description},
    }


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def agent_loop(run: Run, turns: list[Turn], final_text: str, *, cost: float | None) -> NoReturn:
    """Run planned tool turns then a final text, enforcing --max-turns and --max-budget-usd."""
    usages = [turn_usage(k, k == len(turns)) for k in range(len(turns) + 1)]
    if cost is not None:
        base = sum(price(run.model, u) for u in usages)
        base += price(run.model, TITLE_USAGE) if run.title_pending else 0.0
        run.scale = cost / base if base else 0.0
    for k, turn in enumerate(turns):
        run.assistant(turn.blocks, usages[k])
        run.call_done(usages[k])
        check_budget(run)
        if turn.writes and not may_write(run):
            deny_write(run)
        else:
            run.tool_result(turn.output or "")
        if run.max_turns is not None and k + 1 >= run.max_turns:
            run.error_result(
                "error_max_turns",
                [f"Reached maximum number of turns ({run.max_turns})"],
                num_turns=k + 2,
                stop_reason="tool_use",
                terminal_reason="max_turns",
                text=f"Error: Reached max turns ({run.max_turns})",
            )
    if run.denials:
        final_text = "I couldn't create NOTES.md: writing it was not permitted."
    run.assistant([text_block(final_text)], usages[-1])
    run.call_done(usages[-1])
    check_budget(run)
    run.cost_override = cost
    run.success(final_text)


def check_budget(run: Run) -> None:
    """End with error_max_budget_usd once the cost reached --max-budget-usd."""
    if run.budget is not None and run.cost >= run.budget:
        run.error_result(
            "error_max_budget_usd",
            [f"Reached maximum budget (${js_str(run.budget)})"],
            num_turns=run.calls,
            stop_reason="tool_use" if run.pending_tool else "end_turn",
            terminal_reason=None,
            text=f"Error: Exceeded USD budget ({js_str(run.budget)})",
            zero_usage=True,
        )


def may_write(run: Run) -> bool:
    """Whether the Bash redirect to NOTES.md is allowed: by the permission mode or a bare rule."""
    if run.permission_mode in ("acceptEdits", "auto", "bypassPermissions"):
        return True
    return "Bash" in run.allowed


def deny_write(run: Run) -> None:
    tool = run.pending_tool or {}
    run.denials.append(
        {"tool_name": "Bash", "tool_use_id": tool.get("id"), "tool_input": tool.get("input")}
    )
    if run.permission_mode == "dontAsk":
        text = DONT_ASK
    else:
        text = (
            f"Output redirection to '{run.cwd}/NOTES.md' was blocked. For security, Claude Code "
            f"may only write to files in the allowed working directories for this session: "
            f"'{run.cwd}'."
        )
    run.tool_result(text, is_error=True)


def cost_param(params: dict[str, str]) -> float | None:
    """The ``cost`` parameter; None when not given."""
    value = params.get("cost")
    return None if value in (None, "") else float(value)
