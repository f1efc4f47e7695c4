// Review queues (`/queues`): the project's queues with their progress and a form to make one
// from a trace-list filter or from failed scores; and the review screen (`/queues/{id}`), where a
// reviewer walks the queue item by item with the keyboard — the item's spans and the selected
// span's panel (inputs and outputs as text) beside a form of the queue's score definitions.
//
// Keys on the review screen: j / → next item, k / ← previous, y / n fill the current yes/no
// score, digits fill the current numeric score (the digit) or categorical one (the n-th label),
// a filled score moves the cursor to the next one; Enter submits and goes on, s skips.

import { get, send } from "./api.js";
import { h, mount, notice, link, navigate, idChip } from "./dom.js";
import * as f from "./format.js";
import { renderSpanPanel } from "./span.js";

/** A queue's progress as a bar and counts. */
function progressBar(p) {
  const total = p.total || 0;
  const part = (n) => (total ? `${(100 * n) / total}%` : "0%");
  return h("div", { class: "queue-progress", dataset: { total: String(total), done: String(p.done), skipped: String(p.skipped), pending: String(p.pending) } },
    h("div", { class: "queue-bar", title: `${p.done} done, ${p.skipped} skipped, ${p.pending} pending of ${total}` },
      h("span", { class: "queue-bar-done", style: { width: part(p.done) } }),
      h("span", { class: "queue-bar-skipped", style: { width: part(p.skipped) } })),
    h("span", { class: "queue-counts" }, `${p.done} done · ${p.skipped} skipped · ${p.pending} pending of ${total}`));
}

/** What a queue's source is, in words. */
function sourceText(s) {
  if (s.kind === "filter") return s.query ? `traces where ${s.query}` : "every trace";
  const fails = [];
  if (s.fail_at_most != null) fails.push(`≤ ${s.fail_at_most}`);
  if (s.fail_at_least != null) fails.push(`≥ ${s.fail_at_least}`);
  if (s.fail_labels?.length) fails.push(s.fail_labels.join(" | "));
  return `failed ${s.score} (${fails.join(" or ")})`;
}

function defText(d) {
  if (d.data_type === "numeric") return `${d.name} ${d.min}–${d.max}`;
  if (d.data_type === "categorical") return `${d.name}: ${d.labels.join(", ")}`;
  return `${d.name} yes/no`;
}

/**
 * Score definitions from text, one a line: `name: yes/no` (or `boolean`), `name: 1-5` (numeric
 * from 1 to 5), `name: a, b, c` (categorical labels).
 */
export function parseDefinitions(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf(":");
    const name = (at < 0 ? line : line.slice(0, at)).trim();
    const spec = at < 0 ? "" : line.slice(at + 1).trim();
    const range = spec.match(/^(-?\d+(?:\.\d+)?)\s*(?:-|–|\.\.)\s*(-?\d+(?:\.\d+)?)$/);
    if (!spec || /^(yes\/no|boolean|bool|y\/n)$/i.test(spec)) out.push({ name, data_type: "boolean" });
    else if (range) out.push({ name, data_type: "numeric", min: Number(range[1]), max: Number(range[2]) });
    else out.push({ name, data_type: "categorical", labels: spec.split(",").map((l) => l.trim()).filter(Boolean) });
  }
  return out;
}

