// Traces page (`/`): filters, sortable columns and cursor pages, all mirrored in the query
// string so a reload or a shared link shows the same list; saved views name such a list (its
// filters, sort and columns) for the whole project, and `/?view=ID` opens one.

import { get, send } from "./api.js";
import { h, mount, notice, link, fitPlaceholders, snippetView } from "./dom.js";
import * as f from "./format.js";

/** Relative time ranges offered by the picker, in ms. */
export const RANGES = { "15m": 9e5, "1h": 3.6e6, "6h": 2.16e7, "24h": 8.64e7, "7d": 6.048e8, "30d": 2.592e9 };

/** Filter inputs: URL key, label, input type, placeholder. */
const FIELDS = [
  ["name", "Name", "text", "exact trace name"],
  ["model", "Model", "text", "gpt-4o"],
  ["provider", "Provider", "text", "openai"],
  ["user", "User", "text", "user id"],
  ["session", "Session", "text", "session id"],
  ["tag", "Tags", "text", "a, b (all must match)"],
  ["min_duration_ms", "Min ms", "number", "0"],
  ["max_duration_ms", "Max ms", "number", ""],
  ["min_cost", "Min $", "number", "0.01"],
  ["max_cost", "Max $", "number", ""],
  ["score_name", "Score", "text", "score name"],
  ["score_min", "Score ≥", "number", "0.5"],
];

/** Sortable columns: header, API sort field, the column's name in a saved view (`cols`). */
const COLUMNS = [
  ["Name", "name", "name"], ["Start", "start_time", "start"], ["Duration", "duration", "duration"], ["Spans", "span_count", "spans"],
  ["Tokens", "tokens", "tokens"], ["Cost", "cost", "cost"], ["Status", "status", "status"], ["User", "user", "user"],
];

/** The columns shown: the `cols` parameter's (in the table's order), else all. */
function shownColumns(q) {
  const want = (q.get("cols") || "").split(",").filter(Boolean);
  return want.length ? COLUMNS.filter((c) => want.includes(c[2])) : COLUMNS;
}

/** The page's query string as a view keeps it: no page, view or column parameters. */
function viewQuery(q) {
  const keep = new URLSearchParams(q);
  for (const k of ["cursor", "view", "cols"]) keep.delete(k);
  return keep.toString();
}

/** The link that opens `view`: its query, its columns, and its id (for saving over it). */
function viewHref(view) {
  const q = new URLSearchParams(view.query);
  if (view.columns.length) q.set("cols", view.columns.join(","));
  q.set("view", view.id);
  return `/?${q}`;
}

/** Turns the page's query string into API parameters (a relative range becomes `from`). */
export function apiParams(q) {
  const p = {};
  for (const k of ["name", "status", "model", "provider", "user", "session", "min_duration_ms", "max_duration_ms", "min_cost", "max_cost", "score_name", "score_min", "text", "q", "content", "sort", "order", "cursor", "from", "to"]) {
    if (q.get(k)) p[k] = q.get(k);
  }
  for (const k of PROMPT_KEYS) if (q.get(k)) p[k] = q.get(k);
  const tags = (q.get("tag") || "").split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) p.tag = tags;
  const range = q.get("range");
  if (range && RANGES[range]) p.from = new Date(Date.now() - RANGES[range]).toISOString();
  for (const k of ["from", "to"]) if (p[k] && !/Z$|[+-]\d\d:\d\d$/.test(p[k])) p[k] = new Date(p[k]).toISOString();
  p.limit = 50;
  return p;
}

