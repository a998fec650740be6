//! Lookup, search and correlation routes (issue 23), over the observable index
//! ([`crate::store::observables`]):
//!
//! - `GET /v1/lookup?value=&type=&cursor=&limit=`: every alert carrying a value;
//! - `GET /v1/search?q=&topic=&tlp=&kind=&org=&since=&until=&cursor=&limit=`: full text;
//! - `GET /v1/alerts/{id}/correlations`: the values an alert shares with others;
//! - `GET /v1/correlations?min_orgs=&since=&limit=`: values several orgs reported.
//!
//! A bad request gets 400 with `{"error": message, "reason": label}` and is counted in
//! `alertmesh_bad_queries_total{reason}`.

use super::state::{ApiError, ApiState, MAX_PAGE};
use crate::metrics::QueryLabels;
use crate::store::{self, observables as obs};
use alertmesh_protocol::Tlp;
use alertmesh_protocol::alert::AlertKind;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use obs::QueryError;
use serde::Deserialize;

/// Default page size.
const DEFAULT_PAGE: usize = 50;

/// A refused or failed request.
enum Refusal {
    Bad(QueryError),
    Failed(ApiError),
}

/// Answers a checked request: runs `read` with its arguments on a reader connection,
/// off the async threads. A refusal is a typed 400 (counted).
async fn answer<A: Send + 'static, T: serde::Serialize + Send + 'static>(
    state: &ApiState,
    checked: Result<A, QueryError>,
    read: impl FnOnce(&rusqlite::Connection, A) -> Result<T, Refusal> + Send + 'static,
) -> Response {
    let result = match checked {
        Err(e) => Err(Refusal::Bad(e)),
        Ok(args) => {
            let dir = state.data_dir.clone();
            tokio::task::spawn_blocking(move || {
                let conn = store::open_reader(&dir).map_err(|e| {
                    Refusal::Failed(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
                })?;
                read(&conn, args)
            })
            .await
            .unwrap_or_else(|e| {
                Err(Refusal::Failed(ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    e.to_string(),
                )))
            })
        }
    };
    match result {
        Ok(body) => Json(body).into_response(),
        Err(Refusal::Bad(e)) => bad_request(state, &e),
        Err(Refusal::Failed(e)) => e.into_response(),
    }
}

