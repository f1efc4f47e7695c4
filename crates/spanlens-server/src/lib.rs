//! The Spanlens server: OTLP/HTTP and OTLP/gRPC ingest (plus the OpenAI Agents and Langfuse
//! endpoints), the JSON query API, the live stream, on top of a [`spanlens_store::Store`].

pub mod access;
pub mod alerts;
pub mod auth;
pub mod budget;
pub mod commits;
pub mod evaluators;
pub mod forward;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod listen;
pub mod memory;
pub mod quota;
pub mod redaction;
pub mod replay;
pub mod retention;
pub mod sdk_health;
pub mod state;

pub use state::AppState;

use spanlens_store::{SqliteStore, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the server listens and keeps its data (the defaults: the OTLP ports on loopback).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// OTLP/HTTP, JSON API and UI.
    pub http: SocketAddr,
    /// OTLP/gRPC.
    pub grpc: SocketAddr,
    /// Directory of the SQLite database.
    pub data_dir: PathBuf,
    /// Alert rules and their webhook (`None`: no alerting).
    pub alerts: Option<alerts::AlertConfig>,
    /// Evaluators run on ingested spans (`None`: none).
    pub evaluators: Option<evaluators::EvaluatorConfig>,
    /// Timeouts, connection and in-flight limits.
    pub limits: Limits,
    /// Host names the server is reached by besides `localhost` and its addresses (for a
    /// loopback server behind a proxy or a local DNS name).
    pub public_names: Vec<String>,
    /// Browser origins (`https://host[:port]`) allowed to change data, besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Browser origins whose pages may call the API and read its answers (CORS; off when
    /// empty).
    pub cors_origins: Vec<String>,
    /// The prices ingest computes costs with (the built-in catalog by default).
    pub catalog: state::Catalog,
    /// What ingest redacts in every project (projects may add their own); off by default.
    pub redaction: spanlens_core::redact::RedactionSettings,
    /// Whether calls need an API key (`off` is refused on a non-loopback address).
    pub auth: auth::AuthMode,
    /// The forwarding file's destinations (projects may add their own through the API).
    pub forward: spanlens_api::ForwardConfig,
    /// Where LLM spans may be replayed (`None`: replay is off).
    pub replay: Option<replay::ReplayConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: SocketAddr::from(([127, 0, 0, 1], 4318)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            data_dir: PathBuf::from("spanlens-data"),
            alerts: None,
            evaluators: None,
            limits: Limits::default(),
            public_names: Vec::new(),
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            catalog: state::Catalog::Builtin,
            redaction: Default::default(),
            auth: auth::AuthMode::Off,
            forward: Default::default(),
            replay: None,
        }
    }
}

/// How long a client may take and how much it may hold, on both listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// An HTTP/1 request's headers must arrive within this; also how long a kept-alive
    /// connection may wait for its next request (hyper applies it to both).
    pub header_read_timeout: Duration,
    /// A request body must arrive within this.
    pub body_read_timeout: Duration,
    /// A connection with no byte in either direction for this long is closed (HTTP/2, gRPC,
    /// and a client that stops reading an answer).
    pub idle_timeout: Duration,
    /// Open connections over both listeners; past it, new ones are refused (HTTP: 503 with
    /// `Retry-After`). Lowered at start to fit the process's open-file limit.
    pub max_connections: usize,
    /// Request bytes (as received and decompressed) held at once over all requests; past it,
    /// ingest answers 503 with `Retry-After` (gRPC `RESOURCE_EXHAUSTED` with retry info).
    pub max_inflight_bytes: usize,
    /// A gRPC call (reading the request and committing its spans) must end within this.
    pub grpc_request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            max_connections: 1024,
            max_inflight_bytes: 256 * 1024 * 1024,
            grpc_request_timeout: Duration::from_secs(60),
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory or database could not be opened.
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        /// The data directory.
        dir: PathBuf,
        /// What went wrong.
        source: spanlens_store::StoreError,
    },
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(String),
    /// Listening beyond loopback without `--auth required`.
    #[error("refusing to listen on {addr} without authentication: anyone who reaches it could read and write every trace. Make an admin key first (`spanlens keys create --project NAME --scope admin` with this server's --data-dir or --store), then start with --auth required")]
    Unprotected {
        /// The non-loopback address.
        addr: SocketAddr,
    },
    /// The redaction settings are not usable.
    #[error("redaction settings: {0}")]
    Redaction(#[from] spanlens_core::redact::RedactError),
    /// The store URI names no store this build can open.
    #[error(transparent)]
    Uri(#[from] spanlens_store::StoreUriError),
    /// A server store (PostgreSQL) could not be reached or prepared (`source` names it).
    #[error("{source}")]
    Remote {
        /// The URI, password hidden.
        uri: String,
        /// What went wrong.
        source: spanlens_store::StoreError,
    },
}

/// Opens the store a URI names: `sqlite:///dir` is the embedded database of that directory
/// (created if missing); `postgres://…` connects and migrates (feature `postgres`). Call it on
/// the runtime that will use the store: a server backend runs its writer task there. Backends
/// this build lacks are a clear error naming the URI, its password hidden.
pub async fn open_store_uri(
    uri: &spanlens_store::StoreUri,
) -> Result<Arc<dyn spanlens_store::Store>, ServerError> {
    use spanlens_store::{StoreUri, StoreUriError};
    #[cfg_attr(
        all(feature = "postgres", feature = "clickhouse"),
        allow(unused_variables)
    )]
    let missing = |uri: &StoreUri| {
        ServerError::Uri(StoreUriError {
            uri: uri.redacted(),
            reason: format!("this build has no {} backend", uri.backend()),
        })
    };
    // A server backend that cannot be reached or opened, named by its URI (password hidden).
    #[cfg_attr(
        not(any(feature = "postgres", feature = "clickhouse")),
        allow(unused_variables)
    )]
    let remote = |source: spanlens_store::StoreError| ServerError::Remote {
        uri: uri.redacted(),
        source,
    };
    match uri {
        StoreUri::Sqlite { dir } => Ok(Arc::new(open_store(dir)?)),
        #[cfg(feature = "postgres")]
        StoreUri::Postgres { uri: text } => Ok(Arc::new(
            spanlens_store::PostgresStore::connect(text)
                .await
                .map_err(remote)?,
        )),
        #[cfg(not(feature = "postgres"))]
        StoreUri::Postgres { .. } => Err(missing(uri)),
        #[cfg(feature = "clickhouse")]
        StoreUri::ClickHouse { uri: text } => Ok(Arc::new(
            spanlens_store::ClickHouseStore::connect(text)
                .await
                .map_err(remote)?,
        )),
        #[cfg(not(feature = "clickhouse"))]
        StoreUri::ClickHouse { .. } => Err(missing(uri)),
    }
}

