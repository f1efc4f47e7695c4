// Dashboard (`/dashboard`): cost, tokens, cache savings, latency, errors and slow tools over a
// chosen time range. Charts are SVG, drawn by charts.js.

import { get, models, priceFor } from "./api.js";
import { h, mount, notice } from "./dom.js";
import * as f from "./format.js";
import { drawChart } from "./charts.js";
import { whatIfRangeCard } from "./whatif.js";

const RANGES = { "1h": 3.6e6, "24h": 8.64e7, "7d": 6.048e8, "30d": 2.592e9 };
const PALETTE = ["#1f77d0", "#7c4dff", "#d9822b", "#2e9e4f", "#c2185b", "#00838f", "#8d6e63", "#7a9a1e", "#5b6b82", "#e8710a", "#9334e6"];
const compactFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const compact = (v) => compactFmt.format(v);
const BUCKETS = { "1h": 12, "24h": 24, "7d": 28, "30d": 30 };

export async function render(app) {
  const q = new URLSearchParams(location.search);
  // A fixed range (`?range=7d`) or a custom one (`?from=…&to=…`, local times).
  let range = RANGES[q.get("range")] ? q.get("range") : q.get("from") ? "custom" : "7d";
  const from = h("input", { type: "datetime-local", value: q.get("from") || "", title: "From (local time)" });
  const to = h("input", { type: "datetime-local", value: q.get("to") || "", title: "To (local time); empty means now" });
  const custom = h("form", { class: "custom-range", hidden: range !== "custom" }, from, " – ", to, h("button", { type: "submit", class: "primary" }, "Apply"));
  const pick = (r) => {
    range = r;
    picker.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.range === r));
    custom.hidden = r !== "custom";
    if (r !== "custom") {
      history.replaceState(null, "", `/dashboard?range=${r}`);
      load();
    }
  };
  const picker = h("div", { class: "seg" },
    [...Object.keys(RANGES), "custom"].map((r) =>
      h("button", { type: "button", class: r === range ? "on" : "", dataset: { range: r }, onclick: () => pick(r) }, r === "custom" ? "Custom…" : `Last ${r}`)));
  custom.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!from.value) {
      from.focus();
      return;
    }
    const next = new URLSearchParams({ from: from.value });
    if (to.value) next.set("to", to.value);
    history.replaceState(null, "", `/dashboard?${next}`);
    load();
  });
  const body = h("div", { class: "dash" });
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Dashboard"), h("div", { class: "toolbar" }, custom, picker)), body);
  let seq = 0;
  /** The chosen range as instants, and how many time buckets to chart it with. */
  function timeWindow() {
    if (range !== "custom") {
      const end = new Date();
      return { from: new Date(end.getTime() - RANGES[range]), to: end, buckets: BUCKETS[range], short: range === "1h" || range === "24h" };
    }
    const start = new Date(from.value);
    const end = to.value ? new Date(to.value) : new Date();
    return { from: start, to: end, buckets: 24, short: end - start <= 2 * 8.64e7 };
  }
  async function load() {
    const mine = ++seq;
    const w = timeWindow();
    if (Number.isNaN(w.from.getTime()) || Number.isNaN(w.to.getTime()) || w.to <= w.from) {
      mount(body, notice("error", "Invalid time range", "The start must be before the end."));
      return;
    }
    const span = { from: w.from.toISOString(), to: w.to.toISOString() };
    mount(body, h("div", { class: "loading" }, "Loading metrics…"));
    let all, llm, byModel, byAgent, byUser, byTool, catalog, trends, sdk;
    try {
      [all, llm, byModel, byAgent, byUser, byTool, catalog, trends, sdk] = await Promise.all([
        get("metrics", { ...span, buckets: w.buckets }),
        get("metrics", { ...span, kind: "llm" }),
        get("metrics/model", { ...span, kind: "llm", buckets: w.buckets }),
        get("metrics/agent", span),
        get("metrics/user", span),
        get("metrics/tool", { ...span, kind: "tool" }),
        models().catch(() => null),
        get("scores/trends", span).catch(() => ({ rows: [] })),
        get("sdk/health").catch(() => ({ services: [] })),
      ]);
    } catch (e) {
      if (mine === seq) mount(body, notice("error", "Could not load metrics", e.message));
      return;
    }
    if (mine !== seq) return;
    const losses = sdkLosses(sdk.services);
    const total = all.rows[0];
    if (!total || !total.span_count) {
      mount(body, losses, notice("empty", "No spans in this time range", "Pick a longer range, or send some traces."));
      return;
    }
    const llmRow = llm.rows[0] || {};
    const savings = cacheSavingsByModel(byModel.rows, catalog);
    mount(body,
      losses,
      h("div", { class: "kpis kpis-8" },
        kpi("Cost", f.costText(total.cost_usd, total.unpriced_span_count, total.total_tokens), "kpi-cost",
          total.unpriced_span_count ? `${f.int(total.unpriced_span_count)} LLM call${total.unpriced_span_count === 1 ? "" : "s"} without a price` : null, f.costTitle(total.unpriced_span_count)),
        kpi("Tokens", f.int(total.total_tokens), null, `${f.int(total.input_tokens)} in · ${f.int(total.output_tokens)} out`),
        kpi("Cache savings", savings.known ? f.usd(savings.net) : "–", null, savings.unknown.length ? `no price for ${savings.unknown.join(", ")}` : `${f.int(llmRow.cache_read_tokens)} cached input tokens`),
        kpi("LLM calls", f.int(llmRow.span_count)),
        kpi("Error rate", f.pct(total.error_count / total.span_count), null, `${f.int(total.error_count)} of ${f.int(total.span_count)} spans`),
        kpi("Retries", f.int(total.retry_count)),
        kpi("LLM latency p95", f.ms(llmRow.latency?.p95_ms), null, `p50 ${f.ms(llmRow.latency?.p50_ms)} · p99 ${f.ms(llmRow.latency?.p99_ms)}`),
        kpi("TTFT p95", f.ms(llmRow.ttft?.p95_ms), null, `p50 ${f.ms(llmRow.ttft?.p50_ms)} · p99 ${f.ms(llmRow.ttft?.p99_ms)}`)),
      h("div", { class: "charts" },
        card("Cost over time by model", "wide", (el) => costOverTime(el, byModel, w.short), unpricedNote(byModel.rows, "unpriced-by-model")),
        forecastCard(),
        workflowCard(),
        whatIfRangeCard(span),
        card("Cost by agent", "", (el) => barChart(el, top(byAgent.rows, "cost_usd"), "cost_usd", "cost", f.usd), unpricedNote(byAgent.rows, "unpriced-by-agent")),
        card("Cost by user", "", (el) => barChart(el, top(byUser.rows, "cost_usd"), "cost_usd", "cost", f.usd), unpricedNote(byUser.rows, "unpriced-by-user")),
        card("Tokens by model", "", (el) => tokens(el, byModel.rows)),
        card("Cache savings by model", "", (el) => savingsChart(el, savings)),
        card("LLM latency by model (p50 / p95 / p99)", "", (el) => percentiles(el, byModel.rows, "latency")),
        card("Time to first token by model (p50 / p95 / p99)", "", (el) => percentiles(el, byModel.rows, "ttft")),
        card("Error rate over time", "wide", (el) => errorRate(el, all, w.short)),
        card("Evaluations by day (pass rate of pass/fail scores, mean of numeric ones)", "wide", (el) => scoreTrends(el, trends.rows)),
        card("Slowest tools (p95)", "wide", (el) => slowTools(el, byTool.rows))));
  }
  load();
}

