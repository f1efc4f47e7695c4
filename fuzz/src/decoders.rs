//! Decoder targets: the bytes are the body as the decoder receives it.
//!
//! Invariants beyond "no panic":
//! - OTLP protobuf: a decoded request re-encodes to bytes that decode to the same request;
//! - OTLP JSON: a decoded request, written back as OTLP/JSON, decodes to the same request
//!   (doubles within a few units in the last place: serde_json's default float parsing is not
//!   exact, finding F1), and its protobuf encoding decodes too;
//! - OpenAI Agents: every item of `data` is accounted for, as a span or as a rejection;
//! - gzip: any body is answered (no panic, nothing over the cap), and any data gzip-compressed
//!   comes back unchanged.

use crate::gen;
use bytes::Bytes;
use prost::Message;
use serde_json::Value;
use spanlens_core::otlp::{self, proto};
use spanlens_core::{openai_agents, NormalizeOptions, Timestamp};
use spanlens_server::ingest::{decode_body, MAX_BODY_BYTES};
use std::io::Write;

/// `spanlens_core::otlp::decode_protobuf` on the bytes.
pub fn decode_otlp_proto(data: &[u8]) {
    let Ok(req) = otlp::decode_protobuf(data) else {
        return;
    };
    let bytes = req.encode_to_vec();
    let again = otlp::decode_protobuf(&bytes).expect("a re-encoded request decodes");
    assert_eq!(
        again.encode_to_vec(),
        bytes,
        "a re-encoded request decodes to the same request"
    );
}

/// `spanlens_core::otlp::decode_json` on the bytes.
pub fn decode_otlp_json(data: &[u8]) {
    let Ok(req) = otlp::decode_json(data) else {
        return;
    };
    assert_json_round_trip(&req, &gen::JsonStyle::default());
    let bytes = req.encode_to_vec();
    otlp::decode_protobuf(&bytes).expect("the protobuf encoding of a JSON request decodes");
}

/// Writes `req` as OTLP/JSON in `style`, decodes it, and checks the same request comes back.
pub fn assert_json_round_trip(req: &proto::ExportTraceServiceRequest, style: &gen::JsonStyle) {
    let text = gen::otlp_json(req, style).to_string();
    let back = match otlp::decode_json(text.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("OTLP/JSON written from a decoded request does not decode: {e}\n{text}"),
    };
    let (a, da) = without_doubles(req.clone());
    let (b, db) = without_doubles(back);
    assert_eq!(
        a.encode_to_vec(),
        b.encode_to_vec(),
        "OTLP/JSON round trip changed the request\n{text}"
    );
    assert_eq!(da.len(), db.len(), "OTLP/JSON round trip lost doubles");
    for (x, y) in da.iter().zip(&db) {
        assert!(
            close(*x, *y),
            "OTLP/JSON round trip changed a double: {x:e} became {y:e}"
        );
    }
}

/// Equal, or both NaN (the workspace's serde_json reads every double back exactly).
fn close(x: f64, y: f64) -> bool {
    (x.is_nan() && y.is_nan()) || x == y
}

/// The request with every double attribute value set to 0, and the doubles in order.
fn without_doubles(
    mut req: proto::ExportTraceServiceRequest,
) -> (proto::ExportTraceServiceRequest, Vec<f64>) {
    fn value(v: &mut proto::AnyValue, out: &mut Vec<f64>) {
        use proto::any_value::Value as V;
        match &mut v.value {
            Some(V::DoubleValue(d)) => {
                out.push(*d);
                *d = 0.0;
            }
            Some(V::ArrayValue(a)) => a.values.iter_mut().for_each(|x| value(x, out)),
            Some(V::KvlistValue(kv)) => kvs(&mut kv.values, out),
            _ => {}
        }
    }
    fn kvs(list: &mut [proto::KeyValue], out: &mut Vec<f64>) {
        for kv in list {
            if let Some(v) = &mut kv.value {
                value(v, out);
            }
        }
    }
    let mut out = Vec::new();
    for rs in &mut req.resource_spans {
        if let Some(r) = &mut rs.resource {
            kvs(&mut r.attributes, &mut out);
        }
        for ss in &mut rs.scope_spans {
            if let Some(sc) = &mut ss.scope {
                kvs(&mut sc.attributes, &mut out);
            }
            for s in &mut ss.spans {
                kvs(&mut s.attributes, &mut out);
                for e in &mut s.events {
                    kvs(&mut e.attributes, &mut out);
                }
                for l in &mut s.links {
                    kvs(&mut l.attributes, &mut out);
                }
            }
        }
    }
    (req, out)
}

/// The OpenAI Agents export read as the server reads it: JSON, format detection, then
/// `spanlens_core::openai_agents::normalize_export`.
pub fn decode_agents(data: &[u8]) {
    let _ = spanlens_core::detect_json_format(data);
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let opts = NormalizeOptions {
        received_at: Timestamp(1_700_000_000_000_000_000),
        default_project: Some("fuzz".into()),
    };
    let Ok(n) = openai_agents::normalize_export(&v, &opts) else {
        return;
    };
    let items = v["data"].as_array().map_or(0, Vec::len);
    assert_eq!(
        n.spans.len() + n.rejected.len(),
        items,
        "every item of data is a span or a rejection"
    );
}

/// The `Content-Encoding` values the first byte picks from.
const ENCODINGS: &[&str] = &[
    "gzip",
    "x-gzip",
    " GZIP ",
    "identity",
    "",
    "br",
    "gzip, gzip",
];

/// `spanlens_server::ingest::decode_body`: the first byte picks the `Content-Encoding`, the rest
/// is the body.
pub fn decode_gzip(data: &[u8]) {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(*first) % ENCODINGS.len()];
    let header = (first & 0x80 == 0).then_some(encoding);
    if let Ok(out) = decode_body(header, Bytes::copy_from_slice(body)) {
        assert!(out.len() <= MAX_BODY_BYTES, "decoded body over the cap");
        if matches!(header.map(str::trim), None | Some("" | "identity")) {
            assert_eq!(&out[..], body, "an identity body comes back as is");
        }
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).expect("gzip into memory");
    let gz = enc.finish().expect("gzip into memory");
    let out = decode_body(Some("gzip"), Bytes::from(gz)).expect("a gzip body decodes");
    assert_eq!(&out[..], body, "gzip round trip");
}
