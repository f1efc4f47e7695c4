// Live view (`/live`): spans as the server commits them, from the server-sent events stream.

import { h, mount, notice, link } from "./dom.js";
import { url, project } from "./api.js";
import * as f from "./format.js";
import { statusBadge } from "./traces.js";

const KEEP = 500;

export function render(app) {
  const body = h("tbody");
  const state = h("span", { class: "live-state connecting" }, "connecting…");
  const counter = h("span", { class: "muted" }, "");
  const pause = h("button", { type: "button" }, "Pause");
  const kindSel = h("select", null, h("option", { value: "" }, "All kinds"), Object.keys(f.KINDS).map((k) => h("option", { value: k }, k)));
  const empty = notice("empty", "Waiting for spans…", "New spans appear here as soon as they are committed. Send some with any OTel SDK to /v1/traces.");
  const table = h("table", { class: "grid live", hidden: true },
    h("thead", null, h("tr", null, ["Time", "Kind", "Name", "Model", "Duration", "Tokens", "Cost", "Status", "Trace"].map((c, i) => h("th", { class: i >= 4 && i <= 6 ? "num" : "" }, c)))), body);
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Live"), h("div", { class: "toolbar" }, state, counter, kindSel, pause)), empty, table);
  let paused = false;
  let seen = 0;
  let missed = 0;
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
  });
  const es = new EventSource(url("live", { project: project() }));
  es.addEventListener("open", () => {
    state.className = "live-state on";
    state.textContent = "● live";
  });
  es.addEventListener("error", () => {
    // EventSource reconnects by itself; say so rather than failing silently.
    state.className = "live-state off";
    state.textContent = "disconnected, retrying…";
  });
  es.addEventListener("lagged", (e) => {
    missed += Number(e.data) || 0;
  });
  // Deleted traces leave the view (by id; a session's or user's by the rows they made).
  es.addEventListener("deleted", (e) => {
    let d;
    try {
      d = JSON.parse(e.data);
    } catch {
      return;
    }
    const rows = [...body.children];
    const traces = new Set(d.trace_ids);
    for (const row of rows) {
      if ((d.session_id && row.dataset.sessionId === d.session_id) || (d.user_id && row.dataset.userId === d.user_id)) {
        traces.add(row.dataset.traceId);
      }
    }
    for (const row of rows) if (traces.has(row.dataset.traceId)) row.remove();
  });
  es.addEventListener("span", (e) => {
    let s;
    try {
      s = JSON.parse(e.data);
    } catch {
      return;
    }
    seen++;
    counter.textContent = `${f.int(seen)} spans received${missed ? `, ${f.int(missed)} missed (too slow)` : ""}`;
    if (paused || (kindSel.value && s.kind !== kindSel.value)) return;
    const k = f.kind(s.kind);
    table.hidden = false;
    empty.hidden = true;
    body.prepend(h("tr", { class: s.status === "error" ? "err" : "", dataset: { spanId: s.span_id, traceId: s.trace_id, sessionId: s.session_id || "", userId: s.user_id || "" } },
      h("td", null, f.clock(s.start_time)),
      h("td", null, h("span", { style: { color: k.color } }, k.icon, " ", s.kind)),
      h("td", null, s.name),
      h("td", null, s.model || ""),
      h("td", { class: "num" }, f.ms(s.duration_ms)),
      h("td", { class: "num" }, s.tokens != null ? f.int(s.tokens) : ""),
      h("td", { class: "num" }, s.cost_usd != null ? f.usd(s.cost_usd) : s.unpriced ? h("span", { class: "unpriced", title: f.costTitle(1, s.model) }, "unpriced") : ""),
      h("td", null, statusBadge(s.status)),
      h("td", null, link(`/traces/${encodeURIComponent(s.trace_id)}?span=${encodeURIComponent(s.span_id)}`, s.trace_id.slice(0, 12) + "…"))));
    while (body.childElementCount > KEEP) body.lastElementChild.remove();
  });
  return () => es.close();
}
