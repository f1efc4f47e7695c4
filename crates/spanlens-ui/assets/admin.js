// Project settings (`/admin`), for the project's admins: API keys (made, shown once, revoked),
// people and their roles, and PII redaction. Every change goes through the API with the
// session's CSRF token; what the server says is shown as it is.

import { get, send, project } from "./api.js";
import { h, mount, notice, copyButton } from "./dom.js";
import * as f from "./format.js";

const SCOPES = ["ingest", "read", "admin"];
const ROLES = ["viewer", "member", "admin"];

function nsTime(ns) {
  return ns ? f.time(new Date(Number(ns) / 1e6).toISOString()) : "never";
}

function failure(box, title) {
  return (e) => mount(box, notice("error", title, e.message));
}

export async function render(app) {
  const keys = h("section", { class: "card admin-keys" });
  const people = h("section", { class: "card admin-people" });
  const redaction = h("section", { class: "card admin-redaction" });
  const retention = h("section", { class: "card admin-retention" });
  const quota = h("section", { class: "card admin-quota" });
  const forwarding = h("section", { class: "card admin-forwarding" });
  const audit = h("section", { class: "card admin-audit" });
  mount(app, h("div", { class: "page-head" }, h("h1", null, `Settings of ${project()}`)), keys, people, redaction, retention, quota, forwarding, audit);
  await Promise.all([renderKeys(keys), renderPeople(people), renderRedaction(redaction), renderRetention(retention), renderQuota(quota),
    renderForwarding(forwarding), renderAudit(audit)]);
}

// Where the project's spans are sent on, with each destination's delivery counters on this
// server; the project's own destinations are edited as JSON (secrets come back masked and are
// kept when saved masked).
async function renderForwarding(box) {
  const path = `projects/${encodeURIComponent(project())}/forwarding`;
  let state;
  try {
    state = await get(path);
  } catch (e) {
    mount(box, h("h2", null, "Forwarding"), notice("error", "Could not load the forwarding destinations", e.message));
    return;
  }
  const own = state.destinations.filter((d) => d.source === "project").map((d) => d.config);
  const editor = h("textarea", { name: "destinations", rows: 8, spellcheck: "false", class: "code" });
  editor.value = JSON.stringify(own, null, 2);
  const out = h("div");
  const form = h("form", { class: "redaction" },
    h("label", null, "This project's destinations (JSON: name, kind otlp|langfuse|langsmith, endpoint, credentials, filters)", editor),
    h("button", { type: "submit", class: "primary" }, "Save"), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let destinations;
    try {
      destinations = JSON.parse(editor.value || "[]");
    } catch (err) {
      failure(out, "Not JSON")(err);
      return;
    }
    try {
      await send("PUT", path, { destinations });
      await renderForwarding(box);
    } catch (err) {
      failure(out, "Not saved")(err);
    }
  });
  const rows = state.destinations.map((d) => {
    const c = d.counters;
    return h("tr", { class: "destination" },
      h("td", null, d.config.name), h("td", null, d.config.kind), h("td", null, d.source),
      h("td", { class: "muted" }, d.config.endpoint),
      h("td", { class: "num" }, f.int(c.spans)), h("td", { class: "num" }, f.int(c.sent)),
      h("td", { class: "num" }, f.int(c.retried)), h("td", { class: "num" }, f.int(c.rejected)),
      h("td", { class: "num" }, f.int(c.dropped + c.dropped_overflow)), h("td", { class: "num" }, f.int(c.queued)),
      h("td", { class: "num" }, `${c.lag_seconds.toFixed(1)} s`),
      h("td", { class: "muted" }, c.last_error || ""));
  });
  mount(box, h("h2", null, "Forwarding"),
    rows.length ? h("table", { class: "grid" },
      h("thead", null, h("tr", null, ["Destination", "Kind", "From", "Endpoint", "Spans", "Sent", "Retried", "Rejected", "Dropped", "Queued", "Lag", "Last error"]
        .map((c, i) => h("th", { class: i >= 4 && i <= 10 ? "num" : "" }, c)))),
      h("tbody", null, rows))
      : notice("empty", "Not forwarded", "Spans of this project stay here. Add a destination below, or start the server with --forward FILE."),
    form);
}

