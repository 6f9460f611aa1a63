"""What the API answers, as types for the OpenAPI schema: the records the service hands out
(`claudomator.records`, one shape of a task, an execution, a node and the status for the CLI and
the API), and the API's own answers (pages, validation, errors).

An execution's `workspace` is a JSON object in its record, of the shape of `Workspace` (the
workspace's own record, `workspace.WorkspaceRecord`); its `verify` one of the shape of `Verify`
(`verification.Verification.to_json`), and each of its `permission_denials` claude's own object,
of which `PermissionDenial` names the keys claude writes; `openapi` says so in the schema."""

from __future__ import annotations

from typing import Literal, TypedDict

from claudomator.records import (
    Costs,
    DayCost,
    Execution,
    JSONObject,
    Node,
    NodeRunning,
    Owner,
    Pool,
    Running,
    Status,
    TagCost,
    Task,
    TaskDetail,
    Tokens,
)
from claudomator.workspace import WorkspaceRecord as Workspace


class VerifyCommand(TypedDict):
    command: str
    exit_code: int | None  # null: it was stopped (it timed out, or a cancel stopped it)
    duration_ms: int
    timed_out: bool


class Verify(TypedDict):
    """What an execution's verify commands said."""

    passed: bool
    commands: list[VerifyCommand]  # in order, up to the first that failed
    log_path: str  # their output, each command's after a `$ <command>` line


class PermissionDenial(TypedDict, total=False):
    """A tool use claude was not allowed, as claude reported it."""

    tool_name: str
    tool_use_id: str | None
    tool_input: JSONObject  # what the tool was asked: file_path, command, ...


class Health(TypedDict):
    status: Literal["ok"]


class Batch(TypedDict):
    tasks: list[TaskDetail]


class TaskPage(TypedDict):
    items: list[Task]
    next_cursor: str | None  # give it as `cursor` for the next page; null on the last


class LogPage(TypedDict):
    execution_id: str
    stream: Literal["stdout", "stderr"]
    format: Literal["readable", "raw"]
    offset: int  # where this page starts, in bytes
    next_offset: int  # give it as `offset` for the next page
    size: int  # bytes in the log now
    eof: bool  # next_offset reached the end of the log as it is now
    running: bool  # the execution may still write more
    lines: list[str]
    node: str  # the node that ran it
    elsewhere: bool  # its log is in that other node's data dir, not here


class Problem(TypedDict):
    text: str  # as `claudomator validate` prints it: file:line:column field: message
    field: str
    message: str
    line: int | None
    column: int | None
    warning: bool


class Validation(TypedDict):
    ok: bool
    tasks: int  # how many tasks the file asks for (0 when it is invalid)
    problems: list[Problem]  # the errors, or the warnings of a valid file


class ErrorDetail(TypedDict, total=False):
    field: str | None  # dotted field path, as `claudomator validate` names it
    message: str
    line: int | None  # YAML bodies only
    column: int | None


class Error(TypedDict):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorBody(TypedDict):
    error: Error


__all__ = [
    "Batch", "Costs", "DayCost", "Error", "ErrorBody", "ErrorDetail", "Execution", "Health",
    "LogPage", "Node", "NodeRunning", "Owner", "PermissionDenial", "Pool", "Problem", "Running",
    "Status", "TagCost", "Task", "TaskDetail", "TaskPage", "Tokens", "Validation", "Verify",
    "VerifyCommand", "Workspace",
]  # fmt: skip