export async function render(app) {
  const q = new URLSearchParams(location.search);
  const list = h("div", { class: "queue-list" }, h("div", { class: "loading" }, "Loading queues…"));
  const form = createForm(q, () => load());
  mount(app, h("div", { class: "page-head" }, h("h1", null, "Review queues")), list, form);

  async function load() {
    let data;
    try {
      data = await get("queues");
    } catch (e) {
      mount(list, notice("error", "Could not load the queues", e.message));
      return;
    }
    if (!data.queues.length) {
      mount(list, notice("empty", "No review queues yet", "Make one below from a trace-list filter or from a failed score."));
      return;
    }
    mount(list, h("table", { class: "queues" },
      h("thead", null, h("tr", null, ["Queue", "Items", "Progress", "Reviewers", ""].map((t) => h("th", null, t)))),
      h("tbody", null, data.queues.map(({ queue, progress }) => h("tr", { dataset: { queue: queue.id } },
        h("td", null, link(`/queues/${encodeURIComponent(queue.id)}`, h("b", null, queue.name)),
          h("div", { class: "muted" }, sourceText(queue.source)),
          h("div", { class: "muted" }, queue.scores.map(defText).join(" · "))),
        h("td", null, String(progress.total), queue.capped ? h("span", { class: "muted", title: "the source had more; a queue holds 500" }, " (capped)") : null),
        h("td", null, progressBar(progress)),
        h("td", null, progress.reviewers.map((r) => h("div", { class: "muted" }, `${r.reviewer}: ${r.done} done${r.skipped ? `, ${r.skipped} skipped` : ""}`))),
        h("td", null,
          h("button", { type: "button", class: "linklike", name: "refresh-queue", onclick: async (e) => {
            e.target.disabled = true;
            try {
              await send("POST", `queues/${encodeURIComponent(queue.id)}/refresh`);
            } catch (err) {
              alert(err.message);
            }
            load();
          } }, "Refresh"), " ",
          h("button", { type: "button", class: "linklike", name: "delete-queue", onclick: async () => {
            if (!confirm(`Delete the queue “${queue.name}”? The scores given stay.`)) return;
            try {
              await send("DELETE", `queues/${encodeURIComponent(queue.id)}`);
            } catch (err) {
              alert(err.message);
            }
            load();
          } }, "Delete")))))));
  }
  await load();
}

/** The form making a queue; `?query=` (from the trace list's link) fills the filter. */
function createForm(q, done) {
  const err = h("div", { class: "form-error", role: "alert" });
  const name = h("input", { name: "queue-name", required: true, maxlength: "100", placeholder: "e.g. Failed checkouts" });
  const kind = h("select", { name: "queue-source" },
    h("option", { value: "filter" }, "Traces of a trace-list filter"),
    h("option", { value: "failed_scores" }, "Traces or spans with a failed score"));
  const query = h("input", { name: "queue-query", value: q.get("query") || "", placeholder: "e.g. status=error&model=gpt-4o", size: "40" });
  const score = h("input", { name: "queue-score", placeholder: "score name, e.g. valid_json" });
  const atMost = h("input", { name: "queue-fail-at-most", type: "number", step: "any", value: "0", placeholder: "fails at most" });
  const labels = h("input", { name: "queue-fail-labels", placeholder: "or failing labels, comma-separated" });
  const defs = h("textarea", { name: "queue-scores", rows: "3", cols: "40" }, "correct: yes/no");
  const filterPart = h("div", { class: "queue-part", dataset: { part: "filter" } }, h("label", null, "Filter ", query));
  const scorePart = h("div", { class: "queue-part", dataset: { part: "failed_scores" }, hidden: true },
    h("label", null, "Score ", score), " ", h("label", null, "Fails at most ", atMost), " ", labels);
  kind.addEventListener("change", () => {
    filterPart.hidden = kind.value !== "filter";
    scorePart.hidden = kind.value === "filter";
  });
  const form = h("form", { class: "queue-create card" },
    h("h2", null, "New queue"),
    h("div", null, h("label", null, "Name ", name), " ", kind),
    filterPart, scorePart,
    h("label", { class: "queue-defs" }, h("span", null, "Scores, one a line (", h("code", null, "name: yes/no"), ", ", h("code", null, "name: 1-5"), ", ", h("code", null, "name: a, b, c"), ")"), defs),
    h("div", null, h("button", { type: "submit" }, "Make queue")), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    mount(err);
    const source = kind.value === "filter"
      ? { kind: "filter", query: query.value.trim().replace(/^\?/, "") }
      : {
          kind: "failed_scores",
          score: score.value.trim(),
          fail_at_most: atMost.value === "" ? undefined : Number(atMost.value),
          fail_labels: labels.value.split(",").map((l) => l.trim()).filter(Boolean),
        };
    try {
      const made = await send("POST", "queues", { name: name.value, source, scores: parseDefinitions(defs.value) });
      name.value = "";
      navigate(`/queues/${encodeURIComponent(made.queue.id)}`);
    } catch (x) {
      mount(err, x.message);
      done();
    }
  });
  return form;
}

/** The review screen of queue `id`. */
export async function renderReview(app, id) {
  mount(app, h("div", { class: "loading" }, "Loading queue…"));
  let detail;
  try {
    detail = await get(`queues/${encodeURIComponent(id)}`);
  } catch (e) {
    mount(app, notice(e.status === 404 ? "empty" : "error", e.status === 404 ? "Queue not found" : "Could not load the queue", e.message),
      h("p", null, link("/queues", "← Back to queues")));
    return undefined;
  }
  return new Review(app, detail).cleanup;
}

