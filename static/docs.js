// A compact, dependency-free renderer for /openapi.json (no CDN, works offline).
"use strict";

const METHODS = ["get", "post", "put", "delete", "patch"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return { name, schema: spec.components.schemas[name] || {} };
  }
  return { name: null, schema: schema || {} };
}

function typeLabel(spec, schema) {
  const { name, schema: s } = resolve(spec, schema);
  if (name) return name;
  if (s.type === "array") return `array of ${typeLabel(spec, s.items)}`;
  const parts = [s.type || "any"];
  if (s.format) parts.push(`(${s.format})`);
  if (s.enum) parts.push(`one of ${s.enum.join(", ")}`);
  if (s.pattern) parts.push(`matching ${s.pattern}`);
  if (s.minLength !== undefined || s.maxLength !== undefined) {
    parts.push(`length ${s.minLength ?? 0}..${s.maxLength ?? "∞"}`);
  }
  if (s.minimum !== undefined || s.maximum !== undefined) {
    parts.push(`${s.minimum ?? "-∞"}..${s.maximum ?? "∞"}`);
  }
  if (s.nullable) parts.push("or null");
  return parts.join(" ");
}

function schemaTable(spec, schema, depth = 0, seen = new Set()) {
  const { name, schema: s } = resolve(spec, schema);
  if (name && seen.has(name)) return el("span", { class: "type" }, name);
  const nextSeen = new Set(seen);
  if (name) nextSeen.add(name);
  const target = s.type === "array" ? resolve(spec, s.items).schema : s;
  if (!target.properties) return el("span", { class: "type" }, typeLabel(spec, schema));
  const required = new Set(target.required || []);
  const table = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"),
    el("th", {}, "notes")));
  for (const [field, prop] of Object.entries(target.properties)) {
    const inner = resolve(spec, prop.type === "array" ? prop.items : prop);
    const nested = depth < 3 && inner.schema.properties ? schemaTable(spec, prop, depth + 1, nextSeen) : "";
    const notes = [prop.description || "", prop.default !== undefined ? `default ${JSON.stringify(prop.default)}` : ""]
      .filter(Boolean).join("; ");
    table.append(el("tr", {},
      el("td", {}, el("code", {}, field), required.has(field) ? el("span", { class: "req" }, " required") : ""),
      el("td", {}, el("span", { class: "type" }, typeLabel(spec, prop)), nested),
      el("td", {}, notes)));
  }
  return table;
}

function parametersSection(spec, op) {
  if (!op.parameters || !op.parameters.length) return "";
  const table = el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"),
    el("th", {}, "type"), el("th", {}, "notes")));
  for (const p of op.parameters) {
    table.append(el("tr", {},
      el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : ""),
      el("td", {}, p.in), el("td", {}, el("span", { class: "type" }, typeLabel(spec, p.schema))),
      el("td", {}, [p.description, p.schema && p.schema.default !== undefined
        ? `default ${JSON.stringify(p.schema.default)}` : ""].filter(Boolean).join("; "))));
  }
  return el("div", {}, el("h4", {}, "Parameters"), table);
}

function bodySection(spec, op) {
  const content = op.requestBody && op.requestBody.content;
  if (!content) return "";
  const [type, media] = Object.entries(content)[0];
  return el("div", {}, el("h4", {}, `Request body (${type})`), schemaTable(spec, media.schema));
}

function responsesSection(spec, op) {
  const box = el("div", {}, el("h4", {}, "Responses"));
  for (const [code, response] of Object.entries(op.responses || {})) {
    const media = response.content ? Object.values(response.content)[0] : null;
    const block = el("details", {}, el("summary", {}, el("code", {}, code), response.description || ""));
    if (media && code.startsWith("2")) block.open = true;
    block.append(el("div", { class: "body" }, media ? schemaTable(spec, media.schema) : ""));
    box.append(block);
  }
  return box;
}

function operationBlock(spec, path, method, op) {
  const head = el("summary", {}, el("span", { class: `m ${method.toUpperCase()}` }, method.toUpperCase()),
    el("span", { class: "path" }, path), el("span", {}, op.summary || ""),
    op.security ? el("span", { class: "lock" }, "auth: X-API-Key or Bearer") : "");
  const body = el("div", { class: "body" }, op.description ? el("p", {}, op.description) : "",
    parametersSection(spec, op), bodySection(spec, op), responsesSection(spec, op));
  return el("details", { id: op.operationId || `${method}-${path}` }, head, body);
}

function render(spec) {
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  document.getElementById("description").textContent = spec.info.description || "";
  const content = document.getElementById("content");
  const groups = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operationBlock(spec, path, method, item[method]));
    }
  }
  for (const [tag, blocks] of groups) content.append(el("h2", {}, tag), ...blocks);
}

fetch("/openapi.json")
  .then((response) => response.json())
  .then(render)
  .catch((error) => {
    document.getElementById("error").textContent = `Could not load /openapi.json: ${error}`;
  });
