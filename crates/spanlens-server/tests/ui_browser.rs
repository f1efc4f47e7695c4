//! The web UI in a real headless Chromium (driven through chromedriver with fantoccini) against
//! a real server holding the demo data: every page is visited and its content checked against
//! the JSON API, and the first paint of a 10,000-span trace is measured and printed.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`; `.ci/run` installs them) or `SPANLENS_CHROMIUM` / `SPANLENS_CHROMEDRIVER`.
//! Without them these tests fail and say so: a UI that was never rendered is not a passing UI.
//! Screenshots land in `target/ui-screenshots/`.

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use spanlens_core::{Span, SpanId, SpanKind, Status, Timestamp, TraceId};
mod common;

use common::{local_config, Running};
use spanlens_store::{Store, DEFAULT_PROJECT};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One browser test at a time: two Chromiums on a 2-core machine would distort the timing.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Trace id of the generated 10,000+ span trace.
const BIG_TRACE: &str = "b16b16b16b16b16b16b16b16b16b16b1";

/// A server on demo data (plus the big trace) on a free port, stopped on drop.
struct Server {
    http: SocketAddr,
    _running: Running,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(big_trace_spans: usize) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = spanlens_server::open_store(dir.path()).unwrap();
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        let demo = spanlens_server::demo::generate(spanlens_server::demo::DEFAULT_SEED, now);
        let big = big_trace(&demo, big_trace_spans, now);
        write_by_trace(&store, demo);
        write_by_trace(&store, big);
        let running = Running::start(local_config(dir.path()), Arc::new(store));
        Server {
            http: running.bound.http,
            _running: running,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

/// Writes spans a few traces at a time (a write carries whole traces).
fn write_by_trace(store: &dyn Store, spans: Vec<Span>) {
    let mut batch: Vec<Span> = Vec::new();
    let mut iter = spans.into_iter().peekable();
    while let Some(s) = iter.next() {
        let trace = s.trace_id;
        batch.push(s);
        let ends = iter.peek().is_none_or(|n| n.trace_id != trace);
        if ends && (batch.len() >= 1000 || iter.peek().is_none()) {
            store
                .write(DEFAULT_PROJECT, std::mem::take(&mut batch))
                .unwrap();
        }
    }
}

/// A trace of at least `n` spans shaped like a long agent run: a pipeline root, 20 agents,
/// LLM steps under each agent and tool calls under each step, built from demo spans so the
/// payloads are realistic; every 997th span fails.
fn big_trace(demo: &[Span], n: usize, now: Timestamp) -> Vec<Span> {
    let template = |k: SpanKind| demo.iter().find(|s| s.kind == k).unwrap().clone();
    let (pipeline, agent, llm, tool) = (
        template(SpanKind::Pipeline),
        template(SpanKind::Agent),
        template(SpanKind::Llm),
        template(SpanKind::Tool),
    );
    let trace_id = TraceId::from_hex(BIG_TRACE).unwrap();
    let start = now.0 - 3_600_000_000_000;
    let agents = 20usize;
    let steps = 25usize;
    let tools = n
        .saturating_sub(1 + agents + agents * steps)
        .div_ceil(agents * steps);
    let mut out = Vec::with_capacity(n + 64);
    let mut next_id = 1u64;
    let mut push = |t: &Span, parent: Option<SpanId>, name: String, from: u64, dur: u64| {
        let mut s = t.clone();
        s.trace_id = trace_id;
        s.span_id = SpanId::from_hex(&format!("{next_id:016x}")).unwrap();
        s.parent_span_id = parent;
        s.name = name;
        s.start_time = Timestamp(from);
        s.end_time = Some(Timestamp(from + dur));
        s.session_id = None;
        s.status = if next_id % 997 == 0 {
            Status::Error
        } else {
            Status::Ok
        };
        if s.status == Status::Ok {
            s.status_message = None;
            s.error_type = None;
        }
        next_id += 1;
        out.push(s);
        out.last().unwrap().span_id
    };
    let step_ns = 400_000_000u64;
    let agent_ns = step_ns * steps as u64;
    let root = push(
        &pipeline,
        None,
        "bulk.review_repository".into(),
        start,
        agent_ns * agents as u64,
    );
    for a in 0..agents {
        let a_start = start + a as u64 * agent_ns;
        let ag = push(
            &agent,
            Some(root),
            format!("agent_{a:02}"),
            a_start,
            agent_ns,
        );
        for st in 0..steps {
            let s_start = a_start + st as u64 * step_ns;
            let step = push(
                &llm,
                Some(ag),
                format!("step_{a:02}_{st:02}"),
                s_start,
                step_ns,
            );
            let t_ns = step_ns / (tools as u64 + 1);
            for t in 0..tools {
                push(
                    &tool,
                    Some(step),
                    format!("tool_{a:02}_{st:02}_{t:02}"),
                    s_start + t as u64 * t_ns,
                    t_ns,
                );
            }
        }
    }
    out.sort_by_key(|s| (s.start_time, s.span_id));
    out
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    /// Asks chromedriver to quit first (it then closes the browsers of open sessions, e.g.
    /// after a failed assertion skipped `close`), and kills it only if it does not.
    fn drop(&mut self) {
        use std::io::Write;
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let _ = std::io::Read::read(&mut s, &mut [0u8; 256]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn missing(what: &str) -> ! {
    panic!(
        "{what} not found: the UI browser tests need Chromium and chromedriver. Install them with \
         `apt-get install -y chromium chromium-driver` (.ci/run does this), or point \
         SPANLENS_CHROMIUM / SPANLENS_CHROMEDRIVER at them"
    )
}

fn start_driver() -> (Driver, PathBuf) {
    let chromium = find_binary(
        "SPANLENS_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    )
    .unwrap_or_else(|| missing("chromium"));
    let driver = find_binary("SPANLENS_CHROMEDRIVER", &["/usr/bin/chromedriver"])
        .unwrap_or_else(|| missing("chromedriver"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let d = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, chromium)
}

async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1500,1000", "--disable-extensions"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("chromedriver refused a session: is the chromium binary usable?")
}

/// Polls a JS expression until it is truthy; returns its value.
async fn until(c: &Client, expr: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap();
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            let body = c
                .execute("return document.body.innerText.slice(0, 2000)", vec![])
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what} ({expr}); page text: {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs an API path from inside the page, so the test compares the UI with what it was served.
async fn api(c: &Client, path: &str) -> Value {
    c.execute(
        "return fetch(arguments[0]).then(r => r.json());",
        vec![json!(path)],
    )
    .await
    .unwrap()
}

/// The text of the first element matching `css` (which must exist).
async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Clicks the first element matching `css` (it must exist).
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} to click: {e}"))
        .click()
        .await
        .unwrap();
}

/// An attribute of the first element matching `css` (both must exist).
async fn attr_of(c: &Client, css: &str, name: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .attr(name)
        .await
        .unwrap()
        .unwrap()
}

/// The text content of every element matching `css`.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let v = c
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)",
            vec![json!(css)],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Points the real mouse at column `index` of the chart card whose title starts with `title`;
/// returns the tooltip's title and its values as shown, or None when the chart has no hover
/// layer of charts.js.
async fn hover_column(c: &Client, title: &str, index: usize) -> Option<(String, Vec<String>)> {
    use fantoccini::actions::{InputSource, MouseActions, PointerAction};
    let at = c
        .execute(
            r#"
            const card = [...document.querySelectorAll('.card')].find((c) => c.querySelector('h3')?.textContent.startsWith(arguments[0]));
            card.scrollIntoView({block: 'center'});
            if (!card.querySelector('.chart-hit')) return null;
            const hit = card.querySelector('.chart-hit').getBoundingClientRect();
            const n = Number(card.querySelector('.chart-svg').dataset.columns);
            return [hit.left + (arguments[1] + 0.5) * hit.width / n, hit.top + hit.height / 2];"#,
            vec![json!(title), json!(index)],
        )
        .await
        .unwrap();
    let (x, y) = (at.get(0)?.as_f64().unwrap(), at[1].as_f64().unwrap());
    let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
        duration: None,
        x: x.round(),
        y: y.round(),
    });
    c.perform_actions(mouse).await.unwrap();
    let tip = until(
        c,
        &format!("(() => {{ const t = [...document.querySelectorAll('.card')].find((c) => c.querySelector('h3')?.textContent.startsWith({title:?}))?.querySelector('.chart-tip'); return t && !t.hidden && [t.querySelector('.chart-tip-title').textContent, [...t.querySelectorAll('.chart-tip-row b')].map((b) => b.textContent)]; }})()"),
        "the chart's tooltip",
    )
    .await;
    let values = tip[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    Some((tip[0].as_str().unwrap().to_string(), values))
}

async fn screenshot(c: &Client, name: &str) {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// A "$0.0123" label as a number.
fn dollars(s: &str) -> f64 {
    s.trim()
        .trim_start_matches('$')
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a dollar amount: {s:?}"))
}

fn close(ui: f64, api: f64) -> bool {
    (ui - api).abs() <= api.abs() * 0.005 + 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_real_content() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(10_021))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;

    // Traces: the first page, sorting, a filter, and the filter surviving a reload.
    c.goto(&server.url("/")).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('table.traces tbody tr').length",
        "trace rows",
    )
    .await;
    let listed = api(&c, "/api/v1/traces").await;
    let rows = c
        .find_all(Locator::Css("table.traces tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), listed["items"].as_array().unwrap().len());
    let first_id = rows[0].attr("data-trace-id").await.unwrap().unwrap();
    assert_eq!(first_id, listed["items"][0]["trace_id"].as_str().unwrap());
    screenshot(&c, "traces").await;

    click(&c, "th[data-sort=cost]").await;
    until(&c, "location.search.includes('sort=cost') && document.querySelector('.results').dataset.state === 'ready'", "sorted by cost").await;
    let costs: Vec<f64> = until(
        &c,
        "[...document.querySelectorAll('table.traces td.cost')].map(td => td.textContent)",
        "costs",
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|v| dollars(v.as_str().unwrap()))
    .collect();
    assert!(
        costs.windows(2).all(|w| w[0] >= w[1]),
        "descending by cost: {costs:?}"
    );

    let errors = api(&c, "/api/v1/traces?status=error").await;
    let n_err = errors["items"].as_array().unwrap().len();
    assert!(
        n_err > 0 && n_err < rows.len(),
        "the demo has some failed traces"
    );
    c.execute(
        "document.querySelector('select[name=status]').value = 'error'",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "form.filters button.primary").await;
    until(&c, &format!("location.search.includes('status=error') && document.querySelector('.results').dataset.state === 'ready' && document.querySelectorAll('table.traces tbody tr').length === {n_err}"), "filtered rows").await;
    c.refresh().await.unwrap();
    until(
        &c,
        &format!("document.querySelectorAll('table.traces tbody tr').length === {n_err}"),
        "filtered rows after reload",
    )
    .await;
    let kept = c
        .execute(
            "return document.querySelector('select[name=status]').value",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, "error", "the filter is restored from the URL");
    let statuses = c
        .execute(
            "return [...document.querySelectorAll('table.traces .status')].map(s => s.textContent)",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        statuses.as_array().unwrap().iter().all(|s| s == "error"),
        "{statuses}"
    );
    screenshot(&c, "traces-filtered").await;

    // Trace: the demo trace with the most spans; its tree, cost, panel and keyboard.
    let top = api(&c, "/api/v1/traces?sort=span_count&order=desc&limit=3").await;
    let known = top["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trace_id"] != BIG_TRACE)
        .unwrap()
        .clone();
    let tid = known["trace_id"].as_str().unwrap();
    c.goto(&server.url(&format!("/traces/{tid}")))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelectorAll('.wf-row[data-span-id]').length",
        "waterfall rows",
    )
    .await;
    let count = attr_of(&c, ".waterfall", "data-span-count").await;
    assert_eq!(
        count,
        known["span_count"].to_string(),
        "the tree reports every span"
    );
    let ids = c
        .execute(
            "return [...document.querySelectorAll('.wf-row')].map(r => r.dataset.spanId)",
            vec![],
        )
        .await
        .unwrap();
    assert!(ids
        .as_array()
        .unwrap()
        .iter()
        .all(|id| id.as_str().unwrap().len() == 16
            && id.as_str().unwrap().chars().all(|c| c.is_ascii_hexdigit())));
    let cost = text_of(&c, "#trace-cost .stat-value").await;
    assert!(
        close(dollars(&cost), known["total_cost_usd"].as_f64().unwrap()),
        "UI cost {cost} vs API {}",
        known["total_cost_usd"]
    );

    let full = api(&c, &format!("/api/v1/traces/{tid}")).await;
    let llm = full["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "llm" && s["cost"]["total_usd"].as_f64().unwrap_or(0.0) > 0.0)
        .unwrap()
        .clone();
    let sid = llm["span_id"].as_str().unwrap();
    // An evaluation score of the span, posted through the API, shows in its panel.
    let posted: Value = c
        .execute(
            "return fetch('/api/v1/scores', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(arguments[0])}).then(r => r.json());",
            vec![json!({"trace_id": llm["trace_id"], "span_id": sid, "name": "valid json",
                "data_type": "boolean", "value": 1, "source": "rule", "comment": "output is JSON"})],
        )
        .await
        .unwrap();
    assert!(posted["ids"].is_array(), "{posted}");
    click(&c, &format!(".wf-row[data-span-id='{sid}'] .sname")).await;
    until(&c, &format!("document.querySelector('.panel').dataset.spanId === '{sid}' && document.querySelector('.panel .span-cost')"), "span panel").await;
    let panel_cost = text_of(&c, ".panel .span-cost").await;
    assert!(
        close(
            dollars(&panel_cost),
            llm["cost"]["total_usd"].as_f64().unwrap()
        ),
        "panel cost {panel_cost} vs {}",
        llm["cost"]
    );
    let score = c
        .find(Locator::Css(
            ".panel [data-section='scores'] [data-score='valid json']",
        ))
        .await
        .expect("the span's score in its panel")
        .text()
        .await
        .unwrap();
    assert!(score.contains("pass") && score.contains("rule"), "{score}");
    for section in ["usage", "cost", "latency", "messages"] {
        c.find(Locator::Css(&format!(".panel [data-section='{section}']")))
            .await
            .unwrap_or_else(|_| panic!("panel section {section}"));
    }
    assert!(c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains(&format!("span={sid}")));
    screenshot(&c, "trace").await;

    // Insight: self time in the panel, critical-path rows, overhead and parallelism in the
    // header, all as the tree endpoint computed them.
    let tree = api(&c, &format!("/api/v1/traces/{tid}/tree")).await;
    let node = tree["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["span_id"] == sid)
        .unwrap()
        .clone();
    let shown_self = until(
        &c,
        "document.querySelector('.panel .self-time b')?.dataset.selfMs",
        "self time in the span panel",
    )
    .await;
    assert_eq!(
        shown_self.as_str().unwrap().parse::<f64>().unwrap(),
        node["self_ms"].as_f64().unwrap()
    );
    let critical = c
        .execute(
            "return [...document.querySelectorAll('.wf-row.critical')].map(r => r.dataset.spanId)",
            vec![],
        )
        .await
        .unwrap();
    let mut want: Vec<Value> = tree["analysis"]["critical_path"]
        .as_array()
        .unwrap()
        .clone();
    let mut got: Vec<Value> = critical.as_array().unwrap().clone();
    want.sort_by_key(|v| v.to_string());
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, want, "critical rows are the analysis' critical path");
    for id in ["trace-critical", "trace-overhead", "trace-parallelism"] {
        c.find(Locator::Css(&format!("#{id} .stat-value")))
            .await
            .unwrap_or_else(|_| panic!("header stat {id}"));
    }
    until(
        &c,
        "document.querySelector('.waterfall.show-critical')",
        "critical path shown",
    )
    .await;
    click(&c, ".critical-toggle").await;
    until(
        &c,
        "!document.querySelector('.waterfall.show-critical')",
        "critical path hidden",
    )
    .await;
    click(&c, ".critical-toggle").await;
    until(
        &c,
        "document.querySelector('.waterfall.show-critical')",
        "critical path shown again",
    )
    .await;

    // Keyboard: Home selects the root, Left collapses it to one row, Right expands, Down moves,
    // Enter opens the selected span.
    let scroller = c.find(Locator::Css(".wf-scroll")).await.unwrap();
    scroller.send_keys(&Key::Home).await.unwrap();
    scroller.send_keys(&Key::Left).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('.wf-row').length === 1",
        "collapsed root",
    )
    .await;
    scroller.send_keys(&Key::Right).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('.wf-row').length > 1",
        "expanded root",
    )
    .await;
    scroller.send_keys(&Key::Down).await.unwrap();
    scroller.send_keys(&Key::Enter).await.unwrap();
    let second = full["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["parent_span_id"] == known["root_span_id"])
        .unwrap()["span_id"]
        .as_str()
        .unwrap()
        .to_string();
    until(&c, &format!("document.querySelector('.wf-row.selected')?.dataset.spanId === '{second}' && document.querySelector('.panel').dataset.spanId === '{second}'"), "Down + Enter opens the first child").await;

    // Search within the trace highlights matches.
    let search = c
        .find(Locator::Css(".toolbar input[type=search]"))
        .await
        .unwrap();
    search.send_keys("llm").await.unwrap();
    let llm_count = full["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "llm")
        .count();
    until(
        &c,
        &format!(
            "document.querySelector('.match-info').textContent.startsWith('{llm_count} match')"
        ),
        "search matches",
    )
    .await;

    // Virtualisation: the 10,021-span trace keeps only a window of rows in the DOM, and
    // scrolling renders others.
    c.goto(&server.url(&format!("/traces/{BIG_TRACE}")))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelectorAll('.wf-row').length",
        "big waterfall rows",
    )
    .await;
    let count = attr_of(&c, ".waterfall", "data-span-count").await;
    assert_eq!(count, "10021");
    let in_dom = c
        .execute("return document.querySelectorAll('.wf-row').length", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(
        in_dom < 200,
        "{in_dom} rows in the DOM for 10,021 spans: not virtualised"
    );
    let top_row = c
        .execute(
            "return document.querySelector('.wf-row').dataset.spanId",
            vec![],
        )
        .await
        .unwrap();
    c.execute(
        "const s = document.querySelector('.wf-scroll'); s.scrollTop = s.scrollHeight;",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        &format!(
            "document.querySelector('.wf-row[data-span-id=\"{:016x}\"]')",
            10_021
        ),
        "the last span after scrolling",
    )
    .await;
    let gone = c
        .execute(
            &format!(
                "return !document.querySelector('.wf-row[data-span-id=\"{}\"]')",
                top_row.as_str().unwrap()
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(gone, true, "the first row left the DOM when scrolled away");
    screenshot(&c, "trace-10k-scrolled").await;

    // Sessions list and one session as a conversation.
    c.goto(&server.url("/sessions")).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('table.sessions tbody tr').length",
        "session rows",
    )
    .await;
    screenshot(&c, "sessions").await;
    let sessions = api(&c, "/api/v1/sessions").await;
    let s0 = &sessions["items"][0];
    // A human's categorical score of the session shows under its header.
    let posted: Value = c
        .execute(
            "return fetch('/api/v1/scores', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(arguments[0])}).then(r => r.json());",
            vec![json!({"session_id": s0["session_id"], "name": "outcome", "data_type": "categorical",
                "label": "resolved", "source": "human"})],
        )
        .await
        .unwrap();
    assert!(posted["ids"].is_array(), "{posted}");
    click(&c, "table.sessions tbody tr a").await;
    let turns = s0["trace_count"].as_u64().unwrap();
    until(&c, &format!("document.querySelectorAll('.turn').length === {turns} && document.querySelectorAll('.turn .bubble.user').length === {turns}"), "conversation turns").await;
    let said = c
        .execute(
            "return document.querySelector('.turn .bubble.user').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        said.as_str().unwrap().len() > 10 && !said.as_str().unwrap().contains("no input recorded"),
        "{said}"
    );
    until(
        &c,
        "document.querySelector(\"#session-scores [data-score='outcome']\") && document.querySelector(\"#session-scores [data-score='outcome']\").textContent.includes('resolved')",
        "the session's score",
    )
    .await;
    screenshot(&c, "session").await;

    // Dashboard: SVG charts and the cost KPI equal to the API's over the same range.
    c.goto(&server.url("/dashboard?range=30d")).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('.chart svg').length >= 6",
        "SVG charts",
    )
    .await;
    let range = c
        .execute(
            "return [new Date(Date.now() - 2.592e9).toISOString(), new Date().toISOString()]",
            vec![],
        )
        .await
        .unwrap();
    // The same 30 days the dashboard shows, for the API calls its figures are checked against.
    let in_range = |path: &str| {
        format!(
            "{path}?from={}&to={}",
            range[0].as_str().unwrap(),
            range[1].as_str().unwrap()
        )
    };
    let m = api(&c, &in_range("/api/v1/metrics")).await;
    let kpi = text_of(&c, "#kpi-cost .kpi-value").await;
    assert!(
        close(dollars(&kpi), m["rows"][0]["cost_usd"].as_f64().unwrap()),
        "dashboard cost {kpi} vs {}",
        m["rows"][0]
    );
    // The forecast card: history and forecast lines for the next 7 days, then 30, with the
    // total the API gives.
    until(
        &c,
        "document.querySelector('#forecast-chart svg') && document.querySelector('#forecast-chart').dataset.forecastDays === '7'",
        "the 7-day forecast chart",
    )
    .await;
    let fc = api(&c, "/api/v1/forecast?horizon_days=7").await;
    let shown = c
        .execute(
            "return Number(document.querySelector('#forecast-chart').dataset.forecastTotal)",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        close(
            shown.as_f64().unwrap(),
            fc["total"]["total"]["cost_usd"].as_f64().unwrap()
        ),
        "forecast {shown} vs {}",
        fc["total"]["total"]
    );
    click(&c, "button[data-horizon='30']").await;
    until(
        &c,
        "document.querySelector('#forecast-chart').dataset.forecastDays === '30' && document.querySelectorAll('#forecast-chart path.chart-line').length === 3",
        "the 30-day forecast with its bounds",
    )
    .await;
    // One bar per fitted day that had a cost (the forecast days have none).
    let fc30 = api(&c, "/api/v1/forecast?horizon_days=30").await;
    let costly_days = fc30["total"]["history"]["daily"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["cost_usd"].as_f64().unwrap() > 0.0)
        .count();
    let bars = c
        .execute(
            "return document.querySelectorAll('#forecast-chart rect.chart-bar').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bars, json!(costly_days), "history bars of the forecast");
    // The y axis of the cost chart reads as money, without float noise (0.30000000000000004).
    let ticks = texts(&c, ".charts > .card:first-child .chart-tick").await;
    assert!(
        ticks.len() >= 3 && ticks.iter().all(|t| t.starts_with('$') && t.len() <= 7),
        "cost ticks {ticks:?}"
    );
    // Hovering the first bar of "Cost by agent" shows the costliest agent and its cost.
    let agents = api(&c, &in_range("/api/v1/metrics/agent")).await;
    let mut rows: Vec<&Value> = agents["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["key"].is_string() && r["cost_usd"].as_f64().unwrap_or(0.0) > 0.0)
        .collect();
    rows.sort_by(|a, b| {
        b["cost_usd"]
            .as_f64()
            .partial_cmp(&a["cost_usd"].as_f64())
            .unwrap()
    });
    let (label, values) = hover_column(&c, "Cost by agent", 0)
        .await
        .expect("a chart to hover");
    assert_eq!(label, rows[0]["key"].as_str().unwrap(), "tooltip label");
    assert!(
        close(dollars(&values[0]), rows[0]["cost_usd"].as_f64().unwrap()),
        "tooltip cost {values:?} vs {}",
        rows[0]
    );
    // The score posted on the trace page is charted by day.
    until(
        &c,
        "document.querySelector('[data-score-names]') && document.querySelector('[data-score-names]').dataset.scoreNames === '1' && document.querySelector('[data-score-names] svg')",
        "the evaluations chart",
    )
    .await;
    screenshot(&c, "dashboard").await;

    // Reliability: the recovery report of the demo's retries and rate limits.
    c.goto(&server.url("/reliability?range=30d")).await.unwrap();
    until(
        &c,
        "document.querySelector('#rel-timelines tbody tr') && document.querySelector('#rel-headroom .headroom i')",
        "reliability tables",
    )
    .await;
    let rec = api(&c, &in_range("/api/v1/recovery")).await;
    let retried = text_of(&c, "#rel-retried .kpi-value").await;
    assert_eq!(
        retried.replace([',', '.', '\u{a0}', ' '], ""),
        rec["spans_with_retries"].to_string(),
        "{rec}"
    );
    assert!(c
        .find(Locator::Css("#rel-timelines .retry-track .retry-fail"))
        .await
        .is_ok());
    c.find(Locator::Css("nav a[data-nav='reliability'].active"))
        .await
        .expect("the header links the page");
    // Alerts: no rules configured. Reconciliation: the demo's gateway-billed chat calls, with
    // Haiku's one-hour cache writes billed above the catalog's price.
    let alerts = text_of(&c, "#rel-alerts").await;
    assert!(alerts.contains("--alerts"), "{alerts}");
    let recon = text_of(&c, "#rel-reconciliation").await;
    assert!(
        recon.to_lowercase().contains("provider-reported"),
        "{recon}"
    );
    assert!(
        recon.contains(spanlens_server::demo::ONE_HOUR_CACHE_MODEL),
        "{recon}"
    );
    screenshot(&c, "reliability").await;

    // Live: a span posted now appears in the table.
    c.goto(&server.url("/live")).await.unwrap();
    until(
        &c,
        "document.querySelector('.live-state.on')",
        "live stream connected",
    )
    .await;
    let otlp = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../spanlens-core/tests/fixtures/otlp_genai.json"
    ))
    .unwrap();
    let status = c.execute("return fetch('/v1/traces', {method: 'POST', headers: {'content-type': 'application/json'}, body: arguments[0]}).then(r => r.status)", vec![json!(otlp)]).await.unwrap();
    assert_eq!(status, 200);
    until(
        &c,
        "document.querySelectorAll('table.live tbody tr').length >= 6",
        "live rows",
    )
    .await;
    screenshot(&c, "live").await;

    // An unknown trace gets a clear message, not a blank page.
    c.goto(&server.url(&format!("/traces/{}", "0".repeat(31) + "1")))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('.notice')?.textContent.includes('Trace not found')",
        "not-found notice",
    )
    .await;

    c.close().await.unwrap();
    drop(server);
    drop(driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_paint_of_a_10k_span_trace() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(10_021))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    let url = server.url(&format!("/traces/{BIG_TRACE}"));
    let mut figures = Vec::new();
    let mut tree_fetch = Vec::new();
    // The first visit also pays for a cold cache (modules, SQLite pages); report both.
    for _ in 0..3 {
        c.goto(&server.url("/healthz")).await.unwrap();
        c.goto(&url).await.unwrap();
        let ms = until(&c, "window.__spanlensFirstPaint", "the first-paint marker")
            .await
            .as_f64()
            .unwrap();
        let rows = c
            .execute("return document.querySelectorAll('.wf-row').length", vec![])
            .await
            .unwrap();
        assert!(rows.as_u64().unwrap() > 10, "rows painted: {rows}");
        let tree_ms = c
            .execute(
                "return performance.getEntriesByType('resource').find(e => e.name.includes('/tree'))?.duration",
                vec![],
            )
            .await
            .unwrap();
        figures.push(ms);
        tree_fetch.push(tree_ms.as_f64().unwrap_or(f64::NAN));
    }
    screenshot(&c, "trace-10k").await;
    println!(
        "UI first paint of a 10,021-span trace (navigation start to first waterfall rows, headless Chromium): \
         cold {:.0} ms, warm {:.0} ms / {:.0} ms (budget 2000 ms); of which fetching /tree {:.0} / {:.0} / {:.0} ms",
        figures[0], figures[1], figures[2], tree_fetch[0], tree_fetch[1], tree_fetch[2]
    );
    // Speed is judged by benchmarks; this only catches a waterfall that became unusable.
    assert!(
        figures.iter().all(|ms| *ms < 10_000.0),
        "first paint {figures:?} ms is far over the 2 s budget"
    );
    c.close().await.unwrap();
}
