//! The alert routes: publish, list (raw or current view), the live stream and the STIX
//! bundle.

use super::state::{ApiError, ApiState, MAX_PAGE, json_rejection};
use crate::store;
use alertmesh_protocol::{Content, Tlp};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use std::path::PathBuf;

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

pub(super) async fn publish(
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

pub(super) async fn list_alerts(
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
pub(super) async fn stream(
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

/// Query of `GET /v1/stix/bundle`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StixQuery {
    /// Only this topic.
    pub topic: Option<String>,
}

pub(super) async fn stix_bundle(
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
