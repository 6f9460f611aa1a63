"""The web page in a real browser: Debian's headless chromium driven by Playwright against a real
`claudomator serve` (auth on, the fake claude) on 127.0.0.1. The page must never log an error
(but the failed requests a test provokes). Each state a test reaches is saved as a screenshot
under test-artifacts/ (ignored by git)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from playwright.sync_api import expect, sync_playwright

from claudomator.api import create_app
from claudomator.token import Tokens, ensure_token
from tests.fakes import make_fake_claude
from tests.needs import unavailable
from tests.net import free_port
from tests.services import make_service
from tests.taskfiles import checked_task, scenario, task_data, task_yaml
from tests.test_api_diff import BRANCH, changed_branch, diff_of, end_with_workspace
from tests.test_api_serve import wait_healthy

CHROMIUM = "/usr/bin/chromium"
STATIC = Path(__file__).parent.parent / "claudomator" / "api" / "static"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.timeout(90)
MINUS = "\u2212"  # as the page writes lines removed
# The browser's locale and time zone: en-US writes dates as 12/1/26, which the page must not use.
LOCALE, TIMEZONE = "en-US", "UTC"


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    """A screenshot of the page (all of it, or what the window shows) as test-artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def test_the_page_uses_relative_urls_only() -> None:
    """Served behind a path prefix, an absolute /api/... would miss the prefix."""
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"""["'`(]/(api|ui)\b""", text), path.name
        text = text.replace("http://www.w3.org/2000/svg", "")  # a namespace, not a download
        assert "http://" not in text and "https://" not in text, path.name  # nothing from afar


def test_the_page_is_public_and_the_api_is_not(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token = ensure_token(home)
    with make_service(home, env={}, flags={}) as service:
        app = create_app(service, tokens=Tokens.load(home))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            page = client.get("/")
            assert page.status_code == 200 and 'src="ui/app.js"' in page.text
            assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
            assert client.get("/ui/nope.js").status_code == 404
            for sneaky in ("/ui/../api/status", "/ui/%2e%2e/api/status", "/ui/..%2fapi%2fstatus"):
                answer = client.get(sneaky)
                assert answer.status_code in (401, 404) and "counts" not in answer.text, sneaky
            assert client.get("/api/status").status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            bad = client.post(
                "/api/validate",
                content=b"name: x\nclaude:\n  instructions: hi\n  modle: x\n",
                headers={**auth, "Content-Type": "application/yaml"},
            ).json()
            assert bad["ok"] is False
            assert bad["problems"][0]["text"] == (
                "api:4:3: claude.modle: unknown field; did you mean 'model'?"
            )
            good = client.post(
                "/api/validate",
                content=task_yaml("x", "hi"),
                headers={**auth, "Content-Type": "application/yaml"},
            ).json()
            assert good == {"ok": True, "tasks": 1, "problems": []}
            assert client.get("/api/tasks", headers=auth).json()["items"] == []  # nothing recorded


# -- in the browser ------------------------------------------------------------------------------


class Server:
    def __init__(self, home: Path, url: str, token: str) -> None:
        self.home, self.url, self.token = home, url, token
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})

    def drop(self, name: str, text: str) -> None:
        inbox = self.home / "inbox"
        tmp = inbox / f".{name}.tmp"
        tmp.write_text(text)
        tmp.rename(inbox / name)

    def task(self, task_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get(f"/api/tasks/{task_id}").json()
        return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not (os.path.exists(CHROMIUM) and shutil.which("chromium")):
        unavailable(
            f"the browser tests drive Debian's chromium: no {CHROMIUM} here (apt-get install chromium)"
        )
    base = tmp_path_factory.mktemp("web")
    home = base / "home"
    home.mkdir()
    (home / "inbox").mkdir()
    token = ensure_token(home)
    (home / "config.toml").write_text("[server]\nauth = true\n[budget]\ntags = {webtag = 50.0}\n")
    port = free_port()
    env = {
        **os.environ,
        "CLAUDOMATOR_HOME": str(home),
        "CLAUDOMATOR_SERVER_PORT": str(port),
        "CLAUDOMATOR_CLAUDE_BIN": str(make_fake_claude(base / "bin")),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "claudomator.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        server = Server(home, url, token)
        yield server
        server.http.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Console:
    """What a tab logged as errors, less those a test provokes (`allow`)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


def new_tab(browser: Any, console: Console) -> tuple[Any, Any]:
    """A fresh context and its tab, logging its errors to `console`."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale=LOCALE, timezone_id=TIMEZONE
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.errors.append(f"pageerror: {e}"))
    return context, page


def give_token(page: Any, token: str) -> None:
    dialog = page.get_by_role("dialog", name="API token")
    expect(dialog).to_be_visible()
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_role("button", name="Use token").click()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Any, server: Server, console: Console) -> Iterator[Any]:
    """A fresh tab that has given the token once; fails the test on any console error."""
    context, page = new_tab(browser, console)
    page.goto(server.url + "/")
    give_token(page, server.token)
    expect(page.locator("#live")).to_have_text("● live")
    yield page
    context.close()
    assert console.unexpected() == []


