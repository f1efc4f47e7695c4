//! Span bodies are stored per trace chunk: the canonical JSON of every span of one trace that
//! arrived in one submission, framed and compressed together.
//!
//! Why: spans of one trace repeat most of their text (ids, service, session, attribute names), so
//! compressing them together shrinks the bytes the writer and the checkpointer push through the
//! WAL about sevenfold on agent traces, and a trace is read back with a few row lookups instead
//! of one per span. A span sent again lands in a newer chunk; readers let the newest copy win.
//!
//! Frame, repeated: span id (8 bytes), body length (u32 little-endian), body (UTF-8 JSON).

use crate::error::StoreError;
use std::collections::HashMap;

/// `trace_chunks.codec`: the frames as they are.
pub const CODEC_PLAIN: i64 = 0;
/// `trace_chunks.codec`: the frames compressed with zstd.
pub const CODEC_ZSTD: i64 = 1;

/// Framed bodies shorter than this are stored plain: compression would save next to nothing.
const COMPRESS_MIN_BYTES: usize = 200;

/// zstd level: the fast range already finds the repetition between spans of a trace. On the
/// load generator's agent traces level -1 takes 780 ns a span for 145 bytes, level 1 1,030 ns
/// for 117: the 28 bytes cost the writer far less than the 250 ns cost the ingest threads.
const ZSTD_LEVEL: i32 = -1;

/// One chunk ready to insert.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The trace every span in the chunk belongs to.
    pub trace_id: [u8; 16],
    /// Number of spans framed in it.
    pub spans: u32,
    /// [`CODEC_PLAIN`] or [`CODEC_ZSTD`].
    pub codec: i64,
    /// The encoded frames.
    pub body: Vec<u8>,
}

/// Builds one chunk: bodies are written straight into the frame buffer (no string per span),
/// and the buffer is reused by the next chunk built on the same thread.
pub struct Framer {
    buf: Vec<u8>,
    spans: u32,
}

thread_local! {
    /// The frame buffer of the last finished chunk on this thread, kept for the next one.
    static FRAME_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Framer {
    /// An empty chunk.
    pub fn new() -> Framer {
        let mut buf = FRAME_BUFFER.with(|b| b.take());
        buf.clear();
        Framer { buf, spans: 0 }
    }

    /// Appends one span whose body `write` puts at the end of the buffer it is given.
    pub fn push<E>(
        &mut self,
        span_id: &[u8; 8],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.buf.len();
        self.buf.extend_from_slice(span_id);
        self.buf.extend_from_slice(&[0; 4]);
        if let Err(e) = write(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        // Bodies over 4 GiB cannot reach here: a request is capped at 64 MiB.
        let len = (self.buf.len() - start - 12) as u32;
        self.buf[start + 8..start + 12].copy_from_slice(&len.to_le_bytes());
        self.spans += 1;
        Ok(())
    }

    /// The chunk, compressed when that is worth it.
    pub fn finish(self, trace_id: [u8; 16]) -> Chunk {
        let Framer { buf, spans } = self;
        let packed = (buf.len() >= COMPRESS_MIN_BYTES)
            .then(|| compress(&buf).ok())
            .flatten()
            .filter(|p| p.len() < buf.len());
        let (codec, body) = match packed {
            Some(p) => (CODEC_ZSTD, p),
            None => (CODEC_PLAIN, buf.clone()),
        };
        FRAME_BUFFER.with(|b| b.set(buf));
        Chunk {
            trace_id,
            spans,
            codec,
            body,
        }
    }
}

/// Frames and (when worth it) compresses the given bodies of spans of one trace.
pub fn encode<'a>(
    trace_id: [u8; 16],
    bodies: impl IntoIterator<Item = (&'a [u8; 8], &'a str)>,
) -> Chunk {
    let mut f = Framer::new();
    for (span_id, body) in bodies {
        let _ = f.push(span_id, |buf| {
            buf.extend_from_slice(body.as_bytes());
            Ok::<(), ()>(())
        });
    }
    f.finish(trace_id)
}

thread_local! {
    /// One compression context per thread: creating one costs more than compressing a chunk.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        c.as_mut().expect("just set").compress(data)
    })
}

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: "trace_chunks",
        reason: reason.into(),
    }
}

/// Largest decompressed chunk accepted; a chunk holds at most one request (64 MiB) of spans.
const MAX_CHUNK_BYTES: usize = 256 * 1024 * 1024;

/// Decodes one chunk into `out` (span id → JSON), replacing bodies of ids already there, so
/// feeding chunks oldest first leaves the newest copy of every span.
pub fn decode_into(
    codec: i64,
    body: &[u8],
    out: &mut HashMap<[u8; 8], String>,
) -> Result<(), StoreError> {
    ChunkReader::new().for_each(codec, body, &mut |span_id, text| {
        out.insert(span_id, text.to_string());
        Ok(())
    })
}

/// What [`ChunkReader::for_each`] calls with each span id and body.
pub type SpanBodyFn<'a> = dyn FnMut([u8; 8], &str) -> Result<(), StoreError> + 'a;