export async function render(app) {
  let q = new URLSearchParams(location.search);
  // A short link (`/?view=ID` alone) opens the view's own query.
  if (q.get("view") && [...q.keys()].every((k) => k === "view")) {
    try {
      const view = await get(`views/${encodeURIComponent(q.get("view"))}`);
      history.replaceState(null, "", viewHref(view));
      q = new URLSearchParams(location.search);
    } catch (e) {
      mount(app, notice("error", "Could not open the saved view", e.message));
      return undefined;
    }
  }
  const results = h("div", { class: "results" });
  const outcomes = h("div", { class: "outcomes muted", id: "trace-outcomes" });
  const form = filterForm(q, (next) => {
    for (const k of ["view", "cols"]) if (q.get(k)) next.set(k, q.get(k));
    history.pushState(null, "", `/?${next}`);
    load();
  });
  const views = h("div", { class: "views-bar" });
  // The agent graph of the listed workflow (its name and range follow the filters).
  const graphLink = link("/graph", "Agent graph");
  graphLink.id = "traces-graph-link";
  // A review queue of the listed traces (its filter follows the list's).
  const queueLink = link("/queues", "Review in a queue");
  queueLink.id = "traces-queue-link";
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Traces"), h("div", { class: "page-actions" }, graphLink, queueLink, views)), form, promptChips(q), outcomes, results);
  renderViews(views, q);
  fitPlaceholders(form);
  let ctl;
  // Previous pages' cursors, so "Previous" works without the API having a backwards cursor.
  const back = [];

  async function load() {
    ctl?.abort();
    ctl = new AbortController();
    const q = new URLSearchParams(location.search);
    const g = new URLSearchParams([...q].filter(([k]) => ["name", "range", "from", "to"].includes(k)));
    graphLink.setAttribute("href", `/graph${g.size ? `?${g}` : ""}`);
    queueLink.setAttribute("href", `/queues?${new URLSearchParams({ query: queueQuery(q) })}`);
    results.dataset.state = "loading";
    loadOutcomes(outcomes, q, ctl.signal);
    let page;
    try {
      page = await get("traces", apiParams(q), ctl.signal);
    } catch (e) {
      if (e.name === "AbortError") return;
      results.dataset.state = "error";
      mount(results, notice("error", "Could not load traces", e.message));
      return;
    }
    mount(results, table(q, page, {
      sort(field) {
        const cur = q.get("sort") || "start_time";
        const order = cur === field && (q.get("order") || "desc") === "desc" ? "asc" : "desc";
        q.set("sort", field);
        q.set("order", order);
        q.delete("cursor");
        back.length = 0;
        history.pushState(null, "", `/?${q}`);
        load();
      },
      next() {
        back.push(q.get("cursor") || "");
        q.set("cursor", page.next_cursor);
        history.pushState(null, "", `/?${q}`);
        load();
      },
      prev() {
        const c = back.pop();
        if (c) q.set("cursor", c);
        else q.delete("cursor");
        history.pushState(null, "", `/?${q}`);
        load();
      },
      hasPrev: back.length > 0 || q.has("cursor"),
    }));
    results.dataset.state = "ready";
  }
  load();
  return () => ctl?.abort();
}

/** Status filter choices: URL value, label. `error` is a failed trace (its root failed);
 * `recovered` did not fail but holds errors it recovered from. */
const STATUSES = [["error", "failed"], ["recovered", "recovered errors"], ["ok", "ok"], ["unset", "unset"]];

/** The counts line above the list: matching traces, failed ones, ones with recovered errors;
 * each count filters the list to its traces. */
async function loadOutcomes(el, q, signal) {
  const p = apiParams(q);
  for (const k of ["status", "sort", "order", "cursor", "limit"]) delete p[k];
  let o;
  try {
    o = await get("traces/outcomes", p, signal);
  } catch (e) {
    if (e.name !== "AbortError") mount(el, `Counts unavailable: ${e.message}`);
    return;
  }
  const pick = (status) => {
    const next = new URLSearchParams(location.search);
    if (status) next.set("status", status);
    else next.delete("status");
    next.delete("cursor");
    return `/?${next}`;
  };
  mount(el,
    link(pick(""), `${f.int(o.traces)} traces`), " · ",
    h("span", { class: o.failed ? "err-text" : "" }, link(pick("error"), `${f.int(o.failed)} failed`)), " · ",
    h("span", { class: o.recovered ? "warn-text" : "" }, link(pick("recovered"), `${f.int(o.recovered)} with recovered errors`)));
  el.dataset.traces = o.traces;
  el.dataset.failed = o.failed;
  el.dataset.recovered = o.recovered;
}

