// The dashboard: a hash router over four views (tasks, one task, new task, cost), kept live by
// the WebSocket: an event refreshes what it touches; nothing polls. A task's view shows each
// execution's round, the session it resumed, its verify commands and the permissions claude was
// denied, its log and, when it ran in a worktree, its changes (changes.js). While an execution
// runs, its cost is claude's estimate as it streams (the events' estimated_cost_usd), marked ≈.

import { api, events } from "./api.js";
import { forgetChanges, hasWorktree, showChanges } from "./changes.js";
import { barChart } from "./chart.js";
import { $, clock, duration, h, money, STATES, stateBadge, when } from "./dom.js";
import { renderLine } from "./log.js";

const PAGE_SIZE = 50;
const RETRYABLE = ["FAILED", "TIMED_OUT", "CANCELLED", "BUDGET_EXCEEDED"];
const FINAL = ["COMPLETED", ...RETRYABLE];

const list = { cursors: [null], page: 0, items: [] };
let status = null;
let current = null; // the task shown: { id, detail, execution, offset, loading, changes }
let refreshTimer = null;
const estimates = new Map(); // task id → { execution, usd }: its running execution's cost so far

function notice(message) {
  const el = $("#notice");
  el.textContent = message || "";
  el.hidden = !message;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function guard(fn) {
  return (...args) =>
    Promise.resolve(fn(...args)).catch((error) => notice(error.message || String(error)));
}

// -- header --------------------------------------------------------------------------------

async function loadStatus() {
  status = await api("api/status");
  for (const run of status.running) run.seenAt = Date.now(); // elapsed_s is as of this answer
  const counts = $("#counts");
  counts.replaceChildren(
    ...Object.entries(status.counts).map(([state, n]) =>
      h("li", { class: n ? "" : "zero" }, stateBadge(state), h("b", {}, ` ${n}`))),
  );
  const pool = status.pool;
  let text = `Pool: ${pool.busy}/${pool.slots} slots busy`;
  if (pool.draining) text += " · draining";
  if (pool.paused) {
    text += ` · paused${pool.reason ? `: ${pool.reason}` : ""}`;
    if (pool.until) text += ` until ${clock(new Date(pool.until))}`;
  }
  const live = status.nodes.filter((n) => n.state === "up" && !n.expired);
  const gone = status.nodes.filter((n) => n.state === "lost" || (n.state === "up" && n.expired));
  if (status.nodes.length > 1) text += ` · ${live.length} node${live.length === 1 ? "" : "s"}`;
  if (gone.length) text += ` · lost: ${gone.map((n) => n.id).join(", ")}`;
  $("#pool").textContent = text;
  $("#pool").title = status.nodes.map((n) => {
    const state = n.state === "up" && n.expired ? `silent ${Math.round(n.heartbeat_age_s)} s` : n.state;
    const runs = n.running.map((r) => r.name).join(", ") || "nothing";
    return `${n.id} (${n.kind} on ${n.host}): ${state}, ${n.busy}/${n.slots} slots, running ${runs}`;
  }).join("\n");
  $("#pool").classList.toggle("warn", pool.paused || pool.draining || gone.length > 0);
  const budget = status.daily_budget_usd;
  const tags = (status.tag_budgets || []).map((t) => `tag ${t.tag} ${money(t.spent_usd)} of ${money(t.budget_usd)}`);
  $("#spend").textContent = `Today: ${money(status.cost_today_usd)}${budget ? ` of ${money(budget)} daily budget` : " (no daily budget)"}`
    + (tags.length ? ` · ${tags.join(" · ")}` : "");
  const over = (status.tag_budgets || []).some((t) => t.spent_usd >= t.budget_usd);
  $("#spend").classList.toggle("warn", Boolean((budget && status.cost_today_usd >= budget) || over));
  tickElapsed();
}

// -- the cost of what runs ----------------------------------------------------------------

// A cost that is still growing: `recorded` (what earlier executions cost) plus the estimate
// streamed by the running execution `executionId` of task `taskId`; kept live by onEvent.
function liveCost(recorded, taskId, executionId) {
  const el = h("span", { class: "estimate", "data-task": taskId, "data-execution": executionId || "", "data-recorded": recorded || 0 });
  showEstimate(el);
  return el;
}

function showEstimate(el) {
  const e = estimates.get(el.dataset.task);
  if (!e || !el.dataset.execution || e.execution !== el.dataset.execution) {
    el.textContent = "…";
    el.title = "running: the estimate comes as claude streams";
    return;
  }
  el.textContent = `≈ ${money(Number(el.dataset.recorded) + e.usd)}`;
  el.title = "estimated as claude streams; the cost claude reports comes when the execution ends";
}

function noteEstimate(event) {
  if (event.type === "execution.started" || event.type === "task.finished") estimates.delete(event.task_id);
  if (typeof event.estimated_cost_usd !== "number" || !event.task_id || !event.execution_id) return;
  estimates.set(event.task_id, { execution: event.execution_id, usd: event.estimated_cost_usd });
  for (const el of document.querySelectorAll("span.estimate")) showEstimate(el);
}

function runningExecution(taskId) {
  const run = status && status.running.find((r) => r.task_id === taskId);
  return run ? run.execution_id : null;
}

// -- the task table ------------------------------------------------------------------------

function filters() {
  const form = new FormData($("#filters"));
  return { state: form.get("state"), tag: form.get("tag").trim(), search: form.get("search").trim() };
}

function elapsed(task) {
  if (task.state === "RUNNING" && status) {
    const run = status.running.find((r) => r.task_id === task.id);
    if (run) return { seconds: run.elapsed_s + (Date.now() - run.seenAt) / 1000, live: true };
  }
  if (FINAL.includes(task.state) && task.created_at && task.updated_at) {
    return { seconds: (Date.parse(task.updated_at) - Date.parse(task.created_at)) / 1000, live: false };
  }
  return null;
}

function timeCell(task) {
  const e = elapsed(task);
  if (!e) return h("td", { "data-time": task.id });
  const title = e.live ? "running for" : "from creation to the end";
  return h("td", { "data-time": task.id, title }, duration(e.seconds));
}

function source(task) {
  const path = task.source_path || "";
  return h("td", { class: "source", title: `${task.source}${path ? ` ${path}` : ""}` },
    task.source === "api" ? "api" : path || task.source);
}

function row(task) {
  return h("tr", { "data-id": task.id, "data-state": task.state },
    h("th", { scope: "row" }, h("a", { href: `#/task/${encodeURIComponent(task.id)}` }, task.name)),
    h("td", {}, stateBadge(task.state)),
    h("td", {}, task.priority),
    h("td", {}, task.tags.map((tag) => h("span", { class: "tag" }, tag))),
    source(task),
    h("td", { class: "num" }, task.attempts),
    timeCell(task),
    h("td", { class: "num cost" }, task.state === "RUNNING"
      ? liveCost(task.cost_usd, task.id, runningExecution(task.id)) : money(task.cost_usd)));
}

async function loadTasks() {
  const page = await api("api/tasks", { params: { ...filters(), limit: PAGE_SIZE, cursor: list.cursors[list.page] } });
  list.items = page.items;
  list.cursors[list.page + 1] = page.next_cursor;
  $("#tasks tbody").replaceChildren(...page.items.map(row));
  $("#empty").hidden = page.items.length > 0;
  $("#newer").disabled = list.page === 0;
  $("#older").disabled = !page.next_cursor;
}

function tickElapsed() {
  for (const task of list.items) {
    if (task.state !== "RUNNING") continue;
    const cell = document.querySelector(`[data-time="${CSS.escape(task.id)}"]`);
    const e = elapsed(task);
    if (cell && e) cell.textContent = duration(e.seconds);
  }
}

// -- the task view -------------------------------------------------------------------------

function field(name, value) {
  if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) return [];
  return [h("dt", {}, name), h("dd", {}, value)];
}

