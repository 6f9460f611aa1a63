"""A local mock of the Anthropic Messages API, for running the REAL Claude Code CLI in tests.

    with MockAnthropic("tools") as api:
        env = api.env(home=tmp_path)  # REAL_CLI_ENV + ANTHROPIC_BASE_URL, HOME, ...
        subprocess.run([claude, "-p", ...], env=env, ...)
        assert len(api.main_requests) == 2

Only ``POST /v1/messages`` means anything. It answers with SSE (``message_start``,
``content_block_start``, ``content_block_delta``, ``content_block_stop``, ``message_delta``,
``message_stop``) when the body has ``"stream": true``, with one JSON message otherwise. Every
other request gets a quick 404 with an Anthropic error body, which the CLI takes as "nothing
there". (With REAL_CLI_ENV, 2.1.197 sends nothing but ``POST /v1/messages?beta=true``.)

Scenarios (``MockAnthropic(scenario, **params)``), applied to the agent loop:

``text``        one plain text answer (``text``).
``tools``       ``turns`` turns (default 1) of a Bash tool_use running ``command`` (default
                ``echo hi``), then, once the last tool_result is back, a final ``text``.
``max_turns``   always a Bash tool_use, so ``--max-turns N`` ends the run.
``budget``      a Bash tool_use with large usage (``BUDGET_USAGE``: $0.0495 at Sonnet prices),
                so ``--max-budget-usd 0.01`` is exceeded after the first call.
``http_error``  HTTP ``status`` (default 529; 401, 402, 429, 500, ...) with the real error body
                ``{"type":"error","error":{"type":...,"message":...},"request_id":...}``;
                429 and 529 carry ``retry-after: <retry_after>`` (default ``"0"``, which the CLI
                ignores in favour of its own back-off; a positive N makes it wait N s).
``slow``        sends message_start and a text block, then holds the response ``delay_s``
                seconds (default 30) with an SSE ``ping`` every ``ping_s`` (0.5) s, then ends
                it: for timeout and cancel tests.
``script``      ``steps``, a list of dicts such as ``[{"scenario": "max_turns"}, {"scenario":
                "tools", "command": "touch DONE"}, {"scenario": "text"}]``: one scenario per
                user prompt, so a first ``claude -p`` run does one thing and a later
                ``--resume`` of the same session another. A main-loop request is served by
                ``steps[n - 1]``, n being the number of real user prompts in its ``messages``
                (user messages with text content, tool_result blocks beside it or not; a
                ``<system-reminder>``, a ``[Request interrupted by user...`` marker and the
                "Continue from where you left off." that 2.1.197 adds when it resumes a session
                that stopped after a tool do not count); the last step repeats. Within a step,
                the turns done are the assistant messages after that latest prompt, so a
                ``tools`` step runs its own ``turns`` and then answers text. A step has
                ``scenario`` (any of the above but script; default ``text``) and may carry
                ``text``, ``command``, ``turns``, ``status``, ``retry_after`` and ``delay_s``
                (default: the mock's own parameters). ``steps_served`` lists the step index of
                each main request. Checked with 2.1.197: a ``--max-turns 1`` run on a
                ``max_turns`` step, then a ``--resume`` served by the next step.

Every scenario takes ``headers`` (extra response headers). Auxiliary calls are answered with a
short text whatever the scenario. The only one 2.1.197 makes is the session-title generation
(no tools, a system prompt starting "Generate a concise, sentence-case title", the transcript
in ``<session>`` tags), and only without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC and for a
prompt of more than one word. ``requests`` holds every body received on /v1/messages,
``main_requests`` the agent-loop ones, ``paths`` every ``(method, path)``, ``steps_served``
(script only; else empty) the index in ``steps`` that answered each of ``main_requests``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

# The environment that makes the real CLI (2.1.197) fast, quiet and deterministic against
# MockAnthropic; MockAnthropic.env() adds ANTHROPIC_BASE_URL, HOME, CLAUDE_CONFIG_DIR and PATH.
# Measured here (12 runs each, `--model sonnet --permission-mode acceptEdits --allowedTools=Bash`,
# the `tools` scenario: 2 API calls and one Bash run): with this environment the init line comes
# after ~0.40 s (p10 0.35, p90 0.46) and the whole run takes ~0.51 s; with none of it, 0.47 s and
# 0.58 s, plus a title-generation call. DISABLE_GROWTHBOOK, --bare and the other
# CLAUDE_CODE_DISABLE_* switches made no measurable difference.
REAL_CLI_ENV: dict[str, str] = {
    "ANTHROPIC_API_KEY": "sk-test",  # any value; without a key: "Not logged in", exit 1
    # No title generation, no event logging, no policy/settings fetches; init then reports
    # analytics_disabled and product_feedback_disabled as true.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    # The CLI retries 401, 409, 429, 5xx and connection errors 10 times with a back-off of
    # about 0.5, 1, 2, 4, 8, 17, 33, 39, 37 s (a 401 run took minutes). 0 = no retries: an
    # HTTP error becomes its result at once. Tests of the retry path can set 1-3 (clamped at 15)
    # and send retry_after=1 for a 1 s wait per retry.
    "CLAUDE_CODE_MAX_RETRIES": "0",
}

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}

# Usage of one main-loop call: (input, cache_creation, cache_read, output) tokens.
TURN_USAGE = (3, 12431, 0, 64)
FOLLOW_USAGE = (1, 214, 12431, 48)
BUDGET_USAGE = (2000, 10000, 0, 400)
TITLE_USAGE = (418, 0, 0, 6)
# System prompt text of the auxiliary calls seen from the CLI (2.1.197).
AUX_SYSTEM_MARKERS = ("Generate a concise, sentence-case title",)


def _rand_id(prefix: str, n: int = 22) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _usage(tokens: tuple[int, int, int, int], *, output: int | None = None) -> dict[str, Any]:
    inp, create, read, out = tokens
    return {
        "input_tokens": inp,
        "cache_creation_input_tokens": create,
        "cache_read_input_tokens": read,
        "output_tokens": out if output is None else output,
        "service_tier": "standard",
        "cache_creation": {"ephemeral_5m_input_tokens": create, "ephemeral_1h_input_tokens": 0},
    }


def _text_of(value: Any) -> str:
    """The plain text of a system prompt or message content (a string or a list of blocks)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(b.get("text", "") for b in value if isinstance(b, dict))
    return ""


