// Two traces side by side (`/compare?a=ID&b=ID|previous`): spans aligned by their path of
// names (GET /api/v1/compare), what changed per row, the totals, and the output diff of the
// selected row. Every name and output is span data: text nodes only.

import { get } from "./api.js";
import { h, mount, notice, link, idChip, navigate } from "./dom.js";
import * as f from "./format.js";
import { statusBadge } from "./traces.js";

/** Rows drawn at most: a 10,000-span comparison stays a page the browser can lay out. */
const MAX_ROWS = 3000;

export async function render(app) {
  const q = new URLSearchParams(location.search);
  const a = (q.get("a") || "").trim();
  const b = (q.get("b") || "").trim();
  const form = picker(a, b);
  if (!a || !b) {
    mount(app, head(), form, notice("empty", "Pick two traces", "Paste two trace ids, or one and `previous` for the run before it of the same workflow."));
    return;
  }
  mount(app, head(), form, notice("empty", "Comparing…"));
  let c;
  try {
    c = await get("compare", { a, b });
  } catch (e) {
    mount(app, head(), form, notice("error", "Could not compare", e.message));
    return;
  }
  const diffBox = h("div", { class: "card cmp-diff", id: "compare-diff" });
  const rows = c.rows.slice(0, MAX_ROWS);
  let selected = null;
  const select = (i, tr) => {
    selected?.classList.remove("selected");
    selected = tr;
    tr.classList.add("selected");
    showDiff(diffBox, c.rows[i]);
  };
  const body = h("tbody");
  rows.forEach((r, i) => {
    const tr = rowEl(r);
    tr.addEventListener("click", () => select(i, tr));
    body.append(tr);
  });
  const table = h("table", { class: "grid compact cmp-table", id: "compare-rows" },
    h("thead", null, h("tr", null,
      h("th", null, "Span"), h("th", { class: "num" }, "A time"), h("th", { class: "num" }, "B time"), h("th", { class: "num" }, "Δ time"),
      h("th", { class: "num" }, "Δ tokens in / out"), h("th", { class: "num" }, "A cost"), h("th", { class: "num" }, "B cost"), h("th", { class: "num" }, "Δ cost"),
      h("th", null, "Changes"))),
    body);
  mount(app, head(), form, sides(c), totals(c),
    c.notes.length ? h("ul", { class: "cmp-notes muted" }, c.notes.map((n) => h("li", null, n))) : null,
    c.rows.length > MAX_ROWS ? notice("empty", `First ${f.int(MAX_ROWS)} of ${f.int(c.rows.length)} rows shown`, "Use `spanlens diff --json` for all of them.") : null,
    h("div", { class: "cmp-layout" }, h("div", { class: "cmp-rows" }, table), diffBox));
  // Start on the first row whose output changed, else the root.
  const first = rows.findIndex((r) => r.delta?.output_changed);
  if (rows.length) select(Math.max(first, 0), body.children[Math.max(first, 0)]);
}

function head() {
  return h("div", { class: "page-head" }, h("h1", null, "Compare traces"));
}

/** The two ids, editable, so another pair is one paste away. */
function picker(a, b) {
  const ia = h("input", { type: "text", name: "a", placeholder: "trace A id", value: a, size: 34 });
  const ib = h("input", { type: "text", name: "b", placeholder: "trace B id or previous", value: b, size: 34 });
  const form = h("form", { class: "filters" }, h("div", { class: "filter-row" },
    h("label", { class: "field" }, h("span", null, "A"), ia), h("label", { class: "field" }, h("span", null, "B"), ib),
    h("button", { type: "submit", class: "primary" }, "Compare")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams({ a: ia.value.trim(), b: ib.value.trim() });
    navigate(`/compare?${next}`);
  });
  return form;
}

function traceCard(tag, t, note) {
  return h("div", { class: "card", id: `compare-${tag.toLowerCase()}` },
    h("div", null, h("b", null, `${tag} `), link(`/traces/${encodeURIComponent(t.trace_id)}`, t.name), " ", statusBadge(t.status), note ? h("span", { class: "muted" }, ` ${note}`) : null),
    h("div", { class: "meta muted" }, idChip(t.trace_id), " · ", f.time(t.start_time), " · ", f.ms(t.duration_ms), " · ",
      `${f.int(t.total_tokens)} tokens · `, f.costText(t.total_cost_usd, t.unpriced_span_count, t.total_tokens)));
}

function sides(c) {
  return h("div", { class: "cmp-sides" }, traceCard("A", c.a), traceCard("B", c.b, c.b_is_previous ? "(A's previous run)" : null));
}

/** A signed difference with the class that colours it: more time or money is worse. */
function delta(v, fmt, worseWhenUp = true) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "–");
  if (v === 0) return h("span", { class: "muted" }, "0");
  const up = v > 0;
  const cls = up === worseWhenUp ? "worse" : "better";
  return h("span", { class: `delta ${cls}` }, `${up ? "+" : "−"}${fmt(Math.abs(v))}`);
}

function kpi(label, a, b, d, id) {
  return h("div", { class: "card kpi", id }, h("div", { class: "muted" }, label),
    h("div", { class: "kpi-value" }, a, " → ", b), h("div", null, d));
}

