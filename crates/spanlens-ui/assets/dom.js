// Tiny DOM helpers: build elements from plain calls, so pages need no template engine.
//
// Names, ids and payloads shown by the UI come from ingested spans, so they are data: h() puts
// children in as text nodes and attribute values through setAttribute, never through an HTML
// parser. The page's Content-Security-Policy forbids inline style attributes and handlers, so
// h() takes `style` only as an object (set through element.style, which the policy allows) and
// handlers only as functions.

/** Attributes whose value is a URL the browser may navigate to or load. */
const URL_ATTRS = new Set(["href", "src", "action", "formaction"]);
/** Properties that would parse their value as markup. */
const MARKUP_PROPS = new Set(["innerHTML", "outerHTML", "srcdoc"]);

/**
 * `value` if it is a URL of this origin or an ordinary http(s)/mailto link, else null: a
 * `javascript:` or `data:` URL must never become a link or a source.
 */
export function safeUrl(value) {
  try {
    const u = new URL(String(value), location.href);
    return ["http:", "https:", "mailto:"].includes(u.protocol) ? String(value) : null;
  } catch {
    return null;
  }
}

/** Creates an element: h("a", {href: "/", class: "x", onclick: fn}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) {
        // A string here would become an inline handler, which the CSP blocks anyway.
        if (typeof v !== "function") throw new TypeError(`h(): ${k} must be a function`);
        el.addEventListener(k.slice(2), v);
      } else if (k === "style") {
        if (typeof v !== "object") throw new TypeError("h(): style must be an object (the CSP forbids style attributes)");
        Object.assign(el.style, v);
      } else if (MARKUP_PROPS.has(k)) {
        throw new TypeError(`h(): ${k} is not allowed`);
      } else if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (URL_ATTRS.has(k)) {
        const url = safeUrl(v);
        if (url !== null) el.setAttribute(k, url);
        else console.warn(`h(): dropped ${k} with a disallowed URL`, v);
      } else if (k in el && typeof v !== "string") el[k] = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** A token safe to put in a class name: anything but letters, digits, `-` and `_` becomes `_`. */
export function classToken(s) {
  return String(s).replace(/[^A-Za-z0-9_-]/g, "_");
}

/** Replaces an element's content. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A button that copies `text` to the clipboard and says so. */
export function copyButton(text, label = "copy") {
  const b = h("button", { class: "copy", type: "button", title: `Copy ${text}` }, label);
  b.addEventListener("click", async (e) => {
    e.stopPropagation();
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = "copied";
    } catch {
      // Clipboard needs a secure context or permission; fall back to a selection copy.
      const t = h("textarea", { style: { position: "fixed", opacity: "0" } }, text);
      document.body.append(t);
      t.select();
      const ok = document.execCommand("copy");
      t.remove();
      b.textContent = ok ? "copied" : "copy failed";
    }
    setTimeout(() => (b.textContent = label), 1200);
  });
  return b;
}

/** An id shown monospace with a copy button. */
export function idChip(id) {
  return h("span", { class: "id-chip" }, h("code", null, id), copyButton(id));
}

/**
 * Widens the inputs under `root` so each placeholder shows whole (a hint cut to "exact trace
 * nan" reads as a typo): every input gets a min-width from its placeholder's width in its own
 * font, plus padding, border and a number input's spin buttons. Call once they are in the page.
 */
export function fitPlaceholders(root) {
  const ctx = document.createElement("canvas").getContext("2d");
  for (const input of root.querySelectorAll("input[placeholder]")) {
    if (!input.placeholder) continue;
    const cs = getComputedStyle(input);
    ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const px = (v) => parseFloat(v) || 0;
    const frame = px(cs.paddingLeft) + px(cs.paddingRight) + px(cs.borderLeftWidth) + px(cs.borderRightWidth);
    const spin = input.type === "number" ? 18 : 0;
    input.style.minWidth = `${Math.ceil(ctx.measureText(input.placeholder).width + frame + spin + 2)}px`;
  }
}

/** A message box for empty states and errors. */
export function notice(kind, title, detail) {
  return h("div", { class: `notice ${kind}` }, h("strong", null, title), detail ? h("div", null, detail) : null);
}

/** A link handled by the client-side router. */
export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

/** Client-side navigation: updates the URL and lets the router render the page. */
export function navigate(href, replace = false) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  window.dispatchEvent(new Event("spanlens:navigate"));
}

/** Whether `c` (one UTF-16 unit) belongs to a search word: ASCII letters and digits, and every
 * non-ASCII character, as the server splits words. */
function inWord(c) {
  return c > "\x7f" || /[A-Za-z0-9]/.test(c);
}

/** The distinct lowered words of a full-text query, as the server reads them. */
export function searchWords(q) {
  const out = [];
  let w = "";
  for (const c of `${q || ""} `) {
    if (inWord(c)) w += c;
    else if (w) {
      if (!out.includes(w.toLowerCase())) out.push(w.toLowerCase());
      w = "";
    }
  }
  return out;
}

/** Wraps each whole-word occurrence of `words` in the text under `root` in a `<mark>`, by
 * splitting text nodes (no markup is parsed). Returns how many were marked. */
export function markWords(root, words) {
  if (!root || !words.length) return 0;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  let count = 0;
  for (const node of nodes) {
    const text = node.nodeValue;
    const hits = [];
    let start = -1;
    for (let i = 0; i <= text.length; i++) {
      const wordChar = i < text.length && inWord(text[i]);
      if (wordChar && start < 0) start = i;
      else if (!wordChar && start >= 0) {
        if (words.includes(text.slice(start, i).toLowerCase())) hits.push([start, i]);
        start = -1;
      }
    }
    if (!hits.length) continue;
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const [a, b] of hits) {
      frag.append(document.createTextNode(text.slice(at, a)), h("mark", { class: "hit" }, text.slice(a, b)));
      at = b;
    }
    frag.append(document.createTextNode(text.slice(at)));
    node.replaceWith(frag);
    count += hits.length;
  }
  return count;
}

/** A search snippet (`{text, marks, cut_before, cut_after}`, marks in UTF-8 byte offsets) as
 * text with its words in `<mark>`s. */
export function snippetView(s) {
  const bytes = new TextEncoder().encode(s.text);
  const dec = new TextDecoder();
  const parts = [];
  let at = 0;
  for (const [a, b] of s.marks || []) {
    if (a < at || b > bytes.length) break;
    parts.push(dec.decode(bytes.slice(at, a)), h("mark", { class: "hit" }, dec.decode(bytes.slice(a, b))));
    at = b;
  }
  parts.push(dec.decode(bytes.slice(at)));
  return h("span", { class: "snippet" }, s.cut_before ? "…" : "", parts, s.cut_after ? "…" : "");
}
