//! Base64 media (images, audio) taken out of span payloads and replaced by a reference.
//!
//! A chat that resends one image in every turn would otherwise store that image once per span,
//! and a 2 MB image would be cut to the payload cap anyway. Here each image or sound is decoded,
//! identified by the SHA-256 of its bytes, returned once as a [`MediaBlob`] to be stored by
//! content hash, and replaced in the span by `spanlens-media:sha256:<hex>`.
//!
//! Only bytes whose magic numbers say they are a raster image or audio are taken: the declared
//! MIME type is not trusted (an SVG can carry script, a "PNG" may be anything), and whatever is
//! not recognised stays inline untouched.

use crate::span::Span;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Smallest decoded medium taken out: below this a reference saves too little to be worth it.
pub const MIN_MEDIA_BYTES: usize = 1024;

/// Largest decoded medium taken out (20 MiB, above any provider's image or audio input limit).
pub const MAX_MEDIA_BYTES: usize = 20 * 1024 * 1024;

/// What a reference to a stored medium starts with; 64 lowercase hex digits follow.
pub const MEDIA_REF_PREFIX: &str = "spanlens-media:sha256:";

/// Shortest base64 text that can decode to [`MIN_MEDIA_BYTES`] (padding optional).
const MIN_ENCODED_LEN: usize = (MIN_MEDIA_BYTES * 4).div_ceil(3);

/// Longest base64 text worth decoding: anything longer decodes to more than the maximum.
const MAX_ENCODED_LEN: usize = MAX_MEDIA_BYTES.div_ceil(3) * 4;

/// How deep a JSON value is walked (parsed JSON is at most 128 deep; this guards the stack
/// against values built in code).
const MAX_DEPTH: usize = 256;

/// How many levels of JSON serialised inside a string are opened (a request body as a string
/// is one level; a tool result holding JSON text inside it is a second).
const MAX_STRING_NESTING: usize = 3;

/// Standard alphabet, padding optional: what data URLs and provider APIs send.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One decoded medium, stored once per content hash however many spans refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaBlob {
    /// Lowercase hex SHA-256 of `bytes`: the key the span's reference names.
    pub hash: String,
    /// The type sniffed from the bytes (`image/png`, `audio/wav`, …), never the declared one.
    pub mime: String,
    /// The decoded bytes.
    pub bytes: Vec<u8>,
}

/// The key a medium is stored by: the lowercase hex SHA-256 of its bytes.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The reference string that replaces a medium with this hash.
pub fn media_ref(hash: &str) -> String {
    format!("{MEDIA_REF_PREFIX}{hash}")
}

/// The hash a reference names, or `None` when `s` is not exactly a reference.
pub fn parse_ref(s: &str) -> Option<&str> {
    let hash = s.strip_prefix(MEDIA_REF_PREFIX)?;
    (hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(hash)
}

/// The MIME type of an image or audio format recognised by its magic numbers.
///
/// Only formats a browser shows or plays without running anything: no SVG, no PDF.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let b = bytes;
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else if b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WAVE" {
        Some("audio/wav")
    } else if b.starts_with(b"ID3") || is_mpeg_audio_frame(b) {
        Some("audio/mpeg")
    } else if b.starts_with(b"OggS") {
        Some("audio/ogg")
    } else if b.starts_with(b"fLaC") {
        Some("audio/flac")
    } else if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("audio/webm")
    } else {
        None
    }
}

/// An MPEG audio frame header (an MP3 without ID3 tag): frame sync, and no reserved version,
/// layer, bitrate or sample rate, so that random bytes starting with 0xFF rarely pass.
fn is_mpeg_audio_frame(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return false;
    }
    let version = (b[1] >> 3) & 0b11;
    let layer = (b[1] >> 1) & 0b11;
    let bitrate = b[2] >> 4;
    let rate = (b[2] >> 2) & 0b11;
    version != 0b01 && layer != 0b00 && bitrate != 0b1111 && rate != 0b11
}

/// The bytes and sniffed type of base64 text, when it is a recognised medium of allowed size.
fn decode_media(b64: &str) -> Option<(Vec<u8>, &'static str)> {
    // Sized before decoding: a huge string is not copied just to be refused.
    if !(MIN_ENCODED_LEN..=MAX_ENCODED_LEN).contains(&b64.len()) {
        return None;
    }
    let bytes = B64.decode(b64).ok()?;
    if !(MIN_MEDIA_BYTES..=MAX_MEDIA_BYTES).contains(&bytes.len()) {
        return None;
    }
    let mime = sniff(&bytes)?;
    Some((bytes, mime))
}

/// The base64 part of a whole `data:<mime>;base64,<data>` URL.
fn data_url_payload(s: &str) -> Option<&str> {
    let head = s.get(..5)?;
    if !head.eq_ignore_ascii_case("data:") {
        return None;
    }
    let comma = s.find(',')?;
    let header = &s[5..comma];
    let tail = header.len().checked_sub(7)?;
    header
        .get(tail..)
        .filter(|t| t.eq_ignore_ascii_case(";base64"))?;
    Some(&s[comma + 1..])
}

/// Takes the medium in `b64` into `out` (once per hash) and gives the reference to put instead.
fn take(b64: &str, out: &mut Vec<MediaBlob>) -> Option<String> {
    let (bytes, mime) = decode_media(b64)?;
    let hash = content_hash(&bytes);
    let reference = media_ref(&hash);
    if !out.iter().any(|b| b.hash == hash) {
        out.push(MediaBlob {
            hash,
            mime: mime.to_string(),
            bytes,
        });
    }
    Some(reference)
}

