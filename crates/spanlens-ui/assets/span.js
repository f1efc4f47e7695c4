// The span panel: everything about one span, fetched on demand (the waterfall holds no payloads).

import { get, models, priceFor, cacheSavings } from "./api.js";
import { h, mount, notice, idChip, classToken, markWords, searchWords } from "./dom.js";
import * as f from "./format.js";
import { statusBadge } from "./traces.js";
import { shown } from "./scores.js";
import { replaySection } from "./replay.js";
import { mediaStrip } from "./media.js";

const cache = new Map();
let current = 0;

/**
 * Shows span `node` of `trace` in `panel`, fetching its full record once. `nav` (optional):
 * `nameOf(spanId)` names another span of the trace, `jump(spanId)` selects it.
 */
export async function renderSpanPanel(panel, trace, node, nav = {}) {
  const token = ++current;
  const key = `${trace.trace_id}/${node.span_id}`;
  mount(panel, head(node, trace), h("div", { class: "loading" }, "Loading span…"));
  let span;
  try {
    if (!cache.has(key)) cache.set(key, get(`traces/${encodeURIComponent(trace.trace_id)}/spans/${encodeURIComponent(node.span_id)}`));
    span = await cache.get(key);
  } catch (e) {
    cache.delete(key);
    if (token === current) mount(panel, head(node, trace), notice("error", "Could not load the span", e.message));
    return;
  }
  let catalog = null;
  try {
    if (span.usage && (span.usage.cache_read_tokens || span.usage.cache_write_tokens)) catalog = await models();
  } catch {
    // Savings are then shown as unknown; the rest of the panel does not depend on prices.
  }
  let scores = [];
  try {
    scores = (await get("scores", { trace_id: trace.trace_id, span_id: node.span_id })).items || [];
  } catch {
    // Scores are optional context; the span itself loaded.
  }
  if (token !== current) return;
  panel.dataset.spanId = span.span_id;
  const content = body(span, trace, catalog);
  // Opened from a full-text search (`?q=`): its words are marked in the span's text.
  const words = searchWords(new URLSearchParams(location.search).get("q"));
  const marked = markWords(content, words);
  mount(panel, head(node, trace, span), sameCall(span, nav), scoreSection(scores), content);
  panel.scrollTop = 0;
  if (marked) panel.querySelector("mark.hit")?.scrollIntoView({ block: "center" });
}

function head(node, trace, span) {
  const k = f.kind(node.kind);
  return h("div", { class: "panel-head" },
    h("div", { class: "panel-title" }, h("span", { class: "kicon", style: { color: k.color } }, k.icon), h("span", { class: "kind-label", style: { color: k.color } }, node.kind), h("b", null, node.name), statusBadge(node.status)),
    h("div", { class: "ids" }, "span ", idChip(node.span_id), node.parent_span_id ? [" parent ", idChip(node.parent_span_id)] : null),
    span ? h("div", { class: "muted" }, f.time(span.start_time), " · ", f.ms(node.duration_ms), span.service ? ` · ${span.service}` : "", span.source ? ` · via ${span.source}` : "") : null,
    node.self_ms != null ? h("div", { class: "self-time" },
      "Self time ", h("b", { dataset: { selfMs: String(node.self_ms) } }, f.ms(node.self_ms)),
      node.duration_ms ? h("span", { class: "muted" }, ` (${f.pct(node.self_ms / node.duration_ms)} of the span not covered by children)`) : null,
      node.critical ? h("span", { class: "crit-badge", title: "this span is on the chain that sets the trace's end-to-end latency" }, "◆ critical path") : null,
      node.unclosed ? h("span", { class: "warn-text" }, " · no end time (runs to the trace's latest time)") : null) : null);
}

/**
 * On a span that recorded the same provider call as another span of the trace (a framework
 * span and the SDK's own span): which one is counted in the totals, with a jump to it.
 */
