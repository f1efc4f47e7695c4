//! The `spanlens` binary end to end: exit statuses, messages on bad input, and output shapes.

mod common;

use serde_json::Value;
use std::process::{Command, Output, Stdio};

fn spanlens(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spanlens"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spanlens");
    common::feed_stdin(&mut child, stdin);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn otlp(trace_id: &str, span_id: &str, attrs: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},
        "scopeSpans":[{{"spans":[{{"traceId":"{trace_id}","spanId":"{span_id}","name":"chat",
        "startTimeUnixNano":"1735689600000000000","endTimeUnixNano":"1735689601500000000",{attrs}}}]}}]}}]}}"#
    )
}

const LLM_ATTRS: &str = r#""attributes":[
    {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
    {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
    {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-mini"}},
    {"key":"gen_ai.usage.input_tokens","value":{"intValue":"1000"}},
    {"key":"gen_ai.usage.cache_read.input_tokens","value":{"intValue":400}},
    {"key":"gen_ai.usage.output_tokens","value":{"intValue":"200"}}]"#;

#[test]
fn cost_json_has_the_documented_fields() {
    let o = spanlens(
        &[
            "cost",
            "--model",
            "openai/gpt-4o-2024-08-06",
            "--input-tokens",
            "2006",
            "--cache-read-tokens",
            "1920",
            "--output-tokens",
            "300",
            "--json",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matched"], true);
    assert_eq!(v["pricing_id"], "gpt-4o");
    // 86 × $2.50/M + 1920 × $1.25/M + 300 × $10/M
    assert_eq!(v["input_usd"], 0.000215);
    assert_eq!(v["cache_read_usd"], 0.0024);
    assert_eq!(v["cache_write_usd"], 0.0);
    assert_eq!(v["output_usd"], 0.003);
    assert_eq!(v["total_usd"], 0.005615);
    assert_eq!(v["total_nano_usd"], 5_615_000);
}

#[test]
fn cost_reads_raw_anthropic_usage_with_its_own_semantics() {
    let usage = br#"{"input_tokens": 50, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 20000, "output_tokens": 400}"#;
    let o = spanlens(
        &[
            "cost",
            "--model",
            "claude-sonnet-4-20250514",
            "--usage-json",
            "-",
            "--json",
        ],
        usage,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["usage_format"], "anthropic");
    assert_eq!(v["usage"]["input_tokens"], 21050);
    // 50 × $3 + 20000 × $0.30 + 1000 × $3.75 + 400 × $15, per million.
    assert_eq!(
        v["total_nano_usd"],
        150_000 + 6_000_000 + 3_750_000 + 6_000_000
    );
}

#[test]
fn unknown_model_is_unpriced_never_zero() {
    let o = spanlens(
        &[
            "cost",
            "--model",
            "my-private-finetune",
            "--input-tokens",
            "10",
            "--json",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matched"], false);
    assert!(v["total_usd"].is_null());
}

#[test]
fn cost_rejects_inconsistent_counts_and_bad_usage() {
    let o = spanlens(
        &[
            "cost",
            "--model",
            "gpt-4o",
            "--input-tokens",
            "5",
            "--cache-read-tokens",
            "9",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--cache-read-tokens 9"),
        "{}",
        stderr(&o)
    );
    let o = spanlens(
        &["cost", "--model", "gpt-4o", "--usage-json", "-"],
        br#"{"prompt_tokens": "ten"}"#,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`prompt_tokens`") && stderr(&o).contains("\"ten\""),
        "{}",
        stderr(&o)
    );
    let o = spanlens(
        &["cost", "--model", "gpt-4o", "--usage-json", "-"],
        b"{not json",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid JSON"), "{}", stderr(&o));
}

#[test]
fn normalize_prints_one_priced_canonical_span_per_line() {
    let body = otlp(
        "5B8EFFF798038103D269B633813FC60C",
        "eee19b7ec3c1b174",
        LLM_ATTRS,
    );
    let o = spanlens(&["normalize", "-"], body.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = o
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let s = &lines[0];
    assert_eq!(s["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(s["start_time"], "2025-01-01T00:00:00.000000000Z");
    assert_eq!(s["end_time"], "2025-01-01T00:00:01.500000000Z");
    assert_eq!(s["kind"], "llm");
    assert_eq!(s["service"], "checkout");
    assert_eq!(s["project"], "default");
    assert_eq!(s["usage"]["cache_read_tokens"], 400);
    assert_eq!(s["cost"]["source"], "computed");
    assert_eq!(s["cost"]["pricing_id"], "gpt-4o-mini");
    // 600 × $0.15/M + 400 × $0.075/M + 200 × $0.60/M
    assert_eq!(s["cost"]["total_usd"], 0.00024);
}

#[test]
fn normalize_reports_bad_input_with_field_and_value() {
    let o = spanlens(&["normalize", "-"], b"{\"resourceSpans\": [");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid JSON"), "{}", stderr(&o));

    let body = otlp("xyz", "eee19b7ec3c1b174", r#""attributes":[]"#);
    let o = spanlens(&["normalize", "-"], body.as_bytes());
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId") && e.contains("\"xyz\""),
        "{e}"
    );

    let body = otlp(
        "5b8efff798038103d269b633813fc60c",
        "eee19b7e",
        r#""attributes":[]"#,
    );
    let o = spanlens(&["normalize", "-"], body.as_bytes());
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("spans[0].spanId") && e.contains("eee19b7e"),
        "{e}"
    );

    let body = otlp(
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        r#""attributes":[{"key":"a","value":{"intValue":"many"}}]"#,
    );
    let o = spanlens(&["normalize", "-"], body.as_bytes());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("attributes[0].value.intValue") && stderr(&o).contains("\"many\""),
        "{}",
        stderr(&o)
    );

    let o = spanlens(&["normalize", "-"], br#"{"hello": 1}"#);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("resourceSpans") && stderr(&o).contains("hello"),
        "{}",
        stderr(&o)
    );

    let o = spanlens(&["normalize", "/nonexistent/file.json"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/file.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn normalize_reads_protobuf() {
    // A tiny ExportTraceServiceRequest encoded by hand: one span with ids, name and times.
    let mut span = Vec::new();
    span.extend([0x0a, 16]);
    span.extend([0x11; 16]);
    span.extend([0x12, 8]);
    span.extend([0x22; 8]);
    span.extend([0x2a, 4]);
    span.extend(b"root");
    span.push(0x39); // field 7, fixed64
    span.extend(1_735_689_600_000_000_000u64.to_le_bytes());
    span.push(0x41); // field 8, fixed64
    span.extend(1_735_689_602_000_000_000u64.to_le_bytes());
    let mut scope = vec![0x12, span.len() as u8];
    scope.extend(&span);
    let mut rs = vec![0x12, scope.len() as u8];
    rs.extend(&scope);
    let mut req = vec![0x0a, rs.len() as u8];
    req.extend(&rs);
    let o = spanlens(&["normalize", "-"], &req);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(o.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(v["span_id"], "2222222222222222");
    assert_eq!(v["name"], "root");
    assert_eq!(v["end_time"], "2025-01-01T00:00:02.000000000Z");
    let o = spanlens(&["normalize", "-"], &[0x0a, 0xff, 0x01]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid OTLP protobuf"),
        "{}",
        stderr(&o)
    );
}

/// `--store URI` (and `SPANLENS_STORE`) names the store every store-opening command uses:
/// `sqlite:///dir` is the embedded database there; a URI this build cannot open exits 2 with
/// a message naming it, password hidden.
#[test]
fn store_uris_open_the_embedded_store_and_refuse_the_rest_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("by-uri");
    let uri = format!("sqlite://{}", data.display());
    let o = spanlens(&["demo", "--store", &uri], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(data.join("spanlens.db").is_file());
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains(&format!("--data-dir {}", data.display())),
        "{out}"
    );

    // The same store through the environment: reprice finds the demo's spans there.
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "version = \"t\"\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_spanlens"))
        .args([
            "reprice",
            "--prices",
            prices.to_str().unwrap(),
            "--dry-run",
            "--json",
        ])
        .env("SPANLENS_STORE", &uri)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["examined"].as_u64().unwrap() > 0, "{report}");

    for (uri, want) in [
        ("mysql://root:hunter2@db/x", "unknown scheme \"mysql\""),
        (
            // An unreachable PostgreSQL (or, built without it, no backend).
            "postgres://spanlens:hunter2@db.invalid:5432/traces",
            if cfg!(feature = "postgres") {
                "cannot connect to postgres://spanlens:***@db.invalid:5432/traces"
            } else {
                "no postgres backend"
            },
        ),
        (
            "clickhouse://db.invalid:8123/spanlens?password=hunter2",
            if cfg!(feature = "clickhouse") {
                "cannot connect to clickhouse://db.invalid:8123/spanlens?password=***"
            } else {
                "no clickhouse backend"
            },
        ),
        ("/not/a/uri", "not a store URI"),
    ] {
        let o = spanlens(&["demo", "--store", uri], b"");
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{uri}: {e}");
        assert!(e.contains(want), "{uri}: {e}");
        assert!(!e.contains("hunter2"), "the password shows: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    // A store that cannot be opened (its directory is a file) names the URI, exit 2.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = spanlens(
        &["demo", "--store", &format!("sqlite://{}", file.display())],
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("sqlite://{}", file.display())),
        "{}",
        stderr(&o)
    );
    // A command that must read a store does not create an empty one.
    let o = spanlens(
        &[
            "reprice",
            "--prices",
            prices.to_str().unwrap(),
            "--store",
            "sqlite:///nonexistent-spanlens-dir",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no database in --store sqlite:///nonexistent-spanlens-dir"),
        "{}",
        stderr(&o)
    );
    assert!(!std::path::Path::new("/nonexistent-spanlens-dir").exists());
    // --store and --data-dir name the store twice: refused.
    let o = spanlens(&["demo", "--store", &uri, "--data-dir", "x"], b"");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn migrate_copies_a_store_checks_it_and_refuses_a_full_target() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("from"), dir.path().join("to"));
    let uri = |p: &std::path::Path| format!("sqlite://{}", p.display());
    let o = spanlens(&["demo", "--data-dir", from.to_str().unwrap()], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = spanlens(
        &[
            "migrate",
            "--from",
            &uri(&from),
            "--to",
            &uri(&to),
            "--json",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("every project matches"),
        "{}",
        stderr(&o)
    );
    // Progress lines go to stderr (not a terminal here: whole lines).
    assert!(
        stderr(&o).contains("copying \"default\": "),
        "{}",
        stderr(&o)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &report["projects"][0];
    assert_eq!(p["source"], p["target"], "{report}");
    assert!(p["source"]["spans"].as_u64().unwrap() > 1000, "{report}");
    // Copying another source into the full target is refused, naming the project.
    let other = dir.path().join("other");
    let o = spanlens(
        &["demo", "--data-dir", other.to_str().unwrap(), "--seed", "7"],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = spanlens(&["migrate", "--from", &uri(&other), "--to", &uri(&to)], b"");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already holds"), "{}", stderr(&o));
    // A source that does not exist is not created.
    let o = spanlens(
        &[
            "migrate",
            "--from",
            &uri(&dir.path().join("none")),
            "--to",
            &uri(&to),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!dir.path().join("none").exists());
}

/// `serve --redact…` options that cannot be used stop the server before it opens anything,
/// exit 2, and say which option and why.
#[test]
fn serve_refuses_unusable_redaction_options() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (args, want) in [
        (vec!["--redact-rule", "ticket"], "write NAME=REGEX"),
        (
            vec!["--redact-rule", "ticket=("],
            "redaction rule \"ticket\"",
        ),
        (vec!["--redact-rule", "t=a*"], "matches empty text"),
        (vec!["--redact-drop", "a*b"], "attribute key \"a*b\""),
        (vec!["--redact", "everything"], "invalid value 'everything'"),
    ] {
        let mut all = vec![
            "serve",
            "--data-dir",
            data,
            "--http",
            "127.0.0.1:0",
            "--grpc",
            "127.0.0.1:0",
        ];
        all.extend(&args);
        let o = spanlens(&all, b"");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!std::path::Path::new(data).exists(), "nothing was opened");
}
