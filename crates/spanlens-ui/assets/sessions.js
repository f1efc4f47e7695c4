// Sessions (`/sessions`) and one session read as a conversation (`/sessions/{id}`).

import { get } from "./api.js";
import { h, mount, notice, link, idChip, fitPlaceholders } from "./dom.js";
import * as f from "./format.js";
import { statusBadge } from "./traces.js";
import { fillScores } from "./scores.js";

export async function renderList(app) {
  const q = new URLSearchParams(location.search);
  const results = h("div", { class: "results" });
  const user = h("input", { type: "search", name: "user", placeholder: "Filter by user id", value: q.get("user") || "" });
  const form = h("form", { class: "filters" }, h("div", { class: "filter-row" }, user, h("button", { type: "submit", class: "primary" }, "Apply")));
  const back = [];
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (user.value.trim()) next.set("user", user.value.trim());
    history.pushState(null, "", `/sessions${next.size ? `?${next}` : ""}`);
    back.length = 0;
    load();
  });
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Sessions")), form, results);
  fitPlaceholders(form);
  async function load() {
    const q = new URLSearchParams(location.search);
    let page;
    try {
      page = await get("sessions", { user: q.get("user"), cursor: q.get("cursor"), limit: 50 });
    } catch (e) {
      mount(results, notice("error", "Could not load sessions", e.message));
      return;
    }
    if (!page.items.length) {
      mount(results, notice("empty", "No sessions", q.get("user") ? "This user has no sessions." : "Traces with a session id (session.id, gen_ai.conversation.id, …) are grouped here."));
      return;
    }
    const go = (cursor) => {
      if (cursor) q.set("cursor", cursor);
      else q.delete("cursor");
      history.pushState(null, "", `/sessions?${q}`);
      load();
    };
    mount(results, h("table", { class: "grid sessions" },
      h("thead", null, h("tr", null, ["Session", "User", "Traces", "Spans", "Errors", "Tokens", "Cost", "First", "Last"].map((c, i) => h("th", { class: i >= 2 && i <= 6 ? "num" : "" }, c)))),
      h("tbody", null, page.items.map((s) => h("tr", { class: s.error_count ? "err" : "" },
        h("td", null, link(`/sessions/${encodeURIComponent(s.session_id)}`, s.session_id)),
        h("td", null, s.user_id || "–"),
        h("td", { class: "num" }, f.int(s.trace_count)),
        h("td", { class: "num" }, f.int(s.span_count)),
        h("td", { class: "num" }, f.int(s.error_count)),
        h("td", { class: "num" }, f.int(s.total_tokens)),
        h("td", { class: `num cost${s.unpriced_span_count ? " unpriced" : ""}`, title: f.costTitle(s.unpriced_span_count) }, f.costText(s.total_cost_usd, s.unpriced_span_count, s.total_tokens)),
        h("td", null, f.time(s.first_time)),
        h("td", null, f.time(s.last_time), h("div", { class: "sub" }, f.ago(s.last_time))))))),
    h("div", { class: "pager" },
      h("button", { type: "button", disabled: !back.length && !q.has("cursor"), onclick: () => go(back.pop()) }, "← Previous"),
      h("button", { type: "button", disabled: !page.next_cursor, onclick: () => { back.push(q.get("cursor") || ""); go(page.next_cursor); } }, "Next →")));
  }
  load();
}

/** The readable text of a payload: a string, or the usual text field of an object. */
function text(p) {
  if (!p) return null;
  const v = p.value;
  if (typeof v === "string") return v;
  if (v && typeof v === "object") {
    for (const k of ["message", "content", "question", "query", "input", "text", "reply", "answer", "output", "response", "summary"]) {
      if (typeof v[k] === "string") return v[k];
    }
    return JSON.stringify(v, null, 2);
  }
  return v == null ? null : String(v);
}

