//! The routes: the API's behind the token, the console's behind its sessions.

use super::state::{ApiError, ApiState, MAX_BODY_BYTES};
use super::{alerts, auth, lookup, status};
use crate::config::Config;
use crate::core::CoreHandle;
use crate::metrics::Metrics;
use crate::net::NetHandle;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Builds the router: the API behind the token, and the console.
pub fn router(
    core: CoreHandle,
    net: NetHandle,
    metrics: Metrics,
    token: Zeroizing<String>,
    config: &Config,
) -> Router {
    let data_dir = config.data_dir.clone();
    let state = ApiState {
        core,
        net,
        metrics,
        token: Arc::new(token),
        data_dir,
    };
    let api = Router::new()
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::auth,
        ));
    let console = crate::console::Console::new(state.clone(), config.clone());
    Router::new()
        .merge(api)
        .merge(crate::console::router(console))
        .fallback(fallback)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An unknown route: 404 for an API client with the token, the console's error page for
/// a browser, else 401 as on every API route.
async fn fallback(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if auth::token_ok(&state, &headers) {
        ApiError(
            StatusCode::NOT_FOUND,
            "no such route; see README.md, section Local API".into(),
        )
        .into_response()
    } else if crate::console::wants_html(&headers) {
        crate::console::not_found_page()
    } else {
        auth::unauthorized()
    }
}