# Texts of user messages that are not prompts: context the CLI adds, the marker of an interrupt,
# and what 2.1.197 adds to the trailing tool_result message when it resumes a session that
# stopped after a tool (max turns, an interrupt).
_NOT_PROMPTS = (
    "<system-reminder>",
    "[Request interrupted by user",
    "Continue from where you left off.",
)


def is_prompt(message: Any) -> bool:
    """Whether a message of a request is a real user prompt: a user message with text content
    (beside tool_result blocks or not), not counting the texts of `_NOT_PROMPTS`."""
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(blocks, list):
        return False
    return any(
        isinstance(b, dict)
        and b.get("type") == "text"
        and isinstance(b.get("text"), str)
        and b["text"].strip()
        and not b["text"].lstrip().startswith(_NOT_PROMPTS)
        for b in blocks
    )


class Step:
    """What answers one main-loop request: a scenario and its parameters."""

    KEYS = ("scenario", "text", "command", "turns", "status", "retry_after", "delay_s")
    SCENARIOS = ("text", "tools", "max_turns", "budget", "http_error", "slow")

    def __init__(self, defaults: Step | None = None, **params: Any) -> None:
        if unknown := sorted(set(params) - set(self.KEYS)):
            raise TypeError(f"unknown step keys: {unknown}")
        self.scenario: str = str(params.get("scenario", defaults.scenario if defaults else ""))
        if self.scenario not in self.SCENARIOS:
            raise ValueError(f"unknown step scenario {self.scenario!r}; known: {self.SCENARIOS}")

        def get(key: str, fallback: Any) -> Any:
            return params.get(key, getattr(defaults, key) if defaults else fallback)

        self.text: str = str(get("text", "Done. The command printed hi."))
        self.command: str = str(get("command", "echo hi"))
        self.turns: int = int(get("turns", 1))
        self.status: int = int(get("status", 529))
        self.retry_after: str = str(get("retry_after", "0"))
        self.delay_s: float = float(get("delay_s", 30.0))


