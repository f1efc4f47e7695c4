//! The query API's errors: one place maps a store error to its HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use spanlens_api::ErrorBody;
use spanlens_store::{FailureKind, StoreError};

/// A 4xx/5xx JSON error of the query API.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<StoreError> for ApiError {
    /// The query API's status for each class of store failure (`StoreError::kind`); ingest
    /// answers the same classes (see `ingest::store_error`).
    fn from(e: StoreError) -> ApiError {
        let status = match e.kind() {
            FailureKind::Retry => StatusCode::SERVICE_UNAVAILABLE,
            FailureKind::BadRequest => StatusCode::BAD_REQUEST,
            FailureKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<spanlens_api::ParamError> for ApiError {
    fn from(e: spanlens_api::ParamError) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, e.to_string())
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