async function renderQuota(box) {
  const path = `projects/${encodeURIComponent(project())}/quota`;
  let state;
  try {
    state = await get(path);
  } catch (e) {
    mount(box, h("h2", null, "Quota"), notice("error", "Could not load the quota", e.message));
    return;
  }
  const rate = h("input", { type: "number", name: "spans-per-second", min: 1, placeholder: "no limit", value: state.quota.spans_per_second ?? "" });
  const bytes = h("input", { type: "number", name: "bytes-per-day", min: 1, placeholder: "no limit", value: state.quota.bytes_per_day ?? "" });
  const out = h("div");
  const form = h("form", { class: "redaction" },
    h("label", null, "Spans per second", rate), h("label", null, "Bytes per day (UTC)", bytes),
    h("button", { type: "submit", class: "primary" }, "Save"), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const n = (el) => (el.value === "" ? null : Number(el.value));
    try {
      await send("PUT", path, { spans_per_second: n(rate), bytes_per_day: n(bytes) });
      await renderQuota(box);
    } catch (err) {
      failure(out, "Not saved")(err);
    }
  });
  const usageRow = (name, u) => h("tr", null, h("td", null, name), h("td", { class: "num" }, f.int(u.spans)),
    h("td", { class: "num" }, f.int(u.bytes_today)), h("td", { class: "num" }, f.int(u.throttled_requests)), h("td", { class: "num" }, f.int(u.throttled_spans)));
  mount(box, h("h2", null, "Quota"), form,
    h("table", { class: "grid" },
      h("thead", null, h("tr", null, ["On this server", "Spans", "Bytes today", "Refused requests", "Refused spans"].map((c, i) => h("th", { class: i ? "num" : "" }, c)))),
      h("tbody", null, usageRow("project", state.usage), state.keys.map((k) => usageRow(`key ${k.prefix} (${k.name})`, k.usage)))));
}

async function renderRetention(box) {
  const path = `projects/${encodeURIComponent(project())}/retention`;
  let state;
  try {
    state = await get(path);
  } catch (e) {
    mount(box, h("h2", null, "Retention"), notice("error", "Could not load the retention", e.message));
    return;
  }
  const days = h("input", { type: "number", name: "days", min: 1, max: 36500, placeholder: "forever", value: state.settings.days ?? "" });
  const payloadDays = h("input", { type: "number", name: "payload-days", min: 1, max: 36500, placeholder: "as long as the trace", value: state.settings.payload_days ?? "" });
  const out = h("div");
  const form = h("form", { class: "redaction" },
    h("label", null, "Keep traces (days after their last span)", days),
    h("label", null, "Keep inputs, outputs and messages (days)", payloadDays),
    h("button", { type: "submit", class: "primary" }, "Save"), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const n = (el) => (el.value === "" ? null : Number(el.value));
    try {
      await send("PUT", path, { days: n(days), payload_days: n(payloadDays) });
      mount(out, notice("ok", "Saved", "The sweeper applies it now, in small batches."));
    } catch (err) {
      failure(out, "Not saved")(err);
    }
  });
  const last = state.last_sweep;
  mount(box, h("h2", null, "Retention"), form,
    last ? h("p", { class: "muted" }, `Last sweep ${nsTime(last.finished_ns)}: ${f.int(last.erased.traces)} traces (${f.int(last.erased.spans)} spans) deleted, ${f.int(last.erased.payloads)} spans' payloads cleared.`) : null);
}

async function renderAudit(box) {
  let entries;
  try {
    entries = (await get("audit", { limit: 100 })).entries;
  } catch (e) {
    mount(box, h("h2", null, "Audit log"), notice("error", "Could not load the audit log", e.message));
    return;
  }
  mount(box, h("h2", null, "Audit log"),
    entries.length ? h("table", { class: "grid" },
      h("thead", null, h("tr", null, ["When", "Who", "Action", "Target", "Detail"].map((c) => h("th", null, c)))),
      h("tbody", null, entries.map((e) => h("tr", null,
        h("td", null, nsTime(e.time_ns)), h("td", null, e.actor), h("td", null, h("code", null, e.action)),
        h("td", null, e.target), h("td", { class: "muted" }, e.detail == null ? "" : JSON.stringify(e.detail))))))
      : notice("empty", "Nothing yet", "Keys, people, deletions and settings changes are recorded here."));
}

async function renderKeys(box) {
  let list;
  try {
    list = (await get("keys")).keys;
  } catch (e) {
    mount(box, h("h2", null, "API keys"), notice("error", "Could not load the keys", e.message));
    return;
  }
  const name = h("input", { name: "key-name", placeholder: "What it is for" });
  const scope = h("select", { name: "key-scope" }, SCOPES.map((s) => h("option", { value: s }, s)));
  const shown = h("div", { class: "new-secret" });
  const form = h("form", { class: "filter-row" }, name, scope, h("button", { type: "submit", class: "primary" }, "Make key"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const made = await send("POST", "keys", { name: name.value, scopes: [scope.value] });
      await renderKeys(box);
      const again = box.querySelector(".new-secret");
      mount(again, notice("ok", "Copy the key now: it is shown once", h("code", { class: "secret" }, made.secret)), copyButton(made.secret));
    } catch (err) {
      failure(shown, "Key not made")(err);
    }
  });
  const rows = list.map((k) =>
    h("tr", { class: k.revoked_ns ? "muted" : "" },
      h("td", null, h("code", null, k.prefix)),
      h("td", null, k.name),
      h("td", null, k.scopes.join(", ")),
      h("td", null, nsTime(k.last_used_ns)),
      h("td", null, k.revoked_ns ? `revoked ${nsTime(k.revoked_ns)}` :
        h("button", { type: "button", onclick: async (e) => {
          e.target.disabled = true;
          try {
            await send("DELETE", `keys/${encodeURIComponent(k.id)}`);
            await renderKeys(box);
          } catch (err) {
            failure(shown, "Key not revoked")(err);
          }
        } }, "Revoke"))));
  mount(box, h("h2", null, "API keys"),
    rows.length ? h("table", { class: "grid" },
      h("thead", null, h("tr", null, ["Key", "Name", "Scopes", "Last used", ""].map((c) => h("th", null, c)))),
      h("tbody", null, rows)) : notice("empty", "No keys", "Make one for each service that sends spans."),
    form, shown);
}

