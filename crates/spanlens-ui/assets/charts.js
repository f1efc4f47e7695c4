// SVG charts for the dashboard: bars (side by side or stacked), lines, and bars with lines on
// one value axis, with formatted y ticks, a legend and a hover tooltip.
//
// Labels and series names are model, agent and user names taken from ingested spans, so every
// string reaches the DOM as text — createElementNS + textContent, or the h() helper — and never
// as markup. Nothing here writes a `style` attribute or a <style> element (colours are SVG
// presentation attributes, positions go through element.style), so the UI's strict
// Content-Security-Policy holds.

import { h, mount } from "./dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";
/** Share of a column the bars fill; the rest is the gap between columns. */
const BAR_FILL = 0.65;
/** Longest an x label may get when labels are drawn slanted, in px; a longer one ends in "…"
 *  with its full text as tooltip. */
const MAX_SLANTED = 200;
const SLANT_DEG = 35;
/** Closest two slanted labels may stand, measured across them, in px (a line of 11px text). */
const SLANT_SPACING = 14;
/** Room below the plot for one line of straight x labels, in px. */
const STRAIGHT_LABELS = 22;
const SIN = Math.sin((SLANT_DEG * Math.PI) / 180);
const COS = Math.cos((SLANT_DEG * Math.PI) / 180);

/** Resize observers of the elements charts were drawn into (a redraw replaces the old one). */
const observers = new WeakMap();

/**
 * Draws a chart into `el`, replacing its content, and draws it again when `el` changes width.
 *
 *   labels   the x categories: time buckets, or names (models, agents, users…)
 *   series   [{ name, values, color, type: "bar" | "line", dashed, area }]; a null value is
 *            a gap (no bar, a break in the line, left out of the tooltip)
 *   stacked  bars of different series stack instead of standing side by side
 *   fmt      formats a value for the tooltip; axisFmt formats the y ticks (default: fmt)
 *   height   in px with one line of x labels (default 220); slanted labels add their own
 *            room below, so every chart's plot keeps its height
 *   timeAxis the labels are a sequence: thin them out when they do not fit, never slant them
 *   band     { lower, upper, color }: shades the area between the line series of those names
 *            (an interval), over the columns where both have a value
 */
export function drawChart(el, spec) {
  observers.get(el)?.disconnect();
  if (!spec.labels.length || !spec.series.length) {
    mount(el, h("div", { class: "muted empty-chart" }, "No data in this range"));
    return;
  }
  let drawnWidth = -1;
  let pending = 0;
  const draw = () => {
    pending = 0;
    const width = el.clientWidth;
    if (width === drawnWidth) return;
    drawnWidth = width;
    render(el, spec, width || 600);
  };
  draw();
  const ro = new ResizeObserver(() => {
    pending ||= requestAnimationFrame(draw);
  });
  ro.observe(el);
  observers.set(el, ro);
}

/** An SVG element with attributes; values are set one by one and never parsed as markup. */
function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  if (parent) parent.append(el);
  return el;
}

/** A text element holding `str`, shortened with "…" to at most `maxPx` wide; a shortened
 *  label keeps its full text in a <title> (the browser shows it on hover). */
function fittedText(parent, str, maxPx, attrs) {
  const t = svg("text", attrs, parent);
  t.textContent = str;
  if (t.getComputedTextLength() <= maxPx) return t;
  // Shorten by bisection on the number of characters kept (measuring is the slow part).
  const chars = [...str];
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    t.textContent = `${chars.slice(0, mid).join("")}…`;
    if (t.getComputedTextLength() <= maxPx) lo = mid;
    else hi = mid - 1;
  }
  t.textContent = `${chars.slice(0, lo).join("")}…`;
  svg("title", null, t).textContent = str;
  return t;
}

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
function niceTicks(lo, hi, count = 5) {
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw * 0.999);
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks = [];
  // Multiplying (not adding) and trimming to 12 digits keeps 0.1 + 0.2 noise out of the labels;
  // `|| 0` turns -0 into 0.
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)) || 0);
  return ticks;
}