function sameCall(s, nav) {
  const other = s.duplicate_of;
  if (!other) return null;
  const name = nav.nameOf?.(other) ?? other;
  const target = nav.jump
    ? h("button", { type: "button", class: "linklike dup-jump", onclick: () => nav.jump(other) }, name)
    : h("b", null, name);
  return h("div", { class: "dup-note", dataset: { duplicateOf: other } },
    "Same call as ", target, " — counted once",
    h("div", { class: "muted" }, "Two instrumentations recorded this provider call. Its tokens and cost below are kept, but trace, session and dashboard totals count them on the other span only."));
}

/** Evaluation scores of the span: value or label, pass/fail for booleans, source and comment. */
function scoreSection(scores) {
  if (!scores.length) return null;
  return section("Scores", h("table", { class: "kv scores" }, h("tbody", null, scores.map((s) => {
    const cls = s.data_type === "boolean" ? (s.value === 1 ? "ok-text" : "err-text") : "";
    return h("tr", { dataset: { score: s.name } }, h("th", null, s.name),
      h("td", null, h("b", { class: cls }, shown(s)), h("span", { class: "muted" }, ` · ${s.source}`),
        s.author ? h("span", { class: "muted score-author" }, ` by ${s.author}`) : null,
        s.comment ? h("div", { class: "muted" }, s.comment) : null));
  }))));
}

function section(title, ...content) {
  const items = content.flat().filter(Boolean);
  if (!items.length) return null;
  return h("section", { class: "psec", dataset: { section: title.toLowerCase() } }, h("h3", null, title), items);
}

function kv(rows) {
  const r = rows.filter(([, v]) => v !== undefined && v !== null && v !== "" && !(Array.isArray(v) && !v.length));
  if (!r.length) return null;
  return h("table", { class: "kv" }, h("tbody", null, r.map(([k, v, cls]) => h("tr", null, h("th", null, k), h("td", { class: cls }, v)))));
}

function json(v) {
  if (typeof v === "string") return h("pre", { class: "payload text" }, v);
  return h("pre", { class: "payload" }, JSON.stringify(v, null, 2));
}

function payload(p) {
  if (!p) return null;
  return [json(p.value), mediaStrip(p.value), p.truncated ? h("div", { class: "warn-text" }, `truncated (original ${f.int(p.original_bytes)} bytes)`) : null];
}

function body(s, trace, catalog) {
  const model = s.response_model || s.request_model;
  return h("div", { class: "panel-body" },
    // What the server cut to its size limits before storing the span (see the README).
    s.truncated?.length ? section("Cut to size limits",
      h("div", { class: "warn-text" }, "Parts of this span were larger than the server keeps:"),
      kv(s.truncated.map((t) => [t.field, t.reason]))) : null,
    s.status === "error" || s.status_message ? section("Error",
      h("div", { class: "error-box" }, s.error_type ? h("b", null, s.error_type, ": ") : null, s.status_message || "error"),
      s.error_stack ? h("pre", { class: "payload stack" }, s.error_stack) : null) : null,
    section("Overview", kv([
      ["Agent", s.agent_name], ["Provider", s.provider],
      ["Model", model ? h("span", null, model, s.request_model && s.response_model && s.request_model !== s.response_model ? h("span", { class: "muted" }, ` (requested ${s.request_model})`) : null) : null],
      ["Finish", s.finish_reasons?.join(", ")],
      ["User", s.user_id], ["Session", s.session_id], ["Tags", s.tags?.length ? s.tags.join(", ") : null],
      ["Trace", idChip(s.trace_id)],
    ])),
    s.kind === "llm" ? replaySection(s) : null,
    usage(s), cost(s, catalog), latency(s), retries(s), rateLimits(s), tool(s), messages(s), prompt(s),
    s.tool_definitions ? section("Tools offered", payload(s.tool_definitions)) : null,
    s.kind !== "tool" && s.input ? section("Input", payload(s.input)) : null,
    s.kind !== "tool" && s.output ? section("Output", payload(s.output)) : null,
    Object.keys(s.model_parameters || {}).length ? section("Model parameters", json(s.model_parameters)) : null,
    events(s),
    s.links?.length ? section("Links", kv(s.links.map((l) => [l.span_id || "link", `${l.trace_id} ${l.span_id}`]))) : null,
    Object.keys(s.metadata || {}).length ? section("Metadata", attrs(s.metadata)) : null,
    Object.keys(s.attributes || {}).length ? section("Raw attributes", attrs(s.attributes)) : null,
    Object.keys(s.resource || {}).length ? section("Resource", attrs(s.resource)) : null,
    h("details", { class: "psec raw" }, h("summary", null, "Canonical span JSON"), json(s)));
}

