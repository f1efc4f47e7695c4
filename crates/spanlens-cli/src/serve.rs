//! `spanlens serve`: the collector, query API and web UI on one port, gRPC on another.

use anyhow::Context;
use clap::Args;
use spanlens_server::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `spanlens serve`.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
    /// Price overrides (the format of the built-in catalog, as for `spanlens reprice`): ingest
    /// prices with them over the built-in prices, and /api/v1/models lists them.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// OTLP/HTTP, JSON API and UI address.
    #[arg(long, default_value = "127.0.0.1:4318")]
    http: SocketAddr,
    /// OTLP/gRPC address.
    #[arg(long, default_value = "127.0.0.1:4317")]
    grpc: SocketAddr,
    /// Load the demo traces into the data directory first (skipped when already loaded).
    #[arg(long)]
    demo: bool,
    /// Alert rules (TOML: `webhook_url`, `interval_seconds`, `[[rule]]` tables; see the README):
    /// evaluated on a timer, notifications POSTed to the webhook.
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// Evaluators run on ingested spans (TOML: `[[evaluator]]` rules and `[[judge]]` LLM judges;
    /// see the README); their scores are stored with the spans.
    #[arg(long, value_name = "FILE")]
    evaluators: Option<PathBuf>,
    /// Endpoints LLM spans may be replayed on from the UI and API (TOML: `[[endpoint]]` tables
    /// of kind openai or anthropic, their keys read from the environment; see the README).
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Send what the server ingests on to other backends (TOML: `[[destination]]` tables of
    /// kind otlp, langfuse or langsmith; see the README), through a durable queue per
    /// destination under the data directory.
    #[arg(long, value_name = "FILE")]
    forward: Option<PathBuf>,
    /// A host name the server is reached by (repeatable). On a loopback address, requests
    /// naming another host than localhost, the loopback addresses or these are refused (a
    /// guard against DNS rebinding).
    #[arg(long = "public-name", value_name = "HOST")]
    public_names: Vec<String>,
    /// A browser origin (`https://host[:port]`) allowed to send data (repeatable); requests
    /// from other web pages are refused.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// A browser origin (`https://host[:port]`) whose pages may call the API with a key and
    /// read its answers (CORS; repeatable). Off by default.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Seconds an HTTP/1 client has to send a request's headers (also how long an idle
    /// kept-alive connection is kept).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    header_timeout: u64,
    /// Seconds a client has to send a request body.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    body_timeout: u64,
    /// Seconds a connection may stay silent both ways before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    idle_timeout: u64,
    /// Open connections over both listeners; more are refused (HTTP: 503 with Retry-After).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// MiB of request bodies (as received and decompressed) held at once; past it ingest
    /// answers 503 with Retry-After.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    max_inflight_mib: usize,
    /// `required`: every data route needs an API key (`spanlens keys create`), whose project is
    /// the only one it reaches. `off` (the default) is allowed only while both addresses are on
    /// loopback.
    #[arg(long, value_name = "MODE", default_value = "off", value_parser = ["off", "required"])]
    auth: String,
    /// Redact PII before storing, in every project: `builtin` runs the built-in detectors
    /// (secrets, e-mail, payment cards, IBANs, IP addresses, phone numbers); `off` (the
    /// default) leaves it to each project's settings.
    #[arg(long, value_name = "MODE", default_value = "off", value_parser = ["off", "builtin"])]
    redact: String,
    /// A custom detector for every project, `NAME=REGEX` (repeatable): matches become
    /// `[REDACTED:NAME]`.
    #[arg(long = "redact-rule", value_name = "NAME=REGEX")]
    redact_rules: Vec<String>,
    /// An attribute removed before storing, in every project (repeatable): a key, or a prefix
    /// ending in `*` (`http.request.header.*`).
    #[arg(long = "redact-drop", value_name = "KEY")]
    redact_drop: Vec<String>,
    /// An attribute stored as sent, not scanned by the detectors (repeatable; key or prefix*).
    #[arg(long = "redact-keep", value_name = "KEY")]
    redact_keep: Vec<String>,
}