/// This server among those sharing a store (lease holders, logs): host name, process id and
/// start time, so a restarted server is a new holder.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{host}/{}/{started}", std::process::id())
}

/// The SQLite store of a data directory (created if missing).
pub fn open_store(data_dir: &std::path::Path) -> Result<SqliteStore, ServerError> {
    let err = |source| ServerError::Store {
        dir: data_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(|e| {
        err(spanlens_store::StoreError::Open {
            path: data_dir.to_path_buf(),
            reason: e.to_string(),
        })
    })?;
    let path = data_dir.join("spanlens.db");
    let latest = SqliteStore::latest_schema_version();
    let upgrading = SqliteStore::schema_version_of(&path).filter(|v| (1..latest).contains(v));
    if let Some(found) = upgrading {
        tracing::info!(
            database = %path.display(),
            from = found,
            to = latest,
            "upgrading the database schema (rewrites tables: may take a while on a large database)"
        );
    }
    // Migration 5 reads every span once (minutes for tens of millions): say how far it is. A
    // new database has nothing to read, and nothing is said.
    SqliteStore::open_with_progress(path, Default::default(), &mut |p| {
        if upgrading.is_none() || p.total == 0 {
            return;
        }
        let pct = (p.done as f64 * 100.0 / p.total.max(1) as f64).min(100.0);
        tracing::info!(
            version = p.version,
            step = %p.step,
            done = p.done,
            total = p.total,
            percent = pct.round() as u64,
            "upgrading the database schema"
        );
    })
    .map_err(err)
}

/// Addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// HTTP address.
    pub http: SocketAddr,
    /// gRPC address.
    pub grpc: SocketAddr,
}