function filterForm(q, apply) {
  const range = h("select", { name: "range", title: "Time range" },
    h("option", { value: "" }, "All time"),
    Object.keys(RANGES).map((r) => h("option", { value: r, selected: q.get("range") === r }, `Last ${r}`)),
    h("option", { value: "custom", selected: !q.get("range") && (q.get("from") || q.get("to")) }, "Custom…"));
  const from = h("input", { type: "datetime-local", name: "from", value: q.get("from") || "", title: "From (local time)" });
  const to = h("input", { type: "datetime-local", name: "to", value: q.get("to") || "", title: "To (local time)" });
  const custom = h("span", { class: "custom-range" }, from, " – ", to);
  const syncCustom = () => (custom.hidden = range.value !== "custom");
  range.addEventListener("change", syncCustom);
  syncCustom();
  const status = h("select", { name: "status", title: "Status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map(([s, label]) => h("option", { value: s, selected: q.get("status") === s }, label)));
  const text = h("input", { type: "search", name: "text", placeholder: "Names, ids, users, tags contain…", value: q.get("text") || "", class: "grow", title: "Part of a trace id, a name, the user, session, service or a tag" });
  const content = h("input", { type: "search", name: "q", placeholder: "Full-text search: names, inputs, outputs, messages…", value: q.get("q") || q.get("content") || "", class: "grow", title: "Traces with a span holding every one of these words (whole words, any case)" });
  const inputs = FIELDS.map(([key, label, type, ph]) =>
    h("label", { class: "field" }, h("span", null, label),
      h("input", { type, name: key, placeholder: ph, value: q.get(key) || "", step: type === "number" ? "any" : undefined, min: type === "number" ? "0" : undefined })));
  const form = h("form", { class: "filters", autocomplete: "off" },
    h("div", { class: "filter-row" }, range, custom, status, text, content,
      h("button", { type: "submit", class: "primary" }, "Apply"),
      h("button", { type: "button", onclick: () => { form.reset(); for (const el of form.elements) if (el.name) el.value = ""; syncCustom(); submit(); } }, "Clear")),
    h("div", { class: "filter-row" }, inputs));
  function submit() {
    const next = new URLSearchParams();
    for (const el of form.elements) {
      if (!el.name || !el.value || el.name === "from" || el.name === "to") continue;
      if (el.name === "range" && el.value === "custom") continue;
      next.set(el.name, el.value.trim());
    }
    if (range.value === "custom") {
      if (from.value) next.set("from", from.value);
      if (to.value) next.set("to", to.value);
    }
    for (const k of ["sort", "order"]) if (q.get(k)) next.set(k, q.get(k));
    for (const k of PROMPT_KEYS) if (q.get(k)) next.set(k, q.get(k));
    apply(next);
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
  return form;
}

function table(q, page, act) {
  if (!page.items.length && !page.next_cursor) {
    const filtered = [...q.keys()].some((k) => !["sort", "order", "cursor", "view", "cols"].includes(k));
    return notice("empty", filtered ? "No trace matches these filters" : "No traces yet",
      filtered ? "Widen the time range or clear a filter." : "Send spans to this server (OTLP on /v1/traces) or start it with --demo.");
  }
  const sort = q.get("sort") || "start_time";
  const order = q.get("order") || "desc";
  const cols = shownColumns(q);
  const on = (name) => cols.some((c) => c[2] === name);
  const head = h("tr", null, cols.map(([label, field]) =>
    h("th", { class: `sortable ${field === sort ? `sorted ${order}` : ""} ${["duration", "span_count", "tokens", "cost"].includes(field) ? "num" : ""}`, dataset: { sort: field }, onclick: () => act.sort(field), title: `Sort by ${label.toLowerCase()}` },
      label, field === sort ? (order === "asc" ? " ▲" : " ▼") : "")));
  const rows = page.items.map((t) => h("tr", { class: t.status === "error" ? "err" : recovered(t) ? "recovered" : "", dataset: { traceId: t.trace_id } },
    on("name") ? h("td", { class: "name" }, link(`/traces/${encodeURIComponent(t.trace_id)}`, t.name || "(unnamed)"),
      t.tags?.length ? h("span", { class: "tags" }, t.tags.map((x) => h("span", { class: "tag" }, x))) : null,
      t.session_id ? h("div", { class: "sub" }, "session ", link(`/sessions/${encodeURIComponent(t.session_id)}`, t.session_id)) : null,
      t.hit ? h("div", { class: "sub search-hit" }, link(`/traces/${encodeURIComponent(t.trace_id)}?span=${encodeURIComponent(t.hit.span_id)}&q=${encodeURIComponent(q.get("q") || q.get("content") || "")}`, t.hit.span_name || "(unnamed)"), ": ", snippetView(t.hit.snippet)) : null) : null,
    on("start") ? h("td", { title: t.start_time }, on("name") ? null : link(`/traces/${encodeURIComponent(t.trace_id)}`, f.time(t.start_time)),
      on("name") ? f.time(t.start_time) : null, h("div", { class: "sub" }, f.ago(t.start_time))) : null,
    on("duration") ? h("td", { class: "num" }, f.ms(t.duration_ms)) : null,
    on("spans") ? h("td", { class: "num" }, f.int(t.span_count), t.status === "error" && t.error_count ? h("div", { class: "sub err-text" }, `${f.int(t.error_count)} err`) : null) : null,
    on("tokens") ? h("td", { class: "num", title: `${f.int(t.input_tokens)} in / ${f.int(t.output_tokens)} out` }, f.int(t.total_tokens)) : null,
    on("cost") ? h("td", { class: `num cost${t.unpriced_span_count ? " unpriced" : ""}`, title: f.costTitle(t.unpriced_span_count) }, f.costText(t.total_cost_usd, t.unpriced_span_count, t.total_tokens)) : null,
    on("status") ? h("td", null, statusBadge(t.status === "error" ? "failed" : t.status, t.status),
      recovered(t) ? h("span", { class: "status recovered", title: `${f.int(t.error_count)} failed span${t.error_count === 1 ? "" : "s"}; the trace went on and did not fail` }, `${f.int(t.error_count)} recovered`) : null) : null,
    on("user") ? h("td", null, t.user_id || "–") : null));
  return h("div", null,
    h("table", { class: "grid traces" }, h("thead", null, head), h("tbody", null, rows)),
    h("div", { class: "pager" },
      h("button", { type: "button", disabled: !act.hasPrev, onclick: act.prev }, "← Previous"),
      h("span", { class: "muted" }, `${page.items.length} traces on this page`),
      h("button", { type: "button", disabled: !page.next_cursor, onclick: act.next, class: "next" }, "Next →")));
}

/** A trace that did not fail but holds errors it recovered from. */
function recovered(t) {
  return t.status !== "error" && t.error_count > 0;
}

/** A coloured status label: `text`, coloured as status `s` (default: the text). */
export function statusBadge(text, s = text) {
  return h("span", { class: `status ${s}` }, text);
}

/** The saved views bar: pick a view, save the list as it is now (name and columns), save over
 * or delete the open view. Members and admins save; a viewer's attempt shows the server's no. */
async function renderViews(box, q) {
  let views = [];
  try {
    views = (await get("views")).views;
  } catch (e) {
    mount(box, h("span", { class: "muted" }, `Saved views unavailable: ${e.message}`));
    return;
  }
  const current = views.find((v) => v.id === q.get("view"));
  const pick = h("select", { name: "view", title: "Saved views" },
    h("option", { value: "" }, views.length ? "Saved views…" : "No saved views"),
    views.map((v) => h("option", { value: v.id, selected: v.id === current?.id }, v.name)));
  pick.addEventListener("change", () => {
    const v = views.find((x) => x.id === pick.value);
    location.assign(v ? viewHref(v) : "/");
  });
  const out = h("span", { class: "views-message" });
  const name = h("input", { name: "view-name", placeholder: "View name", value: current?.name || "", maxlength: 100 });
  const shown = shownColumns(q).map((c) => c[2]);
  const boxes = COLUMNS.map(([label, , key]) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "view-col", value: key, checked: shown.includes(key) }), label));
  const editor = h("form", { class: "view-editor", hidden: true }, name, h("span", { class: "view-cols" }, boxes),
    h("button", { type: "submit", class: "primary" }, current ? "Save over" : "Save"),
    current ? h("button", { type: "button", name: "save-new", onclick: () => save(true) }, "Save as new") : null);
  async function save(asNew) {
    const cols = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    const body = { name: name.value.trim(), query: viewQuery(q), columns: cols.length === COLUMNS.length ? [] : cols };
    try {
      const v = current && !asNew ? await send("PUT", `views/${encodeURIComponent(current.id)}`, body) : await send("POST", "views", body);
      location.assign(viewHref(v));
    } catch (e) {
      mount(out, h("span", { class: "err-text" }, `Not saved: ${e.message}`));
    }
  }
  editor.addEventListener("submit", (e) => {
    e.preventDefault();
    save(false);
  });
  const open = h("button", { type: "button", name: "save-view", onclick: () => { editor.hidden = !editor.hidden; if (!editor.hidden) name.focus(); } }, current ? "Edit view" : "Save view");
  const del = current ? h("button", { type: "button", name: "delete-view", onclick: async () => {
    try {
      await send("DELETE", `views/${encodeURIComponent(current.id)}`);
      location.assign(`/?${viewQuery(q)}`);
    } catch (e) {
      mount(out, h("span", { class: "err-text" }, `Not deleted: ${e.message}`));
    }
  } }, "Delete view") : null;
  mount(box, pick, open, del, editor, out);
}

