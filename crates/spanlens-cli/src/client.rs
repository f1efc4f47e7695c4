//! Client commands against a running server: `spanlens traces`, `spanlens trace`,
//! `spanlens recovery`, `spanlens tail`.
//!
//! They read the JSON API (`/api/v1/traces`, `/api/v1/traces/{id}`, `/api/v1/recovery`) and the live stream
//! (`/api/v1/live`, server-sent events). An unreachable server exits with status 1 and says how
//! to start one; a request the server refuses (4xx) exits with status 2 and its message.

use crate::{InputError, Outcome};
use anyhow::Context;
use clap::Args;
use serde_json::Value;
use spanlens_api::{
    AlertsAnswer, ErrorBody, LiveSpan, RecoveryAnswer, ScoreList, TraceDetail, TraceListQuery,
    TracePage, TraceRow,
};
use spanlens_core::evals::ScoreType;
use spanlens_core::recovery::HeadroomBucket;
use spanlens_core::{analyze, NanoUsd, Span, SpanId, SpanKind, Status, Timestamp, TraceAnalysis};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::time::Duration;

/// Server the client commands talk to when neither `--server` nor `SPANLENS_SERVER` is set.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:4318";

/// Largest response body read (a trace of many thousand spans is tens of megabytes).
const MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

/// Where the server is and which project to read.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of the spanlens server.
    #[arg(long, env = "SPANLENS_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Project to read.
    #[arg(long, default_value = "default")]
    project: String,
    /// API key, for a server started with --auth required (sent as `Authorization: Bearer`).
    /// Also SPANLENS_KEY (preferred: a command line is visible to other users).
    #[arg(long, env = "SPANLENS_KEY", hide_env_values = true, value_name = "KEY")]
    key: Option<String>,
}

impl ServerArgs {
    /// The project to read.
    pub(crate) fn project_name(&self) -> &str {
        &self.project
    }

    /// The server at `server` with `key`, for commands that name their own project.
    pub(crate) fn at(server: String, key: Option<String>) -> ServerArgs {
        ServerArgs {
            server,
            project: "default".into(),
            key,
        }
    }
}

/// Arguments of `spanlens traces`.
#[derive(Args, Debug)]
pub struct TracesArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Rows to show (1–1000).
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: u32,
    /// Only traces of this end user.
    #[arg(long)]
    user: Option<String>,
    /// Only traces with a span of this model (request or response model).
    #[arg(long)]
    model: Option<String>,
    /// Only traces with this status: ok, error (failed), unset, or recovered (did not fail but
    /// hold errors they went on from; shown as e.g. `ok/2r`).
    #[arg(long)]
    status: Option<String>,
    /// Only traces of this session.
    #[arg(long)]
    session: Option<String>,
    /// Only traces with this tag (repeat for several; all must match).
    #[arg(long)]
    tag: Vec<String>,
    /// Only traces with this root name.
    #[arg(long)]
    name: Option<String>,
    /// Full-text search: traces with a span holding every one of these words in its name,
    /// input, output or messages (whole words, any case); each is shown with the words found.
    #[arg(long, value_name = "WORDS")]
    search: Option<String>,
    /// Sort by start_time, duration, cost, tokens, span_count, name, status or user.
    #[arg(long)]
    sort: Option<String>,
    /// Sort direction: desc (default) or asc.
    #[arg(long)]
    order: Option<String>,
    /// Continue after a previous page (the `next_cursor` of `--json` output).
    #[arg(long)]
    cursor: Option<String>,
    /// Start from a saved view of the project (its name or id): its filters and sort, with the
    /// options given here on top.
    #[arg(long)]
    view: Option<String>,
    /// Print the API's JSON page instead of a table.
    #[arg(long)]
    json: bool,
    /// Only traces with a span that used this prompt template (`spanlens prompts` names them).
    #[arg(long)]
    prompt: Option<String>,
    /// With --prompt: only traces with a span that used this version of it.
    #[arg(long)]
    prompt_version: Option<String>,
}

/// Arguments of `spanlens trace`.
#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Trace id, or a unique prefix of at least 6 hex digits.
    id: String,
    /// Print the API's JSON (`{"trace": …, "spans": […]}`) instead of a tree.
    #[arg(long)]
    json: bool,
}

/// Arguments of `spanlens recovery`.
#[derive(Args, Debug)]
pub struct RecoveryArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Traces started at or after this time (RFC 3339 or ns; default: 7 days before --to).
    #[arg(long)]
    from: Option<String>,
    /// Traces started before this time (RFC 3339 or ns; default: now).
    #[arg(long)]
    to: Option<String>,
    /// Time buckets of the rate-limit headroom (1–200).
    #[arg(long, default_value_t = 24)]
    buckets: u32,
    /// Recent retried spans to list.
    #[arg(long, short = 'n', default_value_t = 10)]
    limit: usize,
    /// Print the API's JSON report instead of tables.
    #[arg(long)]
    json: bool,
}

/// Arguments of `spanlens tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Only spans of this kind (llm, tool, agent, …).
    #[arg(long)]
    kind: Option<String>,
}

/// The server could not be reached at all (connection refused, DNS, timeout).
#[derive(Debug)]
struct Unreachable {
    url: String,
    reason: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach the spanlens server at {}: {}\n  start one with `spanlens serve`, or point --server / SPANLENS_SERVER at a running one",
            self.url, self.reason
        )
    }
}

impl std::error::Error for Unreachable {}

/// A small blocking HTTP client for the JSON API.
pub(crate) struct Client {
    base: String,
    project: String,
    /// `Bearer {key}`, when a key was given.
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(crate) fn new(conn: &ServerArgs) -> anyhow::Result<Client> {
        let base = conn.server.trim().trim_end_matches('/').to_string();
        let Some(rest) = base.strip_prefix("http://") else {
            let why = if base.starts_with("https://") {
                "https is not supported by this build; use the server's plain http address"
            } else {
                "use a URL such as http://127.0.0.1:4318"
            };
            return Err(InputError(format!("invalid --server {base:?}: {why}")).into());
        };
        if rest.is_empty() {
            return Err(InputError(format!("invalid --server {base:?}: no host")).into());
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(5)))
                .timeout_global(Some(Duration::from_secs(120)))
                .build(),
        );
        Ok(Client {
            base,
            project: conn.project.clone(),
            authorization: conn.key.as_ref().map(|k| format!("Bearer {}", k.trim())),
            agent,
        })
    }

    /// Sends `method` to `path` (no project parameter added) with `body` as JSON, and returns
    /// the body of a 2xx answer.
    pub(crate) fn send_json(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(a) = &self.authorization {
            req = req.header("authorization", a);
        }
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        if !query.is_empty() {
            req = req.uri(format!("{url}?{}", query.join("&")));
        }
        let sent = match body {
            Some(b) => self.agent.run(
                req.header("content-type", "application/json")
                    .body(b.to_string())?,
            ),
            None => self.agent.run(req.body(())?),
        };
        let mut resp = sent.map_err(|e| Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .with_context(|| format!("reading the answer of {method} {url}"))?;
        check_status(status, &url, &text)?;
        Ok(text)
    }

    /// GETs `path` with the project and `query` and returns the body of a 2xx answer.
    fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url).query("project", &self.project);
        for (k, v) in query {
            req = req.query(*k, v);
        }
        if let Some(a) = &self.authorization {
            req = req.header("authorization", a);
        }
        let mut resp = req.call().map_err(|e| Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .with_context(|| format!("reading the answer of GET {url}"))?;
        check_status(status, &url, &body)?;
        Ok(body)
    }

    /// GETs an API answer as its wire type (`spanlens_api`).
    pub(crate) fn get_answer<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let body = self.get(path, query)?;
        parse_answer(path, &body)
    }

    /// Like [`get_answer`](Self::get_answer), but with `--json` (`json` true) prints the
    /// server's answer as pretty JSON, every field kept, and returns `None`: the caller then
    /// prints no table.
    pub(crate) fn get_or_print<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        json: bool,
    ) -> anyhow::Result<Option<T>> {
        let body = self.get(path, query)?;
        if json {
            let v: Value = parse_answer(path, &body)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(None);
        }
        parse_answer(path, &body).map(Some)
    }
}

