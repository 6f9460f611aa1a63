// An execution's changes in its worktree: what its record says of the branch (base → head,
// commits, files, the push or where the worktree is), then the diff itself, fetched as text
// from api/executions/{id}/diff, parsed here and shown file by file, coloured. Built with
// textContent only: a diff is untrusted text.

import { api } from "./api.js";
import { h, plural } from "./dom.js";

const MAX_LINES = 20000; // diff lines shown at most; the whole patch can be downloaded
let shown = null; // { id, link }: the execution shown, and its patch's download URL

export function hasWorktree(ex) {
  return Boolean(ex && ex.workspace && ex.workspace.mode === "worktree");
}

export const short = (commit) => (commit ? commit.slice(0, 8) : "?");

// A path as git quotes an unusual one ("t\303\251st.txt"), unquoted; others as they are.
function unquote(path) {
  if (!(path.length > 1 && path.startsWith('"') && path.endsWith('"'))) return path;
  const bytes = [];
  const body = path.slice(1, -1);
  const named = { n: 10, t: 9, r: 13, b: 8, f: 12, v: 11, a: 7, '"': 34, "\\": 92 };
  for (let i = 0; i < body.length; i += 1) {
    const c = body[i];
    if (c !== "\\") {
      bytes.push(...new TextEncoder().encode(c));
    } else if (/[0-7]{3}/.test(body.slice(i + 1, i + 4))) {
      bytes.push(parseInt(body.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      i += 1;
      bytes.push(named[body[i]] ?? body.charCodeAt(i));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

// "--- a/x" → "x"; "/dev/null" → null (a file added or deleted). git ends a name with a space
// in it with a tab.
function pathOf(line, prefix) {
  const path = unquote(line.slice(4).replace(/\t$/, ""));
  if (path === "/dev/null") return null;
  return path.startsWith(prefix) ? path.slice(prefix.length) : path;
}

// "diff --git a/x b/x" → "x" (the names, when nothing else says them: a mode change).
function gitLinePath(line) {
  const rest = line.slice("diff --git ".length);
  const half = (rest.length - 5) / 2;
  if (Number.isInteger(half) && rest.startsWith("a/") && rest.slice(half + 2, half + 5) === " b/") {
    return rest.slice(half + 5);
  }
  const at = rest.lastIndexOf(" b/");
  return at >= 0 ? unquote(rest.slice(at + 3)) : rest;
}

// A unified diff as git writes it → its files, each with its path, status (modified, added,
// deleted, renamed), lines added and removed, header lines and hunk lines ({ kind, text }:
// kind hunk, add, del, context or note).
export function parseDiff(text) {
  const files = [];
  let file = null;
  let inHunk = false;
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    if (line.startsWith("diff --git ")) {
      file = { path: gitLinePath(line), oldPath: null, newPath: null, status: "modified",
        binary: false, added: 0, removed: 0, header: [line], lines: [] };
      files.push(file);
      inHunk = false;
    } else if (!file) {
      continue; // nothing comes before the first file in git's output
    } else if (line.startsWith("@@")) {
      inHunk = true;
      file.lines.push({ kind: "hunk", text: line });
    } else if (!inHunk) {
      file.header.push(line);
      if (line.startsWith("--- ")) file.oldPath = pathOf(line, "a/");
      else if (line.startsWith("+++ ")) file.newPath = pathOf(line, "b/");
      else if (line.startsWith("new file mode")) file.status = "added";
      else if (line.startsWith("deleted file mode")) file.status = "deleted";
      else if (line.startsWith("rename from ")) {
        file.status = "renamed";
        file.oldPath = unquote(line.slice("rename from ".length));
      } else if (line.startsWith("rename to ")) file.newPath = unquote(line.slice("rename to ".length));
      else if (line.startsWith("Binary files ") || line === "GIT binary patch") file.binary = true;
    } else if (line.startsWith("+")) {
      file.added += 1;
      file.lines.push({ kind: "add", text: line });
    } else if (line.startsWith("-")) {
      file.removed += 1;
      file.lines.push({ kind: "del", text: line });
    } else {
      file.lines.push({ kind: line.startsWith("\\") ? "note" : "context", text: line });
    }
  }
  for (const f of files) {
    f.path = f.newPath ?? f.oldPath ?? f.path;
    if (f.status === "renamed" && f.oldPath) f.from = f.oldPath;
  }
  return files;
}

function fieldPair(name, value) {
  return value === null || value === undefined || value === "" ? [] : [h("dt", {}, name), h("dd", {}, value)];
}

// The push as far as the record and the task say: failed (why), done, or not asked for, when
// the worktree's node is the place to find the branch.
function pushState(ex, spec) {
  const ws = ex.workspace;
  const remote = spec && spec.workspace && typeof spec.workspace === "object" ? spec.workspace.push : null;
  if (ws.push_error) return { text: `failed: ${ws.push_error}`, pushed: false, bad: true };
  if (remote && ex.state === "COMPLETED") return { text: `pushed to ${remote}`, pushed: true, bad: false };
  return { text: remote ? "not pushed (the execution did not succeed)" : "not pushed (no workspace.push)", pushed: false, bad: false };
}

function summary(ex, detail) {
  const ws = ex.workspace;
  const push = pushState(ex, detail.spec || {});
  const commits = `${short(ws.base)} → ${short(ws.head)} · ${plural(ws.commits, "commit")}`;
  const files = `${plural(ws.files_changed, "file")} changed, +${ws.insertions} −${ws.deletions}`;
  const where = ws.node ? `${ws.path} on node ${ws.node}` : ws.path;
  return h("dl", { class: "fields" },
    ...fieldPair("Branch", ws.branch ? h("code", {}, ws.branch) : null),
    ...fieldPair("Commits", h("span", { class: "commits", title: `${ws.base || ""} → ${ws.head || ""}` }, commits)),
    ...fieldPair("Files", files),
    ...fieldPair("Push", h("span", { class: push.bad ? "bad push" : "push" }, push.text)),
    ...fieldPair("Worktree", push.pushed ? null : where),
    ...fieldPair("Repository", ws.repo));
}

function fileTable(files, blocks) {
  return h("table", { class: "diff-files" },
    h("caption", { class: "sr-only" }, "Files changed"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "File"), h("th", { scope: "col", class: "num" }, "+"),
      h("th", { scope: "col", class: "num" }, "−"))),
    h("tbody", {}, files.map((f, i) => h("tr", { "data-file": f.path },
      h("th", { scope: "row" }, h("button", { type: "button", class: "link", onclick: () => blocks[i].scrollIntoView() }, f.path),
        f.status === "modified" ? "" : h("span", { class: `tag f-${f.status}` }, f.from ? `renamed from ${f.from}` : f.status),
        f.binary ? h("span", { class: "tag" }, "binary") : ""),
      h("td", { class: "num d-add-n" }, `+${f.added}`), h("td", { class: "num d-del-n" }, `−${f.removed}`)))));
}

function fileBlock(f, budget) {
  const lines = [...f.header.map((text) => ({ kind: "file", text })), ...f.lines];
  const kept = lines.slice(0, Math.max(0, budget.left));
  budget.left -= kept.length;
  return h("section", { class: "diff-file", "data-file": f.path },
    h("h4", { class: "diff-name" }, f.path),
    h("pre", { class: "diff" }, kept.map((l) => h("span", { class: `d-${l.kind}` }, l.text || " "))),
    kept.length < lines.length ? h("p", { class: "muted" }, `${plural(lines.length - kept.length, "more line")}: download the patch to read them.`) : "");
}

// Fill `box` with the changes of execution `ex` of task `detail` (the diff fetched now).
export async function showChanges(box, ex, detail) {
  if (shown && shown.link) URL.revokeObjectURL(shown.link);
  shown = { id: ex.id, link: null };
  box.replaceChildren(summary(ex, detail), h("p", { class: "muted" }, "Loading the diff…"));
  let text;
  try {
    text = await api(`api/executions/${encodeURIComponent(ex.id)}/diff`, { text: "text/x-diff" });
  } catch (error) {
    if (shown.id === ex.id) box.replaceChildren(summary(ex, detail), h("p", { class: "bad" }, error.message || String(error)));
    return;
  }
  if (shown.id !== ex.id) return; // another execution was asked for meanwhile
  const files = parseDiff(text);
  shown.link = URL.createObjectURL(new Blob([text], { type: "text/x-diff" }));
  const budget = { left: MAX_LINES };
  const blocks = files.map((f) => fileBlock(f, budget));
  box.replaceChildren(
    summary(ex, detail),
    files.length ? fileTable(files, blocks) : h("p", { class: "muted" }, "No changes: the branch is where it started."),
    h("p", {}, h("a", { href: shown.link, download: `${ex.id}.diff` }, "Download the patch")),
    h("div", { class: "diff-body" }, blocks));
}

export function forgetChanges() {
  if (shown && shown.link) URL.revokeObjectURL(shown.link);
  shown = null;
}
