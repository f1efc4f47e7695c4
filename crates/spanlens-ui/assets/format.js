// Number, time and kind formatting shared by every page.

const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

/** Tokens and counts with thousands separators; "–" when absent. */
export function int(n) {
  return n === null || n === undefined ? "–" : intFmt.format(n);
}

/** USD with enough decimals that small LLM costs are not shown as $0.00. */
export function usd(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "$0";
  const digits = a >= 100 ? 2 : a >= 1 ? 3 : a >= 0.01 ? 4 : a >= 0.0001 ? 6 : 8;
  return (v < 0 ? "-$" : "$") + a.toFixed(digits).replace(/(\.\d*?[1-9])0+$/, "$1").replace(/\.0+$/, "");
}

/**
 * A summed cost that never reads as a false $0 (issue #12 item 7). `unpriced` model calls in
 * the sum had no catalog price, so the priced part is shown with a marker ("$0.0021 +
 * 3 unpriced"), or "unpriced" when nothing was priced. With nothing unpriced and `tokens` 0
 * there was no model call to price: "–". "$0" is left for priced calls that cost nothing.
 */
export function costText(v, unpriced, tokens) {
  const n = unpriced || 0;
  if (n > 0) return v ? `${usd(v)} + ${intFmt.format(n)} unpriced` : "unpriced";
  if (!v && tokens === 0) return "–";
  return usd(v);
}

/** The tooltip of a cost with unpriced calls: what is missing and how to fill it in. */
export function costTitle(unpriced, model) {
  const n = unpriced || 0;
  if (!n) return undefined;
  const calls = n === 1 ? "1 LLM call has" : `${intFmt.format(n)} LLM calls have`;
  const which = model ? ` for model ${model}` : "";
  return `${calls} no price${which}: the cost shown is only what was priced. `
    + "Set a price with `spanlens reprice --prices FILE` (a price override file in the catalog's format).";
}

/** A duration in ms as µs, ms, s or min. */
export function ms(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v === 0) return "0";
  if (v < 1) return `${(v * 1000).toFixed(0)} µs`;
  if (v < 1000) return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
  const m = Math.floor(v / 60000);
  return `${m} min ${Math.round((v % 60000) / 1000)} s`;
}

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** An RFC 3339 time in the browser's local time zone. */
export function time(rfc3339) {
  if (!rfc3339) return "–";
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : dateFmt.format(d);
}

/** Only the local clock time (for live rows). */
export function clock(rfc3339) {
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : timeFmt.format(d);
}

/** "3 min ago" style age. */
export function ago(rfc3339) {
  const s = (Date.now() - new Date(rfc3339).getTime()) / 1000;
  if (!Number.isFinite(s)) return "";
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Percent with one decimal. */
export function pct(v) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : `${(v * 100).toFixed(1)}%`;
}

/** Colour and one-glyph icon per canonical span kind. */
export const KINDS = {
  pipeline: { color: "#5b6b82", icon: "▶" },
  agent: { color: "#7c4dff", icon: "◆" },
  llm: { color: "#1f77d0", icon: "✦" },
  embedding: { color: "#0f9d8a", icon: "≋" },
  retriever: { color: "#2e9e4f", icon: "⌕" },
  reranker: { color: "#7a9a1e", icon: "⇅" },
  tool: { color: "#d9822b", icon: "⚙" },
  guardrail: { color: "#c2185b", icon: "⊘" },
  handoff: { color: "#00838f", icon: "↪" },
  evaluator: { color: "#8d6e63", icon: "✓" },
  span: { color: "#8a94a6", icon: "•" },
};

/** The kind's style, falling back to the generic span. */
export function kind(k) {
  return KINDS[k] || KINDS.span;
}
