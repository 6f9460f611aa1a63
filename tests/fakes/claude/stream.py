"""The lines of one run in the real stream-json schema: init, assistant (one line per content
block), user tool results, and the formats: stream-json prints each line at once (flushed), json
keeps them for one object or array at the end, text prints only the result's text."""

from __future__ import annotations

import os

from . import VERSION
from .console import out
from .models import Usage, resolve_model, scale, usage_json
from .sessions import project_dir
from .signals import Signals, check_signals, install_signals, interruptible_sleep
from .tools import COMMANDS, SKILLS, split_tools, tool_list
from .values import dumps, rand_id, timestamp, uuid4

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


class Stream:
    """Writes the lines of one run; `Run` adds the accounting and the result lines."""

    def __init__(self, opts: dict[str, Any], params: dict[str, str], prompt: str) -> None:
        self.opts = opts
        self.params = params
        self.prompt = prompt
        self.session_id: str = opts.get("sessionId") or uuid4()
        self.model = resolve_model(opts.get("model"))
        self.api_model = self.model.removesuffix("[1m]")
        self.cwd = os.getcwd()
        self.format = opts.get("outputFormat") or "text"
        self.verbose = bool(opts.get("verbose"))
        self.collected: list[Any] = []  # every message, for --output-format json --verbose
        self.transcript: str | None = None
        skip = bool(opts.get("dangerouslySkipPermissions"))
        self.permission_mode = (
            "bypassPermissions" if skip else opts.get("permissionMode", "default")
        )
        self.allowed = split_tools(opts.get("allowedTools") or [])
        self.scale = 1.0  # token counts are multiplied by this to match a `cost` parameter
        self.phase = "api"  # what a SIGINT would abort: "api" (streaming) or "tool"
        self.pending_tool: dict[str, Any] | None = None

    def emit(self, obj: dict[str, Any]) -> None:
        if obj.get("type") == "result":
            install_signals(ignore=True)  # the result line is the last word
            Signals.pending.clear()
        self.write_raw(dumps(obj), obj)

    def write_raw(self, line: str, obj: Any) -> None:
        """One stdout line (stream-json), or keep it for the json format; then act on signals."""
        if self.format == "stream-json":
            out(line + "\n")
        elif self.format == "json" and self.verbose:
            self.collected.append(obj)
        if self.transcript is not None:
            with open(self.transcript, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        check_signals()

    def wait(self, seconds: float) -> None:
        interruptible_sleep(seconds)

    def init(self) -> None:
        startup = float(self.params.get("startup_s") or 0)
        if startup:
            self.wait(startup)
        config = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(
            os.path.expanduser("~"), ".claude"
        )
        quiet = truthy_env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")
        has_key = bool(os.environ.get("ANTHROPIC_API_KEY"))
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": self.cwd,
                "session_id": self.session_id,
                "tools": tool_list(self.opts),
                "mcp_servers": [],
                "model": self.model,
                "permissionMode": self.permission_mode,
                "slash_commands": [*SKILLS, *COMMANDS],
                "apiKeySource": self.params.get("api_key_source")
                or ("ANTHROPIC_API_KEY" if has_key else "none"),
                "claude_code_version": VERSION,
                "output_style": "default",
                "agents": ["claude", "Explore", "general-purpose", "Plan", "statusline-setup"],
                "skills": list(SKILLS),
                "plugins": [],
                "analytics_disabled": quiet,
                "product_feedback_disabled": quiet,
                "uuid": uuid4(),
                "memory_paths": {"auto": f"{config}/projects/{project_dir(self.cwd)}/memory/"},
                "fast_mode_state": "off",
            }
        )

    def assistant(self, blocks: list[dict[str, Any]], usage: Usage) -> str:
        """One API call's message, one line per content block; returns message.id."""
        msg_id = rand_id("msg_01")
        request_id = rand_id("req_011")
        usage = scale(usage, self.scale)
        start = (usage[0], usage[1], usage[2], 1)
        message: dict[str, Any] = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": self.api_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_json(start, result=False),
        }
        for block in blocks:
            self.emit(
                {
                    "type": "assistant",
                    "message": {**message, "content": [block], "context_management": None},
                    "parent_tool_use_id": None,
                    "session_id": self.session_id,
                    "uuid": uuid4(),
                    "request_id": request_id,
                }
            )
            if block["type"] == "tool_use":
                self.pending_tool = block
                self.phase = "tool"
        return msg_id

    def tool_result(self, content: str, *, is_error: bool = False, extra: Any = None) -> None:
        """The user line with the pending tool_use's result (an error: `extra` or "Error: …")."""
        tool = self.pending_tool or {"id": rand_id("toolu_01")}
        self.pending_tool = None
        self.phase = "api"
        block: dict[str, Any]
        if is_error:
            block = {"type": "tool_result", "content": content, "is_error": True}
            block["tool_use_id"] = tool["id"]
            extra = "Error: " + content if extra is None else extra
        else:
            block = {"tool_use_id": tool["id"], "type": "tool_result", "content": content}
            block["is_error"] = False
            extra = {
                "stdout": content,
                "stderr": "",
                "interrupted": False,
                "isImage": False,
                "noOutputExpected": False,
            }
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [block]},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": uuid4(),
                "timestamp": timestamp(),
                "tool_use_result": extra,
            }
        )

    def user_text(self, text: str) -> None:
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [{"type": "text", "text": text}]},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": uuid4(),
                "timestamp": timestamp(),
            }
        )