function attrs(o) {
  return kv(Object.entries(o).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v), "mono"]));
}

function usage(s) {
  const u = s.usage;
  if (!u) return null;
  const plain = u.input_tokens - u.cache_read_tokens - u.cache_write_tokens;
  return section("Usage", h("table", { class: "kv usage" }, h("tbody", null,
    h("tr", null, h("th", null, "Input"), h("td", { class: "num" }, f.int(u.input_tokens)), h("td", { class: "muted" }, u.cache_read_tokens || u.cache_write_tokens ? `${f.int(plain)} uncached` : "")),
    h("tr", null, h("th", null, "  cache read"), h("td", { class: "num" }, f.int(u.cache_read_tokens)), h("td", { class: "muted" }, u.input_tokens ? f.pct(u.cache_read_tokens / u.input_tokens) + " of input" : "")),
    h("tr", null, h("th", null, "  cache write"), h("td", { class: "num" }, f.int(u.cache_write_tokens)), h("td")),
    h("tr", null, h("th", null, "Output"), h("td", { class: "num" }, f.int(u.output_tokens)), h("td")),
    h("tr", null, h("th", null, "  reasoning"), h("td", { class: "num" }, f.int(u.reasoning_tokens)), h("td")),
    h("tr", { class: "total" }, h("th", null, "Total"), h("td", { class: "num" }, f.int(u.total_tokens)), h("td")),
    Object.entries(u.extra || {}).map(([k, v]) => h("tr", null, h("th", null, k), h("td", { class: "num" }, f.int(v)), h("td"))))));
}

function cost(s, catalog) {
  const c = s.cost;
  if (!c) {
    return s.unpriced_reason ? section("Cost", h("div", { class: "warn-text" }, `Unpriced: ${s.unpriced_reason}`)) : null;
  }
  const line = (label, v, comp) => h("tr", null, h("th", null, label), h("td", { class: "num" }, f.usd(v)), comp ? h("td", { class: "num muted" }, f.usd(comp)) : h("td"));
  const cc = c.computed;
  let savings = null;
  const u = s.usage;
  if (u && (u.cache_read_tokens || u.cache_write_tokens)) {
    const price = catalog && priceFor(catalog, { pricingId: c.pricing_id, model: s.response_model || s.request_model, at: s.start_time });
    const sv = cacheSavings(price, u, c);
    savings = sv
      ? h("div", { class: "savings" },
        h("div", null, "Cache savings ", h("b", { class: sv.net >= 0 ? "good" : "err-text", dataset: { savings: String(sv.net) } }, f.usd(sv.net))),
        h("div", { class: "muted" }, `cached input at the full input price ($${sv.fullPrice}/M) minus what it cost: reads ${f.usd(sv.read)}`, u.cache_write_tokens ? `, writes ${f.usd(sv.write)}` : ""))
      : h("div", { class: "muted" }, "Cache savings unknown: no catalog price for this model.");
  }
  return section("Cost",
    h("table", { class: "kv cost-table" }, h("tbody", null,
      cc ? h("tr", null, h("th"), h("td", { class: "num muted" }, c.source), h("td", { class: "num muted" }, "computed")) : null,
      line("Input (uncached)", c.input_usd, cc?.input_usd),
      line("Cache read", c.cache_read_usd, cc?.cache_read_usd),
      line("Cache write", c.cache_write_usd, cc?.cache_write_usd),
      line("Output", c.output_usd, cc?.output_usd),
      c.reasoning_usd ? line("Reasoning", c.reasoning_usd, cc?.reasoning_usd) : null,
      h("tr", { class: "total" }, h("th", null, "Total"), h("td", { class: "num span-cost" }, f.usd(c.total_usd)), cc ? h("td", { class: "num muted" }, f.usd(cc.total_usd)) : h("td")))),
    savings,
    h("div", { class: "muted" }, `${c.source}${c.pricing_id ? ` · price ${c.pricing_id}` : ""}${c.pricing_version ? ` (catalog ${c.pricing_version})` : ""}`));
}

