// "What if…" on the trace page: the trace's model calls priced as another catalog model
// (`GET /api/v1/whatif`), beside their stored cost. Nothing stored changes; token counts stay
// as measured, and the panel says so.

import { get, models } from "./api.js";
import { h, mount, notice } from "./dom.js";
import * as f from "./format.js";

/**
 * The panel for trace `traceId`: a model picker (the catalog's chat models), whether cache
 * reads keep the model's cache rates, and the answer. `onSpan(id)` opens a span.
 */
export function whatIfPanel(traceId, onSpan) {
  const select = h("select", { id: "whatif-model", "aria-label": "Model to price the calls as" }, h("option", { value: "" }, "Loading models…"));
  const cache = h("input", { type: "checkbox", id: "whatif-cache", checked: true });
  const result = h("div", { class: "whatif-result", id: "whatif-result" });
  const form = h("form", { class: "whatif-form" },
    h("label", null, "Price every model call as ", select),
    h("label", { title: "Off: cached input tokens are priced as plain input, as if nothing had been cached" }, cache, " cache reads at the model's cache rates"),
    h("button", { type: "submit", class: "primary" }, "Price"));
  const section = h("section", { class: "whatif", id: "trace-whatif", hidden: true },
    h("h2", null, "What if this trace had run on another model?"), form, result);
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
      const a = await get("whatif", { trace_id: traceId, as: select.value, cache_reads: String(cache.checked) });
      if (mine === seq) mount(result, answer(a, onSpan));
    } catch (err) {
      if (mine === seq) mount(result, notice("error", "Could not price the trace", err.message));
    }
  });
  return section;
}

/** The totals, one row per call and the note on token counts. */
function answer(a, onSpan) {
  const t = a.total;
  const diff = t.whatif_usd - t.stored_usd;
  const changed = diff === 0 ? "the same" : `${diff > 0 ? "+" : "−"}${f.usd(Math.abs(diff))}`;
  return h("div", { dataset: { whatifNano: String(t.whatif_nano_usd), storedNano: String(t.stored_nano_usd) } },
    h("p", { class: "whatif-total", id: "whatif-total" },
      `Stored ${f.usd(t.stored_usd)} → on ${a.model} ${f.usd(t.whatif_usd)} (${changed}); `,
      `${f.int(t.repriced)} of ${f.int(t.calls)} model call${t.calls === 1 ? "" : "s"} repriced`,
      t.stored_unpriced ? `; ${f.int(t.stored_unpriced)} had no stored price (in the what-if total only)` : "",
      t.whatif_unpriced ? `; ${f.int(t.whatif_unpriced)} without a price in neither total` : ""),
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
    h("p", { class: "sub" }, a.note, ` Prices from catalog ${a.pricing_version}${a.cache_reads ? "" : "; cached input priced as plain input"}.`));
}