/// Serves HTTP and gRPC over `store` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (so everything acknowledged is committed) and returns.
/// `on_bound` is told the bound addresses once both listeners are up.
pub async fn serve(
    config: &ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(Bound),
) -> Result<(), ServerError> {
    let mut state = AppState::new(store.clone())
        .with_catalog(config.catalog.clone())
        .with_limits(config.limits)
        .with_data_dir(config.data_dir.clone());
    if config.auth == auth::AuthMode::Off {
        if let Some(addr) = [config.http, config.grpc]
            .into_iter()
            .find(|a| !a.ip().is_loopback())
        {
            return Err(ServerError::Unprotected { addr });
        }
    }
    let keys = Arc::new(auth::Auth::new(
        config.auth,
        spanlens_auth::Directory::new(store.clone()),
    ));
    state = state.with_auth(keys.clone());
    tokio::spawn(auth::keep_uses(keys, state.stopped()));
    state
        .quotas()
        .refresh(&*store)
        .await
        .map_err(|e| ServerError::Serve(format!("reading the projects' quotas: {e}")))?;
    tokio::spawn(quota::keep_fresh(
        state.quotas().clone(),
        store.clone(),
        state.stopped(),
    ));
    tokio::spawn(retention::run(
        state.clone(),
        state.sweeper().clone(),
        instance_id(),
    ));
    let redactions = Arc::new(redaction::Redactions::new(config.redaction.clone())?);
    redactions.refresh(&*store).await.map_err(|e| {
        ServerError::Serve(format!("reading the projects' redaction settings: {e}"))
    })?;
    state = state.with_redactions(redactions.clone());
    tokio::spawn(redaction::keep_fresh(
        redactions,
        store.clone(),
        state.stopped(),
    ));
    if let Some(rp) = config.replay.clone() {
        state = state.with_replay(Arc::new(rp));
    }
    if let Some(ev) = config.evaluators.clone().filter(|e| !e.is_empty()) {
        state = state.with_evaluators(Arc::new(ev));
    }
    let forwarding = Arc::new(
        forward::Forwarding::start(
            &config.data_dir,
            config.forward.clone(),
            spanlens_forward::RetryPolicy::default(),
        )
        .map_err(|e| ServerError::Serve(format!("forwarding: {e}")))?,
    );
    if let Err(e) = forwarding.refresh(&*store).await {
        // A project's bad destination must not keep the server down: it is logged and shown.
        tracing::error!(error = %e, "a project's forwarding destination did not start");
    }
    state = state.with_forwarding(forwarding.clone());
    tokio::spawn(forward::keep_fresh(
        forwarding.clone(),
        store.clone(),
        state.stopped(),
    ));
    let mut alerts_task = None;
    if let Some(cfg) = &config.alerts {
        let saved = alerts::StateStore::new(store.clone());
        match saved.import_legacy_file(&config.data_dir).await {
            Ok(true) => tracing::info!(
                file = alerts::LEGACY_STATE_FILE,
                "alert state imported into the store"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "legacy alert state not imported"),
        }
        let (board, warning) = alerts::restore_board(cfg, &saved).await;
        if let Some(w) = warning {
            tracing::warn!(reason = %w, "saved alert state not restored");
        }
        state = state.with_alerts(board.clone());
        alerts_task = Some(tokio::spawn(alerts::run(
            store,
            cfg.clone(),
            board,
            Some(saved),
            instance_id(),
            state.stopped(),
        )));
    }
    let http_listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http,
            source,
        })?;
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.grpc,
            source,
        })?;
    let bound = Bound {
        http: http_listener
            .local_addr()
            .map_err(|e| ServerError::Serve(e.to_string()))?,
        grpc: grpc_listener
            .local_addr()
            .map_err(|e| ServerError::Serve(e.to_string()))?,
    };
    state = state.with_access(access::Access::for_server_with_cors(
        bound.http,
        &config.public_names,
        &config.allowed_origins,
        &config.cors_origins,
    ));
    let mut limits = config.limits;
    limits.max_connections = listen::fit_connection_limit(limits.max_connections);
    let slots = listen::Slots::new(limits.max_connections);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut stop_http = stop_tx.subscribe();
    let mut stop_grpc = stop_tx.subscribe();
    let app = http::router(state.clone());
    let stopper = state.clone();
    tokio::spawn(memory::release_when_idle(state.clone(), state.stopped()));
    let http_task = tokio::spawn(listen::serve_http(
        http_listener,
        app,
        limits,
        slots.clone(),
        async move {
            let _ = stop_http.recv().await;
        },
    ));
    let incoming = listen::grpc_incoming(grpc_listener, limits, slots);
    let grpc_task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .timeout(limits.grpc_request_timeout)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(Some(256))
            .http2_max_header_list_size(Some(64 * 1024))
            .add_service(grpc::TraceService::new(state.clone()))
            .add_service(grpc::LogsService::new(state))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop_grpc.recv().await;
            })
            .await
    });
    on_bound(bound);
    shutdown.await;
    stopper.begin_shutdown();
    let _ = stop_tx.send(());
    http_task
        .await
        .map_err(|e| ServerError::Serve(e.to_string()))?;
    let grpc_result = grpc_task
        .await
        .map_err(|e| ServerError::Serve(e.to_string()))?;
    grpc_result.map_err(|e| ServerError::Serve(format!("grpc: {e}")))?;
    // The alert round under way finishes, so a notification it delivered is saved before the
    // store closes and a restart does not announce it again (a webhook gets 10 s).
    if let Some(task) = alerts_task {
        if tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .is_err()
        {
            tracing::warn!("the alert round did not finish in 15 s; its state may not be saved");
        }
    }
    // Encoded batches reach the queues; what is not delivered yet waits there for the next start.
    let _ = tokio::task::spawn_blocking(move || forwarding.shutdown()).await;
    Ok(())
}