/// The redaction every project gets, from the `--redact…` options.
fn redaction(
    args: &ServeArgs,
) -> Result<spanlens_core::redact::RedactionSettings, crate::InputError> {
    use spanlens_core::redact::{RedactionRule, RedactionSettings};
    let rules = args
        .redact_rules
        .iter()
        .map(|r| match r.split_once('=') {
            Some((name, pattern)) => Ok(RedactionRule {
                name: name.trim().to_string(),
                pattern: pattern.to_string(),
            }),
            None => Err(crate::InputError(format!(
                "--redact-rule {r:?}: write NAME=REGEX"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let settings = RedactionSettings {
        builtin: args.redact == "builtin",
        rules,
        drop_attributes: args.redact_drop.clone(),
        keep_attributes: args.redact_keep.clone(),
    };
    settings
        .compile()
        .map_err(|e| crate::InputError(format!("--redact…: {e}")))?;
    Ok(settings)
}

/// Runs the server until Ctrl-C or SIGTERM, then stops accepting, commits what it acknowledged,
/// and exits.
pub fn run(args: ServeArgs) -> anyhow::Result<crate::Outcome> {
    let alerts = match &args.alerts {
        Some(path) => Some(
            spanlens_server::alerts::AlertConfig::load(path)
                .map_err(|e| crate::InputError(e.to_string()))?,
        ),
        None => None,
    };
    let rules = alerts.as_ref().map_or(0, |a| a.rules.len());
    let evaluators = match &args.evaluators {
        Some(path) => Some(
            spanlens_server::evaluators::EvaluatorConfig::load(path)
                .map_err(|e| crate::InputError(e.to_string()))?,
        ),
        None => None,
    };
    let replay = match &args.replay {
        Some(path) => Some(
            spanlens_server::replay::ReplayConfig::load(path)
                .map_err(|e| crate::InputError(e.to_string()))?,
        ),
        None => None,
    };
    let forward = match &args.forward {
        Some(path) => spanlens_server::forward::config::load(path)
            .map_err(|e| crate::InputError(e.to_string()))?,
        None => Default::default(),
    };
    for d in &forward.destination {
        spanlens_server::forward::config::resolve(d)
            .map_err(|e| crate::InputError(e.to_string()))?;
    }
    let positive = |name: &str, v: u64| {
        if v == 0 {
            Err(crate::InputError(format!("--{name} must be at least 1")))
        } else {
            Ok(std::time::Duration::from_secs(v))
        }
    };
    if args.max_connections == 0 || args.max_inflight_mib == 0 {
        return Err(crate::InputError(
            "--max-connections and --max-inflight-mib must be at least 1".into(),
        )
        .into());
    }
    let limits = spanlens_server::Limits {
        header_read_timeout: positive("header-timeout", args.header_timeout)?,
        body_read_timeout: positive("body-timeout", args.body_timeout)?,
        idle_timeout: positive("idle-timeout", args.idle_timeout)?,
        max_connections: args.max_connections,
        max_inflight_bytes: args.max_inflight_mib.saturating_mul(1024 * 1024),
        ..spanlens_server::Limits::default()
    };
    let redaction = redaction(&args)?;
    let auth: spanlens_server::auth::AuthMode = args.auth.parse().map_err(crate::InputError)?;
    if auth == spanlens_server::auth::AuthMode::Off {
        if let Some(addr) = [args.http, args.grpc]
            .into_iter()
            .find(|a| !a.ip().is_loopback())
        {
            // The server refuses too; said here, nothing is opened first.
            let e = spanlens_server::ServerError::Unprotected { addr };
            return Err(crate::InputError(e.to_string()).into());
        }
    }
    let config = ServerConfig {
        forward,
        redaction,
        auth,
        http: args.http,
        grpc: args.grpc,
        data_dir: args.store.data_dir()?.unwrap_or_default(),
        catalog: match &args.prices {
            Some(path) => spanlens_server::state::Catalog::Loaded(std::sync::Arc::new(
                crate::insight::load_prices(path)?,
            )),
            None => spanlens_server::state::Catalog::Builtin,
        },
        alerts,
        evaluators,
        replay,
        limits,
        public_names: args.public_names,
        allowed_origins: args.allowed_origins,
        cors_origins: args.cors_origins,
    };
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(yield_to_the_writer)
        .build()
        .context("starting the async runtime")?;
    let uri = args.store.uri()?;
    // On the server's runtime: a server store runs its writer task there.
    let store = runtime.block_on(args.store.open_async())?;
    if args.demo {
        let seed = spanlens_demo::DEFAULT_SEED;
        if runtime.block_on(crate::demo::is_loaded(&*store, seed))? {
            tracing::info!(
                "demo traces already loaded (run `spanlens demo` to refresh their timestamps)"
            );
        } else {
            let r = runtime.block_on(crate::demo::load(&*store, seed))?;
            tracing::info!(
                traces = r.traces,
                spans = r.spans,
                project = "default",
                "loaded demo traces"
            );
        }
    }
    if rules > 0 {
        tracing::info!(rules, "evaluating alert rules");
    }
    runtime.block_on(spanlens_server::serve(
        &config,
        store.clone(),
        shutdown_signal(&runtime),
        |b| {
            tracing::info!(
                http = %format_args!("http://{}", b.http),
                grpc = %b.grpc,
                store = %uri,
                ready_ms = started.elapsed().as_millis() as u64,
                "listening on http (web UI, OTLP/HTTP, API) and grpc (OTLP/gRPC)"
            );
        },
    ))?;
    drop(store); // the SQLite writer commits anything still queued before the file closes
    tracing::info!("stopped");
    Ok(crate::Outcome::Done)
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled: a signal that arrives right after the server says it is listening
/// must stop it gracefully, not kill it with the default action.
fn shutdown_signal(rt: &tokio::runtime::Runtime) -> impl std::future::Future<Output = ()> {
    let _in_runtime = rt.enter();
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down (finishing requests in flight)");
    }
}

/// How much nicer than the store's threads the runtime's threads run.
#[cfg(target_os = "linux")]
const RUNTIME_NICENESS: libc::c_int = 10;

/// Runs each runtime thread (HTTP, decoding, normalising, queries) ten nice levels below the
/// store's writer and checkpointer, which the store starts from the main thread before the
/// runtime exists. Every request waits for the one writer's commit, so under load a writer left
/// waiting for a CPU behind eight normalising threads stalls them all. Measured on 2 cores with
/// `spanlens bench ingest` over 60 s: the writer waited for a CPU 10.4 s at 5 levels and 7.1 s
/// at 10 (3.2 s of every 10 s at none), and ingest rose accordingly. Only contention changes:
/// an idle server runs as before. An unprivileged process may always lower its own priority.
#[cfg(target_os = "linux")]
fn yield_to_the_writer() {
    // SAFETY: plain system calls on the calling thread's own id, no memory is shared.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        let _ = libc::setpriority(
            libc::PRIO_PROCESS,
            tid,
            (current + RUNTIME_NICENESS).min(19),
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn yield_to_the_writer() {}
