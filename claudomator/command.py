"""The claude command for one execution: its argv and its environment. `build_argv` is the only
place that knows claude's flags; the instructions go on stdin. Pure."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from claudomator.config import Config
from claudomator.task import TaskSpec

# every process of an execution inherits it: how its descendants are found (`proctree`)
EXECUTION_ENV = "CLAUDOMATOR_EXECUTION_ID"


MIN_BUDGET_USD = 0.0001  # the least --max-budget-usd can say (4 decimals; 0 is refused)


@dataclass(frozen=True)
class Invocation:
    """What one claude process is asked: its prompt (on stdin), its session (a new one with
    this id, or the one it resumes), the money it may spend (None: no limit)."""

    prompt: str
    session_id: str
    resume: bool = False
    budget_usd: float | None = None

    @classmethod
    def fresh(cls, spec: TaskSpec, session_id: str = "") -> Invocation:
        """The task's own instructions in a new session (`session_id`, else a new id)."""
        session = session_id or str(uuid.uuid4())
        return cls(spec.claude.instructions, session, False, spec.claude.max_budget_usd)


def build_argv(spec: TaskSpec, config: Config, claude: str, asked: Invocation) -> list[str]:
    """The claude command line for one execution; the prompt goes on stdin."""
    c = spec.claude
    # `--resume` takes an optional value: only the equals form keeps the id its own
    session = f"--resume={asked.session_id}" if asked.resume else f"--session-id={asked.session_id}"
    argv = [
        claude,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        c.model or config.claude_model,
        "--permission-mode",
        c.permission_mode,
        session,
    ]
    if asked.budget_usd is not None and asked.budget_usd > 0:
        # rounded down: a hard limit may be met early, never passed
        argv += ["--max-budget-usd", f"{math.floor(asked.budget_usd * 10000) / 10000:.4f}"]
    # list options are variadic and swallow what follows: always the equals form
    if c.allowed_tools:
        argv.append("--allowedTools=" + ",".join(c.allowed_tools))
    if c.disallowed_tools:
        argv.append("--disallowedTools=" + ",".join(c.disallowed_tools))
    if c.max_turns is not None:
        argv += ["--max-turns", str(c.max_turns)]
    if c.append_system_prompt:
        argv.append("--append-system-prompt=" + c.append_system_prompt)
    argv += ["--add-dir=" + d for d in c.add_dirs]
    if c.fallback_model:
        argv.append("--fallback-model=" + c.fallback_model)
    return argv


def build_env(
    spec: TaskSpec, execution_id: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """claudomator's own environment, less CLAUDECODE, with the task's env on top."""
    env = dict(os.environ if base is None else base)
    env.pop("CLAUDECODE", None)
    env.update(spec.claude.env)
    env[EXECUTION_ENV] = execution_id
    return env