/** The user turn and assistant turn of one trace: root input/output, else its LLM messages. */
async function turn(t) {
  const trace = encodeURIComponent(t.trace_id);
  const tree = await get(`traces/${trace}/tree`);
  const rootId = t.root_span_id || tree.spans.find((s) => !s.parent_span_id)?.span_id;
  const root = rootId ? await get(`traces/${trace}/spans/${encodeURIComponent(rootId)}`) : null;
  let user = text(root?.input);
  let assistant = text(root?.output);
  if (!user || !assistant) {
    const llms = tree.spans.filter((s) => s.kind === "llm");
    if (llms.length) {
      const [first, last] = await Promise.all([llms[0], llms[llms.length - 1]].map((s) => get(`traces/${trace}/spans/${encodeURIComponent(s.span_id)}`)));
      user ??= [...(first.input_messages || [])].reverse().find((m) => m.role === "user")?.content;
      assistant ??= (last.output_messages || []).map((m) => m.content).filter((c) => typeof c === "string").join("\n");
    }
  }
  return { user, assistant, error: root?.status === "error" ? root.status_message || "error" : null };
}

export async function renderOne(app, id) {
  mount(app, h("div", { class: "loading" }, "Loading session…"));
  let data;
  try {
    data = await get(`sessions/${encodeURIComponent(id)}`);
  } catch (e) {
    mount(app, notice(e.status === 404 ? "empty" : "error", e.status === 404 ? "Session not found" : "Could not load the session", e.message), h("p", null, link("/sessions", "← Sessions")));
    return;
  }
  const s = data.session;
  const scoresEl = h("div", { class: "score-chips", id: "session-scores" });
  fillScores(scoresEl, { session_id: id }, true);
  const convo = h("div", { class: "conversation" });
  mount(app,
    h("div", { class: "page-head" },
      h("div", null, h("div", { class: "crumbs" }, link("/sessions", "Sessions"), " / session"),
        h("h1", null, id), h("div", { class: "meta" }, "session ", idChip(id), s.user_id ? [" · user ", h("b", null, s.user_id)] : null, " · ", f.time(s.first_time), " → ", f.time(s.last_time)),
        scoresEl),
      h("div", { class: "stats" },
        [["Turns", f.int(s.trace_count)], ["Spans", f.int(s.span_count)], ["Errors", f.int(s.error_count)], ["Tokens", f.int(s.total_tokens)], ["Cost", f.costText(s.total_cost_usd, s.unpriced_span_count, s.total_tokens), "session-cost", f.costTitle(s.unpriced_span_count)]]
          .map(([l, v, id, title]) => h("div", { class: "stat", id, title }, h("div", { class: "stat-label" }, l), h("div", { class: "stat-value" }, v))))),
    convo);
  // Turns in order; each fetches its root span lazily, a few at a time.
  const slots = data.traces.map((t) => {
    const slot = h("div", { class: "turn", dataset: { traceId: t.trace_id } },
      h("div", { class: "turn-head" }, link(`/traces/${encodeURIComponent(t.trace_id)}`, t.name || "trace"), statusBadge(t.status), h("span", { class: "muted" }, `${f.time(t.start_time)} · ${f.ms(t.duration_ms)} · ${f.int(t.total_tokens)} tok · ${f.costText(t.total_cost_usd, t.unpriced_span_count, t.total_tokens)}`)),
      h("div", { class: "loading small" }, "…"));
    convo.append(slot);
    return [t, slot];
  });
  if (!slots.length) convo.append(notice("empty", "This session has no traces"));
  let next = 0;
  const worker = async () => {
    while (next < slots.length) {
      const [t, slot] = slots[next++];
      try {
        const r = await turn(t);
        slot.lastChild.replaceWith(h("div", { class: "bubbles" },
          h("div", { class: "bubble user" }, h("div", { class: "who" }, s.user_id || "user"), r.user || h("i", { class: "muted" }, "(no input recorded)")),
          r.error ? h("div", { class: "bubble error" }, h("div", { class: "who" }, "error"), r.error) : null,
          h("div", { class: "bubble assistant" }, h("div", { class: "who" }, "assistant"), r.assistant || h("i", { class: "muted" }, "(no output recorded)"))));
      } catch (e) {
        slot.lastChild.replaceWith(notice("error", "Could not load this turn", e.message));
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}
