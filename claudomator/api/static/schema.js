// The API's docs page (api/schema, beside the dashboard): the OpenAPI document rendered as
// plain HTML by this file, served by this server like the dashboard, so nothing is loaded from
// elsewhere and it works offline. Each operation with its parameters, body and answers, then
// each schema with its fields.

import { api } from "./api.js";
import { $, h } from "./dom.js";

const METHODS = ["get", "head", "post", "put", "patch", "delete"];
const ROOT = document.documentElement.dataset.root || "../"; // the server's root, relatively
const SCHEMA_URL = `${ROOT}api/schema/openapi.json`;

function name(ref) {
  return decodeURIComponent(ref.split("/").pop());
}

function anchor(kind, text) {
  return `${kind}-${text.replace(/[^A-Za-z0-9_-]+/g, "-")}`;
}

// A schema's type, short: a link for a reference, `A | B` for a choice, `T[]` for an array.
function typeOf(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (schema.$ref) return h("a", { href: `#${anchor("schema", name(schema.$ref))}` }, name(schema.$ref));
  const choice = schema.oneOf || schema.anyOf;
  if (choice) return join(choice.map(typeOf), " | ");
  if (schema.allOf) return join(schema.allOf.map(typeOf), " & ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if ("const" in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.type)) return join(schema.type.map((t) => typeOf({ ...schema, type: t })), " | ");
  if (schema.type === "array") return [typeOf(schema.items), "[]"];
  if (schema.type === "object" && schema.additionalProperties && !schema.properties) {
    return ["{ string: ", typeOf(schema.additionalProperties), " }"];
  }
  return (schema.type || "any") + (schema.format ? ` (${schema.format})` : "");
}

function join(parts, glue) {
  return parts.flatMap((part, i) => (i ? [glue, part] : [part]));
}

function limits(schema) {
  const s = schema || {};
  const said = [];
  if (s.default !== undefined) said.push(`default ${JSON.stringify(s.default)}`);
  if (s.minimum !== undefined) said.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) said.push(`≤ ${s.maximum}`);
  if (s.minLength !== undefined) said.push(`at least ${s.minLength} characters`);
  if (s.maxLength !== undefined) said.push(`at most ${s.maxLength} characters`);
  return said.join(", ");
}

function table(caption, head, rows) {
  return h("div", { class: "scroll" }, h("table", { class: "api-table" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, head.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows)));
}

function content(body) {
  return Object.entries((body && body.content) || {}).map(([type, media]) =>
    h("li", {}, h("code", {}, type), media.schema ? [": ", typeOf(media.schema)] : ""));
}

function operation(path, method, op) {
  const id = anchor("op", `${method}-${path}`);
  const parameters = op.parameters || [];
  const responses = Object.entries(op.responses || {});
  return h("section", { class: "op", id, "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, h("span", { class: `method m-${method}` }, method.toUpperCase()), " ",
      h("code", { class: "op-path" }, path), op.summary ? h("span", { class: "op-summary" }, ` ${op.summary}`) : ""),
    op.description ? h("p", { class: "op-about" }, op.description) : "",
    Array.isArray(op.security) && !op.security.length ? h("p", { class: "muted" }, "Needs no token.") : "",
    parameters.length ? table(`Parameters of ${method.toUpperCase()} ${path}`, ["Parameter", "In", "Type", "Required", "About"],
      parameters.map((p) => h("tr", {}, h("th", { scope: "row" }, h("code", {}, p.name)), h("td", {}, p.in),
        h("td", {}, typeOf(p.schema)), h("td", {}, p.required ? "yes" : "no"),
        h("td", {}, [p.description || "", limits(p.schema)].filter(Boolean).join("; "))))) : "",
    op.requestBody ? h("div", {}, h("h4", {}, "Body"), op.requestBody.description ? h("p", {}, op.requestBody.description) : "",
      h("ul", { class: "api-content" }, content(op.requestBody))) : "",
    responses.length ? table(`Answers of ${method.toUpperCase()} ${path}`, ["Status", "Means", "Body"],
      responses.map(([status, r]) => h("tr", { "data-status": status }, h("th", { scope: "row" }, status),
        h("td", {}, r.description || ""), h("td", {}, h("ul", { class: "api-content" }, content(r)))))) : "");
}

function schemaSection(key, schema) {
  const id = anchor("schema", key);
  const required = new Set(schema.required || []);
  const properties = Object.entries(schema.properties || {});
  return h("section", { class: "api-schema", id, "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, h("code", {}, key)),
    schema.description ? h("p", {}, schema.description) : "",
    properties.length
      ? table(`Fields of ${key}`, ["Field", "Type", "Required", "About"],
        properties.map(([field, s]) => h("tr", {}, h("th", { scope: "row" }, h("code", {}, field)), h("td", {}, typeOf(s)),
          h("td", {}, required.has(field) ? "yes" : "no"),
          h("td", {}, [s.description || "", limits(s)].filter(Boolean).join("; ")))))
      : h("p", {}, "Type: ", typeOf(schema)));
}

function render(doc, text) {
  const info = doc.info || {};
  document.title = `${info.title || "API"} ${info.version || ""}`.trim();
  $("#api-title").textContent = `${info.title || "API"} API`;
  $("#api-version").textContent = info.version ? `version ${info.version} · OpenAPI ${doc.openapi || ""}` : "";
  $("#api-about").textContent = info.description
    || "Every route of this server, as its OpenAPI document describes it. With auth on, send the token as Authorization: Bearer <token>.";
  const json = $("#to-json");
  json.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  json.download = "openapi.json";
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) if (item[method]) ops.push([path, method, item[method]]);
  }
  $("#api-index").replaceChildren(h("ul", {}, ops.map(([path, method]) =>
    h("li", {}, h("a", { href: `#${anchor("op", `${method}-${path}`)}` }, `${method.toUpperCase()} ${path}`)))));
  $("#operations").replaceChildren(...ops.map(([path, method, op]) => operation(path, method, op)));
  const schemas = Object.entries((doc.components && doc.components.schemas) || {});
  schemas.sort(([a], [b]) => a.localeCompare(b));
  $("#schemas").replaceChildren(...schemas.map(([key, schema]) => schemaSection(key, schema)));
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

async function start() {
  $("#to-page").href = ROOT;
  $("#to-json").href = SCHEMA_URL;
  const text = await api(SCHEMA_URL, { text: "application/json" });
  render(JSON.parse(text), text);
}

start().catch((error) => {
  const notice = $("#notice");
  notice.textContent = `The OpenAPI document could not be read: ${error.message || error}`;
  notice.hidden = false;
});
