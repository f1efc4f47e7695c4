// Trace page (`/traces/{id}`): a virtualised waterfall. Only the payload-free tree is fetched
// (`/tree`), only the rows in view are in the DOM, and a span's full record is fetched when
// it is opened, so a 10,000-span trace paints as fast as a small one.

import { get, url } from "./api.js";
import { h, mount, notice, idChip, link, fitPlaceholders } from "./dom.js";
import * as f from "./format.js";
import { statusBadge } from "./traces.js";
import { renderSpanPanel } from "./span.js";
import { fillScores } from "./scores.js";
import { drawGraph, edgeTable } from "./graph.js";
import { whatIfPanel } from "./whatif.js";

const ROW_H = 26;
const OVERSCAN = 12;
/** Font of the model, tokens and cost cells (as in app.css), to size their columns. */
const META_FONT_PX = 11;
/** Horizontal padding of a meta cell, both sides together. */
const META_PAD = 14;
/** Widest a model column gets; a longer model name ends in "…" with the full name as title. */
const MODEL_MAX = 240;
/** Room per time label on the axis, in px: decides how many ticks it gets. */
const AXIS_LABEL_PX = 70;

export async function render(app, traceId) {
  mount(app, h("div", { class: "loading" }, "Loading trace…"));
  let data;
  try {
    // Columns (names sent once, parents as row numbers): a 100,000-span tree parses in tens of ms.
    data = await get(`traces/${encodeURIComponent(traceId)}/tree`, { format: "columns" });
    phase("fetched");
    if (!data.spans) data.spans = nodesFromColumns(data);
    phase("nodes");
  } catch (e) {
    mount(app, notice(e.status === 404 ? "empty" : "error", e.status === 404 ? "Trace not found" : "Could not load the trace", e.message),
      h("p", null, link("/", "← Back to traces")));
    return;
  }
  return new Waterfall(app, traceId, data).cleanup;
}

class Waterfall {
  constructor(app, traceId, data) {
    this.traceId = traceId;
    this.trace = data.trace;
    this.nodes = data.spans;
    // Critical path, overhead and parallelism from the server's analysis (absent on old servers).
    this.analysis = data.analysis || null;
    this.showCritical = true;
    this.byId = new Map();
    this.collapsed = new Set();
    this.matches = [];
    this.matchSet = new Set();
    this.matchPos = -1;
    this.selected = null;
    // The graph node whose spans alone the waterfall shows (null: every span).
    this.filter = null;
    // Repeated siblings folded into one row each (the "Group repeated siblings" toggle) and
    // which of those rows are opened.
    this.grouping = false;
    this.openGroups = new Set();
    this.buildTree();
    phase("tree");
    this.total = this.trace.duration_ms || 0;
    for (const end of this.ends()) if (end > this.total) this.total = end;
    this.total ||= 1;
    this.meta = this.metaColumns();
    this.layout(app);
    fillScores(this.scoresEl, { trace_id: this.trace.trace_id });
    this.flatten();
    this.draw();
    phase("drawn");
    markFirstPaint(this.nodes.length);
    const wanted = new URLSearchParams(location.search).get("span");
    if (wanted && this.byId.has(wanted)) this.select(wanted, true, true);
    this.onKey = (e) => this.key(e);
    this.scroller.addEventListener("keydown", this.onKey);
    this.scroller.focus({ preventScroll: true });
    this.cleanup = () => {};
  }

  *ends() {
    for (const n of this.nodes) yield n.start_ms + (n.duration_ms || 0);
  }

