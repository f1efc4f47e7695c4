//! `spanlens reprice` on a data directory, and `forecast` / `reconcile` against a real server.

use serde_json::Value;
use std::time::Duration;

mod common;

use common::{free_port, spanlens, spanlens_json, text, Server};

const PRICES: &str = r#"version = "negotiated"
[[model]]
id = "gpt-4o-negotiated"
provider = "openai"
match = 'gpt-4o(-\d{4}-\d{2}-\d{2})?'
valid_from = "2020-01-01"
input = 1.25
output = 5.00
cache_read = 0.625
source = "https://example.com/contract"
checked = "2026-01-01"
"#;

#[test]
fn reprice_with_an_override_file_is_reported_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, PRICES).unwrap();
    let prices_s = prices.to_str().unwrap();
    let o = spanlens(&["demo", "--data-dir", data_s]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            "reprice",
            "--prices",
            prices_s,
            "--data-dir",
            data_s,
            "--json",
        ];
        args.extend_from_slice(extra);
        spanlens_json(&args)
    };
    let dry = run(&["--dry-run", "--model", "gpt-4o"]);
    let changed = dry["changed"].as_u64().unwrap();
    assert!(changed > 0, "{dry}");
    assert_eq!(dry["dry_run"], true);
    let row = &dry["models"][0];
    assert_eq!(row["model"], "gpt-4o");
    assert!(row["cost_after_usd"].as_f64().unwrap() < row["cost_before_usd"].as_f64().unwrap());

    let real = run(&["--model", "gpt-4o"]);
    assert_eq!(real["changed"].as_u64().unwrap(), changed);
    assert_eq!(real["models"][0]["cost_after_usd"], row["cost_after_usd"]);
    let again = run(&[]);
    assert_eq!(again["changed"], 0, "{again}");

    // The table names what changed.
    let o = spanlens(&[
        "reprice",
        "--prices",
        prices_s,
        "--data-dir",
        data_s,
        "--dry-run",
    ]);
    let table = text(&o.stdout);
    assert!(table.starts_with("MODEL"), "{table}");
    assert!(table.contains("would change 0 of"), "{table}");

    for (args, needle) in [
        (
            vec![
                "reprice",
                "--prices",
                "/nonexistent.toml",
                "--data-dir",
                data_s,
            ],
            "--prices",
        ),
        (
            vec![
                "reprice",
                "--prices",
                prices_s,
                "--data-dir",
                data_s,
                "--from",
                "soon",
            ],
            "--from",
        ),
        (
            vec![
                "reprice",
                "--prices",
                prices_s,
                "--data-dir",
                "/nonexistent-dir",
            ],
            "--data-dir",
        ),
    ] {
        let o = spanlens(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o.stderr).contains(needle), "{}", text(&o.stderr));
    }
    let o = spanlens(&["reprice", "--prices", data_s, "--data-dir", data_s]);
    assert_eq!(o.status.code(), Some(2));
}

