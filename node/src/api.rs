//! The local HTTP API (axum), bound to a loopback address, every route behind a bearer
//! token read from a 0600 file.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/alerts` | publish `{"topic", "tlp", "alert": {...}}` (or `"update"`, `"retraction"`) |
//! | `GET /v1/alerts?topic=&after=&limit=` | decrypted alerts after a cursor |
//! | `GET /v1/alerts?view=current&topic=&after=&limit=` | each alert's current state with its history and sightings |
//! | `GET /v1/alerts/stream` | committed alerts as server-sent events (`id` = cursor; resumes after `Last-Event-ID`) |
//! | `GET /v1/peers` | connected peers |
//! | `GET /v1/topics` | topics and this org's rights |
//! | `GET /v1/status` | node status, with the evidence held |
//! | `GET /v1/stix/bundle?topic=` | the alerts as a STIX 2.1 bundle |
//! | `POST /v1/charters` | hand in a signed charter `{"charter": hex}`: adopted and gossiped |
//! | `GET /metrics` | Prometheus text |
//! | `/taxii2/…` | TAXII 2.1 server: discovery, API root, collections (one per topic), objects, manifest, versions, status ([`crate::taxii`]) |
//! | `GET /misp/manifest.json`, `/misp/{uuid}.json`, `/misp/hashes.csv` | MISP feed, with `ETag`/`If-None-Match` ([`crate::misp`]) |
//! | `POST /v1/misp/events?topic=` | import a MISP event as an alert ([`crate::misp`]) |
//!
//! Authentication, on every route: the API token as `Authorization: Bearer <token>`, as the
//! password of HTTP Basic (`Authorization: Basic`, any user name; TAXII clients), or in the
//! header `X-Alertmesh-Token` (MISP feeds). Compared in constant time.

use crate::core::CoreHandle;
use crate::metrics::Metrics;
use crate::net::NetHandle;
use crate::store;
use alertmesh_protocol::{Content, Tlp};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 512 * 1024;
/// Most alerts one page returns.
const MAX_PAGE: usize = 1000;

/// Shared API state.
#[derive(Clone)]
pub struct ApiState {
    core: CoreHandle,
    net: NetHandle,
    metrics: Metrics,
    token: Arc<Zeroizing<String>>,
    data_dir: PathBuf,
}

/// An API error: a status and a JSON `{"error": message}` body.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

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
fn json_rejection(e: axum::extract::rejection::JsonRejection) -> ApiError {
    let status = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError(status, e.body_text())
}

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
        .route("/v1/alerts", get(list_alerts).post(publish))
        .route("/v1/alerts/stream", get(stream))
        .route("/v1/peers", get(peers))
        .route("/v1/topics", get(topics))
        .route("/v1/status", get(status))
        .route("/v1/stix/bundle", get(stix_bundle))
        .route("/v1/charters", axum::routing::post(submit_charter))
        .route("/metrics", get(metrics_text))
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
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Constant-time comparison of the presented bearer token.
async fn auth(
    State(state): State<ApiState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let presented = presented_token(&headers);
    let presented = presented.as_deref().map_or("", |s| s.as_str());
    let expected = state.token.as_bytes();
    let ok = presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !ok {
        let mut response = ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (Bearer, Basic password or X-Alertmesh-Token)".into(),
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer, Basic realm=\"alertmesh\""),
        );
        return response;
    }
    next.run(req).await
}

/// The token a request presents: `Authorization: Bearer <token>`, HTTP Basic with the token
/// as password (any user name), or `X-Alertmesh-Token: <token>`.
fn presented_token(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    use base64::Engine;
    if let Some(v) = headers
        .get("x-alertmesh-token")
        .and_then(|v| v.to_str().ok())
    {
        return Some(Zeroizing::new(v.trim().to_string()));
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(t) = auth.strip_prefix("Bearer ") {
        return Some(Zeroizing::new(t.to_string()));
    }
    let (scheme, rest) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || rest.len() > 4096 {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(Zeroizing::new(password.to_string()))
}

/// Body of `POST /v1/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// Topic name.
    pub topic: String,
    /// TLP marking (`CLEAR`, `GREEN`, `AMBER`, `AMBER+STRICT`, `RED`).
    pub tlp: Tlp,
    /// The content: `"alert"`, `"update"` or `"retraction"`.
    #[serde(flatten)]
    pub content: Content,
}

async fn publish(
    State(state): State<ApiState>,
    body: Result<Json<PublishBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    match state
        .core
        .publish(body.topic, body.tlp, body.content)
        .await?
    {
        Ok(receipt) => Ok((StatusCode::CREATED, Json(receipt))),
        Err(e) => {
            let status = crate::http::publish_status(&e);
            Err(ApiError(status, e.to_string()))
        }
    }
}

/// Query of `GET /v1/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this topic.
    pub topic: Option<String>,
    /// Only alerts after this cursor (default 0).
    pub after: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// `log` (default): every decrypted envelope in log order; `current`: each alert's
    /// current state with its history (updates, retraction) and sightings.
    pub view: Option<String>,
}

