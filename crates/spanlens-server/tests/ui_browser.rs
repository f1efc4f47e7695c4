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
        Server::start_with(big_trace_spans, |_, _| {})
    }

    /// A server on demo data whose store and configuration `prepare` may change first.
    fn start_with(
        big_trace_spans: usize,
        prepare: impl FnOnce(&Arc<spanlens_store::SqliteStore>, &mut spanlens_server::ServerConfig),
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = spanlens_server::open_store(dir.path()).unwrap();
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        let demo = spanlens_demo::generate(spanlens_demo::DEFAULT_SEED, now);
        let big = big_trace(&demo, big_trace_spans, now);
        write_by_trace(&store, demo);
        write_by_trace(&store, big);
        let store = Arc::new(store);
        let mut config = local_config(dir.path());
        prepare(&store, &mut config);
        let running = Running::start(config, store);
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
                .submit(DEFAULT_PROJECT, std::mem::take(&mut batch))
                .and_then(|ticket| ticket.wait())
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
    // The console (CSP refusals, uncaught errors) is read back by `console_problems`.
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
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

/// An OTLP/JSON request carrying only an SDK's export counters (no spans) for `service`.
fn sdk_counters(service: &str, dropped: u64, failed: u64) -> Value {
    let kv = |k: &str, v: Value| json!({"key": k, "value": v});
    json!({"resourceSpans": [{"resource": {"attributes": [
        kv("service.name", json!({"stringValue": service})),
        kv("spanlens.sdk.instance", json!({"stringValue": format!("{service}-1")})),
        kv("spanlens.sdk.spans.exported", json!({"intValue": "100"})),
        kv("spanlens.sdk.spans.dropped", json!({"intValue": dropped.to_string()})),
        kv("spanlens.sdk.spans.failed", json!({"intValue": failed.to_string()})),
    ]}, "scopeSpans": []}]})
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

/// An attribute of the first element matching `css` (both must exist). Found and read in one
/// script: a page that re-renders between a WebDriver find and read leaves a stale element.
async fn attr_of(c: &Client, css: &str, name: &str) -> String {
    let v = c
        .execute(
            "const e = document.querySelector(arguments[0]); \
             return e ? e.getAttribute(arguments[1]) : undefined;",
            vec![json!(css), json!(name)],
        )
        .await
        .unwrap();
    v.as_str()
        .unwrap_or_else(|| panic!("no attribute {name} on {css}: {v}"))
        .to_string()
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

/// A "$0.0123" label as a number: the priced part of "$0.0123 + 2 unpriced"; 0 for
/// "unpriced" and for "–" (no model call to price).
fn dollars(s: &str) -> f64 {
    let s = s.split(" + ").next().unwrap_or(s).trim();
    if s == "unpriced" || s == "–" {
        return 0.0;
    }
    s.trim_start_matches('$')
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
        statuses.as_array().unwrap().iter().all(|s| s == "failed"),
        "{statuses}"
    );
    screenshot(&c, "traces-filtered").await;

    // Failed traces apart from those that recovered from errors, with the counts.
    let outcomes = api(&c, "/api/v1/traces/outcomes").await;
    let (failed, recovered) = (
        outcomes["failed"].as_u64().unwrap(),
        outcomes["recovered"].as_u64().unwrap(),
    );
    assert_eq!(failed, n_err as u64, "{outcomes}");
    assert!(
        recovered > 0,
        "the demo has traces that recovered from errors: {outcomes}"
    );
    until(
        &c,
        &format!(
            "document.querySelector('#trace-outcomes').dataset.failed === '{failed}' && \
             document.querySelector('#trace-outcomes').dataset.recovered === '{recovered}'"
        ),
        "the outcome counts",
    )
    .await;
    let line = text_of(&c, "#trace-outcomes").await;
    assert!(
        line.contains(&format!("{failed} failed"))
            && line.contains(&format!("{recovered} with recovered errors")),
        "{line}"
    );
    let api_recovered = api(&c, "/api/v1/traces?status=recovered&limit=200").await;
    let api_recovered = api_recovered["items"].as_array().unwrap();
    assert_eq!(api_recovered.len() as u64, recovered.min(200));
    assert!(
        api_recovered
            .iter()
            .all(|t| t["status"] != "error" && t["error_count"].as_u64().unwrap() > 0),
        "recovered traces did not fail and hold errors"
    );
    c.execute(
        "document.querySelector('select[name=status]').value = 'recovered'",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "form.filters button.primary").await;
    let shown = recovered.min(50);
    until(&c, &format!("location.search.includes('status=recovered') && document.querySelector('.results').dataset.state === 'ready' && document.querySelectorAll('table.traces tbody tr.recovered').length === {shown} && document.querySelectorAll('table.traces tbody tr').length === {shown}"), "recovered rows").await;
    let badges = texts(&c, "table.traces .status.recovered").await;
    assert!(
        badges.len() as u64 == shown && badges.iter().all(|b| b.ends_with(" recovered")),
        "{badges:?}"
    );
    screenshot(&c, "traces-recovered").await;

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

    // What if: the trace priced as gpt-4o-mini without cache reads, the panel's totals and
    // rows equal to the API's, and a row's link opening its span.
    click(&c, "#whatif-open").await;
    until(
        &c,
        "document.querySelectorAll('#whatif-model option').length > 10",
        "the catalog's models in the what-if picker",
    )
    .await;
    c.execute(
        "const s = document.querySelector('#whatif-model'); s.value = 'gpt-4o-mini'; \
         document.querySelector('#whatif-cache').checked = false; \
         document.querySelector('.whatif-form button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        "document.querySelector('#whatif-result [data-whatif-nano]')",
        "the what-if answer",
    )
    .await;
    let want = api(
        &c,
        &format!("/api/v1/whatif?trace_id={tid}&as=gpt-4o-mini&cache_reads=false"),
    )
    .await;
    assert_eq!(
        attr_of(&c, "#whatif-result [data-whatif-nano]", "data-whatif-nano").await,
        want["total"]["whatif_nano_usd"].to_string()
    );
    let rows = texts(&c, "#whatif-result tbody tr").await;
    assert_eq!(
        rows.len(),
        want["calls"].as_array().unwrap().len(),
        "{rows:?}"
    );
    assert!(want["total"]["calls"].as_u64().unwrap() > 0, "{want}");
    assert!(
        text_of(&c, "#whatif-result .whatif-total")
            .await
            .contains("on gpt-4o-mini"),
        "the total names the model"
    );
    screenshot(&c, "trace-whatif").await;
    let first_call = want["calls"][0]["span_id"].as_str().unwrap().to_string();
    click(&c, "#whatif-result tbody tr:first-child a").await;
    until(
        &c,
        &format!("location.search.includes('span={first_call}')"),
        "the span of the first what-if row opened",
    )
    .await;

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

    // An SDK that dropped spans (its service named like markup, which must show as text), and
    // one that lost none: the dashboard names the first only.
    let sent = c
        .execute(
            "return Promise.all(arguments[0].map(b => fetch('/v1/traces', {method: 'POST', \
             headers: {'content-type': 'application/json'}, body: JSON.stringify(b)}) \
             .then(r => r.status)));",
            vec![json!([
                sdk_counters("<img src=x onerror=alert(1)>", 12, 3),
                sdk_counters("quiet", 0, 0)
            ])],
        )
        .await
        .unwrap();
    assert_eq!(sent, json!([200, 200]));
    // Dashboard: SVG charts and the cost KPI equal to the API's over the same range.
    c.goto(&server.url("/dashboard?range=30d")).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('.chart svg').length >= 6",
        "SVG charts",
    )
    .await;
    let losses = texts(&c, "#sdk-losses li").await;
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert!(
        losses[0].starts_with("<img src=x onerror=alert(1)> dropped 12 spans (SDK queue full) and lost 3 spans to export errors"),
        "{losses:?}"
    );
    let markup = c
        .execute(
            "return document.querySelectorAll('#sdk-losses img').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(markup, json!(0), "a service name is text, never markup");
    screenshot(&c, "dashboard-sdk-losses").await;
    // A workflow at a volume: the card's projection equals the API's.
    let workflow = api(&c, "/api/v1/traces?limit=1").await["items"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.execute(
        "document.querySelector('#wf-name').value = arguments[0]; \
         document.querySelector('#wf-runs').value = '50000'; \
         document.querySelector('#workflow-card button[type=submit]').click();",
        vec![json!(workflow)],
    )
    .await
    .unwrap();
    until(
        &c,
        "document.querySelector('#wf-projected')",
        "the workflow projection",
    )
    .await;
    let want = api(
        &c,
        &format!(
            "/api/v1/forecast/workflow?name={}&runs=50000&horizon_days=30",
            workflow.replace(' ', "%20")
        ),
    )
    .await;
    let shown = attr_of(&c, "#wf-projected", "data-cost-usd").await;
    assert!(
        close(
            shown.parse().unwrap(),
            want["projection"]["cost_usd"].as_f64().unwrap()
        ),
        "{shown} vs {want}"
    );
    assert!(text_of(&c, "#wf-confidence")
        .await
        .contains(want["confidence"].as_str().unwrap()));
    c.execute(
        "document.querySelector('#workflow-card').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    screenshot(&c, "dashboard-workflow").await;
    // What if every call of the range had run on gpt-4o-mini: the card's totals are the API's
    // for the same range, one row per model the calls ran on.
    until(
        &c,
        "document.querySelectorAll('#whatif-range-model option').length > 10",
        "the catalog's models in the range what-if",
    )
    .await;
    c.execute(
        "document.querySelector('#whatif-range-model').value = 'gpt-4o-mini'; \
         document.querySelector('#whatif-range .whatif-form button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        "document.querySelector('#whatif-range-result [data-whatif-nano]')",
        "the range what-if",
    )
    .await;
    let (from, to) = (
        attr_of(&c, "#whatif-range", "data-from").await,
        attr_of(&c, "#whatif-range", "data-to").await,
    );
    let want = api(
        &c,
        &format!("/api/v1/whatif?from={from}&to={to}&as=gpt-4o-mini&cache_reads=true"),
    )
    .await;
    assert_eq!(
        attr_of(
            &c,
            "#whatif-range-result [data-whatif-nano]",
            "data-whatif-nano"
        )
        .await,
        want["total"]["whatif_nano_usd"].to_string(),
        "{want}"
    );
    assert_eq!(
        texts(&c, "#whatif-range-result tbody tr").await.len(),
        want["by_model"].as_array().unwrap().len()
    );
    assert!(
        want["total"]["calls"].as_u64().unwrap() > 100,
        "{}",
        want["total"]
    );
    // The demo's unpriced fine-tune reads as unpriced as stored, never as $0.
    let cells = texts(&c, "#whatif-range-result tbody td").await;
    assert!(cells.iter().any(|t| t == "unpriced"), "{cells:?}");
    assert!(!cells.iter().any(|t| t == "$0"), "{cells:?}");
    c.execute(
        "document.querySelector('#whatif-range').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    screenshot(&c, "dashboard-whatif").await;
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
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
        recon.contains(spanlens_demo::ONE_HOUR_CACHE_MODEL),
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

// ---------------------------------------------------------------------------------------------
// Span-derived text is data, never markup: hostile names, ids, tags and attributes are shown
// literally on every page, run no script, and the UI works under its Content-Security-Policy.

/// Markup that runs script if it ever reaches `innerHTML` (the image fails to load).
const XSS_IMG: &str = r#"<img src=x onerror="window.__xss=(window.__xss||0)+1">"#;
/// Breaks out of a quoted attribute value if one is ever built by string concatenation.
const XSS_SVG: &str = r#""><svg onload="window.__xss=1">"#;
/// Runs script if it ever becomes a link's whole href.
const XSS_URL: &str = "javascript:window.__xss=1";
/// Trace ids of the hostile traces (the first is ingested up front, the second while on /live).
const XSS_TRACE: &str = "5c415c415c415c415c415c415c415c41";
const XSS_LIVE_TRACE: &str = "5c425c425c425c425c425c425c425c42";

/// The exact policy every UI response must carry.
const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn xss_trace_name() -> String {
    format!("{XSS_IMG} trace")
}
fn xss_agent() -> String {
    format!("{XSS_SVG}agent")
}
fn xss_user() -> String {
    format!("{XSS_IMG}user")
}
fn xss_llm_name() -> String {
    format!("{XSS_SVG} chat")
}
fn xss_tool() -> String {
    format!("{XSS_IMG}tool")
}
fn xss_score() -> String {
    format!("{XSS_SVG}score")
}

/// Percent-encodes everything but unreserved characters (what `encodeURIComponent` does for
/// the strings used here).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One OTLP trace (root, agent, LLM call, failed tool call) whose every free-text field carries
/// one of the payloads; the LLM call has a reported cost, tokens, a TTFT, a retry, rate limits
/// and messages, so it shows on every dashboard chart and in the recovery report.
fn hostile_otlp(trace_id: &str, start_ns: u64) -> String {
    let s = |v: &str| json!({"stringValue": v});
    let i = |v: u64| json!({"intValue": v.to_string()});
    let kv = |k: &str, v: Value| json!({"key": k, "value": v});
    let at = |offset_ms: u64| (start_ns + offset_ms * 1_000_000).to_string();
    let id = |n: u8| format!("{}{n:02x}", &trace_id[..14]);
    let messages = |role: &str, content: &str| {
        serde_json::to_string(&json!([{"role": role, "content": content}])).unwrap()
    };
    json!({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", s("hostile"))]},
        "scopeSpans": [{"scope": {"name": "hostile"}, "spans": [
            {
                "traceId": trace_id, "spanId": id(1), "name": xss_trace_name(), "kind": 2,
                "startTimeUnixNano": at(0), "endTimeUnixNano": at(100_000),
                "attributes": [
                    kv("session.id", s(XSS_URL)),
                    kv("user.id", s(&xss_user())),
                    kv("spanlens.tags", json!({"arrayValue": {"values": [s(XSS_IMG), s(XSS_SVG), s(XSS_URL)]}})),
                    kv("spanlens.metadata.note", s(XSS_SVG)),
                    kv("input.value", s(XSS_IMG)),
                    kv("output.value", s(XSS_SVG)),
                    kv("acme.html", s(XSS_IMG)),
                    kv("acme.url", s(XSS_URL)),
                ],
                "status": {},
            },
            {
                "traceId": trace_id, "spanId": id(2), "parentSpanId": id(1), "name": "invoke_agent hostile",
                "kind": 1, "startTimeUnixNano": at(10), "endTimeUnixNano": at(99_000),
                "attributes": [kv("gen_ai.operation.name", s("invoke_agent")), kv("gen_ai.agent.name", s(&xss_agent()))],
                "status": {},
            },
            {
                "traceId": trace_id, "spanId": id(3), "parentSpanId": id(2), "name": xss_llm_name(),
                "kind": 3, "startTimeUnixNano": at(20), "endTimeUnixNano": at(90_000),
                "attributes": [
                    kv("gen_ai.operation.name", s("chat")),
                    kv("gen_ai.provider.name", s(XSS_SVG)),
                    kv("gen_ai.agent.name", s(&xss_agent())),
                    kv("gen_ai.request.model", s(XSS_IMG)),
                    kv("gen_ai.usage.input_tokens", i(50_000_000)),
                    kv("gen_ai.usage.output_tokens", i(2_000_000)),
                    kv("gen_ai.usage.cache_read.input_tokens", i(1_000_000)),
                    kv("llm.cost.total", json!({"doubleValue": 900.0})),
                    kv("gen_ai.input.messages", s(&messages("user", XSS_IMG))),
                    kv("gen_ai.output.messages", s(&messages("assistant", XSS_SVG))),
                    kv("gen_ai.tool.definitions", s(&json!([{"type": "function", "name": XSS_IMG, "description": XSS_SVG}]).to_string())),
                    kv("spanlens.ratelimit.requests.limit", i(100)),
                    kv("spanlens.ratelimit.requests.remaining", i(3)),
                    kv("acme.url", s(XSS_URL)),
                ],
                "events": [
                    {"timeUnixNano": at(1_000), "name": "retry", "attributes": [
                        kv("retry.attempt", i(1)), kv("error.type", s(XSS_IMG)),
                        kv("error.message", s(XSS_SVG)), kv("retry.backoff_ms", i(500))]},
                    {"timeUnixNano": at(2_000), "name": "retry.outcome", "attributes": [
                        kv("retry.succeeded", json!({"boolValue": true})), kv("retry.attempts", i(2))]},
                    {"timeUnixNano": at(30_000), "name": "gen_ai.first_token", "attributes": []},
                ],
                "status": {},
            },
            {
                "traceId": trace_id, "spanId": id(4), "parentSpanId": id(2), "name": format!("execute_tool {}", xss_tool()),
                "kind": 1, "startTimeUnixNano": at(91_000), "endTimeUnixNano": at(98_000),
                "attributes": [
                    kv("gen_ai.operation.name", s("execute_tool")),
                    kv("gen_ai.tool.name", s(&xss_tool())),
                    kv("gen_ai.tool.call.id", s(XSS_URL)),
                    kv("gen_ai.tool.call.arguments", s(XSS_SVG)),
                    kv("gen_ai.tool.call.result", s(XSS_IMG)),
                    kv("error.type", s(XSS_SVG)),
                ],
                "status": {"code": 2, "message": XSS_IMG},
            },
        ]}],
    }]})
    .to_string()
}

/// Posts an OTLP/JSON body from inside the page; returns the HTTP status.
async fn post_otlp(c: &Client, body: &str) -> Value {
    c.execute("return fetch('/v1/traces', {method: 'POST', headers: {'content-type': 'application/json'}, body: arguments[0]}).then(r => r.status)", vec![json!(body)])
        .await
        .unwrap()
}

/// Installs, in the current document, the recorders the checks read: CSP violations
/// (`window.__csp`) and every text a chart tooltip showed (`window.__tips`).
async fn record(c: &Client) {
    c.execute(
        r#"
        if (!window.__recording) {
          window.__recording = true;
          window.__csp = [];
          window.__tips = new Set();
          document.addEventListener('securitypolicyviolation', (e) =>
            window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));
          new MutationObserver(() => {
            for (const t of document.querySelectorAll('.chart-tip')) {
              if (t.textContent.trim()) window.__tips.add(t.textContent);
            }
          }).observe(document.documentElement, {subtree: true, childList: true, characterData: true, attributes: true});
        }"#,
        vec![],
    )
    .await
    .unwrap();
}

/// Client-side navigation (what a click on a link does), so the recorders stay installed.
async fn visit(c: &Client, path: &str) {
    c.execute(
        "history.pushState(null, '', arguments[0]); window.dispatchEvent(new Event('spanlens:navigate'));",
        vec![json!(path)],
    )
    .await
    .unwrap();
}

/// CSP refusals and uncaught errors the browser logged since the last call (chromedriver's
/// log endpoint; it also sees what happened before `record` ran).
async fn console_problems(c: &Client, driver: &Driver) -> Vec<String> {
    let session = c.session_id().await.unwrap().unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let text = agent
        .post(&format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            driver.port
        ))
        .header("content-type", "application/json")
        .send(r#"{"type": "browser"}"#)
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let logs: Value = serde_json::from_str(&text).unwrap();
    logs["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no browser log: {logs}"))
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| {
            m.contains("Content Security Policy")
                || m.contains("Refused to")
                || m.contains("Uncaught")
        })
        .map(str::to_string)
        .collect()
}

/// After each page: no payload ran, nothing was refused by the CSP, no element carries an event
/// handler attribute or a script URL, and no element the payloads would create exists.
async fn check_page(c: &Client, driver: &Driver, page: &str, problems: &mut Vec<String>) {
    tokio::time::sleep(Duration::from_millis(300)).await; // a failed <img> fires onerror async
    let found = c
        .execute(
            r#"
            const out = [];
            if (window.__xss !== undefined) out.push(`window.__xss = ${window.__xss}: a payload ran`);
            for (const v of window.__csp || []) out.push(`CSP violation: ${v}`);
            window.__csp = [];
            for (const el of document.querySelectorAll('*')) {
              for (const a of el.attributes) {
                if (a.name.startsWith('on')) out.push(`<${el.localName} ${a.name}="${a.value}">`);
                if (/href|src|action/.test(a.name) && /^\s*(javascript|data|vbscript):/i.test(a.value)) out.push(`<${el.localName} ${a.name}="${a.value}">`);
              }
            }
            for (const el of document.querySelectorAll('img, iframe, object, embed, main svg svg, style')) out.push(`unexpected <${el.localName}> in the page`);
            if (document.scripts.length !== 1) out.push(`${document.scripts.length} script elements`);
            return out;"#,
            vec![],
        )
        .await
        .unwrap();
    for p in found.as_array().unwrap() {
        problems.push(format!("{page}: {}", p.as_str().unwrap()));
    }
    for p in console_problems(c, driver).await {
        problems.push(format!("{page}: console: {p}"));
    }
}

/// Moves the real mouse pointer across the plot of the chart card whose title starts with
/// `title`, so its hover tooltip opens over every column; returns the texts it showed.
async fn sweep(c: &Client, title: &str) -> Vec<String> {
    use fantoccini::actions::{InputSource, MouseActions, PointerAction};
    let rect = c
        .execute(
            r#"
            const card = [...document.querySelectorAll('.card')].find((c) => c.querySelector('h3')?.textContent.startsWith(arguments[0]));
            const svg = card?.querySelector('.chart svg');
            if (!svg) return null;
            svg.scrollIntoView({block: 'center'});
            window.__tips = new Set();
            const r = svg.getBoundingClientRect();
            return [r.left, r.top, r.width, r.height];"#,
            vec![json!(title)],
        )
        .await
        .unwrap();
    let r: Vec<f64> = rect
        .as_array()
        .unwrap_or_else(|| panic!("no chart titled {title:?}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut mouse = MouseActions::new("mouse".into());
    for fy in [0.55, 0.85] {
        let y = (r[1] + r[3] * fy).round();
        let mut x = r[0] + 2.0;
        while x < r[0] + r[2] - 2.0 {
            mouse = mouse
                .then(PointerAction::MoveTo {
                    duration: None,
                    x: x.round(),
                    y,
                })
                .then(PointerAction::Pause {
                    duration: Duration::from_millis(5),
                });
            x += 6.0;
        }
    }
    c.perform_actions(mouse).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tips = c
        .execute("return [...window.__tips]", vec![])
        .await
        .unwrap();
    tips.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The three payloads, in the order the API sorts tags.
fn sorted_payloads() -> Vec<String> {
    sorted(vec![XSS_IMG.into(), XSS_SVG.into(), XSS_URL.into()])
}

/// The security headers of one UI response; `if_none_match` asks for a 304.
fn ui_headers(
    server: &Server,
    path: &str,
    if_none_match: Option<&str>,
) -> (u16, Vec<(String, String)>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut req = agent.get(&server.url(path));
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    let resp = req.call().unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (resp.status().as_u16(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_derived_text_never_becomes_markup() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    let mut problems: Vec<String> = Vec::new();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;

    c.goto(&server.url("/")).await.unwrap();
    record(&c).await;
    until(
        &c,
        "document.querySelector('.results')?.dataset.state === 'ready'",
        "the traces page",
    )
    .await;
    assert_eq!(
        post_otlp(&c, &hostile_otlp(XSS_TRACE, now_ns - 600_000_000_000)).await,
        200
    );
    let posted: Value = c
        .execute(
            "return fetch('/api/v1/scores', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(arguments[0])}).then(r => r.json());",
            vec![json!({"trace_id": XSS_TRACE, "name": xss_score(), "data_type": "numeric", "value": 0.5,
                "source": "human", "comment": XSS_SVG})],
        )
        .await
        .unwrap();
    assert!(posted["ids"].is_array(), "{posted}");

    // Traces, filtered by each hostile value: the one hostile trace, its text shown as text.
    for (param, value) in [
        ("model", XSS_IMG.to_string()),
        ("user", xss_user()),
        ("session", XSS_URL.to_string()),
        ("tag", XSS_SVG.to_string()),
        ("name", xss_trace_name()),
    ] {
        visit(&c, &format!("/?range=24h&{param}={}", enc(&value))).await;
        until(
            &c,
            &format!("document.querySelector('.results').dataset.state === 'ready' && document.querySelectorAll('table.traces tbody tr').length === 1 && document.querySelector('table.traces tbody tr').dataset.traceId === '{XSS_TRACE}'"),
            &format!("the hostile trace filtered by {param}"),
        )
        .await;
        let kept = c
            .execute(
                &format!("return document.querySelector('input[name={param}]').value"),
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            kept,
            json!(value),
            "the {param} filter input holds the text"
        );
    }
    assert_eq!(
        texts(&c, "table.traces td.name > a").await,
        [xss_trace_name()]
    );
    assert_eq!(
        sorted(texts(&c, "table.traces .tag").await),
        sorted_payloads()
    );
    assert_eq!(texts(&c, "table.traces td:last-child").await, [xss_user()]);
    let href = c
        .execute(
            "return document.querySelector('table.traces td.name .sub a').getAttribute('href')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        href,
        json!(format!("/sessions/{}", enc(XSS_URL))),
        "the session link"
    );
    screenshot(&c, "xss-traces").await;
    check_page(&c, &driver, "traces", &mut problems).await;

    // The trace: header, waterfall rows, and the span panel of the LLM call, then the tool call.
    let llm_id = format!("{}03", &XSS_TRACE[..14]);
    let tool_id = format!("{}04", &XSS_TRACE[..14]);
    visit(&c, &format!("/traces/{XSS_TRACE}?span={llm_id}")).await;
    until(
        &c,
        &format!("document.querySelectorAll('.wf-row').length === 4 && document.querySelector('.panel').dataset.spanId === '{llm_id}'"),
        "the hostile trace with its LLM span open",
    )
    .await;
    let h1 = text_of(&c, ".trace-head h1").await;
    assert!(h1.starts_with(&xss_trace_name()), "{h1}");
    assert!(texts(&c, ".wf-row .sname").await.contains(&xss_llm_name()));
    assert!(texts(&c, ".wf-row .wf-model")
        .await
        .contains(&XSS_IMG.to_string()));
    assert_eq!(
        sorted(texts(&c, ".trace-head .tag").await),
        sorted_payloads()
    );
    // The failed tool call's error shows in the header and in its row's tooltip, as text.
    let first_error = text_of(&c, "#trace-first-error").await;
    assert!(
        first_error.starts_with("first error (recovered): ")
            && first_error.contains(&xss_tool())
            && first_error.contains(XSS_IMG),
        "first error: {first_error}"
    );
    let badge_title = c
        .execute(
            "return document.querySelector('.wf-row.err .badge.err').getAttribute('title')",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        badge_title.as_str().is_some_and(|t| t.contains(XSS_IMG)),
        "error badge tooltip: {badge_title}"
    );
    let panel = text_of(&c, ".panel").await;
    for want in [
        XSS_IMG.to_string(),
        XSS_SVG.to_string(),
        XSS_URL.to_string(),
        xss_agent(),
        xss_user(),
        xss_llm_name(),
    ] {
        assert!(
            panel.contains(&want),
            "the span panel shows {want:?} literally: {panel}"
        );
    }
    for (section, want) in [
        ("overview", XSS_IMG.to_string()),
        ("overview", xss_agent()),
        ("overview", XSS_URL.to_string()),
        ("messages", XSS_IMG.to_string()),
        ("messages", XSS_SVG.to_string()),
        ("metadata", XSS_SVG.to_string()),
        ("raw attributes", XSS_URL.to_string()),
        ("retries (1)", XSS_IMG.to_string()),
        // Shown as JSON, so the payload's quotes are escaped: look for a part without them.
        ("tools offered", "<img src=x onerror=".to_string()),
    ] {
        let t = texts(&c, &format!(".panel [data-section='{section}']")).await;
        assert!(
            t.len() == 1 && t[0].contains(&want),
            "{section} shows {want:?}: {t:?}"
        );
    }
    let crumb = c
        .execute(
            "return document.querySelector('.crumbs a[href^=\"/sessions/\"]').getAttribute('href')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(crumb, json!(format!("/sessions/{}", enc(XSS_URL))));
    screenshot(&c, "xss-trace").await;
    click(&c, &format!(".wf-row[data-span-id='{tool_id}'] .sname")).await;
    until(
        &c,
        &format!("document.querySelector('.panel').dataset.spanId === '{tool_id}' && document.querySelector(\".panel [data-section='tool']\")"),
        "the tool span's panel",
    )
    .await;
    let tool = text_of(&c, ".panel [data-section='tool']").await;
    assert!(
        tool.contains(&xss_tool()) && tool.contains(XSS_SVG) && tool.contains(XSS_IMG),
        "{tool}"
    );
    let err = text_of(&c, ".panel .error-box").await;
    assert!(err.contains(XSS_IMG), "{err}");
    check_page(&c, &driver, "trace and span panel", &mut problems).await;

    // Sessions of the hostile user, and the hostile session read as a conversation.
    visit(&c, &format!("/sessions?user={}", enc(&xss_user()))).await;
    until(
        &c,
        "document.querySelectorAll('table.sessions tbody tr').length === 1",
        "the hostile session",
    )
    .await;
    assert_eq!(
        texts(&c, "table.sessions tbody td:first-child a").await,
        [XSS_URL]
    );
    assert_eq!(
        texts(&c, "table.sessions tbody td:nth-child(2)").await,
        [xss_user()]
    );
    click(&c, "table.sessions tbody td:first-child a").await;
    until(
        &c,
        "document.querySelector('.turn .bubble.assistant')",
        "the conversation",
    )
    .await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/sessions/{}", enc(XSS_URL)),
        "the session link is a path, not a script URL"
    );
    assert_eq!(text_of(&c, ".page-head h1").await, XSS_URL);
    let user_said = texts(&c, ".turn .bubble.user").await.join("");
    assert!(
        user_said.contains(XSS_IMG) && user_said.contains(&xss_user()),
        "{user_said}"
    );
    assert!(text_of(&c, ".turn .bubble.assistant")
        .await
        .contains(XSS_SVG));
    screenshot(&c, "xss-session").await;
    check_page(&c, &driver, "sessions", &mut problems).await;

    // Dashboard: hover every chart whose labels or series come from spans.
    visit(&c, "/dashboard?range=24h").await;
    until(
        &c,
        "document.querySelectorAll('.chart svg').length >= 8 && document.querySelector('[data-score-names] svg') && document.querySelector('#forecast-chart svg')",
        "the dashboard's charts",
    )
    .await;
    for (title, want) in [
        ("Tokens by model", XSS_IMG.to_string()),
        ("LLM latency by model", XSS_IMG.to_string()),
        ("Time to first token by model", XSS_IMG.to_string()),
        ("Cost over time by model", XSS_IMG.to_string()),
        ("Cost by agent", xss_agent()),
        ("Cost by user", xss_user()),
        ("Evaluations by day", xss_score()),
        ("Daily cost forecast", "forecast".to_string()),
    ] {
        let tips = sweep(&c, title).await;
        if !tips.iter().any(|t| t.contains(&want)) {
            problems.push(format!(
                "dashboard: no {title:?} tooltip showed {want:?} literally; tooltips: {tips:?}"
            ));
        }
    }
    // The hostile model has the most tokens: its column comes first, its name is the tooltip's
    // title, character for character.
    match hover_column(&c, "Tokens by model", 0).await {
        Some((label, _)) if label == XSS_IMG => {}
        other => problems.push(format!(
            "dashboard: the first tokens column's tooltip is {other:?}"
        )),
    }
    screenshot(&c, "xss-tooltip").await;
    let tools = text_of(&c, "table.tools").await;
    assert!(tools.contains(&xss_tool()), "{tools}");
    check_page(&c, &driver, "dashboard", &mut problems).await;

    // Reliability: the retry's error type, span name and agent; the model's reported cost.
    visit(&c, "/reliability?range=24h").await;
    until(&c, "document.querySelector('#rel-timelines tbody tr') && document.querySelector('#rel-reconciliation table')", "the recovery report").await;
    assert!(text_of(&c, "#rel-error").await.contains(XSS_IMG));
    let timelines = text_of(&c, "#rel-timelines").await;
    assert!(
        timelines.contains(&xss_llm_name()) && timelines.contains(&xss_agent()),
        "{timelines}"
    );
    assert!(text_of(&c, "#rel-reconciliation").await.contains(XSS_IMG));
    screenshot(&c, "xss-reliability").await;
    check_page(&c, &driver, "reliability", &mut problems).await;

    // Live: the hostile spans as they arrive.
    visit(&c, "/live").await;
    until(
        &c,
        "document.querySelector('.live-state.on')",
        "live stream connected",
    )
    .await;
    assert_eq!(
        post_otlp(&c, &hostile_otlp(XSS_LIVE_TRACE, now_ns - 300_000_000_000)).await,
        200
    );
    until(
        &c,
        "document.querySelectorAll('table.live tbody tr').length >= 4",
        "live rows",
    )
    .await;
    assert!(texts(&c, "table.live td:nth-child(3)")
        .await
        .contains(&xss_llm_name()));
    assert!(texts(&c, "table.live td:nth-child(4)")
        .await
        .contains(&XSS_IMG.to_string()));
    screenshot(&c, "xss-live").await;
    check_page(&c, &driver, "live", &mut problems).await;

    // A fresh load of the dashboard (no recorder yet while it starts: the console catches that).
    c.goto(&server.url("/dashboard?range=24h")).await.unwrap();
    record(&c).await;
    until(
        &c,
        "document.querySelectorAll('.chart svg').length >= 8",
        "the dashboard after a reload",
    )
    .await;
    sweep(&c, "Tokens by model").await;
    check_page(&c, &driver, "dashboard reloaded", &mut problems).await;
    let served = c
        .execute(
            "return fetch(location.href).then((r) => r.headers.get('content-security-policy'))",
            vec![],
        )
        .await
        .unwrap();
    if served != json!(UI_CSP) {
        problems.push(format!("the page was served with CSP {served}"));
    }

    // Every kind of UI response carries the policy and the other headers: the shell, an asset,
    // a 304 of it, and an unknown asset's 404.
    let (_, app_js) = ui_headers(&server, "/assets/app.js", None);
    let tag = app_js
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone())
        .unwrap();
    for (path, inm, status) in [
        ("/", None, 200),
        ("/dashboard", None, 200),
        ("/assets/app.css", None, 200),
        ("/assets/app.js", None, 200),
        ("/assets/app.js", Some(tag.as_str()), 304),
        ("/assets/no-such-file.js", None, 404),
    ] {
        let (got, headers) = ui_headers(&server, path, inm);
        assert_eq!(got, status, "{path}");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        for (name, want) in [
            ("content-security-policy", UI_CSP),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
        ] {
            if get(name) != Some(want) {
                problems.push(format!("{path} ({status}): {name} is {:?}", get(name)));
            }
        }
    }

    c.close().await.unwrap();
    drop(server);
    drop(driver);
    assert!(
        problems.is_empty(),
        "span-derived text became markup or the UI broke its policy:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// One count per provider call: a framework span and the SDK's span of one call are both shown,
// the SDK's marked "same call as" the counted one, with a jump to it from the span panel.

const DUP_TRACE: &str = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";

/// An agent, a framework LLM span named with markup, and the SDK's span of the same call.
fn same_call_otlp(start_ns: u64) -> String {
    let s = |v: &str| json!({"stringValue": v});
    let i = |v: u64| json!({"intValue": v.to_string()});
    let kv = |k: &str, v: Value| json!({"key": k, "value": v});
    let at = |offset_ms: u64| (start_ns + offset_ms * 1_000_000).to_string();
    let usage = |a: &str, b: &str| vec![kv(a, i(1000)), kv(b, i(200))];
    let mut framework = vec![
        kv("llm.request.type", s("chat")),
        kv("gen_ai.system", s("openai")),
        kv("gen_ai.request.model", s("gpt-4o")),
    ];
    framework.extend(usage(
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
    ));
    let mut sdk = vec![
        kv("gen_ai.operation.name", s("chat")),
        kv("gen_ai.system", s("openai")),
        kv("gen_ai.request.model", s("gpt-4o")),
        kv("gen_ai.response.id", s("chatcmpl-ui")),
    ];
    sdk.extend(usage(
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
    ));
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": DUP_TRACE, "spanId": "00000000000000d1", "name": "agent",
         "startTimeUnixNano": at(0), "endTimeUnixNano": at(1000)},
        {"traceId": DUP_TRACE, "spanId": "00000000000000d2", "parentSpanId": "00000000000000d1",
         "name": XSS_IMG, "startTimeUnixNano": at(100), "endTimeUnixNano": at(900),
         "attributes": framework},
        {"traceId": DUP_TRACE, "spanId": "00000000000000d3", "parentSpanId": "00000000000000d2",
         "name": "chat gpt-4o", "startTimeUnixNano": at(120), "endTimeUnixNano": at(880),
         "attributes": sdk},
    ]}]}]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_recorded_twice_is_marked_in_the_waterfall_and_the_span_panel() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(600))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    // A UI page: its policy lets it post to the server (a bare API answer's does not).
    c.goto(&server.url("/")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert_eq!(
        post_otlp(&c, &same_call_otlp(now - 60_000_000_000)).await,
        json!(200)
    );
    c.goto(&server.url(&format!("/traces/{DUP_TRACE}")))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('.wf-row .badge.dup')",
        "the same-call marker",
    )
    .await;
    let marks = texts(&c, ".wf-row .badge.dup").await;
    // Shown as text: the framework span's name is markup, and stays characters.
    assert_eq!(marks, vec![format!("same call as {XSS_IMG}")]);
    assert_eq!(
        attr_of(
            &c,
            ".wf-row[data-span-id='00000000000000d3'] .badge.dup",
            "data-duplicate-of"
        )
        .await,
        "00000000000000d2"
    );
    // The trace's header counts the call once.
    let trace = api(&c, &format!("/api/v1/traces/{DUP_TRACE}")).await;
    assert_eq!(trace["trace"]["input_tokens"], 1000);
    click(&c, ".wf-row[data-span-id='00000000000000d3'] .sname").await;
    until(
        &c,
        "document.querySelector('.panel .dup-note')",
        "the span panel's same-call line",
    )
    .await;
    let note = text_of(&c, ".panel .dup-note").await;
    assert!(
        note.starts_with(&format!("Same call as {XSS_IMG} — counted once")),
        "{note}"
    );
    click(&c, ".panel .dup-jump").await;
    until(
        &c,
        "document.querySelector('.panel')?.dataset.spanId === '00000000000000d2' && document.querySelector('.wf-row.selected')?.dataset.spanId === '00000000000000d2'",
        "the jump to the counted span",
    )
    .await;
    assert!(c
        .execute(
            "return document.querySelector('.panel .dup-note') === null",
            vec![]
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap());
    let xss = c.execute("return window.__xss || 0", vec![]).await.unwrap();
    assert_eq!(xss, json!(0), "no markup ran");
    screenshot(&c, "same-call").await;
    c.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// No false $0 (issue #12 item 7): a cost that sums unpriced model calls says so on every page.

/// Trace ids: only an unpriced call; a priced and an unpriced call; no model call at all.
const UNPRICED_TRACE: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01";
const MIXED_TRACE: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f02";
const TOOLS_TRACE: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f03";
/// A model the built-in catalog does not know (a self-hosted fine-tune).
const UNKNOWN_MODEL: &str = "acme/ledger-ft-7b";

/// The three traces, an hour ago, priced by the built-in catalog like ingest prices them.
fn unpriced_traces(now: u64) -> Vec<Span> {
    use spanlens_core::{price_span, Cost, NanoUsd, PriceCatalog, Usage};
    let t0 = now - 3_600_000_000_000;
    let span = |trace: &str, id: u64, parent: Option<u64>, kind: SpanKind, at: u64| Span {
        trace_id: TraceId::from_hex(trace).unwrap(),
        span_id: SpanId(id.to_be_bytes()),
        parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
        name: format!("{} {id}", kind.as_str()),
        kind,
        start_time: Timestamp(at),
        end_time: Some(Timestamp(at + 500_000_000)),
        status: Status::Ok,
        user_id: Some("unpriced-user".into()),
        agent_name: Some("ledger-agent".into()),
        ..Default::default()
    };
    let call = |trace: &str, id: u64, at: u64, model: &str| {
        let mut s = span(trace, id, Some(1), SpanKind::Llm, at);
        s.request_model = Some(model.into());
        s.usage = Some(Usage {
            input_tokens: 1200,
            output_tokens: 300,
            total_tokens: 1500,
            ..Default::default()
        });
        price_span(&mut s, PriceCatalog::builtin());
        s
    };
    let mut out = Vec::new();
    for (k, trace) in [UNPRICED_TRACE, MIXED_TRACE, TOOLS_TRACE]
        .into_iter()
        .enumerate()
    {
        let at = t0 + k as u64 * 60_000_000_000;
        let mut root = span(trace, 1, None, SpanKind::Agent, at);
        root.session_id = Some(format!("unpriced-session-{k}"));
        out.push(root);
    }
    let at = |k: u64| t0 + k * 60_000_000_000 + 1_000_000;
    out.push(call(UNPRICED_TRACE, 2, at(0), UNKNOWN_MODEL));
    out.push(call(MIXED_TRACE, 2, at(1), UNKNOWN_MODEL));
    let mut priced = call(MIXED_TRACE, 3, at(1), UNKNOWN_MODEL);
    priced.request_model = Some("gpt-4o-mini".into());
    priced.unpriced_reason = None;
    priced.cost = Some(Cost::computed_total(NanoUsd(2_100_000)));
    out.push(priced);
    out.push(span(TOOLS_TRACE, 2, Some(1), SpanKind::Tool, at(2)));
    for s in &out[3..5] {
        assert!(
            s.unpriced_reason.is_some(),
            "the catalog must not know {UNKNOWN_MODEL}"
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpriced_calls_never_show_as_zero_dollars() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let store = spanlens_server::open_store(dir.path()).unwrap();
    write_by_trace(&store, unpriced_traces(now));
    let running = Running::start(local_config(dir.path()), Arc::new(store));
    let base = format!("http://{}", running.bound.http);
    let c = browser(&driver, &chromium).await;
    let zero = |t: &str| {
        let t = t.trim();
        t == "$0" || t == "$0.00" || t.starts_with("$0 ")
    };

    // Trace list: the marker, the priced part with it, and "–" where nothing was to price.
    c.goto(&format!("{base}/")).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('table.traces tbody tr').length === 3",
        "three traces",
    )
    .await;
    let cell = |id: &str| format!("tr[data-trace-id='{id}'] td.cost");
    let only = text_of(&c, &cell(UNPRICED_TRACE)).await;
    assert_eq!(only, "unpriced");
    assert!(attr_of(&c, &cell(UNPRICED_TRACE), "title")
        .await
        .contains("spanlens reprice"));
    assert_eq!(
        text_of(&c, &cell(MIXED_TRACE)).await,
        "$0.0021 + 1 unpriced"
    );
    assert_eq!(text_of(&c, &cell(TOOLS_TRACE)).await, "–");
    screenshot(&c, "unpriced-traces").await;

    // Trace header and the waterfall's call.
    c.goto(&format!("{base}/traces/{UNPRICED_TRACE}"))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelectorAll('.wf-row[data-span-id]').length === 2",
        "waterfall rows",
    )
    .await;
    let head = text_of(&c, "#trace-cost .stat-value").await;
    assert_eq!(head, "unpriced");
    assert!(attr_of(&c, "#trace-cost", "title")
        .await
        .contains("no price"));
    assert_eq!(text_of(&c, ".wf-row .wf-cost.unpriced").await, "unpriced");
    c.goto(&format!("{base}/traces/{MIXED_TRACE}"))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelectorAll('.wf-row[data-span-id]').length === 3",
        "waterfall rows",
    )
    .await;
    assert_eq!(
        text_of(&c, "#trace-cost .stat-value").await,
        "$0.0021 + 1 unpriced"
    );

    // Sessions: the list and a session's header.
    c.goto(&format!("{base}/sessions")).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('table.sessions tbody tr').length === 3",
        "sessions",
    )
    .await;
    let by_session = c
        .execute(
            "return Object.fromEntries([...document.querySelectorAll('table.sessions tbody tr')].map((tr) => [tr.cells[0].textContent, tr.cells[6].textContent]))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(by_session["unpriced-session-0"], "unpriced", "{by_session}");
    assert_eq!(by_session["unpriced-session-1"], "$0.0021 + 1 unpriced");
    assert_eq!(by_session["unpriced-session-2"], "–");
    c.goto(&format!("{base}/sessions/unpriced-session-0"))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('#session-cost .stat-value')",
        "session header",
    )
    .await;
    assert_eq!(text_of(&c, "#session-cost .stat-value").await, "unpriced");

    // Dashboard: the cost KPI and the cost charts name what they could not price.
    c.goto(&format!("{base}/dashboard?range=24h"))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('#kpi-cost') && document.querySelector('#unpriced-by-model')",
        "the cost KPI and its note",
    )
    .await;
    let kpi = text_of(&c, "#kpi-cost .kpi-value").await;
    assert!(!zero(&kpi), "{kpi}");
    assert_eq!(kpi, "$0.0021 + 2 unpriced");
    let model_note = text_of(&c, "#unpriced-by-model").await;
    assert!(
        model_note.contains(UNKNOWN_MODEL)
            && model_note.contains("2 calls")
            && model_note.contains("3,000 tokens"),
        "{model_note}"
    );
    assert!(text_of(&c, "#unpriced-by-user")
        .await
        .contains("unpriced-user"));
    assert!(text_of(&c, "#unpriced-by-agent")
        .await
        .contains("ledger-agent"));
    screenshot(&c, "unpriced-dashboard").await;

    // Nowhere above did a cost cell read as $0.
    for t in [&only, &head, &kpi] {
        assert!(!zero(t), "{t}");
    }
    c.close().await.unwrap();
    drop(running);
}