async function dependencies(detail) {
  const items = await Promise.all(
    detail.depends_on_ids.map((id) => api(`api/tasks/${encodeURIComponent(id)}`).catch(() => null)),
  );
  return h("ul", { class: "deps" },
    items.map((dep, i) => {
      if (!dep) return h("li", {}, detail.depends_on[i] || detail.depends_on_ids[i]);
      const waits = detail.state === "PENDING" && dep.state !== "COMPLETED"; // it still may run
      return h("li", {}, h("a", { href: `#/task/${encodeURIComponent(dep.id)}` }, dep.name), " ", stateBadge(dep.state),
        waits ? h("em", {}, " (waiting on it)") : "");
    }));
}

function actionButtons(detail) {
  const act = (verb) => guard(async () => {
    await api(`api/tasks/${encodeURIComponent(detail.id)}/${verb}`, { method: "POST" });
    await showTask(detail.id, { keepLog: true });
  });
  const buttons = [];
  if (detail.state === "PENDING") buttons.push(h("button", { type: "button", onclick: act("run") }, "Run"));
  if (!FINAL.includes(detail.state)) buttons.push(h("button", { type: "button", class: "danger", onclick: act("cancel") }, "Cancel"));
  if (RETRYABLE.includes(detail.state)) buttons.push(h("button", { type: "button", onclick: act("retry") }, "Retry"));
  return buttons;
}

