// The agent graph: agents, tools, models, pipelines and handoffs as boxes, calls as arrows with
// their counts, time, cost and errors. The server lays the boxes out (columns by call depth,
// boxes that never overlap); this module draws them as SVG and cuts any text that would still
// spill out of its box, so no two labels ever overlap.
//
// `drawGraph` serves the trace page's Graph view (a click filters the waterfall) and this
// module's own page, `/graph?name=…`: one workflow's traces summed over a time range, where a
// click opens the trace list filtered to the node.
//
// Labels are agent, tool and model names from ingested spans: they reach the DOM only through
// createElementNS + textContent (or h()), never as markup.

import { get } from "./api.js";
import { h, mount, notice, link, navigate } from "./dom.js";
import * as f from "./format.js";
import { RANGES } from "./traces.js";

const SVG_NS = "http://www.w3.org/2000/svg";
/** Padding inside a box, px (as the server's layout assumes). */
const PAD_X = 10;
/** Colour and icon per node kind (models look like LLM spans). */
const NODE_KINDS = {
  pipeline: f.kind("pipeline"),
  agent: f.kind("agent"),
  tool: f.kind("tool"),
  model: f.kind("llm"),
  handoff: f.kind("handoff"),
};
const ERROR_RED = "#d93025";

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** "3 calls · 1.2 s · $0.004 · 1 error": what a node or an edge figures say, in one line. */
export function figuresText(x, short = false) {
  const parts = [`${f.int(x.calls)} call${x.calls === 1 ? "" : "s"}`, f.ms(x.duration_ms)];
  const tokens = (x.input_tokens || 0) + (x.output_tokens || 0);
  const cost = f.costText(x.cost_usd, x.unpriced_span_count, tokens);
  if (cost !== "–") parts.push(cost);
  if (x.errors) parts.push(`${f.int(x.errors)} error${x.errors === 1 ? "" : "s"}`);
  if (!short && tokens) parts.push(`${f.int(tokens)} tokens`);
  return parts.join(" · ");
}

/** Cuts an SVG text element's content with "…" until it fits `max` px (binary search). */
function fitText(el, full, max) {
  el.textContent = full;
  if (el.getComputedTextLength() <= max) return;
  const chars = [...full];
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    el.textContent = `${chars.slice(0, mid).join("")}…`;
    if (el.getComputedTextLength() <= max) lo = mid;
    else hi = mid - 1;
  }
  el.textContent = `${chars.slice(0, lo).join("")}…`;
}

/** The point of a cubic Bézier at t = ½. */
function midpoint(p0, p1, p2, p3) {
  return [(p0[0] + 3 * p1[0] + 3 * p2[0] + p3[0]) / 8, (p0[1] + 3 * p1[1] + 3 * p2[1] + p3[1]) / 8];
}

/** An edge's curve: forward edges run right to left side; others loop out on the right. */
function edgePath(a, b, lane) {
  const ay = a.y + a.height / 2;
  const by = b.y + b.height / 2;
  if (b.x > a.x + a.width) {
    const p0 = [a.x + a.width, ay];
    const p3 = [b.x - 2, by];
    const dx = (p3[0] - p0[0]) / 2;
    const pts = [p0, [p0[0] + dx, ay], [p3[0] - dx, by], p3];
    return pts;
  }
  // Same column, backwards, or to itself: out of the right side and back in on the right.
  const right = Math.max(a.x + a.width, b.x + b.width) + 28 + lane * 10;
  const p0 = [a.x + a.width, ay - (a === b ? 8 : 0)];
  const p3 = [b.x + b.width + 2, by + (a === b ? 8 : 0)];
  return [p0, [right, p0[1]], [right, p3[1]], p3];
}

/**
 * Draws `data` (a graph answer) into `el`. `onNode(node)` runs on a click or Enter on a node;
 * `selected` is the id of a node to outline.
 */
