//! `spanlens diff A B` against a real server: the aligned rows with their deltas, the totals
//! and the output diff as printed; `previous`; `--json` is the API's answer; bad and unknown
//! ids are exit status 2 naming which.

use serde_json::{json, Value};

mod common;

use common::{attr, free_port, spanlens, text, Server};

const T0: u64 = 1_700_000_000_000_000_000;

fn tid(n: u8) -> String {
    format!("{n:02x}d1ff{}", "0".repeat(26))
}

/// A run of `support`: a root and a chat call answering `answer` with `model`, and a tool call
/// per entry of `tools`.
fn run(
    n: u8,
    start: u64,
    root_ms: u64,
    model: &str,
    tokens: u64,
    answer: &str,
    tools: &[&str],
) -> Vec<u8> {
    let sid = |i: u64| format!("{n:02x}000000000000{i:02x}");
    let ms = 1_000_000;
    let mut spans = vec![
        json!({"traceId": tid(n), "spanId": sid(0), "name": "support",
               "startTimeUnixNano": start.to_string(),
               "endTimeUnixNano": (start + root_ms * ms).to_string()}),
        json!({"traceId": tid(n), "spanId": sid(1), "parentSpanId": sid(0), "name": "chat",
               "startTimeUnixNano": (start + ms).to_string(),
               "endTimeUnixNano": (start + 500 * ms).to_string(),
               "attributes": [
                   attr("gen_ai.operation.name", json!({"stringValue": "chat"})),
                   attr("gen_ai.request.model", json!({"stringValue": model})),
                   attr("gen_ai.usage.input_tokens", json!({"intValue": tokens.to_string()})),
                   attr("gen_ai.usage.output_tokens", json!({"intValue": "100"})),
                   attr("output.value", json!({"stringValue": answer}))]}),
    ];
    for (i, name) in tools.iter().enumerate() {
        let at = start + (600 + 10 * i as u64) * ms;
        spans.push(
            json!({"traceId": tid(n), "spanId": sid(2 + i as u64), "parentSpanId": sid(0),
            "name": name, "startTimeUnixNano": at.to_string(),
            "endTimeUnixNano": (at + 5 * ms).to_string()}),
        );
    }
    serde_json::to_vec(&json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})).unwrap()
}

#[test]
fn diff_prints_aligned_rows_deltas_totals_and_the_output_diff() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), free_port(), &[]);
    let ep = server.endpoint();
    ep.post_traces(&run(
        1,
        T0,
        1000,
        "gpt-4o",
        1000,
        "Your order shipped.",
        &["lookup", "lookup"],
    ));
    ep.post_traces(&run(
        2,
        T0 + 60_000_000_000,
        1500,
        "gpt-4o-mini",
        3000,
        "Your order shipped today.\u{1b}[31m",
        &["lookup", "refund"],
    ));
    let url = server.url.as_str();

    let o = spanlens(&["diff", &tid(1), &tid(2), "--server", url]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let line = |start: &str| -> String {
        out.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{out}"))
            .to_string()
    };
    // The root: 1.00s → 1.50s.
    let root = line("support");
    assert!(
        root.contains("1.00s") && root.contains("1.50s") && root.contains("+500ms"),
        "{root}"
    );
    // The model call: +2000 input tokens, $0.0035 → $0.00051 (gpt-4o-mini: 3000 × 0.15 + 100 × 0.60 per million).
    let chat = line("chat");
    assert!(
        chat.contains("+2000") && chat.contains("-$0.00299"),
        "{chat}"
    );
    assert!(
        chat.contains("model gpt-4o→gpt-4o-mini") && chat.contains("output"),
        "{chat}"
    );
    // Repeated siblings are numbered; the second lookup and the refund stand alone.
    assert!(
        line("lookup #1").contains("+0") || line("lookup #1").contains(" 0 "),
        "{out}"
    );
    assert!(line("lookup #2").contains("only in A"), "{out}");
    assert!(line("refund").contains("only in B"), "{out}");
    let totals = line("totals:");
    assert!(
        totals.contains("input tokens 1000 → 3000 (+2000)"),
        "{totals}"
    );
    assert!(
        totals.contains("cost $0.0035 → $0.00051 (-$0.00299)"),
        "{totals}"
    );
    assert!(
        line("rows:").contains("3 matched, 1 only in A, 1 only in B, 1 changed outputs"),
        "{out}"
    );
    // The output diff, with the escape sequence shown, not sent to the terminal.
    assert!(
        out.contains("Your order [-shipped.-]{+shipped today.\\u{1b}[31m+}"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "{out}");

    // previous, by prefix; --json is the API's answer.
    let o = spanlens(&["diff", &tid(2)[..12], "previous", "--server", url, "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["b"]["trace_id"], tid(1));
    assert_eq!(v["b_is_previous"], true);
    assert_eq!(v["totals"]["delta"]["input_tokens"], -2000);

    // Bad and unknown ids: exit 2, naming which.
    let o = spanlens(&["diff", "zz", &tid(1), "--server", url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("invalid trace id \"zz\""),
        "{}",
        text(&o.stderr)
    );
    let o = spanlens(&["diff", &tid(1), &tid(9), "--server", url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("404: b: no trace"),
        "{}",
        text(&o.stderr)
    );
    let o = spanlens(&["diff", &tid(1), "previous", "--server", url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("b=previous: no trace named \"support\""),
        "{}",
        text(&o.stderr)
    );
}