async function renderPeople(box) {
  let list;
  try {
    list = (await get("accounts")).accounts;
  } catch (e) {
    mount(box, h("h2", null, "People"), notice("error", "Could not load the people", e.message));
    return;
  }
  const out = h("div");
  const roleSelect = (current, onchange) =>
    h("select", { onchange }, [...ROLES, "none"].map((r) => h("option", { value: r, selected: r === current }, r)));
  const rows = list.map((a) =>
    h("tr", null,
      h("td", null, a.name),
      h("td", null, roleSelect(a.roles[project()], async (e) => {
        const role = e.target.value === "none" ? null : e.target.value;
        try {
          await send("PUT", `accounts/${encodeURIComponent(a.name)}`, { role });
          await renderPeople(box);
        } catch (err) {
          failure(out, "Role not changed")(err);
        }
      }))));
  const name = h("input", { name: "person-name", placeholder: "Sign-in name", autocomplete: "off" });
  const password = h("input", { name: "person-password", type: "password", placeholder: "Password (10+ characters)", autocomplete: "new-password" });
  const role = roleSelect("viewer");
  role.querySelector("option[value=none]").remove();
  const form = h("form", { class: "filter-row" }, name, password, role, h("button", { type: "submit", class: "primary" }, "Add person"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await send("POST", "accounts", { name: name.value, password: password.value, role: role.value });
      await renderPeople(box);
    } catch (err) {
      failure(out, "Person not added")(err);
    }
  });
  mount(box, h("h2", null, "People"),
    rows.length ? h("table", { class: "grid" }, h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Role"))), h("tbody", null, rows))
      : notice("empty", "Nobody yet", "Add the people who may sign in to this project."),
    form, out);
}

async function renderRedaction(box) {
  let state;
  try {
    state = await get(`projects/${encodeURIComponent(project())}/redaction`);
  } catch (e) {
    mount(box, h("h2", null, "PII redaction"), notice("error", "Could not load the redaction settings", e.message));
    return;
  }
  const s = state.settings;
  const builtin = h("input", { type: "checkbox", name: "builtin", checked: s.builtin });
  const lines = (xs) => xs.join("\n");
  const rules = h("textarea", { name: "rules", rows: 3, placeholder: "name=regex, one per line" }, lines(s.rules.map((r) => `${r.name}=${r.pattern}`)));
  const drop = h("textarea", { name: "drop", rows: 2, placeholder: "attribute keys to drop (prefix*), one per line" }, lines(s.drop_attributes));
  const keep = h("textarea", { name: "keep", rows: 2, placeholder: "attribute keys to keep as sent, one per line" }, lines(s.keep_attributes));
  const out = h("div");
  const split = (t) => t.value.split("\n").map((x) => x.trim()).filter(Boolean);
  const form = h("form", { class: "redaction" },
    h("label", null, builtin, " Built-in detectors (secrets, e-mail, cards, IBANs, IPs, phone numbers)"),
    h("label", null, "Custom rules", rules), h("label", null, "Drop attributes", drop), h("label", null, "Keep attributes", keep),
    h("button", { type: "submit", class: "primary" }, "Save"), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {
      builtin: builtin.checked,
      rules: split(rules).map((l) => {
        const at = l.indexOf("=");
        return { name: l.slice(0, at), pattern: l.slice(at + 1) };
      }),
      drop_attributes: split(drop),
      keep_attributes: split(keep),
    };
    try {
      await send("PUT", `projects/${encodeURIComponent(project())}/redaction`, body);
      mount(out, notice("ok", "Saved", "Spans ingested from now on are redacted with these settings."));
    } catch (err) {
      failure(out, "Not saved")(err);
    }
  });
  const server = state.server;
  const serverNote = server.builtin || server.rules.length || server.drop_attributes.length
    ? notice("empty", "The server redacts every project too", `${server.builtin ? "built-in detectors" : ""} ${server.rules.map((r) => r.name).join(", ")} ${server.drop_attributes.join(", ")}`.trim())
    : null;
  mount(box, h("h2", null, "PII redaction"), serverNote, form);
}
