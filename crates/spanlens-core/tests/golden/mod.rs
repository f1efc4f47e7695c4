//! Golden-file comparison shared by the fixture tests: canonical spans are compared with a
//! `*.expected.jsonl` file as parsed JSON, field by field, and `SPANLENS_BLESS=1` rewrites the
//! file from the current output instead (review that diff line by line before committing it).

use serde_json::Value;
use std::path::Path;

/// Differences between `got` and the golden file at `path`, one message per differing span
/// (empty when they match, or after blessing).
pub fn compare(path: &Path, got: &[Value]) -> Vec<String> {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    if std::env::var("SPANLENS_BLESS").is_ok_and(|v| v == "1") {
        let text: String = got.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "read {}: {e} (run with SPANLENS_BLESS=1 to create it)",
            path.display()
        )
    });
    let want: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{file} line {}: {e}", i + 1))
        })
        .collect();
    let mut problems = Vec::new();
    if want.len() != got.len() {
        problems.push(format!(
            "{file}: expected {} spans, got {}",
            want.len(),
            got.len()
        ));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let mut d = Vec::new();
        diff("", w, g, &mut d);
        if !d.is_empty() {
            problems.push(format!(
                "{file}: span #{i} (span_id {}, name {:?}) differs:\n{}",
                g["span_id"].as_str().unwrap_or("?"),
                g["name"].as_str().unwrap_or("?"),
                d.join("\n")
            ));
        }
    }
    problems
}

/// Paths (`usage.input_tokens`, `attributes.x`) where two JSON values differ, with both sides.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => diff(&join(k), wv, gv, out),
                    None => out.push(format!("  {}: expected {wv}, field missing", join(k))),
                }
            }
            for (k, gv) in g.iter().filter(|(k, _)| !w.contains_key(*k)) {
                out.push(format!("  {}: not expected, got {gv}", join(k)));
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(&format!("{path}[{i}]"), wv, gv, out);
            }
        }
        _ if want != got => out.push(format!("  {path}: expected {want}, got {got}")),
        _ => {}
    }
}
