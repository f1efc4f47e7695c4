//! The client commands (`demo`, `traces`, `trace`, `tail`, `serve --demo`) against a real server
//! started from the `spanlens` binary.

use serde_json::Value;
use spanlens_core::NanoUsd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, lines_of, spanlens, text, Server, BIN};

/// Waits for a line containing `needle`; returns it, or panics with what was seen.
fn wait_line(rx: &Receiver<String>, needle: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!("{what}: no line containing {needle:?}; saw {seen:#?}");
}

impl Server {
    fn post_otlp(&self, body: &str) {
        let r = ureq::post(format!("{}/v1/traces", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("post OTLP");
        assert_eq!(r.status().as_u16(), 200);
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(term.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Simulates a crash (SIGKILL).
    fn crash(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// A child killed when dropped, so a failing assertion leaves no process behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Parses `wrote N demo traces (M spans: X new, Y replaced)`.
fn demo_counts(out: &str) -> (u64, u64, u64, u64) {
    let nums: Vec<u64> = out
        .lines()
        .next()
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(nums.len() >= 4, "unexpected demo output {out:?}");
    (nums[0], nums[1], nums[2], nums[3])
}

fn otlp_span(trace_id: &str, span_id: &str, name: &str, attrs: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"probe"}}}}]}},
        "scopeSpans":[{{"spans":[{{"traceId":"{trace_id}","spanId":"{span_id}","name":"{name}",
        "startTimeUnixNano":"1767225600000000000","endTimeUnixNano":"1767225601250000000","attributes":[{attrs}]}}]}}]}}]}}"#
    )
}

