// Small DOM helpers: elements are built with textContent, never from HTML strings.

export function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "rect", "text", "g", "line", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector) => document.querySelector(selector);

export function money(value) {
  const n = Number(value || 0);
  return `$${n < 1 && n > 0 ? n.toFixed(4) : n.toFixed(2)}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const pad = (n) => String(n).padStart(2, "0");

// A time of day, 24-hour and local: "14:03".
export function clock(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// A date and time, unambiguous in every locale (ISO order, local time): "2026-12-01 14:03".
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}`;
}

// "1 line", "2 lines".
export function plural(n, word, words = `${word}s`) {
  return `${n} ${n === 1 ? word : words}`;
}

export const STATES = {
  PENDING: "◌",
  QUEUED: "⋯",
  RUNNING: "▶",
  COMPLETED: "✔",
  FAILED: "✖",
  TIMED_OUT: "◔",
  CANCELLED: "⊘",
  BUDGET_EXCEEDED: "$",
};

export function stateBadge(state) {
  return h("span", { class: `state s-${state}` }, h("span", { "aria-hidden": "true" }, STATES[state] || "•"), ` ${state}`);
}