  /** Children lists in start order; spans whose parent is missing become roots. */
  buildTree() {
    for (const n of this.nodes) {
      n.children = [];
      this.byId.set(n.span_id, n);
    }
    this.roots = [];
    for (const n of this.nodes) {
      // The columnar answer names the parent's row; the row format its id.
      const p = n.parentRow !== undefined ? (n.parentRow >= 0 ? this.nodes[n.parentRow] : null) : n.parent_span_id && this.byId.get(n.parent_span_id);
      if (p && p !== n) p.children.push(n);
      else this.roots.push(n);
    }
    // Depth and error-in-subtree by an explicit stack (deep agent loops must not blow the JS stack).
    // (No [node, depth] pair per span: a child's depth is set as it is pushed.)
    for (const r of this.roots) r.depth = 0;
    const stack = [...this.roots];
    const order = [];
    while (stack.length) {
      const n = stack.pop();
      order.push(n);
      for (let i = n.children.length - 1; i >= 0; i--) {
        const c = n.children[i];
        c.depth = n.depth + 1;
        stack.push(c);
      }
    }
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i];
      n.childErrors = n.children.some((c) => c.error || c.childErrors);
      // Counted once here: a collapsed row's "+N" must not walk its subtree on every draw.
      n.descendants = 0;
      for (const c of n.children) n.descendants += 1 + c.descendants;
    }
    this.errors = order.filter((n) => n.error).sort((a, b) => a.start_ms - b.start_ms);
  }

  /**
   * The model, tokens and cost columns this trace needs, each as wide as its widest text
   * (measured once on a canvas, so the rows never measure anything): none of those figures
   * is ever cut, whatever the name column is left with.
   */
  metaColumns() {
    const models = new Set();
    let maxTokens = -1;
    const costValues = new Set();
    let unpriced = false;
    for (const n of this.nodes) {
      if (n.model) models.add(n.model);
      const t = tokensOf(n);
      if (t != null && t > maxTokens) maxTokens = t;
      // Each distinct cost formatted once (100,000 rows share far fewer prices).
      if (n.cost_usd) costValues.add(n.cost_usd);
      else if (n.unpriced) unpriced = true;
    }
    const costs = new Set([...costValues].map((c) => f.usd(c)));
    if (unpriced) costs.add("unpriced");
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = `${META_FONT_PX}px ${getComputedStyle(document.body).fontFamily}`;
    const widest = (texts) => Math.max(0, ...[...texts].map((x) => ctx.measureText(x).width));
    const px = (texts, label, max = Infinity) => texts.size || texts.length
      ? Math.ceil(Math.min(max, Math.max(widest(texts), widest([label])))) + META_PAD
      : 0;
    return {
      model: px(models, "Model", MODEL_MAX),
      tokens: maxTokens >= 0 ? px([`${f.int(maxTokens)} tok`], "Tokens") : 0,
      cost: px(costs, "Cost"),
    };
  }

  /** The grid columns of the header and of every row: name, the meta columns, the bars. */
  columns() {
    const m = this.meta;
    const fixed = [m.model, m.tokens, m.cost].filter((w) => w > 0).map((w) => `${w}px`);
    return ["minmax(150px, 1fr)", ...fixed, "minmax(200px, 1.2fr)"].join(" ");
  }

  /**
   * The visible rows: a pre-order walk that skips collapsed subtrees; with a graph node's
   * filter, only that node's spans, in the same order, whatever is collapsed.
   */
  flatten() {
    const out = [];
    const only = this.filter?.ids;
    // Grouped: repeated siblings are one row each (not while a graph node filters the rows).
    const grouping = this.grouping && !only;
    // Extra indent of a row shown inside an opened group (and of everything under it).
    const indent = [];
    const stack = [];
    const pushAll = (list, extra) => { for (let i = list.length - 1; i >= 0; i--) stack.push(list[i], extra); };
    pushAll(grouping ? this.groupedChildren(null) : this.roots, 0);
    while (stack.length) {
      const extra = stack.pop();
      const n = stack.pop();
      if (!only || only.has(n.span_id)) {
        out.push(n);
        indent.push(extra);
      }
      if (n.group) {
        if (this.openGroups.has(n.span_id)) pushAll(n.members, extra + 1);
      } else if (only || !this.collapsed.has(n.span_id)) {
        pushAll(grouping ? this.groupedChildren(n) : n.children, extra);
      }
    }
    this.rows = out;
    this.indent = indent;
    this.rowIndex = new Map();
    for (let i = 0; i < out.length; i++) this.rowIndex.set(out[i].span_id, i);
    this.spacer.style.height = `${out.length * ROW_H}px`;
    this.spacer.dataset.rows = String(out.length);
    this.visibleCount.textContent = out.length === this.nodes.length ? "" : `${f.int(out.length)} shown`;
  }

  layout(app) {
    const t = this.trace;
    const kinds = [...new Set(this.nodes.map((n) => n.kind))];
    // The earliest failed span, named in the header so the cause shows without a click.
    const firstError = this.errors[0];
    this.search = h("input", { type: "search", class: "grow", placeholder: "Search spans by name, kind, model or id  (Enter: next match)" });
    this.matchInfo = h("span", { class: "muted match-info" });
    this.visibleCount = h("span", { class: "muted" });
    this.spacer = h("div", { class: "wf-spacer" });
    this.rowsEl = h("div", { class: "wf-rows" });
    this.scroller = h("div", { class: "wf-scroll", tabindex: "0", role: "tree", "aria-label": "Span tree; arrows move, left/right collapse/expand, Enter opens" }, this.spacer, this.rowsEl);
    this.panel = h("aside", { class: "panel" }, notice("empty", "No span selected", "Click a row, or use ↑ ↓ and Enter."));
    this.search.addEventListener("input", () => this.find(this.search.value));
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this.nextMatch(e.shiftKey ? -1 : 1);
      } else if (e.key === "Escape") {
        this.search.value = "";
        this.find("");
        this.scroller.focus();
      }
    });
    this.scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.resize = new ResizeObserver(() => {
      this.fitAxis();
      this.schedule();
    });
    this.resize.observe(this.scroller);
    this.rowsEl.addEventListener("click", (e) => {
      const row = e.target.closest(".wf-row");
      if (!row) return;
      const id = row.dataset.spanId;
      if (e.target.closest(".caret")) this.toggle(id);
      else this.select(id, true);
    });
    mount(app,
      h("div", { class: "page-head trace-head" },
        h("div", null,
          h("div", { class: "crumbs" }, link("/", "Traces"), " / ", t.session_id ? [link(`/sessions/${encodeURIComponent(t.session_id)}`, `session ${t.session_id}`), " / "] : null, "trace"),
          h("h1", null, t.name || "(unnamed)", " ", statusBadge(t.status === "error" ? "failed" : t.status, t.status),
            t.status !== "error" && t.error_count > 0
              ? h("span", { class: "status recovered", id: "trace-recovered", title: "spans failed, the trace went on and did not fail" }, `${f.int(t.error_count)} recovered error${t.error_count === 1 ? "" : "s"}`)
              : null),
          h("div", { class: "meta" }, "trace ", idChip(t.trace_id), " · ", f.time(t.start_time),
            t.user_id ? [" · user ", h("b", null, t.user_id)] : null, t.service ? [" · ", t.service] : null,
            t.tags?.length ? h("span", { class: "tags" }, t.tags.map((x) => h("span", { class: "tag" }, x))) : null,
            " · ", link(`/graph?name=${encodeURIComponent(t.name)}`, "workflow graph")),
          firstError ? h("div", { class: "first-error", id: "trace-first-error" }, t.status === "error" ? "first error: " : "first error (recovered): ",
            h("a", { href: "#", onclick: (e) => { e.preventDefault(); this.select(firstError.span_id, true); } }, firstError.name),
            ` — ${firstError.error_message || "error"}`) : null,
          this.scoresEl = h("div", { class: "score-chips", id: "trace-scores" })),
        h("div", { class: "stats" },
          stat("Duration", f.ms(t.duration_ms)),
          stat("Spans", f.int(t.span_count), "span-count"),
          stat("Errors", f.int(t.error_count)),
          stat("Tokens", f.int(t.total_tokens), null, `${f.int(t.input_tokens)} in / ${f.int(t.output_tokens)} out`),
          stat("Cost", f.costText(t.total_cost_usd, t.unpriced_span_count, t.total_tokens), "trace-cost", f.costTitle(t.unpriced_span_count)),
          this.analysis ? stat("Critical path", f.ms(this.analysis.critical_path_ms), "trace-critical", `${f.int(this.analysis.critical_path.length)} spans set the end-to-end latency`) : null,
          this.analysis ? stat("Overhead", f.ms(this.analysis.coordination_overhead_ms), "trace-overhead", "coordination overhead: time parents spent with no child running") : null,
          this.analysis ? stat("Parallelism", this.analysis.parallelism_efficiency != null ? `${this.analysis.parallelism_efficiency.toFixed(2)}×` : "–", "trace-parallelism", `child work per unit of child wall time (1× = sequential); ${f.int(this.analysis.parallel_groups)} parallel group${this.analysis.parallel_groups === 1 ? "" : "s"}`) : null,
          h("button", { type: "button", id: "whatif-open", title: "Price this trace's model calls as another model", onclick: () => { this.whatifEl.hidden = !this.whatifEl.hidden; } }, "What if…"),
          h("a", { class: "button", id: "compare-previous", href: `/compare?a=${encodeURIComponent(t.trace_id)}&b=previous`, "data-link": true, title: "Align this trace with the run before it of the same workflow" }, "Compare with previous run"),
          h("a", { class: "button", href: url(`traces/${encodeURIComponent(t.trace_id)}/export`), download: `trace-${t.trace_id}.json` }, "Export JSON"))),
      h("div", { class: "toolbar" }, this.search, this.matchInfo,
        h("button", { type: "button", onclick: () => this.nextMatch(-1), title: "Previous match (Shift+Enter)" }, "↑"),
        h("button", { type: "button", onclick: () => this.nextMatch(1), title: "Next match (Enter)" }, "↓"),
        h("button", { type: "button", onclick: () => this.nextError(), class: "err-button" }, "Next error"),
        h("button", { type: "button", onclick: () => this.setAll(false) }, "Expand all"),
        h("button", { type: "button", onclick: () => this.setAll(true) }, "Collapse all"),
        this.analysis ? this.criticalToggle() : null,
        this.graphToggle(),
        this.groupToggle(),
        this.visibleCount),
      h("div", { class: "legend" }, kinds.map((k) => h("span", { class: "legend-item" }, h("i", { style: { background: f.kind(k).color } }), `${f.kind(k).icon} ${k}`))),
      this.graphEl = h("section", { class: "agent-graph", id: "trace-graph", hidden: true }),
      this.whatifEl = whatIfPanel(t.trace_id, (id) => this.select(id, true)),
      h("div", { class: "split" },
        this.section = h("section", { class: `waterfall ${this.analysis ? "show-critical" : ""}`, dataset: { spanCount: String(this.nodes.length) } },
          h("div", { class: "wf-head" }, h("div", { class: "wf-label" }, `${f.int(this.nodes.length)} spans`),
            this.meta.model ? h("div", { class: "wf-col" }, "Model") : null,
            this.meta.tokens ? h("div", { class: "wf-col" }, "Tokens") : null,
            this.meta.cost ? h("div", { class: "wf-col" }, "Cost") : null,
            this.axisEl = this.axis()),
          this.scroller),
        this.panel));
    // Through the CSSOM, which the Content-Security-Policy allows (a style attribute it would not).
    this.section.style.setProperty("--wf-cols", this.columns());
    fitPlaceholders(this.search.parentElement);
  }

  /** The "Critical path" toggle: outlines the rows whose spans set the end-to-end latency. */
  criticalToggle() {
    const b = h("button", { type: "button", class: "on critical-toggle", "aria-pressed": "true", title: "Highlight the chain of spans that determines end-to-end latency" }, "◆ Critical path");
    b.addEventListener("click", () => {
      this.showCritical = !this.showCritical;
      b.classList.toggle("on", this.showCritical);
      b.setAttribute("aria-pressed", String(this.showCritical));
      this.scroller.closest(".waterfall")?.classList.toggle("show-critical", this.showCritical);
    });
    return b;
  }

  /** The "Graph" toggle: shows the trace's agent graph above the waterfall. */
  graphToggle() {
    const b = h("button", { type: "button", id: "graph-toggle", "aria-pressed": "false", title: "Agents, tools and models of this trace and their calls; click a node to filter the waterfall" }, "⎇ Graph");
    b.addEventListener("click", async () => {
      const show = this.graphEl.hidden;
      this.graphEl.hidden = !show;
      b.classList.toggle("on", show);
      b.setAttribute("aria-pressed", String(show));
      if (show && !this.graph) await this.loadGraph();
    });
    return b;
  }

  async loadGraph() {
    mount(this.graphEl, h("div", { class: "loading" }, "Loading graph…"));
    try {
      this.graph = await get(`traces/${encodeURIComponent(this.traceId)}/graph`);
    } catch (e) {
      mount(this.graphEl, notice("error", "Could not load the graph", e.message));
      return;
    }
    this.drawGraph();
  }

  drawGraph() {
    this.filterBar = h("div", { class: "graph-filter", id: "graph-filter" });
    this.graphDrawing = h("div");
    mount(this.graphEl, this.filterBar, this.graphDrawing, h("details", { class: "graph-table" }, h("summary", null, "Calls"), edgeTable(this.graph)));
    this.redrawGraph();
  }

  redrawGraph() {
    drawGraph(this.graphDrawing, this.graph, { selected: this.filter?.node.id, onNode: (n) => this.filterTo(this.filter?.node.id === n.id ? null : n) });
    mount(this.filterBar, this.filter
      ? [`Waterfall shows the ${f.int(this.filter.ids.size)} span${this.filter.ids.size === 1 ? "" : "s"} of ${this.filter.node.kind} `, h("b", null, this.filter.node.label), " ",
        h("button", { type: "button", id: "graph-clear", onclick: () => this.filterTo(null) }, "Clear filter")]
      : h("span", { class: "muted" }, "Click a node to show only its spans in the waterfall."));
  }

  /** Shows only `node`'s spans in the waterfall (every span when null). */
  filterTo(node) {
    this.filter = node ? { node, ids: new Set(node.span_ids || []) } : null;
    this.section.classList.toggle("filtered", !!node);
    this.flatten();
    if (this.selected && !this.rowIndex.has(this.selected)) this.selected = null;
    this.scroller.scrollTop = 0;
    this.draw();
    this.redrawGraph();
  }

  /** The time axis; its ticks are laid out by fitAxis once its width is known. */
  axis() {
    return h("div", { class: "wf-axis" });
  }

  /**
   * Time ticks on a 1-2-5 step over the trace duration, about one per AXIS_LABEL_PX of axis
   * (at most 6). A label that would still touch the one before it (the last one hangs
   * leftwards, towards its neighbour) is hidden and its tick line stays. Runs once laid out
   * and whenever the waterfall changes width.
   */
  fitAxis() {
    const width = this.axisEl.clientWidth;
    if (!width || width === this.axisWidth) return;
    this.axisWidth = width;
    const target = this.total / Math.max(2, Math.min(6, Math.floor(width / AXIS_LABEL_PX)));
    const p = 10 ** Math.floor(Math.log10(target));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= target) || p * 10;
    const ticks = [];
    for (let i = 0; i * step <= this.total + 1e-9; i++) {
      const v = i * step;
      const at = (v / this.total) * 100;
      // Labels near the right edge hang leftwards so they stay inside the axis.
      ticks.push(h("span", { class: `tick ${at > 88 ? "end" : ""}`, style: { left: `${at}%` } }, h("span", { class: "tick-label" }, f.ms(v))));
    }
    mount(this.axisEl, ticks);
    let right = -Infinity;
    for (const label of this.axisEl.querySelectorAll(".tick-label")) {
      const box = label.getBoundingClientRect();
      if (box.left < right + 6) label.hidden = true;
      else right = box.right;
    }
  }

  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.draw();
    });
  }

  /** Renders only the rows inside the viewport (plus a small overscan). */
  draw() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.append(this.rows[i].group ? this.groupRow(this.rows[i], i) : this.row(this.rows[i], i));
    this.rowsEl.replaceChildren(frag);
  }

  row(n, i) {
    const k = f.kind(n.kind);
    const hasKids = n.children.length > 0;
    const collapsed = this.collapsed.has(n.span_id);
    const left = (n.start_ms / this.total) * 100;
    const width = Math.max(((n.duration_ms || 0) / this.total) * 100, 0.15);
    const cls = ["wf-row"];
    if (n.error) cls.push("err");
    else if (collapsed && n.childErrors) cls.push("child-err");
    if (this.selected === n.span_id) cls.push("selected");
    if (this.matchSet.has(n.span_id)) cls.push("match");
    if (n.critical) cls.push("critical");
    const tokens = tokensOf(n);
    return h("div", { class: cls.join(" "), style: { transform: `translateY(${i * ROW_H}px)` }, dataset: { spanId: n.span_id, kind: n.kind }, role: "treeitem", "aria-expanded": hasKids ? String(!collapsed) : undefined, "aria-level": String(n.depth + 1) },
      h("div", { class: "wf-label", style: { paddingLeft: `${6 + Math.min(n.depth + (this.indent[i] || 0), 40) * 14}px` }, title: n.error ? `${n.name}\n${n.error_message || "error"}` : n.name },
        h("span", { class: `caret ${hasKids ? "" : "leaf"}` }, hasKids ? (collapsed ? "▸" : "▾") : ""),
        h("span", { class: "kicon", style: { color: k.color }, title: n.kind }, k.icon),
        n.critical ? h("span", { class: "crit-mark", title: "on the critical path" }, "◆") : null,
        h("span", { class: "sname" }, n.name),
        collapsed && hasKids ? h("span", { class: "badge" }, `+${f.int(n.descendants)}`) : null,
        n.error ? h("span", { class: "badge err", title: n.error_message || "error" }, "error") : null,
        n.duplicate_of ? h("span", { class: "badge dup", dataset: { duplicateOf: n.duplicate_of }, title: "Recorded by two instrumentations: its tokens and cost are counted once, on the other span" }, `same call as ${this.byId.get(n.duplicate_of)?.name ?? n.duplicate_of}`) : null),
      this.meta.model ? h("div", { class: "wf-col wf-model", title: n.model || undefined }, n.model || "") : null,
      this.meta.tokens ? h("div", { class: "wf-col wf-tokens", title: tokens != null ? `${f.int(n.input_tokens)} in / ${f.int(n.output_tokens || 0)} out` : undefined }, tokens != null ? `${f.int(tokens)} tok` : "") : null,
      this.meta.cost ? h("div", { class: `wf-col wf-cost${!n.cost_usd && n.unpriced ? " unpriced" : ""}`, title: !n.cost_usd && n.unpriced ? f.costTitle(1, n.model) : undefined }, costText(n)) : null,
      h("div", { class: "wf-track", title: `starts +${f.ms(n.start_ms)} · takes ${f.ms(n.duration_ms)}${n.self_ms != null ? ` · self ${f.ms(n.self_ms)}` : ""}${n.critical ? " · critical path" : ""}` },
        h("div", { class: "wf-bar", style: { left: `${left}%`, width: `${width}%`, background: n.error ? "#d93025" : k.color } }),
        h("span", durationLabel(left, width), f.ms(n.duration_ms))));
  }

  toggle(id) {
    if (this.byId.get(id)?.group) {
      if (!this.openGroups.delete(id)) this.openGroups.add(id);
    } else if (this.collapsed.has(id)) this.collapsed.delete(id);
    else if (this.byId.get(id)?.children.length) this.collapsed.add(id);
    this.flatten();
    this.draw();
  }

  setAll(collapse) {
    this.collapsed.clear();
    if (collapse) for (const n of this.nodes) if (n.children.length && n.depth >= 1) this.collapsed.add(n.span_id);
    this.flatten();
    if (this.selected && !this.rowIndex.has(this.selected)) this.selected = null;
    this.draw();
  }

  /** Expands every ancestor of `id` so its row is visible. */
  reveal(id) {
    let changed = false;
    for (let n = this.byId.get(id); n; ) {
      const p = n.parent_span_id ? this.byId.get(n.parent_span_id) : null;
      if (this.grouping && !this.filter && !n.group) {
        // A span folded into a group: open the group (the parent's groups are made on demand).
        this.groupedChildren(p || null);
        if (n.groupKey && !this.openGroups.has(n.groupKey)) {
          this.openGroups.add(n.groupKey);
          changed = true;
        }
      }
      if (!p) break;
      if (this.collapsed.delete(p.span_id)) changed = true;
      n = p;
    }
    if (changed) this.flatten();
  }

  select(id, open = false, center = false) {
    if (this.filter && !this.filter.ids.has(id)) this.filterTo(null);
    this.reveal(id);
    this.selected = id;
    const i = this.rowIndex.get(id);
    const top = i * ROW_H;
    const view = this.scroller;
    if (center) view.scrollTop = Math.max(0, top - view.clientHeight / 2);
    else if (top < view.scrollTop) view.scrollTop = top;
    else if (top + ROW_H > view.scrollTop + view.clientHeight) view.scrollTop = top + ROW_H - view.clientHeight;
    this.draw();
    if (open && !this.byId.get(id)?.group) this.open(id);
  }

  open(id) {
    const q = new URLSearchParams(location.search);
    q.set("span", id);
    history.replaceState(null, "", `${location.pathname}?${q}`);
    renderSpanPanel(this.panel, this.trace, this.byId.get(id), {
      nameOf: (other) => this.byId.get(other)?.name,
      jump: (other) => {
        if (this.byId.has(other)) this.select(other, true, true);
      },
    });
  }

  key(e) {
    if (!this.rows.length) return;
    let i = this.selected != null ? this.rowIndex.get(this.selected) ?? 0 : -1;
    const n = i >= 0 ? this.rows[i] : null;
    switch (e.key) {
      case "ArrowDown": i = Math.min(this.rows.length - 1, i + 1); break;
      case "ArrowUp": i = Math.max(0, i - 1); break;
      case "PageDown": i = Math.min(this.rows.length - 1, i + Math.floor(this.scroller.clientHeight / ROW_H)); break;
      case "PageUp": i = Math.max(0, i - Math.floor(this.scroller.clientHeight / ROW_H)); break;
      case "Home": i = 0; break;
      case "End": i = this.rows.length - 1; break;
      case "ArrowRight":
        if (!n) break;
        if (this.hasKids(n) && this.isCollapsed(n)) {
          this.toggle(n.span_id);
        } else if (this.hasKids(n)) i += 1;
        break;
      case "ArrowLeft": {
        if (!n) break;
        // A span shown inside an opened group goes up to the group's row.
        const up = n.groupKey && this.rowIndex.has(n.groupKey) ? n.groupKey : n.parent_span_id;
        if (this.hasKids(n) && !this.isCollapsed(n)) {
          this.toggle(n.span_id);
        } else if (up && this.rowIndex.has(up)) i = this.rowIndex.get(up);
        break;
      }
      case "Enter":
        if (n?.group) this.toggle(n.span_id);
        else if (n) this.open(n.span_id);
        e.preventDefault();
        return;
      case "/":
        this.search.focus();
        e.preventDefault();
        return;
      default:
        return;
    }
    e.preventDefault();
    if (i >= 0) this.select(this.rows[i].span_id);
  }

  find(term) {
    const t = term.trim().toLowerCase();
    const matches = [];
    if (t) {
      // Names and models repeat: each distinct one is lower-cased and tested once per search.
      const hit = new Map();
      const has = (s) => {
        let r = hit.get(s);
        if (r === undefined) hit.set(s, (r = s.toLowerCase().includes(t)));
        return r;
      };
      for (const n of this.nodes) if (has(n.name) || n.kind === t || (n.model && has(n.model)) || n.span_id.startsWith(t)) matches.push(n.span_id);
    }
    this.matches = matches;
    this.matchSet = new Set(this.matches);
    this.matchPos = -1;
    this.matchInfo.textContent = t ? `${f.int(this.matches.length)} match${this.matches.length === 1 ? "" : "es"}` : "";
    this.draw();
  }

  nextMatch(dir) {
    if (!this.matches.length) return;
    this.matchPos = (this.matchPos + dir + this.matches.length) % this.matches.length;
    this.matchInfo.textContent = `${this.matchPos + 1} of ${f.int(this.matches.length)}`;
    this.select(this.matches[this.matchPos], false, true);
  }

  nextError() {
    const errs = this.errors;
    if (!errs.length) {
      this.matchInfo.textContent = "no errors in this trace";
      return;
    }
    const cur = errs.findIndex((n) => n.span_id === this.selected);
    this.select(errs[(cur + 1) % errs.length].span_id, true, true);
  }

  hasKids(n) {
    return n.group ? true : n.children.length > 0;
  }

  isCollapsed(n) {
    return n.group ? !this.openGroups.has(n.span_id) : this.collapsed.has(n.span_id);
  }

  /** The "Group repeated siblings" toggle: same-named siblings become one row "name ×N". */
  groupToggle() {
    const b = h("button", { type: "button", id: "group-toggle", "aria-pressed": "false", title: "Fold siblings with the same name into one row with their count and summed time, tokens and cost" }, "⧉ Group repeated siblings");
    b.addEventListener("click", () => {
      this.grouping = !this.grouping;
      b.classList.toggle("on", this.grouping);
      b.setAttribute("aria-pressed", String(this.grouping));
      this.flatten();
      if (this.selected && !this.rowIndex.has(this.selected)) this.selected = null;
      this.draw();
    });
    return b;
  }

  /**
   * The children of `parent` (the roots when null) with every name that occurs more than
   * once among them folded into one group row at its first occurrence. Made once per parent,
   * when first shown; each grouped span remembers its group (`groupKey`).
   */
  groupedChildren(parent) {
    const holder = parent || this;
    if (holder.grouped) return holder.grouped;
    const list = parent ? parent.children : this.roots;
    const byName = new Map();
    for (const c of list) byName.set(c.name, (byName.get(c.name) || 0) + 1);
    const out = [];
    const groups = new Map();
    for (const c of list) {
      if (byName.get(c.name) < 2) {
        out.push(c);
        continue;
      }
      let g = groups.get(c.name);
      if (!g) {
        g = newGroup(parent, c);
        groups.set(c.name, g);
        this.byId.set(g.span_id, g);
        out.push(g);
      }
      addToGroup(g, c);
    }
    holder.grouped = out;
    return out;
  }

  /** A group's row: "name ×N", the span of time its members cover, their summed duration, tokens and cost. */
  groupRow(g, i) {
    const k = f.kind(g.kind);
    const open = this.openGroups.has(g.span_id);
    const left = (g.start_ms / this.total) * 100;
    const width = Math.max(((g.end_ms - g.start_ms) / this.total) * 100, 0.15);
    const cls = ["wf-row", "wf-group"];
    if (!open && g.error) cls.push("child-err");
    if (this.selected === g.span_id) cls.push("selected");
    const tokens = tokensOf(g);
    const count = g.members.length;
    return h("div", { class: cls.join(" "), style: { transform: `translateY(${i * ROW_H}px)` }, dataset: { spanId: g.span_id, groupCount: String(count), sumMs: String(g.duration_ms), kind: g.kind }, role: "treeitem", "aria-expanded": String(open), "aria-level": String(g.depth + 1) },
      h("div", { class: "wf-label", style: { paddingLeft: `${6 + Math.min(g.depth + (this.indent[i] || 0), 40) * 14}px` }, title: `${count} spans named ${g.name}; summed time ${f.ms(g.duration_ms)}` },
        h("span", { class: "caret" }, open ? "▾" : "▸"),
        h("span", { class: "kicon", style: { color: k.color }, title: g.kind }, k.icon),
        h("span", { class: "sname" }, g.name),
        h("span", { class: "badge group-count" }, `×${f.int(count)}`),
        g.errors ? h("span", { class: "badge err", title: `${f.int(g.errors)} of them failed` }, `${f.int(g.errors)} error${g.errors === 1 ? "" : "s"}`) : null),
      this.meta.model ? h("div", { class: "wf-col wf-model", title: g.model || undefined }, g.model || "") : null,
      this.meta.tokens ? h("div", { class: "wf-col wf-tokens", title: tokens != null ? `${f.int(g.input_tokens)} in / ${f.int(g.output_tokens || 0)} out, summed` : undefined }, tokens != null ? `${f.int(tokens)} tok` : "") : null,
      this.meta.cost ? h("div", { class: `wf-col wf-cost${!g.cost_usd && g.unpriced ? " unpriced" : ""}`, title: "summed" }, costText(g)) : null,
      h("div", { class: "wf-track", title: `${count} spans from +${f.ms(g.start_ms)} to +${f.ms(g.end_ms)} · summed time ${f.ms(g.duration_ms)}` },
        h("div", { class: "wf-bar wf-group-bar", style: { left: `${left}%`, width: `${width}%`, backgroundColor: k.color } }),
        h("span", durationLabel(left, width), `Σ ${f.ms(g.duration_ms)}`)));
  }
}