/// Reads many chunks with one zstd context and one buffer, handing out span bodies as borrowed
/// text: a scan over thousands of traces then pays neither a context nor a `String` per chunk
/// and span (both showed up as most of the time of such scans).
pub struct ChunkReader {
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    buf: Vec<u8>,
}

impl ChunkReader {
    /// A reader; the zstd context is made on the first compressed chunk.
    pub fn new() -> ChunkReader {
        ChunkReader {
            dctx: None,
            buf: Vec::new(),
        }
    }

    /// Decodes one chunk and calls `f` with each span id and body, in the chunk's order.
    pub fn for_each(
        &mut self,
        codec: i64,
        body: &[u8],
        f: &mut SpanBodyFn<'_>,
    ) -> Result<(), StoreError> {
        let mut rest: &[u8] = match codec {
            CODEC_PLAIN => body,
            CODEC_ZSTD => {
                let size = zstd::bulk::Decompressor::upper_bound(body)
                    .unwrap_or(MAX_CHUNK_BYTES)
                    .min(MAX_CHUNK_BYTES);
                if self.dctx.is_none() {
                    self.dctx =
                        Some(zstd::bulk::Decompressor::new().map_err(|e| {
                            corrupt(format!("cannot make a zstd decompressor: {e}"))
                        })?);
                }
                let dctx = self.dctx.as_mut().expect("just set");
                self.buf.clear();
                self.buf.reserve(size);
                dctx.decompress_to_buffer(body, &mut self.buf)
                    .map_err(|e| corrupt(format!("chunk does not decompress: {e}")))?;
                &self.buf
            }
            other => return Err(corrupt(format!("unknown codec {other}"))),
        };
        while !rest.is_empty() {
            if rest.len() < 12 {
                return Err(corrupt("truncated frame header"));
            }
            let span_id: [u8; 8] = rest[..8].try_into().expect("8 bytes");
            let len = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
            rest = &rest[12..];
            if rest.len() < len {
                return Err(corrupt("truncated span body"));
            }
            let text = std::str::from_utf8(&rest[..len])
                .map_err(|e| corrupt(format!("span body is not UTF-8: {e}")))?;
            f(span_id, text)?;
            rest = &rest[len..];
        }
        Ok(())
    }
}

impl Default for ChunkReader {
    fn default() -> Self {
        ChunkReader::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_plain_and_compressed_with_newest_copy_winning() {
        let small = encode([1; 16], [(&[1u8; 8], "{}")]);
        assert_eq!(small.codec, CODEC_PLAIN);
        let long = "x".repeat(500);
        let bodies = [
            ([2u8; 8], format!("{{\"a\":\"{long}\"}}")),
            ([3u8; 8], format!("{{\"b\":\"{long}\"}}")),
        ];
        let big = encode([1; 16], bodies.iter().map(|(i, b)| (i, b.as_str())));
        assert_eq!(big.codec, CODEC_ZSTD);
        assert_eq!(big.spans, 2);
        assert!(
            big.body.len() < 200,
            "repetition compresses: {}",
            big.body.len()
        );
        let newer = encode([1; 16], [(&[1u8; 8], "{\"v\":2}")]);
        let mut out = HashMap::new();
        for c in [&small, &big, &newer] {
            decode_into(c.codec, &c.body, &mut out).unwrap();
        }
        assert_eq!(out.len(), 3);
        assert_eq!(out[&[1u8; 8]], "{\"v\":2}");
        assert_eq!(out[&[3u8; 8]], bodies[1].1);
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let c = encode([1; 16], [(&[1u8; 8], "{\"k\":1}")]);
        let mut out = HashMap::new();
        for cut in 0..c.body.len() {
            let r = decode_into(c.codec, &c.body[..cut], &mut out);
            assert!(cut == 0 || r.is_err(), "cut at {cut}");
        }
        assert!(decode_into(CODEC_ZSTD, b"not zstd", &mut out).is_err());
        assert!(decode_into(7, b"", &mut out).is_err());
    }

    #[test]
    fn the_chunk_reader_agrees_with_decode_into_and_refuses_damage() {
        let bodies: Vec<([u8; 8], String)> = (0u8..40)
            .map(|i| {
                (
                    [i; 8],
                    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(50)),
                )
            })
            .collect();
        let chunk = encode([1; 16], bodies.iter().map(|(id, b)| (id, b.as_str())));
        assert_eq!(chunk.codec, CODEC_ZSTD);
        let mut want = HashMap::new();
        decode_into(chunk.codec, &chunk.body, &mut want).unwrap();
        let mut reader = ChunkReader::new();
        for _ in 0..2 {
            let mut got = HashMap::new();
            reader
                .for_each(chunk.codec, &chunk.body, &mut |id, text| {
                    got.insert(id, text.to_string());
                    Ok(())
                })
                .unwrap();
            assert_eq!(got, want);
        }
        let mut cut = chunk.body.clone();
        cut.truncate(cut.len() / 2);
        assert!(reader
            .for_each(chunk.codec, &cut, &mut |_, _| Ok(()))
            .is_err());
        assert!(reader.for_each(7, &chunk.body, &mut |_, _| Ok(())).is_err());
    }
}
