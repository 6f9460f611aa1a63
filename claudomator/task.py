"""What a task asks for: `TaskSpec`, validated and frozen, the same model for YAML, JSON and the
JSON Schema written by `claudomator schema`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic import ValidationError as ValidationError  # re-exported: pydantic stays here

from claudomator.duration import parse_duration
from claudomator.records import JSONObject
from claudomator.secret import mask_env
from claudomator.workspace import Workspace, workspace_input

PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan")
PRIORITIES = ("high", "normal", "low")
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}

_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d))+$|^\d+(\.\d+)?$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "whole numbers with units ms, s, m, h, d (e.g. 90s, 15m, 1h30m); "
    "a bare number is seconds",
}


Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]


def _workspace_or_default(value: object) -> object:
    return None if value is None else workspace_input(value)


# `shared`, `worktree` or the mapping; None (left out): the default of the task's source, which
# intake writes in (`workdir.settle`), so that a recorded task always says where it runs
WorkspaceField = Annotated[Workspace | None, BeforeValidator(_workspace_or_default)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ClaudeSpec(_Strict):
    """How to run claude for this task."""

    instructions: str = Field(min_length=1, description="the prompt, sent to claude on stdin")
    model: str | None = Field(
        default=None, description="alias or full model id; default from config"
    )
    working_dir: str | None = Field(
        None, description="where claude runs; default [claude] working_dir, else home"
    )
    # strict numbers: YAML `true` or "1.5" must not pass as a number; money must be finite
    max_budget_usd: float | None = Field(
        None,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="hard money limit for one attempt (its verify rounds together); leave out "
        "for none",
    )
    permission_mode: Literal[
        "acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan"
    ] = "default"
    allowed_tools: list[str] = Field(
        default_factory=list, description='e.g. ["Bash(git *)", "Edit"]'
    )
    disallowed_tools: list[str] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, gt=0, strict=True)
    append_system_prompt: str | None = None
    add_dirs: list[str] = Field(default_factory=list)
    fallback_model: str | None = None
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment for this task's claude process"
    )


class RetryPolicy(_Strict):
    """Opt-in automatic retries: FAILED (and TIMED_OUT when asked) goes back to QUEUED."""

    max_attempts: int = Field(
        1, ge=1, le=100, strict=True, description="executions at most, the first included"
    )
    backoff: Duration = Field(30.0, description="wait before the first retry; doubles per attempt")
    on_timeout: bool = Field(False, description="also retry TIMED_OUT")
    max_cost_usd: float | None = Field(
        None,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="automatic retries stop once the task's executions together spent this",
    )
    resume: bool = Field(
        True,
        description="a retry resumes the last execution's claude session when it is on this "
        "node (else a fresh session); false: always start over",
    )


def _commands_input(value: object) -> object:
    """`verify: "pytest -q"` (one command), a list of commands, or the mapping."""
    return {"commands": value} if isinstance(value, str | list) else value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


class VerifySpec(_Strict):
    """Commands that decide success: run after claude ends with success, in the task's working
    directory (its worktree when it has one); a failure resumes claude with what failed."""

    commands: Annotated[
        list[Annotated[str, Field(min_length=1)]], BeforeValidator(_one_or_many)
    ] = Field(min_length=1, description='shell commands, in order, e.g. ["pytest -q"]')
    timeout: Duration = Field(600.0, gt=0, description="per command")
    rounds: int = Field(
        2, ge=0, le=20, strict=True, description="how many times claude may try again"
    )


class TaskSpec(_Strict):
    """One task as written in a task file."""

    name: str = Field(min_length=1)
    claude: ClaudeSpec
    timeout: Duration | None = Field(
        default=None, description="default [claude] timeout from config"
    )
    priority: Literal["high", "normal", "low"] = "normal"
    tags: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(
        default_factory=list, description="names in the same file, else the newest task so named"
    )
    retry: RetryPolicy = Field(default_factory=lambda: RetryPolicy.model_validate({}))
    concurrency_key: str | None = Field(
        default=None,
        min_length=1,
        description="tasks with the same key run one at a time (e.g. one per repository)",
    )
    stall_timeout: Duration | None = Field(
        default=None,
        description="no new line on claude's stdout for this long stops the execution "
        "(TIMED_OUT); default [claude] stall_timeout from config; 0 is none",
    )
    verify: Annotated[VerifySpec | None, BeforeValidator(_commands_input)] = Field(
        default=None, description="checks that decide success (see VerifySpec)"
    )
    workspace: WorkspaceField = Field(
        None,
        description="shared: run in working_dir itself; worktree: in a git worktree of the "
        "repository on a branch of the task's own; default [claude] workspace (a git source: "
        "worktree)",
    )

    def shown(self) -> JSONObject:
        """The spec as JSON for people: secret-looking env values masked."""
        data = self.model_dump(mode="json")
        data["claude"]["env"] = mask_env(self.claude.env)
        return data


class BatchSpec(_Strict):
    """A batch file: `tasks:` with optional `defaults:` merged into each."""

    budget_usd: float | None = Field(
        None,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="hard money limit for all the batch's tasks' executions together",
    )
    defaults: JSONObject = Field(default_factory=dict)
    tasks: list[TaskSpec] = Field(min_length=1)


def json_schema() -> JSONObject:
    """JSON Schema accepting a task file or a batch file."""
    task = TaskSpec.model_json_schema(ref_template="#/$defs/{model}")
    batch = BatchSpec.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**task.pop("$defs", {}), **batch.pop("$defs", {})}
    defs["TaskSpec"] = task
    defs["BatchSpec"] = batch
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "claudomator task or batch file",
        "oneOf": [{"$ref": "#/$defs/TaskSpec"}, {"$ref": "#/$defs/BatchSpec"}],
        "$defs": defs,
    }
