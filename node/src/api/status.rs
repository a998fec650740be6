//! What the node tells about itself: peers, topics, status, metrics, and the charter
//! hand-in.

use super::state::{ApiError, ApiState, json_rejection};
use crate::store;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

pub(super) async fn peers(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.net.peers().await?))
}

pub(super) async fn topics(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.core.topics().await?))
}

pub(super) async fn status(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let mut status = serde_json::to_value(state.core.status().await?)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // The equivocation evidence held, each checked and described.
    let dir = state.data_dir.clone();
    let (reports, last_cursor) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let reports = crate::audit::evidence_reports(&dir)?;
        let last = store::last_cursor(&store::open_reader(&dir)?)?;
        Ok((reports, last))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    status["evidence_reports"] = serde_json::Value::from(reports);
    // The newest alert's cursor: a live stream resumed from it misses nothing after.
    status["last_cursor"] = serde_json::Value::from(last_cursor);
    // Reachability (AutoNAT v2), relay reservations and hole punches.
    status["network"] = serde_json::to_value(state.net.reach().await?)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(status))
}

/// Body of `POST /v1/charters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharterBody {
    /// The signed charter, hex-encoded.
    pub charter: String,
}

pub(super) async fn submit_charter(
    State(state): State<ApiState>,
    body: Result<Json<CharterBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let bytes = hex::decode(body.charter.trim()).map_err(|_| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "charter must be hex".into(),
        )
    })?;
    match state.core.submit_charter(bytes).await? {
        Ok(version) => Ok(Json(serde_json::json!({ "version": version }))),
        Err(e @ crate::core::SubmitError::Fork(_)) => {
            Err(ApiError(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
    }
}

pub(super) async fn metrics_text(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
