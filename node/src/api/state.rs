//! What every route shares: the state, the error type, the body limits.

use crate::core::CoreHandle;
use crate::metrics::Metrics;
use crate::net::NetHandle;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Largest request body accepted.
pub(super) const MAX_BODY_BYTES: usize = 512 * 1024;
/// Most alerts one page returns.
pub(super) const MAX_PAGE: usize = 1000;

/// Shared API state.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) core: CoreHandle,
    pub(crate) net: NetHandle,
    pub(super) metrics: Metrics,
    pub(crate) token: Arc<Zeroizing<String>>,
    pub(crate) data_dir: PathBuf,
}

/// An API error: a status and a JSON `{"error": message}` body.
#[derive(Debug)]
pub struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"))
    }
}

/// A body that is not the JSON asked for: 413 over [`MAX_BODY_BYTES`], else 422.
pub(super) fn json_rejection(e: axum::extract::rejection::JsonRejection) -> ApiError {
    let status = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError(status, e.body_text())
}