// "1", or "1 · round 2" for an execution resumed after a verify command failed
function executionLabel(ex) {
  return ex.round ? `${ex.attempt} · round ${ex.round}` : String(ex.attempt);
}

function milliseconds(ms) {
  return ms < 1000 ? `${ms}ms` : duration(ms / 1000);
}

// One permission denial as the reasons name it (outcome.denial_summary): the tool, and what it
// was asked for.
function denial(d) {
  const input = d && typeof d.tool_input === "object" && d.tool_input ? d.tool_input : {};
  const key = ["file_path", "command", "path", "url", "pattern", "notebook_path"]
    .find((k) => typeof input[k] === "string" && input[k]);
  const tool = (d && d.tool_name) || "a tool";
  return key ? `${tool}(${input[key]})` : tool;
}

function verifyResult(verify) {
  return [
    h("span", { class: verify.passed ? "ok" : "bad" }, verify.passed ? "✔ passed" : "✖ failed"),
    h("ul", { class: "checks" }, verify.commands.map((c) => {
      const ended = c.timed_out ? "timed out" : c.exit_code === null ? "stopped" : `exit ${c.exit_code}`;
      const failed = c.timed_out || c.exit_code !== 0;
      return h("li", { class: failed ? "bad" : "" }, h("code", {}, c.command), ` ${ended} · ${milliseconds(c.duration_ms)}`);
    })),
    h("span", { class: "muted" }, "log: "), h("code", {}, verify.log_path),
  ];
}

// What an execution's row has no room for: the session it resumed, its verify commands, the
// permissions claude was denied; a row of its own under the execution's, when there is any.
function executionNotes(ex, detail, columns) {
  const resumed = detail.executions.find((e) => e.id === ex.resumed_from);
  const denials = ex.permission_denials || [];
  const fields = [
    ...field("Resumed from", ex.resumed_from
      ? [resumed ? `execution ${executionLabel(resumed)} ` : "", h("code", {}, ex.resumed_from)] : null),
    ...field("Verify", ex.verify ? verifyResult(ex.verify) : null),
    ...field("Permission denied", denials.length
      ? h("ul", { class: "denials" }, denials.map((d) => h("li", {}, h("code", {}, denial(d))))) : null),
  ];
  if (!fields.length) return [];
  return [h("tr", { class: "ex-notes", "data-notes": ex.id },
    h("td", { colspan: columns }, h("dl", { class: "fields" }, fields)))];
}

function executionRows(ex, detail) {
  const row = executionRow(ex, detail);
  return [row, ...executionNotes(ex, detail, row.children.length)];
}

function executionRow(ex, detail) {
  const seconds = ex.duration_ms ? ex.duration_ms / 1000
    : ex.started_at ? ((ex.finished_at ? Date.parse(ex.finished_at) : Date.now()) - Date.parse(ex.started_at)) / 1000 : null;
  const selected = current && current.execution === ex.id;
  const running = ex.state === "RUNNING";
  return h("tr", { "data-execution": ex.id },
    h("td", { class: "attempt" }, executionLabel(ex)), h("td", {}, stateBadge(ex.state)), h("td", {}, ex.reason),
    h("td", { class: "num" }, running ? liveCost(ex.cost_usd, detail.id, ex.id) : money(ex.cost_usd)),
    running ? h("td", { title: "counted when the execution ends" }, "…")
      : h("td", {}, `${ex.tokens.input.toLocaleString()} / ${ex.tokens.output.toLocaleString()}`),
    h("td", {}, ex.num_turns ?? ""), h("td", {}, ex.owner.node || ex.owner.host),
    h("td", {}, when(ex.started_at)), h("td", {}, duration(seconds)),
    h("td", {}, h("button", { type: "button", "aria-pressed": selected ? "true" : "false",
      onclick: guard(() => openLog(ex.id, detail)) }, "Show log")),
    h("td", {}, hasWorktree(ex) ? h("button", { type: "button", "data-changes": ex.id,
      "aria-pressed": current && current.changes === ex.id ? "true" : "false",
      onclick: guard(() => openChanges(ex.id)) }, "Changes") : ""));
}

async function openChanges(executionId) {
  const ex = current.detail.executions.find((e) => e.id === executionId);
  current.changes = executionId;
  for (const button of document.querySelectorAll("#executions [data-changes]")) {
    button.setAttribute("aria-pressed", String(button.dataset.changes === executionId));
  }
  $("#changes-title").textContent = `Changes of execution ${executionLabel(ex)}`;
  $("#changes").hidden = false;
  await showChanges($("#changes-body"), ex, current.detail);
}

