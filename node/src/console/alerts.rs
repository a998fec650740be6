//! The alert list: the newest alerts, filtered, and new ones live (server-sent events).
//!
//! Alerts are read as the JSON the API serves (`StoredAlert`, `AlertState`), so the
//! console shows exactly what `/v1/alerts` shows.

use super::layout::{self, PageError, Tab, tlp_badge};
use super::util::{check_len, read_db};
use super::{Authed, Console};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

/// Alerts the list shows at most (newest first).
const LIST_MAX: usize = 200;
/// Recent originals the list reads to filter from.
const LIST_WINDOW: i64 = 2000;
/// The alert kinds, in the protocol's JSON names.
pub const KINDS: [&str; 5] = [
    "indicator",
    "campaign",
    "account-network",
    "advisory",
    "sighting",
];
/// TLP labels, lowest first.
pub const TLPS: [&str; 5] = [
    "TLP:CLEAR",
    "TLP:GREEN",
    "TLP:AMBER",
    "TLP:AMBER+STRICT",
    "TLP:RED",
];

/// The `Alert` inside a stored row's JSON content.
pub(super) fn alert_json(content: &Value) -> &Value {
    content
        .get("alert")
        .or_else(|| content.get("update").and_then(|u| u.get("alert")))
        .unwrap_or(&Value::Null)
}

/// A string field of a JSON object (empty if absent).
pub(super) fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Query of `GET /alerts`: the filters.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    topic: Option<String>,
    tlp: Option<String>,
    kind: Option<String>,
    org: Option<String>,
}

impl Filters {
    fn value(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }

    fn matches(&self, row: &Value) -> bool {
        let alert = alert_json(&row["content"]);
        let ok = |f: &Option<String>, actual: &str| {
            f.as_deref().is_none_or(|f| f.is_empty() || f == actual)
        };
        ok(&self.topic, text(row, "topic"))
            && ok(&self.tlp, text(row, "tlp"))
            && ok(&self.kind, text(alert, "kind"))
            && ok(&self.org, text(row, "org"))
    }
}

fn select(name: &str, label: &str, options: &[String], chosen: &str) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) {
            option value="" { "any" }
            @for o in options {
                option value=(o) selected[o == chosen] { (o) }
            }
        }
    }
}

/// `GET /alerts`: the newest alerts, filtered, then live over SSE.
pub async fn list(
    State(console): State<Console>,
    authed: Authed,
    filters: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Ok(Query(filters)) = filters else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Bad filter",
            "The filter could not be read.",
        ));
    };
    for v in [&filters.topic, &filters.tlp, &filters.kind, &filters.org] {
        check_len("filter", Filters::value(v), 256)?;
    }
    let topics = console.topics().await?;
    let (last, rows, orgs) = read_db(&console.api.data_dir, |conn| {
        let last = crate::store::last_cursor(conn)?;
        let rows = crate::store::list_originals(
            conn,
            None,
            (last - LIST_WINDOW).max(0),
            LIST_WINDOW as usize,
        )?;
        let rows: Vec<Value> = rows
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        Ok((last, rows, super::util::org_names(conn)?))
    })
    .await?;
    let shown: Vec<&Value> = rows
        .iter()
        .rev()
        .filter(|r| filters.matches(r))
        .take(LIST_MAX)
        .collect();
    let topic_names: Vec<String> = topics
        .iter()
        .filter(|t| t.can_read)
        .map(|t| t.name.clone())
        .collect();
    let org_ids: Vec<String> = orgs.keys().cloned().collect();
    let tlps: Vec<String> = TLPS.iter().map(|s| s.to_string()).collect();
    let kinds: Vec<String> = KINDS.iter().map(|s| s.to_string()).collect();
    let body = html! {
        h1 { "Alerts" }
        form.filters method="get" action="/alerts" {
            (select("topic", "Topic", &topic_names, Filters::value(&filters.topic)))
            (select("tlp", "TLP", &tlps, Filters::value(&filters.tlp)))
            (select("kind", "Kind", &kinds, Filters::value(&filters.kind)))
            (select("org", "Org", &org_ids, Filters::value(&filters.org)))
            button type="submit" { "Filter" }
        }
        p.live { "Live: " span id="live-status" { "connecting" } }
        table.alerts id="alerts"
            data-after=(last)
            data-topic=(Filters::value(&filters.topic))
            data-tlp=(Filters::value(&filters.tlp))
            data-kind=(Filters::value(&filters.kind))
            data-org=(Filters::value(&filters.org)) {
            thead { tr { th { "Time" } th { "TLP" } th { "Topic" } th { "Org" } th { "Kind" } th { "Title" } } }
            tbody {
                @for r in &shown { (row(r)) }
            }
        }
        @if shown.is_empty() { p.empty id="no-alerts" { "No alerts match." } }
    };
    let csrf = authed.csrf(&console);
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Alerts", Tab::Alerts, Some(&csrf), body),
    ))
}

/// One row of the list (the script builds the same for live alerts).
fn row(r: &Value) -> Markup {
    let alert = alert_json(&r["content"]);
    let id = text(r, "id");
    html! {
        tr data-id=(id) {
            td.time { (layout::time(r["timestamp_ms"].as_i64().unwrap_or(0))) }
            td { (tlp_badge(text(r, "tlp"))) }
            td.topic { (text(r, "topic")) }
            td.org { (text(r, "org")) }
            td.kind { (text(alert, "kind")) }
            td.title { a href={ "/alerts/" (id) } { (text(alert, "title")) } }
        }
    }
}

/// Query of `GET /alerts/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Start after this cursor (the list page's newest), unless `Last-Event-ID` is sent.
    after: Option<i64>,
}

/// `GET /alerts/events`: the API's live stream of committed alerts, for the session.
pub async fn events(
    State(console): State<Console>,
    authed: Authed,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    mut headers: HeaderMap,
) -> Response {
    if !headers.contains_key("last-event-id") {
        if let Some(after) = query.ok().and_then(|q| q.after).filter(|a| *a >= 0) {
            if let Ok(v) = HeaderValue::from_str(&after.to_string()) {
                headers.insert("last-event-id", v);
            }
        }
    }
    let (parts, body) = crate::api::stream_alerts(console.api.clone(), headers)
        .await
        .into_response()
        .into_parts();
    // The stream ends with the session (logout or expiry), checked every few seconds.
    let ended = async move {
        loop {
            tokio::time::sleep(SESSION_RECHECK).await;
            if !authed.is_valid(&console) {
                return;
            }
        }
    };
    let body = axum::body::Body::from_stream(body.into_data_stream().take_until(ended));
    Response::from_parts(parts, body)
}

/// How often a live stream checks that its session still holds.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);
