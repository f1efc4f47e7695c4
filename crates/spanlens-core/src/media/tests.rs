use super::*;
use crate::span::{Message, Payload};
use proptest::prelude::*;
use serde_json::json;

/// `n` bytes starting with `magic`, the rest a varying filler (so that two sizes hash apart).
fn blob(magic: &[u8], n: usize) -> Vec<u8> {
    let mut b = magic.to_vec();
    b.extend((0..n.saturating_sub(magic.len())).map(|i| (i * 7 + n) as u8));
    b.truncate(n);
    b
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";

fn png(n: usize) -> Vec<u8> {
    blob(PNG, n)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", b64(bytes))
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn references_parse_back_only_when_exact() {
    let h = sha(b"x");
    assert_eq!(parse_ref(&media_ref(&h)), Some(h.as_str()));
    assert_eq!(parse_ref(&h), None);
    assert_eq!(parse_ref(&format!("{MEDIA_REF_PREFIX}{}", &h[..63])), None);
    assert_eq!(parse_ref(&format!("{MEDIA_REF_PREFIX}{h}0")), None);
    assert_eq!(
        parse_ref(&format!("{MEDIA_REF_PREFIX}{}", h.to_uppercase())),
        None
    );
}

#[test]
fn formats_are_told_by_their_magic_numbers() {
    let riff = |kind: &[u8]| {
        let mut b = b"RIFF\0\0\0\0".to_vec();
        b.extend_from_slice(kind);
        b
    };
    assert_eq!(sniff(PNG), Some("image/png"));
    assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
    assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
    assert_eq!(sniff(b"GIF87a.."), Some("image/gif"));
    assert_eq!(sniff(&riff(b"WEBP")), Some("image/webp"));
    assert_eq!(sniff(&riff(b"WAVE")), Some("audio/wav"));
    assert_eq!(sniff(&riff(b"AVI ")), None);
    assert_eq!(sniff(b"ID3\x04\0"), Some("audio/mpeg"));
    // MPEG-1 layer III, 128 kbit/s, 44.1 kHz.
    assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x64]), Some("audio/mpeg"));
    // Frame sync with the reserved version, or an invalid bitrate: not audio.
    assert_eq!(sniff(&[0xFF, 0xEB, 0x90, 0x64]), None);
    assert_eq!(sniff(&[0xFF, 0xFB, 0xF0, 0x64]), None);
    assert_eq!(sniff(b"OggS\0"), Some("audio/ogg"));
    assert_eq!(sniff(b"fLaC\0"), Some("audio/flac"));
    assert_eq!(sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0x01]), Some("audio/webm"));
    assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'>"), None);
    assert_eq!(sniff(b"%PDF-1.7"), None);
    assert_eq!(sniff(b"hello"), None);
    assert_eq!(sniff(b""), None);
}

#[test]
fn an_openai_image_url_becomes_a_reference() {
    let img = png(4096);
    let mut v = json!([{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": data_url("image/png", &img), "detail": "low"}}
    ]}]);
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(
        out,
        vec![MediaBlob {
            hash: sha(&img),
            mime: "image/png".into(),
            bytes: img.clone()
        }]
    );
    assert_eq!(
        v[0]["content"][1]["image_url"]["url"],
        json!(media_ref(&sha(&img)))
    );
    assert_eq!(v[0]["content"][1]["image_url"]["detail"], "low");
    assert_eq!(v[0]["content"][0]["text"], "what is this?");
}

#[test]
fn openai_input_audio_data_becomes_a_reference() {
    let mut wav = b"RIFF\x24\x10\0\0WAVEfmt ".to_vec();
    wav.extend(blob(b"", 3000));
    let mut v = json!({"type": "input_audio", "input_audio": {"data": b64(&wav), "format": "wav"}});
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].mime, "audio/wav");
    assert_eq!(out[0].bytes, wav);
    assert_eq!(
        v,
        json!({"type": "input_audio", "input_audio": {"data": media_ref(&sha(&wav)), "format": "wav"}})
    );

    let mp3 = blob(b"ID3\x04\0\0", 2048);
    let mut v = json!({"type": "input_audio", "input_audio": {"data": b64(&mp3), "format": "mp3"}});
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].mime, "audio/mpeg");
    assert_eq!(v["input_audio"]["data"], json!(media_ref(&sha(&mp3))));
}