// The task view without a task: nothing of the one shown before stays under the error.
function noTask(id, error) {
  current = null;
  forgetChanges();
  $("#task-title").textContent = error && error.status === 404 ? `No task ${id}` : `Task ${id}`;
  for (const part of ["#task-actions", "#task-fields", "#executions tbody", "#log"]) $(part).replaceChildren();
  $("#changes").hidden = true;
  $("#task-body").hidden = true;
}

async function showTask(id, { keepLog = false } = {}) {
  let detail;
  try {
    detail = await api(`api/tasks/${encodeURIComponent(id)}`);
  } catch (error) {
    if (!current || current.id !== id) noTask(id, error);
    throw error;
  }
  $("#task-body").hidden = false;
  if (!current || current.id !== id) {
    current = { id, execution: null, offset: 0, loading: false, changes: null };
    $("#changes").hidden = true;
    forgetChanges();
  }
  current.detail = detail;
  $("#task-title").replaceChildren(detail.name, " ", stateBadge(detail.state));
  $("#task-actions").replaceChildren(...actionButtons(detail));
  const spec = detail.spec || {};
  const claude = spec.claude || {};
  const provenance = detail.provenance && Object.keys(detail.provenance).length
    ? Object.entries(detail.provenance).map(([k, v]) => `${k}: ${v}`).join(" · ") : null;
  $("#task-fields").replaceChildren(
    ...field("Id", h("code", {}, detail.id)),
    ...field("State", detail.reason ? `${detail.state} (${detail.reason})` : detail.state),
    ...field("Priority", detail.priority),
    ...field("Tags", detail.tags.join(", ")),
    ...field("Source", `${detail.source}${detail.source_path ? ` · ${detail.source_path}` : ""}`),
    ...field("Provenance", provenance),
    ...field("Attempts", String(detail.attempts)),
    ...field("Batch budget", detail.batch
      ? `${money(detail.batch.spent_usd)} of ${money(detail.batch.budget_usd)} spent by the batch` : null),
    ...field("Retry stops at", spec.retry && spec.retry.max_cost_usd ? money(spec.retry.max_cost_usd) : null),
    ...field("Cost", detail.state === "RUNNING"
      ? liveCost(detail.cost_usd, detail.id, detail.executions.find((ex) => ex.state === "RUNNING")?.id)
      : money(detail.cost_usd)),
    ...field("Created", when(detail.created_at)),
    ...field("Updated", when(detail.updated_at)),
    ...field("Not before", when(detail.not_before)),
    ...field("Held", detail.held ? "yes: waiting for Run" : null),
    ...field("Model", claude.model),
    ...field("Working dir", claude.cwd || spec.cwd),
    ...field("Depends on", detail.depends_on_ids.length ? await dependencies(detail) : null),
    ...field("Instructions", claude.instructions ? h("pre", { class: "prompt" }, claude.instructions) : null),
  );
  const latest = detail.executions[detail.executions.length - 1];
  if (!keepLog || !current.execution) current.execution = latest ? latest.id : null;
  $("#executions tbody").replaceChildren(...detail.executions.flatMap((ex) => executionRows(ex, detail)));
  if (!detail.executions.length) $("#log").replaceChildren(h("p", { class: "muted" }, "Not run yet."));
  else if (!keepLog) await openLog(current.execution, detail);
  else await followLog();
}

async function openLog(executionId, detail) {
  current.execution = executionId;
  current.offset = 0;
  $("#log").replaceChildren();
  for (const button of document.querySelectorAll("#executions [aria-pressed]")) {
    button.setAttribute("aria-pressed", String(button.closest("tr").dataset.execution === executionId));
  }
  const ex = detail.executions.find((e) => e.id === executionId);
  $("#log-title").textContent = `Log of execution ${ex ? executionLabel(ex) : ""}`;
  await followLog();
}

// Read the log from where we stopped, to its current end; called again on each event.
async function followLog() {
  if (!current || !current.execution || current.loading) return;
  current.loading = true;
  try {
    for (;;) {
      const execution = current.execution;
      const page = await api(`api/executions/${encodeURIComponent(execution)}/log`,
        { params: { format: "raw", offset: current.offset, limit: 500 } });
      if (!current || current.execution !== execution) return;
      current.offset = page.next_offset;
      const log = $("#log");
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      if (page.elsewhere) {
        log.replaceChildren(h("p", { class: "entry" },
          `This execution ran on node ${page.node}: its log is in that node's data dir (open that node's page to read it).`));
        break;
      }
      for (const line of page.lines) log.append(...renderLine(line));
      if (atBottom) log.scrollTop = log.scrollHeight;
      if (page.eof || !page.lines.length) {
        log.dataset.running = String(page.running);
        break;
      }
    }
  } finally {
    if (current) current.loading = false;
  }
}