/// Replaces, in place, the base64 media `v` holds with references, pushing each distinct
/// medium once into `out` (a medium already in `out` is not pushed again).
///
/// Recognised: any string that is a whole base64 data URL (OpenAI `image_url.url`); the `data`
/// of OpenAI `input_audio`, of Gemini `inline_data`, and of any `{"type":"base64", "data"}`
/// source (Anthropic images, whose `media_type` stays); and all of these inside a string that
/// is itself JSON (a request body recorded as text), which is re-serialised when changed.
/// Running it again on its own output changes nothing.
pub fn extract_from_value(v: &mut Value, out: &mut Vec<MediaBlob>) {
    walk(v, out, 0, 0);
}

/// True when something in `v` was replaced.
fn walk(v: &mut Value, out: &mut Vec<MediaBlob>, depth: usize, nesting: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::String(s) => match replace_string(s, out, nesting) {
            Some(new) => {
                *s = new;
                true
            }
            None => false,
        },
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= walk(item, out, depth + 1, nesting);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            // Bare base64 is taken only where a provider's shape says it is a medium.
            if map.get("type").and_then(Value::as_str) == Some("base64") {
                changed |= replace_data_field(map, out);
            }
            for key in ["input_audio", "inline_data", "inlineData"] {
                if let Some(Value::Object(inner)) = map.get_mut(key) {
                    changed |= replace_data_field(inner, out);
                }
            }
            for (_, item) in map.iter_mut() {
                changed |= walk(item, out, depth + 1, nesting);
            }
            changed
        }
        _ => false,
    }
}

/// Replaces a bare base64 `data` field of a provider's media object.
fn replace_data_field(map: &mut serde_json::Map<String, Value>, out: &mut Vec<MediaBlob>) -> bool {
    let Some(Value::String(data)) = map.get_mut("data") else {
        return false;
    };
    match take(data, out) {
        Some(reference) => {
            *data = reference;
            true
        }
        None => false,
    }
}

/// The new text of a string holding media: a reference for a whole data URL, or the string's
/// JSON re-serialised with its media replaced.
fn replace_string(s: &str, out: &mut Vec<MediaBlob>, nesting: usize) -> Option<String> {
    if s.len() < MIN_ENCODED_LEN {
        return None;
    }
    if let Some(b64) = data_url_payload(s) {
        return take(b64, out);
    }
    if nesting >= MAX_STRING_NESTING || !s.trim_start().starts_with(['{', '[']) {
        return None;
    }
    // Every recognised shape names "base64" or "input_audio" (or has an "inline_data" holding
    // one of them): text without either is not parsed.
    if !(s.contains("base64") || s.contains("input_audio")) {
        return None;
    }
    let mut parsed: Value = serde_json::from_str(s).ok()?;
    if !(parsed.is_object() || parsed.is_array()) {
        return None;
    }
    walk(&mut parsed, out, 0, nesting + 1).then(|| parsed.to_string())
}

/// Takes the media out of a span's `input` and `output` payloads and out of each message whose
/// content is a whole data URL. Nothing else of the span is changed.
pub fn extract(span: &mut Span) -> Vec<MediaBlob> {
    let mut out = Vec::new();
    for p in [span.input.as_mut(), span.output.as_mut()]
        .into_iter()
        .flatten()
    {
        extract_from_value(&mut p.value, &mut out);
    }
    for m in span
        .input_messages
        .iter_mut()
        .chain(span.output_messages.iter_mut())
    {
        if let Some(content) = &mut m.content {
            if let Some(reference) = data_url_payload(content).and_then(|b| take(b, &mut out)) {
                *content = reference;
            }
        }
    }
    out
}

/// Takes the media out of a span's raw attributes and its events' attributes, into `out`.
///
/// Ingest runs it before the conventions read payloads from these attributes: a payload is
/// cut to [`crate::span::MAX_PAYLOAD_BYTES`] when it is built, and a 2 MB image must be
/// taken whole, not cut (and the raw attribute would keep the base64 otherwise).
pub fn extract_from_attributes(span: &mut Span, out: &mut Vec<MediaBlob>) {
    for v in span.attributes.values_mut() {
        extract_from_value(v, out);
    }
    for e in &mut span.events {
        for v in e.attributes.values_mut() {
            extract_from_value(v, out);
        }
    }
}

/// Adds `blobs` to `out`, skipping hashes already there.
pub fn merge(out: &mut Vec<MediaBlob>, blobs: Vec<MediaBlob>) {
    for b in blobs {
        if !out.iter().any(|o| o.hash == b.hash) {
            out.push(b);
        }
    }
}

/// The (trace, hash) pairs of `spans` that refer to one of `media`, sorted, without repeats.
///
/// Found in each span's JSON, so a reference anywhere in it (payload, message, attribute,
/// event) counts. Spans are only read when there are media: a batch without any costs nothing.
pub fn refs_of(spans: &[Span], media: &[MediaBlob]) -> Vec<(crate::TraceId, String)> {
    let mut refs = Vec::new();
    if media.is_empty() {
        return refs;
    }
    for s in spans {
        let Ok(text) = serde_json::to_string(s) else {
            continue;
        };
        for hash in hashes_in(&text) {
            if media.iter().any(|m| m.hash == hash) {
                refs.push((s.trace_id, hash.to_string()));
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// Every well-formed reference's hash inside `text`, in order (repeats included).
pub fn hashes_in(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices(MEDIA_REF_PREFIX)
        .filter_map(move |(at, _)| {
            let start = at + MEDIA_REF_PREFIX.len();
            let hash = text.get(start..start + 64)?;
            let hex = hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            // A longer run of hex digits is not this reference.
            let ends = !text[start + 64..]
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_hexdigit());
            (hex && ends).then_some(hash)
        })
}

#[cfg(test)]
mod tests;
