"""The REST API against a real server on 127.0.0.1 (uvicorn on a free port, the pool running the
fake claude)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from click.testing import CliRunner

from claudomator.api.shapes import PermissionDenial, Verify, VerifyCommand
from claudomator.cli import cli
from claudomator.state import State
from claudomator.store.db import Store
from claudomator.verification import Check, Verification
from tests.apiserver import LiveServer
from tests.taskfiles import CHECKED, batch_yaml, checked_task, task_data

pytestmark = pytest.mark.timeout(30)

TASK = {"name": "hello", "claude": {"instructions": "say hello"}}
ERROR_KEYS = {"code", "message", "details"}


@pytest.fixture
def server(tmp_path: Path, fake_claude: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path / "data", flags={"claude.binary": str(fake_claude)}) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def wait_state(client: httpx.Client, task_id: str, states: set[str], timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task = client.get(f"/api/tasks/{task_id}").json()
        if task["state"] in states:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {states}: {task['state']}")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def test_create_held_then_run_then_completed(client: httpx.Client) -> None:
    created = client.post("/api/tasks", json=TASK)
    assert created.status_code == 201
    task = created.json()
    assert (task["name"], task["state"], task["held"]) == ("hello", "PENDING", True)
    assert task["executions"] == []
    ran = client.post(f"/api/tasks/{task['id']}/run")
    assert ran.status_code == 200 and ran.json()["state"] in ("QUEUED", "RUNNING", "COMPLETED")
    done = wait_state(client, task["id"], {"COMPLETED"})
    assert len(done["executions"]) == 1 and done["executions"][0]["state"] == "COMPLETED"
    again = client.post(f"/api/tasks/{task['id']}/run")
    assert "only a task waiting for run" in assert_error(again, 409, "conflict")["message"]


def test_create_with_run_queues_at_once(client: httpx.Client) -> None:
    task = client.post("/api/tasks", params={"run": "true"}, json=TASK).json()
    assert task["state"] in ("QUEUED", "RUNNING", "COMPLETED")
    assert wait_state(client, task["id"], {"COMPLETED"})["cost_usd"] > 0


def test_yaml_body_and_batch(client: httpx.Client) -> None:
    yaml_body = batch_yaml(
        task_data("build", "make it build"),
        task_data("test", "make it pass", depends_on=["build"]),
        defaults={"tags": ["nightly"]},
    )
    response = client.post(
        "/api/tasks", content=yaml_body, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    tasks = response.json()["tasks"]
    assert [t["name"] for t in tasks] == ["build", "test"]
    assert all(t["tags"] == ["nightly"] and t["state"] == "PENDING" for t in tasks)
    assert tasks[1]["depends_on_ids"] == [tasks[0]["id"]]


BAD_FILE = b"""name: broken
claude:
  instructions: "x"
  modle: sonnet
  permission_mode: bogus