const LLM: &str = r#"{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
    {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
    {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-mini"}},
    {"key":"gen_ai.usage.input_tokens","value":{"intValue":"1000"}},
    {"key":"gen_ai.usage.output_tokens","value":{"intValue":"200"}}"#;

const TOOL: &str = r#"{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},
    {"key":"gen_ai.tool.name","value":{"stringValue":"lookup"}}"#;

#[test]
fn demo_traces_and_trace_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    // Loading twice stores one copy: the second run replaces every span.
    let first = spanlens(&["demo", "--data-dir", data_s, "--seed", "7"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    let (traces, spans, new, replaced) = demo_counts(&out);
    assert!((600..=800).contains(&traces), "{out}");
    assert_eq!((new, replaced), (spans, 0), "{out}");
    assert!(out.contains("spanlens serve --data-dir"), "{out}");
    let again = spanlens(&["demo", "--data-dir", data_s, "--seed", "7"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(demo_counts(&text(&again.stdout)), (traces, spans, 0, spans));

    let port = free_port();
    let server = Server::start(&data, port, &[]);
    let url = server.url.clone();
    assert_eq!(server.get("/api/v1/stats")["span_count"], spans);
    let all = server.get("/api/v1/traces?limit=1000");
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len() as u64, traces);

    // The table: a header and one aligned row per trace, within 120 columns.
    let o = spanlens(&["traces", "--server", &url, "--limit", "5"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    for h in [
        "TRACE",
        "STARTED",
        "NAME",
        "DURATION",
        "SPANS",
        "TOKENS IN/OUT",
        "COST",
        "STATUS",
        "USER",
    ] {
        assert!(lines[0].contains(h), "{table}");
    }
    let status_col = lines[0].find("STATUS").unwrap();
    for (row, item) in lines[1..].iter().zip(items) {
        assert!(row.chars().count() <= 120, "{row}");
        let id = item["trace_id"].as_str().unwrap();
        assert!(row.starts_with(&id[..8]), "{row} vs {id}");
        let name: String = item["name"].as_str().unwrap().chars().take(10).collect();
        assert!(row.contains(&name), "{row}");
        let status: String = row.chars().skip(status_col).take(6).collect();
        assert!(
            status.starts_with(item["status"].as_str().unwrap()),
            "{row}"
        );
    }
    assert!(text(&o.stderr).contains("--cursor"), "{}", text(&o.stderr));

    // --json prints the API page.
    let o = spanlens(&["traces", "--server", &url, "--limit", "5", "--json"]);
    assert!(o.status.success());
    let page: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["items"][0]["trace_id"], items[0]["trace_id"]);
    assert!(page["next_cursor"].is_string());

    // Filters reach the server.
    let filtered = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["traces", "--server", &url, "--json", "--limit", "1000"];
        a.extend_from_slice(args);
        let o = spanlens(&a);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let rows = v["items"].as_array().unwrap().clone();
        assert!(!rows.is_empty(), "no rows for {args:?}");
        rows
    };
    assert!(filtered(&["--status", "error"])
        .iter()
        .all(|r| r["status"] == "error"));
    let recovered = filtered(&["--status", "recovered"]);
    assert!(recovered
        .iter()
        .all(|r| r["status"] != "error" && r["error_count"].as_u64().unwrap() > 0));
    let o = spanlens(&["traces", "--server", &url, "--status", "recovered"]);
    let table = text(&o.stdout);
    let first = &recovered[0];
    let mark = format!(
        "{}/{}r",
        first["status"].as_str().unwrap(),
        first["error_count"]
    );
    assert!(table.contains(&mark), "{mark} in:\n{table}");
    assert!(filtered(&["--user", "maria.garcia"])
        .iter()
        .all(|r| r["user_id"] == "maria.garcia"));
    assert!(filtered(&["--tag", "rag"])
        .iter()
        .all(|r| r["name"] == "rag.answer_question"));
    let session = items.iter().find_map(|r| r["session_id"].as_str()).unwrap();
    let in_session = filtered(&["--session", session]);
    assert!(in_session.iter().all(|r| r["session_id"] == session));
    assert!(in_session.len() >= 2, "sessions are multi-turn");
    let by_cost = filtered(&["--sort", "cost"]);
    let costs: Vec<f64> = by_cost
        .iter()
        .map(|r| r["total_cost_usd"].as_f64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]));
    assert!(!filtered(&["--model", "o4-mini"]).is_empty());

    // `trace PREFIX`: the biggest trace as a tree whose totals match the API.
    let big = items
        .iter()
        .max_by_key(|r| r["span_count"].as_u64().unwrap())
        .unwrap();
    let id = big["trace_id"].as_str().unwrap();
    let prefix = &id[..8];
    assert_eq!(
        items
            .iter()
            .filter(|r| r["trace_id"].as_str().unwrap().starts_with(prefix))
            .count(),
        1
    );
    let o = spanlens(&["trace", prefix, "--server", &url]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let tree = text(&o.stdout);
    let head: Vec<&str> = tree.lines().take(4).collect();
    assert!(
        head[0].starts_with(&format!("trace {id}  {}", big["name"].as_str().unwrap())),
        "{tree}"
    );
    assert!(
        head[1].contains(&format!("{} spans", big["span_count"])),
        "{tree}"
    );
    let cost_text = head[2]
        .split("cost ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let shown = NanoUsd::parse_decimal(cost_text.trim_start_matches('$')).unwrap();
    assert_eq!(
        shown.0,
        big["total_cost_nano_usd"].as_i64().unwrap(),
        "{tree}"
    );
    assert!((shown.as_usd_f64() - big["total_cost_usd"].as_f64().unwrap()).abs() < 1e-12);
    assert!(
        head[2].contains(&format!("tokens {} in", big["input_tokens"])),
        "{tree}"
    );
    // The tree, then a blank line and the analysis.
    let span_lines: Vec<&str> = tree.lines().skip(4).take_while(|l| !l.is_empty()).collect();
    let analysis: Vec<&str> = tree.lines().skip(5 + span_lines.len()).collect();
    assert!(analysis[0].starts_with("analysis  wall "), "{tree}");
    assert!(analysis[1].starts_with("  critical path ("), "{tree}");
    assert!(
        analysis[2].starts_with(&format!("    {} [", big["name"].as_str().unwrap())),
        "{tree}"
    );
    for section in ["  top self time", "  coordination overhead", "  agents"] {
        assert!(
            analysis.iter().any(|l| l.starts_with(section)),
            "{section}: {tree}"
        );
    }
    assert_eq!(
        span_lines.len() as u64,
        big["span_count"].as_u64().unwrap(),
        "{tree}"
    );
    assert!(
        span_lines[0].starts_with(big["name"].as_str().unwrap()),
        "{tree}"
    );
    assert!(
        span_lines[1..]
            .iter()
            .all(|l| l.contains("├─") || l.contains("└─")),
        "{tree}"
    );
    assert!(
        tree.contains("[llm]") && tree.contains(" tok") && tree.contains("ttft "),
        "{tree}"
    );
    assert!(
        tree.contains("[agent]") && tree.contains("[tool]"),
        "{tree}"
    );

    // `trace PREFIX --json` is the API's document.
    let o = spanlens(&["trace", prefix, "--server", &url, "--json"]);
    assert!(o.status.success());
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["trace"]["trace_id"], id);
    assert_eq!(
        doc["spans"].as_array().unwrap().len() as u64,
        big["span_count"].as_u64().unwrap()
    );

    // Errors, retries and unpriced calls are shown in the tree.
    let failed = items
        .iter()
        .find(|r| r["status"] == "error" && r["name"] == "support.handle_ticket")
        .or_else(|| items.iter().find(|r| r["status"] == "error"))
        .unwrap();
    let o = spanlens(&[
        "trace",
        failed["trace_id"].as_str().unwrap(),
        "--server",
        &url,
    ]);
    let tree = text(&o.stdout);
    assert!(o.status.success());
    assert!(tree.contains("· ERROR ") && tree.contains("retr"), "{tree}");
    let unpriced = items.iter().find(|r| {
        let d = server.get(&format!(
            "/api/v1/traces/{}",
            r["trace_id"].as_str().unwrap()
        ));
        d["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["unpriced_reason"].is_string())
    });
    let unpriced = unpriced.expect("the demo has one unpriced call");
    let o = spanlens(&[
        "trace",
        unpriced["trace_id"].as_str().unwrap(),
        "--server",
        &url,
    ]);
    let tree = text(&o.stdout);
    assert!(
        tree.contains("acme/invoice-extractor-8b-ft") && tree.contains("· unpriced"),
        "{tree}"
    );
    // The trace's cost names its unpriced call instead of reading as a total.
    assert!(
        tree.contains(" + 1 unpriced") || tree.contains("cost unpriced"),
        "{tree}"
    );
    assert!(!tree.contains("cost $0 "), "{tree}");
    let o = spanlens(&["traces", "--limit", "1000", "--server", &url]);
    let id8 = &unpriced["trace_id"].as_str().unwrap()[..8];
    let row = text(&o.stdout)
        .lines()
        .find(|l| l.starts_with(id8))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(row.contains(" unpriced"), "{row}");

    // Prefix resolution: ambiguous, unknown, too short, not hex.
    let a = "abcdef00000000000000000000000001";
    let b = "abcdef00000000000000000000000002";
    server.post_otlp(&otlp_span(a, "00000000000000a1", "probe-a", LLM));
    server.post_otlp(&otlp_span(b, "00000000000000b1", "probe-b", LLM));
    let o = spanlens(&["trace", "abcdef", "--server", &url]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("ambiguous") && err.contains(a) && err.contains(b),
        "{err}"
    );
    let o = spanlens(&["trace", &a[..31], "--server", &url]);
    assert_eq!(o.status.code(), Some(2), "31 digits still match both");
    let o = spanlens(&["trace", &a[..32], "--server", &url]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("probe-a [llm]"));
    let o = spanlens(&["trace", "0123456789", "--server", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no trace id starts with 0123456789"),
        "{}",
        text(&o.stderr)
    );
    let o = spanlens(&[
        "trace",
        "0123456789abcdef0123456789abcdef",
        "--server",
        &url,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no trace"), "{}", text(&o.stderr));
    for bad in ["abc", "xyz123456"] {
        let o = spanlens(&["trace", bad, "--server", &url]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }

    // `recovery`: totals, groupings and headroom over the demo's retries and rate limits.
    let o = spanlens(&["recovery", "--server", &url]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rec = text(&o.stdout);
    assert!(rec.starts_with("recovery  "), "{rec}");
    assert!(rec.contains(" spans retried · "), "{rec}");
    for h in [
        "PROVIDER",
        "TOOL",
        "ERROR TYPE",
        "RECENT RETRIES",
        "RATE-LIMIT HEADROOM",
    ] {
        assert!(rec.contains(h), "{h}: {rec}");
    }
    let o = spanlens(&["recovery", "--server", &url, "--json", "--buckets", "6"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["spans_with_retries"].as_u64().unwrap() > 0);
    assert_eq!(
        doc["recovered"].as_u64().unwrap() + doc["failed"].as_u64().unwrap(),
        doc["spans_with_retries"].as_u64().unwrap()
    );
    assert_eq!(
        doc["rate_limits"][0]["buckets"].as_array().unwrap().len(),
        6
    );
    let o = spanlens(&["recovery", "--server", &url, "--from", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("invalid from=\"yesterday\""),
        "{}",
        text(&o.stderr)
    );

    // A request the server refuses: its message, exit 2.
    let o = spanlens(&["traces", "--server", &url, "--sort", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("400") && err.contains("invalid sort"), "{err}");

    // SPANLENS_SERVER is honoured.
    let o = Command::new(BIN)
        .args(["traces", "--limit", "1"])
        .env("SPANLENS_SERVER", &url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 2);

    server.stop();

    // Nobody listening: exit 1, naming the URL and how to start a server.
    let down = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["traces", "--server", &down],
        vec!["trace", "abcdef12", "--server", &down],
        vec!["tail", "--server", &down],
    ] {
        let o = spanlens(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&down) && err.contains("spanlens serve"),
            "{err}"
        );
    }
}

#[test]
fn tail_prints_arriving_spans_and_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let server = Server::start(&data, port, &[]);
    let url = server.url.clone();

    let spawn_tail = |extra: &[&str]| {
        let mut c = Command::new(BIN)
            .args(["tail", "--server", &url])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tail");
        let out = lines_of(c.stdout.take().unwrap());
        let err = lines_of(c.stderr.take().unwrap());
        (Guard(c), out, err)
    };
    let (all_tail, all_out, all_err) = spawn_tail(&[]);
    let (tool_tail, tool_out, tool_err) = spawn_tail(&["--kind", "tool"]);
    wait_line(&all_err, "streaming spans", "tail start");
    wait_line(&tool_err, "kind tool", "tail --kind start");

    server.post_otlp(&otlp_span(
        "11111111111111111111111111111111",
        "1111111111111111",
        "probe-llm-1",
        LLM,
    ));
    server.post_otlp(&otlp_span(
        "22222222222222222222222222222222",
        "2222222222222222",
        "probe-tool-1",
        TOOL,
    ));
    let line = wait_line(&all_out, "probe-llm-1", "tail output");
    assert!(
        line.contains("11111111") && line.contains("llm") && line.contains("gpt-4o-mini"),
        "{line}"
    );
    assert!(
        line.contains("1.25s") && line.contains("1.2k tok") && line.contains('$'),
        "{line}"
    );
    wait_line(&all_out, "probe-tool-1", "tail output");
    let first_tool = tool_out.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        first_tool.contains("probe-tool-1") && first_tool.contains("tool"),
        "{first_tool}"
    );

    // The server dies; tail notices, retries, and picks up the new one.
    server.crash();
    wait_line(&all_err, "lost the connection", "tail notice");
    let server = Server::start(&data, port, &[]);
    wait_line(&all_err, "reconnected", "tail reconnect");
    server.post_otlp(&otlp_span(
        "33333333333333333333333333333333",
        "3333333333333333",
        "probe-llm-2",
        LLM,
    ));
    wait_line(&all_out, "probe-llm-2", "tail output after restart");

    drop(all_tail);
    drop(tool_tail);
    server.stop();
}

#[test]
fn serve_demo_loads_the_demo_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, free_port(), &["--demo"]);
    assert!(
        server
            .startup
            .iter()
            .any(|l| l.contains("loaded") && l.contains("demo traces")),
        "{:?}",
        server.startup
    );
    let spans = server.get("/api/v1/stats")["span_count"].as_u64().unwrap();
    assert!(spans > 4000, "{spans} spans");
    let traces = server.get("/api/v1/traces?limit=1000")["items"]
        .as_array()
        .unwrap()
        .len();
    assert!((600..=800).contains(&traces), "{traces} traces");
    server.stop();

    let server = Server::start(&data, free_port(), &["--demo"]);
    assert!(
        server.startup.iter().any(|l| l.contains("already loaded")),
        "{:?}",
        server.startup
    );
    assert_eq!(
        server.get("/api/v1/stats")["span_count"].as_u64().unwrap(),
        spans
    );
    server.stop();
}
