// Evaluation scores as compact chips (trace header, session view): name and value, pass/fail for
// boolean scores, the source and comment on hover.

import { get } from "./api.js";
import { h, mount } from "./dom.js";

/** The score's value as shown: pass/fail, the label, or the number rounded. */
export function shown(s) {
  if (s.data_type === "boolean") return s.value === 1 ? "pass" : "fail";
  if (s.data_type === "categorical") return s.label;
  return String(Math.round(s.value * 1000) / 1000);
}

function chip(s) {
  const cls = s.data_type === "boolean" ? (s.value === 1 ? "ok" : "fail") : "";
  return h("span", { class: `score-chip ${cls}`, dataset: { score: s.name }, title: `${s.source}${s.author ? ` by ${s.author}` : ""}${s.comment ? `: ${s.comment}` : ""}` },
    h("span", { class: "score-name" }, s.name), " ", h("b", null, shown(s)));
}

/**
 * Fills `el` with the scores `params` select (trace-level when `spanLevel` is false, i.e. the
 * ones without a span) and leaves it empty when there are none or the call fails.
 */
export async function fillScores(el, params, spanLevel = false) {
  let items = [];
  try {
    items = (await get("scores", params)).items || [];
  } catch {
    return; // scores are optional context
  }
  const own = items.filter((s) => spanLevel || !s.span_id);
  const onSpans = items.length - own.length;
  if (!own.length && !onSpans) return;
  mount(el, h("span", { class: "muted" }, "Scores "), own.map(chip),
    onSpans ? h("span", { class: "muted" }, ` · ${onSpans} on spans (open a span to see them)`) : null);
}