priority: urgent
"""


def test_invalid_yaml_gives_the_fields_and_messages_of_validate(
    client: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(BAD_FILE)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    expected = []
    for line in result.stderr.strip().splitlines():  # path:line:col: field: message
        match = re.fullmatch(r".*:(\d+):(\d+): ([^:]+): (.*)", line)
        assert match, line
        expected.append((int(match[1]), int(match[2]), match[3], match[4]))
    response = client.post(
        "/api/tasks", content=BAD_FILE, headers={"Content-Type": "application/x-yaml"}
    )
    details = assert_error(response, 422, "invalid_task")["details"]
    got = [(d["line"], d["column"], d["field"], d["message"]) for d in details]
    assert got == expected and len(got) == 3
    assert client.get("/api/tasks").json()["items"] == []  # nothing recorded


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"claude": {"instructions": "x"}}, "name", "missing required field"),
        ({"name": "a", "claude": {}}, "claude.instructions", "missing required field"),
        ({"name": "a", "claude": {"instructions": "x", "max_turns": 0}}, "claude.max_turns", ""),
        (
            {"name": "a", "claude": {"instructions": "x"}, "depends_on": ["nowhere"]},
            "depends_on[0]",
            "",
        ),
        ([1, 2], "", ""),
    ],
)
def test_invalid_json_is_422_with_field_paths(
    client: httpx.Client, body: object, field: str, message: str
) -> None:
    details = assert_error(client.post("/api/tasks", json=body), 422, "invalid_task")["details"]
    assert field in [d["field"] for d in details], details
    assert any(message in d["message"] for d in details)
    assert all(d["line"] is None for d in details)  # JSON has no positions


def test_bad_bodies(client: httpx.Client) -> None:
    assert_error(
        client.post(
            "/api/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        400,
        "bad_request",
    )
    assert_error(
        client.post("/api/tasks", content=b"name: x", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    huge = json.dumps({**TASK, "claude": {"instructions": "x" * 1_100_000}})
    error = assert_error(
        client.post("/api/tasks", content=huge, headers={"Content-Type": "application/json"}),
        413,
        "too_large",
    )
    assert error["message"] == (
        "the body is larger than the limit of 1048576 bytes (intake.max_file_bytes)"
    )


def test_list_filters_and_pages_newest_first(client: httpx.Client) -> None:
    ids = []
    for i in range(7):
        body = {
            **TASK,
            "name": f"task {i}",
            "priority": "high" if i % 2 else "low",
            "tags": [f"t{i % 3}"],
        }
        ids.append(client.post("/api/tasks", json=body).json()["id"])
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/tasks", params=params).json()
        assert set(page) == {"items", "next_cursor"}
        seen += [t["id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 5
    assert seen == ids[::-1] and pages == 3
    high = client.get("/api/tasks", params={"priority": "high"}).json()["items"]
    assert [t["name"] for t in high] == ["task 5", "task 3", "task 1"]
    tagged = client.get("/api/tasks", params={"tag": "t0"}).json()["items"]
    assert [t["name"] for t in tagged] == ["task 6", "task 3", "task 0"]
    found = client.get("/api/tasks", params={"search": "TASK 4"}).json()["items"]
    assert [t["name"] for t in found] == ["task 4"]
    pending = client.get("/api/tasks", params={"state": "PENDING", "limit": 500}).json()
    assert len(pending["items"]) == 7 and pending["next_cursor"] is None
    assert client.get("/api/tasks", params={"state": "QUEUED"}).json()["items"] == []
    for bad in ({"state": "DONE"}, {"limit": 0}, {"limit": 501}, {"priority": "urgent"}):
        error = assert_error(client.get("/api/tasks", params=bad), 400, "bad_request")
        assert error["details"] and error["details"][0]["field"] == next(iter(bad))


def test_state_filters_take_any_case_as_the_cli_does(client: httpx.Client) -> None:
    client.post("/api/tasks", json=TASK)
    for state in ("PENDING", "pending", "Pending"):
        assert len(client.get("/api/tasks", params={"state": state}).json()["items"]) == 1
    assert client.get("/api/tasks", params={"state": "failed"}).json()["items"] == []
    error = assert_error(client.get("/api/tasks", params={"state": "done"}), 400, "bad_request")
    assert error["details"] == [{"field": "state", "message": "not a state: 'done'"}]


def test_a_relative_working_dir_is_recorded_against_claude_working_dir(
    server: LiveServer, client: httpx.Client
) -> None:
    body = {**TASK, "claude": {"instructions": "x", "working_dir": "proj/../app"}}
    task = client.post("/api/tasks", json=body).json()
    default = Path(server.config.default_working_dir())
    assert task["spec"]["claude"]["working_dir"] == str(default / "app")


def test_an_unknown_dependency_is_a_warning_to_validate_and_an_error_to_submit(
    client: httpx.Client, tmp_path: Path
) -> None:
    body = b"name: b\ndepends_on: [nothing]\nclaude:\n  instructions: x\n"
    yaml = {"Content-Type": "application/yaml"}
    checked = client.post("/api/validate", content=body, headers=yaml).json()
    assert checked["ok"] is True and checked["tasks"] == 1
    (problem,) = checked["problems"]
    assert problem["warning"] is True and problem["field"] == "depends_on[0]"
    path = tmp_path / "b.yaml"
    path.write_bytes(body)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0 and problem["message"] in result.stderr  # one rule, one message
    details = assert_error(
        client.post("/api/tasks", content=body, headers=yaml), 422, "invalid_task"
    )
    assert details["details"][0]["field"] == "depends_on[0]"


def test_cancel_retry_and_transitions(client: httpx.Client) -> None:
    task = client.post("/api/tasks", json=TASK).json()
    cancelled = client.post(f"/api/tasks/{task['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"
    assert_error(client.post(f"/api/tasks/{task['id']}/cancel"), 409, "conflict")
    retried = client.post(f"/api/tasks/{task['id']}/retry")
    assert retried.status_code == 200 and retried.json()["state"] in (
        "QUEUED",
        "RUNNING",
        "COMPLETED",
    )
    wait_state(client, task["id"], {"COMPLETED"})
    error = assert_error(client.post(f"/api/tasks/{task['id']}/retry"), 409, "conflict")
    assert "COMPLETED" in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tasks/01NOPE"),
        ("POST", "/api/tasks/01NOPE/run"),
        ("POST", "/api/tasks/01NOPE/cancel"),
        ("POST", "/api/tasks/01NOPE/retry"),
        ("GET", "/api/executions/01NOPE"),
        ("GET", "/api/executions/01NOPE/log"),
        ("GET", "/api/no/such/route"),
    ],
)
def test_unknown_ids_are_404_in_the_one_shape(client: httpx.Client, method: str, path: str) -> None:
    assert_error(client.request(method, path), 404, "not_found")


def test_wrong_method_is_405_in_the_one_shape(client: httpx.Client) -> None:
    assert_error(client.delete("/api/tasks"), 405, "method_not_allowed")


def test_execution_and_its_log(client: httpx.Client) -> None:
    task = client.post("/api/tasks", params={"run": "true"}, json=TASK).json()
    done = wait_state(client, task["id"], {"COMPLETED"})
    execution_id = done["executions"][0]["id"]
    execution = client.get(f"/api/executions/{execution_id}").json()
    assert execution["task_id"] == task["id"] and execution["state"] == "COMPLETED"
    raw = client.get(f"/api/executions/{execution_id}/log", params={"format": "raw"}).json()
    assert raw["eof"] and not raw["running"] and raw["next_offset"] == raw["size"] > 0
    assert all(json.loads(line)["type"] for line in raw["lines"])
    assert json.loads(raw["lines"][-1])["type"] == "result"
    readable = client.get(f"/api/executions/{execution_id}/log").json()
    assert readable["format"] == "readable" and readable["lines"]
    assert not any(line.startswith("{") for line in readable["lines"])
    # paging: two lines at a time, offsets chain, the whole log comes back once
    lines, offset = [], 0
    for _ in range(100):
        page = client.get(
            f"/api/executions/{execution_id}/log",
            params={"format": "raw", "offset": offset, "limit": 2},
        ).json()
        assert page["offset"] == offset and len(page["lines"]) <= 2
        lines += page["lines"]
        offset = page["next_offset"]
        if page["eof"]:
            break
    assert lines == raw["lines"]
    stderr = client.get(f"/api/executions/{execution_id}/log", params={"stream": "stderr"}).json()
    assert stderr["stream"] == "stderr"
    beyond = client.get(f"/api/executions/{execution_id}/log", params={"offset": 10**9}).json()
    assert beyond["lines"] == [] and beyond["eof"]


def test_an_execution_says_its_round_verify_and_denials(
    client: httpx.Client, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    body = checked_task("checked", tmp_path / "sessions", claude={"working_dir": str(work)})
    task = client.post("/api/tasks", params={"run": "true"}, json=body).json()
    done = wait_state(client, task["id"], {"COMPLETED", "FAILED"})
    assert done["state"] == "COMPLETED", done["reason"]
    first, second = (
        client.get(f"/api/executions/{ex['id']}").json()
        for ex in sorted(done["executions"], key=lambda ex: ex["id"])
    )
    assert sorted(done["executions"], key=lambda ex: ex["id"]) == [first, second]
    assert (first["round"], first["resumed_from"]) == (0, None)
    assert (second["round"], second["resumed_from"]) == (1, first["id"])
    assert first["reason"].startswith("verify failed: test -f FIXED exited 1; permission denied: ")
    for ex, codes in ((first, [0, 1]), (second, [0, 0])):
        verify = ex["verify"]
        assert set(verify) == set(Verify.__annotations__)
        assert verify["passed"] is (codes == [0, 0])
        assert [(c["command"], c["exit_code"]) for c in verify["commands"]] == list(
            zip(CHECKED, codes, strict=True)
        )
        assert all(set(c) == set(VerifyCommand.__annotations__) for c in verify["commands"])
        (denial,) = ex["permission_denials"]
        assert set(denial) == set(PermissionDenial.__annotations__)
        assert denial["tool_name"] == "Bash"


def test_the_shapes_of_verify_are_what_verification_records() -> None:
    check = Check("pytest -q", 1, 10)
    recorded = Verification((check,), "/x/verify.log").to_json()
    assert set(recorded) == set(Verify.__annotations__)
    assert set(recorded["commands"][0]) == set(VerifyCommand.__annotations__)


def test_no_secret_in_responses_or_logs(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_API_KEY", "sk-process-secret-1234")
    body = {
        "name": "leaky",
        "claude": {
            "instructions": "fake-scenario: echo_env\nfake-vars: SERVICE_API_KEY,GITHUB_TOKEN,PLAIN",
            "env": {"GITHUB_TOKEN": "ghp_task_secret_5678", "PLAIN": "visible-value"},
        },
    }
    task = client.post("/api/tasks", params={"run": "true"}, json=body).json()
    done = wait_state(client, task["id"], {"COMPLETED"})
    execution_id = done["executions"][0]["id"]
    log_path = Path(done["executions"][0]["stdout_path"])
    assert b"ghp_task_secret_5678" in log_path.read_bytes()  # claude did print them
    texts = [
        client.get(f"/api/tasks/{task['id']}").text,
        client.get("/api/tasks").text,
        client.get(f"/api/executions/{execution_id}").text,
        client.get(f"/api/executions/{execution_id}/log", params={"format": "raw"}).text,
        client.get(f"/api/executions/{execution_id}/log").text,
    ]
    for text in texts:
        assert "ghp_task_secret_5678" not in text and "sk-process-secret-1234" not in text
    assert "visible-value" in texts[3]  # only secret-looking names are masked
    assert "***" in texts[3]


def test_status_and_pool_actions(client: httpx.Client) -> None:
    status = client.get("/api/status").json()
    assert set(status) == {
        "counts", "running", "cost_today_usd", "daily_budget_usd", "pool", "nodes", "tag_budgets",
    }  # fmt: skip
    assert status["pool"]["paused"] is False and status["pool"]["slots"] == 4
    [node] = status["nodes"]
    assert (node["kind"], node["state"], node["slots"], node["expired"]) == (
        "serve",
        "up",
        4,
        False,
    )
    assert client.get("/api/nodes").json() == [
        {**node, "heartbeat_at": ANY, "heartbeat_age_s": ANY}
    ]
    paused = client.post("/api/pool/pause", params={"reason": "lunch"}).json()["pool"]
    assert paused["paused"] and paused["reason"] == "lunch"
    task = client.post("/api/tasks", params={"run": "true"}, json=TASK).json()
    time.sleep(0.3)
    assert client.get(f"/api/tasks/{task['id']}").json()["state"] == "QUEUED"  # held back
    drained = client.post("/api/pool/drain").json()["pool"]
    assert drained["draining"]
    resumed = client.post("/api/pool/resume").json()["pool"]
    assert not resumed["paused"] and not resumed["draining"]
    wait_state(client, task["id"], {"COMPLETED"})


def test_health_reveals_nothing(client: httpx.Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_metrics(client: httpx.Client) -> None:
    task = client.post("/api/tasks", params={"run": "true"}, json=TASK).json()
    wait_state(client, task["id"], {"COMPLETED"})
    client.post("/api/tasks", json=TASK)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['claudomator_tasks{state="COMPLETED"}'] == 1
    assert samples['claudomator_tasks{state="PENDING"}'] == 1
    assert samples['claudomator_executions_total{state="COMPLETED"}'] == 1
    assert samples["claudomator_cost_usd_total"] > 0
    assert samples['claudomator_tokens_total{kind="output"}'] > 0
    assert samples["claudomator_execution_duration_seconds_count"] == 1
    assert samples['claudomator_execution_duration_seconds_bucket{le="+Inf"}'] == 1
    assert samples["claudomator_pool_slots"] == 4
    assert samples["claudomator_pool_paused"] == 0
    assert samples["claudomator_queue_depth"] == 0
    assert samples["claudomator_websocket_clients"] == 0
    assert "process_resident_memory_bytes" in samples


README = Path(__file__).parent.parent / "README.md"


def documented_series() -> list[tuple[str, str | None]]:
    """(name, label or None) of each series the README's Metrics section lists."""
    text = README.read_text().split("### Metrics", 1)[1].split("\n### ", 1)[0]
    return [(m[1], m[2]) for m in re.finditer(r"`(claudomator_\w+)(?:\{(\w+)\})?`", text)]