def test_a_dropped_task_appears_and_completes_live(page: Any, server: Server) -> None:
    server.drop("web-hello.yaml", task_yaml("web-hello", "hi", tags=["web"]))
    row = page.locator("#tasks tbody tr", has_text="web-hello")
    expect(row).to_have_attribute("data-state", "COMPLETED")  # no reload: the WebSocket did it
    expect(row.locator(".cost")).not_to_have_text("$0.00")
    expect(row.locator(".source")).to_have_text("web-hello.yaml")
    expect(page.locator("#counts")).to_contain_text("COMPLETED 1")
    shot(page, "dashboard")
    page.set_viewport_size({"width": 390, "height": 800})
    shot(page, "dashboard-narrow")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_label("Tag", exact=True).fill("nope")
    expect(page.locator("#empty")).to_be_visible()
    page.get_by_label("Tag", exact=True).fill("web")
    expect(row).to_be_visible()
    page.get_by_label("State", exact=True).select_option("FAILED")
    expect(page.locator("#empty")).to_be_visible()
    page.get_by_label("State", exact=True).select_option("")
    expect(row).to_be_visible()

    row.get_by_role("link", name="web-hello").click()
    expect(page.get_by_role("heading", name=re.compile("web-hello"))).to_be_visible()
    log = page.locator("#log")
    expect(log.locator(".entry.assistant").first).to_contain_text(
        "I'll look at the project files first."
    )
    expect(log.locator(".entry.tool").first).to_contain_text("ls")
    expect(log.locator(".entry.final")).to_contain_text("Finished (success)")
    # the denied write's answer is one line, and says so in the singular
    expect(log.locator(".entry.result.error summary")).to_have_text("Tool result (error) · 1 line")
    expect(page.locator("#executions tbody tr[data-execution]")).to_have_count(1)
    # dates in ISO order, whatever the browser's locale (en-US would write 12/1/26)
    task = server.task(page.url.split("#/task/", 1)[1])
    created = datetime.fromisoformat(task["created_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    expect(page.locator("#task-fields dt:text-is('Created') + dd")).to_have_text(created)
    expect(page.locator("#executions tbody tr[data-execution] td").nth(7)).to_have_text(
        re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
    )
    shot(page, "task")

    page.get_by_role("link", name="Cost").click()
    expect(page.locator("#cost-tag svg")).to_be_visible()
    expect(page.locator("#cost-tag")).to_contain_text("web")
    shot(page, "cost")


def test_cancel_from_the_page_ends_a_running_task(page: Any, server: Server) -> None:
    body = task_yaml("web-sleepy", scenario("sleep"))
    made = server.http.post(
        "/api/tasks",
        params={"run": "true"},
        content=body,
        headers={"Content-Type": "application/yaml"},
    ).json()
    page.goto(f"{server.url}/#/task/{made['id']}")
    title = page.locator("#task-title")
    expect(title).to_contain_text("RUNNING")
    expect(page.locator("#log .entry.meta").first).to_contain_text("session started")
    page.get_by_role("button", name="Cancel").click()
    expect(title).to_contain_text("CANCELLED")
    # the log followed the execution live: its interrupted ending came after the page opened it
    expect(page.locator("#log .entry.final")).to_contain_text("error_during_execution")
    assert server.task(made["id"])["state"] == "CANCELLED"
    expect(page.get_by_role("button", name="Retry")).to_be_visible()


def test_a_yaml_error_shows_its_line_and_field(page: Any) -> None:
    page.get_by_role("link", name="New task").click()
    editor = page.get_by_label("Task file (YAML), checked as you type")
    expect(page.locator("#problems")).to_contain_text("ok (task)")
    editor.fill('name: "typo"\nclaude:\n  instructions: hi\n  modle: sonnet\n')
    expect(page.locator("#problems li")).to_have_text(
        "api:4:3: claude.modle: unknown field; did you mean 'model'?"
    )
    shot(page, "new-task")
    editor.fill('name: "web-made"\nclaude:\n  instructions: hi\n')
    expect(page.locator("#problems")).to_contain_text("ok (task)")
    page.get_by_role("button", name="Create (held)").click()
    expect(page.locator("#task-title")).to_contain_text("PENDING")
    expect(page.get_by_role("button", name="Run")).to_be_visible()


def test_the_page_works_under_a_path_prefix(page: Any, server: Server) -> None:
    """A reverse proxy serves it at /claudomator/ and strips the prefix: every request the page
    makes must stay under the prefix (Playwright plays the proxy)."""
    asked: list[str] = []

    def proxy(route: Any) -> None:
        asked.append(route.request.url)
        stripped = route.request.url.replace("/claudomator/", "/", 1)
        route.fulfill(response=route.fetch(url=stripped))

    page.route(re.compile(r"^http://127\.0\.0\.1:\d+/"), proxy)
    page.route_web_socket(re.compile(r"/claudomator/api/ws"), lambda ws: None)  # mocked, idle
    page.goto(server.url + "/claudomator/")
    expect(page.locator("#tasks tbody tr", has_text="web-hello")).to_be_visible()
    page.get_by_role("link", name="web-hello").click()
    expect(page.locator("#log .entry.assistant").first).to_be_visible()
    prefix = server.url + "/claudomator/"
    assert asked and all(url.startswith(prefix) for url in asked), asked
    assert any("/claudomator/api/executions/" in url for url in asked)


def test_pause_and_resume_the_pool_from_the_header(page: Any) -> None:
    pool = page.locator("#pool")
    expect(pool).to_contain_text("slots busy")
    page.get_by_role("button", name="Pause").click()
    expect(pool).to_contain_text("paused: paused by hand")
    page.get_by_role("button", name="Resume").click()
    expect(pool).not_to_contain_text("paused")


def test_the_header_shows_the_nodes_and_one_that_was_lost(page: Any, server: Server) -> None:
    from claudomator.store.db import Store
    from claudomator.store.nodes import Nodes

    store = Store(server.home / "claudomator.db")  # another node joins the database, then goes
    try:  # silent: its lease (1 s) runs out and the server marks it lost
        Nodes(store).register(
            "ghost", kind="serve", host="elsewhere", pid=1, process_started=1.0,
            heartbeat_s=0.5, lease_s=1.0, slots=2,
        )  # fmt: skip
        pool = page.locator("#pool")
        expect(pool).to_contain_text("lost: ghost")  # live: the node.lost event
        expect(pool).to_have_class(re.compile("warn"))
        expect(pool).to_have_attribute("title", re.compile(r"ghost \(serve on elsewhere\): lost"))
    finally:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM nodes WHERE id = 'ghost'")
        store.close()


def test_the_changes_of_an_execution_in_a_worktree(
    page: Any, server: Server, tmp_path: Path
) -> None:
    """An execution that ended in a worktree (recorded through the store, as the lifecycle
    records it, with a diff real git wrote): its Changes show the branch, the commits, the
    files with their lines, where the worktree is, and the diff coloured, as text."""
    from claudomator.store.db import Store

    server.http.post("/api/pool/pause", params={"reason": "the test starts it"})
    try:
        made = server.http.post(
            "/api/tasks",
            params={"run": "true"},
            content=task_yaml("web-worktree", "change it"),
            headers={"Content-Type": "application/yaml"},
        ).json()
        executions = server.home / "executions"
        store = Store(server.home / "claudomator.db")
        try:
            done = end_with_workspace(
                store,
                executions,
                lambda eid: changed_branch(tmp_path, diff_of(executions, eid), node="web-node"),
            )
        finally:
            store.close()
    finally:
        server.http.post("/api/pool/resume")
    assert done.task_id == made["id"]
    workspace = server.http.get(f"/api/executions/{done.execution_id}").json()["workspace"]

    page.goto(f"{server.url}/#/task/{made['id']}")
    expect(page.locator("#task-title")).to_contain_text("COMPLETED")
    expect(page.locator("#changes")).to_be_hidden()  # until asked for
    page.get_by_role("button", name="Changes").click()
    changes = page.locator("#changes")
    expect(changes.get_by_role("heading", name="Changes of execution 1")).to_be_visible()
    expect(changes).to_contain_text(BRANCH)
    short = f"{workspace['base'][:8]} → {workspace['head'][:8]} · 2 commits"
    expect(changes.locator(".commits")).to_have_text(short)
    expect(changes).to_contain_text(f"3 files changed, +8 {MINUS}3")
    expect(changes).to_contain_text("on node web-node")
    files = ["README.md", "app.py", "docs/notes.md"]
    expect(changes.locator(".diff-files tbody th button")).to_have_text(files)
    expect(changes.locator(".diff-files .d-add-n")).to_have_text(["+0", "+6", "+2"])
    expect(changes.locator(".diff-files .d-del-n")).to_have_text([f"{MINUS}{n}" for n in (1, 2, 0)])

    added = changes.locator(".d-add", has_text="+def greet(name):")
    expect(added).to_be_visible()
    expect(added).to_have_css("background-color", "rgb(220, 245, 225)")  # green
    removed = changes.locator(".d-del", has_text="-an old line")
    expect(removed).to_have_css("background-color", "rgb(253, 228, 227)")  # red
    expect(changes.locator(".d-hunk").first).to_have_css("background-color", "rgb(219, 233, 248)")
    expect(changes.locator(".d-file").first).to_have_css("font-weight", "700")
    expect(changes.locator(".diff-name")).to_have_text(files)
    # the diff is text, never markup
    expect(changes.locator(".d-add", has_text="<b>not markup</b>")).to_be_visible()
    expect(changes.locator(".diff b")).to_have_count(0)
    shot(page, "changes")


def test_an_executions_round_verify_and_denials(page: Any, server: Server, tmp_path: Path) -> None:
    """A real task (the fake claude under `serve`): its verify fails, claude is resumed and fixes
    it; its write is denied in each round. Each execution says so under its row, as text."""
    work = tmp_path / "work"
    work.mkdir()
    body = checked_task("web-checked", tmp_path / "sessions", claude={"working_dir": str(work)})
    made = server.http.post("/api/tasks", params={"run": "true"}, json=body).json()
    page.goto(f"{server.url}/#/task/{made['id']}")
    expect(page.locator("#task-title")).to_contain_text("COMPLETED")
    first, second = sorted(server.task(made["id"])["executions"], key=lambda ex: ex["id"])
    rows = page.locator("#executions tbody tr[data-execution]")
    expect(rows).to_have_count(2)
    expect(rows.locator("td:first-child")).to_have_text(["1", "1 · round 1"])
    one, two = (page.locator(f'#executions tr[data-notes="{ex["id"]}"]') for ex in (first, second))
    expect(one.locator("dt")).to_have_text(["Verify", "Permission denied"])  # no resume: fresh
    expect(one.locator(".checks li")).to_have_text(
        [re.compile(r"^true exit 0 · \d+ms$"), re.compile(r"^test -f FIXED exit 1 · \d+ms$")]
    )
    expect(one.locator(".checks li.bad")).to_have_count(1)
    expect(one.locator("dd .bad").first).to_have_text("✖ failed")
    expect(one).to_contain_text(f"log: {first['verify']['log_path']}")
    expect(two.locator("dt")).to_have_text(["Resumed from", "Verify", "Permission denied"])
    expect(two.locator("dd").first).to_have_text(f"execution 1 {first['id']}")
    expect(two.locator("dd .ok")).to_have_text("✔ passed")
    expect(two.locator(".checks li.bad")).to_have_count(0)
    for notes in (one, two):  # the command claude asked for
        expect(notes.locator(".denials li")).to_have_text(
            "Bash(printf '# Notes\\n' > NOTES.md && cat NOTES.md)"
        )
    rows.nth(1).get_by_role("button", name="Show log").click()
    expect(page.locator("#log-title")).to_have_text("Log of execution 1 · round 1")
    shot(page, "task-rounds")


def test_the_header_and_a_batch_task_show_their_budgets(page: Any, server: Server) -> None:
    expect(page.locator("#spend")).to_contain_text(re.compile(r"tag webtag \$[\d.]+ of \$50\.00"))
    body = {"budget_usd": 3.0, "tasks": [{"name": "in-batch", "tags": ["webtag"],
                                          "claude": {"instructions": "do it"}}]}  # fmt: skip
    made = server.http.post("/api/tasks", params={"run": "true"}, json=body).json()
    task_id = made["tasks"][0]["id"]
    page.goto(f"{server.url}/#/task/{task_id}")
    expect(page.locator("#task-fields")).to_contain_text(
        re.compile(r"Batch budget\s*\$[\d.]+ of \$3\.00 spent by the batch")
    )
    shot(page, "task-batch-budget")


def test_the_docs_page_works_offline(browser: Any, server: Server, console: Console) -> None:
    """/api/schema with no network but this server's: every request that leaves 127.0.0.1 is
    aborted, and the page still shows every operation and schema (nothing comes from a CDN)."""
    context, page = new_tab(browser, console)
    away: list[str] = []

    def offline(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            away.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    try:
        page.goto(server.url + "/api/schema")
        give_token(page, server.token)  # it reads openapi.json with the token, as the page does
        expect(page.locator("#api-title")).to_have_text("claudomator API")
        create = page.locator("#op-post--api-tasks")
        expect(create.locator("h3")).to_have_text(re.compile(r"^POST /api/tasks "))
        expect(create.locator("tr[data-status='201']")).to_be_visible()
        expect(create.locator(".api-content").first).to_contain_text("application/yaml: TaskFile")
        health = page.locator("#op-get--api-health")
        expect(health).to_contain_text("Needs no token.")
        expect(page.locator("#op-head--metrics")).to_be_visible()
        tasks = page.locator("#op-get--api-tasks")
        expect(tasks.locator("tbody tr", has_text="limit")).to_contain_text("≥ 1, ≤ 500")
        execution = page.locator("#schema-Execution")
        expect(execution.locator("tr", has_text="workspace")).to_contain_text("Workspace | null")
        execution.get_by_role("link", name="Workspace").first.click()
        assert page.url.endswith("#schema-Workspace")
        expect(page.locator("#schema-Workspace")).to_contain_text("files_changed")
        ops = page.locator("#operations .op")
        assert ops.count() >= 17
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "api-schema", full_page=False)  # the whole of it is some 15,000 pixels high
        assert away == []  # and so it asked for nothing from elsewhere
    finally:
        context.close()
    assert console.unexpected() == []


def test_an_unknown_task_shows_only_the_error(page: Any, server: Server, console: Console) -> None:
    console.allow(r"status of 404")  # the browser logs the answer the page is asked to show
    made = server.http.post(
        "/api/tasks",
        content=task_yaml("web-known", "hi"),
        headers={"Content-Type": "application/yaml"},
    ).json()
    page.goto(f"{server.url}/#/task/{made['id']}")
    expect(page.locator("#task-title")).to_contain_text("web-known")
    expect(page.locator("#task-fields")).to_contain_text(made["id"])
    page.goto(f"{server.url}/#/task/01NOSUCHTASK")
    expect(page.locator("#notice")).to_have_text("no task with id '01NOSUCHTASK'")
    expect(page.locator("#task-title")).to_have_text("No task 01NOSUCHTASK")
    expect(page.locator("#task-body")).to_be_hidden()
    expect(page.locator("#task-fields")).to_be_empty()
    expect(page.locator("#executions tbody tr")).to_have_count(0)
    shot(page, "task-not-found")
    page.goto(f"{server.url}/#/task/{made['id']}")  # and back: all of it again
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator("#task-body")).to_be_visible()
    expect(page.locator("#task-fields")).to_contain_text(made["id"])


def test_waiting_on_a_dependency_only_while_pending(page: Any, server: Server) -> None:
    """A task cancelled because its dependency failed waits on nothing; a held task whose
    dependency has not run waits on it."""
    failing = task_data("web-breaks", scenario("error_during_execution"))
    after = task_data("web-after-break", "hi", depends_on=["web-breaks"])
    made = server.http.post(
        "/api/tasks", params={"run": "true"}, json={"tasks": [failing, after]}
    ).json()["tasks"]
    first = task_data("web-first", "hi")
    second = task_data("web-second", "hi", depends_on=["web-first"])
    held = server.http.post("/api/tasks", json={"tasks": [first, second]}).json()["tasks"]

    page.goto(f"{server.url}/#/task/{made[1]['id']}")
    title = page.locator("#task-title")
    expect(title).to_contain_text("CANCELLED")
    deps = page.locator("#task-fields .deps li")
    expect(deps).to_have_text(re.compile(r"^web-breaks ✖ FAILED\s*$"))
    expect(deps.locator("em")).to_have_count(0)
    shot(page, "task-cancelled-dependency")

    page.goto(f"{server.url}/#/task/{held[1]['id']}")
    expect(title).to_contain_text("PENDING")
    expect(deps).to_have_text("web-first ◌ PENDING (waiting on it)")


def test_a_wrong_token_is_refused_and_said(browser: Any, server: Server, console: Console) -> None:
    console.allow(r"status of 401")  # the refused token's answer
    context, page = new_tab(browser, console)
    try:
        page.goto(server.url + "/")
        give_token(page, "cmt_not-the-token")
        dialog = page.get_by_role("dialog", name="API token")
        expect(dialog).to_be_visible()  # asked again, and told why
        expect(dialog.get_by_role("alert")).to_have_text(
            "The server refused that token (401). Check it with `claudomator token`, "
            "and paste it again."
        )
        expect(page.get_by_label("Token", exact=True)).to_have_attribute("aria-invalid", "true")
        shot(page, "token-refused")
        give_token(page, server.token)
        expect(page.locator("#live")).to_have_text("● live")
        expect(dialog).to_be_hidden()
    finally:
        context.close()
    assert console.unexpected() == []


def test_a_running_task_shows_its_estimated_cost(page: Any, server: Server) -> None:
    """claude's cost comes with its result; until then the page shows the estimate the stream
    carries (the events' estimated_cost_usd), marked as one, and no token counts yet."""
    body = task_yaml("web-estimate", scenario("sleep", sleep_s=30))
    made = server.http.post(
        "/api/tasks",
        params={"run": "true"},
        content=body,
        headers={"Content-Type": "application/yaml"},
    ).json()
    try:
        page.goto(f"{server.url}/#/task/{made['id']}")
        expect(page.locator("#task-title")).to_contain_text("RUNNING")
        estimate = re.compile(r"^≈ \$0\.\d{4}$")
        row = page.locator("#executions tbody tr[data-execution]")
        expect(row.locator("td.num")).to_have_text(estimate)
        expect(row.locator("td").nth(4)).to_have_text("…")  # tokens: counted at the end
        expect(page.locator("#task-fields dt:text-is('Cost') + dd")).to_have_text(estimate)
        shot(page, "task-running")
        page.get_by_role("link", name="All tasks").click()
        listed = page.locator("#tasks tbody tr", has_text="web-estimate")
        expect(listed.locator(".cost")).to_have_text(estimate)
    finally:
        server.http.post(f"/api/tasks/{made['id']}/cancel")
    expect(page.locator("#tasks tbody tr", has_text="web-estimate")).to_have_attribute(
        "data-state", "CANCELLED"
    )


LINES = [
    ({"type": "user", "message": {"content": [{"type": "tool_result", "content": "one"}]}},
     "Tool result · 1 line"),
    ({"type": "user", "message": {"content": [{"type": "tool_result", "content": "a\nb"}]}},
     "Tool result · 2 lines"),
    ({"type": "result", "subtype": "success", "num_turns": 1, "result": "ok"},
     "Finished (success) · 1 turn"),
    ({"type": "result", "subtype": "success", "num_turns": 3, "result": "ok"},
     "Finished (success) · 3 turns"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "said"), LINES)
def test_the_log_counts_in_the_singular_and_plural(page: Any, line: Any, said: str) -> None:
    got = page.evaluate(
        """async (line) => (await import("./ui/log.js")).renderLine(line)
          .map((n) => (n.querySelector("summary, .who") || n).textContent)""",
        json.dumps(line),
    )
    assert got == [said]


DIFFS: list[tuple[str, list[dict[str, Any]]]] = [
    ("", []),
    (
        "diff --git a/a.txt b/a.txt\nindex 1..2 100644\n--- a/a.txt\n+++ b/a.txt\n"
        "@@ -1,3 +1,3 @@\n keep\n--- a rule\n+++ a new rule\n\\ No newline at end of file\n",
        [{"path": "a.txt", "status": "modified", "added": 1, "removed": 1,
          "kinds": ["hunk", "context", "del", "add", "note"]}],
    ),
    (
        "diff --git a/new.md b/new.md\nnew file mode 100644\nindex 0..1\n--- /dev/null\n"
        "+++ b/new.md\n@@ -0,0 +1 @@\n+hi\n"
        "diff --git a/old.md b/old.md\ndeleted file mode 100644\nindex 1..0\n--- a/old.md\n"
        "+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n",
        [{"path": "new.md", "status": "added", "added": 1, "removed": 0, "kinds": ["hunk", "add"]},
         {"path": "old.md", "status": "deleted", "added": 0, "removed": 1, "kinds": ["hunk", "del"]}],
    ),
    (
        "diff --git a/x.sh b/x.sh\nold mode 100644\nnew mode 100755\n"
        "diff --git a/from.txt b/to.txt\nsimilarity index 100%\nrename from from.txt\n"
        "rename to to.txt\n"
        "diff --git a/logo.png b/logo.png\nindex 1..2 100644\n"
        "Binary files a/logo.png and b/logo.png differ\n",
        [{"path": "x.sh", "status": "modified", "added": 0, "removed": 0, "kinds": []},
         {"path": "to.txt", "status": "renamed", "added": 0, "removed": 0, "kinds": []},
         {"path": "logo.png", "status": "modified", "added": 0, "removed": 0, "kinds": []}],
    ),
    (
        'diff --git "a/t\\303\\251 st.txt" "b/t\\303\\251 st.txt"\nindex 1..2 100644\n'
        '--- "a/t\\303\\251 st.txt"\n+++ "b/t\\303\\251 st.txt"\n@@ -1 +1 @@\n-a\n+b\n',
        [{"path": "t\u00e9 st.txt", "status": "modified", "added": 1, "removed": 1,
          "kinds": ["hunk", "del", "add"]}],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "files"), DIFFS)
def test_the_page_reads_a_diff(page: Any, text: str, files: list[dict[str, Any]]) -> None:
    """changes.js's parser, in the browser, over what git writes."""
    got = page.evaluate(
        """async (text) => (await import("./ui/changes.js")).parseDiff(text).map((f) => ({
          path: f.path, status: f.status, added: f.added, removed: f.removed,
          kinds: f.lines.map((l) => l.kind) }))""",
        text,
    )
    assert got == files
