//! The logic of every Spanlens fuzz target, as plain functions.
//!
//! Each `fuzz_targets/*.rs` binary is a one-line wrapper around one of these functions, so the
//! same code runs under libFuzzer (`cargo fuzz run`) and on stable Rust in the corpus replay
//! test (`tests/replay.rs`). A function returns normally for any input the product handles
//! correctly — including inputs it rightly refuses — and panics on a finding: a panic inside
//! Spanlens, or a broken invariant checked here (see each module).
//!
//! Targets:
//! - decoders ([`decoders`]): OTLP protobuf, OTLP JSON, the OpenAI Agents export, the server's
//!   gzip body decoding;
//! - normalisation of each format ([`normalise`]), with invariants on the canonical spans;
//! - the whole ingest path of each format ([`server`]): the request through the server's real
//!   router (or gRPC service) into a real SQLite store, then every stored trace read back.
//!
//! The normalisation and ingest targets read their first byte as a mode (see [`Mode`]): raw
//! body, or a request built from the remaining bytes by [`gen`].

pub mod decoders;
pub mod gen;
pub mod known;
pub mod normalise;
pub mod server;

/// How a normalisation or ingest target reads its input: the first byte's bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(u8);

impl Mode {
    /// Splits an input into its mode byte and the rest (an empty input is a raw, empty body).
    pub fn split(data: &[u8]) -> (Mode, &[u8]) {
        match data.split_first() {
            Some((m, rest)) => (Mode(*m), rest),
            None => (Mode(0), data),
        }
    }

    /// Bit 0: the rest builds a structured request ([`gen`]) instead of being the body as is.
    pub fn built(self) -> bool {
        self.0 & 1 != 0
    }

    /// Bit 1: the body is sent gzip-compressed with `Content-Encoding: gzip` (ingest targets).
    pub fn gzip(self) -> bool {
        self.0 & 2 != 0
    }

    /// Bit 2: the gRPC body is sent without the gRPC message framing (gRPC target).
    pub fn unframed(self) -> bool {
        self.0 & 4 != 0
    }
}

/// A fuzz target: its name (the binary's and the corpus directory's) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, for the replay test.
pub const TARGETS: &[Target] = &[
    ("decode_otlp_proto", decoders::decode_otlp_proto),
    ("decode_otlp_json", decoders::decode_otlp_json),
    ("decode_agents", decoders::decode_agents),
    ("decode_gzip", decoders::decode_gzip),
    ("normalize_otlp_proto", normalise::normalize_otlp_proto),
    ("normalize_otlp_json", normalise::normalize_otlp_json),
    ("normalize_agents", normalise::normalize_agents),
    ("ingest_otlp_proto", server::ingest_otlp_proto),
    ("ingest_otlp_json", server::ingest_otlp_json),
    ("ingest_agents", server::ingest_agents),
    ("ingest_grpc", server::ingest_grpc),
];
