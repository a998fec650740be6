//! The routes, and the layers every one of them goes through.

use super::state::{ApiError, ApiState, MAX_BODY_BYTES};
use super::{alerts, auth, lookup, status};
use crate::core::CoreHandle;
use crate::metrics::Metrics;
use crate::net::NetHandle;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Builds the router.
pub fn router(
    core: CoreHandle,
    net: NetHandle,
    metrics: Metrics,
    token: Zeroizing<String>,
    data_dir: PathBuf,
) -> Router {
    let state = ApiState {
        core,
        net,
        metrics,
        token: Arc::new(token),
        data_dir,
    };
    Router::new()
        .route("/v1/alerts", get(alerts::list_alerts).post(alerts::publish))
        .route("/v1/alerts/stream", get(alerts::stream))
        .route(
            "/v1/alerts/{id}/correlations",
            get(lookup::alert_correlations),
        )
        .route("/v1/lookup", get(lookup::lookup))
        .route("/v1/search", get(lookup::search))
        .route("/v1/correlations", get(lookup::correlations))
        .route("/v1/peers", get(status::peers))
        .route("/v1/topics", get(status::topics))
        .route("/v1/status", get(status::status))
        .route("/v1/stix/bundle", get(alerts::stix_bundle))
        .route("/v1/charters", axum::routing::post(status::submit_charter))
        .route("/metrics", get(status::metrics_text))
        .merge(crate::taxii::router(
            state.core.clone(),
            state.data_dir.clone(),
        ))
        .merge(crate::misp::router(
            state.core.clone(),
            state.data_dir.clone(),
        ))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such route; see README.md, section Local API".into(),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::auth,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
