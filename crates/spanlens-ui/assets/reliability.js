// Reliability (`/reliability`): how retried calls recovered, grouped by provider, tool and error
// type, the most recent retry timelines, and rate-limit headroom over time — all from
// `GET /api/v1/recovery`, which reads the same retry events the span panel shows.

import { get } from "./api.js";
import { h, mount, notice, link } from "./dom.js";
import * as f from "./format.js";

const RANGES = { "24h": 8.64e7, "7d": 6.048e8, "30d": 2.592e9 };
const BUCKETS = { "24h": 24, "7d": 28, "30d": 30 };

export async function render(app) {
  const q = new URLSearchParams(location.search);
  let range = RANGES[q.get("range")] ? q.get("range") : "7d";
  const body = h("div", { class: "reliability" });
  const picker = h("div", { class: "seg" }, Object.keys(RANGES).map((r) =>
    h("button", { type: "button", class: r === range ? "on" : "", dataset: { range: r }, onclick: () => pick(r) }, `Last ${r}`)));
  function pick(r) {
    range = r;
    picker.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.range === r));
    history.replaceState(null, "", `/reliability?range=${r}`);
    load();
  }
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Reliability"), h("div", { class: "toolbar" }, picker)), body);
  let seq = 0;
  async function load() {
    const mine = ++seq;
    const to = new Date();
    const from = new Date(to.getTime() - RANGES[range]);
    mount(body, h("div", { class: "loading" }, "Loading recovery…"));
    let r, alerts, recon;
    const span = { from: from.toISOString(), to: to.toISOString() };
    try {
      [r, alerts, recon] = await Promise.all([
        get("recovery", { ...span, buckets: BUCKETS[range] }),
        get("alerts").catch((e) => ({ error: e.message })),
        get("reconciliation", span).catch((e) => ({ error: e.message })),
      ]);
    } catch (e) {
      if (mine === seq) mount(body, notice("error", "Could not load the recovery report", e.message));
      return;
    }
    if (mine !== seq) return;
    mount(body, view(r), alertsCard(alerts), reconciliationCard(recon));
  }
  load();
}

