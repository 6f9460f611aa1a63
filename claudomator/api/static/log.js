// Claude's stream-json, one line at a time, rendered readably: assistant text, tool calls with
// their inputs, tool results folded, the final result. Unknown lines are shown as they are.

import { h, plural } from "./dom.js";

function text(value) {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    return value.map((part) => (typeof part === "string" ? part : part.text ?? JSON.stringify(part))).join("\n");
  }
  return JSON.stringify(value, null, 2);
}

function toolInput(input) {
  if (input && typeof input === "object" && typeof input.command === "string") return input.command;
  return JSON.stringify(input, null, 2);
}

function blocks(message) {
  const content = message && message.content;
  if (typeof content === "string") return [{ type: "text", text: content }];
  return Array.isArray(content) ? content : [];
}

// One line of stdout → DOM nodes (possibly none: system noise we do not show).
export function renderLine(line) {
  let item;
  try {
    item = JSON.parse(line);
  } catch {
    return line.trim() ? [h("pre", { class: "entry raw" }, line)] : [];
  }
  const nodes = [];
  switch (item.type) {
    case "system":
      if (item.subtype === "init") {
        nodes.push(h("p", { class: "entry meta" }, `session started · model ${item.model || "?"} · ${item.cwd || ""}`));
      }
      break;
    case "assistant":
      for (const block of blocks(item.message)) {
        if (block.type === "text" && block.text) {
          nodes.push(h("div", { class: "entry assistant" }, h("span", { class: "who" }, "Claude"), h("p", {}, block.text)));
        } else if (block.type === "tool_use") {
          nodes.push(
            h("div", { class: "entry tool" }, h("span", { class: "who" }, `Tool call: ${block.name}`),
              h("pre", {}, toolInput(block.input))),
          );
        }
      }
      break;
    case "user":
      for (const block of blocks(item.message)) {
        if (block.type === "tool_result") {
          const body = text(block.content);
          const label = block.is_error ? "Tool result (error)" : "Tool result";
          nodes.push(
            h("details", { class: `entry result${block.is_error ? " error" : ""}` },
              h("summary", {}, `${label} · ${plural(body.split("\n").length, "line")}`), h("pre", {}, body)),
          );
        } else if (block.type === "text" && block.text) {
          nodes.push(h("p", { class: "entry meta" }, block.text));
        }
      }
      break;
    case "result": {
      const cost = typeof item.total_cost_usd === "number" ? ` · $${item.total_cost_usd.toFixed(4)}` : "";
      const turns = item.num_turns ? ` · ${plural(item.num_turns, "turn")}` : "";
      const title = `${item.is_error ? "Failed" : "Finished"} (${item.subtype})${turns}${cost}`;
      const errors = Array.isArray(item.errors) && item.errors.length ? item.errors.map(text).join("\n") : "";
      nodes.push(
        h("div", { class: `entry final${item.is_error ? " error" : ""}` }, h("span", { class: "who" }, title),
          h("p", {}, item.result || errors || "")),
      );
      break;
    }
    default:
      break; // stream_event, rate_limit_event, …: not shown
  }
  return nodes;
}