/// Cost of the newest gpt-4o trace, as the running server reports it.
fn gpt4o_trace_cost(server: &Server) -> (String, f64) {
    let body = ureq::get(format!("{}/api/v1/traces?model=gpt-4o&limit=1", server.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let t = &v["items"][0];
    (
        t["trace_id"].as_str().unwrap().to_string(),
        t["total_cost_usd"].as_f64().unwrap(),
    )
}

#[test]
fn reprice_runs_beside_a_server_that_keeps_ingesting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, PRICES).unwrap();
    let o = spanlens(&["demo", "--data-dir", data_s]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let server = Server::start(&data, free_port(), &[]);
    let (trace, before) = gpt4o_trace_cost(&server);

    // The server takes load the whole time the second process re-prices the same database.
    let url = server.url.clone();
    let load = std::thread::spawn(move || {
        spanlens(&[
            "bench",
            "ingest",
            "--target",
            &url,
            "--duration",
            "4",
            "--concurrency",
            "2",
            "--json",
        ])
    });
    std::thread::sleep(Duration::from_millis(500));
    let repriced = spanlens_json(&[
        "reprice",
        "--prices",
        prices.to_str().unwrap(),
        "--data-dir",
        data_s,
        "--model",
        "gpt-4o",
        "--json",
    ]);
    assert!(repriced["changed"].as_u64().unwrap() > 0, "{repriced}");

    let o = load.join().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let bench: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert!(bench["accepted_spans"].as_u64().unwrap() > 0, "{bench}");
    assert_eq!(bench["lost_spans"], 0, "{bench}");
    assert_eq!(bench["failed_requests"], 0, "{bench}");

    // The server reads what the other process wrote: the trace's summary has the new price.
    let (same, after) = gpt4o_trace_cost(&server);
    assert_eq!(same, trace);
    assert!(after < before, "{before} -> {after}");
}

#[test]
fn forecast_and_reconcile_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = spanlens(&["demo", "--data-dir", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let server = Server::start(&data, free_port(), &[]);

    // An OpenInference LLM span whose provider reported $0.0006 for 1000 gpt-4o-mini input
    // tokens (no demo call uses that model through the gateway, so its row is this span alone).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c",
        "spanId":"b7ad6b7169203331","name":"chat","startTimeUnixNano":"{}","endTimeUnixNano":"{}",
        "attributes":[{{"key":"openinference.span.kind","value":{{"stringValue":"LLM"}}}},
        {{"key":"llm.model_name","value":{{"stringValue":"gpt-4o-mini"}}}},
        {{"key":"llm.provider","value":{{"stringValue":"openai"}}}},
        {{"key":"llm.token_count.prompt","value":{{"intValue":"1000"}}}},
        {{"key":"llm.token_count.completion","value":{{"intValue":"0"}}}},
        {{"key":"llm.cost.total","value":{{"doubleValue":0.0006}}}}]}}]}}]}}]}}"#,
        now - 2_000_000_000,
        now - 1_000_000_000
    );
    let r = ureq::post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let v = spanlens_json(&["reconcile", "--server", &server.url, "--json"]);
    let row = |model: &str| -> Value {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == model)
            .unwrap_or_else(|| panic!("no {model} row: {v}"))
            .clone()
    };
    let mini = row("gpt-4o-mini");
    assert_eq!(mini["spans"], 1);
    assert!((mini["reported_usd"].as_f64().unwrap() - 0.0006).abs() < 1e-12);
    // gpt-4o-mini input is $0.15 per million: the catalog says $0.00015, the provider billed 4×.
    assert!((mini["computed_usd"].as_f64().unwrap() - 0.00015).abs() < 1e-12);
    assert!((mini["difference_pct"].as_f64().unwrap() - 300.0).abs() < 1e-9);
    // The demo's chat calls go through a gateway that reports their bill: it matches the
    // catalog except for Haiku, whose one-hour cache writes cost more than the catalog assumes.
    let haiku = row("claude-3-5-haiku-20241022");
    assert!(haiku["spans"].as_u64().unwrap() > 10, "{haiku}");
    let pct = haiku["difference_pct"].as_f64().unwrap();
    assert!(pct > 1.0 && pct < 40.0, "{haiku}");
    let sonnet = row("claude-sonnet-4-20250514");
    assert_eq!(sonnet["difference_nano_usd"], 0, "{sonnet}");
    let o = spanlens(&["reconcile", "--server", &server.url]);
    let table = text(&o.stdout);
    assert!(table.starts_with("MODEL"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("gpt-4o-mini ") && l.contains("+300.0%")),
        "{table}"
    );

    // The demo covers the four weeks before now.
    let o = spanlens(&[
        "forecast",
        "--server",
        &server.url,
        "--horizon-days",
        "7",
        "--group-by",
        "model",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(
        table.lines().nth(1).unwrap().starts_with("GROUP"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("TOTAL")), "{table}");
    let o = spanlens(&[
        "forecast",
        "--server",
        &server.url,
        "--json",
        "--horizon-days",
        "30",
    ]);
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["total"]["points"].as_array().unwrap().len(), 30);
    // Four weeks of history: the weekday pattern is fitted, and weekends come out cheaper.
    assert_eq!(v["total"]["method"], "linear_trend_weekly", "{v}");
    assert!(v["total"]["history"]["days"].as_u64().unwrap() >= 26, "{v}");
    let offsets = &v["total"]["weekday_offsets_usd"];
    let off = |d: &str| offsets[d].as_f64().unwrap();
    assert!(
        off("sat") < off("tue") && off("sun") < off("wed"),
        "{offsets}"
    );
    let o = spanlens(&["forecast", "--server", &server.url, "--horizon-days", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("horizon_days"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn evaluate_scores_stored_spans_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let o = spanlens(&["demo", "--data-dir", data_s]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let evals = dir.path().join("evals.toml");
    std::fs::write(
        &evals,
        "[[evaluator]]\nname = \"fast\"\nrule = \"latency_sla\"\nmax_ms = 5000\n",
    )
    .unwrap();
    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            "evaluate",
            "--evaluators",
            evals.to_str().unwrap(),
            "--data-dir",
            data_s,
            "--json",
        ];
        args.extend_from_slice(extra);
        spanlens_json(&args)
    };
    let dry = run(&["--dry-run"]);
    let n = dry["evaluators"]["fast"]["scores"].as_u64().unwrap();
    assert!(n > 100, "{dry}");
    let passed = dry["evaluators"]["fast"]["passed"].as_u64().unwrap();
    assert!(
        passed > 0 && passed < n,
        "some demo calls are slower than 5 s: {dry}"
    );
    assert_eq!(run(&[])["evaluators"]["fast"]["scores"].as_u64(), Some(n));
    // Already scored: nothing new the second time.
    assert!(run(&[])["evaluators"].get("fast").is_none());

    // A bad file is named.
    std::fs::write(&evals, "[[evaluator]]\nname = \"x\"\nrule = \"vibes\"\n").unwrap();
    let o = spanlens(&[
        "evaluate",
        "--evaluators",
        evals.to_str().unwrap(),
        "--data-dir",
        data_s,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("vibes"), "{}", text(&o.stderr));
}

/// `spanlens whatif` against a server: a gpt-4o call of 10,000 input tokens (2,000 of them
/// cached) and 1,000 output tokens, stored at $0.0325, priced as claude-sonnet-4-5 ($3 input,
/// $0.30 cache read, $15 output per million) at $0.0396, and at $0.045 with cached input as
/// plain input; an unknown model is refused by name.
#[test]
fn whatif_prices_a_trace_on_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), free_port(), &[]);
    let trace = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{trace}",
        "spanId":"0000000000000001","name":"chat","startTimeUnixNano":"1793491200000000000",
        "endTimeUnixNano":"1793491201000000000","attributes":[
        {{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},
        {{"key":"gen_ai.system","value":{{"stringValue":"openai"}}}},
        {{"key":"gen_ai.request.model","value":{{"stringValue":"gpt-4o"}}}},
        {{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"10000"}}}},
        {{"key":"gen_ai.usage.cache_read.input_tokens","value":{{"intValue":"2000"}}}},
        {{"key":"gen_ai.usage.output_tokens","value":{{"intValue":"1000"}}}}]}}]}}]}}]}}"#
    );
    server.endpoint().post_traces(body.as_bytes());
    // `spanlens whatif --trace T --as MODEL EXTRA...`.
    let run = |model: &str, extra: &[&str]| {
        let mut a = vec![
            "whatif",
            "--server",
            &server.url,
            "--trace",
            trace,
            "--as",
            model,
        ];
        a.extend_from_slice(extra);
        spanlens(&a)
    };
    let json = |extra: &[&str]| -> Value {
        let o = run("claude-sonnet-4-5", &[extra, &["--json"]].concat());
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = json(&[]);
    assert_eq!(v["total"]["stored_nano_usd"], 32_500_000, "{v}");
    assert_eq!(v["total"]["whatif_nano_usd"], 39_600_000, "{v}");
    let v = json(&["--no-cache-reads"]);
    assert_eq!(v["total"]["whatif_nano_usd"], 45_000_000, "{v}");
    let o = run("claude-sonnet-4-5", &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(
        table.contains("$0.032500") && table.contains("$0.039600"),
        "{table}"
    );
    assert!(
        table.contains("stored $0.032500, what-if $0.039600 (+$0.007100)"),
        "{table}"
    );
    assert!(table.contains("tokenizer"), "{table}");
    // The same trace chosen by the trace list's filter instead of its id.
    let by_filter = |filter: &str| {
        spanlens(&[
            "whatif",
            "--server",
            &server.url,
            "--filter",
            filter,
            "--as",
            "claude-sonnet-4-5",
            "--json",
        ])
    };
    let o = by_filter("name=chat");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["scope"].as_str(), v["total"]["whatif_nano_usd"].as_i64()),
        (Some("traces"), Some(39_600_000)),
        "{v}"
    );
    let o = by_filter("nonsense");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("KEY=VALUE"), "{}", text(&o.stderr));
    let o = run("gpt-17-ultra", &[]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("gpt-17-ultra"),
        "{}",
        text(&o.stderr)
    );
    let o = spanlens(&["whatif", "--server", &server.url, "--as", "gpt-4o"]);
    assert!(!o.status.success(), "a trace or a session is required");
}

