"""One run: the API calls it made, what they cost, and its result line (success, an error
ending, an API error, an interrupted turn), written in the output format asked for."""

from __future__ import annotations

import time

from .console import Exit, out
from .models import (
    TITLE_USAGE,
    ZERO,
    Usage,
    add,
    max_output_tokens,
    price,
    scale,
    usage_json,
)
from .stream import Stream, truthy_env
from .tools import REJECTED
from .values import dumps, js_number, num, rand_id, uuid4

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

STARTED = time.monotonic()  # when the fake started: the result's duration_ms counts from here


def _positive_int(value: Any) -> int | None:
    number = js_number(value) if isinstance(value, str) else None
    if number is None or number <= 0:
        return None  # 0 and NaN are silently ignored, as in 2.1.197
    return int(number)


class Run(Stream):
    """The lines of one run (`Stream`) plus its accounting and the result line that ends it."""

    def __init__(self, opts: dict[str, Any], params: dict[str, str], prompt: str) -> None:
        super().__init__(opts, params, prompt)
        self.main_usage: Usage = ZERO
        self.model_usage: Usage = ZERO
        self.cost = 0.0
        self.cost_override: float | None = None
        self.calls = 0
        self.api_ms = 0
        self.denials: list[dict[str, Any]] = []
        self.title_pending = not truthy_env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC") and (
            " " in prompt.strip()
        )
        self.max_turns = _positive_int(opts.get("maxTurns"))
        self.budget = js_number(opts["maxBudgetUsd"]) if opts.get("maxBudgetUsd") else None

    def call_done(self, usage: Usage) -> None:
        """An API call finished: count it (and the title call made alongside the first)."""
        self.calls += 1
        self.main_usage = add(self.main_usage, scale(usage, self.scale))
        self.model_usage = add(self.model_usage, scale(usage, self.scale))
        self.cost += price(self.model, usage) * self.scale
        if self.title_pending:
            self.title_pending = False
            self.model_usage = add(self.model_usage, scale(TITLE_USAGE, self.scale))
            self.cost += price(self.model, TITLE_USAGE) * self.scale

    def _totals(self) -> tuple[float, Usage, Usage]:
        """(total_cost_usd, usage, modelUsage tokens) for the result line."""
        override = self.cost_override
        if override is None:
            # Priced from the token totals in one go, as the real CLI's numbers come out.
            cost = price(self.model, self.model_usage) if self.scale == 1.0 else self.cost
            return cost, self.main_usage, self.model_usage
        if abs(override - self.cost) <= 1e-9 * max(1.0, override) or not self.cost:
            return override, self.main_usage, self.model_usage
        f = override / self.cost
        return override, scale(self.main_usage, f), scale(self.model_usage, f)

    def _model_usage(self, cost: float, usage: Usage) -> dict[str, Any]:
        if usage == ZERO and cost == 0:
            return {}
        inp, create, read, output = usage
        return {
            self.model: {
                "inputTokens": inp,
                "outputTokens": output,
                "cacheReadInputTokens": read,
                "cacheCreationInputTokens": create,
                "webSearchRequests": 0,
                "costUSD": num(cost),
                "contextWindow": 1000000 if self.model.endswith("[1m]") else 200000,
                "maxOutputTokens": max_output_tokens(self.model),
            }
        }

    def _duration(self) -> int:
        """Wall-clock milliseconds since the fake started (the API's share is 80 % of it)."""
        elapsed = max(1, int((time.monotonic() - STARTED) * 1000))
        self.api_ms = int(elapsed * 0.8) if self.calls else 0
        return elapsed

    def success(self, text: str) -> NoReturn:
        cost, usage, model_usage = self._totals()
        duration = self._duration()
        self.finish(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "api_error_status": None,
                "duration_ms": duration,
                "duration_api_ms": self.api_ms,
                "ttft_ms": self.api_ms // 4,
                "ttft_stream_ms": self.api_ms // 4,
                "time_to_request_ms": duration // 10,
                "num_turns": self.calls,
                "result": text,
                "stop_reason": "end_turn",
                "session_id": self.session_id,
                "total_cost_usd": num(cost),
                "usage": usage_json(usage, result=True),
                "modelUsage": self._model_usage(cost, model_usage),
                "permission_denials": self.denials,
                "terminal_reason": "completed",
                "fast_mode_state": "off",
                "uuid": uuid4(),
            },
            text + "\n",
        )

    def error_result(
        self,
        subtype: str,
        errors: list[str],
        *,
        num_turns: int,
        stop_reason: str | None,
        terminal_reason: str | None,
        text: str,
        exit_code: int = 1,
        zero_usage: bool = False,
    ) -> NoReturn:
        cost, usage, model_usage = self._totals()
        result: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "duration_ms": self._duration(),
            "duration_api_ms": 0 if zero_usage else self.api_ms,
            "is_error": True,
            "num_turns": num_turns,
            "stop_reason": stop_reason,
            "session_id": self.session_id,
            "total_cost_usd": num(cost),
            "usage": usage_json(ZERO if zero_usage else usage, result=True),
            "modelUsage": self._model_usage(cost, model_usage),
            "permission_denials": self.denials,
        }
        if terminal_reason is not None:
            result["terminal_reason"] = terminal_reason
        result.update({"fast_mode_state": "off", "uuid": uuid4(), "errors": errors})
        self.finish(result, text, exit_code)

    def api_error(self, status: int | None, text: str, error: str) -> NoReturn:
        message: dict[str, Any] = {
            "id": uuid4(),
            "container": None,
            "model": "<synthetic>",
            "role": "assistant",
            "stop_details": None,
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "type": "message",
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": None,
                "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                "inference_geo": None,
                "iterations": None,
                "speed": None,
            },
            "content": [{"type": "text", "text": text}],
            "context_management": None,
        }
        line: dict[str, Any] = {
            "type": "assistant",
            "message": message,
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": uuid4(),
            "error": error,
        }
        if status is not None:
            line["request_id"] = rand_id("req_011")
        self.emit(line)
        cost, usage, model_usage = self._totals()
        self.finish(
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "api_error_status": status,
                "duration_ms": self._duration(),
                "duration_api_ms": 0,
                "num_turns": self.calls + 1,
                "result": text,
                "stop_reason": "stop_sequence",
                "session_id": self.session_id,
                "total_cost_usd": num(cost),
                "usage": usage_json(usage, result=True),
                "modelUsage": self._model_usage(cost, model_usage),
                "permission_denials": self.denials,
                "terminal_reason": "completed",
                "fast_mode_state": "off",
                "uuid": uuid4(),
            },
            text + "\n",
        )

    def interrupted(self) -> NoReturn:
        """SIGINT: what 2.1.197 prints when a turn is aborted (exit 0 while streaming, else 1)."""
        in_tool = self.phase == "tool" and self.pending_tool is not None
        if in_tool:
            self.tool_result(REJECTED, is_error=True, extra="User rejected tool use")
            self.user_text("[Request interrupted by user for tool use]")
            stop, reason, code = "tool_use", "aborted_tools", 1
        else:
            self.user_text("[Request interrupted by user]")
            stop, reason, code = None, "aborted_streaming", 0
        self.error_result(
            "error_during_execution",
            [
                "[ede_diagnostic] result_type=user last_content_type=n/a "
                f"stop_reason={stop or 'null'}"
            ],
            num_turns=self.calls + 2,
            stop_reason=stop,
            terminal_reason=reason,
            text="Execution error",
            exit_code=code,
        )

    def finish(self, result: dict[str, Any], text: str, exit_code: int | None = None) -> NoReturn:
        self.emit(result)
        if self.format == "json":
            out(dumps(self.collected if self.verbose else result) + "\n")
        elif self.format == "text":
            out(text)
        if exit_code is None:
            exit_code = 1 if result["is_error"] else 0
        raise Exit(exit_code)