/** An empty group of `parent`'s children named like `first`. */
function newGroup(parent, first) {
  return {
    group: true,
    // Not a hex span id, so it never meets one in the maps of rows.
    span_id: `group:${parent ? parent.span_id : ""}:${first.name}`,
    parent_span_id: parent ? parent.span_id : null,
    name: first.name,
    kind: first.kind,
    depth: first.depth,
    members: [],
    children: [],
    start_ms: Infinity,
    end_ms: -Infinity,
    duration_ms: 0,
    input_tokens: null,
    output_tokens: null,
    cost_usd: 0,
    unpriced: false,
    errors: 0,
    error: false,
    model: first.model || null,
  };
}

/** Adds span `c` to group `g`: its count, time covered, summed duration, tokens and cost. */
function addToGroup(g, c) {
  g.members.push(c);
  c.groupKey = g.span_id;
  g.start_ms = Math.min(g.start_ms, c.start_ms);
  g.end_ms = Math.max(g.end_ms, c.start_ms + (c.duration_ms || 0));
  g.duration_ms += c.duration_ms || 0;
  if (c.input_tokens != null) {
    g.input_tokens = (g.input_tokens || 0) + c.input_tokens;
    g.output_tokens = (g.output_tokens || 0) + (c.output_tokens || 0);
  }
  if (c.cost_usd) g.cost_usd += c.cost_usd;
  if (c.unpriced) g.unpriced = true;
  if (c.error || c.childErrors) g.error = true;
  if (c.error) g.errors++;
  if (g.model !== (c.model || null)) g.model = g.members.length === 1 ? c.model : null;
}