/** The lowest and highest value the chart must show (bars start at 0, so 0 is always in). */
function valueRange(spec, bars, lines) {
  let lo = 0;
  let hi = 0;
  spec.labels.forEach((_, i) => {
    if (spec.stacked) {
      let pos = 0;
      let neg = 0;
      for (const s of bars) {
        const v = s.values[i] ?? 0;
        if (v >= 0) pos += v;
        else neg += v;
      }
      hi = Math.max(hi, pos);
      lo = Math.min(lo, neg);
    } else {
      for (const s of bars) {
        hi = Math.max(hi, s.values[i] ?? 0);
        lo = Math.min(lo, s.values[i] ?? 0);
      }
    }
    for (const s of lines) {
      if (s.values[i] == null) continue;
      hi = Math.max(hi, s.values[i]);
      lo = Math.min(lo, s.values[i]);
    }
  });
  if (hi === lo) hi = lo + 1;
  return [lo, hi];
}

function render(el, spec, width) {
  const { labels, series } = spec;
  const fmt = spec.fmt || String;
  const axisFmt = spec.axisFmt || fmt;
  const bars = series.filter((s) => (s.type || "bar") === "bar");
  const lines = series.filter((s) => s.type === "line");
  const ticks = niceTicks(...valueRange(spec, bars, lines));
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];

  const root = svg("svg", { class: "chart-svg", width, "data-columns": labels.length });
  const tip = h("div", { class: "chart-tip", hidden: true });
  mount(el, root, tip, series.length > 1 ? legend(series) : null);

  // The y tick labels decide the left margin, so draw and measure them first.
  const tickText = ticks.map((t) => {
    const text = svg("text", { class: "chart-tick", "text-anchor": "end" }, root);
    text.textContent = axisFmt(t);
    return text;
  });
  const tickW = Math.ceil(Math.max(...tickText.map((t) => t.getComputedTextLength())));
  const xWidths = measureLabels(root, labels);
  // The x labels may reach past the plot: slanted ones run down-left from their column,
  // straight ones are centred on it. Move the plot in until every label shown fits whole.
  let left = tickW + 12;
  let right = 10;
  let col;
  let plan;
  for (let pass = 0; pass < 4; pass++) {
    col = Math.max(10, width - left - right) / labels.length;
    plan = planXLabels(xWidths, col, spec.timeAxis);
    let needLeft = left;
    let needRight = right;
    for (const i of plan.shown) {
      needLeft = Math.max(needLeft, Math.ceil(plan.reachLeft(i) - col * (i + 0.5)));
      needRight = Math.max(needRight, Math.ceil(plan.reachRight(i) - col * (labels.length - i - 0.5)));
    }
    if (needLeft === left && needRight === right) break;
    left = needLeft;
    right = needRight;
    col = Math.max(10, width - left - right) / labels.length;
    plan = planXLabels(xWidths, col, spec.timeAxis);
  }
  const top = 8;
  const plotW = col * labels.length;
  const xMid = (i) => left + col * (i + 0.5);

  const xLabels = drawXLabels(root, labels, plan, col, xMid);
  const plotH = (spec.height || 220) - top - STRAIGHT_LABELS;
  const height = top + plotH + xLabels.height;
  root.setAttribute("height", height);
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const y = (v) => top + ((hi - v) / (hi - lo)) * plotH;
  const base = y(0);

  for (let i = 0; i < ticks.length; i++) {
    tickText[i].setAttribute("x", left - 6);
    tickText[i].setAttribute("y", y(ticks[i]) + 4);
    svg("line", { class: ticks[i] === 0 ? "chart-zero" : "chart-grid", x1: left, x2: left + plotW, y1: y(ticks[i]), y2: y(ticks[i]) }, root);
  }
  xLabels.place(top + plotH);

  // The band behind the hovered column; drawn before the data so it stays underneath.
  const band = svg("rect", { class: "chart-band", x: 0, y: top, width: col, height: plotH, visibility: "hidden" }, root);

  const inner = col * BAR_FILL;
  const barW = spec.stacked || bars.length < 2 ? inner : inner / bars.length;
  labels.forEach((_, i) => {
    let up = 0;
    let down = 0;
    bars.forEach((s, k) => {
      const v = s.values[i];
      if (v == null || v === 0) return;
      let from = 0;
      if (spec.stacked) {
        from = v >= 0 ? up : down;
        if (v >= 0) up += v;
        else down += v;
      }
      const x = xMid(i) - inner / 2 + (spec.stacked || bars.length < 2 ? 0 : k * barW);
      const y0 = y(from);
      const y1 = y(from + v);
      // At least one pixel high, so a small but non-zero value stays visible.
      const barH = Math.max(1, Math.abs(y1 - y0));
      svg("rect", {
        class: "chart-bar", x: x.toFixed(1), width: Math.max(1, barW - (bars.length > 1 && !spec.stacked ? 1 : 0)).toFixed(1),
        y: (v >= 0 ? y0 - barH : y0).toFixed(1), height: barH.toFixed(1), fill: s.color,
      }, root);
    });
  });

  if (spec.band) drawBand(root, spec, xMid, y);

  for (const s of lines) {
    let d = "";
    let area = "";
    let run = [];
    const flush = () => {
      if (run.length > 1 && s.area) area += `M${run[0][0]},${base}L${run.map((p) => p.join(",")).join("L")}L${run[run.length - 1][0]},${base}Z`;
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v == null) {
        flush();
        return;
      }
      const p = [xMid(i).toFixed(1), y(v).toFixed(1)];
      d += `${run.length ? "L" : "M"}${p[0]},${p[1]}`;
      run.push(p);
    });
    flush();
    if (area) svg("path", { class: "chart-area", d: area, fill: s.color }, root);
    svg("path", { class: "chart-line", d, stroke: s.color, "stroke-dasharray": s.dashed ? "5 4" : null }, root);
    // A series with a single point would draw nothing; mark it.
    if (s.values.filter((v) => v != null).length === 1) {
      const i = s.values.findIndex((v) => v != null);
      svg("circle", { class: "chart-dot", cx: xMid(i), cy: y(s.values[i]), r: 3, fill: s.color }, root);
    }
  }

  // Points of the lines at the hovered column, moved there on hover.
  const dots = lines.map((s) => svg("circle", { class: "chart-dot", r: 3.5, fill: s.color, visibility: "hidden" }, root));

  // One transparent layer over the plot takes the pointer: hovering anywhere in a column
  // shows that column, so thin or zero-height bars are as easy to reach as tall ones.
  const hit = svg("rect", { class: "chart-hit", x: left, y: top, width: plotW, height: plotH, fill: "transparent" }, root);
  let shown = -1;
  const hide = () => {
    shown = -1;
    tip.hidden = true;
    band.setAttribute("visibility", "hidden");
    for (const d of dots) d.setAttribute("visibility", "hidden");
  };
  hit.addEventListener("pointerleave", hide);
  hit.addEventListener("pointermove", (e) => {
    const box = root.getBoundingClientRect();
    const px = e.clientX - box.left;
    const py = e.clientY - box.top;
    const i = Math.min(labels.length - 1, Math.max(0, Math.floor((px - left) / col)));
    if (i !== shown) {
      shown = i;
      band.setAttribute("x", left + col * i);
      band.setAttribute("visibility", "visible");
      lines.forEach((s, k) => {
        const v = s.values[i];
        dots[k].setAttribute("visibility", v == null ? "hidden" : "visible");
        if (v != null) {
          dots[k].setAttribute("cx", xMid(i));
          dots[k].setAttribute("cy", y(v));
        }
      });
      fillTip(tip, spec, i, fmt);
      tip.hidden = false;
    }
    // Beside the pointer, on whichever side has room; element.style is allowed by the CSP.
    const tipW = tip.offsetWidth;
    const tipH = tip.offsetHeight;
    const x = px + 14 + tipW <= width ? px + 14 : Math.max(0, px - 14 - tipW);
    tip.style.left = `${x}px`;
    tip.style.top = `${Math.max(0, Math.min(py - tipH / 2, height - tipH))}px`;
  });
}

