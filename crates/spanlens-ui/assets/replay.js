// Replaying a model call from the span panel: the span's messages and parameters in an editor,
// sent to an endpoint the server is configured with (its key never reaches the browser), and
// the replay's output, tokens, cost and latency beside the original's, with a link to the new
// trace. Everything from a span or a provider is put in as text (h() makes text nodes; inputs
// and textareas take it as their value).

import { get, send } from "./api.js";
import { h, mount, notice, link, fitPlaceholders } from "./dom.js";
import * as f from "./format.js";

const ROLES = ["system", "user", "assistant"];
/** Longest message the editor accepts, in characters (the server caps the whole body at 1 MiB). */
const MAX_CHARS = 200_000;

/** The "Replay" section of an LLM span's panel: a button that opens the editor in place. */
export function replaySection(span) {
  const box = h("div", { class: "replay-box" });
  const open = h("button", { type: "button", class: "replay-open", onclick: () => openEditor(box, span, open) }, "Replay…");
  return h("section", { class: "psec replay", dataset: { section: "replay" } },
    h("h3", null, "Replay"),
    h("div", { class: "muted" }, "Edit this call's messages and parameters and send it again; the replay is stored as a new trace linked to this one."),
    open, box);
}

async function openEditor(box, span, open) {
  open.disabled = true;
  mount(box, h("div", { class: "loading" }, "Loading the call…"));
  let draft, endpoints;
  try {
    [draft, endpoints] = await Promise.all([
      get(`traces/${encodeURIComponent(span.trace_id)}/spans/${encodeURIComponent(span.span_id)}/replay`),
      get("replay/endpoints"),
    ]);
  } catch (e) {
    open.disabled = false;
    mount(box, notice("error", "Cannot replay this span", e.message));
    return;
  }
  open.hidden = true;
  if (!endpoints.endpoints.length) {
    mount(box, notice("info replay-off", "Replay is not configured on this server",
      "Start the server with --replay FILE naming OpenAI-compatible or Anthropic endpoints (see the README); their keys stay on the server."));
    return;
  }
  mount(box, editor(draft, endpoints.endpoints));
  fitPlaceholders(box);
}

/** The endpoint to start with: one offering the span's model (its own provider first), else the first. */
function startingPoint(draft, endpoints) {
  const offers = endpoints.filter((e) => e.models.includes(draft.model));
  const own = offers.find((e) => e.kind === draft.provider);
  const ep = own || offers[0] || endpoints[0];
  return { ep, model: ep.models.includes(draft.model) ? draft.model : ep.models[0] };
}

function option(value, selected) {
  return h("option", { value, selected: selected || undefined }, value);
}

function messageRow(list, m) {
  const role = h("select", { class: "replay-role", title: "role" }, ROLES.map((r) => option(r, r === m.role)));
  const text = h("textarea", { class: "replay-content", rows: Math.min(8, Math.max(2, m.content.split("\n").length)), maxLength: MAX_CHARS });
  text.value = m.content;
  const row = h("div", { class: "replay-msg" }, role, text,
    h("button", { type: "button", class: "replay-remove", title: "Remove this message", onclick: () => row.remove() }, "✕"));
  list.append(row);
}

function numberField(label, cls, value, attrs) {
  const input = h("input", { type: "number", class: cls, step: "any", ...attrs });
  if (value !== undefined && value !== null) input.value = String(value);
  return h("label", { class: "replay-param" }, label, input);
}