function kpi(label, value, id, sub) {
  return h("div", { class: "kpi", id }, h("div", { class: "stat-label" }, label), h("div", { class: "kpi-value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
}

function view(r) {
  const t = r.recovery_time;
  return [
    h("div", { class: "kpis" },
      kpi("Retried spans", f.int(r.spans_with_retries), "rel-retried", `${f.int(r.retries)} retries in all`),
      kpi("Recovery rate", f.pct(r.recovery_rate), "rel-rate", `${f.int(r.recovered)} recovered · ${f.int(r.failed)} failed`),
      kpi("Recovery time p50", f.ms(t?.p50_ms), null, t ? `first failure → success, ${f.int(t.count)} spans` : "no recovered span"),
      kpi("Recovery time p95", f.ms(t?.p95_ms), null, t ? `max ${f.ms(t.max_ms)} · mean ${f.ms(t.mean_ms)}` : null)),
    h("div", { class: "rel-grid" },
      groupCard("By provider", r.by_provider, "rel-provider"),
      groupCard("By tool", r.by_tool, "rel-tool"),
      groupCard("By error type", r.by_error_type, "rel-error")),
    h("div", { class: "card wide", style: { marginTop: "10px" } }, h("h3", null, "Rate-limit headroom (remaining / limit, lowest per time bucket)"), headroom(r.rate_limits)),
    h("div", { class: "card wide", style: { marginTop: "10px" } },
      h("h3", null, `Recent retries (${f.int(r.timelines.length)}${r.timelines_truncated ? ` of ${f.int(r.spans_with_retries)}` : ""})`),
      timelines(r.timelines)),
  ];
}

/** Alert rules (`serve --alerts FILE`): last value, announced state, notifications, delivery errors. */
function alertsCard(a) {
  const card = (...c) => h("div", { class: "card wide", id: "rel-alerts", style: { marginTop: "10px" } }, h("h3", null, "Alerts"), ...c);
  if (a.error) return card(notice("error", "Could not load the alerts", a.error));
  if (!a.configured) return card(h("div", { class: "muted" }, "No alert rules: start the server with spanlens serve --alerts FILE (see the README)."));
  return card(h("table", { class: "grid compact" },
    h("thead", null, h("tr", null, h("th", null, "Rule"), h("th", null, "Metric"), h("th", { class: "num" }, "Last value"), h("th", { class: "num" }, "Threshold"), h("th", { class: "num" }, "Window"), h("th", null, "State"), h("th", { class: "num" }, "Sent"), h("th", null, "Last error"))),
    h("tbody", null, a.alerts.map((v) => h("tr", { class: v.state.status === "firing" ? "err" : "", dataset: { alert: v.rule.name } },
      h("td", null, v.rule.name), h("td", null, v.rule.metric),
      h("td", { class: "num" }, v.state.value == null ? h("span", { class: "muted" }, "no data") : String(Math.round(v.state.value * 1e4) / 1e4)),
      h("td", { class: "num" }, String(v.rule.threshold)), h("td", { class: "num" }, f.ms(v.rule.window_seconds * 1000)),
      h("td", { class: v.state.status === "firing" ? "err-text" : "good" }, v.state.status, v.state.pending ? " (change pending cooldown)" : ""),
      h("td", { class: "num" }, f.int(v.notifications)),
      h("td", { class: "muted" }, v.last_error || "–"))))));
}

/** Provider-reported against catalog-computed cost per model. */
function reconciliationCard(r) {
  const card = (...c) => h("div", { class: "card wide", id: "rel-reconciliation", style: { marginTop: "10px" } }, h("h3", null, "Cost reconciliation (provider-reported vs computed)"), ...c);
  if (r.error) return card(notice("error", "Could not load the reconciliation", r.error));
  if (!r.rows?.length) return card(h("div", { class: "muted" }, "No span in this range carries a provider-reported cost."));
  return card(h("table", { class: "grid compact" },
    h("thead", null, h("tr", null, h("th", null, "Model"), h("th", { class: "num" }, "Spans"), h("th", { class: "num" }, "Reported"), h("th", { class: "num" }, "Computed"), h("th", { class: "num" }, "Difference"), h("th", { class: "num" }, "%"))),
    h("tbody", null, r.rows.map((x) => h("tr", null, h("td", null, x.model), h("td", { class: "num" }, f.int(x.spans)),
      h("td", { class: "num" }, f.usd(x.reported_usd)), h("td", { class: "num", title: x.unpriced_spans ? `${f.int(x.unpriced_spans)} of these spans have no catalog price, so the computed cost leaves them out (and so does the difference)` : undefined }, f.costText(x.computed_usd, x.unpriced_spans)),
      h("td", { class: "num" }, f.usd(x.difference_usd)), h("td", { class: "num" }, x.difference_pct == null ? "–" : `${Math.round(x.difference_pct * 10) / 10}%`))))));
}

function groupCard(title, rows, id) {
  return h("div", { class: "card", id },
    h("h3", null, title),
    rows.length
      ? h("table", { class: "grid compact" },
        h("thead", null, h("tr", null, h("th", null, ""), h("th", { class: "num" }, "Spans"), h("th", { class: "num" }, "Retries"), h("th", { class: "num" }, "Recovered"), h("th", null, "Rate"))),
        h("tbody", null, rows.map((g) => h("tr", null, h("td", null, g.key), h("td", { class: "num" }, f.int(g.spans)), h("td", { class: "num" }, f.int(g.retries)), h("td", { class: "num" }, f.int(g.recovered)),
          h("td", { class: "barcell", title: `${f.int(g.recovered)} of ${f.int(g.spans)} recovered` },
            h("div", { class: "rate-cell" },
              h("div", { class: "meter" }, h("i", { style: { width: `${g.recovery_rate * 100}%`, background: g.recovery_rate >= 0.8 ? "#2e9e4f" : g.recovery_rate >= 0.5 ? "#d9822b" : "#d93025" } })),
              h("span", { class: "rate-num" }, f.pct(g.recovery_rate))))))))
      : h("div", { class: "muted" }, "None in this range"));
}

function headroomColor(v) {
  return v < 0.1 ? "#d93025" : v < 0.3 ? "#d9822b" : "#2e9e4f";
}

function headroom(series) {
  if (!series.length) return h("div", { class: "muted" }, "No rate-limit headers recorded in this range");
  return h("table", { class: "grid compact", id: "rel-headroom" },
    h("thead", null, h("tr", null, h("th", null, "Provider"), h("th", null, "Window"), h("th", { class: "num" }, "Calls"), h("th", { class: "num" }, "Lowest"), h("th", null, "Over time (bar height = lowest headroom)"))),
    h("tbody", null, series.map((s) => h("tr", null,
      h("td", null, s.provider), h("td", null, s.window), h("td", { class: "num" }, f.int(s.samples)),
      h("td", { class: `num ${s.min_headroom < 0.1 ? "err-text" : ""}` }, f.pct(s.min_headroom)),
      h("td", null, h("div", { class: "headroom" }, s.buckets.map((b) => b.min_headroom == null
        ? h("i", { class: "none", title: `${f.time(b.from)}: no calls` })
        : h("i", { style: { height: `${Math.max(4, b.min_headroom * 100)}%`, background: headroomColor(b.min_headroom) }, title: `${f.time(b.from)} – ${f.time(b.to)}: lowest ${f.pct(b.min_headroom)}, mean ${f.pct(b.mean_headroom)}, ${f.int(b.min_remaining)} of ${f.int(b.limit)} left, ${f.int(b.samples)} calls${b.throttled ? `, ${f.int(b.throttled)} throttled` : ""}` }))))))));
}

/** The span panel's retry track, drawn from a timeline's attempts. */
function track(t) {
  const ends = t.attempts.map((a) => a.offset_ms + (a.backoff_ms || 0));
  const first = t.attempts[0]?.offset_ms || 0;
  const done = t.recovery_ms != null ? first + t.recovery_ms : Math.max(0, ...ends);
  const total = Math.max(1, done, ...ends);
  return h("div", { class: "retry-track rel-track" },
    t.attempts.map((a) => [
      h("div", { class: "retry-fail", style: { left: `${(a.offset_ms / total) * 100}%` }, title: `attempt ${a.attempt} failed at +${f.ms(a.offset_ms)}: ${a.error_type || "error"}` }, "✕"),
      a.backoff_ms ? h("div", { class: "retry-backoff", style: { left: `${(a.offset_ms / total) * 100}%`, width: `${Math.min(100 - (a.offset_ms / total) * 100, (a.backoff_ms / total) * 100)}%` }, title: `backoff ${f.ms(a.backoff_ms)}` }) : null,
    ]),
    h("div", { class: `retry-end ${t.outcome === "recovered" ? "ok" : "fail"}`, style: { left: `${(done / total) * 100}%` } }, t.outcome === "recovered" ? "✓" : "■"));
}

function timelines(list) {
  if (!list.length) return h("div", { class: "muted" }, "No retried spans in this range");
  return h("table", { class: "grid compact", id: "rel-timelines" },
    h("thead", null, h("tr", null, h("th", null, "Started"), h("th", null, "Span"), h("th", null, "Errors"), h("th", { class: "num" }, "Retries"), h("th", null, "Timeline"), h("th", null, "Outcome"), h("th", { class: "num" }, "Recovery"))),
    h("tbody", null, list.map((t) => h("tr", { class: t.outcome === "failed" ? "err" : "" },
      h("td", null, f.time(t.start_time)),
      h("td", null, link(`/traces/${encodeURIComponent(t.trace_id)}?span=${encodeURIComponent(t.span_id)}`, t.name), h("span", { class: "muted" }, ` ${t.kind}${t.provider ? ` · ${t.provider}` : ""}${t.agent ? ` · ${t.agent}` : ""}`)),
      h("td", null, [...new Set(t.attempts.map((a) => a.error_type || "error"))].join(", ") || h("span", { class: "muted" }, "count only")),
      h("td", { class: "num" }, f.int(t.retries)),
      h("td", null, t.attempts.length ? track(t) : null),
      h("td", { class: t.outcome === "recovered" ? "good" : "err-text" }, t.outcome, t.stop_reason ? ` (${t.stop_reason})` : ""),
      h("td", { class: "num" }, f.ms(t.recovery_ms))))));
}