/** The shaded area between two line series, one closed path per run of columns where both
 *  have a value; a single column has no width and draws nothing. */
function drawBand(root, spec, xMid, y) {
  const lower = spec.series.find((s) => s.name === spec.band.lower)?.values || [];
  const upper = spec.series.find((s) => s.name === spec.band.upper)?.values || [];
  let d = "";
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      const top = run.map((i) => `${xMid(i).toFixed(1)},${y(upper[i]).toFixed(1)}`);
      const bottom = run.map((i) => `${xMid(i).toFixed(1)},${y(lower[i]).toFixed(1)}`).reverse();
      d += `M${top.join("L")}L${bottom.join("L")}Z`;
    }
    run = [];
  };
  spec.labels.forEach((_, i) => {
    if (lower[i] == null || upper[i] == null) flush();
    else run.push(i);
  });
  flush();
  if (d) svg("path", { class: "chart-ci", d, fill: spec.band.color }, root);
}

/** The width of each x label as drawn, in px. */
function measureLabels(root, labels) {
  const probe = svg("text", { class: "chart-label" }, root);
  const widths = labels.map((l) => {
    probe.textContent = l;
    return probe.getComputedTextLength();
  });
  probe.remove();
  return widths;
}

/**
 * How the x labels go for columns `col` px wide, so they never overlap: straight when they
 * fit their column; for a time axis only every k-th label; for names slanted (thinned when
 * even slanted they would touch). Says which labels show, how far each reaches left and right
 * of its column's centre, and the height they need below the plot.
 */