/**
 * A warning naming each service whose SDK reported lost spans (dropped on a full queue or
 * lost to export errors), from `/api/v1/sdk/health`; `null` when none lost any.
 */
function sdkLosses(services) {
  const lossy = (services || []).filter((s) => s.dropped + s.failed > 0);
  if (!lossy.length) return null;
  const plural = (n, word) => `${f.int(n)} ${word}${n === 1 ? "" : "s"}`;
  return h("div", { class: "notice warn sdk-losses", id: "sdk-losses" },
    h("strong", null, `${plural(lossy.length, "service")} lost spans before they reached Spanlens`),
    h("ul", null, lossy.map((s) => {
      const lost = [
        s.dropped ? `dropped ${plural(s.dropped, "span")} (SDK queue full)` : null,
        s.failed ? `lost ${plural(s.failed, "span")} to export errors` : null,
      ].filter(Boolean).join(" and ");
      const processes = s.instances === 1 ? "1 process" : `${f.int(s.instances)} processes`;
      const last = f.ago(new Date(s.last_report_ns / 1e6).toISOString());
      return h("li", { dataset: { service: s.service, dropped: s.dropped, failed: s.failed } },
        h("b", null, s.service || "(no service.name)"), ` ${lost}`,
        h("span", { class: "sub" }, ` · ${f.int(s.exported)} exported, ${f.int(s.queued)} queued · ${processes}, last report ${last}`));
    })));
}

