// "What if…": model calls priced as another catalog model (`GET /api/v1/whatif`), beside their
// stored cost — a trace's on the trace page, a time range's on the dashboard. Nothing stored
// changes; token counts stay as measured, and the answers say so.

import { get, models } from "./api.js";
import { h, mount, notice } from "./dom.js";
import * as f from "./format.js";

/**
 * The panel for trace `traceId`: a model picker (the catalog's chat models), whether cache
 * reads keep the model's cache rates, and the answer. `onSpan(id)` opens a span.
 */
export function whatIfPanel(traceId, onSpan) {
  const { form, result } = pricer("whatif", (params) => ({ trace_id: traceId, ...params }), (a) => answer(a, onSpan));
  return h("section", { class: "whatif", id: "trace-whatif", hidden: true },
    h("h2", null, "What if this trace had run on another model?"), form, result);
}

/**
 * The dashboard's card for the chosen range `{from, to}`: every model call that started in it,
 * priced as the model picked, by the model each ran on.
 */
export function whatIfRangeCard(range) {
  const { form, result } = pricer("whatif-range", (params) => ({ ...range, ...params }), byModel);
  return h("div", { class: "card wide whatif", id: "whatif-range", dataset: { from: range.from, to: range.to } },
    h("h3", null, "What if every model call in this range had run on another model?"), form, result);
}

/**
 * A model picker (the catalog's chat models), the cache-reads switch and a Price button; on
 * submit, `GET /api/v1/whatif` with `query(params)`, shown by `show(answer)`. Ids start with
 * `prefix`.
 */
function pricer(prefix, query, show) {
  const select = h("select", { id: `${prefix}-model`, "aria-label": "Model to price the calls as" }, h("option", { value: "" }, "Loading models…"));
  const cache = h("input", { type: "checkbox", id: `${prefix}-cache`, checked: true });
  const result = h("div", { class: "whatif-result", id: `${prefix}-result` });
  const form = h("form", { class: "whatif-form" },
    h("label", null, "Price every model call as ", select),
    h("label", { title: "Off: cached input tokens are priced as plain input, as if nothing had been cached" }, cache, " cache reads at the model's cache rates"),
    h("button", { type: "submit", class: "primary" }, "Price"));
  models().then((catalog) => {
    const ids = [...new Set(catalog.models.filter((m) => m.kind === "chat").map((m) => m.id))].sort();
    mount(select, h("option", { value: "" }, "Pick a model…"), ids.map((id) => h("option", { value: id }, id)));
  }).catch((e) => mount(select, h("option", { value: "" }, `Models unavailable: ${e.message}`)));
  let seq = 0;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!select.value) {
      select.focus();
      return;
    }
    const mine = ++seq;
    mount(result, h("div", { class: "loading" }, "Pricing…"));
    try {
      const a = await get("whatif", query({ as: select.value, cache_reads: String(cache.checked) }));
      if (mine === seq) mount(result, show(a));
    } catch (err) {
      if (mine === seq) mount(result, notice("error", "Could not price the calls", err.message));
    }
  });
  return { form, result };
}

/** The totals line of an answer. */
function totalLine(a) {
  const t = a.total;
  const diff = t.whatif_usd - t.stored_usd;
  const changed = diff === 0 ? "the same" : `${diff > 0 ? "+" : "−"}${f.usd(Math.abs(diff))}`;
  return h("p", { class: "whatif-total" },
    `Stored ${f.usd(t.stored_usd)} → on ${a.model} ${f.usd(t.whatif_usd)} (${changed}); `,
    `${f.int(t.repriced)} of ${f.int(t.calls)} model call${t.calls === 1 ? "" : "s"} repriced`,
    a.scope === "range" ? ` in ${f.int(a.traces)} trace${a.traces === 1 ? "" : "s"}` : "",
    t.stored_unpriced ? `; ${f.int(t.stored_unpriced)} had no stored price (in the what-if total only)` : "",
    t.whatif_unpriced ? `; ${f.int(t.whatif_unpriced)} without a price in neither total` : "");
}

/** The note on token counts and the catalog. */
function noteLine(a) {
  return h("p", { class: "sub" }, a.note, ` Prices from catalog ${a.pricing_version}${a.cache_reads ? "" : "; cached input priced as plain input"}.`);
}

/** A range's answer: the totals and one row per model the calls ran on. */
function byModel(a) {
  return h("div", { dataset: { whatifNano: String(a.total.whatif_nano_usd), storedNano: String(a.total.stored_nano_usd) } },
    totalLine(a),
    h("table", { class: "whatif-calls" },
      h("thead", null, h("tr", null, ["Ran on", "Calls", "Stored", `On ${a.model}`].map((c) => h("th", null, c)))),
      h("tbody", null, a.by_model.map((m) => h("tr", null,
        h("td", null, m.model || "–"),
        h("td", { class: "num" }, f.int(m.calls)),
        h("td", { class: "num" }, f.costText(m.stored_usd, m.stored_unpriced)),
        h("td", { class: "num" }, f.costText(m.whatif_usd, m.whatif_unpriced)))))),
    noteLine(a));
}

/** The totals, one row per call and the note on token counts. */
function answer(a, onSpan) {
  const t = a.total;
  return h("div", { dataset: { whatifNano: String(t.whatif_nano_usd), storedNano: String(t.stored_nano_usd) } },
    totalLine(a),
    h("table", { class: "whatif-calls" },
      h("thead", null, h("tr", null, ["Span", "Model", "Input", "Cached", "Output", "Stored", `On ${a.model}`].map((c) => h("th", null, c)))),
      h("tbody", null, a.calls.map((c) => h("tr", { dataset: { spanId: c.span_id } },
        h("td", null, h("a", { href: "#", onclick: (e) => { e.preventDefault(); onSpan(c.span_id); } }, c.name)),
        h("td", null, c.model || "–"),
        h("td", { class: "num" }, f.int(c.input_tokens)),
        h("td", { class: "num" }, f.int(c.cache_read_tokens)),
        h("td", { class: "num" }, f.int(c.output_tokens)),
        h("td", { class: "num" }, c.stored_usd == null ? "unpriced" : f.usd(c.stored_usd)),
        h("td", { class: "num" }, c.whatif_usd == null ? "unpriced" : f.usd(c.whatif_usd)))))),
    noteLine(a));
}