// ---------------------------------------------------------------------------------------------
// Nothing clipped at common laptop sizes (issue #13 item 6): every figure the UI draws is whole,
// labels never sit on top of each other, and the forecast's band covers only the forecast.

/// The viewports every page must fit, as CSS pixels (width, height).
const FIT_SIZES: [(u32, u32); 2] = [(1440, 900), (1280, 800)];

/// Makes the page's viewport (`innerWidth` × `innerHeight`) `w` × `h`: sets the window, then
/// corrects it by whatever the window keeps for itself (a resize lands asynchronously, so it
/// reads back and corrects until the viewport is right).
async fn set_viewport(c: &Client, w: u32, h: u32) {
    let (want_w, want_h) = (i64::from(w), i64::from(h));
    let (mut win_w, mut win_h) = (want_w, want_h);
    let mut seen = Value::Null;
    for _ in 0..20 {
        c.set_window_size(win_w as u32, win_h as u32).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        seen = c
            .execute("return [innerWidth, innerHeight]", vec![])
            .await
            .unwrap();
        let (iw, ih) = (seen[0].as_i64().unwrap(), seen[1].as_i64().unwrap());
        if (iw, ih) == (want_w, want_h) {
            return;
        }
        win_w += want_w - iw;
        win_h += want_h - ih;
    }
    panic!("could not make the viewport {w}x{h}: it stays {seen}");
}