function durationMs(s) {
  return s.end_time ? (Date.parse(s.end_time) - Date.parse(s.start_time)) + nanosDiff(s.start_time, s.end_time) : null;
}

/** Sub-millisecond part that Date.parse drops, so short spans keep their precision. */
function nanosDiff(a, b) {
  const frac = (t) => {
    const m = /\.(\d+)/.exec(t);
    return m ? Number(`0.${m[1]}`) * 1000 - Math.floor(Number(`0.${m[1]}`) * 1000) : 0;
  };
  return frac(b) - frac(a);
}

function latency(s) {
  const total = durationMs(s);
  const out = s.usage?.output_tokens;
  const ttft = s.ttft_ms;
  if (s.kind !== "llm" && ttft == null) return null;
  const gen = total != null && ttft != null ? total - ttft : total;
  return section("Latency", kv([
    ["Total", f.ms(total)],
    ["Time to first token", ttft != null ? f.ms(ttft) : null],
    ["Per output token", out && gen != null ? f.ms(gen / out) : null],
    ["Tokens / s", out && gen ? `${(out / (gen / 1000)).toFixed(1)}${ttft != null ? " (after first token)" : ""}` : null],
  ]));
}

function retries(s) {
  const evs = (s.events || []).filter((e) => e.name === "retry" || e.name === "retry.outcome" || e.attributes?.["retry.attempt"] != null);
  if (!evs.length) return null;
  const start = Date.parse(s.start_time);
  const end = s.end_time ? Date.parse(s.end_time) : Math.max(...evs.map((e) => Date.parse(e.time)));
  const span = Math.max(1, end - start);
  const attempts = evs.filter((e) => e.name !== "retry.outcome");
  const outcome = evs.find((e) => e.name === "retry.outcome");
  const track = h("div", { class: "retry-track" },
    attempts.map((e) => {
      const t = Date.parse(e.time) - start;
      const back = Number(e.attributes?.["retry.backoff_ms"] || 0);
      return [
        h("div", { class: "retry-fail", style: { left: `${(t / span) * 100}%` }, title: `attempt ${e.attributes?.["retry.attempt"]} failed at +${f.ms(t)}` }, "✕"),
        back ? h("div", { class: "retry-backoff", style: { left: `${(t / span) * 100}%`, width: `${Math.min(100 - (t / span) * 100, (back / span) * 100)}%` }, title: `backoff ${f.ms(back)}` }) : null,
      ];
    }),
    outcome ? h("div", { class: `retry-end ${outcome.attributes?.["retry.succeeded"] ? "ok" : "fail"}`, style: { left: `${((Date.parse(outcome.time) - start) / span) * 100}%` } }, outcome.attributes?.["retry.succeeded"] ? "✓" : "■") : null);
  const rows = attempts.map((e) => h("tr", null,
    h("td", { class: "num" }, `#${e.attributes?.["retry.attempt"] ?? "?"}`),
    h("td", { class: "num" }, `+${f.ms(Date.parse(e.time) - start)}`),
    h("td", null, h("b", null, e.attributes?.["error.type"] || ""), " ", e.attributes?.["error.message"] || ""),
    h("td", { class: "num" }, e.attributes?.["retry.backoff_ms"] != null ? `backoff ${f.ms(Number(e.attributes["retry.backoff_ms"]))}` : "")));
  return section(`Retries (${attempts.length})`, track,
    h("table", { class: "grid compact" }, h("thead", null, h("tr", null, h("th", null, "attempt"), h("th", null, "at"), h("th", null, "error"), h("th", null, "then"))), h("tbody", null, rows)),
    outcome ? h("div", { class: outcome.attributes?.["retry.succeeded"] ? "good" : "err-text" },
      outcome.attributes?.["retry.succeeded"] ? "succeeded" : `gave up after ${outcome.attributes?.["retry.attempts"] ?? attempts.length} attempts`,
      outcome.attributes?.["retry.stop_reason"] ? ` (${outcome.attributes["retry.stop_reason"]})` : "") : null);
}