export function drawGraph(el, data, { onNode, selected } = {}) {
  if (!data.nodes.length) {
    mount(el, notice("empty", "No agents, tools or models", "None of the spans read is a node of the graph."));
    return;
  }
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  // Room on the right for edges that loop back.
  const width = data.width + 80;
  const root = svg("svg", { class: "graph-svg", width, height: data.height, viewBox: `0 0 ${width} ${data.height}`, role: "img", "aria-label": "Agent graph" });
  const defs = svg("defs");
  for (const [id, color] of [["graph-arrow", "#8a94a6"], ["graph-arrow-err", ERROR_RED]]) {
    const m = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
    m.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }));
    defs.append(m);
  }
  root.append(defs);
  const edgesG = svg("g", { class: "graph-edges" });
  const labelsG = svg("g", { class: "graph-edge-labels" });
  const nodesG = svg("g", { class: "graph-nodes" });
  root.append(edgesG, nodesG, labelsG);
  mount(el, h("div", { class: "graph-scroll" }, root));

  // Rectangles no edge label may cover: the boxes, then each label placed.
  const taken = data.nodes.map((n) => ({ x: n.x, y: n.y, width: n.width, height: n.height }));
  const hits = (r) => taken.some((t) => r.x < t.x + t.width && t.x < r.x + r.width && r.y < t.y + t.height && t.y < r.y + r.height);
  const maxCalls = Math.max(1, ...data.edges.map((e) => e.calls));
  let lane = 0;
  for (const e of data.edges) {
    const a = byId.get(e.from);
    const b = byId.get(e.to);
    if (!a || !b) continue;
    const forward = b.x > a.x + a.width;
    const pts = edgePath(a, b, forward ? 0 : lane++ % 4);
    const [p0, p1, p2, p3] = pts;
    const err = e.errors > 0;
    const path = svg("path", {
      class: `graph-edge${e.handoff ? " handoff" : ""}${err ? " err" : ""}`,
      d: `M ${p0[0]} ${p0[1]} C ${p1[0]} ${p1[1]}, ${p2[0]} ${p2[1]}, ${p3[0]} ${p3[1]}`,
      fill: "none",
      stroke: err ? ERROR_RED : "#8a94a6",
      "stroke-width": (1.2 + 3.5 * Math.log1p(e.calls) / Math.log1p(maxCalls)).toFixed(2),
      "stroke-dasharray": e.handoff ? "5 4" : null,
      "marker-end": `url(#${err ? "graph-arrow-err" : "graph-arrow"})`,
      "data-from": e.from,
      "data-to": e.to,
    });
    path.append(svg("title", null, `${a.label} → ${b.label}${e.handoff ? " (handoff)" : ""}\n${figuresText(e)}${e.traces > 1 ? `\nin ${f.int(e.traces)} traces` : ""}`));
    edgesG.append(path);
    // The count at the curve's middle, unless it would cover a box or another count.
    const text = `×${f.int(e.calls)}${e.errors ? ` · ${f.int(e.errors)} err` : ""}`;
    const [mx, my] = midpoint(p0, p1, p2, p3);
    const w = text.length * 6.5 + 6;
    const r = { x: mx - w / 2, y: my - 13, width: w, height: 13 };
    if (!hits(r)) {
      taken.push(r);
      labelsG.append(svg("text", { class: `graph-edge-label${err ? " err" : ""}`, x: mx, y: my - 3, "text-anchor": "middle" }, text));
    }
  }
  for (const n of data.nodes) {
    const k = NODE_KINDS[n.kind] || f.kind("span");
    const g = svg("g", { class: `graph-node${n.id === selected ? " selected" : ""}${n.errors ? " err" : ""}`, "data-node-id": n.id, "data-kind": n.kind, tabindex: 0, role: "button" });
    g.append(svg("title", null, `${n.kind} ${n.label}\n${figuresText(n)}${n.traces > 1 ? `\nin ${f.int(n.traces)} traces` : ""}`));
    g.append(svg("rect", { class: "graph-box", x: n.x, y: n.y, width: n.width, height: n.height, rx: 6, fill: "#fff", stroke: n.errors ? ERROR_RED : k.color, "stroke-width": 1.5 }));
    g.append(svg("rect", { x: n.x, y: n.y, width: 4, height: n.height, rx: 2, fill: k.color }));
    const label = svg("text", { class: "graph-label", x: n.x + PAD_X, y: n.y + 16 });
    const figures = svg("text", { class: "graph-figures", x: n.x + PAD_X, y: n.y + 32 });
    g.append(label, figures);
    nodesG.append(g);
    fitText(label, `${k.icon} ${n.label}`, n.width - 2 * PAD_X);
    fitText(figures, figuresText(n, true), n.width - 2 * PAD_X);
    if (onNode) {
      g.addEventListener("click", () => onNode(n));
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          onNode(n);
        }
      });
    }
  }
}