async fn list_alerts(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let after = q.after.unwrap_or(0);
    match q.view.as_deref() {
        None | Some("log") => {}
        Some("current") => {
            let dir = state.data_dir.clone();
            let topic = q.topic.clone();
            let (alerts, next) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let conn = store::open_reader(&dir)?;
                Ok(crate::views::lifecycle::current_view(
                    &conn,
                    topic.as_deref(),
                    after,
                    limit,
                )?)
            })
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
            return Ok(Json(serde_json::json!({ "alerts": alerts, "next": next })));
        }
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown view {other:?}: use `log` or `current`"),
            ));
        }
    }
    let dir = state.data_dir.clone();
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<store::StoredAlert>> {
        let conn = store::open_reader(&dir)?;
        Ok(store::list_alerts(&conn, q.topic.as_deref(), after, limit)?)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    let next = rows.last().map_or(after, |r| r.cursor);
    Ok(Json(serde_json::json!({ "alerts": rows, "next": next })))
}

/// Alerts read from the database per catch-up step of a live stream.
const STREAM_PAGE: usize = 256;

/// Where a live stream stands.
struct Follow {
    data_dir: PathBuf,
    committed: tokio::sync::broadcast::Receiver<store::StoredAlert>,
    /// The cursor of the last alert sent.
    cursor: i64,
    /// Alerts read from the database, not sent yet.
    backlog: std::collections::VecDeque<store::StoredAlert>,
    /// Whether the database may hold alerts past `cursor` that the backlog lacks.
    behind: bool,
    /// A database read failed: the stream ends (the client resumes with Last-Event-ID).
    failed: bool,
}

impl Follow {
    /// The next alert after `cursor`, or `None` when the node shuts down.
    async fn next(&mut self) -> Option<Result<store::StoredAlert, String>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(alert) = self.backlog.pop_front() {
                if alert.cursor > self.cursor {
                    self.cursor = alert.cursor;
                    return Some(Ok(alert));
                }
                continue;
            }
            if self.behind {
                let (dir, after) = (self.data_dir.clone(), self.cursor);
                let page = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let conn = store::open_reader(&dir)?;
                    Ok(store::list_alerts(&conn, None, after, STREAM_PAGE)?)
                })
                .await;
                match page {
                    Ok(Ok(rows)) => {
                        self.behind = rows.len() == STREAM_PAGE;
                        self.backlog.extend(rows);
                    }
                    Ok(Err(e)) => {
                        self.failed = true;
                        return Some(Err(format!("{e:#}")));
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e.to_string()));
                    }
                }
                continue;
            }
            match self.committed.recv().await {
                Ok(alert) => self.backlog.push_back(alert),
                // Missed some: read them from the database.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.behind = true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// `GET /v1/alerts/stream`: every alert committed after the client's `Last-Event-ID` (or,
/// without one, from now on), each once, in cursor order, with its cursor as the event id.
async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let last_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|c| *c >= 0)
                .ok_or_else(|| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        "Last-Event-ID must be an alert cursor (a non-negative integer)".into(),
                    )
                })?,
        ),
    };
    // Subscribe before reading where to start, so nothing committed in between is missed.
    let committed = state.core.subscribe();
    let cursor = match last_id {
        Some(c) => c,
        None => {
            let dir = state.data_dir.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
                Ok(store::last_cursor(&store::open_reader(&dir)?)?)
            })
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?
        }
    };
    let follow = Follow {
        data_dir: state.data_dir.clone(),
        committed,
        cursor,
        backlog: Default::default(),
        behind: last_id.is_some(),
        failed: false,
    };
    let events = futures::stream::unfold(follow, |mut follow| async move {
        let event = match follow.next().await? {
            Ok(alert) => Event::default()
                .id(alert.cursor.to_string())
                .event("alert")
                .json_data(&alert)
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "live stream cannot read the database");
                Event::default().event("error").data(e)
            }
        };
        Some((Ok(event), follow))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn peers(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.net.peers().await?))
}

async fn topics(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.core.topics().await?))
}

async fn status(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
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
    Ok(Json(status))
}

/// Query of `GET /v1/stix/bundle`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StixQuery {
    /// Only this topic.
    pub topic: Option<String>,
}

async fn stix_bundle(
    State(state): State<ApiState>,
    query: Result<Query<StixQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let dir = state.data_dir.clone();
    let bundle = tokio::task::spawn_blocking(move || {
        crate::views::bundle::bundle_for_data_dir(&dir, q.topic.as_deref())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/stix+json;version=2.1")],
        Json(bundle),
    ))
}

/// Body of `POST /v1/charters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharterBody {
    /// The signed charter, hex-encoded.
    pub charter: String,
}

async fn submit_charter(
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

async fn metrics_text(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
