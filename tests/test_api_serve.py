"""`claudomator serve` with its API, as a real process on 127.0.0.1: it serves REST and the
WebSocket beside the pool, posts webhooks, stops on SIGTERM, keeps tokens out of its logs, and
refuses to start without a token off loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from claudomator.token import ensure_token
from tests.apiserver import Receiver
from tests.net import free_port

pytestmark = pytest.mark.timeout(60)


def serve(home: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "claudomator.cli", "serve", *args],
        env={**os.environ, **env, "CLAUDOMATOR_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not answer /api/health")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_serve_runs_the_api_beside_the_pool(
    home: Path, fake_claude: Path, receiver: Receiver
) -> None:
    home.mkdir(parents=True)
    token = ensure_token(home)
    (home / "config.toml").write_text(
        f'[server]\nauth = true\n\n[[notify]]\nurl = "{receiver.url}"\nsecret = "hook-secret"\n'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"CLAUDOMATOR_SERVER_PORT": str(port), "CLAUDOMATOR_CLAUDE_BIN": str(fake_claude)}
    proc = serve(home, env)
    try:
        wait_healthy(url, proc)
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + "/api/status").status_code == 401
        with connect(f"ws://127.0.0.1:{port}/api/ws?token={token}", proxy=None) as ws:
            body = {
                "name": "doomed",
                "claude": {"instructions": "fake-scenario: error_during_execution"},
            }
            task = httpx.post(url + "/api/tasks?run=true", json=body, headers=auth).json()
            deadline = time.monotonic() + 20
            while True:
                event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                if event["type"] == "task.finished" and event["task_id"] == task["id"]:
                    break
        assert event["state"] == "FAILED"
        headers, payload, _ = receiver.wait(1)[0]
        assert json.loads(payload)["task"]["id"] == task["id"]
        assert headers["x-claudomator-signature"].startswith("sha256=")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    logs = out + err
    assert b"api.listening" in logs and b"serve.stopped" in logs
    assert token.encode() not in logs and b"hook-secret" not in logs
    assert b"secret-path" not in logs  # webhook URLs are logged without their path


def test_serve_with_auth_on_loopback_and_no_token_says_what_to_do(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    proc = serve(
        home, {"CLAUDOMATOR_SERVER_PORT": str(free_port()), "CLAUDOMATOR_SERVER_AUTH": "true"}
    )
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and b"requires a token (server.auth = true)" in err
    assert b"or set server.auth = false" in err and b"bind to 127.0.0.1" not in err


def test_serve_without_a_token_off_loopback_refuses_to_start(home: Path) -> None:
    port = free_port()
    proc = serve(home, {"CLAUDOMATOR_SERVER_HOST": "0.0.0.0", "CLAUDOMATOR_SERVER_PORT": str(port)})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert b"requires a token" in err and b"claudomator token" in err
    assert b"or bind to 127.0.0.1" in err  # it is bound elsewhere: that is advice
    assert b"serve.started" not in out + err  # nothing ran
    with socket.socket() as s:  # and the port was let go
        s.bind(("127.0.0.1", port))


def test_serve_no_api_does_not_listen(home: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claudomator.cli", "serve", "--no-api"],
            env={**os.environ, "CLAUDOMATOR_HOME": str(home), "CLAUDOMATOR_SERVER_PORT": str(port)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while b"serve.started" not in log.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", port)) != 0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    assert b"api.listening" not in log.read_bytes()