function editor(draft, endpoints) {
  const start = startingPoint(draft, endpoints);
  const epSelect = h("select", { class: "replay-endpoint", title: "endpoint" }, endpoints.map((e) => h("option", { value: e.name, selected: e === start.ep || undefined }, `${e.name} (${e.kind})`)));
  const modelSelect = h("select", { class: "replay-model", title: "model" });
  const fillModels = (keep) => {
    const ep = endpoints.find((e) => e.name === epSelect.value);
    mount(modelSelect, ep.models.map((m) => option(m, m === keep)));
  };
  fillModels(start.model);
  epSelect.addEventListener("change", () => fillModels(modelSelect.value));

  const list = h("div", { class: "replay-msgs" });
  draft.messages.forEach((m) => messageRow(list, m));
  const add = h("button", { type: "button", class: "replay-add", onclick: () => messageRow(list, { role: "user", content: "" }) }, "Add message");

  const p = draft.parameters || {};
  const stop = h("input", { type: "text", class: "replay-stop", placeholder: "stop sequences, separated by |" });
  stop.value = (p.stop || []).join("|");
  const params = h("div", { class: "replay-params" },
    numberField("temperature", "replay-temperature", p.temperature, { min: "0", max: "2" }),
    numberField("max tokens", "replay-max-tokens", p.max_tokens, { min: "1", step: "1" }),
    numberField("top p", "replay-top-p", p.top_p, { min: "0", max: "1" }),
    h("label", { class: "replay-param" }, "stop", stop));
  // Parameters the editor has no field for travel as they came.
  const kept = {};
  for (const k of ["presence_penalty", "frequency_penalty", "seed"]) if (p[k] !== undefined) kept[k] = p[k];

  const result = h("div", { class: "replay-result-box" });
  const sendButton = h("button", { type: "button", class: "primary replay-send" }, "Send");
  sendButton.addEventListener("click", async () => {
    const messages = [...list.querySelectorAll(".replay-msg")].map((row) => ({
      role: row.querySelector(".replay-role").value,
      content: row.querySelector(".replay-content").value,
    }));
    const num = (sel) => {
      const v = params.querySelector(sel).value.trim();
      return v === "" ? undefined : Number(v);
    };
    const parameters = {
      ...kept,
      temperature: num(".replay-temperature"),
      max_tokens: num(".replay-max-tokens"),
      top_p: num(".replay-top-p"),
      stop: stop.value.split("|").filter((s) => s !== ""),
    };
    const body = { trace_id: draft.trace_id, span_id: draft.span_id, endpoint: epSelect.value, model: modelSelect.value, messages, parameters };
    sendButton.disabled = true;
    sendButton.textContent = "Sending…";
    mount(result, h("div", { class: "loading" }, `Calling ${epSelect.value}…`));
    try {
      mount(result, beside(draft.original, await send("POST", "replay", body)));
    } catch (e) {
      mount(result, notice("error replay-error", "Replay failed", e.message));
    } finally {
      sendButton.disabled = false;
      sendButton.textContent = "Send";
    }
    result.scrollIntoView({ block: "nearest" });
  });

  return h("div", { class: "replay-editor" },
    draft.notes?.length ? h("ul", { class: "replay-notes muted" }, draft.notes.map((n) => h("li", null, n))) : null,
    h("div", { class: "replay-target" }, h("label", null, "Endpoint ", epSelect), h("label", null, "Model ", modelSelect)),
    list, add, params,
    h("div", { class: "replay-actions" }, sendButton, h("span", { class: "muted" }, "The call is made by the server, with its own key.")),
    result);
}

function costOf(fig) {
  if (fig.cost_usd !== null && fig.cost_usd !== undefined) return f.usd(fig.cost_usd);
  return fig.unpriced_reason ? "unpriced" : "–";
}

/** The replay beside the original: output, tokens, cost and latency, and a link to the new trace. */
function beside(original, answer) {
  const row = (label, a, b, cls) => h("tr", { class: cls }, h("th", null, label), h("td", { class: "replay-orig" }, a), h("td", { class: "replay-new" }, b));
  const tok = (fig, k) => (fig.usage ? f.int(fig.usage[k]) : "–");
  const out = (fig) => h("div", { class: "replay-output" }, fig.output ?? "");
  return h("div", { class: "replay-result", dataset: { traceId: answer.trace_id } },
    h("table", { class: "replay-table" },
      h("thead", null, h("tr", null, h("th"), h("th", null, "Original"), h("th", null, "Replay"))),
      h("tbody", null,
        row("Model", original.model || "–", answer.model || "–"),
        row("Output", out(original), out(answer), "replay-outputs"),
        row("Input tokens", tok(original, "input_tokens"), tok(answer, "input_tokens"), "replay-input-tokens"),
        row("Output tokens", tok(original, "output_tokens"), tok(answer, "output_tokens"), "replay-output-tokens"),
        row("Cost", costOf(original), costOf(answer), "replay-cost"),
        row("Latency", original.latency_ms != null ? f.ms(original.latency_ms) : "–", answer.latency_ms != null ? f.ms(answer.latency_ms) : "–", "replay-latency"))),
    h("div", { class: "replay-link" }, "Stored as ", link(`/traces/${encodeURIComponent(answer.trace_id)}`, "the replay's trace"), ` (${answer.endpoint}).`));
}
