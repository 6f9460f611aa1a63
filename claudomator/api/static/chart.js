// A horizontal bar chart as inline SVG, with a table twin for screen readers.

import { h, money } from "./dom.js";

export function barChart(rows, label) {
  if (!rows.length) return h("p", { class: "muted" }, "No spend yet.");
  const max = Math.max(...rows.map(([, v]) => v), 1e-9);
  const bar = 22;
  const gap = 6;
  const left = 130;
  const width = 560;
  const height = rows.length * (bar + gap);
  const svg = h("svg", {
    viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": label,
    preserveAspectRatio: "xMinYMin meet", class: "bars",
  });
  rows.forEach(([name, value], i) => {
    const y = i * (bar + gap);
    const w = Math.max(1, ((width - left - 90) * value) / max);
    svg.append(
      h("g", {},
        h("title", {}, `${name}: ${money(value)}`),
        h("text", { x: left - 8, y: y + bar * 0.7, "text-anchor": "end", class: "bar-label" }, name.length > 18 ? `${name.slice(0, 17)}…` : name),
        h("rect", { x: left, y, width: w, height: bar, rx: 3, class: "bar" }),
        h("text", { x: left + w + 6, y: y + bar * 0.7, class: "bar-value" }, money(value))),
    );
  });
  const table = h("table", { class: "sr-only" },
    h("caption", {}, label),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Spend"))),
    h("tbody", {}, rows.map(([name, value]) => h("tr", {}, h("td", {}, name), h("td", {}, money(value))))));
  return h("div", {}, svg, table);
}
