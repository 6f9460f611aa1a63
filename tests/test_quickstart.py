"""The README's quickstart as a newcomer runs it, on a fresh machine: a copy of the clone, a home
of its own (no data dir, no pip cache), a clean virtualenv made by the README's own command
from the base Python, the first command in one shell and the second in a new one that has no
virtualenv activated and nothing exported.

Bounded: the first command's `pip install .` takes the package index pip is configured with
(CI's own, and its local wheels; ~20 s here), then everything runs on 127.0.0.1. The second
shell gets no CLAUDOMATOR_* variable at all; the first only a free port for `serve` (the
README's 8484 may be taken on this machine), so that the test can run beside others.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.net import free_port
from tests.poll import wait_for
from tests.test_docs import ROOT, quickstart

pytestmark = pytest.mark.timeout(300)

CLONE = ("pyproject.toml", "README.md", "claudomator", "inbox.example")  # what the install needs


def new_shell_env(home: Path) -> dict[str, str]:
    """A login-like environment: HOME, a PATH with the base Python (never this test's venv) and
    the system, and how pip is told where its packages are; nothing of claudomator's."""
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join([str(Path(sys.base_prefix) / "bin"), "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
    }
    for name, value in os.environ.items():  # the index CI's pip uses (and its certificates)
        if (name.startswith("PIP_") and name != "PIP_CACHE_DIR") or name == "XDG_CONFIG_DIRS":
            env[name] = value
    return env


def test_the_quickstart_runs_from_a_new_shell(tmp_path: Path) -> None:
    first, second = quickstart()
    clone = tmp_path / "clone"
    for name in CLONE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            clone.mkdir(exist_ok=True)
            shutil.copy(source, clone / name)
    home = tmp_path / "user"
    home.mkdir()
    env = new_shell_env(home)
    log = tmp_path / "first.log"
    with open(log, "wb") as out:
        serving = subprocess.Popen(
            ["bash", "-c", first],
            cwd=clone,
            env={**env, "CLAUDOMATOR_SERVER_PORT": str(free_port())},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: b"serve.started" in log.read_bytes() or serving.poll() is not None, 240)
        text = log.read_text()
        assert serving.poll() is None, text
        assert "Warning: claude not found" in text  # init said so: no claude on this PATH
        data_dir = home / ".claudomator"
        assert (data_dir / "claudomator.db").is_file()

        listed = subprocess.run(
            ["bash", "-c", second], cwd=clone, env=env, capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        assert "command not found" not in listed.stderr
        assert "Say hello" in listed.stdout or "no tasks" in listed.stdout

        claudomator = str(clone / ".venv" / "bin" / "claudomator")
        wait_for(lambda: (data_dir / "done" / "minimal.yaml").exists(), 60)
        tasks = subprocess.run(
            [claudomator, "list", "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        (task,) = json.loads(tasks.stdout)
        assert (task["name"], task["state"]) == ("Say hello", "FAILED")
        assert "not found" in task["reason"]  # the claude this machine does not have
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGINT)  # Ctrl-C in that terminal
        code = serving.wait(30)
    assert code == 130, log.read_text()[-2000:]
    # the installed package (not this checkout) holds what the demo needs: its stand-in claude
    port = str(free_port())
    demo = subprocess.run(
        [claudomator, "demo", "--home", str(tmp_path / "demo"), "--exit-when-done", "--port", port],
        env={**env, "CLAUDOMATOR_STANDIN_PACE_S": "0.05"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert demo.stdout.count("COMPLETED") == 3
