"""The web page in a real browser: Debian's headless chromium driven by Playwright against a real
`claudomator serve` (auth on, the fake claude) on 127.0.0.1. The page must never log an error."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
from tests.taskfiles import checked_task, scenario, task_yaml
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
    (home / "config.toml").write_text("[server]\nauth = true\n")
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


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh tab that has given the token once; fails the test on any console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.goto(server.url + "/")
    dialog = page.get_by_role("dialog", name="API token")
    expect(dialog).to_be_visible()
    page.get_by_label("Token", exact=True).fill(server.token)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#live")).to_have_text("● live")
    yield page
    context.close()
    assert errors == []


def test_a_dropped_task_appears_and_completes_live(page: Any, server: Server) -> None:
    server.drop("web-hello.yaml", task_yaml("web-hello", "hi", tags=["web"]))
    row = page.locator("#tasks tbody tr", has_text="web-hello")
    expect(row).to_have_attribute("data-state", "COMPLETED")  # no reload: the WebSocket did it
    expect(row.locator(".cost")).not_to_have_text("$0.00")
    expect(row.locator(".source")).to_have_text("web-hello.yaml")
    expect(page.locator("#counts")).to_contain_text("COMPLETED 1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})
    page.screenshot(path=str(ARTIFACTS / "dashboard-narrow.png"), full_page=True)
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
    expect(page.locator("#executions tbody tr[data-execution]")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)

    page.get_by_role("link", name="Cost").click()
    expect(page.locator("#cost-tag svg")).to_be_visible()
    expect(page.locator("#cost-tag")).to_contain_text("web")
    page.screenshot(path=str(ARTIFACTS / "cost.png"), full_page=True)


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
    page.screenshot(path=str(ARTIFACTS / "new-task.png"), full_page=True)
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
    page.screenshot(path=str(ARTIFACTS / "changes.png"), full_page=True)


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
    page.screenshot(path=str(ARTIFACTS / "task-rounds.png"), full_page=True)


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