/// `s` with everything but unreserved characters percent-encoded, for a query value or a path
/// segment.
pub(crate) fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An answer parsed as its wire type, or an error naming the route.
pub(crate) fn parse_answer_of<T: serde::de::DeserializeOwned>(
    path: &str,
    body: &str,
) -> anyhow::Result<T> {
    parse_answer(path, body)
}

/// An answer parsed as its wire type, or an error naming the route.
fn parse_answer<T: serde::de::DeserializeOwned>(path: &str, body: &str) -> anyhow::Result<T> {
    serde_json::from_str(body).with_context(|| {
        format!("the server's answer to {path} is not what this client expects (spanlens-api)")
    })
}

/// Maps an HTTP status to the command's error: 4xx → the server's message (exit 2), 5xx → exit 1.
fn check_status(status: u16, url: &str, body: &str) -> anyhow::Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = serde_json::from_str::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| body.trim().chars().take(500).collect());
    if (400..500).contains(&status) {
        Err(InputError(format!("server answered {status}: {message}")).into())
    } else {
        Err(anyhow::anyhow!(
            "server error {status} for {url}: {message}"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting

pub(crate) fn fmt_duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".into();
    }
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn fmt_duration_ns(ns: u64) -> String {
    fmt_duration_ms(ns as f64 / 1e6)
}

/// Compact token count: `950`, `12.3k`, `1.2M`.
fn fmt_tokens(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}k", n as f64 / 1e3),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Cost for a table cell: four decimals, `<$0.0001` for dust, `-` for nothing. `unpriced`
/// calls had no catalog price, so the priced part is marked (`$0.0042 + 1 unpriced`), or the
/// cell says `unpriced` when nothing was priced: never a silent $0 (issue #12 item 7).
pub(crate) fn fmt_cost_cell(nano: i64, unpriced: u64) -> String {
    let known = if nano == 0 {
        if unpriced > 0 {
            return "unpriced".into();
        }
        "-".into()
    } else if nano < 100_000 {
        "<$0.0001".into()
    } else {
        format!("${:.4}", nano as f64 / 1e9)
    };
    if unpriced > 0 {
        format!("{known} + {unpriced} unpriced")
    } else {
        known
    }
}

/// A summed cost in full precision with the same marker as [`fmt_cost_cell`]: `$0.0021`,
/// `$0.0021 + 3 unpriced`, or `unpriced` when nothing was priced.
pub(crate) fn cost_text(cost: NanoUsd, unpriced: u64) -> String {
    match (cost.0, unpriced) {
        (_, 0) => cost.to_string(),
        (0, _) => "unpriced".into(),
        _ => format!("{cost} + {unpriced} unpriced"),
    }
}

/// Cuts `s` to `width` characters, ending with `…` when cut.
pub(crate) fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `MM-DD HH:MM:SS` (UTC) of an RFC 3339 time.
fn short_time(rfc3339: &str) -> String {
    match Timestamp::parse_rfc3339(rfc3339) {
        Ok(t) => {
            let s = t.to_rfc3339();
            format!("{} {}", &s[5..10], &s[11..19])
        }
        Err(_) => rfc3339.chars().take(19).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// spanlens traces

/// Lists traces as a table (or the API's JSON page).
pub fn run_traces(args: TracesArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let base = match &args.view {
        Some(v) => saved_view_query(&client, v)?,
        None => TraceListQuery::default(),
    };
    let tags = if args.tag.is_empty() {
        base.tags.clone()
    } else {
        args.tag
    };
    let q = TraceListQuery {
        user: args.user.or(base.user.clone()),
        model: args.model.or(base.model.clone()),
        status: args.status.or(base.status.clone()),
        session: args.session.or(base.session.clone()),
        name: args.name.or(base.name.clone()),
        content: args.search.or(base.content.clone()),
        sort: args.sort.or(base.sort.clone()),
        order: args.order.or(base.order.clone()),
        cursor: args.cursor,
        tags,
        limit: Some(args.limit),
        prompt: args.prompt.or(base.prompt.clone()),
        prompt_version: args.prompt_version.or(base.prompt_version.clone()),
        ..base
    };
    let Some(page) =
        client.get_or_print::<TracePage>("/api/v1/traces", &q.to_pairs(), args.json)?
    else {
        return Ok(Outcome::Done);
    };
    print!("{}", traces_table(&page.items));
    if page.items.is_empty() {
        eprintln!("no traces in project {:?} match", client.project);
    } else if let Some(c) = &page.next_cursor {
        eprintln!("{} traces shown; more with --cursor {c}", page.items.len());
    }
    Ok(Outcome::Done)
}

/// The query of the project's saved view named (or with the id) `view`; an unknown one is an
/// input error listing the views there are.
fn saved_view_query(client: &Client, view: &str) -> anyhow::Result<TraceListQuery> {
    let list: spanlens_api::ViewList = client.get_answer("/api/v1/views", &[])?;
    let Some(v) = list
        .views
        .iter()
        .find(|v| v.id == view || v.name.eq_ignore_ascii_case(view))
    else {
        let names: Vec<&str> = list.views.iter().map(|v| v.name.as_str()).collect();
        return Err(crate::InputError(format!(
            "project {:?} has no saved view {view:?}; it has: {}",
            list.project,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
        .into());
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&v.query)
        .with_context(|| format!("reading saved view {:?}", v.name))?;
    Ok(TraceListQuery::from_pairs(&pairs)
        .map_err(|e| crate::InputError(format!("saved view {:?}: {e}", v.name)))?)
}

/// The trace list as aligned columns that fit a 120-column terminal.
fn traces_table(items: &[TraceRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8}  {:<14}  {:<18}  {:>8}  {:>5}  {:>13}  {:>20}  {:<6}  {:<4}",
        "TRACE",
        "STARTED (UTC)",
        "NAME",
        "DURATION",
        "SPANS",
        "TOKENS IN/OUT",
        "COST",
        "STATUS",
        "USER"
    );
    for it in items {
        let id = it.trace_id.to_hex();
        let tokens = format!(
            "{}/{}",
            fmt_tokens(it.input_tokens),
            fmt_tokens(it.output_tokens)
        );
        let errors = it.error_count;
        let status = wire_name(&it.status);
        // A trace that did not fail but went on from errors: its status and "/Nr" (recovered).
        let status = if status != "error" && errors > 0 {
            format!("{status}/{errors}r")
        } else {
            status
        };
        let _ = writeln!(
            out,
            "{:<8}  {:<14}  {:<18}  {:>8}  {:>5}  {:>13}  {:>20}  {:<6}  {}",
            &id[..8],
            short_time(&it.start_time.to_rfc3339()),
            fit(&it.name, 18),
            fmt_duration_ms(it.duration_ms),
            it.span_count,
            tokens,
            fmt_cost_cell(it.total_cost_nano_usd, it.unpriced_span_count),
            status,
            fit(it.user_id.as_deref().unwrap_or("-"), 12),
        );
        if let Some(hit) = &it.hit {
            let _ = writeln!(
                out,
                "          in {}: {}",
                fit(&hit.span_name, 30),
                marked(&hit.snippet)
            );
        }
    }
    out
}

/// A search snippet with its words in `[…]`, and `…` where text was cut.
fn marked(s: &spanlens_core::content::Snippet) -> String {
    let mut out = String::from(if s.cut_before { "…" } else { "" });
    let mut at = 0;
    for &(a, b) in &s.marks {
        let (Some(before), Some(word)) = (s.text.get(at..a), s.text.get(a..b)) else {
            break;
        };
        out.push_str(before);
        out.push('[');
        out.push_str(word);
        out.push(']');
        at = b;
    }
    out.push_str(s.text.get(at..).unwrap_or(""));
    if s.cut_after {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// spanlens trace

/// Traces scanned when resolving an id prefix (most recent first).
const PREFIX_SCAN_LIMIT: usize = 20_000;

/// Shows one trace as a tree (or the API's JSON).
pub fn run_trace(args: TraceArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let id = resolve_id(&client, &args.id)?;
    let path = format!("/api/v1/traces/{id}");
    // The table needs no analysis from the server: it is computed below from the spans.
    let query = if args.json {
        Vec::new()
    } else {
        vec![("analysis", "false".to_string())]
    };
    let Some(detail) = client.get_or_print::<TraceDetail>(&path, &query, args.json)? else {
        return Ok(Outcome::Done);
    };
    let spans = detail.spans;
    print!("{}", render_trace(&detail.trace, &spans));
    for u in &detail.unreadable_spans {
        eprintln!(
            "span {} of this trace is stored but cannot be read: {}",
            u.span_id.as_deref().unwrap_or("?"),
            u.reason
        );
    }
    // Computed here from the same spans with the server's code, so it matches the API's
    // `analysis` and also works against a server that predates it.
    print!("\n{}", render_analysis(&analyze(&spans), &spans));
    Ok(Outcome::Done)
}

/// A full trace id from a full id or a unique prefix of at least 6 hex digits.
pub(crate) fn resolve_id(client: &Client, raw: &str) -> anyhow::Result<String> {
    let id = raw.trim().to_ascii_lowercase();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InputError(format!("invalid trace id {raw:?}: expected hex digits")).into());
    }
    if id.len() == 32 {
        return Ok(id);
    }
    if id.len() > 32 {
        return Err(InputError(format!(
            "invalid trace id {raw:?}: longer than 32 hex digits"
        ))
        .into());
    }
    if id.len() < 6 {
        return Err(InputError(format!(
            "trace id prefix {raw:?} is too short: give at least 6 hex digits"
        ))
        .into());
    }
    let mut matches: Vec<(String, String)> = Vec::new();
    let mut scanned = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let q = TraceListQuery {
            limit: Some(1000),
            cursor: cursor.take(),
            ..Default::default()
        };
        let page: TracePage = client.get_answer("/api/v1/traces", &q.to_pairs())?;
        let items = page.items;
        scanned += items.len();
        for it in &items {
            let tid = it.trace_id.to_hex();
            if tid.starts_with(&id) {
                matches.push((tid, it.name.clone()));
            }
        }
        if matches.len() > 1 {
            let list: Vec<String> = matches
                .iter()
                .take(5)
                .map(|(t, n)| format!("  {t}  {n}"))
                .collect();
            return Err(InputError(format!(
                "trace id prefix {id} is ambiguous; it matches:\n{}\n  give more digits",
                list.join("\n")
            ))
            .into());
        }
        cursor = page.next_cursor;
        if cursor.is_none() || items.is_empty() || scanned >= PREFIX_SCAN_LIMIT {
            break;
        }
    }
    match matches.pop() {
        Some((t, _)) => Ok(t),
        None => Err(InputError(format!(
            "no trace id starts with {id} among the {scanned} most recent traces of project {:?}",
            client.project
        ))
        .into()),
    }
}

/// The header with the trace's totals, then one line per span in tree order.
fn render_trace(summary: &TraceRow, spans: &[Span]) -> String {
    let mut out = String::new();
    let errors = summary.error_count;
    let cached: u64 = spans
        .iter()
        .filter_map(|s| s.usage.as_ref())
        .map(|u| u.cache_read_tokens)
        .sum();
    let retries: usize = spans.iter().map(retry_count).sum();
    let unpriced = spans.iter().filter(|s| s.unpriced_reason.is_some()).count();
    let start = summary.start_time.to_rfc3339();
    let start = format!("{} {} UTC", &start[..10], &start[11..23]);
    let _ = writeln!(out, "trace {}  {}", summary.trace_id, summary.name);
    let _ = writeln!(
        out,
        "  started {start} · duration {} · {} spans · status {}{}",
        fmt_duration_ms(summary.duration_ms),
        summary.span_count,
        wire_name(&summary.status),
        if errors > 0 {
            format!(" · {errors} error(s)")
        } else {
            String::new()
        },
    );
    let mut cost_line = format!(
        "  tokens {} in{} / {} out · cost {}",
        summary.input_tokens,
        if cached > 0 {
            format!(" ({cached} cached)")
        } else {
            String::new()
        },
        summary.output_tokens,
        cost_text(NanoUsd(summary.total_cost_nano_usd), unpriced as u64),
    );
    if retries > 0 {
        let _ = write!(
            cost_line,
            " · {retries} retr{}",
            if retries == 1 { "y" } else { "ies" }
        );
    }
    let _ = writeln!(out, "{cost_line}");
    let mut ctx = Vec::new();
    for (label, value) in [
        ("service", &summary.service),
        ("user", &summary.user_id),
        ("session", &summary.session_id),
    ] {
        if let Some(v) = value {
            ctx.push(format!("{label} {v}"));
        }
    }
    if !summary.tags.is_empty() {
        ctx.push(format!("tags {}", summary.tags.join(", ")));
    }
    if !ctx.is_empty() {
        let _ = writeln!(out, "  {}", ctx.join(" · "));
    }

    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: HashMap<Option<SpanId>, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        // A span whose parent is missing (not arrived yet) is shown at the top level.
        let parent = s.parent_span_id.filter(|p| index.contains_key(p));
        children.entry(parent).or_default().push(i);
    }
    for v in children.values_mut() {
        v.sort_by_key(|i| (spans[*i].start_time, spans[*i].span_id));
    }
    let mut seen = vec![false; spans.len()];
    for &r in children.get(&None).map(Vec::as_slice).unwrap_or(&[]) {
        out.push_str(&span_line(&spans[r]));
        out.push('\n');
        seen[r] = true;
        walk(spans, &children, spans[r].span_id, "", &mut out, &mut seen);
    }
    // Spans caught in a parent cycle are never reached from a root; list them rather than drop them.
    for (i, s) in spans.iter().enumerate() {
        if !seen[i] {
            out.push_str(&format!("? {}\n", span_line(s)));
        }
    }
    out
}

fn walk(
    spans: &[Span],
    children: &HashMap<Option<SpanId>, Vec<usize>>,
    parent: SpanId,
    prefix: &str,
    out: &mut String,
    seen: &mut [bool],
) {
    let Some(kids) = children.get(&Some(parent)) else {
        return;
    };
    for (n, &i) in kids.iter().enumerate() {
        if seen[i] {
            continue;
        }
        seen[i] = true;
        let last = n + 1 == kids.len();
        let _ = writeln!(
            out,
            "{prefix}{} {}",
            if last { "└─" } else { "├─" },
            span_line(&spans[i])
        );
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        walk(spans, children, spans[i].span_id, &deeper, out, seen);
    }
}

/// Rows shown in the analysis' top lists.
const ANALYSIS_TOP: usize = 5;

/// The analysis below the tree: critical path, top self time, overhead, parallel groups,
/// agents, throughput and anything odd about the input.
fn render_analysis(a: &TraceAnalysis, spans: &[Span]) -> String {
    let mut out = String::new();
    let by_id: HashMap<String, &Span> = spans.iter().map(|s| (s.span_id.to_hex(), s)).collect();
    let label = |id: &str| {
        by_id
            .get(id)
            .map(|s| format!("{} [{}]", s.name, s.kind.as_str()))
            .unwrap_or_else(|| id.to_string())
    };
    let _ = writeln!(
        out,
        "analysis  wall {} · critical path {} · coordination overhead {} · parallelism {}",
        fmt_duration_ms(a.wall_ms),
        fmt_duration_ms(a.critical_path_ms),
        fmt_duration_ms(a.coordination_overhead_ms),
        a.parallelism_efficiency
            .map(|e| format!("{e:.2}×"))
            .unwrap_or_else(|| "-".into()),
    );
    let _ = writeln!(
        out,
        "  critical path ({} of {} spans; own = time not spent waiting on a critical child)",
        a.critical_path.len(),
        a.span_count
    );
    for c in &a.critical_path {
        let _ = writeln!(
            out,
            "    {}{} [{}] {} · own {}",
            "  ".repeat(c.depth),
            c.name,
            c.kind.as_str(),
            fmt_duration_ms(c.duration_ms),
            fmt_duration_ms(c.contribution_ms)
        );
    }
    let mut top: Vec<_> = a.spans.iter().filter(|t| t.self_ms > 0.0).collect();
    top.sort_by(|x, y| y.self_ms.total_cmp(&x.self_ms));
    if !top.is_empty() {
        let _ = writeln!(out, "  top self time");
        for t in top.iter().take(ANALYSIS_TOP) {
            let _ = writeln!(
                out,
                "    {:>8}  of {:>8}  {}{}",
                fmt_duration_ms(t.self_ms),
                fmt_duration_ms(t.duration_ms),
                label(&t.span_id),
                if t.critical { "  *critical" } else { "" }
            );
        }
    }
    if !a.overhead.is_empty() {
        let _ = writeln!(out, "  coordination overhead (parent time no child covers)");
        for o in a.overhead.iter().take(ANALYSIS_TOP) {
            let _ = writeln!(
                out,
                "    {:>8}  {:>5.1}% of {:>8}  {} ({} child{})",
                fmt_duration_ms(o.overhead_ms),
                o.overhead_ratio * 100.0,
                fmt_duration_ms(o.duration_ms),
                label(&o.span_id),
                o.children,
                if o.children == 1 { "" } else { "ren" }
            );
        }
    }
    if a.parallel_groups.is_empty() {
        let _ = writeln!(out, "  parallel groups: none (children ran one at a time)");
    } else {
        let _ = writeln!(out, "  parallel groups");
        for g in &a.parallel_groups {
            let _ = writeln!(
                out,
                "    {:.2}×  wall {} · work {} · at +{}  {}",
                g.efficiency,
                fmt_duration_ms(g.wall_ms),
                fmt_duration_ms(g.sum_ms),
                fmt_duration_ms(g.start_ms),
                fit(&g.names.join(" ‖ "), 80)
            );
        }
    }
    if !a.agents.is_empty() {
        let _ = writeln!(out, "  agents");
        for ag in &a.agents {
            let _ = writeln!(
                out,
                "    {:<24} wall {:>8} · own {:>8} · attributed {:>8} · {} run{}",
                fit(&ag.agent, 24),
                fmt_duration_ms(ag.wall_ms),
                fmt_duration_ms(ag.self_ms),
                fmt_duration_ms(ag.attributed_self_ms),
                ag.agent_spans,
                if ag.agent_spans == 1 { "" } else { "s" }
            );
        }
    }
    if !a.throughput.is_empty() {
        let _ = writeln!(out, "  throughput");
        for t in a.throughput.iter().take(ANALYSIS_TOP) {
            let _ = writeln!(
                out,
                "    {} items in {} = {}  {}",
                t.items,
                fmt_duration_ms(t.duration_ms),
                t.items_per_s
                    .map(|r| format!("{r:.1}/s"))
                    .unwrap_or_else(|| "-".into()),
                label(&t.span_id)
            );
        }
    }
    for (what, ids) in [
        (
            "unclosed (run to the latest known time)",
            &a.unclosed_span_ids,
        ),
        (
            "orphans (parent missing, shown as roots)",
            &a.orphan_span_ids,
        ),
        (
            "clock skew (outside the parent; clipped)",
            &a.clock_skew_span_ids,
        ),
    ] {
        if !ids.is_empty() {
            let names: Vec<String> = ids.iter().take(ANALYSIS_TOP).map(|i| label(i)).collect();
            let _ = writeln!(out, "  {} {what}: {}", ids.len(), names.join(", "));
        }
    }
    out
}

fn retry_count(s: &Span) -> usize {
    s.events.iter().filter(|e| e.name == "retry").count()
}

/// One span: name, kind, duration, model, tokens, TTFT, cost, retries, error.
fn span_line(s: &Span) -> String {
    let mut line = format!(
        "{} [{}] {}",
        s.name,
        s.kind.as_str(),
        s.duration_ns()
            .map(fmt_duration_ns)
            .unwrap_or_else(|| "open".into())
    );
    if let Some(m) = s.response_model.as_ref().or(s.request_model.as_ref()) {
        let _ = write!(line, " · {m}");
    }
    if let Some(u) = &s.usage {
        let _ = write!(line, " · {}→{} tok", u.input_tokens, u.output_tokens);
        let mut notes = Vec::new();
        if u.cache_read_tokens > 0 {
            notes.push(format!("{} cached", u.cache_read_tokens));
        }
        if u.cache_write_tokens > 0 {
            notes.push(format!("{} cache write", u.cache_write_tokens));
        }
        if u.reasoning_tokens > 0 {
            notes.push(format!("{} reasoning", u.reasoning_tokens));
        }
        if !notes.is_empty() {
            let _ = write!(line, " ({})", notes.join(", "));
        }
    }
    if let Some(t) = s.ttft_ns {
        let _ = write!(line, " · ttft {}", fmt_duration_ns(t));
    }
    if let Some(c) = &s.cost {
        let _ = write!(line, " · {}", c.amounts.total);
    } else if s.unpriced_reason.is_some() {
        line.push_str(" · unpriced");
    }
    let retries = retry_count(s);
    if retries > 0 {
        let _ = write!(
            line,
            " · {retries} retr{}",
            if retries == 1 { "y" } else { "ies" }
        );
    }
    if s.status == Status::Error {
        let what = match (&s.error_type, &s.status_message) {
            (Some(t), Some(m)) if !m.starts_with(t.as_str()) => format!("{t}: {m}"),
            (_, Some(m)) => m.clone(),
            (Some(t), None) => t.clone(),
            (None, None) => String::new(),
        };
        let _ = write!(line, " · ERROR {what}");
    }
    line.trim_end().to_string()
}

/// With `--json`, prints the answer as pretty JSON and returns true: the caller then prints no
/// table of it.
/// The name a value has on the wire (an enum's `snake_case` string), for tables.
pub(crate) fn wire_name(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

pub(crate) fn printed_as_json(json: bool, v: &impl serde::Serialize) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    }
    Ok(json)
}

// ---------------------------------------------------------------------------------------------
// spanlens recovery

/// Prints how retried operations recovered and the rate-limit headroom (or the API's JSON).
pub fn run_recovery(args: RecoveryArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let mut q = vec![("buckets", args.buckets.to_string())];
    if let Some(f) = &args.from {
        q.push(("from", f.clone()));
    }
    if let Some(t) = &args.to {
        q.push(("to", t.clone()));
    }
    if let Some(r) = client.get_or_print::<RecoveryAnswer>("/api/v1/recovery", &q, args.json)? {
        print!("{}", render_recovery(&r, args.limit));
    }
    Ok(Outcome::Done)
}

fn pct(v: Option<f64>) -> String {
    v.map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// One level of headroom per bucket: `·` no sample, then ▁ (exhausted) … █ (all left).
fn sparkline(buckets: &[HeadroomBucket]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    buckets
        .iter()
        .map(|b| match b.min_headroom {
            None => '·',
            Some(h) => BARS[((h.clamp(0.0, 1.0) * 7.0).round()) as usize],
        })
        .collect()
}

/// The recovery report as text: totals, the three groupings, recent timelines, headroom.
fn render_recovery(answer: &RecoveryAnswer, limit: usize) -> String {
    let mut out = String::new();
    let r = &answer.report;
    let _ = writeln!(
        out,
        "recovery  {} → {} UTC · project {}",
        short_time(&answer.from.to_rfc3339()),
        short_time(&answer.to.to_rfc3339()),
        answer.project,
    );
    let retried = r.spans_with_retries;
    if retried == 0 {
        let _ = writeln!(out, "  no retried spans in this range");
    } else {
        let _ = writeln!(
            out,
            "  {retried} spans retried · {} retries · {} recovered ({}) · {} failed",
            r.retries,
            r.recovered,
            pct(r.recovery_rate),
            r.failed,
        );
        if let Some(t) = &r.recovery_time {
            let _ = writeln!(
                out,
                "  recovery time (first failure → success): p50 {} · p95 {} · max {} · mean {} over {} spans",
                fmt_duration_ms(t.p50_ms),
                fmt_duration_ms(t.p95_ms),
                fmt_duration_ms(t.max_ms),
                fmt_duration_ms(t.mean_ms),
                t.count
            );
        }
    }
    for (title, rows) in [
        ("PROVIDER", &r.by_provider),
        ("TOOL", &r.by_tool),
        ("ERROR TYPE", &r.by_error_type),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{:<28} {:>6} {:>8} {:>10} {:>6}",
            title, "SPANS", "RETRIES", "RECOVERED", "RATE"
        );
        for g in rows {
            let _ = writeln!(
                out,
                "{:<28} {:>6} {:>8} {:>10} {:>6}",
                fit(&g.key, 28),
                g.spans,
                g.retries,
                g.recovered,
                pct(Some(g.recovery_rate))
            );
        }
    }
    if !r.timelines.is_empty() && limit > 0 {
        let _ = writeln!(
            out,
            "\nRECENT RETRIES ({} of {retried})\n{:<14} {:<26} {:>7}  {:<34} {:<9} {:>8}",
            limit.min(r.timelines.len()),
            "STARTED",
            "SPAN",
            "RETRIES",
            "ERRORS (BACKOFF)",
            "OUTCOME",
            "RECOVERY"
        );
        for t in r.timelines.iter().take(limit) {
            let errors: Vec<String> = t
                .attempts
                .iter()
                .map(|a| {
                    let e = a.error_type.as_deref().unwrap_or("?");
                    match a.backoff_ms {
                        Some(b) => format!("{e} ({})", fmt_duration_ms(b)),
                        None => e.to_string(),
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "{:<14} {:<26} {:>7}  {:<34} {:<9} {:>8}",
                short_time(&t.start_time.to_rfc3339()),
                fit(&t.name, 26),
                t.retries,
                fit(&errors.join(", "), 34),
                t.outcome,
                t.recovery_ms
                    .map(fmt_duration_ms)
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    if !r.rate_limits.is_empty() {
        let _ = writeln!(
            out,
            "\nRATE-LIMIT HEADROOM (remaining/limit, lowest per bucket: ▁ exhausted … █ all left, · no calls)\n{:<12} {:<14} {:>7} {:>6}  OVER TIME",
            "PROVIDER", "WINDOW", "SAMPLES", "MIN"
        );
        for s in &r.rate_limits {
            let _ = writeln!(
                out,
                "{:<12} {:<14} {:>7} {:>6}  {}",
                fit(&s.provider, 12),
                s.window,
                s.samples,
                pct(Some(s.min_headroom)),
                sparkline(&s.buckets)
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// spanlens tail

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Prints spans as they arrive until interrupted; reconnects when the server goes away.
pub fn run_tail(args: TailArgs) -> anyhow::Result<Outcome> {
    let kind = match &args.kind {
        None => None,
        Some(k) => Some(SpanKind::parse(k).ok_or_else(|| {
            let all: Vec<&str> = SpanKind::ALL.iter().map(|k| k.as_str()).collect();
            InputError(format!(
                "unknown --kind {k:?}: use one of {}",
                all.join(", ")
            ))
        })?),
    };
    let client = Client::new(&args.conn)?;
    let url = format!("{}/api/v1/live", client.base);
    // No overall deadline: the stream is meant to stay open. The server sends a keep-alive
    // comment every 15 s, so a read that waits much longer means the connection is dead.
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_per_read(Some(Duration::from_secs(45)))
            .build(),
    );
    let mut connected_once = false;
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut req = agent
            .get(&url)
            .query("project", &client.project)
            .header("Accept", "text/event-stream");
        if let Some(a) = &client.authorization {
            req = req.header("authorization", a);
        }
        let attempt = req.call();
        let mut resp = match attempt {
            Ok(r) => r,
            Err(e) if !connected_once => {
                return Err(Unreachable {
                    url: client.base.clone(),
                    reason: e.to_string(),
                }
                .into())
            }
            Err(e) => {
                eprintln!(
                    "spanlens tail: cannot reconnect to {}: {e}; retrying in {}",
                    client.base,
                    fmt_duration_ms(backoff.as_secs_f64() * 1000.0)
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            check_status(status, &url, &body)?;
        }
        if connected_once {
            eprintln!("spanlens tail: reconnected to {url}");
        } else {
            eprintln!(
                "spanlens tail: streaming spans of project {:?} from {url}{} (Ctrl-C to stop)",
                client.project,
                kind.map(|k| format!(", kind {}", k.as_str()))
                    .unwrap_or_default()
            );
        }
        connected_once = true;
        backoff = Duration::from_millis(500);
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        let why = read_events(reader, |event, data| on_event(event, data, kind));
        eprintln!(
            "spanlens tail: lost the connection to {} ({why}); reconnecting in {}",
            client.base,
            fmt_duration_ms(backoff.as_secs_f64() * 1000.0)
        );
        std::thread::sleep(backoff);
    }
}

/// Reads server-sent events until the stream ends; returns why it ended.
fn read_events(mut reader: impl BufRead, mut on: impl FnMut(&str, &str)) -> String {
    let mut event = String::new();
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return "the server closed the stream".into(),
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            if !data.is_empty() || !event.is_empty() {
                on(if event.is_empty() { "message" } else { &event }, &data);
            }
            event.clear();
            data.clear();
        } else if l.starts_with(':') {
            // A comment (keep-alive).
        } else {
            let (field, value) = l.split_once(':').unwrap_or((l, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = value.to_string(),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                _ => {} // id, retry: not needed here
            }
        }
    }
}

fn on_event(event: &str, data: &str, kind: Option<SpanKind>) {
    match event {
        "span" => {
            let Ok(v) = serde_json::from_str::<LiveSpan>(data) else {
                eprintln!("spanlens tail: unreadable span event: {data}");
                return;
            };
            if kind.is_some_and(|k| k != v.kind) {
                return;
            }
            println!("{}", live_line(&v));
        }
        "lagged" => {
            eprintln!("spanlens tail: missed {data} spans (this terminal could not keep up)")
        }
        _ => {}
    }
}

/// One arriving span: time, trace, kind, name, duration, model, tokens, cost, status.
fn live_line(v: &LiveSpan) -> String {
    let time = Timestamp::parse_rfc3339(&v.start_time)
        .map(|t| t.to_rfc3339()[11..23].to_string())
        .unwrap_or_else(|_| v.start_time.clone());
    let mut line = format!(
        "{time}  {:<8}  {:<9}  {:<32}  {:>8}",
        v.trace_id.get(..8).unwrap_or_default(),
        v.kind.as_str(),
        fit(&v.name, 32),
        v.duration_ms
            .map(fmt_duration_ms)
            .unwrap_or_else(|| "open".into()),
    );
    if let Some(m) = &v.model {
        let _ = write!(line, "  {m}");
    }
    if let Some(t) = v.tokens {
        let _ = write!(line, "  {} tok", fmt_tokens(t));
    }
    if let Some(c) = v.cost_usd.and_then(NanoUsd::from_usd_f64) {
        let _ = write!(line, "  {c}");
    } else if v.unpriced {
        line.push_str("  unpriced");
    }
    if v.status == Status::Error {
        line.push_str("  ERROR");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sse_events_are_split_on_blank_lines() {
        let text = ": keep-alive\n\nevent: span\ndata: {\"a\":1}\n\nevent: lagged\r\ndata: 3\r\n\r\ndata: x\ndata: y\n\n";
        let mut got = Vec::new();
        let why = read_events(text.as_bytes(), |e, d| {
            got.push((e.to_string(), d.to_string()))
        });
        assert_eq!(
            got,
            vec![
                ("span".to_string(), "{\"a\":1}".to_string()),
                ("lagged".to_string(), "3".to_string()),
                ("message".to_string(), "x\ny".to_string()),
            ]
        );
        assert!(why.contains("closed"));
    }

    /// A wire value from a JSON fixture: `base` with `over`'s fields put over it.
    fn wire<T: serde::de::DeserializeOwned>(mut base: Value, over: Value) -> T {
        if let (Value::Object(b), Value::Object(o)) = (&mut base, over) {
            b.extend(o);
        }
        serde_json::from_value(base).unwrap()
    }

    /// A trace row with `over`'s fields.
    fn trace_row(over: Value) -> TraceRow {
        let base = json!({
            "trace_id": "00000000000000000000000000000001", "project": "default", "name": "t",
            "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
            "duration_ms": 1000.0, "status": "ok", "span_count": 1, "error_count": 0,
            "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "total_cost_usd": 0.0,
            "total_cost_nano_usd": 0, "unpriced_span_count": 0, "user_id": null,
            "session_id": null, "tags": [], "root_span_id": null, "service": null,
        });
        wire(base, over)
    }

    #[test]
    fn table_rows_fit_120_columns() {
        let row = trace_row(json!({
            "trace_id": "5b8efff798038103d269b633813fc60c", "start_time": "2026-01-01T12:03:04.5Z",
            "name": "a very long pipeline name that does not fit", "duration_ms": 123456.0,
            "span_count": 12345, "input_tokens": 123_456_789u64, "output_tokens": 99_999, "total_cost_nano_usd": 123_456_789_000i64,
            "status": "error", "error_count": 3, "user_id": "someone.with.a.long.name@example.com",
        }));
        let unpriced = trace_row(json!({
            "trace_id": "6b8efff798038103d269b633813fc60c", "start_time": "2026-01-01T12:03:04.5Z",
            "name": "extract", "duration_ms": 1.0, "span_count": 3, "input_tokens": 10, "output_tokens": 5,
            "total_cost_nano_usd": 4_200_000, "unpriced_span_count": 3, "status": "ok", "user_id": "u",
        }));
        let t = traces_table(&[row, unpriced]);
        assert!(t.contains("$0.0042 + 3 unpriced"), "{t}");
        for line in t.lines() {
            assert!(
                line.chars().count() <= 120,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(
            t.contains("5b8efff7")
                && t.contains("01-01 12:03:04")
                && t.contains("2m03s")
                && t.contains("$123.4568")
        );
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_duration_ms(0.5), "500µs");
        assert_eq!(fmt_duration_ms(850.0), "850ms");
        assert_eq!(fmt_duration_ms(1234.0), "1.23s");
        assert_eq!(fmt_tokens(950), "950");
        assert_eq!(fmt_tokens(12_345), "12k");
        assert_eq!(fmt_tokens(1_234), "1.2k");
        assert_eq!(fmt_cost_cell(0, 0), "-");
        assert_eq!(fmt_cost_cell(50, 0), "<$0.0001");
        assert_eq!(fmt_cost_cell(4_200_000, 0), "$0.0042");
        assert_eq!(fmt_cost_cell(0, 2), "unpriced");
        assert_eq!(fmt_cost_cell(4_200_000, 1), "$0.0042 + 1 unpriced");
        assert_eq!(cost_text(NanoUsd(0), 3), "unpriced");
        assert_eq!(
            cost_text(NanoUsd(2_100_000), 3),
            format!("{} + 3 unpriced", NanoUsd(2_100_000))
        );
        assert_eq!(cost_text(NanoUsd(0), 0), NanoUsd(0).to_string());
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    /// The spans of the first support-ticket trace of demo seed 1.
    fn support_trace() -> Vec<Span> {
        let spans = spanlens_demo::generate(1, Timestamp(1_767_225_600_000_000_000));
        let tid = spans
            .iter()
            .find(|s| s.name == "support.handle_ticket")
            .unwrap()
            .trace_id;
        spans.into_iter().filter(|s| s.trace_id == tid).collect()
    }

    #[test]
    fn tree_shows_nesting_tokens_cost_retries_and_errors() {
        let trace = support_trace();
        let total: NanoUsd = trace
            .iter()
            .filter_map(|s| s.cost.as_ref())
            .map(|c| c.amounts.total)
            .sum();
        let summary = trace_row(
            json!({"trace_id": trace[0].trace_id.to_hex(), "name": "support.handle_ticket", "start_time": trace[0].start_time,
            "duration_ms": 1500.0, "span_count": trace.len(), "status": "ok", "error_count": 0,
            "input_tokens": 10, "output_tokens": 5, "total_cost_nano_usd": total.0, "user_id": "u", "tags": ["a", "b"]}),
        );
        let text = render_trace(&summary, &trace);
        assert!(text.contains(&format!("cost {total}")), "{text}");
        assert!(
            text.lines()
                .nth(4)
                .unwrap()
                .starts_with("support.handle_ticket [pipeline]"),
            "{text}"
        );
        assert!(
            text.contains("├─ triage_agent [agent]") || text.contains("└─ triage_agent [agent]"),
            "{text}"
        );
        assert!(
            text.contains("│  └─ triage.classify [llm]")
                || text.contains("   └─ triage.classify [llm]")
                || text.contains("│  ├─ triage.classify [llm]"),
            "{text}"
        );
        assert!(text.contains(" tok") && text.contains("ttft "), "{text}");
        assert_eq!(text.lines().count(), 4 + trace.len(), "{text}");
    }

    #[test]
    fn analysis_lists_critical_path_self_time_groups_and_agents() {
        let trace = support_trace();
        let a = analyze(&trace);
        let text = render_analysis(&a, &trace);
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("analysis  wall "), "{text}");
        assert!(
            first.contains("coordination overhead") && first.contains('×'),
            "{text}"
        );
        assert!(
            text.contains("    support.handle_ticket [pipeline] ") && text.contains(" · own "),
            "{text}"
        );
        let path_lines = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with("  top self time"))
            .count();
        assert_eq!(path_lines, a.critical_path.len(), "{text}");
        for section in ["  top self time", "  coordination overhead", "  agents"] {
            assert!(text.contains(section), "{section}: {text}");
        }
        assert!(text.contains("  parallel groups"), "{text}");
        assert!(
            text.contains(" ‖ "),
            "the demo runs agents in parallel: {text}"
        );
    }

    #[test]
    fn recovery_tables_and_headroom_sparkline() {
        let attempt = |n: u64, error: &str, backoff: Option<f64>| {
            json!({"attempt": n, "time": "2026-01-01T10:00:00Z", "offset_ms": 0.0,
                   "error_type": error, "error_message": null, "backoff_ms": backoff, "retry_after_ms": null})
        };
        let bucket = |h: Option<f64>| {
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T08:00:00Z", "samples": 1,
                   "min_headroom": h, "mean_headroom": h, "min_remaining": null, "limit": null, "throttled": 0})
        };
        let r: RecoveryAnswer = wire(
            empty_recovery(),
            json!({
                "spans_with_retries": 2, "recovered": 1, "failed": 1, "recovery_rate": 0.5, "retries": 3,
                "recovery_time": {"count": 1, "mean_ms": 1500.0, "p50_ms": 1500.0, "p95_ms": 1500.0, "max_ms": 1500.0},
                "by_provider": [{"key": "openai", "spans": 1, "retries": 2, "recovered": 1, "recovery_rate": 1.0}],
                "by_tool": [], "by_error_type": [{"key": "RateLimitError", "spans": 1, "retries": 2, "recovered": 1, "recovery_rate": 1.0}],
                "timelines": [{"trace_id": "00000000000000000000000000000001", "span_id": "0000000000000001",
                    "name": "chat", "kind": "llm", "provider": "openai", "tool": null, "agent": null,
                    "start_time": "2026-01-01T10:00:00Z", "retries": 2, "outcome": "recovered",
                    "stop_reason": null, "recovery_ms": 1500.0,
                    "attempts": [attempt(1, "RateLimitError", Some(1000.0)), attempt(2, "RateLimitError", None)]}],
                "rate_limits": [{"provider": "openai", "window": "requests", "samples": 2, "min_headroom": 0.0,
                    "buckets": [bucket(Some(1.0)), bucket(None), bucket(Some(0.0))]}],
            }),
        );
        let text = render_recovery(&r, 10);
        assert!(
            text.starts_with("recovery  01-01 00:00:00 → 01-02 00:00:00 UTC"),
            "{text}"
        );
        assert!(
            text.contains("2 spans retried · 3 retries · 1 recovered (50%) · 1 failed"),
            "{text}"
        );
        assert!(text.contains("p50 1.50s"), "{text}");
        assert!(
            text.contains("PROVIDER") && text.contains("ERROR TYPE") && !text.contains("\nTOOL"),
            "{text}"
        );
        assert!(text.contains("RateLimitError (1.00s), RateLimit"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("openai       requests") && l.ends_with("█·▁")),
            "{text}"
        );
        let none = render_recovery(&wire(empty_recovery(), json!({})), 10);
        assert!(none.contains("no retried spans"), "{none}");
    }

    /// A recovery answer over a day with nothing retried.
    fn empty_recovery() -> Value {
        json!({
            "project": "default", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z",
            "spans_with_retries": 0, "recovered": 0, "failed": 0, "recovery_rate": null, "retries": 0,
            "recovery_time": null, "by_provider": [], "by_tool": [], "by_error_type": [],
            "timelines": [], "timelines_truncated": false, "rate_limits": [],
        })
    }
}

// ---------------------------------------------------------------------------------------------
// spanlens alerts

/// Arguments of `spanlens alerts`.
#[derive(Args, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Shows the server's alert rules with their last value and announced state.
pub fn run_alerts(args: AlertsArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    if let Some(a) = client.get_or_print::<AlertsAnswer>("/api/v1/alerts", &[], args.json)? {
        print!("{}", render_alerts(&a));
    }
    Ok(Outcome::Done)
}

fn render_alerts(v: &AlertsAnswer) -> String {
    if !v.configured {
        return "no alert rules: start the server with `spanlens serve --alerts FILE`\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:<14}  {:>12}  {:>12}  {:>8}  {:<8}  {:>5}  last error",
        "rule", "metric", "value", "threshold", "window", "state", "sent"
    );
    for a in &v.alerts {
        let (rule, state) = (&a.rule, &a.state);
        let value = match state.value {
            Some(x) => format!("{x:.4}"),
            None => "no data".into(),
        };
        let mut status = wire_name(&state.status);
        if state.pending {
            status.push('*');
        }
        let _ = writeln!(
            out,
            "{:<24}  {:<14}  {:>12}  {:>12}  {:>7}s  {:<8}  {:>5}  {}",
            fit(&rule.name, 24),
            wire_name(&rule.metric),
            value,
            rule.threshold,
            rule.window_seconds,
            status,
            a.notifications,
            a.last_error.as_deref().unwrap_or("-"),
        );
    }
    out.push_str("(* the value has crossed the threshold; the cooldown delays the notification)\n");
    out
}

#[cfg(test)]
mod alerts_tests {
    use super::*;

    #[test]
    fn alert_table_shows_state_value_and_errors() {
        let v = serde_json::json!({"configured": true, "alerts": [
            {"rule": {"name": "error rate", "metric": "error_rate", "threshold": 0.5, "window_seconds": 300},
             "state": {"status": "firing", "value": 0.75, "pending": false}, "notifications": 1, "last_error": null},
            {"rule": {"name": "budget", "metric": "cost_usd", "threshold": 25.0, "window_seconds": 86400},
             "state": {"status": "ok", "value": null, "pending": false}, "notifications": 0,
             "last_error": "POST http://x/hook: HTTP 500"}]});
        let t = render_alerts(&serde_json::from_value(v).unwrap());
        assert!(
            t.contains("error rate") && t.contains("0.7500") && t.contains("firing"),
            "{t}"
        );
        assert!(t.contains("no data") && t.contains("HTTP 500"), "{t}");
        let none = AlertsAnswer {
            configured: false,
            alerts: Vec::new(),
        };
        assert!(render_alerts(&none).contains("--alerts"));
    }
}

// ---------------------------------------------------------------------------------------------
// spanlens scores

/// Arguments of `spanlens scores`.
#[derive(Args, Debug)]
pub struct ScoresArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Scores of this trace (id or unique prefix of 6+ hex digits) and its spans.
    #[arg(long)]
    trace: Option<String>,
    /// Scores of this session.
    #[arg(long)]
    session: Option<String>,
    /// Only scores of this name.
    #[arg(long)]
    name: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Lists evaluation scores of a running server.
pub fn run_scores(args: ScoresArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let mut q: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    if let Some(t) = &args.trace {
        q.push(("trace_id", resolve_id(&client, t)?));
    }
    if let Some(s) = &args.session {
        q.push(("session_id", s.clone()));
    }
    if let Some(n) = &args.name {
        q.push(("name", n.clone()));
    }
    if let Some(list) = client.get_or_print::<ScoreList>("/api/v1/scores", &q, args.json)? {
        print!("{}", render_scores(&list));
    }
    Ok(Outcome::Done)
}

fn render_scores(list: &ScoreList) -> String {
    if list.items.is_empty() {
        return "no scores\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20}  {:<10}  {:<8}  {:<8}  {:<16}  {:<20}  comment",
        "name", "value", "source", "trace", "span / session", "by"
    );
    for s in &list.items {
        let value = match s.data_type {
            ScoreType::Boolean if s.value == Some(1.0) => "pass".to_string(),
            ScoreType::Boolean => "fail".to_string(),
            ScoreType::Categorical => s.label.clone().unwrap_or_default(),
            ScoreType::Numeric => s.value.map(|x| format!("{x:.3}")).unwrap_or_default(),
        };
        let target = s
            .span_id
            .map(|id| id.to_hex())
            .or_else(|| s.session_id.clone())
            .unwrap_or_else(|| "-".into());
        let trace = s.trace_id.map(|t| t.to_hex()[..8].to_string());
        let _ = writeln!(
            out,
            "{:<20}  {:<10}  {:<8}  {:<8}  {:<16}  {:<20}  {}",
            fit(&s.name, 20),
            fit(&value, 10),
            s.source.as_str(),
            trace.as_deref().unwrap_or("-"),
            target,
            fit(s.author.as_deref().unwrap_or("-"), 20),
            s.comment.as_deref().unwrap_or(""),
        );
    }
    out
}

#[cfg(test)]
mod scores_tests {
    use super::*;

    #[test]
    fn score_table_reads_each_type() {
        let v = serde_json::json!({"items": [
            {"name": "valid json", "data_type": "boolean", "value": 0.0, "source": "rule",
             "trace_id": "0123456789abcdef0123456789abcdef", "span_id": "0123456789abcdef", "comment": "not JSON"},
            {"name": "helpfulness", "data_type": "numeric", "value": 0.8125, "source": "llm",
             "trace_id": "0123456789abcdef0123456789abcdef"},
            {"name": "outcome", "data_type": "categorical", "label": "resolved", "source": "human",
             "session_id": "s-1", "author": "account ada"}]});
        let t = render_scores(&serde_json::from_value(v).unwrap());
        assert!(t.contains("fail") && t.contains("not JSON"), "{t}");
        assert!(t.contains("0.812") || t.contains("0.813"), "{t}");
        assert!(t.contains("resolved") && t.contains("s-1"), "{t}");
        assert!(t.contains("account ada"), "the reviewer is shown: {t}");
        assert_eq!(
            render_scores(&ScoreList { items: Vec::new() }),
            "no scores\n"
        );
    }
}

/// Arguments of `spanlens graph`.
#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Trace id, or a unique prefix of at least 6 hex digits.
    id: String,
    /// Print the API's JSON (`/api/v1/traces/{id}/graph`) instead of tables.
    #[arg(long)]
    json: bool,
}

/// `spanlens graph`: a trace's agents, tools and models, and the calls between them.
pub fn run_graph(args: GraphArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let id = resolve_id(&client, &args.id)?;
    let path = format!("/api/v1/traces/{id}/graph");
    let Some(g) = client.get_or_print::<spanlens_api::TraceGraphAnswer>(&path, &[], args.json)?
    else {
        return Ok(Outcome::Done);
    };
    print!("{}", render_graph(&g.graph));
    for u in &g.unreadable_spans {
        eprintln!(
            "span {} of this trace is stored but cannot be read: {}",
            u.span_id.as_deref().unwrap_or("?"),
            u.reason
        );
    }
    Ok(Outcome::Done)
}

/// The nodes, then the edges slowest first, as two text tables.
fn render_graph(g: &spanlens_api::GraphView) -> String {
    let figures = |f: &spanlens_api::GraphFigures| {
        format!(
            "{:>6} {:>10} {:>18} {:>6}",
            f.calls,
            fmt_duration_ms(f.duration_ms),
            cost_text(NanoUsd(f.cost_nano_usd), f.unpriced_span_count),
            f.errors
        )
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:<40} {:>6} {:>10} {:>18} {:>6}",
        "NODE", "NAME", "CALLS", "TIME", "COST", "ERRORS"
    );
    for n in &g.nodes {
        let _ = writeln!(
            out,
            "{:<9} {:<40} {}",
            n.kind.as_str(),
            n.label,
            figures(&n.figures)
        );
    }
    let label = |id: &str| {
        g.nodes
            .iter()
            .find(|n| n.id == id)
            .map_or(id.to_string(), |n| n.label.clone())
    };
    let mut edges: Vec<_> = g.edges.iter().collect();
    edges.sort_by(|a, b| b.figures.duration_ms.total_cmp(&a.figures.duration_ms));
    let _ = writeln!(
        out,
        "\n{:<50} {:>6} {:>10} {:>18} {:>6}",
        "CALL", "CALLS", "TIME", "COST", "ERRORS"
    );
    for e in edges {
        let arrow = if e.handoff { "⇢" } else { "→" };
        let _ = writeln!(
            out,
            "{:<50} {}",
            format!("{} {arrow} {}", label(&e.from), label(&e.to)),
            figures(&e.figures)
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// spanlens queues

/// Arguments of `spanlens queues`.
#[derive(Args, Debug)]
pub struct QueuesArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Print the API's JSON (`/api/v1/queues`) instead of a table.
    #[arg(long)]
    json: bool,
}

/// `spanlens queues`: the project's review queues with their progress.
pub fn run_queues(args: QueuesArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    if let Some(list) =
        client.get_or_print::<spanlens_api::QueueList>("/api/v1/queues", &[], args.json)?
    {
        print!("{}", render_queues(&list));
    }
    Ok(Outcome::Done)
}

/// A bar of `width` cells: `#` done, `-` skipped, `.` pending.
fn progress_bar(p: &spanlens_api::QueueProgress, width: usize) -> String {
    if p.total == 0 {
        return " ".repeat(width);
    }
    let cells = |n: usize| (n * width).div_ceil(p.total).min(width);
    let done = cells(p.done);
    let skipped = cells(p.skipped).min(width - done);
    format!(
        "{}{}{}",
        "#".repeat(done),
        "-".repeat(skipped),
        ".".repeat(width - done - skipped)
    )
}

fn render_queues(list: &spanlens_api::QueueList) -> String {
    if list.queues.is_empty() {
        return format!("no review queues in project {:?}\n", list.project);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16}  {:<24}  {:>5}  {:>5}  {:>7}  {:>7}  {:<20}  reviewers",
        "id", "name", "items", "done", "skipped", "pending", "progress"
    );
    for q in &list.queues {
        let p = &q.progress;
        let reviewers: Vec<String> = p
            .reviewers
            .iter()
            .map(|r| format!("{} {}", r.reviewer, r.done))
            .collect();
        let _ = writeln!(
            out,
            "{:<16}  {:<24}  {:>5}  {:>5}  {:>7}  {:>7}  {}  {}",
            q.queue.id,
            fit(&q.queue.name, 24),
            p.total,
            p.done,
            p.skipped,
            p.pending,
            progress_bar(p, 20),
            reviewers.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod queues_tests {
    use super::*;

    #[test]
    fn queue_table_shows_counts_and_a_bar() {
        let v = serde_json::json!({"project": "shop", "queues": [{
            "queue": {"id": "0123456789abcdef", "name": "Failed jobs", "source": {"kind": "filter", "query": "status=error"},
                      "scores": [{"name": "ok", "data_type": "boolean"}], "created_by": "local (auth off)",
                      "created_ns": 1, "refreshed_ns": 1, "capped": false},
            "progress": {"total": 4, "done": 2, "skipped": 1, "pending": 1,
                         "reviewers": [{"reviewer": "account ada", "done": 2, "skipped": 1}]}}]});
        let t = render_queues(&serde_json::from_value(v).unwrap());
        assert!(
            t.contains("Failed jobs") && t.contains("0123456789abcdef"),
            "{t}"
        );
        assert!(
            t.contains("##########-----....."),
            "half done, a quarter skipped: {t}"
        );
        assert!(t.contains("account ada 2"), "{t}");
        let none = serde_json::json!({"project": "shop", "queues": []});
        assert_eq!(
            render_queues(&serde_json::from_value(none).unwrap()),
            "no review queues in project \"shop\"\n"
        );
    }
}