fn bad_request(state: &ApiState, e: &QueryError) -> Response {
    state
        .metrics
        .bad_queries
        .get_or_create(&QueryLabels { reason: e.reason() })
        .inc();
    let body = serde_json::json!({ "error": e.to_string(), "reason": e.reason() });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// A database error: an FTS5 query error is the client's (400 `invalid_parameter`;
/// queries are built so that none occurs), anything else ours.
fn db_error(e: rusqlite::Error) -> Refusal {
    let text = e.to_string();
    if text.contains("fts5") {
        Refusal::Bad(QueryError::InvalidParam("q", text))
    } else {
        Refusal::Failed(ApiError(StatusCode::INTERNAL_SERVER_ERROR, text))
    }
}

/// A query string that does not parse (unknown parameter, bad number).
fn rejection(e: axum::extract::rejection::QueryRejection) -> QueryError {
    QueryError::InvalidParam("query string", e.body_text())
}

fn page_size(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// Query of `GET /v1/lookup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// The value, e.g. `bad.example`.
    pub value: Option<String>,
    /// Its observable type (`domain`, `url`, …); without it, every type it reads as.
    #[serde(rename = "type")]
    pub ty: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<usize>,
}

pub(super) async fn lookup(
    State(state): State<ApiState>,
    query: Result<Query<LookupQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let checked = query.map_err(rejection).and_then(|Query(q)| {
        let keys = obs::lookup_keys(q.value.as_deref().unwrap_or(""), q.ty.as_deref())?;
        let cursor = obs::parse_cursor(q.cursor.as_deref())?;
        Ok((keys, cursor, page_size(q.limit)))
    });
    answer(&state, checked, |conn, (keys, cursor, limit)| {
        obs::lookup(conn, &keys, cursor, limit).map_err(db_error)
    })
    .await
}

/// Query of `GET /v1/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words that must all appear in the title, description or labels (`word*`: prefix).
    pub q: Option<String>,
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this TLP (`GREEN` or `TLP:GREEN`).
    pub tlp: Option<String>,
    /// Only this alert kind (`indicator`, `campaign`, …).
    pub kind: Option<String>,
    /// Only this author org.
    pub org: Option<String>,
    /// Only alerts created at or after (ms since the epoch).
    pub since: Option<i64>,
    /// Only alerts created before (ms since the epoch).
    pub until: Option<i64>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// A TLP parameter as stored (`TLP:GREEN`).
fn tlp_label(s: &str) -> Result<String, QueryError> {
    let upper = s.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("TLP:").unwrap_or(&upper);
    serde_json::from_value::<Tlp>(serde_json::Value::String(bare.to_string()))
        .map(|t| t.to_string())
        .map_err(|_| {
            QueryError::InvalidParam(
                "tlp",
                "one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED".into(),
            )
        })
}

/// An alert kind parameter as stored (`indicator`, …).
fn kind_label(s: &str) -> Result<String, QueryError> {
    let kind = s.trim().to_ascii_lowercase();
    serde_json::from_value::<AlertKind>(serde_json::Value::String(kind.clone()))
        .map(|_| kind)
        .map_err(|_| {
            QueryError::InvalidParam(
                "kind",
                "one of indicator, campaign, account-network, advisory, sighting".into(),
            )
        })
}

pub(super) async fn search(
    State(state): State<ApiState>,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let checked = query.map_err(rejection).and_then(|Query(q)| {
        let fts = obs::fts_query(q.q.as_deref().unwrap_or(""))?;
        let filter = obs::SearchFilter {
            topic: q.topic,
            tlp: q.tlp.as_deref().map(tlp_label).transpose()?,
            kind: q.kind.as_deref().map(kind_label).transpose()?,
            org: q.org,
            since: q.since,
            until: q.until,
        };
        let cursor = obs::parse_cursor(q.cursor.as_deref())?;
        Ok((fts, filter, cursor, page_size(q.limit)))
    });
    answer(&state, checked, |conn, (fts, filter, cursor, limit)| {
        obs::search(conn, &fts, &filter, cursor, limit).map_err(db_error)
    })
    .await
}

pub(super) async fn alert_correlations(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    let checked = hex::decode(id.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| QueryError::InvalidParam("id", "an alert id is 64 hex digits".into()));
    answer(&state, checked, |conn, id| {
        let Some(alert) = obs::alert_cursor(conn, &id).map_err(db_error)? else {
            return Err(Refusal::Failed(ApiError(
                StatusCode::NOT_FOUND,
                "no such alert here (not received, or not readable by this node)".into(),
            )));
        };
        obs::correlations_of(conn, alert)
            .map_err(db_error)?
            .ok_or_else(|| {
                Refusal::Failed(ApiError(
                    StatusCode::NOT_FOUND,
                    "the alert is not indexed".into(),
                ))
            })
    })
    .await
}

/// Query of `GET /v1/correlations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelatedQuery {
    /// Least distinct orgs (default 2).
    pub min_orgs: Option<usize>,
    /// Count only alerts created at or after (ms since the epoch; default: all).
    pub since: Option<i64>,
    /// Most values returned (default 50, at most 1000).
    pub limit: Option<usize>,
}

pub(super) async fn correlations(
    State(state): State<ApiState>,
    query: Result<Query<CorrelatedQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let checked = query.map_err(rejection).and_then(|Query(q)| {
        let min_orgs = q.min_orgs.unwrap_or(2);
        if min_orgs < 1 {
            return Err(QueryError::InvalidParam("min_orgs", "at least 1".into()));
        }
        Ok((min_orgs, q.since.unwrap_or(0), page_size(q.limit)))
    });
    answer(&state, checked, |conn, (min_orgs, since, limit)| {
        obs::correlated(conn, min_orgs, since, limit).map_err(db_error)
    })
    .await
}
