"""Sessions on disk, for --session-id and --resume: only under an explicit CLAUDE_CONFIG_DIR, so
a test never writes to a real ~/.claude. A run's lines go to
``$CLAUDE_CONFIG_DIR/projects/<project dir>/<session id>.jsonl``."""

from __future__ import annotations

import os

from .console import fail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def project_dir(cwd: str) -> str:
    """The folder name of a working directory: every non-alphanumeric character as ``-``."""
    return "".join(c if c.isalnum() and c.isascii() else "-" for c in cwd)


def sessions_dir(cwd: str) -> str | None:
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    return os.path.join(config, "projects", project_dir(cwd)) if config else None


def resolve(opts: dict[str, Any], given_id: str | None) -> str | None:
    """The sessions folder (None: nothing is kept), after the real CLI's checks: --resume=<id>
    must name a kept session and continues it (opts' sessionId becomes <id>); a --session-id
    must not."""
    sessions = sessions_dir(os.getcwd())
    if sessions is None:
        return None
    resume = opts.get("resume")
    if isinstance(resume, str):
        if not os.path.exists(os.path.join(sessions, f"{resume}.jsonl")):
            fail(f"No conversation found with session ID: {resume}")
        opts["sessionId"] = resume
    elif given_id is not None and os.path.exists(os.path.join(sessions, f"{given_id}.jsonl")):
        fail(f"Error: Session ID {given_id} is already in use.")
    return sessions


def transcript(sessions: str, session_id: str) -> str:
    """The file a run appends its lines to (its folder made)."""
    os.makedirs(sessions, exist_ok=True)
    return os.path.join(sessions, f"{session_id}.jsonl")