/// `spanlens forecast --workflow` against a server: four runs of `support` in the last 30
/// days, one gpt-4o call each of 40,000 / 80,000 / 120,000 / 160,000 input tokens ($0.10 to
/// $0.40 at $2.50 per million): $0.25 a run, 1,000 runs $250; at half today's rate of 4 runs
/// in 30 days, 2 runs in the next 30 days, $0.50.
#[test]
fn forecast_projects_a_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), free_port(), &[]);
    let now = common::now_ns();
    let day = 86_400_000_000_000u64;
    let runs: Vec<String> = [(1u64, 40_000u64), (2, 80_000), (5, 120_000), (9, 160_000)]
        .iter()
        .enumerate()
        .map(|(i, (ago, input))| {
            let start = now - ago * day;
            format!(
                r#"{{"traceId":"{:032x}","spanId":"0000000000000001","name":"support",
                "startTimeUnixNano":"{start}","endTimeUnixNano":"{}"}},
                {{"traceId":"{:032x}","spanId":"0000000000000002","parentSpanId":"0000000000000001",
                "name":"chat","startTimeUnixNano":"{start}","endTimeUnixNano":"{}","attributes":[
                {{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},
                {{"key":"gen_ai.system","value":{{"stringValue":"openai"}}}},
                {{"key":"gen_ai.request.model","value":{{"stringValue":"gpt-4o"}}}},
                {{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"{input}"}}}},
                {{"key":"gen_ai.usage.output_tokens","value":{{"intValue":"0"}}}}]}}"#,
                i + 1,
                start + 1_000_000,
                i + 1,
                start + 1_000_000
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        runs.join(",")
    );
    server.endpoint().post_traces(body.as_bytes());
    let base = ["forecast", "--server", &server.url, "--workflow", "support"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let v = spanlens_json(
        &with(&["--runs", "1000", "--json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(v["history"]["runs"], 4, "{v}");
    assert!(
        (v["per_run"]["mean_usd"].as_f64().unwrap() - 0.25).abs() < 1e-9,
        "{v}"
    );
    assert!(
        (v["projection"]["cost_usd"].as_f64().unwrap() - 250.0).abs() < 1e-9,
        "{v}"
    );
    let o = spanlens(
        &with(&["--growth-pct", "-50"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("cost per run: mean $0.2500"), "{out}");
    assert!(
        out.contains("next 30 days, 2 runs (-50% a day): $0.5000"),
        "{out}"
    );
    assert!(
        out.contains("confidence low: Only 4 runs in 30 days"),
        "{out}"
    );
    let o = spanlens(&["forecast", "--server", &server.url, "--runs", "5"]);
    assert!(!o.status.success(), "--runs needs --workflow");
}