/** The edges as a table, slowest first: the hot edges in text. */
export function edgeTable(data) {
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const rows = [...data.edges].sort((a, b) => b.duration_ms - a.duration_ms);
  return h("table", { class: "grid graph-edges-table" },
    h("thead", null, h("tr", null, ["Caller", "Callee", "Calls", "Time", "Cost", "Errors", "Traces"].map((c) => h("th", null, c)))),
    h("tbody", null, rows.map((e) => h("tr", { class: e.errors ? "err" : "" },
      h("td", null, byId.get(e.from)?.label ?? e.from),
      h("td", null, byId.get(e.to)?.label ?? e.to, e.handoff ? h("span", { class: "badge" }, "handoff") : null),
      h("td", { class: "num" }, f.int(e.calls)),
      h("td", { class: "num" }, f.ms(e.duration_ms)),
      h("td", { class: "num", title: f.costTitle(e.unpriced_span_count) }, f.costText(e.cost_usd, e.unpriced_span_count, (e.input_tokens || 0) + (e.output_tokens || 0))),
      h("td", { class: "num" }, f.int(e.errors)),
      h("td", { class: "num" }, f.int(e.traces))))));
}

/**
 * The trace list's query for a node of a workflow graph: the workflow and range, plus the
 * model (and provider) for a model node, else the node's name as the text search.
 */
export function traceListQuery(node, q) {
  const out = new URLSearchParams();
  for (const k of ["name", "range", "from", "to"]) if (q.get(k)) out.set(k, q.get(k));
  if (node.kind === "model") {
    const cut = node.label.indexOf("/");
    if (cut > 0) {
      out.set("provider", node.label.slice(0, cut));
      out.set("model", node.label.slice(cut + 1));
    } else out.set("model", node.label);
  } else out.set("q", node.label);
  return out;
}

/** `/graph`: the agent graph of one workflow (trace name) over a time range. */
export async function render(app) {
  const q = new URLSearchParams(location.search);
  if (!q.get("range") && !q.get("from") && !q.get("to")) q.set("range", "7d");
  const name = h("input", { type: "text", name: "name", value: q.get("name") || "", placeholder: "workflow (trace name)", list: "graph-names", class: "grow" });
  const names = h("datalist", { id: "graph-names" });
  const range = h("select", { name: "range" }, Object.keys(RANGES).map((r) => h("option", { value: r, selected: q.get("range") === r }, `Last ${r}`)),
    !q.get("range") ? h("option", { value: "", selected: true }, "Custom") : null);
  const form = h("form", { class: "filters", autocomplete: "off" }, h("div", { class: "filter-row" }, name, names, range, h("button", { type: "submit", class: "primary" }, "Show")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (name.value.trim()) next.set("name", name.value.trim());
    if (range.value) next.set("range", range.value);
    else for (const k of ["from", "to"]) if (q.get(k)) next.set(k, q.get(k));
    navigate(`/graph?${next}`);
  });
  const summary = h("div", { class: "muted", id: "graph-summary" });
  const drawing = h("section", { class: "agent-graph", id: "workflow-graph" }, h("div", { class: "loading" }, "Loading graph…"));
  const table = h("div", { class: "graph-table" });
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Agent graph"),
    h("p", { class: "muted" }, "Agents, tools and models of one workflow's traces, summed. Click a node to list its traces.")),
  form, summary, drawing, table);
  // Workflow names to choose from: those of recent traces.
  get("traces", { limit: 200 }).then((page) => {
    for (const n of [...new Set(page.items.map((t) => t.name))].sort()) names.append(h("option", { value: n }));
  }).catch(() => {});
  const params = { name: q.get("name") || undefined, from: q.get("from") || undefined, to: q.get("to") || undefined };
  if (RANGES[q.get("range")]) params.from = new Date(Date.now() - RANGES[q.get("range")]).toISOString();
  for (const k of ["from", "to"]) if (params[k] && !/Z$|[+-]\d\d:\d\d$/.test(params[k])) params[k] = new Date(params[k]).toISOString();
  let data;
  try {
    data = await get("graph", params);
  } catch (e) {
    mount(drawing, notice("error", "Could not load the graph", e.message));
    return;
  }
  mount(summary, `${f.int(data.used_traces)} trace${data.used_traces === 1 ? "" : "s"} read of ${f.int(data.matched_traces)} matching`,
    data.matched_traces > data.used_traces ? ` (the most recent ${f.int(data.trace_cap)})` : "",
    data.name ? [" · workflow ", h("b", null, data.name)] : " · every workflow",
    " · ", link(`/?${new URLSearchParams([...q].filter(([k]) => ["name", "range", "from", "to"].includes(k)))}`, "list these traces"));
  drawGraph(drawing, data, { onNode: (n) => navigate(`/?${traceListQuery(n, q)}`) });
  if (data.edges.length) mount(table, h("h2", null, "Calls"), edgeTable(data));
}