/**
 * Row objects from the columnar `/tree?format=columns` answer: entry `i` of every column is
 * row `i`; names, models, kinds and statuses are indexes into their lists.
 */
export function nodesFromColumns(d) {
  const out = new Array(d.count);
  const ids = d.span_id;
  const errs = d.error_message || {};
  const dups = d.duplicate_of || {};
  const missing = d.missing_parent || {};
  for (let i = 0; i < d.count; i++) {
    const p = d.parent[i];
    const m = d.model[i];
    const fl = d.flags[i];
    out[i] = {
      span_id: ids[i],
      parent_span_id: p >= 0 ? ids[p] : missing[i] ?? null,
      parentRow: p,
      name: d.names[d.name[i]],
      kind: d.kinds[d.kind[i]],
      status: d.statuses[d.status[i]],
      start_ms: d.start_ms[i],
      duration_ms: d.duration_ms[i],
      self_ms: d.self_ms[i],
      model: m >= 0 ? d.models[m] : null,
      input_tokens: d.input_tokens[i],
      output_tokens: d.output_tokens[i],
      cost_usd: d.cost_usd[i],
      unpriced: (fl & 2) !== 0,
      error: (fl & 1) !== 0,
      critical: (fl & 4) !== 0,
      unclosed: (fl & 8) !== 0,
      error_message: errs[i],
      duplicate_of: dups[i],
    };
  }
  return out;
}