// -- new task ------------------------------------------------------------------------------

async function validate() {
  const yaml = $("#yaml").value;
  const result = await api("api/validate", { method: "POST", body: yaml, type: "application/yaml" });
  const box = $("#problems");
  if (result.ok && !result.problems.length) {
    box.replaceChildren(h("p", { class: "ok" }, `✔ ok (${result.tasks === 1 ? "task" : `batch of ${result.tasks} tasks`})`));
  } else {
    box.replaceChildren(
      h("p", { class: result.ok ? "ok" : "bad" }, result.ok ? "✔ ok, with warnings" : "✖ invalid"),
      h("ul", {}, result.problems.map((p) => h("li", { class: p.warning ? "warning" : "error" }, p.text))),
    );
  }
  return result.ok;
}

async function create(event) {
  event.preventDefault();
  const run = event.submitter && event.submitter.value === "run";
  try {
    const made = await api("api/tasks", { method: "POST", body: $("#yaml").value, type: "application/yaml", params: { run: run ? "true" : "" } });
    const first = made.tasks ? made.tasks[0] : made;
    location.hash = `#/task/${encodeURIComponent(first.id)}`;
  } catch (error) {
    if (error.details && error.details.length) await validate();
    else throw error;
  }
}

// -- cost ----------------------------------------------------------------------------------

async function loadCost() {
  const costs = await api("api/costs", { params: { days: 30 } });
  const days = costs.days.map((d) => [d.day, d.cost_usd]).reverse();
  const tags = costs.tags.slice(0, 20).map((t) => [t.tag, t.cost_usd]);
  $("#cost-note").textContent = "The last 30 days: each execution's cost on the day it started (the server's local time); a task's cost counts for each of its tags.";
  $("#cost-day").replaceChildren(barChart(days, "Spend per day"));
  $("#cost-tag").replaceChildren(barChart(tags, "Spend per tag"));
}

// -- routing and live updates --------------------------------------------------------------

function route(first = false) {
  if (!first && location.hash && !location.hash.startsWith("#/")) return; // in-page link (#main)
  const hash = location.hash.replace(/^#\/?/, "");
  const [view, arg] = hash.split("/");
  const name = view === "task" && arg ? "task" : ["new", "cost"].includes(view) ? view : "tasks";
  for (const section of ["tasks", "task", "new", "cost"]) $(`#view-${section}`).hidden = section !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  notice("");
  if (name !== "task") current = null;
  if (name === "tasks") return loadTasks();
  if (name === "task") {
    current = null;
    return showTask(decodeURIComponent(arg));
  }
  if (name === "new") return validate();
  return loadCost();
}

const refresh = debounce(guard(async () => {
  await loadStatus();
  if (!$("#view-tasks").hidden) await loadTasks();
  if (current) await showTask(current.id, { keepLog: true });
}), 150);

function onEvent(event) {
  noteEstimate(event);
  if (current && event.task_id === current.id && event.type.startsWith("execution.") && event.type !== "execution.started") {
    guard(followLog)();
    if (event.type !== "execution.cost") return;
  }
  if (["task.", "execution.", "pool.", "node."].some((prefix) => event.type.startsWith(prefix))) refresh();
}

function onSocket(open) {
  $("#live").textContent = open ? "● live" : "○ reconnecting…";
  $("#live").classList.toggle("off", !open);
}

async function start() {
  const select = $("#filters select");
  for (const state of Object.keys(STATES)) select.append(h("option", { value: state }, state));
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  const reload = debounce(guard(() => {
    list.page = 0;
    list.cursors = [null];
    return loadTasks();
  }), 200);
  $("#filters").addEventListener("input", reload);
  $("#newer").addEventListener("click", guard(() => { list.page -= 1; return loadTasks(); }));
  $("#older").addEventListener("click", guard(() => { list.page += 1; return loadTasks(); }));
  for (const button of document.querySelectorAll("[data-pool]")) {
    button.addEventListener("click", guard(async () => {
      await api(`api/pool/${button.dataset.pool}`, { method: "POST" });
      await loadStatus();
    }));
  }
  $("#yaml").addEventListener("input", debounce(guard(validate), 250));
  $("#new-form").addEventListener("submit", guard(create));
  window.addEventListener("hashchange", guard(() => route()));
  await loadStatus(); // asks for the token first when the server needs one
  events(onEvent, onSocket);
  await route(true);
  setInterval(tickElapsed, 1000);
}

guard(start)();
