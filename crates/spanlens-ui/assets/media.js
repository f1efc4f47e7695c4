// Media in span payloads (#19 item 9): the server takes base64 images and audio out of spans
// and stores them once by content hash; a span keeps `spanlens-media:sha256:<hex>` instead.
// Here each such reference found in a payload or message is shown as a thumbnail or a player,
// loaded from /api/v1/media/<hash> (the session cookie authenticates it like every API call).
// The reference text itself stays shown where it is. Elements are built with h(): the hash
// is the only span-derived text used, and only after it matched 64 lowercase hex digits.

import { h } from "./dom.js";
import { url } from "./api.js";

/** A reference: the prefix, 64 lowercase hex digits, and no further hex digit. */
const REF = /spanlens-media:sha256:([0-9a-f]{64})(?![0-9a-fA-F])/g;

/** Most media shown for one payload: a span naming hundreds would load hundreds. */
const MAX_SHOWN = 12;

/** The hashes referenced in `value` (text or any JSON), distinct, in order of first mention. */
export function mediaHashes(value) {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value ?? null);
  } catch {
    return [];
  }
  if (!text || !text.includes("spanlens-media:")) return [];
  const seen = new Set();
  for (const m of text.matchAll(REF)) {
    seen.add(m[1]);
    if (seen.size >= MAX_SHOWN) break;
  }
  return [...seen];
}

/** Thumbnails and players for the media `value` refers to, or null when it refers to none. */
export function mediaStrip(value) {
  const hashes = mediaHashes(value);
  if (!hashes.length) return null;
  return h("div", { class: "media-strip" }, hashes.map(mediaItem));
}

/**
 * One medium: its type is asked first (HEAD; the server sends only sniffed image and audio
 * types), then an <img> linking to the full size in a new tab, or an <audio> player.
 */
function mediaItem(hash) {
  const src = url(`media/${hash}`);
  const short = `${hash.slice(0, 12)}…`;
  const box = h("figure", { class: "media-item", dataset: { hash } }, h("div", { class: "muted" }, `loading ${short}`));
  fetch(src, { method: "HEAD", credentials: "same-origin" })
    .then((r) => {
      if (r.status === 404) throw new Error("not stored (freed with its traces, or never sent here)");
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const type = (r.headers.get("content-type") || "").split(";")[0].trim().toLowerCase();
      let shown;
      if (type.startsWith("image/")) {
        shown = h("a", { href: src, target: "_blank", rel: "noopener noreferrer", title: "Open full size in a new tab" },
          h("img", { class: "media-thumb", src, alt: `image ${short}`, decoding: "async" }));
      } else if (type.startsWith("audio/")) {
        shown = h("audio", { class: "media-audio", src, controls: true, preload: "metadata" });
      } else {
        throw new Error(`not an image or audio (${type || "no type"})`);
      }
      box.replaceChildren(shown, h("figcaption", { class: "muted" }, `${type} · ${short}`));
    })
    .catch((e) => {
      box.classList.add("media-missing");
      box.replaceChildren(h("div", { class: "warn-text" }, `media ${short}: ${e.message}`));
    });
  return box;
}
