"""`claudomator demo`: claudomator tried without a Claude account. A scratch data dir whose
`claude.binary` is the stand-in (`claudomator.claude_standin`: claude's stream-json, no model,
no cost), a folder for it to work in, and three example tasks (a task file and a batch file
with a dependency) dropped into its inbox, for `serve` to run live through the folders.

The stand-in is named by this data dir only (in its config.toml, and as flags, which nothing
overrides): no other data dir ever runs it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from claudomator import claude_standin
from claudomator.config import Config, load_config
from claudomator.datadir import write_private
from claudomator.errors import ClaudomatorError
from claudomator.service import init

MARKER = ".claudomator-demo"  # what says a folder is a demo's data dir (safe to reuse)
HOST = "127.0.0.1"

CONFIG = """\
# claudomator demo: a scratch data dir. claude here is claudomator's STAND-IN (no model is
# called, nothing is spent): {standin}
[claude]
binary = {binary}
working_dir = {work}

[server]
host = "{host}"
port = {port}
"""

TASKS = {
    "hello.yaml": """\
# A task file: one task.
name: "say hello"
claude:
  instructions: "Say hello, and list the files in the working directory."
tags: ["demo"]
""",
    "docs.yaml": """\
# A batch file: two tasks, the second after the first (depends_on).
defaults:
  tags: ["demo"]
tasks:
  - name: "outline the guide"
    claude:
      instructions: "Outline docs/guide.md from the files in the working directory."
  - name: "write the guide"
    depends_on: ["outline the guide"]
    claude:
      instructions: "Write docs/guide.md following the outline."
""",
}
TASK_COUNT = 3


@dataclass(frozen=True)
class Demo:
    config: Config
    url: str  # the web page

    @property
    def home(self) -> Path:
        return self.config.data_dir.root


def prepare(home: Path | None, port: int) -> Demo:
    """The demo's data dir (`home`, else a new one in the temporary folder), made ready: the
    stand-in, its working folder, config.toml, the database and the token. A `home` that holds
    something else than a demo is refused (its config would be replaced)."""
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="claudomator-demo-"))
    home = home.expanduser().absolute()
    if home.exists() and any(home.iterdir()) and not (home / MARKER).exists():
        raise ClaudomatorError(
            f"{home} is not empty and not a demo's data dir: give `--home` a new folder"
        )
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / MARKER).touch()
    standin = _write_standin(home)
    work = home / "work"
    work.mkdir(exist_ok=True)
    (work / "README.md").write_text("The demo's working directory: the stand-in lists it.\n")
    port = port if _free(port) else _any_free_port()
    flags = {
        "claude.binary": str(standin),
        "claude.working_dir": str(work),
        "server.host": HOST,
        "server.port": port,
        "database_url": "",  # the scratch SQLite file, whatever the environment says
    }
    text = CONFIG.format(
        standin=claude_standin.__file__,
        binary=_toml(str(standin)),
        work=_toml(str(work)),
        host=HOST,
        port=port,
    )
    write_private(home / "config.toml", text, replace=True)
    config = load_config(home, flags=flags)
    init(config)
    return Demo(config, f"http://{HOST}:{port}/")


def drop_tasks(config: Config) -> list[Path]:
    """The example task files, put into the inbox (written aside, then renamed in)."""
    inbox = config.data_dir.root / "inbox"
    dropped = []
    for name, text in TASKS.items():
        aside = inbox / f".{name}.tmp"
        aside.write_text(text)
        os.replace(aside, inbox / name)
        dropped.append(inbox / name)
    return dropped


def settled(config: Config) -> bool:
    """Whether the example tasks have all gone through: nothing left in inbox/, queued/ or
    running/, and the tasks recorded (`--exit-when-done`)."""
    root = config.data_dir.root
    for folder in ("inbox", "queued", "running"):
        for _, _, files in os.walk(root / folder):
            if files:
                return False
    return any(any((root / folder).iterdir()) for folder in ("done", "rejected"))


def _write_standin(home: Path) -> Path:
    """`<home>/standin/claude`: runs the stand-in with this Python."""
    folder = home / "standin"
    folder.mkdir(exist_ok=True)
    path = folder / "claude"
    script = (
        "#!/bin/sh\n"
        "# claudomator demo: a STAND-IN for claude (no model, no cost), not the Claude Code CLI\n"
        f'exec {_sh(sys.executable)} -I -S {_sh(claude_standin.__file__)} "$@"\n'
    )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    write_private(path, script)
    path.chmod(0o700)
    return path


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["MARKER", "TASKS", "TASK_COUNT", "Demo", "drop_tasks", "prepare", "settled"]
