// Prompt versions (`/prompts`): every prompt template and version the spans of a time range
// used (OpenInference, Traceloop and Langfuse prompt attributes, the SDK's recorder), one table
// per template with each version's calls, cost, latency p50/p95, error rate and mean scores.
// A click on a version opens the trace list filtered to it.
//
// Template names, versions and score names come from ingested spans: they reach the DOM only
// as text through h().

import { get } from "./api.js";
import { h, mount, notice, link, navigate } from "./dom.js";
import * as f from "./format.js";
import { RANGES } from "./traces.js";

/** The trace list's query for one version of a template (a call without a version: the
 * template's traces), over the page's range. */
export function versionQuery(template, version, q) {
  const out = new URLSearchParams();
  for (const k of ["range", "from", "to"]) if (q.get(k)) out.set(k, q.get(k));
  out.set("prompt", template);
  if (version !== null && version !== undefined) out.set("prompt_version", version);
  return out;
}

/** "helpful 0.75 (2) · tone 3.00 (1)": a version's mean scores. */
function scoresText(scores) {
  if (!scores.length) return "–";
  return scores.map((s) => `${s.name} ${s.mean.toFixed(2)} (${f.int(s.count)})`).join(" · ");
}

/** One template's table: a row per version, the most recently used first. */
function templateTable(t, q) {
  const rows = t.versions.map((v) => {
    const href = `/?${versionQuery(t.name, v.version, q)}`;
    const label = v.version ?? "(no version)";
    const tr = h("tr", { class: `prompt-version${v.errors ? " err" : ""}`, dataset: { version: label }, title: "List the traces of this version" },
      h("td", { class: "name" }, link(href, label)),
      h("td", { class: "num" }, f.int(v.calls)),
      h("td", { class: `num cost${v.unpriced_span_count ? " unpriced" : ""}`, title: f.costTitle(v.unpriced_span_count) }, f.costText(v.cost_usd, v.unpriced_span_count, v.cost_nano_usd ? 1 : 0)),
      h("td", { class: "num" }, v.p50_ms === null ? "–" : f.ms(v.p50_ms)),
      h("td", { class: "num" }, v.p95_ms === null ? "–" : f.ms(v.p95_ms)),
      h("td", { class: `num${v.errors ? " err-text" : ""}`, title: `${f.int(v.errors)} of ${f.int(v.calls)} failed` }, f.pct(v.error_rate)),
      h("td", { class: "scores" }, scoresText(v.scores)),
      h("td", { title: v.last_call }, f.ago(v.last_call)));
    tr.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      navigate(href);
    });
    return tr;
  });
  return h("section", { class: "prompt-template", dataset: { template: t.name } },
    h("h2", null, h("span", { class: "prompt-name" }, t.name), h("span", { class: "muted" }, ` · ${f.int(t.calls)} call${t.calls === 1 ? "" : "s"} · `,
      link(`/?${versionQuery(t.name, null, q)}`, "all its traces"))),
    h("table", { class: "grid prompt-versions" },
      h("thead", null, h("tr", null, ["Version", "Calls", "Cost", "p50", "p95", "Error rate", "Mean scores", "Last call"].map((c, i) =>
        h("th", { class: i >= 1 && i <= 5 ? "num" : "" }, c)))),
      h("tbody", null, rows)));
}

/** `/prompts`: the templates and versions of a time range. */
export async function render(app) {
  const q = new URLSearchParams(location.search);
  if (!q.get("range") && !q.get("from") && !q.get("to")) q.set("range", "7d");
  const range = h("select", { name: "range" }, Object.keys(RANGES).map((r) => h("option", { value: r, selected: q.get("range") === r }, `Last ${r}`)),
    !q.get("range") ? h("option", { value: "", selected: true }, "Custom") : null);
  range.addEventListener("change", () => navigate(`/prompts?${new URLSearchParams(range.value ? { range: range.value } : {})}`));
  const summary = h("div", { class: "muted", id: "prompts-summary" });
  const body = h("div", { id: "prompts-body" }, h("div", { class: "loading" }, "Loading prompt versions…"));
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Prompt versions"),
    h("p", { class: "muted" }, "Prompt templates the spans used, by version. Click a version to list its traces.")),
  h("div", { class: "filters" }, h("div", { class: "filter-row" }, range)), summary, body);
  const params = { from: q.get("from") || undefined, to: q.get("to") || undefined };
  if (RANGES[q.get("range")]) params.from = new Date(Date.now() - RANGES[q.get("range")]).toISOString();
  for (const k of ["from", "to"]) if (params[k] && !/Z$|[+-]\d\d:\d\d$/.test(params[k])) params[k] = new Date(params[k]).toISOString();
  let data;
  try {
    data = await get("prompts", params);
  } catch (e) {
    mount(body, notice("error", "Could not load prompt versions", e.message));
    return;
  }
  mount(summary, `${f.int(data.used_traces)} trace${data.used_traces === 1 ? "" : "s"} read of ${f.int(data.matched_traces)} holding a prompt`,
    data.matched_traces > data.used_traces ? ` (the most recent ${f.int(data.trace_cap)})` : "",
    data.unreadable_span_count ? ` · ${f.int(data.unreadable_span_count)} unreadable spans left out` : "");
  summary.dataset.matched = data.matched_traces;
  summary.dataset.used = data.used_traces;
  if (!data.templates.length) {
    mount(body, notice("empty", "No prompt templates in this range",
      "Spans name their template with OpenInference (llm.prompt_template.*), Traceloop (traceloop.prompt.*) or Langfuse (langfuse.observation.prompt.*) attributes, or the SDK's prompt_template()."));
    return;
  }
  mount(body, data.templates.map((t) => templateTable(t, q)));
}
