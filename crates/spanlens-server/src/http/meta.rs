//! Alerts, the live stream and the OpenAPI document.

use super::error::ApiError;
use super::params::Params;
use crate::state::{AppState, LiveEvent};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use spanlens_api::AlertsAnswer;

/// The OpenAPI document of the JSON API.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Alert rules with their state: what was measured last, what was announced, delivery errors.
/// A key sees the rules of its own project only.
pub(super) async fn alerts(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
) -> Json<AlertsAnswer> {
    let views = state.alerts();
    let mut alerts = views.clone().unwrap_or_default();
    if let Some(own) = caller.as_ref().and_then(|c| c.project()) {
        alerts.retain(|a| a.rule.project == own);
    }
    Json(AlertsAnswer {
        configured: views.is_some(),
        alerts,
    })
}

pub(super) async fn live(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError>
{
    let p = Params::parse(q)?;
    let project = p.string(&["project"]);
    let rx = st.subscribe();
    let stopped = st.stopped();
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx)
        .take_until(stopped)
        .filter_map(move |item| {
            let project = project.clone();
            async move {
                match item {
                    Ok(event) if project.as_deref().is_none_or(|p| p == event.project()) => {
                        let sent = match &*event {
                            LiveEvent::Span(s) => Event::default().event("span").json_data(s),
                            LiveEvent::Deleted(d) => Event::default().event("deleted").json_data(d),
                        };
                        Some(Ok(sent.unwrap_or_else(|_| {
                            Event::default().comment("unserialisable event")
                        })))
                    }
                    Ok(_) => None,
                    // A slow client missed events: say so instead of silently skipping them.
                    Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                        Some(Ok(Event::default().event("lagged").data(n.to_string())))
                    }
                }
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
