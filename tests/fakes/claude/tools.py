"""The tools, skills and commands the init line lists, the --tools/--allowedTools rules, and
the texts of a denied or rejected tool use (2.1.197's)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


SKILLS = [
    "deep-research",
    "design-sync",
    "update-config",
    "verify",
    "debug",
    "code-review",
    "simplify",
    "batch",
    "fewer-permission-prompts",
    "loop",
    "claude-api",
    "run",
    "run-skill-generator",
]
COMMANDS = [
    "clear",
    "compact",
    "config",
    "context",
    "heapdump",
    "init",
    "reload-skills",
    "review",
    "security-review",
    "usage",
    "insights",
    "goal",
    "team-onboarding",
]
TOOLS = [
    "Task",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "DesignSync",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "Skill",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "TaskUpdate",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
]
REJECTED = (
    "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it "
    "was a file edit, the new_string was NOT written to the file). STOP what you are doing and "
    "wait for the user to tell you how to proceed."
)
DONT_ASK = (
    "Permission to use Bash has been denied because Claude Code is running in don't ask mode. "
    "IMPORTANT: You *may* attempt to accomplish this action using other tools that might "
    "naturally be used to accomplish this goal, e.g. using head instead of cat. But you *should "
    "not* attempt to work around this denial in malicious ways, e.g. do not use your ability to "
    "run tests to execute non-test actions. You should only try to work around this restriction "
    "in reasonable ways that do not attempt to bypass the intent behind this denial. If you "
    "believe this capability is essential to complete the user's request, STOP and explain to "
    "the user what you were trying to do and why you need this permission. Let the user decide "
    "how to proceed."
)


def split_tools(values: list[str]) -> list[str]:
    """Comma- or space-separated tool rules; spaces inside parentheses stay."""
    rules: list[str] = []
    for value in values:
        depth, current = 0, ""
        for ch in value:
            if ch in ", " and depth == 0:
                if current:
                    rules.append(current)
                current = ""
                continue
            depth += (ch == "(") - (ch == ")")
            current += ch
        if current:
            rules.append(current)
    return rules


def tool_list(opts: dict[str, Any]) -> list[str]:
    """The init line's tools: those of --tools (all for "default"), less --disallowedTools."""
    tools = list(TOOLS)
    if "tools" in opts:
        names = split_tools(opts["tools"])
        if names != ["default"]:
            tools = [t for t in tools if t in names]
    denied = set(split_tools(opts.get("disallowedTools") or []))
    return [t for t in tools if t not in denied]