#[test]
fn an_anthropic_image_source_keeps_its_media_type() {
    let jpeg = blob(&[0xFF, 0xD8, 0xFF, 0xE0], 5000);
    let mut v = json!({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(&jpeg)}}
    ]}]});
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].mime, "image/jpeg");
    assert_eq!(
        v["messages"][0]["content"][0]["source"],
        json!({"type": "base64", "media_type": "image/jpeg", "data": media_ref(&sha(&jpeg))})
    );
}

#[test]
fn gemini_inline_data_becomes_a_reference() {
    let gif = blob(b"GIF89a", 1500);
    let mut v = json!({"parts": [{"inline_data": {"mime_type": "image/gif", "data": b64(&gif)}}]});
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        v["parts"][0]["inline_data"]["data"],
        json!(media_ref(&sha(&gif)))
    );
}

#[test]
fn a_data_url_inside_a_json_string_is_taken_and_the_string_rewritten() {
    let img = png(3000);
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url("image/png", &img)}}
    ]}]});
    let mut v = json!({"input.value": body.to_string(), "n": 1});
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
    let text = v["input.value"].as_str().expect("still a string");
    assert!(!text.contains(&b64(&img)));
    let inner: Value = serde_json::from_str(text).expect("still JSON");
    assert_eq!(inner["model"], "gpt-4o");
    assert_eq!(
        inner["messages"][0]["content"][0]["image_url"]["url"],
        json!(media_ref(&sha(&img)))
    );

    // Two levels: a tool result (JSON text) inside a request body recorded as text.
    let tool = json!({"image": data_url("image/png", &png(2000))}).to_string();
    let mut v = Value::String(json!([{"role": "tool", "content": tool}]).to_string());
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 2);
    let outer: Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
    let inner: Value = serde_json::from_str(outer[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(inner["image"], json!(media_ref(&sha(&png(2000)))));
}

#[test]
fn the_same_image_twice_is_one_blob_and_two_references() {
    let img = png(2048);
    let url = data_url("image/png", &img);
    let mut v = json!([{"image_url": {"url": url}}, {"image_url": {"url": url}}]);
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
    let r = json!(media_ref(&sha(&img)));
    assert_eq!(v[0]["image_url"]["url"], r);
    assert_eq!(v[1]["image_url"]["url"], r);
    // A later call with the same output vector does not push it again either.
    let mut again = json!({"url": url});
    extract_from_value(&mut again, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(again["url"], r);
}

#[test]
fn svg_pdf_text_and_unknown_bytes_stay_inline() {
    let mut svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script>".to_vec();
    svg.extend(std::iter::repeat_n(b' ', 2000));
    let pdf = blob(b"%PDF-1.7\n", 4000);
    let text = "plain words ".repeat(200).into_bytes();
    let unknown = blob(b"\0\x01\x02\x03", 4000);
    let mut v = json!([
        data_url("image/svg+xml", &svg),
        data_url("application/pdf", &pdf),
        data_url("text/plain", &text),
        data_url("image/png", &unknown),
        {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": b64(&svg)}},
        {"type": "input_audio", "input_audio": {"data": b64(&unknown), "format": "wav"}},
    ]);
    let before = v.clone();
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert!(out.is_empty());
    assert_eq!(v, before);
}

#[test]
fn bare_base64_outside_a_known_shape_stays_inline() {
    let img = png(4000);
    let mut v = json!({"image": b64(&img), "source": {"data": b64(&img)}});
    let before = v.clone();
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert!(out.is_empty());
    assert_eq!(v, before);
}

#[test]
fn too_small_or_too_large_media_stay_inline() {
    let small = png(MIN_MEDIA_BYTES - 1);
    let mut v = json!({"url": data_url("image/png", &small)});
    let before = v.clone();
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert!(out.is_empty());
    assert_eq!(v, before);

    let at_min = png(MIN_MEDIA_BYTES);
    let mut v = json!({"url": data_url("image/png", &at_min)});
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1, "exactly the minimum is taken");

    // Over the maximum: refused by its length before any decoding.
    let huge = format!(
        "data:image/png;base64,iVBORw0KGgo{}",
        "A".repeat(MAX_ENCODED_LEN)
    );
    let mut v = Value::String(huge.clone());
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(v, Value::String(huge));
}

#[test]
fn invalid_base64_stays_inline() {
    let img = png(3000);
    let good = b64(&img);
    let with_space = format!("{} {}", &good[..100], &good[100..]);
    let with_newline = format!("{}\n{}", &good[..76], &good[76..]);
    let url_safe = good.replace('+', "-").replace('/', "_");
    assert_ne!(url_safe, good, "the filler must use + or /");
    let bad_char = format!("{}*{}", &good[..100], &good[101..]);
    let cut = &good[..good.len() - 3]; // a length of 4n+1 never decodes
    let mut out = Vec::new();
    for data in [
        with_space,
        with_newline,
        url_safe,
        bad_char,
        cut.to_string(),
    ] {
        let mut v = json!({"url": format!("data:image/png;base64,{data}")});
        let before = v.clone();
        extract_from_value(&mut v, &mut out);
        assert_eq!(v, before, "{}", &data[..20]);
    }
    assert!(out.is_empty());
    // Not base64 at all: a data URL without `;base64`.
    let mut v = json!(format!("data:image/png,{good}"));
    extract_from_value(&mut v, &mut out);
    assert!(out.is_empty());
}

#[test]
fn padding_is_optional() {
    let img = png(1025); // 1025 % 3 == 2: one `=` of padding
    let padded = b64(&img);
    assert!(padded.ends_with('='));
    let mut v = json!(format!(
        "data:image/png;base64,{}",
        padded.trim_end_matches('=')
    ));
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes, img);
}

#[test]
fn a_declared_type_that_disagrees_with_the_bytes_is_corrected() {
    let img = png(2000);
    let mut v = json!([
        data_url("image/jpeg", &img),
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": b64(&blob(b"OggS", 1800))}}
    ]);
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].mime, "image/png");
    assert_eq!(out[1].mime, "audio/ogg");
    // The declared type the source sent stays as it was in the span.
    assert_eq!(v[1]["source"]["media_type"], "image/gif");
}