function rateLimits(s) {
  const rl = s.rate_limits;
  if (!rl) return null;
  const rows = Object.entries(rl).filter(([, v]) => v && typeof v === "object").map(([name, v]) => {
    const used = v.limit ? 1 - (v.remaining ?? v.limit) / v.limit : null;
    return h("tr", null, h("th", null, name),
      h("td", { class: "num" }, `${f.int(v.remaining)} / ${f.int(v.limit)} left`),
      h("td", null, used != null ? h("div", { class: "meter", title: `${f.pct(used)} used` }, h("i", { style: { width: `${used * 100}%`, background: used > 0.9 ? "#d93025" : used > 0.7 ? "#d9822b" : "#2e9e4f" } })) : null),
      h("td", { class: "muted" }, v.reset ? `resets ${f.clock(v.reset)}` : ""));
  });
  return rows.length ? section("Rate limits", h("table", { class: "kv" }, h("tbody", null, rows))) : null;
}

function tool(s) {
  if (!s.tool && s.kind !== "tool") return null;
  return section("Tool",
    s.tool ? kv([["Name", s.tool.name], ["Call id", s.tool.call_id ? idChip(s.tool.call_id) : null], ["Description", s.tool.description]]) : null,
    s.input ? [h("h4", null, "Arguments"), payload(s.input)] : null,
    s.output ? [h("h4", null, "Result"), payload(s.output)] : null);
}

function message(m) {
  const content = m.content ?? m.parts ?? m.text;
  return h("div", { class: `msg role-${classToken(m.role || "unknown")}` },
    h("div", { class: "msg-role" }, m.role || "message", m.name ? ` · ${m.name}` : ""),
    content !== undefined && content !== null ? (typeof content === "string" ? h("div", { class: "msg-text" }, content) : json(content)) : null,
    content !== undefined && content !== null ? mediaStrip(content) : null,
    m.tool_calls?.length ? m.tool_calls.map((t) => h("div", { class: "msg-tool" }, "→ ", h("b", null, t.name || t.function?.name || "tool"), " ", h("code", null, typeof t.arguments === "string" ? t.arguments : JSON.stringify(t.arguments ?? t.function?.arguments ?? {})))) : null,
    m.tool_call_id ? h("div", { class: "muted" }, `result of ${m.tool_call_id}`) : null);
}

function messages(s) {
  if (!s.input_messages?.length && !s.output_messages?.length) return null;
  return section("Messages", (s.input_messages || []).map(message),
    s.output_messages?.length ? [h("div", { class: "msg-sep" }, "response"), s.output_messages.map(message)] : null);
}

function prompt(s) {
  const p = s.prompt;
  if (!p) return null;
  return section("Prompt template",
    kv([["Name", p.name], ["Version", p.version]]),
    p.template ? h("pre", { class: "payload text" }, typeof p.template === "string" ? p.template : JSON.stringify(p.template, null, 2)) : null,
    p.variables && Object.keys(p.variables).length ? [h("h4", null, "Variables"), attrs(p.variables)] : null);
}

function events(s) {
  if (!s.events?.length) return null;
  const start = Date.parse(s.start_time);
  return section(`Events (${s.events.length})`, h("table", { class: "grid compact" }, h("tbody", null,
    s.events.map((e) => h("tr", null, h("td", { class: "num" }, `+${f.ms(Date.parse(e.time) - start)}`), h("td", null, h("b", null, e.name)),
      h("td", { class: "mono" }, Object.entries(e.attributes || {}).map(([k, v]) => h("div", null, `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`))))))));
}