/// Geometry helpers shared by the fit checks (prepended to their scripts).
const GEOMETRY_JS: &str = r#"
  // The text of an element without its <title> (an SVG label's tooltip).
  const ownText = (el) => [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.nodeValue).join('');
  // The box of an element's own text, as laid out on screen.
  const textBox = (el) => { const r = document.createRange(); r.selectNodeContents(el); return r.getBoundingClientRect(); };
  // Whether two screen boxes share more than `slack` px both ways.
  const boxesOverlap = (a, b, slack) =>
    Math.min(a.right, b.right) - Math.max(a.left, b.left) > slack && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > slack;
  // The four screen corners of an SVG element's box, rotation included.
  const corners = (el) => {
    const b = el.getBBox();
    const m = el.getScreenCTM();
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => new DOMPoint(x, y).matrixTransform(m));
  };
  // Separating-axis test of two convex quadrilaterals: do they overlap by more than `slack` px?
  const quadsOverlap = (p, q, slack) => {
    for (const poly of [p, q]) {
      for (let i = 0; i < 4; i++) {
        const a = poly[i];
        const b = poly[(i + 1) % 4];
        const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
        const nx = (a.y - b.y) / len;
        const ny = (b.x - a.x) / len;
        const pp = p.map((v) => v.x * nx + v.y * ny);
        const qq = q.map((v) => v.x * nx + v.y * ny);
        if (Math.min(Math.max(...pp), Math.max(...qq)) - Math.max(Math.min(...pp), Math.min(...qq)) <= slack) return false;
      }
    }
    return true;
  };
"#;

