//! The HTTP side: OTLP/HTTP, OpenAI Agents and Langfuse ingest, the JSON query API, the live
//! stream, the OpenAPI document and the web UI.

mod admin;
mod collect;
mod compare;
mod erase;
mod error;
mod graph;
mod guard;
mod insight;
mod keys;
mod media;
mod meta;
mod metrics;
mod params;
mod prompts;
mod queues;
mod recovery;
mod replay;
mod rows;
mod scores;
mod session;
mod sessions;
mod stored;
mod traces;
mod tree;
mod tree_columns;
mod views;
mod whatif;
mod workflow;

pub use meta::OPENAPI_JSON;

use collect::MAX_WIRE_BYTES;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;

/// Every HTTP route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/traces", post(collect::otlp_traces))
        .route("/api/public/otel/v1/traces", post(collect::otlp_traces))
        .route("/v1/traces/ingest", post(collect::agents_ingest))
        .route("/v1/logs", post(collect::otlp_logs))
        .route("/api/v1/traces", get(traces::list_traces))
        .route("/api/v1/traces/outcomes", get(traces::trace_outcomes))
        .route(
            "/api/v1/traces/{trace_id}",
            get(traces::get_trace).delete(erase::delete_trace),
        )
        .route(
            "/api/v1/traces/{trace_id}/export",
            get(traces::export_trace),
        )
        .route("/api/v1/traces/{trace_id}/tree", get(tree::trace_tree))
        .route(
            "/api/v1/traces/{trace_id}/graph",
            get(graph::trace_graph_handler),
        )
        .route("/api/v1/graph", get(graph::workflow_graph))
        .route("/api/v1/prompts", get(prompts::list_prompts))
        .route(
            "/api/v1/traces/{trace_id}/spans/{span_id}",
            get(traces::trace_span),
        )
        .route("/api/v1/compare", get(compare::compare))
        .route("/api/v1/sessions", get(sessions::list_sessions))
        .route(
            "/api/v1/sessions/{session_id}",
            get(sessions::get_session).delete(erase::delete_session),
        )
        .route("/api/v1/users/{user_id}", delete(erase::delete_user))
        .route("/api/v1/metrics", get(metrics::metrics))
        .route("/api/v1/metrics/{group_by}", get(metrics::metrics_grouped))
        .route("/api/v1/recovery", get(recovery::recovery))
        .route("/api/v1/models", get(metrics::models))
        .route("/api/v1/forecast", get(insight::forecast_handler))
        .route("/api/v1/whatif", get(whatif::whatif))
        .route(
            "/api/v1/forecast/workflow",
            get(workflow::workflow_forecast),
        )
        .route(
            "/api/v1/reconciliation",
            get(insight::reconciliation_handler),
        )
        .route("/api/v1/projects", get(metrics::projects))
        .route("/api/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/api/v1/audit", get(admin::audit))
        .route("/api/v1/keys/{id}", delete(keys::revoke_key))
        .route(
            "/api/v1/session",
            get(session::get_session)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route(
            "/api/v1/accounts",
            get(session::list_accounts).post(session::create_account),
        )
        .route("/api/v1/accounts/{name}", put(session::set_role))
        .route(
            "/api/v1/projects/{project}/redaction",
            get(admin::get_redaction).put(admin::put_redaction),
        )
        .route(
            "/api/v1/projects/{project}/retention",
            get(admin::get_retention).put(admin::put_retention),
        )
        .route(
            "/api/v1/projects/{project}/quota",
            get(admin::get_quota).put(admin::put_quota),
        )
        .route(
            "/api/v1/projects/{project}/forwarding",
            get(admin::get_forwarding).put(admin::put_forwarding),
        )
        .route(
            "/api/v1/views",
            get(views::list_views).post(views::create_view),
        )
        .route(
            "/api/v1/views/{view_id}",
            get(views::get_view)
                .put(views::update_view)
                .delete(views::delete_view),
        )
        .route(
            "/api/v1/queues",
            get(queues::list_queues).post(queues::create_queue),
        )
        .route(
            "/api/v1/queues/{queue_id}",
            get(queues::get_queue).delete(queues::delete_queue),
        )
        .route(
            "/api/v1/queues/{queue_id}/refresh",
            post(queues::refresh_queue),
        )
        .route("/api/v1/queues/{queue_id}/next", post(queues::next_item))
        .route(
            "/api/v1/queues/{queue_id}/items/{item}",
            post(queues::review_item),
        )
        .route("/api/v1/stats", get(metrics::stats))
        .route("/api/v1/sdk/health", get(metrics::sdk_health))
        .route("/api/v1/live", get(meta::live))
        .route("/api/v1/alerts", get(meta::alerts))
        .route(
            "/api/v1/scores",
            get(scores::list_scores).post(scores::create_scores),
        )
        .route("/api/v1/scores/trends", get(scores::score_trends))
        .route("/api/v1/replay/endpoints", get(replay::endpoints))
        .route(
            "/api/v1/traces/{trace_id}/spans/{span_id}/replay",
            get(replay::draft),
        )
        .route("/api/v1/replay", post(replay::replay))
        .route("/api/v1/openapi.json", get(meta::openapi))
        .route("/api/v1/media/{hash}", get(media::get_media))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_WIRE_BYTES))
        // Keys are checked before a body is read or a query parsed.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn(refuse_nul_in_url))
        .with_state(state.clone())
        // The web UI's pages and assets; its paths never overlap the API's, so nothing is shadowed.
        .merge(spanlens_ui::router())
        // Outermost, so the UI is covered too: a rebound host name must not read it either.
        .layer(axum::middleware::from_fn_with_state(
            state.access().clone(),
            crate::access::guard,
        ))
}

/// Answers 400 to a URL whose path or query holds an encoded NUL (`%00`): no name, id or filter
/// contains one (stored text has them replaced), and PostgreSQL refuses the character outright,
/// so passing it on would turn a typo or a probe into a 500.
async fn refuse_nul_in_url(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    let at = if uri.path().contains("%00") {
        Some("path")
    } else if uri.query().is_some_and(|q| q.contains("%00")) {
        Some("query")
    } else {
        None
    };
    if let Some(at) = at {
        return error::ApiError(
            axum::http::StatusCode::BAD_REQUEST,
            format!("the URL's {at} holds a NUL character (%00): no name, id or filter has one"),
        )
        .into_response();
    }
    next.run(req).await
}
