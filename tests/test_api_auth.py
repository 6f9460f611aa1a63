"""Auth, Host and Origin checks: every route of the app, enumerated from its router, against a real
server on 127.0.0.1; the decisions behind them as tables; the token files."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from claudomator.api import Api, routes
from claudomator.api.access import HostRule, auth_required, host_name, is_loopback, origin_allowed
from claudomator.cli import cli
from claudomator.config import load_config
from claudomator.errors import ConfigError
from claudomator.store.reader import Reader
from claudomator.token import Tokens, ensure_token, read_token, token_path
from tests.apiserver import LiveServer
from tests.services import make_service

pytestmark = pytest.mark.timeout(60)

TASK = {"name": "hello", "claude": {"instructions": "say hello"}}
OPEN = {("GET", "/api/health")}


# -- the decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "auth", "required"),
    [
        ("127.0.0.1", False, False),
        ("127.0.0.1", True, True),
        ("127.1.2.3", False, False),
        ("::1", False, False),
        ("localhost", False, False),
        ("0.0.0.0", False, True),
        ("::", False, True),
        ("192.168.1.10", False, True),
        ("myhost.example", False, True),
        ("", False, True),
    ],
)
def test_auth_is_on_off_loopback(host: str, auth: bool, required: bool) -> None:
    assert auth_required(host, auth) is required
    assert is_loopback(host) is not auth_required(host, False)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8484", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8484", "::1"),
        ("[::1]", "::1"),
        ("example.com:443", "example.com"),
        ("", ""),
        ("[broken", ""),
    ],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("bind", "extra", "header", "allowed"),
    [
        ("127.0.0.1", [], "127.0.0.1:8484", True),
        ("127.0.0.1", [], "localhost:8484", True),
        ("127.0.0.1", [], "[::1]:8484", True),
        ("127.0.0.1", [], "127.0.0.2", True),
        ("127.0.0.1", [], "evil.example:8484", False),  # DNS rebinding
        ("127.0.0.1", [], "", False),
        ("0.0.0.0", [], "192.168.1.10:8484", False),
        ("192.168.1.10", [], "192.168.1.10:8484", True),
        ("0.0.0.0", ["box.lan"], "box.lan:8484", True),
        ("0.0.0.0", ["*.corp.example"], "ci.corp.example", True),
        ("0.0.0.0", ["*.corp.example"], "corp.example.evil", False),
        ("0.0.0.0", ["*"], "anything", True),
    ],
)
def test_host_rule(bind: str, extra: list[str], header: str, allowed: bool) -> None:
    assert HostRule.build(bind, extra).allows(header) is allowed


@pytest.mark.parametrize(
    ("origin", "host", "cors", "allowed"),
    [
        ("http://127.0.0.1:8484", "127.0.0.1:8484", [], True),
        ("http://localhost:8484", "127.0.0.1:8484", [], False),
        ("https://evil.example", "127.0.0.1:8484", [], False),
        ("null", "127.0.0.1:8484", [], False),
        ("https://ui.example", "127.0.0.1:8484", ["https://ui.example"], True),
        ("https://UI.example/", "127.0.0.1:8484", ["https://ui.example"], True),
        ("https://ui.example:444", "127.0.0.1:8484", ["https://ui.example"], False),
    ],
)
def test_origin_rule(origin: str, host: str, cors: list[str], allowed: bool) -> None:
    assert origin_allowed(origin, host, frozenset(cors)) is allowed


# -- tokens ----------------------------------------------------------------------------------


def test_tokens_are_private_files_printed_alone(home: Path) -> None:
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    full = read_token(home)
    assert full and full in token_path(home).read_text()
    assert full not in result.output  # init says where, not what
    assert stat.S_IMODE(token_path(home).stat().st_mode) == 0o600
    printed = CliRunner().invoke(cli, ["token"])
    assert printed.stdout == full + "\n"
    read_only = CliRunner().invoke(cli, ["token", "--read-only"]).stdout.strip()
    assert read_only != full and read_token(home, read_only=True) == read_only
    assert stat.S_IMODE(token_path(home, read_only=True).stat().st_mode) == 0o600
    rotated = CliRunner().invoke(cli, ["token", "--rotate"]).stdout.strip()
    assert rotated != full and read_token(home) == rotated
    tokens = Tokens.load(home)
    assert tokens.access(rotated) == "full" and tokens.access(read_only) == "read"
    assert tokens.access(full) is None and tokens.access("") is None
    assert full not in repr(tokens) and rotated not in repr(tokens)


def test_a_token_others_can_read_is_refused(home: Path) -> None:
    home.mkdir(parents=True)
    ensure_token(home)
    os.chmod(token_path(home), 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(home)
    assert Tokens(None, None).access("\0") is None


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"server.host": "0.0.0.0"}, "server.host 0.0.0.0 is not loopback"),
        ({"server.auth": True}, "server.auth = true"),
    ],
)
def test_the_api_refuses_to_start_without_a_token(
    tmp_path: Path, flags: dict[str, object], reason: str
) -> None:
    with make_service(tmp_path / "d", env={}, flags=flags) as service:
        with pytest.raises(ConfigError, match=re.escape(reason)) as info:
            Api(service)
        assert "claudomator token" in info.value.message


# -- every route, a real server --------------------------------------------------------------


@pytest.fixture
def secured(tmp_path: Path, fake_claude: Path) -> Iterator[tuple[LiveServer, str, str]]:
    home = tmp_path / "data"
    home.mkdir()
    full, read_only = ensure_token(home), ensure_token(home, read_only=True)
    with LiveServer(home, flags={"server.auth": True, "claude.binary": str(fake_claude)}) as live:
        yield live, full, read_only


def snapshot(live: LiveServer) -> tuple[Any, ...]:
    reader = Reader(live.config.data_dir.database)
    try:
        tasks = [(t["id"], t["state"]) for t in reader.list_tasks(limit=None)]
        return tasks, len(list(reader.events_after(0, 10**6))), reader.pool_state()
    finally:
        reader.close()


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: ids.get(m[1], "x"), path)


def every_route(live: LiveServer, full: str) -> list[tuple[str, str]]:
    """(method, concrete path) of each HTTP route, with ids of a task that ran."""
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {full}"}) as c:
        task = c.post("/api/tasks", params={"run": "true"}, json=TASK).json()
        deadline = time.monotonic() + 15
        while (got := c.get(f"/api/tasks/{task['id']}").json())["state"] != "COMPLETED":
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
    ids = {"task_id": task["id"], "execution_id": got["executions"][0]["id"]}
    assert live.api is not None
    found = [(m, fill(p, ids)) for m, p in routes(live.api.app) if m != "WEBSOCKET"]
    assert ("POST", f"/api/tasks/{task['id']}/cancel") in found
    assert ("GET", "/metrics") in found and ("GET", "/api/schema/openapi.json") in found
    assert len(found) >= 16
    return found


def code_of(response: httpx.Response) -> str | None:
    """The error code of an answer; None for one to HEAD, which has no body."""
    if response.request.method == "HEAD":
        assert response.content == b""
        return None
    code: str = response.json()["error"]["code"]
    return code


def test_every_route_needs_a_token_and_changes_nothing_without(
    secured: tuple[LiveServer, str, str],
) -> None:
    live, full, read_only = secured
    found = every_route(live, full)
    before = snapshot(live)
    with httpx.Client(base_url=live.url) as anonymous:
        for method, path in found:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": full}):
                response = anonymous.request(method, path, headers=headers, json=TASK)
                if (method, path) in OPEN:
                    assert response.status_code == 200 and response.json() == {"status": "ok"}
                    continue
                assert response.status_code == 401, (method, path, response.text)
                assert code_of(response) in ("unauthorized", None)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert full not in response.text and read_only not in response.text
        assert anonymous.get("/api/no/such/route").status_code == 401  # reveals nothing
    assert snapshot(live) == before


def test_the_docs_page_is_open_and_the_schema_is_not(
    secured: tuple[LiveServer, str, str],
) -> None:
    """The page holds no data and asks for the token itself, as the dashboard does."""
    live, full, _ = secured
    with httpx.Client(base_url=live.url) as anonymous:
        for path in ("/api/schema", "/api/schema/"):
            page = anonymous.get(path)
            assert page.status_code == 200 and 'data-auth="on"' in page.text, path
        assert anonymous.get("/api/schema/openapi.json").status_code == 401
        assert anonymous.get("/api/schema/openapi.yaml").status_code == 401
        auth = {"Authorization": f"Bearer {full}"}
        assert anonymous.get("/api/schema/openapi.json", headers=auth).status_code == 200


def test_a_read_only_token_reads_but_never_acts(secured: tuple[LiveServer, str, str]) -> None:
    live, full, read_only = secured
    found = every_route(live, full)
    before = snapshot(live)
    headers = {"Authorization": f"Bearer {read_only}"}
    with httpx.Client(base_url=live.url, headers=headers) as client:
        for method, path in found:
            response = client.request(method, path, json=TASK)
            if (method, path) == ("GET", "/api/ws"):  # a WebSocket: told to upgrade
                assert response.status_code == 426, response.text
            elif method in ("GET", "HEAD"):
                assert response.status_code in (200, 404), (method, path, response.text)
            elif path == "/api/validate":  # checks a file and records nothing: reading
                assert response.status_code not in (401, 403), (method, path, response.text)
            else:
                assert response.status_code == 403, (method, path, response.text)
                assert response.json()["error"]["code"] == "read_only"
    assert snapshot(live) == before
    with httpx.Client(base_url=live.url, headers={"Authorization": f"bearer {full}"}) as client:
        for method, path in found:
            if method == "POST":
                response = client.request(method, path, json=TASK)
                assert response.status_code not in (401, 403), (method, path)


def test_foreign_host_and_origin_are_refused_everywhere(
    secured: tuple[LiveServer, str, str],
) -> None:
    live, full, _ = secured
    found = every_route(live, full)
    before = snapshot(live)
    auth = {"Authorization": f"Bearer {full}"}
    with httpx.Client(base_url=live.url, headers=auth) as client:
        for method, path in found:
            rebound = client.request(method, path, headers={"Host": "evil.example:8484"}, json=TASK)
            assert rebound.status_code == 400, (method, path)
            assert code_of(rebound) in ("host_not_allowed", None)
            cross = client.request(
                method, path, headers={"Origin": "https://evil.example"}, json=TASK
            )
            assert cross.status_code == 403, (method, path)
            assert code_of(cross) in ("origin_not_allowed", None)
            assert "access-control-allow-origin" not in cross.headers  # no CORS by default
        same = client.get("/api/status", headers={"Origin": live.url})
        assert same.status_code == 200
    assert snapshot(live) == before


def ws_status(url: str, **kwargs: Any) -> int:
    try:
        with connect(url, open_timeout=5, proxy=None, **kwargs) as ws:
            ws.close()
            return 101
    except InvalidStatus as e:
        return e.response.status_code


def test_websocket_token_and_origin(secured: tuple[LiveServer, str, str]) -> None:
    live, full, read_only = secured
    assert ws_status(live.ws_url) == 401
    assert ws_status(live.ws_url + "?token=wrong") == 401
    assert ws_status(live.ws_url + f"?token={full}") == 101
    assert ws_status(live.ws_url + f"?token={read_only}") == 101  # watching is reading
    assert ws_status(live.ws_url, additional_headers={"Authorization": f"Bearer {full}"}) == 101
    assert ws_status(live.ws_url + f"?token={full}", origin=live.url) == 101
    assert ws_status(live.ws_url + f"?token={full}", origin="https://evil.example") == 403
    assert (
        ws_status(live.ws_url + f"?token={full}", additional_headers={"Host": "evil.example"})
        == 400
    )


def test_no_token_in_the_schema(secured: tuple[LiveServer, str, str]) -> None:
    live, full, read_only = secured
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {full}"}) as c:
        text = c.get("/api/schema/openapi.json").text
    assert full not in text and read_only not in text
    assert '"bearer"' in text


def test_cors_only_when_configured(tmp_path: Path) -> None:
    flags = {"server.cors_origins": "https://ui.example"}
    with (
        LiveServer(tmp_path / "d", flags=flags, pool=False) as live,
        httpx.Client(base_url=live.url) as client,
    ):
        preflight = client.options(
            "/api/tasks",
            headers={
                "Origin": "https://ui.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
        allowed = client.get("/api/status", headers={"Origin": "https://ui.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
        other = client.get("/api/status", headers={"Origin": "https://other.example"})
        assert other.status_code == 403


@pytest.mark.parametrize(
    ("env", "attr", "value"),
    [
        ({"CLAUDOMATOR_SERVER_AUTH": "yes"}, "server_auth", True),
        (
            {"CLAUDOMATOR_SERVER_ALLOWED_HOSTS": "box.lan, *.corp"},
            "server_allowed_hosts",
            ("box.lan", "*.corp"),
        ),
        (
            {"CLAUDOMATOR_SERVER_CORS_ORIGINS": "https://UI.example/"},
            "server_cors_origins",
            ("https://ui.example",),
        ),
        ({"CLAUDOMATOR_SERVER_WS_BUFFER": "50"}, "server_ws_buffer", 50),
    ],
)
def test_server_keys(tmp_path: Path, env: dict[str, str], attr: str, value: object) -> None:
    assert getattr(load_config(home=tmp_path, env=env), attr) == value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLAUDOMATOR_SERVER_ALLOWED_HOSTS": "http://x"}, "'http://x' is not a host name"),
        ({"CLAUDOMATOR_SERVER_CORS_ORIGINS": "*"}, "'*' is not an origin"),
        ({"CLAUDOMATOR_SERVER_CORS_ORIGINS": "https://x/app"}, "is not an origin"),
        ({"CLAUDOMATOR_SERVER_WS_BUFFER": "0"}, "server.ws_buffer: '0' must be at least 1"),
    ],
)
def test_server_key_errors(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(home=tmp_path, env=env)