/// One demo trace of each name, plus the traces whose last time tick lands near the axis's
/// right end, where its label hangs leftwards towards the one before it: ticks on a 1-2-5
/// step, 3 to 6 of them over the duration, as the waterfall draws them.
async fn traces_to_fit(c: &Client) -> Vec<String> {
    let list = api(c, "/api/v1/traces?limit=200").await;
    let items: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["trace_id"] != BIG_TRACE)
        .collect();
    let mut names = std::collections::BTreeSet::new();
    let mut ids: Vec<String> = items
        .iter()
        .filter(|t| names.insert(t["name"].as_str().unwrap_or("").to_string()))
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect();
    // How close the last two labels come, as a share of the axis, when the last tick is in
    // the last eighth: small is crowded.
    let crowded = |d: f64| {
        (3..=6)
            .filter_map(|n| {
                let target = d / f64::from(n);
                let p = 10f64.powf(target.log10().floor());
                let step = [1.0, 2.0, 5.0, 10.0]
                    .iter()
                    .map(|m| m * p)
                    .find(|s| *s >= target)?;
                ((d / step).floor() * step / d > 0.88).then_some(step / d)
            })
            .min_by(f64::total_cmp)
    };
    let mut near_end: Vec<(f64, String)> = items
        .iter()
        .filter_map(|t| {
            let d = t["duration_ms"].as_f64()?;
            crowded(d).map(|gap| (gap, t["trace_id"].as_str().unwrap().to_string()))
        })
        .collect();
    near_end.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, id) in near_end.into_iter().take(4) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waterfall_shows_model_tokens_and_cost_whole_and_axis_labels_apart() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/")).await.unwrap();
    let ids = traces_to_fit(&c).await;
    assert!(ids.len() >= 5, "demo traces to check: {ids:?}");
    let check = format!(
        r#"{GEOMETRY_JS}
        return (async () => {{
        const tree = await fetch(`/api/v1/traces/${{arguments[0]}}/tree`).then((r) => r.json());
        const byId = new Map(tree.spans.map((s) => [s.span_id, s]));
        const out = [];
        let cells = 0;
        const whole = (row, css, what, want) => {{
          const el = row.querySelector(css);
          if (!el) {{ out.push(`${{row.dataset.spanId}}: no ${{what}} cell`); return; }}
          cells++;
          const r = el.getBoundingClientRect();
          const rowBox = row.getBoundingClientRect();
          if (el.scrollWidth > el.clientWidth || r.width === 0 || r.left < rowBox.left || r.right > rowBox.right + 0.5)
            out.push(`${{what}} "${{el.textContent}}" is cut: ${{el.scrollWidth}} px of text in ${{el.clientWidth}} px`);
          if (want !== undefined && el.textContent !== want) out.push(`${{what}} shows "${{el.textContent}}", not "${{want}}"`);
        }};
        for (const row of document.querySelectorAll('.wf-row[data-span-id]')) {{
          const s = byId.get(row.dataset.spanId);
          if (s.model) whole(row, '.wf-model', 'model', s.model);
          if (s.input_tokens != null) whole(row, '.wf-tokens', 'tokens');
          if (s.cost_usd) whole(row, '.wf-cost', 'cost');
        }}
        const head = document.querySelector('.wf-head').getBoundingClientRect();
        const ticks = [...document.querySelectorAll('.wf-axis .tick')].map((t) => [t.textContent, textBox(t)]).filter(([, b]) => b.width > 0);
        ticks.forEach(([label, box], i) => {{
          if (box.left < head.left || box.right > head.right) out.push(`time label "${{label}}" sticks out of the axis`);
          for (const [other, b] of ticks.slice(0, i)) if (boxesOverlap(box, b, 0)) out.push(`time labels "${{other}}" and "${{label}}" overlap`);
        }});
        return {{ out, cells, ticks: ticks.length }};
        }})();"#
    );
    for (w, h) in FIT_SIZES {
        set_viewport(&c, w, h).await;
        let mut cells = 0;
        let mut problems = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            c.goto(&server.url(&format!("/traces/{id}"))).await.unwrap();
            // The rows and the time axis, laid out (the axis can follow the rows by a frame).
            until(
                &c,
                "document.querySelectorAll('.wf-row[data-span-id]').length && \
                 [...document.querySelectorAll('.wf-axis .tick')] \
                   .filter((t) => t.getBoundingClientRect().width > 0).length >= 2",
                "waterfall rows and time axis",
            )
            .await;
            let r = c.execute(&check, vec![json!(id)]).await.unwrap();
            cells += r["cells"].as_u64().unwrap();
            assert!(r["ticks"].as_u64().unwrap() >= 2, "{id}: {r}");
            for p in r["out"].as_array().unwrap() {
                problems.push(format!("{w}x{h} trace {id}: {}", p.as_str().unwrap()));
            }
            if i == 0 {
                screenshot(&c, &format!("trace-{w}x{h}")).await;
            }
        }
        assert!(
            cells > 20,
            "{w}x{h}: only {cells} model/token/cost cells seen"
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
    c.close().await.unwrap();
    drop(server);
}
/// Waits until every chart card of the dashboard has drawn (an SVG or its empty note) and the
/// forecast has its chart.
async fn dashboard_drawn(c: &Client) {
    until(
        c,
        "document.querySelector('#forecast-chart svg') && [...document.querySelectorAll('.charts .card .chart')].every((e) => e.querySelector('svg, .empty-chart, table, .notice'))",
        "every dashboard chart",
    )
    .await;
    // A chart redraws once more when its card settles to its final width.
    c.execute(
        "return new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(ok, 200))))",
        vec![],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_text_fits_its_charts_and_tiles_fill_their_rows() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    let check = format!(
        r#"{GEOMETRY_JS}
        const out = [];
        let labels = 0;
        for (const svg of document.querySelectorAll('.chart-svg')) {{
          const box = svg.getBoundingClientRect();
          const title = svg.closest('.card').querySelector('h3').textContent;
          const texts = [...svg.querySelectorAll('text')].filter((t) => ownText(t));
          const quads = texts.map(corners);
          texts.forEach((t, i) => {{
            labels++;
            const label = ownText(t);
            if (quads[i].some((p) => p.x < box.left - 0.5 || p.x > box.right + 0.5 || p.y < box.top - 0.5 || p.y > box.bottom + 0.5))
              out.push(`${{title}}: "${{label}}" sticks out of its chart`);
            if (label.endsWith('…')) out.push(`${{title}}: "${{label}}" is cut short`);
            for (let j = 0; j < i; j++) if (quadsOverlap(quads[i], quads[j], 1.5)) out.push(`${{title}}: "${{label}}" overlaps "${{ownText(texts[j])}}"`);
          }});
        }}
        for (const legend of document.querySelectorAll('.chart-legend')) {{
          const title = legend.closest('.card').querySelector('h3').textContent;
          const keys = [...legend.querySelectorAll('.chart-key')];
          keys.forEach((k, i) => {{
            const s = k.querySelector('span');
            if (s.scrollWidth > s.clientWidth) out.push(`${{title}}: legend "${{s.textContent}}" is cut`);
            for (const other of keys.slice(0, i)) if (boxesOverlap(k.getBoundingClientRect(), other.getBoundingClientRect(), 0)) out.push(`${{title}}: legend keys overlap`);
          }});
        }}
        // The forecast's 95% band and bounds start at the first forecast day.
        const fc = document.querySelector('#forecast-chart');
        const fsvg = fc.querySelector('svg');
        const hit = fsvg.querySelector('.chart-hit').getBoundingClientRect();
        const n = Number(fsvg.dataset.columns);
        const days = Number(fc.dataset.forecastDays);
        const first = hit.left + (n - days + 0.5) * (hit.width / n);
        const band = fsvg.querySelector('.chart-ci');
        if (!band) out.push('forecast: no 95% band');
        else if (Math.abs(band.getBoundingClientRect().left - first) > 1) out.push(`forecast: the band starts at x=${{band.getBoundingClientRect().left}}, the first forecast day is at x=${{first}}`);
        for (const line of fsvg.querySelectorAll('path.chart-line[stroke-dasharray]'))
          if (line.getBoundingClientRect().left < first - 1) out.push(`forecast: a 95% bound starts at x=${{line.getBoundingClientRect().left}}, before the first forecast day at x=${{first}}`);
        // Tiles per row.
        const rows = new Map();
        for (const k of document.querySelectorAll('.kpis .kpi')) {{
          const top = Math.round(k.getBoundingClientRect().top);
          rows.set(top, (rows.get(top) || 0) + 1);
        }}
        return {{ out, labels, tiles: [...rows.values()] }};"#
    );
    for (w, h) in FIT_SIZES {
        set_viewport(&c, w, h).await;
        c.goto(&server.url("/dashboard?range=30d")).await.unwrap();
        dashboard_drawn(&c).await;
        screenshot(&c, &format!("dashboard-{w}x{h}")).await;
        let r = c.execute(&check, vec![]).await.unwrap();
        assert!(r["labels"].as_u64().unwrap() > 50, "{w}x{h}: {r}");
        let tiles: Vec<u64> = r["tiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(tiles.iter().sum::<u64>(), 8, "{w}x{h}: tiles {tiles:?}");
        let mut problems: Vec<String> = r["out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        if tiles.contains(&1) && tiles.iter().any(|n| *n > 1) {
            problems.push(format!("a tile alone on its row: tiles per row {tiles:?}"));
        }
        assert!(problems.is_empty(), "{w}x{h}:\n{}", problems.join("\n"));
        // The forecast, scrolled into view for its picture.
        c.execute(
            "document.querySelector('#forecast-chart').scrollIntoView({block: 'center'})",
            vec![],
        )
        .await
        .unwrap();
        screenshot(&c, &format!("dashboard-forecast-{w}x{h}")).await;
    }
    c.close().await.unwrap();
    drop(server);
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliability_rates_show_their_percentages() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    for (w, h) in FIT_SIZES {
        set_viewport(&c, w, h).await;
        c.goto(&server.url("/reliability?range=30d")).await.unwrap();
        until(
            &c,
            "document.querySelector('#rel-provider tbody tr') && document.querySelector('#rel-tool tbody tr')",
            "the recovery tables",
        )
        .await;
        screenshot(&c, &format!("reliability-{w}x{h}")).await;
        let cells = c
            .execute(
                r#"return [...document.querySelectorAll('.rel-grid tbody tr')].map((tr) => {
                     const td = tr.lastElementChild;
                     const num = td.querySelector('.rate-num') || td;
                     const card = td.closest('.card').getBoundingClientRect();
                     const box = num.getBoundingClientRect();
                     const whole = td.scrollWidth <= td.clientWidth && box.width > 0 && box.left >= card.left && box.right <= card.right;
                     return [tr.firstElementChild.textContent, td.textContent, whole];
                   });"#,
                vec![],
            )
            .await
            .unwrap();
        let cells = cells.as_array().unwrap();
        assert!(cells.len() >= 3, "{w}x{h}: {cells:?}");
        let pct = |s: &str| {
            let s = s.trim();
            s.strip_suffix('%')
                .map(|n| n.trim().parse::<f64>().is_ok())
                .unwrap_or(false)
        };
        for cell in cells {
            assert!(
                pct(cell[1].as_str().unwrap()) && cell[2] == json!(true),
                "{w}x{h}: the rate of {} reads {:?} (a percentage, shown whole, is expected)",
                cell[0],
                cell[1]
            );
        }
    }
    c.close().await.unwrap();
    drop(server);
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_placeholders_fit_their_inputs() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    // Every visible input's placeholder, measured in the input's own font, against the room
    // inside its padding (a number input also keeps room for its spin buttons).
    let check = r#"
        const ctx = document.createElement('canvas').getContext('2d');
        const out = [];
        let seen = 0;
        for (const input of document.querySelectorAll('input[placeholder]')) {
          if (!input.placeholder || !input.offsetParent) continue;
          seen++;
          const cs = getComputedStyle(input);
          ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
          const need = ctx.measureText(input.placeholder).width;
          const room = input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - (input.type === 'number' ? 15 : 0);
          if (need > room) out.push(`"${input.placeholder}" needs ${need.toFixed(0)} px, has ${room.toFixed(0)} px`);
        }
        return { out, seen };"#;
    c.goto(&server.url("/")).await.unwrap();
    let list = api(&c, "/api/v1/traces?limit=1").await;
    let trace = list["items"][0]["trace_id"].as_str().unwrap().to_string();
    let pages = [
        ("traces", "/".to_string(), "table.traces tbody tr"),
        (
            "sessions",
            "/sessions".to_string(),
            "table.sessions tbody tr",
        ),
        ("trace-search", format!("/traces/{trace}"), ".wf-row"),
    ];
    for (w, h) in FIT_SIZES {
        set_viewport(&c, w, h).await;
        for (name, path, ready) in &pages {
            c.goto(&server.url(path)).await.unwrap();
            until(&c, &format!("document.querySelector('{ready}')"), name).await;
            if *name == "traces" {
                screenshot(&c, &format!("traces-{w}x{h}")).await;
            }
            let r = c.execute(check, vec![]).await.unwrap();
            assert!(r["seen"].as_u64().unwrap() >= 1, "{name}: {r}");
            let problems = r["out"].as_array().unwrap();
            assert!(problems.is_empty(), "{w}x{h} {name}: {problems:?}");
        }
    }
    c.close().await.unwrap();
    drop(server);
}

/// Fills the sign-in form and submits it.
async fn sign_in_as(c: &Client, name: &str) {
    until(
        c,
        "document.querySelector('form.login input[name=password]')",
        "the sign-in form",
    )
    .await;
    c.execute(
        "document.querySelector('form.login input[name=name]').value = arguments[0]; \
         document.querySelector('form.login input[name=password]').value = 'a long passphrase'; \
         document.querySelector('form.login button[type=submit]').click();",
        vec![json!(name)],
    )
    .await
    .unwrap();
}

/// With `--auth required` the UI is reached by signing in: a page sends the browser to the
/// sign-in form and back, every API call of the pages goes through the HttpOnly session cookie
/// (no key in the page), an admin manages keys and people on the Settings page, a viewer does
/// not see it, and signing out ends it.
#[tokio::test]
async fn signing_in_is_the_way_in_and_admins_manage_the_project() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| {
        Server::start_with(100, |store, config| {
            config.auth = spanlens_server::auth::AuthMode::Required;
            let d = spanlens_auth::Directory::new(store.clone());
            let rt = tokio::runtime::Runtime::new().unwrap();
            for (name, role) in [
                ("root", spanlens_auth::Role::Admin),
                ("vic", spanlens_auth::Role::Viewer),
            ] {
                rt.block_on(d.create_account(name, "a long passphrase", DEFAULT_PROJECT, role))
                    .unwrap();
            }
        })
    })
    .await
    .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/sessions")).await.unwrap();
    // The form, not only the address: the page is drawn after the redirect.
    until(
        &c,
        "location.pathname === '/login' && document.querySelector('form.login input[name=password]') !== null",
        "the way to the sign-in page",
    )
    .await;
    assert_eq!(
        c.execute("return location.search", vec![]).await.unwrap(),
        json!("?next=%2Fsessions")
    );
    // A wrong password is said so, on the page.
    c.execute(
        "document.querySelector('form.login input[name=name]').value = 'root'; \
         document.querySelector('form.login input[name=password]').value = 'not the password'; \
         document.querySelector('form.login button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        "document.querySelector('.login-message')?.innerText.includes('wrong name or password')",
        "the refusal",
    )
    .await;
    sign_in_as(&c, "root").await;
    until(&c, "location.pathname === '/sessions' && document.querySelectorAll('table.sessions tbody tr').length > 0", "the sessions page, signed in").await;
    // The session is in an HttpOnly cookie: the page cannot read it, and holds no key.
    let cookie = c.execute("return document.cookie", vec![]).await.unwrap();
    assert!(
        !cookie.as_str().unwrap().contains("spanlens_session"),
        "{cookie}"
    );
    let stored = c
        .execute("return JSON.stringify(localStorage)", vec![])
        .await
        .unwrap();
    assert!(!stored.as_str().unwrap().contains("slk_"), "{stored}");
    assert_eq!(text_of(&c, "#account .muted").await, "root");
    // Settings: make a key (shown once), add a person.
    until(
        &c,
        "!document.querySelector('nav a[data-nav=admin]').hidden",
        "the Settings link",
    )
    .await;
    click(&c, "nav a[data-nav=admin]").await;
    until(
        &c,
        "document.querySelector('.admin-keys form')",
        "the keys form",
    )
    .await;
    c.execute(
        "document.querySelector('.admin-keys input[name=key-name]').value = 'checkout service'; \
         document.querySelector('.admin-keys select[name=key-scope]').value = 'ingest'; \
         document.querySelector('.admin-keys button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    let secret = until(
        &c,
        "document.querySelector('.new-secret code.secret')?.innerText",
        "the new key",
    )
    .await;
    assert!(secret.as_str().unwrap().starts_with("slk_"), "{secret}");
    let rows = texts(&c, ".admin-keys tbody tr").await;
    assert!(
        rows.iter()
            .any(|r| r.contains("checkout service") && r.contains("ingest")),
        "{rows:?}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.contains(&secret.as_str().unwrap()[21..])),
        "the list shows no secret"
    );
    c.execute(
        "document.querySelector('.admin-people input[name=person-name]').value = 'dora'; \
         document.querySelector('.admin-people input[name=person-password]').value = 'a long passphrase'; \
         document.querySelector('.admin-people button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        "document.querySelectorAll('.admin-people tbody tr').length === 3",
        "the new person",
    )
    .await;
    // The audit log on the same page names who made the key.
    click(&c, "nav a[data-nav=admin]").await;
    until(&c, "[...document.querySelectorAll('.admin-audit tbody tr')].some(r => r.innerText.includes('key.create') && r.innerText.includes('account root'))", "the audit entry of the new key").await;
    // Forwarding: a destination saved on the page shows in the table with its counters; its
    // secret comes back masked.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let destinations = json!([{"name": "team-langfuse", "kind": "langfuse", "endpoint": endpoint,
        "public_key": "pk-lf-1", "secret_key": "sk-lf-very-secret"}])
    .to_string();
    c.execute(
        "document.querySelector('.admin-forwarding textarea[name=destinations]').value = arguments[0]; \
         document.querySelector('.admin-forwarding button[type=submit]').click();",
        vec![json!(destinations)],
    )
    .await
    .unwrap();
    until(
        &c,
        "[...document.querySelectorAll('.admin-forwarding tbody tr')].some(r => r.innerText.includes('team-langfuse') && r.innerText.includes('project'))",
        "the saved destination",
    )
    .await;
    let editor = c
        .execute(
            "return document.querySelector('.admin-forwarding textarea[name=destinations]').value",
            vec![],
        )
        .await
        .unwrap();
    let editor = editor.as_str().unwrap();
    assert!(
        editor.contains("********") && !editor.contains("sk-lf-very-secret"),
        "{editor}"
    );
    // Sign out: the next call is refused and the page goes back to the sign-in form.
    click(&c, "#account button").await;
    until(
        &c,
        "location.pathname === '/login'",
        "the sign-in page after signing out",
    )
    .await;
    assert_eq!(
        api(&c, "/api/v1/traces").await["error"]
            .as_str()
            .map(|e| e.contains("API key or a sign-in")),
        Some(true)
    );
    // A viewer reads every page through the session, but has no Settings, and the API
    // refuses what it would show.
    sign_in_as(&c, "vic").await;
    until(
        &c,
        "location.pathname === '/' && document.querySelectorAll('table.grid tbody tr').length > 0",
        "the trace list for a viewer",
    )
    .await;
    assert_eq!(
        c.execute(
            "return document.querySelector('nav a[data-nav=admin]').hidden",
            vec![]
        )
        .await
        .unwrap(),
        json!(true)
    );
    let trace = api(&c, "/api/v1/traces?limit=1").await["items"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (page, ready) in [
        (
            "/sessions",
            "document.querySelectorAll('table.sessions tbody tr').length > 0",
        ),
        (
            "/dashboard",
            "document.querySelectorAll('.kpis .kpi-value, .chart').length > 0",
        ),
        ("/reliability", "document.querySelector('#app h1')"),
        ("/live", "document.querySelector('.live-state.on')"),
        (
            &format!("/traces/{trace}"),
            "document.querySelectorAll('.wf-row').length > 0",
        ),
    ] {
        visit(&c, page).await;
        until(&c, ready, page).await;
        let errors = texts(&c, ".notice.error").await;
        assert!(
            errors.is_empty(),
            "{page} signed in as a viewer: {errors:?}"
        );
    }
    let keys = api(&c, "/api/v1/keys").await;
    assert!(
        keys["error"]
            .as_str()
            .unwrap()
            .contains("no role allowing admin"),
        "{keys}"
    );
    c.close().await.unwrap();
}