#[test]
fn a_data_url_prefix_is_matched_without_regard_to_case() {
    let img = png(2000);
    let mut v = json!(format!("DATA:image/png;BASE64,{}", b64(&img)));
    let mut out = Vec::new();
    extract_from_value(&mut v, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn extract_covers_payloads_and_message_contents_only() {
    let a = png(2000);
    let b = blob(b"fLaC", 2500);
    let c = blob(b"GIF87a", 3000);
    let mut span = Span {
        input: Some(Payload {
            value: json!({"messages": [{"content": [{"image_url": {"url": data_url("image/png", &a)}}]}]}),
            ..Default::default()
        }),
        output: Some(Payload::from_text(&data_url("audio/flac", &b), None)),
        input_messages: vec![Message {
            role: Some("user".into()),
            content: Some(data_url("image/gif", &c)),
            ..Default::default()
        }],
        output_messages: vec![Message {
            content: Some(format!("see {}", data_url("image/gif", &c))),
            ..Default::default()
        }],
        ..Default::default()
    };
    span.attributes
        .insert("raw".into(), json!(data_url("image/png", &a)));
    let blobs = extract(&mut span);
    let hashes: Vec<_> = blobs.iter().map(|b| b.hash.clone()).collect();
    assert_eq!(hashes, vec![sha(&a), sha(&b), sha(&c)]);
    let text = serde_json::to_string(&span).unwrap();
    assert_eq!(
        span.input_messages[0].content.as_deref(),
        Some(media_ref(&sha(&c)).as_str())
    );
    assert_eq!(
        span.output.as_ref().unwrap().value,
        json!(media_ref(&sha(&b)))
    );
    // A data URL that is not the whole content stays; attributes are not extract's business.
    assert!(span.output_messages[0]
        .content
        .as_ref()
        .unwrap()
        .starts_with("see data:"));
    assert_eq!(
        text.matches(&b64(&a)).count(),
        1,
        "only the raw attribute keeps it"
    );
    assert!(!text.contains(&b64(&b)));

    let mut out = Vec::new();
    extract_from_attributes(&mut span, &mut out);
    assert_eq!(out.len(), 1);
    assert!(!serde_json::to_string(&span).unwrap().contains(&b64(&a)));
}

/// Arbitrary JSON whose strings are sometimes data URLs (of media or not), provider shapes or
/// JSON text holding them.
fn json_with_media() -> impl Strategy<Value = Value> {
    let magic = prop_oneof![
        Just(PNG.to_vec()),
        Just(b"GIF89a".to_vec()),
        Just(b"<svg>".to_vec()),
        Just(vec![0xFF, 0xFB, 0x90, 0x64]),
        Just(Vec::new()),
    ];
    let media =
        (magic, 900usize..2200, any::<u8>(), "[a-z/+]{0,12}").prop_map(|(magic, n, seed, mime)| {
            let mut b = magic;
            b.extend((0..n).map(|i| (i as u8).wrapping_mul(seed | 1)));
            data_url(&mime, &b)
        });
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        media.clone().prop_map(Value::String),
        media
            .clone()
            .prop_map(|u| json!({"type": "base64", "data": u.split_once(',').unwrap().1})),
        media.prop_map(|u| json!({"input_audio": {"data": u.split_once(',').unwrap().1}})),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner.clone(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            // The same value serialised into a string, as payloads often arrive.
            inner.prop_map(|v| Value::String(v.to_string())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn extraction_never_panics_and_is_idempotent(v in json_with_media()) {
        let mut once = v.clone();
        let mut out = Vec::new();
        extract_from_value(&mut once, &mut out);
        let mut twice = once.clone();
        let mut more = out.clone();
        extract_from_value(&mut twice, &mut more);
        prop_assert_eq!(&twice, &once);
        prop_assert_eq!(&more, &out);
        // Every blob is distinct, hashed right and of a sniffed type; every reference names one.
        for (i, b) in out.iter().enumerate() {
            prop_assert_eq!(&b.hash, &sha(&b.bytes));
            prop_assert_eq!(sniff(&b.bytes), Some(b.mime.as_str()));
            prop_assert!(out[..i].iter().all(|o| o.hash != b.hash));
        }
        let text = once.to_string();
        for b in &out {
            prop_assert!(text.contains(&b.hash));
        }
        if out.is_empty() {
            prop_assert_eq!(&once, &v);
        }
    }
}

/// The property above would hold trivially if nothing were ever extracted: the generator must
/// produce JSON from which media are taken, also from inside JSON text.
#[test]
fn the_generator_produces_extractable_media() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = json_with_media();
    let (mut with_media, mut in_text) = (0, 0);
    for _ in 0..200 {
        let mut v = strategy.new_tree(&mut runner).unwrap().current();
        let mut out = Vec::new();
        extract_from_value(&mut v, &mut out);
        if !out.is_empty() {
            with_media += 1;
            let nested = v.to_string();
            if nested.contains(&format!("\\\"{MEDIA_REF_PREFIX}")) {
                in_text += 1;
            }
        }
    }
    assert!(with_media > 20, "{with_media} of 200 had media");
    assert!(in_text > 2, "{in_text} of 200 had media inside JSON text");
}