class Review {
  constructor(app, detail) {
    this.queue = detail.queue;
    this.defs = detail.queue.scores;
    this.item = null;
    this.total = detail.progress.total;
    this.values = {};
    this.cursor = 0;
    this.progressEl = h("div", { class: "review-progress" }, progressBar(detail.progress));
    this.itemEl = h("div", { class: "review-item" });
    this.formEl = h("form", { class: "review-form card" });
    this.statusEl = h("div", { class: "review-status", role: "status" });
    this.root = h("div", { class: "review", tabindex: "0" },
      h("div", { class: "page-head" }, h("h1", null, this.queue.name), h("div", { class: "page-actions" }, link("/queues", "All queues"))),
      h("div", { class: "muted" }, sourceText(this.queue.source)),
      this.progressEl,
      h("div", { class: "review-layout" }, this.itemEl, h("div", { class: "review-side" }, this.formEl, this.statusEl,
        h("div", { class: "muted review-keys" }, "j/→ next · k/← previous · y/n yes/no · digits a value or the n-th label · Enter submit and next · s skip"))));
    mount(app, this.root);
    this.formEl.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit(false);
    });
    this.onKey = (e) => this.key(e);
    document.addEventListener("keydown", this.onKey);
    this.cleanup = () => document.removeEventListener("keydown", this.onKey);
    this.root.focus();
    this.move(null, "next");
  }

  /** Claims the next item (after `from`, or before it with `dir` prev) and shows it. */
  async move(from, dir) {
    let next;
    try {
      next = await send("POST", `queues/${encodeURIComponent(this.queue.id)}/next`, undefined, { from: from ?? undefined, dir });
    } catch (e) {
      mount(this.statusEl, notice("error", "Could not take an item", e.message));
      return;
    }
    this.total = next.progress.total;
    mount(this.progressEl, progressBar(next.progress));
    mount(this.statusEl);
    this.item = next.item;
    this.values = {};
    this.cursor = 0;
    this.root.dataset.item = this.item ? String(this.item.index) : "";
    if (!this.item) {
      mount(this.itemEl, notice("empty", "Nothing left to review", "Every item is done or skipped, or being reviewed by someone else."));
      mount(this.formEl);
      return;
    }
    this.drawForm();
    await this.drawItem(this.item);
  }

  async drawItem(item) {
    const head = h("div", { class: "review-item-head" },
      h("b", null, `Item ${item.index + 1} of ${this.total}`), " ", h("span", { class: "review-label" }, item.label), " ",
      link(`/traces/${encodeURIComponent(item.trace_id)}${item.span_id ? `?span=${encodeURIComponent(item.span_id)}` : ""}`, "open trace"), " ", idChip(item.trace_id));
    mount(this.itemEl, head, h("div", { class: "loading" }, "Loading trace…"));
    let tree;
    try {
      tree = await get(`traces/${encodeURIComponent(item.trace_id)}/tree`);
    } catch (e) {
      if (this.item !== item) return;
      mount(this.itemEl, head, notice("error", "Could not load the trace", e.message));
      return;
    }
    if (this.item !== item) return;
    const panel = h("div", { class: "review-span panel" });
    const depth = new Map();
    const rows = [];
    for (const n of tree.spans) {
      const d = n.parent_span_id && depth.has(n.parent_span_id) ? depth.get(n.parent_span_id) + 1 : 0;
      depth.set(n.span_id, d);
      const k = f.kind(n.kind);
      const row = h("li", { class: `review-span-row${n.error ? " err" : ""}`, dataset: { spanId: n.span_id }, style: { paddingLeft: `${Math.min(d, 12) * 12}px` } },
        h("button", { type: "button", class: "linklike", onclick: () => select(n, row) },
          h("span", { class: "kicon", style: { color: k.color } }, k.icon), " ", n.name), " ",
        h("span", { class: "muted" }, f.ms(n.duration_ms)));
      rows.push([n, row]);
    }
    const select = (n, row) => {
      for (const [, r] of rows) r.classList.toggle("selected", r === row);
      renderSpanPanel(panel, tree.trace, n);
    };
    mount(this.itemEl, head,
      h("div", { class: "muted" }, tree.trace.name, " · ", f.ms(tree.trace.duration_ms), " · ", `${tree.spans.length} spans`),
      h("div", { class: "review-trace" }, h("ul", { class: "review-spans" }, rows.slice(0, 500).map(([, r]) => r)), panel));
    // The scored span, else the first model call, else the root.
    const pick = rows.find(([n]) => n.span_id === item.span_id) || rows.find(([n]) => n.kind === "llm") || rows[0];
    if (pick) select(...pick);
  }

  drawForm() {
    const fields = this.defs.map((d, i) => {
      const active = i === this.cursor;
      const val = this.values[d.name];
      let control;
      if (d.data_type === "boolean") {
        control = [
          h("button", { type: "button", class: `choice${val === 1 ? " on" : ""}`, name: `yes-${i}`, onclick: () => this.fill(i, 1) }, "yes (y)"),
          h("button", { type: "button", class: `choice${val === 0 ? " on" : ""}`, name: `no-${i}`, onclick: () => this.fill(i, 0) }, "no (n)"),
        ];
      } else if (d.data_type === "categorical") {
        control = d.labels.map((l, j) => h("button", { type: "button", class: `choice${val === l ? " on" : ""}`, onclick: () => this.fill(i, l) }, `${l}${j < 9 ? ` (${j + 1})` : ""}`));
      } else {
        const input = h("input", { type: "number", step: "any", min: String(d.min), max: String(d.max), name: `value-${i}`, value: val ?? "" });
        input.addEventListener("change", () => {
          this.values[d.name] = input.value === "" ? undefined : Number(input.value);
        });
        control = [input, h("span", { class: "muted" }, ` ${d.min}–${d.max}`)];
      }
      return h("div", { class: `review-field${active ? " active" : ""}`, dataset: { score: d.name, filled: val === undefined ? "" : String(val) } },
        h("div", { class: "review-field-name" }, d.name), control);
    });
    this.comment ??= h("textarea", { name: "comment", rows: "2", placeholder: "note (optional)" });
    mount(this.formEl, fields, this.comment,
      h("div", null, h("button", { type: "submit", name: "submit-review" }, "Submit (Enter)"), " ",
        h("button", { type: "button", name: "skip", onclick: () => this.submit(true) }, "Skip (s)")));
  }

  fill(i, value) {
    const d = this.defs[i];
    if (!d) return;
    this.values[d.name] = value;
    this.cursor = Math.min(i + 1, this.defs.length - 1);
    this.drawForm();
  }

  key(e) {
    if (!this.root.isConnected) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target instanceof HTMLTextAreaElement || (e.target instanceof HTMLInputElement && e.target.type !== "button");
    if (typing) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    const from = this.item ? this.item.index : null;
    const d = this.defs[this.cursor];
    if (e.key === "j" || e.key === "ArrowRight") this.move(from, "next");
    else if (e.key === "k" || e.key === "ArrowLeft") this.move(from, "prev");
    else if (!this.item) return;
    else if (e.key === "Enter") this.submit(false);
    else if (e.key === "s") this.submit(true);
    else if ((e.key === "y" || e.key === "n") && d?.data_type === "boolean") this.fill(this.cursor, e.key === "y" ? 1 : 0);
    else if (/^[0-9]$/.test(e.key) && d?.data_type === "categorical") {
      const l = d.labels[Number(e.key) - 1];
      if (l !== undefined) this.fill(this.cursor, l);
    } else if (/^[0-9]$/.test(e.key) && d?.data_type === "numeric") {
      const v = Number(e.key);
      if (v >= d.min && v <= d.max) this.fill(this.cursor, v);
    } else return;
    e.preventDefault();
  }

  async submit(skip) {
    if (!this.item || this.busy) return;
    const item = this.item;
    const scores = skip ? [] : this.defs.filter((d) => this.values[d.name] !== undefined).map((d) =>
      d.data_type === "categorical" ? { name: d.name, label: this.values[d.name] } : { name: d.name, value: this.values[d.name] });
    if (!skip && !scores.length) {
      mount(this.statusEl, notice("error", "Nothing scored yet", "Fill a score (y/n, a digit), or skip with s."));
      return;
    }
    this.busy = true;
    try {
      const comment = this.comment?.value.trim();
      await send("POST", `queues/${encodeURIComponent(this.queue.id)}/items/${item.index}`, skip ? { skip: true } : { scores, comment: comment || undefined });
      if (this.comment) this.comment.value = "";
      await this.move(item.index, "next");
    } catch (e) {
      mount(this.statusEl, notice("error", "Not recorded", e.message));
    } finally {
      this.busy = false;
    }
  }
}