def is_main_loop(body: dict[str, Any]) -> bool:
    """Whether a /v1/messages body is the agent loop rather than an auxiliary call.

    The agent loop sends the tool definitions, auxiliary calls send none. With ``--tools ""``
    the loop has no tools either, so a request without tools counts as auxiliary only when it
    looks like one seen from 2.1.197: session title generation ("Generate a concise,
    sentence-case title ..." with the transcript in ``<session>`` tags).
    """
    if body.get("tools"):
        return True
    system = _text_of(body.get("system"))
    messages = body.get("messages") or [{}]
    first = _text_of(messages[0].get("content")) if isinstance(messages[0], dict) else ""
    is_title = any(m in system for m in AUX_SYSTEM_MARKERS) or first.startswith("<session>")
    return not is_title


class _Reply:
    """One answer: content blocks plus usage, rendered as SSE or as one JSON message."""

    def __init__(
        self,
        model: str,
        blocks: list[dict[str, Any]],
        usage: tuple[int, int, int, int],
        stop_reason: str,
    ) -> None:
        self.id = _rand_id("msg_01")
        self.model = model
        self.blocks = blocks
        self.usage = usage
        self.stop_reason = stop_reason

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": _usage(self.usage),
        }

    def start_events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        start = {**self.message(), "content": [], "stop_reason": None, "usage": None}
        start["usage"] = _usage(self.usage, output=1)
        yield "message_start", {"type": "message_start", "message": start}

    def block_events(self, index: int, block: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            text = block["text"]
            step = max(1, len(text) // 3)
            for i in range(0, len(text), step):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": text[i : i + step]},
                    },
                )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
            )
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            for part in (raw[:half], raw[half:]):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}

    def end_events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        inp, create, read, out = self.usage
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                "usage": {
                    "input_tokens": inp,
                    "cache_creation_input_tokens": create,
                    "cache_read_input_tokens": read,
                    "output_tokens": out,
                },
            },
        )
        yield "message_stop", {"type": "message_stop"}

    def events(self) -> Iterator[tuple[str, Any]]:
        yield from self.start_events()
        for index, block in enumerate(self.blocks):
            yield from self.block_events(index, block)
        yield from self.end_events()


