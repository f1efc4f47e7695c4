//! The query API's errors: one place maps a store error to its HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use spanlens_store::StoreError;

/// A 4xx/5xx JSON error of the query API.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Busy { .. } => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            StoreError::InvalidQuery(_) | StoreError::InvalidCursor(_) => {
                ApiError(StatusCode::BAD_REQUEST, e.to_string())
            }
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

pub(crate) fn bad(param: &str, value: &str, why: &str) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        format!("invalid {param}={value:?}: {why}"),
    )
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}