function planXLabels(widths, col, timeAxis) {
  const widest = Math.max(...widths);
  const fits = widest + 6 <= col;
  const straight = fits || timeAxis;
  const every = straight
    ? (fits ? 1 : Math.ceil((widest + 10) / col))
    : Math.max(1, Math.ceil(SLANT_SPACING / (col * SIN)));
  const shown = widths.map((_, i) => i).filter((i) => i % every === 0);
  const long = (i) => Math.min(MAX_SLANTED, widths[i]);
  return straight
    ? { straight, every, shown, height: STRAIGHT_LABELS, reachLeft: (i) => widths[i] / 2 + 1, reachRight: (i) => widths[i] / 2 + 1 }
    : {
      straight, every, shown,
      height: Math.ceil(Math.min(MAX_SLANTED, widest) * SIN) + 20,
      // From the anchor 4 px right of the column's centre, the text runs down-left; its
      // ascent sticks out a little further at the start.
      reachLeft: (i) => long(i) * COS + 8 - 4,
      reachRight: () => 4 + 4,
    };
}

/** Creates the x labels of `plan`; returns the height they need and a function placing them
 *  below the plot. */
function drawXLabels(root, labels, plan, col, xMid) {
  const group = svg("g", { class: "chart-xlabels" }, root);
  if (plan.straight) {
    return {
      height: plan.height,
      place(axisY) {
        for (const i of plan.shown) {
          fittedText(group, labels[i], col * plan.every - 4, { class: "chart-label", x: xMid(i), y: axisY + 15, "text-anchor": "middle" });
        }
      },
    };
  }
  return {
    height: plan.height,
    place(axisY) {
      for (const i of plan.shown) {
        const x = xMid(i) + 4;
        const yy = axisY + 12;
        // The margins were widened for these labels; the room check only guards the edge.
        const room = Math.min(MAX_SLANTED, (x - 8) / COS);
        fittedText(group, labels[i], room, { class: "chart-label", x, y: yy, "text-anchor": "end", transform: `rotate(-${SLANT_DEG} ${x} ${yy})` });
      }
    },
  };
}

/** The tooltip of column `i`: its full label, then each series' formatted value. */
function fillTip(tip, spec, i, fmt) {
  const rows = [];
  let total = 0;
  let stackedBars = 0;
  for (const s of spec.series) {
    const v = s.values[i];
    if (v == null) continue;
    const isBar = (s.type || "bar") === "bar";
    if (spec.stacked && isBar) {
      total += v;
      stackedBars++;
      // A stack of many series: only the parts this column has.
      if (v === 0 && spec.series.length > 4) continue;
    }
    rows.push(h("div", { class: "chart-tip-row" },
      h("i", { class: isBar ? "" : "line", style: { background: s.color } }),
      h("span", { class: "chart-tip-name" }, s.name),
      h("b", null, fmt(v))));
  }
  if (spec.stacked && stackedBars > 1) rows.push(h("div", { class: "chart-tip-row total" }, h("i"), h("span", { class: "chart-tip-name" }, "total"), h("b", null, fmt(total))));
  mount(tip, h("div", { class: "chart-tip-title" }, spec.labels[i]), rows);
}

/** The series' names and colours; a long name wraps (CSS), the full name is also the title. */
function legend(series) {
  return h("div", { class: "chart-legend" }, series.map((s) =>
    h("span", { class: "chart-key", title: s.name },
      h("i", { class: s.type === "line" ? "line" : "", style: { background: s.color } }),
      h("span", null, s.name))));
}