function kpi(label, value, id, sub, title) {
  return h("div", { class: "kpi", id, title }, h("div", { class: "stat-label" }, label), h("div", { class: "kpi-value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
}

/**
 * The groups of a cost chart whose LLM calls had no price, named under the chart: a bar or a
 * stack cannot show them, and leaving them out silently would read as $0 (issue #12 item 7).
 * A group with nothing priced also shows its tokens (all of them unpriced).
 */
function unpricedNote(rows, id) {
  const u = rows.filter((r) => r.unpriced_span_count > 0);
  if (!u.length) return null;
  const n = u.reduce((a, r) => a + r.unpriced_span_count, 0);
  return h("div", { class: "sub unpriced-note", id, title: f.costTitle(n) },
    "Unpriced, not in the chart: ",
    u.map((r, i) => [i ? "; " : "", h("b", null, r.key ?? "(none)"), " ",
      `${f.int(r.unpriced_span_count)} call${r.unpriced_span_count === 1 ? "" : "s"}`,
      r.cost_usd ? ` (plus ${f.usd(r.cost_usd)} priced)` : `, ${f.int(r.total_tokens)} tokens`]));
}

/** A chart card; `draw` fills it after it is in the DOM (a chart measures its container). */
function card(title, cls, draw, note) {
  const el = h("div", { class: "chart" });
  const c = h("div", { class: `card ${cls}` }, h("h3", null, title), el, note);
  requestAnimationFrame(() => {
    try {
      draw(el);
    } catch (e) {
      mount(el, notice("error", "Chart failed", e.message));
    }
  });
  return c;
}

function top(rows, field, n = 10) {
  return rows.filter((r) => r.key && r[field]).sort((a, b) => b[field] - a[field]).slice(0, n);
}

/** A bucket's start: clock time for short ranges, else the date (and hour when buckets are shorter than a day). */
function bucketLabel(b, short) {
  const d = new Date(b.from);
  if (short) return f.clock(b.from).slice(0, 5);
  const hours = (new Date(b.to) - d) < 8.64e7;
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric", hour: hours ? "2-digit" : undefined });
}

/** The palette's colours in order, for `n` series (or the ones a chart asks for). */
function colored(series, colors = PALETTE) {
  return series.map((x, i) => ({ ...x, color: x.color || colors[i % colors.length] }));
}

function costOverTime(el, m, short) {
  const models = top(m.rows, "cost_usd", 8).map((r) => r.key);
  const labels = m.buckets.map((b) => bucketLabel(b, short));
  const series = models.map((name) => ({
    name,
    values: m.buckets.map((b) => round(b.rows.find((r) => r.key === name)?.cost_usd || 0)),
  }));
  drawChart(el, { labels, series: colored(series), stacked: true, fmt: f.usd, timeAxis: true, height: 260 });
  el.dataset.totalCost = String(m.rows.reduce((a, r) => a + (r.cost_usd || 0), 0));
}

/**
 * Daily cost forecast (issue #6): the history the server fitted (bars) and, drawn as lines,
 * the point forecast with the lower and upper bounds of its 95% interval, the interval shaded
 * between them. The forecast line sets off from the last day's actual cost; the interval
 * covers only the forecast days, never the history.
 * Independent of the chosen range: the server uses the complete UTC days before today.
 */
function forecastCard() {
  const el = h("div", { class: "chart", id: "forecast-chart" });
  const summary = h("div", { class: "sub", id: "forecast-summary" });
  let horizon = 7;
  const seg = h("div", { class: "seg" }, [7, 30].map((n) =>
    h("button", { type: "button", class: n === horizon ? "on" : "", dataset: { horizon: String(n) }, onclick: () => { horizon = n; show(); } }, `Next ${n} days`)));
  let seq = 0;
  async function show() {
    const mine = ++seq;
    seg.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.horizon === String(horizon)));
    let v;
    try {
      v = await get("forecast", { horizon_days: horizon });
    } catch (e) {
      if (mine === seq) mount(el, notice("error", "Could not load the forecast", e.message));
      return;
    }
    if (mine !== seq) return;
    const t = v.total;
    if (!t.points.length) {
      mount(summary);
      mount(el, h("div", { class: "muted empty-chart" }, t.error || "Not enough history to forecast"));
      return;
    }
    const hist = t.history.daily;
    const day = (d) => new Date(`${d}T00:00:00Z`).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
    const labels = [...hist.map((x) => day(x.date)), ...t.points.map((p) => day(p.date))];
    const actual = hist.map((x) => round(x.cost_usd));
    const none = t.points.map(() => null);
    const ahead = (field) => t.points.map((p) => round(p[field]));
    // The forecast joins the last actual day; the bounds start at the first forecast day.
    const joined = [...hist.map((_, i) => (i === hist.length - 1 ? actual[i] : null)), ...ahead("cost_usd")];
    const bound = (field) => [...hist.map(() => null), ...ahead(field)];
    drawChart(el, {
      labels,
      series: [
        { name: "actual", values: [...actual, ...none], color: "#1f77d0" },
        { name: "forecast", type: "line", values: joined, color: "#7c4dff" },
        { name: "lower 95%", type: "line", values: bound("lower_usd"), color: "#b0a8d8", dashed: true },
        { name: "upper 95%", type: "line", values: bound("upper_usd"), color: "#b0a8d8", dashed: true },
      ],
      band: { lower: "lower 95%", upper: "upper 95%", color: "#7c4dff" },
      fmt: f.usd, timeAxis: true, height: 260,
    });
    el.dataset.forecastTotal = String(t.total.cost_usd);
    el.dataset.forecastDays = String(t.points.length);
    const unpriced = t.history.unpriced_span_count || 0;
    mount(summary, `Next ${horizon} days: ${f.usd(t.total.cost_usd)} (95%: ${f.usd(t.total.lower_usd)} – ${f.usd(t.total.upper_usd)}), `
      + `fitted on ${t.history.days} days ${t.history.from} – ${t.history.to} (${t.method === "linear_trend_weekly" ? "trend + weekday pattern" : "linear trend"})`,
      unpriced ? h("span", { class: "unpriced", title: f.costTitle(unpriced) }, `; ${f.int(unpriced)} LLM call${unpriced === 1 ? "" : "s"} without a price ${unpriced === 1 ? "is" : "are"} in neither`) : null);
  }
  const c = h("div", { class: "card wide" },
    h("div", { class: "card-head" }, h("h3", null, "Daily cost forecast"), seg), el, summary);
  requestAnimationFrame(() => show());
  return c;
}

/**
 * "Workflow cost at a volume": pick a workflow (a trace name), type the runs expected over a
 * horizon, and read its cost per run and the projected cost (`GET /api/v1/forecast/workflow`).
 */
function workflowCard() {
  const name = h("input", { type: "text", id: "wf-name", placeholder: "workflow (trace name)", list: "wf-names", required: true, autocomplete: "off" });
  const names = h("datalist", { id: "wf-names" });
  const runs = h("input", { type: "number", id: "wf-runs", min: "0", step: "1", placeholder: "runs", required: true, title: "Runs expected over the horizon" });
  const horizon = h("select", { id: "wf-horizon" }, [7, 30, 90].map((d) => h("option", { value: String(d), selected: d === 30 }, `next ${d} days`)));
  const out = h("div", { class: "wf-forecast", id: "wf-forecast" },
    h("div", { class: "muted" }, "Pick a workflow and the runs you expect: the projection uses its cost per run over the last 30 days."));
  const form = h("form", { class: "wf-form" }, name, names, runs, horizon, h("button", { type: "submit", class: "primary" }, "Project"));
  get("traces", { limit: 200 }).then((page) => {
    for (const n of [...new Set(page.items.map((t) => t.name))].sort()) names.append(h("option", { value: n }));
  }).catch(() => {});
  let seq = 0;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const mine = ++seq;
    mount(out, h("div", { class: "loading" }, "Projecting…"));
    let v;
    try {
      v = await get("forecast/workflow", { name: name.value, runs: runs.value, horizon_days: horizon.value });
    } catch (err) {
      if (mine === seq) mount(out, notice("error", "Could not project the workflow", err.message));
      return;
    }
    if (mine !== seq) return;
    const r = v.per_run;
    const p = v.projection;
    const range = (lo, hi) => (lo == null ? "" : ` (95%: ${f.usd(lo)} – ${f.usd(hi)})`);
    mount(out,
      h("div", { class: "kpi-value", id: "wf-projected", dataset: { costUsd: String(p.cost_usd) } }, f.usd(p.cost_usd)),
      h("div", { class: "sub" }, `${f.int(p.expected_runs)} runs of ${v.name} in the next ${p.horizon_days} days${range(p.low_usd, p.high_usd)}`),
      h("div", { class: "sub" }, `per run: mean ${f.usd(r.mean_usd)}${range(r.mean_low_usd, r.mean_high_usd)}, p50 ${f.usd(r.p50_usd)}, p95 ${f.usd(r.p95_usd)}; `,
        `${f.int(v.history.runs)} runs in the last ${Math.round(v.history.days)} days (${v.history.runs_per_day.toFixed(2)} a day)`),
      h("div", { class: `wf-confidence ${v.confidence}`, id: "wf-confidence" }, `Confidence ${v.confidence}: ${v.confidence_note}`));
  });
  return h("div", { class: "card wide", id: "workflow-card" }, h("h3", null, "Workflow cost at a volume"), form, out);
}