/** Time of a step of opening the trace (ms since navigation start), for the browser test. */
function phase(name) {
  (window.__spanlensTracePhases ||= {})[name] = performance.now();
}

/** Puts a bar's duration after it, or inside it / before it when the bar reaches the right edge. */
function durationLabel(left, width) {
  if (left + width < 85) return { class: "wf-dur", style: { left: `calc(${left + width}% + 4px)` } };
  if (width > 12) return { class: "wf-dur inside", style: { right: `calc(${100 - left - width}% + 4px)` } };
  return { class: "wf-dur", style: { right: `calc(${100 - left}% + 4px)` } };
}

/** A span's input plus output tokens, or null when it reported none. */
function tokensOf(n) {
  return n.input_tokens != null ? n.input_tokens + (n.output_tokens || 0) : null;
}

/** A span's cost cell: its price, "unpriced" for a model call without one, else empty. */
function costText(n) {
  return n.cost_usd ? f.usd(n.cost_usd) : n.unpriced ? "unpriced" : "";
}

function stat(label, value, id, title) {
  return h("div", { class: "stat", title, id }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value));
}

/**
 * Records when the first waterfall rows were painted (ms since navigation start) for the
 * browser test and for anyone curious: `window.__spanlensFirstPaint`, `body[data-first-paint-ms]`.
 * The second animation frame runs after the first frame with the rows was presented.
 */
function markFirstPaint(spanCount) {
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      const t = performance.now();
      window.__spanlensFirstPaint = t;
      document.body.dataset.firstPaintMs = t.toFixed(0);
      performance.mark("spanlens-first-rows", { detail: { spanCount } });
    }));
}