class MockAnthropic:
    """A Messages API on 127.0.0.1 (a free port) in a background thread; a context manager."""

    def __init__(self, scenario: str = "tools", **params: Any) -> None:
        known = {*Step.SCENARIOS, "script"}
        if scenario not in known:
            raise ValueError(f"unknown scenario {scenario!r}; known: {sorted(known)}")
        self.scenario = scenario
        self.status: int = int(params.pop("status", 529))
        self.retry_after: str = str(params.pop("retry_after", "0"))
        self.turns: int = int(params.pop("turns", 1))
        self.command: str = params.pop("command", "echo hi")
        self.text: str = params.pop("text", "Done. The command printed hi.")
        self.delay_s: float = float(params.pop("delay_s", 30.0))
        self.ping_s: float = float(params.pop("ping_s", 0.5))
        self.headers: dict[str, str] = dict(params.pop("headers", {}))
        steps = params.pop("steps", None)
        if params:
            raise TypeError(f"unknown parameters: {sorted(params)}")
        self.steps: list[Step] = []
        if scenario == "script":
            if not isinstance(steps, list) or not steps:
                raise TypeError("the script scenario needs steps: a non-empty list of dicts")
            self.steps = [Step(self._own_step(), **step) for step in steps]
        elif steps is not None:
            raise TypeError("steps are only for the script scenario")
        self.requests: list[dict[str, Any]] = []
        self.main_requests: list[dict[str, Any]] = []
        self.steps_served: list[int] = []
        self.paths: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("MockAnthropic is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def env(self, home: str | os.PathLike[str], **extra: str) -> dict[str, str]:
        """A complete environment for the real CLI: REAL_CLI_ENV pointed at this mock.

        `home` becomes HOME and holds CLAUDE_CONFIG_DIR (use a fresh directory per test:
        transcripts land there, and a reused --session-id is refused).
        """
        home = Path(home)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **REAL_CLI_ENV,
            "ANTHROPIC_BASE_URL": self.base_url,
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            **extra,
        }

    def start(self) -> MockAnthropic:
        mock = self

        class Handler(_Handler):
            api = mock

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="mock-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MockAnthropic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- answers ---------------------------------------------------------------------------

    def record(self, method: str, path: str, body: dict[str, Any] | None) -> bool:
        """Remember a request; return whether it is a main-loop /v1/messages call."""
        with self._lock:
            self.paths.append((method, path))
            if body is None:
                return False
            self.requests.append(body)
            main = is_main_loop(body)
            if main:
                self.main_requests.append(body)
                if self.scenario == "script":
                    self.steps_served.append(self.step_index(body))
            return main

    def step_index(self, body: dict[str, Any]) -> int:
        """The index in `steps` that answers a main-loop body (0 unless script)."""
        if self.scenario != "script":
            return 0
        prompts = sum(1 for m in body.get("messages") or [] if is_prompt(m))
        return min(max(prompts, 1), len(self.steps)) - 1

    def step(self, body: dict[str, Any]) -> Step:
        """What answers a main-loop body: its step of the script, else the mock's parameters."""
        if self.scenario != "script":
            return self._own_step()
        return self.steps[self.step_index(body)]

    def _own_step(self) -> Step:
        return Step(
            scenario="text" if self.scenario == "script" else self.scenario,
            text=self.text,
            command=self.command,
            turns=self.turns,
            status=self.status,
            retry_after=self.retry_after,
            delay_s=self.delay_s,
        )

    def reply(self, body: dict[str, Any], main: bool) -> _Reply:
        model = str(body.get("model", "claude-sonnet-5"))
        if not main:
            return _Reply(
                model, [{"type": "text", "text": '{"title": "Mock task"}'}], TITLE_USAGE, "end_turn"
            )
        step = self.step(body)
        messages = body.get("messages") or []
        if self.scenario == "script":  # the turns since the latest user prompt
            last = max((i for i, m in enumerate(messages) if is_prompt(m)), default=-1)
            messages = messages[last + 1 :]
        done = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        usage = TURN_USAGE if done == 0 else FOLLOW_USAGE
        if step.scenario in ("text", "slow") or (step.scenario == "tools" and done >= step.turns):
            return _Reply(model, [{"type": "text", "text": step.text}], usage, "end_turn")
        if step.scenario == "budget":
            usage = BUDGET_USAGE
        tool = {
            "type": "tool_use",
            "id": _rand_id("toolu_01"),
            "name": "Bash",
            "input": {"command": step.command, "description": "Run the command"},
        }
        return _Reply(model, [{"type": "text", "text": "Let me run it."}, tool], usage, "tool_use")

    def error_body(self, status: int) -> dict[str, Any]:
        kind, message = ERROR_TYPES.get(status, ("api_error", f"HTTP {status}"))
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": _rand_id("req_011"),
        }

    def wait(self, seconds: float) -> bool:
        """Sleep unless the mock closes first; return True when it did."""
        return self._closing.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    api: MockAnthropic
    protocol_version = "HTTP/1.1"
    server_version = "mock-anthropic"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _rand_id("req_011"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.api.record("GET", self.path, None)
        self._send_json(404, self.api.error_body(404))

    def do_POST(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        if path != "/v1/messages":
            self.api.record("POST", self.path, None)
            self._send_json(404, self.api.error_body(404))
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.api.record("POST", self.path, None)
            self._send_json(400, self.api.error_body(400))
            return
        main = self.api.record("POST", self.path, body)
        step = self.api.step(body) if main else None
        if step is not None and step.scenario == "http_error":
            status = step.status
            headers = {"retry-after": step.retry_after} if status in (429, 529) else {}
            if status == 529:
                headers["x-should-retry"] = "true"
            headers.update(self.api.headers)
            self._send_json(status, self.api.error_body(status), headers)
            return
        reply = self.api.reply(body, main)
        if not body.get("stream"):
            self._send_json(200, reply.message())
            return
        slow = step is not None and step.scenario == "slow"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._stream(reply, slow=slow, delay_s=step.delay_s if step else 0.0)

    def _stream(self, reply: _Reply, *, slow: bool, delay_s: float) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", _rand_id("req_011"))
        self.send_header("connection", "close")
        for key, value in self.api.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.close_connection = True
        if not slow:
            self._send_events(reply.events())
            return
        self._send_events(reply.start_events())
        self._send_events(reply.block_events(0, reply.blocks[0]))
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0:
            if self.api.wait(min(self.api.ping_s, left)):
                return
            self._send_events(iter([("ping", {"type": "ping"})]))
        self._send_events(reply.end_events())

    def _send_events(self, events: Iterator[tuple[str, Any]]) -> None:
        chunk = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        self.wfile.write(chunk.encode())
        self.wfile.flush()