function totals(c) {
  const t = c.totals;
  const cost = (x) => f.costText(x.cost_usd, x.unpriced_span_count, x.input_tokens + x.output_tokens);
  return h("div", { class: "kpis", id: "compare-totals" },
    kpi("Duration", f.ms(t.a.duration_ms), f.ms(t.b.duration_ms), delta(t.delta.duration_ms, f.ms), "compare-total-duration"),
    kpi("Tokens", f.int(t.a.input_tokens + t.a.output_tokens), f.int(t.b.input_tokens + t.b.output_tokens),
      delta(t.delta.input_tokens + t.delta.output_tokens, f.int), "compare-total-tokens"),
    kpi("Cost", cost(t.a), cost(t.b), delta(t.delta.cost_usd, f.usd), "compare-total-cost"),
    kpi("Errors", f.int(t.a.error_count), f.int(t.b.error_count), delta(t.delta.error_count, f.int), "compare-total-errors"),
    h("div", { class: "card kpi", id: "compare-total-rows" }, h("div", { class: "muted" }, "Spans"),
      h("div", { class: "kpi-value" }, `${f.int(t.matched)} matched`),
      h("div", null, `${f.int(t.only_a)} only in A · ${f.int(t.only_b)} only in B · ${f.int(t.changed_outputs)} outputs changed`)));
}

function cost(s) {
  if (!s) return "";
  if (s.unpriced) return "unpriced";
  return s.cost_usd === null || s.cost_usd === undefined ? "–" : f.usd(s.cost_usd);
}

function rowEl(r) {
  const d = r.delta;
  const only = !r.a ? "only-b" : !r.b ? "only-a" : "";
  const name = r.occurrence > 0 ? `${r.name} #${r.occurrence + 1}` : r.name;
  const changes = [];
  if (!r.a) changes.push(h("span", { class: "badge" }, "only in B"));
  if (!r.b) changes.push(h("span", { class: "badge" }, "only in A"));
  if (d?.status_changed) changes.push(h("span", { class: "badge err" }, `status ${r.a.status} → ${r.b.status}`));
  if (d?.model_changed) changes.push(h("span", { class: "badge" }, `model ${r.a.model || "none"} → ${r.b.model || "none"}`));
  if (d?.output_changed) changes.push(h("span", { class: "badge dup" }, "output"));
  return h("tr", { class: `cmp-row ${only}`, dataset: { name: r.name, depth: String(r.depth) } },
    h("td", { class: "name" }, h("span", { class: "cmp-name", style: { paddingLeft: `${Math.min(r.depth, 30) * 14}px` } }, name)),
    h("td", { class: "num" }, r.a ? f.ms(r.a.duration_ms) : ""),
    h("td", { class: "num" }, r.b ? f.ms(r.b.duration_ms) : ""),
    h("td", { class: "num cmp-dtime" }, d ? delta(d.duration_ms, f.ms) : ""),
    h("td", { class: "num cmp-dtokens" }, d ? [delta(d.input_tokens, f.int), " / ", delta(d.output_tokens, f.int)] : ""),
    h("td", { class: "num" }, cost(r.a)),
    h("td", { class: "num" }, cost(r.b)),
    h("td", { class: "num cmp-dcost" }, d ? (d.cost_usd === null ? h("span", { class: "muted", title: "a side is unpriced" }, "unpriced") : delta(d.cost_usd, f.usd)) : ""),
    h("td", null, changes));
}

/** The selected row's output diff: removed text struck through, added text marked. */
function showDiff(box, r) {
  const title = h("div", { class: "card-head" }, h("h3", null, "Output: ", r.occurrence > 0 ? `${r.name} #${r.occurrence + 1}` : r.name));
  const d = r.delta;
  if (!d) {
    mount(box, title, h("p", { class: "muted" }, `Only trace ${r.a ? "A" : "B"} has this span.`));
    return;
  }
  if (!d.output_changed) {
    mount(box, title, h("p", { class: "muted" }, "The outputs are the same."));
    return;
  }
  if (!d.output_diff) {
    mount(box, title, h("p", { class: "muted" }, "The outputs differ; this answer's diff budget was spent on earlier rows. `spanlens diff` or the two spans show them."));
    return;
  }
  const x = d.output_diff;
  const text = h("div", { class: "diff-text", id: "compare-diff-text" }, x.pieces.map((p) =>
    p.op === "equal" ? h("span", null, p.text) : h(p.op === "insert" ? "ins" : "del", { class: `diff-${p.op}` }, p.text)));
  const cut = x.a_cut || x.b_cut ? h("p", { class: "muted" }, "Outputs longer than 20 KB were compared on their first 20 KB.") : null;
  const unit = x.granularity === "words" ? null : h("p", { class: "muted" }, x.granularity === "lines" ? "Compared line by line (too different for a word diff)." : "Too different to align: the differing part is shown replaced whole.");
  mount(box, title, h("p", { class: "muted" }, h("del", { class: "diff-delete" }, "only in A"), " ", h("ins", { class: "diff-insert" }, "only in B")), text, cut, unit);
}