function barChart(el, rows, field, name, fmt) {
  drawChart(el, { labels: rows.map((r) => r.key), series: colored([{ name, values: rows.map((r) => round(r[field])) }]), fmt });
}

function tokens(el, rows) {
  const r = top(rows, "total_tokens", 8);
  drawChart(el, {
    labels: r.map((x) => x.key),
    series: colored([
      { name: "uncached input", values: r.map((x) => x.input_tokens - x.cache_read_tokens - x.cache_write_tokens) },
      { name: "cache read", values: r.map((x) => x.cache_read_tokens) },
      { name: "cache write", values: r.map((x) => x.cache_write_tokens) },
      { name: "output", values: r.map((x) => x.output_tokens) },
    ]),
    stacked: true, fmt: f.int, axisFmt: compact,
  });
}

/**
 * Savings per model: cached tokens at the full input price minus at the cache prices
 * (cache writes cost more than input, so they subtract).
 */
function cacheSavingsByModel(rows, catalog) {
  const out = { net: 0, known: false, unknown: [], rows: [] };
  for (const r of rows) {
    if (!r.key || (!r.cache_read_tokens && !r.cache_write_tokens)) continue;
    const p = catalog && priceFor(catalog, { model: r.key });
    if (!p) {
      out.unknown.push(r.key);
      continue;
    }
    const full = p.input_per_million_usd / 1e6;
    const read = r.cache_read_tokens * (full - (p.cache_read_per_million_usd ?? p.input_per_million_usd) / 1e6);
    const write = r.cache_write_tokens * (full - (p.cache_write_per_million_usd ?? p.input_per_million_usd) / 1e6);
    out.rows.push({ key: r.key, read, write, net: read + write });
    out.net += read + write;
    out.known = true;
  }
  return out;
}