/// Saved views: the trace list as it is (filters, sort, fewer columns) saved under a name,
/// picked from the list, opened by its short link `/?view=ID` (filters and columns back), saved
/// over, and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_views_keep_filters_sort_and_columns_and_open_by_link() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/?status=error&sort=cost&order=desc"))
        .await
        .unwrap();
    until(&c, "document.querySelector('.views-bar select[name=view]') && document.querySelector('table.traces tbody tr')", "the list and the views bar").await;
    let failed = texts(&c, "table.traces tbody tr").await.len();
    click(&c, ".views-bar button[name=save-view]").await;
    c.execute(
        "document.querySelector('.views-bar input[name=view-name]').value = 'Costly <b>failures</b>'; \
         for (const b of document.querySelectorAll('.views-bar input[name=view-col]')) \
           b.checked = ['name', 'cost', 'status'].includes(b.value); \
         document.querySelector('.views-bar .view-editor button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    until(&c, "new URLSearchParams(location.search).get('view') && document.querySelector('table.traces tbody tr')", "the saved view opened").await;
    let heads = texts(&c, "table.traces thead th").await;
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert!(
        heads[0].starts_with("Name")
            && heads[1].starts_with("Cost")
            && heads[2].starts_with("Status"),
        "{heads:?}"
    );
    let id = c
        .execute(
            "return new URLSearchParams(location.search).get('view')",
            vec![],
        )
        .await
        .unwrap();
    let id = id.as_str().unwrap().to_string();
    // The name is text, not markup.
    let option = text_of(&c, ".views-bar select[name=view] option:checked").await;
    assert_eq!(option, "Costly <b>failures</b>");
    assert_eq!(
        c.execute(
            "return document.querySelectorAll('.views-bar b').length",
            vec![]
        )
        .await
        .unwrap(),
        json!(0)
    );
    // The short link brings back filters, sort and columns.
    c.goto(&server.url(&format!("/?view={id}"))).await.unwrap();
    until(&c, "new URLSearchParams(location.search).get('status') === 'error' && document.querySelector('table.traces tbody tr')", "the view's own query").await;
    let q = c.execute("return location.search", vec![]).await.unwrap();
    let q = q.as_str().unwrap();
    assert!(
        q.contains("sort=cost") && q.contains("cols=name%2Ccost%2Cstatus"),
        "{q}"
    );
    assert_eq!(texts(&c, "table.traces tbody tr").await.len(), failed);
    assert_eq!(texts(&c, "table.traces thead th").await.len(), 3);
    // Saved over with every column, then deleted.
    click(&c, ".views-bar button[name=save-view]").await;
    c.execute(
        "for (const b of document.querySelectorAll('.views-bar input[name=view-col]')) b.checked = true; \
         document.querySelector('.views-bar .view-editor button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    until(&c, "!new URLSearchParams(location.search).get('cols') && document.querySelectorAll('table.traces thead th').length === 8", "every column again").await;
    let saved = api(&c, "/api/v1/views").await;
    assert_eq!(
        saved["views"].as_array().unwrap().len(),
        1,
        "saved over, not added: {saved}"
    );
    click(&c, ".views-bar button[name=delete-view]").await;
    until(&c, "!new URLSearchParams(location.search).get('view') && document.querySelector('.views-bar select[name=view] option').textContent === 'No saved views'", "the view gone").await;
    c.close().await.unwrap();
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// The agent graph (issue #19 item 1): a trace's graph beside its waterfall, a workflow's graph.

/// Pairs of text elements of the graph drawing in `scope` whose boxes (`getBBox`, in the
/// drawing's coordinates) intersect, and texts that stick out of their node's box; with the
/// number of texts and nodes seen.
async fn graph_text_overlaps(c: &Client, scope: &str) -> Value {
    c.execute(
        r#"
        const svg = document.querySelector(arguments[0] + ' svg.graph-svg');
        const texts = [...svg.querySelectorAll('text')].map((t) => [t, t.getBBox()]);
        const bad = [];
        for (let i = 0; i < texts.length; i++) {
          const [ta, a] = texts[i];
          const g = ta.closest('.graph-node');
          if (g) {
            const r = g.querySelector('rect.graph-box').getBBox();
            if (a.x < r.x || a.y < r.y || a.x + a.width > r.x + r.width + 0.5 || a.y + a.height > r.y + r.height + 0.5)
              bad.push(`${ta.textContent} sticks out of its box`);
          }
          for (let j = i + 1; j < texts.length; j++) {
            const [tb, b] = texts[j];
            if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height)
              bad.push(`${ta.textContent} overlaps ${tb.textContent}`);
          }
        }
        return { bad, texts: texts.length, nodes: svg.querySelectorAll('.graph-node').length };"#,
        vec![json!(scope)],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_graph_filters_the_waterfall_and_its_labels_never_overlap() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(600))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/")).await.unwrap();
    until(
        &c,
        "document.querySelectorAll('table.traces tbody tr').length",
        "trace rows",
    )
    .await;
    // A support ticket: a pipeline, agents, handoffs, tools and two models.
    let list = api(&c, "/api/v1/traces?name=support.handle_ticket&limit=1").await;
    let trace = list["items"][0]["trace_id"].as_str().unwrap().to_string();
    let graph = api(&c, &format!("/api/v1/traces/{trace}/graph")).await;
    let nodes = graph["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 5, "{graph}");
    assert!(
        graph["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["handoff"] == true),
        "{graph}"
    );

    visit(&c, &format!("/traces/{trace}")).await;
    until(
        &c,
        "document.querySelectorAll('.wf-row').length",
        "waterfall rows",
    )
    .await;
    let all_rows = c
        .execute("return document.querySelectorAll('.wf-row').length", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    click(&c, "#graph-toggle").await;
    until(
        &c,
        &format!(
            "document.querySelectorAll('#trace-graph .graph-node').length === {}",
            nodes.len()
        ),
        "the trace's graph",
    )
    .await;
    // Every node of the answer is drawn with its name.
    for n in nodes {
        let label = texts(
            &c,
            &format!(
                "#trace-graph .graph-node[data-node-id={}] .graph-label",
                json!(n["id"])
            ),
        )
        .await;
        assert_eq!(label.len(), 1, "{n}");
        // The kind's icon, then the name (cut with "…" only when it does not fit its box).
        let shown = label[0].split_once(' ').unwrap().1.trim_end_matches('…');
        assert!(
            n["label"].as_str().unwrap().starts_with(shown),
            "{shown:?} is not {n}"
        );
    }
    let seen = graph_text_overlaps(&c, "#trace-graph").await;
    assert_eq!(seen["bad"], json!([]), "{seen}");
    assert!(
        seen["texts"].as_u64().unwrap() >= 2 * nodes.len() as u64,
        "{seen}"
    );
    screenshot(&c, "trace-graph").await;

    // A click on the model with the most calls leaves only its spans in the waterfall.
    let model = nodes
        .iter()
        .filter(|n| n["kind"] == "model")
        .max_by_key(|n| n["span_ids"].as_array().unwrap().len())
        .unwrap();
    let ids: Vec<&str> = model["span_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!((ids.len() as u64) < all_rows);
    click(
        &c,
        &format!(
            "#trace-graph .graph-node[data-node-id={}]",
            json!(model["id"])
        ),
    )
    .await;
    until(
        &c,
        &format!(
            "document.querySelectorAll('.wf-row').length === {}",
            ids.len()
        ),
        "the waterfall filtered to the node's spans",
    )
    .await;
    let rows = c
        .execute(
            "return [...document.querySelectorAll('.wf-row')].map((r) => r.dataset.spanId)",
            vec![],
        )
        .await
        .unwrap();
    let mut rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    rows.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(rows, want);
    let bar = text_of(&c, "#graph-filter").await;
    assert!(bar.contains(model["label"].as_str().unwrap()), "{bar}");
    assert!(
        c.execute(&format!("return document.querySelector('#trace-graph .graph-node[data-node-id={}]').classList.contains('selected')", json!(model["id"])), vec![])
            .await
            .unwrap()
            .as_bool()
            .unwrap()
    );
    screenshot(&c, "trace-graph-filtered").await;
    click(&c, "#graph-clear").await;
    until(
        &c,
        &format!("document.querySelectorAll('.wf-row').length === {all_rows}"),
        "every row back",
    )
    .await;

    // The workflow graph of every demo workflow over 30 days: many nodes, still no overlap.
    visit(&c, "/graph?range=30d").await;
    until(
        &c,
        "document.querySelectorAll('#workflow-graph .graph-node').length",
        "the workflow graph",
    )
    .await;
    let seen = graph_text_overlaps(&c, "#workflow-graph").await;
    assert_eq!(seen["bad"], json!([]), "{seen}");
    assert!(seen["nodes"].as_u64().unwrap() >= 15, "{seen}");
    screenshot(&c, "workflow-graph-all").await;

    // One workflow: the summary says how many traces were read, and a click on an agent opens
    // the trace list filtered to the workflow and that agent.
    visit(&c, "/graph?name=support.handle_ticket&range=30d").await;
    until(
        &c,
        "document.querySelector('#graph-summary')?.textContent.includes('read of')",
        "the graph's summary",
    )
    .await;
    let summary = text_of(&c, "#graph-summary").await;
    let from = (std::time::SystemTime::now() - Duration::from_secs(30 * 86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let wf = api(
        &c,
        &format!("/api/v1/graph?name=support.handle_ticket&from={from}"),
    )
    .await;
    assert!(
        summary.starts_with(&format!(
            "{} traces read of {} matching",
            wf["used_traces"], wf["matched_traces"]
        )),
        "{summary} vs {}",
        wf["matched_traces"]
    );
    until(
        &c,
        "document.querySelector('#workflow-graph .graph-node[data-kind=agent]')",
        "an agent in the workflow graph",
    )
    .await;
    let agent = attr_of(
        &c,
        "#workflow-graph .graph-node[data-kind=agent]",
        "data-node-id",
    )
    .await;
    let agent = agent.strip_prefix("agent:").unwrap().to_string();
    click(&c, "#workflow-graph .graph-node[data-kind=agent]").await;
    until(&c, "location.pathname === '/' && document.querySelector('.results')?.dataset.state === 'ready'", "the trace list").await;
    let q = c.execute("return location.search", vec![]).await.unwrap();
    let q = q.as_str().unwrap();
    assert!(
        q.contains("name=support.handle_ticket") && q.contains(&format!("q={agent}")),
        "{q}"
    );
    let listed = c
        .execute(
            "return document.querySelectorAll('table.traces tbody tr').length",
            vec![],
        )
        .await
        .unwrap();
    assert!(listed.as_u64().unwrap() > 0, "no trace listed for {q}");
    c.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Comparing traces: two runs of a workflow side by side.

/// An earlier and a later run of one workflow, for the compare page.
const CMP_OLD: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c301";
const CMP_NEW: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c302";

/// A run of `cmp-workflow`: a root of `root_ms`, a model call answering `answer`, a tool whose
/// name and output are markup, and `searches` search calls.
fn cmp_run(
    trace: &str,
    start_ns: u64,
    root_ms: u64,
    answer: &str,
    tool_out: &str,
    searches: u64,
) -> Value {
    let s = |v: &str| json!({"stringValue": v});
    let kv = |k: &str, v: Value| json!({"key": k, "value": v});
    let at = |offset_ms: u64| (start_ns + offset_ms * 1_000_000).to_string();
    let sid = |i: u64| format!("{}{i:02x}", &trace[..14]);
    let mut spans = vec![
        json!({"traceId": trace, "spanId": sid(1), "name": "cmp-workflow",
               "startTimeUnixNano": at(0), "endTimeUnixNano": at(root_ms)}),
        json!({"traceId": trace, "spanId": sid(2), "parentSpanId": sid(1), "name": "plan",
               "startTimeUnixNano": at(10), "endTimeUnixNano": at(400),
               "attributes": [kv("gen_ai.operation.name", s("chat")), kv("gen_ai.request.model", s("gpt-4o")),
                   kv("gen_ai.usage.input_tokens", json!({"intValue": "1000"})),
                   kv("gen_ai.usage.output_tokens", json!({"intValue": "100"})),
                   kv("output.value", s(answer))]}),
        json!({"traceId": trace, "spanId": sid(3), "parentSpanId": sid(1), "name": XSS_IMG,
               "startTimeUnixNano": at(500), "endTimeUnixNano": at(600),
               "attributes": [kv("output.value", s(tool_out))]}),
    ];
    for i in 0..searches {
        spans.push(
            json!({"traceId": trace, "spanId": sid(4 + i), "parentSpanId": sid(1), "name": "search",
            "startTimeUnixNano": at(700 + 50 * i), "endTimeUnixNano": at(720 + 50 * i)}),
        );
    }
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_page_aligns_two_runs_with_deltas_and_an_output_diff() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(600))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // The earlier run took 1.2 s more, said "almost", and searched twice.
    let old = cmp_run(
        CMP_OLD,
        now - 120_000_000_000,
        2000,
        "The answer is almost ready.",
        &format!("{XSS_IMG} said hello"),
        2,
    );
    let new = cmp_run(
        CMP_NEW,
        now - 60_000_000_000,
        800,
        "The answer is ready.",
        &format!("{XSS_IMG} said hi"),
        1,
    );
    assert_eq!(post_otlp(&c, &old.to_string()).await, json!(200));
    assert_eq!(post_otlp(&c, &new.to_string()).await, json!(200));

    // From the later run's page, "Compare with previous run".
    c.goto(&server.url(&format!("/traces/{CMP_NEW}")))
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('#compare-previous')",
        "the compare button",
    )
    .await;
    record(&c).await;
    click(&c, "#compare-previous").await;
    until(
        &c,
        "document.querySelectorAll('#compare-rows tbody tr').length === 5",
        "the aligned rows",
    )
    .await;
    let here = c.current_url().await.unwrap();
    assert_eq!(here.path(), "/compare");
    assert_eq!(here.query(), Some(&*format!("a={CMP_NEW}&b=previous")));
    assert!(text_of(&c, "#compare-b")
        .await
        .contains("(A's previous run)"));

    // The rows: both runs' spans side by side, the second search only in B (the earlier run).
    let layout = c
        .execute(
            "return [...document.querySelectorAll('#compare-rows tbody tr')].map(r => \
             `${r.dataset.depth} ${r.querySelector('.cmp-name').textContent} ${r.classList.contains('only-a') ? 'A-' : r.classList.contains('only-b') ? '-B' : 'AB'}`)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        layout,
        json!([
            "0 cmp-workflow AB",
            "1 plan AB",
            format!("1 {XSS_IMG} AB"),
            "1 search AB",
            "1 search #2 -B"
        ])
    );
    // A delta is shown: B's root took 1.20 s more, marked as worse.
    let root_dt = text_of(&c, "#compare-rows tbody tr:first-child .cmp-dtime").await;
    assert_eq!(root_dt, "+1.20 s");
    assert_eq!(
        attr_of(
            &c,
            "#compare-rows tbody tr:first-child .cmp-dtime .delta",
            "class"
        )
        .await,
        "delta worse"
    );
    let totals = text_of(&c, "#compare-total-duration").await;
    assert!(
        totals.contains("800 ms") && totals.contains("2.00 s") && totals.contains("+1.20 s"),
        "{totals}"
    );
    let rows_kpi = text_of(&c, "#compare-total-rows").await;
    assert!(
        rows_kpi.contains("4 matched") && rows_kpi.contains("1 only in B"),
        "{rows_kpi}"
    );

    // The first changed output is selected: B inserted a word.
    until(
        &c,
        "document.querySelector('#compare-diff-text ins')",
        "the output diff",
    )
    .await;
    assert_eq!(
        texts(&c, "#compare-diff-text ins").await,
        vec!["almost ".to_string()]
    );
    assert_eq!(
        text_of(&c, "#compare-diff-text").await,
        "The answer is almost ready."
    );
    assert!(attr_of(&c, "#compare-rows tbody tr:nth-child(2)", "class")
        .await
        .contains("selected"));

    // The tool whose name and output are markup: shown as text, nothing ran.
    click(&c, "#compare-rows tbody tr:nth-child(3)").await;
    until(
        &c,
        "document.querySelector('#compare-diff-text del')",
        "the tool's output diff",
    )
    .await;
    assert_eq!(
        text_of(&c, "#compare-diff-text").await,
        format!("{XSS_IMG} said hihello")
    );
    assert_eq!(
        texts(&c, "#compare-diff-text del").await,
        vec!["hi".to_string()]
    );
    let h3 = c
        .execute(
            "return document.querySelector('#compare-diff h3').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(h3, json!(format!("Output: {XSS_IMG}")));
    let imgs = c
        .execute(
            "return document.querySelectorAll('#app img, #app [onerror]').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(imgs, json!(0), "span data became markup");
    let xss = c.execute("return window.__xss || 0", vec![]).await.unwrap();
    assert_eq!(xss, json!(0), "no markup ran");
    let csp = c.execute("return window.__csp", vec![]).await.unwrap();
    assert_eq!(csp, json!([]), "CSP violations");
    screenshot(&c, "compare").await;

    // A trace with no earlier run says so instead of comparing.
    visit(&c, &format!("/compare?a={CMP_OLD}&b=previous")).await;
    until(
        &c,
        "document.querySelector('.notice.error')",
        "the no-previous-run notice",
    )
    .await;
    assert!(text_of(&c, ".notice.error")
        .await
        .contains("no trace named \"cmp-workflow\""));
    c.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Full-text search (issue #19 item 3).

/// The list's full-text box finds a trace by words of a span's input, shows the span and a
/// snippet with the words marked (span text stays text: a tag in it is not markup), and the
/// hit opens the trace at that span with the words marked in its panel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_text_search_marks_the_words_in_the_list_and_the_span_panel() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let trace = "5ea4c05ea4c05ea4c05ea4c05ea4c001";
    let body = json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": "5ea4c00000000001", "name": "support run",
         "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 2_000_000).to_string()},
        {"traceId": trace, "spanId": "5ea4c00000000002", "parentSpanId": "5ea4c00000000001",
         "name": "answer", "startTimeUnixNano": (now + 1_000).to_string(),
         "endTimeUnixNano": (now + 1_000_000).to_string(),
         "attributes": [{"key": "input.value", "value": {"stringValue":
            "Please find the <img src=x> Zebracorn refund for order 42."}}]}
    ]}]}]});
    assert_eq!(post_otlp(&c, &body.to_string()).await, json!(200));
    c.goto(&server.url("/")).await.unwrap();
    until(&c, "document.querySelector('input[name=q]') && document.querySelector('table.traces tbody tr')", "the list").await;
    c.execute(
        "const q = document.querySelector('form.filters input[name=q]'); q.value = 'zebracorn REFUND'; \
         q.form.requestSubmit();",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        "document.querySelector('.search-hit mark.hit')",
        "a marked snippet",
    )
    .await;
    assert_eq!(texts(&c, "table.traces tbody tr").await.len(), 1);
    assert_eq!(
        texts(&c, ".search-hit mark.hit").await,
        ["Zebracorn", "refund"]
    );
    let hit = text_of(&c, ".search-hit").await;
    assert!(
        hit.starts_with("answer: ") && hit.contains("<img src=x>"),
        "{hit}"
    );
    assert_eq!(
        c.execute(
            "return document.querySelectorAll('table.traces img').length",
            vec![]
        )
        .await
        .unwrap(),
        json!(0),
        "span text is not markup"
    );
    click(&c, ".search-hit a").await;
    until(
        &c,
        "document.querySelector('.panel-body mark.hit')",
        "the words marked in the span panel",
    )
    .await;
    let marks = texts(&c, ".panel-body mark.hit").await;
    assert!(
        marks.iter().any(|m| m == "Zebracorn") && marks.iter().any(|m| m == "refund"),
        "{marks:?}"
    );
    let q = c.execute("return location.search", vec![]).await.unwrap();
    assert!(q.as_str().unwrap().contains("span=5ea4c00000000002"), "{q}");
    c.close().await.unwrap();
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// Replay (issue #19 item 7): an LLM span's call edited and sent again from its panel, against
// the repository's Python mock LLM; the result beside the original.

/// The trace holding the LLM span replayed.
const REPLAY_TRACE: &str = "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e01";
const REPLAY_SPAN: &str = "00000000000000e1";
/// The fake key the endpoint is configured with: the page must never see it.
const UI_REPLAY_KEY: &str = "sk-UI-REPLAY-FAKE-KEY-41d2";
/// The span's user message: markup, which must stay characters in the editor.
const REPLAY_USER: &str = "<img src=x onerror=\"window.__xss=1\"> What is the capital of France?";

/// Starts tests/e2e/mock_llm.py once; its base URL. It stops when this process exits (its
/// standard input closes).
fn replay_mock_url() -> String {
    static MOCK: std::sync::OnceLock<(u16, std::sync::Mutex<(Child, std::process::ChildStdin)>)> =
        std::sync::OnceLock::new();
    let (port, _) = MOCK.get_or_init(|| {
        use std::io::BufRead;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e");
        let start = "import sys\nsys.path.insert(0, sys.argv[1])\nimport mock_llm\nm = mock_llm.MockLLM().start()\nprint(m.port, flush=True)\nsys.stdin.read()\n";
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(start)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("the replay test needs python3 for {dir}/mock_llm.py: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the mock LLM did not start: {line:?}"));
        let stdin = child.stdin.take().unwrap();
        (port, std::sync::Mutex::new((child, stdin)))
    });
    format!("http://127.0.0.1:{port}")
}

/// A trace of one LLM call (gpt-4o-mini, a system and a user message, temperature 0.7),
/// priced like ingest prices it.
fn replay_trace(now: u64) -> Vec<Span> {
    let start = now - 120_000_000_000;
    let mut params = spanlens_core::Attributes::new();
    params.insert("temperature".into(), json!(0.7));
    let msg = |role: &str, content: &str| spanlens_core::Message {
        role: Some(role.into()),
        content: Some(content.into()),
        ..Default::default()
    };
    let mut s = Span {
        trace_id: TraceId::from_hex(REPLAY_TRACE).unwrap(),
        span_id: SpanId::from_hex(REPLAY_SPAN).unwrap(),
        name: "chat gpt-4o-mini".into(),
        kind: SpanKind::Llm,
        start_time: Timestamp(start),
        end_time: Some(Timestamp(start + 1_250_000_000)),
        status: Status::Ok,
        provider: Some("openai".into()),
        request_model: Some("gpt-4o-mini".into()),
        response_model: Some("gpt-4o-mini-2024-07-18".into()),
        model_parameters: params,
        usage: Some(spanlens_core::Usage {
            input_tokens: 1000,
            output_tokens: 50,
            total_tokens: 1050,
            ..Default::default()
        }),
        input_messages: vec![
            msg("system", "You answer in one sentence."),
            msg("user", REPLAY_USER),
        ],
        output_messages: vec![msg("assistant", "Paris is the capital of France.")],
        ..Span::default()
    };
    spanlens_core::price_span(&mut s, spanlens_core::PriceCatalog::builtin());
    vec![s]
}

/// A server on demo data plus the replay trace; with `replay`, one OpenAI-compatible endpoint
/// on the mock, its key from a fake variable.
async fn replay_server(replay: bool) -> Server {
    let mock = replay_mock_url();
    tokio::task::spawn_blocking(move || {
        Server::start_with(600, move |store, config| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            write_by_trace(&**store, replay_trace(now));
            if replay {
                let file = format!(
                    "[[endpoint]]\nname = \"mock-openai\"\nkind = \"openai\"\nbase_url = \"{mock}/v1\"\napi_key_env = \"UI_REPLAY_KEY\"\nmodels = [\"gpt-4o\", \"gpt-4o-mini\"]\n"
                );
                config.replay = Some(
                    spanlens_server::replay::ReplayConfig::from_toml_with(&file, &|v| {
                        (v == "UI_REPLAY_KEY").then(|| UI_REPLAY_KEY.to_string())
                    })
                    .unwrap(),
                );
            }
        })
    })
    .await
    .unwrap()
}

/// Opens the replay span's panel and its Replay editor (or what stands in its place).
async fn open_replay(c: &Client, server: &Server) {
    c.goto(&server.url(&format!("/traces/{REPLAY_TRACE}")))
        .await
        .unwrap();
    let row = format!(".wf-row[data-span-id='{REPLAY_SPAN}'] .sname");
    until(
        c,
        &format!("document.querySelector(\"{row}\")"),
        "the LLM span's row",
    )
    .await;
    click(c, &row).await;
    until(
        c,
        "document.querySelector('.panel .replay-open')",
        "the Replay button",
    )
    .await;
    click(c, ".panel .replay-open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_span_is_replayed_from_its_panel_and_shown_beside_the_original() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = replay_server(true).await;
    let c = browser(&driver, &chromium).await;
    open_replay(&c, &server).await;
    until(
        &c,
        "document.querySelectorAll('.panel .replay-msg').length === 2",
        "the editor's messages",
    )
    .await;
    // The span's messages, as text; the endpoint offering its model; its temperature.
    let values = c
        .execute(
            "return [...document.querySelectorAll('.panel .replay-msg')].map(r => [r.querySelector('.replay-role').value, r.querySelector('.replay-content').value])",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        values,
        json!([
            ["system", "You answer in one sentence."],
            ["user", REPLAY_USER]
        ])
    );
    let picked = c
        .execute(
            "return [document.querySelector('.panel .replay-endpoint').value, document.querySelector('.panel .replay-model').value, document.querySelector('.panel .replay-temperature').value]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(picked, json!(["mock-openai", "gpt-4o-mini", "0.7"]));

    // A provider failure says what failed (the mock fails a message holding FAIL_500).
    let text = c
        .find(Locator::Css(
            ".panel .replay-msg:nth-child(2) .replay-content",
        ))
        .await
        .unwrap();
    text.clear().await.unwrap();
    text.send_keys("please FAIL_500").await.unwrap();
    click(&c, ".panel .replay-send").await;
    let failed = until(
        &c,
        "document.querySelector('.panel .replay-error')?.textContent",
        "the replay's error",
    )
    .await;
    assert!(failed.as_str().unwrap().contains("HTTP 500"), "{failed}");

    // Edit the user message and the temperature, send.
    let text = c
        .find(Locator::Css(
            ".panel .replay-msg:nth-child(2) .replay-content",
        ))
        .await
        .unwrap();
    text.clear().await.unwrap();
    text.send_keys("And of Italy?").await.unwrap();
    let temp = c
        .find(Locator::Css(".panel .replay-temperature"))
        .await
        .unwrap();
    temp.clear().await.unwrap();
    temp.send_keys("0.2").await.unwrap();
    click(&c, ".panel .replay-send").await;
    until(
        &c,
        "document.querySelector('.panel .replay-result')",
        "the replay's result",
    )
    .await;
    assert_eq!(
        text_of(&c, ".panel .replay-outputs .replay-new").await,
        "Mock answer to: And of Italy?"
    );
    assert_eq!(
        text_of(&c, ".panel .replay-outputs .replay-orig").await,
        "Paris is the capital of France."
    );
    // Beside the original: tokens, cost and latency as the stored replay has them.
    let new_trace = attr_of(&c, ".panel .replay-result", "data-trace-id").await;
    let stored = api(&c, &format!("/api/v1/traces/{new_trace}?analysis=false")).await;
    let span = &stored["spans"][0];
    assert_eq!(span["attributes"]["spanlens.replay.of_span"], REPLAY_SPAN);
    assert_eq!(span["input_messages"][1]["content"], "And of Italy?");
    assert_eq!(span["model_parameters"]["temperature"], 0.2);
    let digits = |s: String| s.chars().filter(char::is_ascii_digit).collect::<String>();
    assert_eq!(
        digits(text_of(&c, ".panel .replay-input-tokens .replay-new").await),
        "2006"
    );
    assert_eq!(
        digits(text_of(&c, ".panel .replay-input-tokens .replay-orig").await),
        "1000"
    );
    let cost = dollars(&text_of(&c, ".panel .replay-cost .replay-new").await);
    assert!(
        close(cost, span["cost"]["total_usd"].as_f64().unwrap()),
        "{cost} vs {span}"
    );
    assert!(dollars(&text_of(&c, ".panel .replay-cost .replay-orig").await) > 0.0);
    assert_eq!(
        text_of(&c, ".panel .replay-latency .replay-orig").await,
        "1.25 s"
    );
    assert_ne!(text_of(&c, ".panel .replay-latency .replay-new").await, "–");
    assert_eq!(
        attr_of(&c, ".panel .replay-link a", "href").await,
        format!("/traces/{new_trace}")
    );
    screenshot(&c, "replay").await;

    // The key never reached the page; no markup ran.
    let page = c.source().await.unwrap();
    assert!(!page.contains(UI_REPLAY_KEY));
    let endpoints = api(&c, "/api/v1/replay/endpoints").await;
    assert!(!endpoints.to_string().contains(UI_REPLAY_KEY));
    let xss = c.execute("return window.__xss || 0", vec![]).await.unwrap();
    assert_eq!(xss, json!(0), "no markup ran");

    // The link opens the replay's trace.
    click(&c, ".panel .replay-link a").await;
    until(
        &c,
        &format!("location.pathname === '/traces/{new_trace}' && [...document.querySelectorAll('.wf-row .sname')].some(e => e.textContent.includes('replay gpt-4o-mini'))"),
        "the replay's trace page",
    )
    .await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_says_so_when_the_server_has_no_endpoint() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = replay_server(false).await;
    let c = browser(&driver, &chromium).await;
    open_replay(&c, &server).await;
    let said = until(
        &c,
        "document.querySelector('.panel .replay-off')?.textContent",
        "the not-configured message",
    )
    .await;
    assert!(
        said.as_str().unwrap().contains("Replay is not configured")
            && said.as_str().unwrap().contains("--replay"),
        "{said}"
    );
    c.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Review queues (issue #19 item 5).

/// The item index the review screen shows (`""` when none).
async fn review_item(c: &Client) -> String {
    c.execute(
        "return document.querySelector('.review')?.dataset.item ?? ''",
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or("")
    .to_string()
}

/// Waits until the review screen shows an item other than `previous`, with its spans listed
/// and the selected span's panel loaded; returns its index.
async fn next_review_item(c: &Client, previous: &str) -> String {
    until(
        c,
        &format!(
            "(() => {{ const r = document.querySelector('.review'); \
               return r && r.dataset.item && r.dataset.item !== {previous:?} \
                 && document.querySelector('.review-span-row.selected') \
                 && document.querySelector('.review-span .panel-head') \
                 && !document.querySelector('.review-span .loading'); }})()"
        ),
        "the next item of the queue, its trace drawn",
    )
    .await;
    review_item(c).await
}

/// A review queue made from the trace list's filter (its link carries it to the form), then
/// walked with the keyboard: y and a digit fill the two scores, Enter records them and brings
/// the next item, j moves on; the scores are stored with source human and the reviewer, and
/// the progress bar and the queue list count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_queue_is_made_from_the_list_and_walked_with_the_keyboard() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/?status=error")).await.unwrap();
    record(&c).await;
    until(
        &c,
        "document.querySelector('table.traces tbody tr') && document.querySelector('#traces-queue-link').getAttribute('href').includes('status%3Derror')",
        "the list and its queue link",
    )
    .await;
    click(&c, "#traces-queue-link").await;
    until(
        &c,
        "document.querySelector('form.queue-create input[name=queue-query]')?.value === 'status=error'",
        "the queue form filled with the list's filter",
    )
    .await;
    c.execute(
        "document.querySelector('form.queue-create input[name=queue-name]').value = 'Failures <i>triage</i>'; \
         document.querySelector('form.queue-create textarea[name=queue-scores]').value = 'correct: yes/no\\nquality: 1-5'; \
         document.querySelector('form.queue-create button[type=submit]').click();",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        "location.pathname.startsWith('/queues/') && document.querySelector('.review')",
        "the review screen",
    )
    .await;
    let id = c
        .execute("return location.pathname.split('/')[2]", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    // The name is text.
    assert_eq!(text_of(&c, ".review h1").await, "Failures <i>triage</i>");
    assert_eq!(
        c.execute(
            "return document.querySelectorAll('.review h1 i').length",
            vec![]
        )
        .await
        .unwrap(),
        json!(0)
    );
    let detail = api(&c, &format!("/api/v1/queues/{id}")).await;
    let total = detail["progress"]["total"].as_u64().unwrap();
    assert!(total >= 3, "the demo's failed traces: {detail}");
    let failed = api(&c, "/api/v1/traces?status=error&limit=500").await;
    assert_eq!(
        failed["items"].as_array().unwrap().len() as u64,
        total,
        "one item per failed trace"
    );

    // First item: y (correct), 4 (quality), Enter.
    let first = next_review_item(&c, "").await;
    let review = c.find(Locator::Css(".review")).await.unwrap();
    review.send_keys("y").await.unwrap();
    until(
        &c,
        "document.querySelector('.review-field[data-score=correct]').dataset.filled === '1' && document.querySelector('.review-field.active').dataset.score === 'quality'",
        "yes on correct, the cursor on quality",
    )
    .await;
    review.send_keys("4").await.unwrap();
    until(
        &c,
        "document.querySelector('.review-field[data-score=quality]').dataset.filled === '4'",
        "4 on quality",
    )
    .await;
    review.send_keys(&Key::Enter).await.unwrap();
    let second = next_review_item(&c, &first).await;
    until(
        &c,
        "document.querySelector('.review-progress .queue-progress').dataset.done === '1'",
        "the bar counting one",
    )
    .await;
    // Second item: n, 2, Enter.
    let review = c.find(Locator::Css(".review")).await.unwrap();
    review.send_keys("n").await.unwrap();
    review.send_keys("2").await.unwrap();
    until(
        &c,
        "document.querySelector('.review-field[data-score=correct]').dataset.filled === '0' && document.querySelector('.review-field[data-score=quality]').dataset.filled === '2'",
        "no and 2",
    )
    .await;
    review.send_keys(&Key::Enter).await.unwrap();
    let third = next_review_item(&c, &second).await;
    until(
        &c,
        "document.querySelector('.review-progress .queue-progress').dataset.done === '2'",
        "the bar counting two",
    )
    .await;
    // j moves on without scoring.
    let review = c.find(Locator::Css(".review")).await.unwrap();
    review.send_keys("j").await.unwrap();
    let fourth = next_review_item(&c, &third).await;
    screenshot(&c, "review-queue").await;
    assert!(
        ![&first, &second].contains(&&fourth),
        "a done item came back"
    );

    // Stored as human scores of the right traces, by the reviewer.
    let detail = api(&c, &format!("/api/v1/queues/{id}")).await;
    let p = &detail["progress"];
    assert_eq!(
        (&p["done"], &p["pending"]),
        (&json!(2), &json!(total - 2)),
        "{p}"
    );
    assert_eq!(p["reviewers"][0]["reviewer"], "local (auth off)");
    let items = detail["items"].as_array().unwrap();
    for (index, want) in [
        (&first, [("correct", 1.0), ("quality", 4.0)]),
        (&second, [("correct", 0.0), ("quality", 2.0)]),
    ] {
        let item = &items[index.parse::<usize>().unwrap()];
        assert_eq!(item["state"], "done", "{item}");
        let scores = api(
            &c,
            &format!(
                "/api/v1/scores?trace_id={}",
                item["trace_id"].as_str().unwrap()
            ),
        )
        .await;
        for (name, value) in want {
            let s = scores["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name && s["source"] == "human")
                .unwrap_or_else(|| panic!("no human {name} on item {index}: {scores}"));
            assert_eq!(s["value"].as_f64(), Some(value), "{s}");
            assert_eq!(s["author"], "local (auth off)", "{s}");
            assert!(s["created_ns"].as_u64().is_some(), "{s}");
        }
    }
    // The queue list shows the progress.
    visit(&c, "/queues").await;
    until(
        &c,
        &format!("document.querySelector('table.queues tr[data-queue=\"{id}\"] .queue-progress')?.dataset.done === '2'"),
        "the list's progress",
    )
    .await;
    screenshot(&c, "review-queues").await;
    let csp = c.execute("return window.__csp", vec![]).await.unwrap();
    assert_eq!(csp, json!([]), "CSP violations");
    let problems = console_problems(&c, &driver).await;
    assert!(problems.is_empty(), "{problems:?}");
    c.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Prompt versions: the /prompts page and the trace list's prompt filter chips.

/// Three traces using the Traceloop prompt `ui-answer` (version 1 twice, version 2 once, the
/// version-2 call failing) and one using a template whose name and version are markup.
fn prompt_traces(now: u64) -> Value {
    let kv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let mut spans = Vec::new();
    for (i, (key, version, ms, failed)) in [
        ("ui-answer", "1", 100u64, false),
        ("ui-answer", "1", 300, false),
        ("ui-answer", "2", 200, true),
        (XSS_IMG, XSS_SVG, 50, false),
    ]
    .into_iter()
    .enumerate()
    {
        let trace = format!("{:032x}", 0x9900 + i);
        let start = now - 600_000_000_000 + i as u64 * 1_000_000_000;
        spans.push(
            json!({"traceId": trace, "spanId": format!("{:016x}", 0x9900 + 2 * i),
            "name": "ui prompt run", "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + 1_000_000_000).to_string(), "attributes": []}),
        );
        let mut call = json!({"traceId": trace, "spanId": format!("{:016x}", 0x9901 + 2 * i),
            "parentSpanId": format!("{:016x}", 0x9900 + 2 * i), "name": "chat",
            "startTimeUnixNano": (start + 1_000_000).to_string(),
            "endTimeUnixNano": (start + 1_000_000 + ms * 1_000_000).to_string(),
            "attributes": [kv("llm.request.type", "chat"), kv("gen_ai.system", "openai"),
                kv("gen_ai.request.model", "gpt-4o-mini"), kv("traceloop.prompt.key", key),
                kv("traceloop.prompt.version", version),
                kv("traceloop.prompt.template", "Answer {q}")]});
        if failed {
            call["status"] = json!({"code": 2, "message": "refused"});
        }
        spans.push(call);
    }
    json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]})
}

/// The trace ids the list shows, sorted.
async fn listed_trace_ids(c: &Client) -> Vec<String> {
    let v = c
        .execute(
            "return [...document.querySelectorAll('table.traces tbody tr')].map(r => r.dataset.traceId).sort()",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

async fn api_trace_ids(c: &Client, query: &str) -> Vec<String> {
    let page = api(c, &format!("/api/v1/traces?{query}&limit=50")).await;
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_versions_page_lists_versions_and_opens_the_filtered_trace_list() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(600))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert_eq!(
        post_otlp(&c, &prompt_traces(now).to_string()).await,
        json!(200)
    );
    record(&c).await;
    click(&c, "nav a[data-nav=prompts]").await;
    until(
        &c,
        "document.querySelectorAll('.prompt-template').length && location.pathname === '/prompts'",
        "the prompt templates",
    )
    .await;
    // The page shows what the API answers for its range: every template, every version.
    let from = Timestamp(now.saturating_sub(7 * 86_400_000_000_000)).to_rfc3339();
    let to = Timestamp(now + 60_000_000_000).to_rfc3339();
    visit(&c, &format!("/prompts?from={from}&to={to}")).await;
    until(
        &c,
        "document.querySelectorAll('.prompt-template').length && location.search.includes('from')",
        "the prompt templates of the range",
    )
    .await;
    let answer = api(&c, &format!("/api/v1/prompts?from={from}&to={to}")).await;
    let names: Vec<String> = answer["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"ui-answer".to_string()), "{answer}");
    assert!(names.contains(&XSS_IMG.to_string()), "{answer}");
    let shown = c
        .execute(
            "return [...document.querySelectorAll('.prompt-template')].map(s => s.querySelector('.prompt-name').textContent)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown, json!(names), "the page's templates are the API's");
    let ui = answer["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ui-answer")
        .unwrap();
    // Version 2 was used last: first. Version 1: 2 calls, 100 and 300 ms, no error.
    let rows = c
        .execute(
            r#"return [...document.querySelectorAll('.prompt-template[data-template="ui-answer"] tr.prompt-version')]
                 .map(r => [...r.querySelectorAll('td')].map(td => td.textContent))"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert_eq!(ui["versions"][0]["version"], "2");
    assert_eq!(rows[0][0], "2");
    assert_eq!(rows[0][1], "1");
    assert_eq!(rows[0][5], "100.0%", "{rows}");
    assert_eq!(rows[1][0], "1");
    assert_eq!(rows[1][1], "2");
    assert_eq!(rows[1][5], "0.0%");
    assert_eq!(ui["versions"][1]["p50_ms"].as_f64(), Some(100.0));
    assert_eq!(ui["versions"][1]["p95_ms"].as_f64(), Some(300.0));
    assert!(
        rows[1][3].as_str().unwrap().starts_with("100"),
        "p50: {rows}"
    );
    assert!(
        rows[1][4].as_str().unwrap().starts_with("300"),
        "p95: {rows}"
    );
    // The markup template is text, its version too.
    let hostile = c
        .execute(
            "return [...document.querySelectorAll('.prompt-template')].find(s => s.dataset.template === arguments[0]).querySelector('tr.prompt-version td').textContent",
            vec![json!(XSS_IMG)],
        )
        .await
        .unwrap();
    assert_eq!(hostile, json!(XSS_SVG));

    // A click on version 1 opens the trace list filtered to it, with its chips.
    click(
        &c,
        r#".prompt-template[data-template="ui-answer"] tr.prompt-version[data-version="1"] td.name a"#,
    )
    .await;
    until(
        &c,
        "location.pathname === '/' && document.querySelector('.results')?.dataset.state === 'ready'",
        "the filtered trace list",
    )
    .await;
    let search = c.execute("return location.search", vec![]).await.unwrap();
    let search = search.as_str().unwrap().to_string();
    assert!(
        search.contains("prompt=ui-answer") && search.contains("prompt_version=1"),
        "{search}"
    );
    let v1 = api_trace_ids(&c, "prompt=ui-answer&prompt_version=1").await;
    assert_eq!(v1.len(), 2);
    assert_eq!(listed_trace_ids(&c).await, v1);
    assert_eq!(
        texts(&c, "#filter-chips .filter-chip").await,
        vec!["Prompt: ui-answer×".to_string(), "Version: 1×".to_string()]
    );
    // The form keeps the prompt filters when it is applied.
    click(&c, "form.filters button.primary").await;
    until(
        &c,
        "document.querySelector('.results')?.dataset.state === 'ready' && location.search.includes('prompt_version=1')",
        "the list after Apply",
    )
    .await;
    assert_eq!(listed_trace_ids(&c).await, v1);

    // Removing the version chip lists every version of the template.
    click(
        &c,
        "#filter-chips .filter-chip[data-param=prompt_version] a.chip-remove",
    )
    .await;
    until(
        &c,
        "!location.search.includes('prompt_version') && document.querySelector('.results')?.dataset.state === 'ready'",
        "the list without the version",
    )
    .await;
    let all = api_trace_ids(&c, "prompt=ui-answer").await;
    assert_eq!(all.len(), 3);
    assert_eq!(listed_trace_ids(&c).await, all);
    assert_eq!(
        texts(&c, "#filter-chips .filter-chip").await,
        vec!["Prompt: ui-answer×".to_string()]
    );
    // And the template's chip, the filter.
    click(
        &c,
        "#filter-chips .filter-chip[data-param=prompt] a.chip-remove",
    )
    .await;
    until(
        &c,
        "!location.search.includes('prompt') && document.querySelector('.results')?.dataset.state === 'ready'",
        "the list without the prompt",
    )
    .await;
    let chips = c
        .execute(
            "return document.querySelectorAll('#filter-chips .filter-chip').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(chips, json!(0));

    // The hostile template's list: its name in the chip as text, nothing ran.
    visit(
        &c,
        &format!("/?prompt={}&prompt_version={}", enc(XSS_IMG), enc(XSS_SVG)),
    )
    .await;
    until(
        &c,
        "document.querySelector('.results')?.dataset.state === 'ready' && document.querySelectorAll('#filter-chips .filter-chip').length === 2",
        "the hostile template's list",
    )
    .await;
    assert_eq!(listed_trace_ids(&c).await.len(), 1);
    assert_eq!(
        texts(&c, "#filter-chips .filter-chip b").await,
        vec![XSS_IMG.to_string(), XSS_SVG.to_string()]
    );
    let imgs = c
        .execute(
            "return document.querySelectorAll('#app img, #app svg[onload], #app [onerror]').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(imgs, json!(0), "span data became markup");
    let xss = c.execute("return window.__xss || 0", vec![]).await.unwrap();
    assert_eq!(xss, json!(0), "no markup ran");
    let csp = c.execute("return window.__csp", vec![]).await.unwrap();
    assert_eq!(csp, json!([]), "CSP violations");
    assert!(console_problems(&c, &driver).await.is_empty());
    screenshot(&c, "prompts").await;
    c.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// A trace of 100,000 spans (issue #19): first paint, keyboard and search at that size, and
// repeated siblings folded into one row.

/// Trace id of the generated 100,000+ span trace.
const HUGE_TRACE: &str = "100c100c100c100c100c100c100c100c";

/// Tools the 100k trace's steps call, in turn: each step has ~66 siblings of each name.
const HUGE_TOOLS: [&str; 3] = ["fs.read", "code.search", "shell.run"];

/// The 100,021-span trace: [`big_trace`]'s shape (a root, 20 agents, 25 steps each, 199 tool
/// calls per step) under its own trace and span ids, the tool calls named after three tools
/// so every step has repeated siblings.
fn huge_trace(demo: &[Span], now: Timestamp) -> Vec<Span> {
    let trace_id = TraceId::from_hex(HUGE_TRACE).unwrap();
    let own = |id: SpanId| SpanId((u64::from_be_bytes(id.0) | 1 << 60).to_be_bytes());
    let mut spans = big_trace(demo, 100_000, now);
    for s in &mut spans {
        s.trace_id = trace_id;
        s.span_id = own(s.span_id);
        s.parent_span_id = s.parent_span_id.map(own);
        if let Some(rest) = s.name.strip_prefix("tool_") {
            let t: usize = rest[6..].parse().unwrap();
            s.name = HUGE_TOOLS[t % HUGE_TOOLS.len()].to_string();
        }
    }
    spans
}

/// A server on the demo data, the 10k trace and the 100k trace, the latter sent as a client
/// would: 500 spans per write.
fn huge_server() -> Server {
    Server::start_with(10_021, |store, _| {
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        let demo = spanlens_demo::generate(spanlens_demo::DEFAULT_SEED, now);
        let spans = huge_trace(&demo, now);
        assert!(spans.len() >= 100_000);
        let store: &dyn Store = &**store;
        let tickets: Vec<_> = spans
            .chunks(500)
            .map(|c| store.submit(DEFAULT_PROJECT, c.to_vec()).unwrap())
            .collect();
        for t in tickets {
            t.wait().unwrap();
        }
    })
}

/// Per-key time in the page: the key's handler plus the style and layout it causes, then a
/// frame so the next key starts from a painted page. Returns [median, max] ms over `keys`.
async fn key_times(c: &Client, keys: &[&str]) -> Vec<f64> {
    let v = c
        .execute_async(
            r#"const [keys, done] = [arguments[0], arguments[arguments.length - 1]];
            const s = document.querySelector('.wf-scroll');
            const times = [];
            const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            (async () => {
              for (const key of keys) {
                const t0 = performance.now();
                s.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true }));
                document.querySelector('.wf-rows').getBoundingClientRect();
                times.push(performance.now() - t0);
                await frame();
              }
              times.sort((a, b) => a - b);
              done([times[times.length >> 1], times[times.length - 1]]);
            })();"#,
            vec![json!(keys)],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Runs `script` (an async function body that returns a value) in the page and gives its value.
async fn run_async(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute_async(
        &format!(
            "const done = arguments[arguments.length - 1]; const args = [...arguments].slice(0, -1);\n\
             (async () => {{ {script} }})().then(done, (e) => done({{ error: String(e) }}));"
        ),
        args,
    )
    .await
    .unwrap()
}

/// Milliseconds of `f` as a figure for the report.
fn fig(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The first-paint marker, waited for up to `limit`: a debug build (what `scripts/test` runs)
/// takes about ten times a release build's second at 100k, past [`until`]'s 20 s on a busy machine.
async fn first_paint_within(c: &Client, limit: Duration) -> f64 {
    let deadline = Instant::now() + limit;
    loop {
        let v = c
            .execute("return window.__spanlensFirstPaint ?? null", vec![])
            .await
            .unwrap();
        if let Some(ms) = v.as_f64() {
            return ms;
        }
        assert!(
            Instant::now() < deadline,
            "no first paint of the 100k trace within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_paint_of_a_100k_span_trace() {
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let began = Instant::now();
    let server = tokio::task::spawn_blocking(huge_server).await.unwrap();
    println!(
        "server with the 100,021-span trace (sent 500 spans per write) ready in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let c = browser(&driver, &chromium).await;
    let url = server.url(&format!("/traces/{HUGE_TRACE}"));
    let mut figures = Vec::new();
    for _ in 0..3 {
        c.goto(&server.url("/healthz")).await.unwrap();
        c.goto(&url).await.unwrap();
        let ms = first_paint_within(&c, Duration::from_secs(90)).await;
        let d = c
            .execute(
                r#"const e = performance.getEntriesByType('resource').find((e) => e.name.includes('/tree'));
                const p = window.__spanlensTracePhases || {};
                const st = Object.fromEntries((e?.serverTiming || []).map((t) => [t.name, t.duration]));
                return { source: (e?.serverTiming || []).find((t) => t.name === 'read')?.description,
                  paint: window.__spanlensFirstPaint, fetch_start: e?.startTime, fetch: e?.duration,
                  response_end: e?.responseEnd, bytes: e?.encodedBodySize, read: st.read, build: st.build,
                  encode: st.encode, parse: st.parse, analyze: st.analyze, fetched: p.fetched, nodes: p.nodes, tree: p.tree, drawn: p.drawn,
                  rows: document.querySelectorAll('.wf-row').length,
                  spans: document.querySelector('.waterfall')?.dataset.spanCount };"#,
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(d["spans"], "100021", "{d}");
        assert_eq!(
            d["source"], "rows",
            "the tree is read from the typed rows: {d}"
        );
        assert!(d["rows"].as_u64().unwrap() > 10, "rows painted: {d}");
        println!(
            "  first paint {ms:.0} ms: /tree {:.0} ms ({:.1} MB; server read {:.0}, build {:.0} (parse {:.0}, analyze {:.0}), encode {:.0}), \
             response end at {:.0}, JSON parsed at {:.0}, rows made at {:.0}, tree built at {:.0}, drawn at {:.0}",
            fig(&d, "fetch"),
            fig(&d, "bytes") / 1e6,
            fig(&d, "read"),
            fig(&d, "build"),
            fig(&d, "parse"),
            fig(&d, "analyze"),
            fig(&d, "encode"),
            fig(&d, "response_end"),
            fig(&d, "fetched"),
            fig(&d, "nodes"),
            fig(&d, "tree"),
            fig(&d, "drawn"),
        );
        figures.push(ms);
    }
    screenshot(&c, "trace-100k").await;
    println!(
        "UI first paint of a 100,021-span trace (navigation start to first waterfall rows, headless Chromium): \
         cold {:.0} ms, warm {:.0} ms / {:.0} ms (target 1000 ms)",
        figures[0], figures[1], figures[2]
    );
    assert!(
        figures.iter().all(|ms| *ms < 60_000.0),
        "first paint {figures:?} ms: the 100k waterfall became unusable"
    );

    // Keyboard: each key's handler, style and layout, one key per frame.
    let down = key_times(&c, &["ArrowDown"; 20]).await;
    let selected_top = c
        .execute(
            "return document.querySelector('.wf-row.selected')?.style.transform",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        selected_top,
        json!(format!("translateY({}px)", 19 * 26)),
        "20 × ↓ selects the 20th row"
    );
    let paging = key_times(&c, &["PageDown", "PageDown", "PageUp", "End", "Home"]).await;
    let fold = key_times(&c, &["ArrowLeft", "ArrowRight"]).await;
    let spacer_rows = "Number(document.querySelector('.wf-spacer').dataset.rows)";
    assert_eq!(
        c.execute(&format!("return {spacer_rows}"), vec![])
            .await
            .unwrap(),
        json!(100_021),
        "← then → on the root folds and unfolds all of it"
    );

    // Search typed one character at a time, then Enter / Shift+Enter between matches.
    let expected = run_async(
        &c,
        "const text = await (await fetch(args[0])).text();
         const d = JSON.parse(text);
         return { n: d.spans.filter((s) => s.name.toLowerCase().includes('code.search')).length, bytes: text.length };",
        vec![json!(format!("/api/v1/traces/{HUGE_TRACE}/tree"))],
    )
    .await;
    let search = run_async(
        &c,
        "const input = document.querySelector('.toolbar input[type=search]');
         const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
         const typed = [], jumps = [];
         for (let i = 1; i <= args[0].length; i++) {
           const t0 = performance.now();
           input.value = args[0].slice(0, i);
           input.dispatchEvent(new Event('input', { bubbles: true }));
           document.querySelector('.wf-rows').getBoundingClientRect();
           typed.push(performance.now() - t0);
           await frame();
         }
         for (const shiftKey of [false, false, false, true]) {
           const t0 = performance.now();
           input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', shiftKey, bubbles: true, cancelable: true }));
           document.querySelector('.wf-rows').getBoundingClientRect();
           jumps.push(performance.now() - t0);
           await frame();
         }
         const info = document.querySelector('.match-info').textContent;
         const err = [];
         for (let i = 0; i < 3; i++) {
           const t0 = performance.now();
           document.querySelector('.err-button').click();
           document.querySelector('.wf-rows').getBoundingClientRect();
           err.push(performance.now() - t0);
           await frame();
         }
         return { typed, jumps, err, info, on_error: !!document.querySelector('.wf-row.selected.err') };",
        vec![json!("code.search")],
    )
    .await;
    assert_eq!(
        expected["n"],
        json!(33_000),
        "the generator's code.search calls"
    );
    println!(
        "  the row format of /tree (what the page asked for before): {:.1} MB",
        fig(&expected, "bytes") / 1e6
    );
    let info = search["info"]
        .as_str()
        .unwrap()
        .replace(|c: char| !c.is_ascii_digit(), "");
    assert_eq!(
        info, "233000",
        "3 × Enter, 1 × Shift+Enter: match 2 of 33,000 ({search})"
    );
    assert_eq!(
        search["on_error"],
        json!(true),
        "Next error selects a failed span: {search}"
    );
    let max = |k: &str| {
        search[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    println!(
        "keys at 100k (handler + style + layout, per key): ↓ median {:.1} / max {:.1} ms; PgDn/PgUp/End/Home median {:.1} / max {:.1} ms; \
         ← → folding the whole root {:.1} / {:.1} ms; search typed per character max {:.1} ms; \
         Enter/Shift+Enter between matches max {:.1} ms; Next error max {:.1} ms",
        down[0], down[1], paging[0], paging[1], fold[0], fold[1], max("typed"), max("jumps"), max("err")
    );
    let slowest = [down[1], paging[1], max("typed"), max("jumps"), max("err")];
    assert!(
        slowest.iter().all(|ms| *ms < 2_000.0),
        "a key took {slowest:?} ms at 100k"
    );

    // Same-named siblings folded: one row per (parent, name) with the count and summed time.
    let toggled = run_async(
        &c,
        "const input = document.querySelector('.toolbar input[type=search]');
         input.value = ''; input.dispatchEvent(new Event('input', { bubbles: true }));
         const t0 = performance.now();
         document.querySelector('#group-toggle').click();
         document.querySelector('.wf-rows').getBoundingClientRect();
         return performance.now() - t0;",
        vec![],
    )
    .await;
    assert_eq!(
        c.execute(&format!("return {spacer_rows}"), vec![])
            .await
            .unwrap(),
        json!(1 + 20 + 500 + 500 * 3),
        "grouped: the root, 20 agents, 500 steps and 3 tool rows per step"
    );
    let group = c
        .execute(
            "const g = document.querySelector('.wf-row.wf-group');
             return { id: g.dataset.spanId, count: g.dataset.groupCount, sum: g.dataset.sumMs,
               badge: g.querySelector('.group-count').textContent, name: g.querySelector('.sname').textContent };",
            vec![],
        )
        .await
        .unwrap();
    let id = group["id"].as_str().unwrap();
    let (parent, name) = id
        .strip_prefix("group:")
        .and_then(|r| r.split_once(':'))
        .unwrap();
    assert_eq!(group["name"], json!(name));
    // The API's own spans (the row format of /tree) say how many and how long.
    let truth = run_async(
        &c,
        "const d = await (await fetch(args[0])).json();
         const same = d.spans.filter((s) => s.parent_span_id === args[1] && s.name === args[2]);
         return { count: same.length, sum: same.reduce((a, s) => a + (s.duration_ms || 0), 0), first: same[0].span_id };",
        vec![
            json!(format!("/api/v1/traces/{HUGE_TRACE}/tree")),
            json!(parent),
            json!(name),
        ],
    )
    .await;
    let count = truth["count"].as_u64().unwrap();
    assert!(count >= 2, "{truth}");
    assert_eq!(group["count"], json!(count.to_string()));
    assert_eq!(
        group["badge"]
            .as_str()
            .unwrap()
            .replace(|c: char| !c.is_ascii_digit(), ""),
        count.to_string()
    );
    let sum: f64 = group["sum"].as_str().unwrap().parse().unwrap();
    let api_sum = truth["sum"].as_f64().unwrap();
    assert!(
        (sum - api_sum).abs() <= 1e-6 * api_sum.max(1.0),
        "summed {sum} ms, API {api_sum} ms"
    );

    // The keyboard on a grouped row: → opens it, ↓ reaches its first span, ← goes back up
    // to the group, ← folds it, Enter opens it again.
    let keys = run_async(
        &c,
        "const s = document.querySelector('.wf-scroll');
         const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
         const row = () => document.querySelector(`.wf-row[data-span-id=\"${CSS.escape(args[0])}\"]`);
         row().querySelector('.sname').click();
         await frame();
         const state = () => ({ selected: document.querySelector('.wf-row.selected')?.dataset.spanId,
           open: row()?.getAttribute('aria-expanded'),
           rows: Number(document.querySelector('.wf-spacer').dataset.rows) });
         const out = [state()];
         for (const key of ['ArrowRight', 'ArrowDown', 'ArrowLeft', 'ArrowLeft', 'Enter']) {
           s.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true }));
           await frame();
           out.push(state());
         }
         return out;",
        vec![json!(id)],
    )
    .await;
    let grouped_rows = 1 + 20 + 500 + 500 * 3;
    let opened = grouped_rows + count;
    let want = json!([
        { "selected": id, "open": "false", "rows": grouped_rows },
        { "selected": id, "open": "true", "rows": opened },
        { "selected": truth["first"], "open": "true", "rows": opened },
        { "selected": id, "open": "true", "rows": opened },
        { "selected": id, "open": "false", "rows": grouped_rows },
        { "selected": id, "open": "true", "rows": opened },
    ]);
    assert_eq!(keys, want, "keyboard on the grouped row");
    screenshot(&c, "trace-100k-grouped").await;
    click(&c, "#group-toggle").await;
    assert_eq!(
        c.execute(&format!("return {spacer_rows}"), vec![])
            .await
            .unwrap(),
        json!(100_021),
        "ungrouped again"
    );
    println!(
        "grouping repeated siblings at 100k: {:.1} ms; the first group {name} ×{count}, summed {sum:.1} ms (API {api_sum:.1} ms)",
        toggled.as_f64().unwrap_or(f64::NAN)
    );
    c.close().await.unwrap();
    drop(server);
    drop(driver);
}

// ---------------------------------------------------------------------------------------------
// Media (issue #19 item 9): images and audio sent as base64 in a span are stored apart and shown
// in the span panel as a thumbnail and a player, loaded from /api/v1/media/{hash}.

/// A real PNG the browser decodes: `w`×`h` RGB, a gradient, in stored (uncompressed) deflate
/// blocks, so that it is over the 1 KiB below which media stay inline.
fn real_png(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        out.extend_from_slice(&typed);
        out.extend_from_slice(&crc32(&typed).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            raw.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 160]);
        }
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A quarter second of 8 kHz 16-bit mono silence as a WAV file.
fn silent_wav() -> Vec<u8> {
    let samples = 2000u32;
    let data = samples * 2;
    let mut w = b"RIFF".to_vec();
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(w.len() + data as usize, 0);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_media_show_as_a_thumbnail_and_a_player_in_the_span_panel() {
    use base64::Engine as _;
    let _serial = SERIAL.lock().await;
    let (driver, chromium) = start_driver();
    let server = tokio::task::spawn_blocking(|| Server::start(0))
        .await
        .unwrap();
    let c = browser(&driver, &chromium).await;
    c.goto(&server.url("/")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let png = real_png(48, 32);
    let wav = silent_wav();
    let hash = spanlens_core::media::content_hash(&png);
    let trace = "3ed1a3ed1a3ed1a3ed1a3ed1a3ed1a01";
    let span = "3ed1a00000000001";
    // The image inside an OpenAI request body; the sound as the whole output, a data URL.
    let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "<img src=x onerror=window.__xss=1> what is this?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(&png))}}]}]});
    let body = json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": span, "name": "look and say",
         "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 2_000_000).to_string(),
         "attributes": [
            {"key": "input.value", "value": {"stringValue": request.to_string()}},
            {"key": "input.mime_type", "value": {"stringValue": "application/json"}},
            {"key": "output.value", "value": {"stringValue": format!("data:audio/wav;base64,{}", b64(&wav))}}]}
    ]}]}]});
    assert_eq!(post_otlp(&c, &body.to_string()).await, json!(200));
    c.goto(&server.url(&format!("/traces/{trace}?span={span}")))
        .await
        .unwrap();
    record(&c).await;
    let width = until(
        &c,
        "(() => { const i = document.querySelector('.panel-body .media-strip img.media-thumb'); \
         return i && i.complete && i.naturalWidth; })()",
        "the image thumbnail, loaded",
    )
    .await;
    assert_eq!(width, json!(48), "the PNG decoded at its own size");
    // The thumbnail links to the full size in a new tab; the reference text is still shown.
    let link = c
        .execute(
            "const a = document.querySelector('.media-strip a'); \
             return [a.getAttribute('href'), a.target, a.rel];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        link,
        json!([
            format!("/api/v1/media/{hash}"),
            "_blank",
            "noopener noreferrer"
        ])
    );
    let payloads = texts(&c, ".panel-body pre.payload").await.join("\n");
    assert!(
        payloads.contains(&format!("spanlens-media:sha256:{hash}")),
        "{payloads}"
    );
    assert!(!payloads.contains("base64,"), "no base64 left in the span");
    // The sound is a player whose source is the stored WAV.
    let ready = until(
        &c,
        "(() => { const a = document.querySelector('.panel-body .media-strip audio.media-audio'); \
         return a && a.controls && a.readyState >= 1 && a.src; })()",
        "the audio player, its metadata loaded",
    )
    .await;
    assert!(
        ready.as_str().unwrap().contains("/api/v1/media/"),
        "{ready}"
    );
    // A full-size image is a same-origin page of its own: what a click opens.
    let full = c
        .execute(
            "return fetch(arguments[0]).then(r => [r.status, r.headers.get('content-type'), \
             r.headers.get('content-security-policy')]);",
            vec![json!(format!("/api/v1/media/{hash}"))],
        )
        .await
        .unwrap();
    assert_eq!(
        full,
        json!([200, "image/png", "sandbox; default-src 'none'"])
    );
    let injected = c
        .execute(
            "return [window.__xss === 1, (window.__csp || []).length, \
             document.querySelectorAll('.panel-body img:not(.media-thumb)').length]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!([false, 0, 0]), "span text stayed text");
    let problems = console_problems(&c, &driver).await;
    assert!(problems.is_empty(), "{problems:?}");
    screenshot(&c, "span-media").await;
    c.close().await.unwrap();
    drop(server);
}
