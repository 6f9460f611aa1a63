"""``$FAKE_CLAUDE_RECORD``: what each invocation got (argv, cwd, stdin, environment, the
scenario) and how it ended, as ``<session id>.json`` (a ``--resume`` run of that session as
``<session id>.resumed.<pid>.json``: one session may be run many times), so tests can check
what the runner ran."""

from __future__ import annotations

import json
import os

from .values import is_uuid, uuid4

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Recorder:
    def __init__(self, argv0: str, args: list[str]) -> None:
        self.dir = os.environ.get("FAKE_CLAUDE_RECORD")
        self.path: str | None = None
        self.data: dict[str, Any] = {
            "argv": [argv0, *args],
            "args": args,
            "cwd": os.getcwd(),
            "stdin": None,
            "prompt": None,
            "env": dict(os.environ),
            "scenario": None,
            "params": {},
            "session_id": None,
            "pid": os.getpid(),
            "began": False,  # past the checks that refuse a run (a --resume of no session)
        }

    def write(self, **fields: Any) -> None:
        """Update the record with `fields` and write it (atomically; renamed when the session
        id changed); nothing without $FAKE_CLAUDE_RECORD."""
        if not self.dir or self.data["args"] in (["--version"], ["-v"]):
            return  # a version probe (`claudomator doctor`, serve's start) runs nothing
        self.data.update(fields)
        sid = self.data["session_id"]
        if not sid or not is_uuid(sid):
            sid = self.data["session_id"] = uuid4()
        resumed = any(a.startswith(("--resume=", "-r=")) for a in self.data["args"])
        name = f"{sid}.resumed.{self.data['pid']}.json" if resumed else f"{sid}.json"
        path = os.path.join(self.dir, name)
        if self.path and self.path != path and os.path.exists(self.path):
            os.unlink(self.path)
        self.path = path
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, ensure_ascii=False)
        os.replace(tmp, path)