function savingsChart(el, s) {
  const r = s.rows.sort((a, b) => b.net - a.net);
  drawChart(el, { labels: r.map((x) => x.key), series: [{ name: "saved", values: r.map((x) => round(x.net)), color: "#2e9e4f" }], fmt: f.usd });
}

function percentiles(el, rows, field) {
  const r = rows.filter((x) => x.key && x[field]?.count).sort((a, b) => b[field].p95_ms - a[field].p95_ms).slice(0, 8);
  const series = ["p50", "p95", "p99"].map((p) => ({ name: p, values: r.map((x) => x[field][`${p}_ms`]) }));
  drawChart(el, { labels: r.map((x) => x.key), series: colored(series, ["#9cc3ee", "#1f77d0", "#0b3d75"]), fmt: f.ms });
}

function errorRate(el, all, short) {
  const b = all.buckets;
  drawChart(el, {
    labels: b.map((x) => bucketLabel(x, short)),
    series: [{
      name: "error rate", type: "line", area: true, color: "#d93025",
      values: b.map((x) => { const r = x.rows[0]; return r && r.span_count ? Math.round((r.error_count / r.span_count) * 1000) / 10 : 0; }),
    }],
    fmt: (v) => `${v}%`, timeAxis: true,
  });
}

/** One line per score name over the days that have scores; pass/fail scores as a pass rate in %. */
function scoreTrends(el, rows) {
  if (!rows.length) {
    mount(el, h("div", { class: "muted empty-chart" }, "No scores in this range: run evaluators (spanlens serve --evaluators FILE) or POST /api/v1/scores"));
    return;
  }
  el.dataset.scoreNames = String(new Set(rows.map((r) => r.name)).size);
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const names = [...new Set(rows.map((r) => r.name))].sort();
  const datasets = names.map((n) => {
    const byDay = new Map(rows.filter((r) => r.name === n).map((r) => [r.day, r]));
    const boolean = rows.some((r) => r.name === n && r.data_type === "boolean");
    return {
      name: boolean ? `${n} (pass %)` : n,
      type: "line",
      // A day without scores of this name is a gap in its line, not a zero.
      values: days.map((d) => { const r = byDay.get(d); return r ? round(boolean ? r.mean * 100 : r.mean) : null; }),
    };
  });
  drawChart(el, { labels: days, series: colored(datasets), fmt: (v) => String(v), timeAxis: true });
}

