"""The claude command for one execution: its argv and its environment. `build_argv` is the only
place that knows claude's flags; the instructions go on stdin. Pure."""

from __future__ import annotations

import os
from collections.abc import Mapping

from claudomator.config import Config
from claudomator.task import TaskSpec

# every process of an execution inherits it: how its descendants are found (`proctree`)
EXECUTION_ENV = "CLAUDOMATOR_EXECUTION_ID"


def build_argv(spec: TaskSpec, config: Config, claude: str, session_id: str) -> list[str]:
    """The claude command line for one execution; the instructions go on stdin."""
    c = spec.claude
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
        f"--session-id={session_id}",
    ]
    if c.max_budget_usd is not None and c.max_budget_usd > 0:
        argv += ["--max-budget-usd", f"{c.max_budget_usd:.4f}"]
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