def scrape(client: httpx.Client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_every_documented_series_is_there_from_the_start(client: httpx.Client) -> None:
    """A fresh server, nothing run, no [[notify]]: every series, at 0."""
    documented = documented_series()
    assert len(documented) >= 16 and ("claudomator_notifications_total", "result") in documented
    samples = scrape(client)
    for name, label in documented:
        found = [
            s for s in samples
            if s.split("{")[0] in (name, f"{name}_count", f"{name}_bucket", f"{name}_sum")
        ]  # fmt: skip
        assert found, name
        if label is not None:
            assert all(f'{label}="' in s for s in found), (name, found)
    for result in ("sent", "failed", "dropped"):
        assert samples[f'claudomator_notifications_total{{result="{result}"}}'] == 0
    for state in ("RUNNING", "COMPLETED", "FAILED", "CANCELLED"):
        assert samples[f'claudomator_executions_total{{state="{state}"}}'] == 0


def test_head_of_the_metrics(client: httpx.Client) -> None:
    """A probe (a load balancer's, `curl -I`): what a GET would answer, without the body."""
    response = client.head("/metrics")
    assert response.status_code == 200, response.text
    assert response.content == b""
    got = client.get("/metrics")
    assert response.headers["content-type"] == got.headers["content-type"]
    assert got.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_openapi_and_docs_page(client: httpx.Client) -> None:
    schema = client.get("/api/schema/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/tasks", "/api/tasks/{task_id}", "/api/executions/{execution_id}/log"):
        assert path in paths
    body = paths["/api/tasks"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/yaml"}
    task_file = schema["components"]["schemas"]["TaskFile"]
    assert len(task_file["oneOf"]) == 2
    assert "TaskFileClaudeSpec" in schema["components"]["schemas"]
    assert "#/$defs/" not in json.dumps(schema)
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    components = schema["components"]["schemas"]
    execution = components["Execution"]["properties"]
    assert execution["verify"]["oneOf"][0] == {"$ref": "#/components/schemas/Verify"}
    assert execution["permission_denials"]["items"] == {
        "$ref": "#/components/schemas/PermissionDenial"
    }
    assert execution["round"]["type"] == "integer" and "description" in execution["resumed_from"]
    verify = components["Verify"]["properties"]
    assert verify["commands"]["items"] == {"$ref": "#/components/schemas/VerifyCommand"}
    assert set(components["VerifyCommand"]["required"]) == set(VerifyCommand.__annotations__)
    assert set(components["PermissionDenial"]["properties"]) == {
        "tool_name", "tool_use_id", "tool_input"
    }  # fmt: skip
    assert paths["/api/health"]["get"]["security"] == []
    docs = client.get("/api/schema")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    # a page of ours, from the package: nothing from a CDN (test_web reads it offline)
    assert 'src="../ui/schema.js"' in docs.text and "://" not in docs.text
    assert docs.headers["content-security-policy"].startswith("default-src 'self'")


def test_list_pages_are_fresh_after_changes_here_and_elsewhere(
    server: LiveServer, client: httpx.Client
) -> None:
    """Pages are served again until the next event: one here at once, one of another process
    (`claudomator cancel` in a terminal) within the feed's poll."""
    first = client.post("/api/tasks", json=TASK).json()
    assert [t["id"] for t in client.get("/api/tasks").json()["items"]] == [first["id"]]
    second = client.post("/api/tasks", json=TASK).json()
    ids = [t["id"] for t in client.get("/api/tasks").json()["items"]]
    assert ids == [second["id"], first["id"]]
    other = Store(server.config.data_dir.database)
    try:
        assert other.transition(first["id"], State.CANCELLED, expect=[State.PENDING]) is not None
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while client.get("/api/tasks").json()["items"][1]["state"] != "CANCELLED":
        assert time.monotonic() < deadline, "the page stayed stale"
        time.sleep(0.1)


def test_costs_per_day_and_tag(client: httpx.Client) -> None:
    assert client.get("/api/costs").json() == {"days": [], "tags": []}
    tagged = {**TASK, "name": "tagged", "tags": ["nightly", "ci"]}
    for body in (tagged, {**TASK, "name": "plain", "tags": []}):
        task = client.post("/api/tasks", params={"run": "true"}, json=body).json()
        wait_state(client, task["id"], {"COMPLETED"})
    spent = client.get("/api/status").json()["cost_today_usd"]
    costs = client.get("/api/costs", params={"days": 7}).json()
    (today,) = costs["days"]
    assert today["day"] == time.strftime("%Y-%m-%d") and today["cost_usd"] == pytest.approx(spent)
    by_tag = {t["tag"]: t["cost_usd"] for t in costs["tags"]}
    assert set(by_tag) == {"nightly", "ci", "(no tag)"}
    assert by_tag["nightly"] == by_tag["ci"] == pytest.approx(spent - by_tag["(no tag)"])
    assert client.get("/api/costs", params={"days": 0}).status_code == 400
