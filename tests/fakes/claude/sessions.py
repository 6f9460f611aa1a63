"""Sessions on disk, for --session-id and --resume: only under an explicit CLAUDE_CONFIG_DIR, so
a test never writes to a real ~/.claude. A run's lines go to
``$CLAUDE_CONFIG_DIR/projects/<project dir>/<session id>.jsonl``."""

from __future__ import annotations

import os

from .console import fail, out
from .models import ZERO, usage_json
from .values import dumps, is_uuid, uuid4

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def project_dir(cwd: str) -> str:
    """The folder name of a working directory: every non-alphanumeric character as ``-``."""
    return "".join(c if c.isalnum() and c.isascii() else "-" for c in cwd)


def sessions_dir(cwd: str) -> str | None:
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    return os.path.join(config, "projects", project_dir(cwd)) if config else None


def _no_session(message: str, session_id: str, output_format: str) -> NoReturn:
    """A resume that finds nothing: `message` on stderr, exit 1; with stream-json (--verbose or
    not) 2.1.197 also writes an error result, and no init line, on stdout."""
    if output_format == "stream-json":
        result = {
            "type": "result",
            "subtype": "error_during_execution",
            "duration_ms": 0,
            "duration_api_ms": 0,
            "is_error": True,
            "num_turns": 0,
            "stop_reason": None,
            "session_id": session_id,
            "total_cost_usd": 0,
            "usage": usage_json(ZERO, result=True),
            "modelUsage": {},
            "permission_denials": [],
            "uuid": uuid4(),
            "errors": [message],
        }
        out(dumps(result) + "\n")
    fail(message)


def resolve(opts: dict[str, Any], given_id: str | None, output_format: str) -> str | None:
    """The sessions folder (None: nothing is kept), after the real CLI's checks (made before
    the prompt's and --verbose's): --resume=<id> must name a kept session and continues it
    (opts' sessionId becomes <id>); a --session-id must not. Without CLAUDE_CONFIG_DIR nothing
    was ever kept, so every --resume=<id> fails."""
    sessions = sessions_dir(os.getcwd())
    resume = opts.get("resume")
    if isinstance(resume, str):
        if not is_uuid(resume):  # the fake keeps no session titles
            _no_session(
                "Error: --resume requires a valid session ID or session title when used with "
                "--print. Usage: claude -p --resume <session-id|title>. Provided value "
                f'"{resume}" is not a UUID and does not match any session title.',
                opts["sessionId"],
                output_format,
            )
        if sessions is None or not os.path.exists(os.path.join(sessions, f"{resume}.jsonl")):
            _no_session(f"No conversation found with session ID: {resume}", resume, output_format)
        opts["sessionId"] = resume
    elif (
        sessions is not None
        and given_id is not None
        and os.path.exists(os.path.join(sessions, f"{given_id}.jsonl"))
    ):
        fail(f"Error: Session ID {given_id} is already in use.")
    return sessions


def transcript(sessions: str, session_id: str) -> str:
    """The file a run appends its lines to (its folder made)."""
    os.makedirs(sessions, exist_ok=True)
    return os.path.join(sessions, f"{session_id}.jsonl")