function slowTools(el, rows) {
  const r = rows.filter((x) => x.key && x.latency?.count).sort((a, b) => b.latency.p95_ms - a.latency.p95_ms).slice(0, 12);
  if (!r.length) {
    mount(el, h("div", { class: "muted empty-chart" }, "No tool calls in this range"));
    return;
  }
  const max = r[0].latency.p95_ms || 1;
  mount(el, h("table", { class: "grid compact tools" },
    h("thead", null, h("tr", null, h("th", null, "Tool"), h("th", { class: "num" }, "Calls"), h("th", { class: "num" }, "p50"), h("th", { class: "num" }, "p95"), h("th", { class: "num" }, "p99"), h("th", { class: "num" }, "Errors"), h("th", { class: "num" }, "Retries"), h("th", null, ""))),
    h("tbody", null, r.map((x) => h("tr", null, h("td", null, x.key), h("td", { class: "num" }, f.int(x.span_count)),
      h("td", { class: "num" }, f.ms(x.latency.p50_ms)), h("td", { class: "num" }, f.ms(x.latency.p95_ms)), h("td", { class: "num" }, f.ms(x.latency.p99_ms)),
      h("td", { class: `num ${x.error_count ? "err-text" : ""}` }, f.int(x.error_count)), h("td", { class: "num" }, f.int(x.retry_count)),
      h("td", { class: "barcell" }, h("div", { class: "meter" }, h("i", { style: { width: `${(x.latency.p95_ms / max) * 100}%`, background: "#d9822b" } }))))))));
}

function round(v) {
  return Math.round((v || 0) * 1e6) / 1e6;
}