/** The list's query as a review queue's filter: its filters and sort, without page and size. */
function queueQuery(q) {
  const p = apiParams(q);
  delete p.limit;
  delete p.cursor;
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) for (const x of [v].flat()) out.append(k, x);
  return out.toString();
}

/** The prompt filters (set from the prompt versions page), kept in the URL beside the form's. */
const PROMPT_KEYS = ["prompt", "prompt_version"];

/** The prompt filters as removable chips: each links to the list without it (without the
 * template, the version goes too: a version needs its template). */
function promptChips(q) {
  const box = h("div", { class: "filter-chips", id: "filter-chips" });
  const without = (...keys) => {
    const next = new URLSearchParams(q);
    for (const k of [...keys, "cursor", "view"]) next.delete(k);
    return `/?${next}`;
  };
  const chip = (key, label, value, href) => {
    const remove = link(href, "×");
    remove.classList.add("chip-remove");
    remove.title = `Remove the ${label.toLowerCase()} filter`;
    remove.setAttribute("aria-label", remove.title);
    return h("span", { class: "filter-chip", dataset: { param: key }, title: value }, `${label}: `, h("b", null, value), remove);
  };
  if (q.get("prompt")) box.append(chip("prompt", "Prompt", q.get("prompt"), without("prompt", "prompt_version")));
  if (q.get("prompt_version")) box.append(chip("prompt_version", "Version", q.get("prompt_version"), without("prompt_version")));
  box.hidden = !box.children.length;
  return box;
}
