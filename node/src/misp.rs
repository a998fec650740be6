//! MISP: events out (export and a feed), events in (import).
//!
//! **Export** (`alertmesh export misp`, and the feed): one MISP event per alert, in its
//! current state.
//!
//! | alertmesh | MISP |
//! |---|---|
//! | alert | `Event`, `uuid` = UUIDv5 of `misp-event:<envelope id>` (stable everywhere) |
//! | title / severity | `info` / `threat_level_id` (critical, high → 1; medium → 2; low → 3) |
//! | author org | `Orgc` (`name` = the charter's name, `uuid` = UUIDv5 of the org) |
//! | TLP | tag `tlp:clear`, `tlp:green`, `tlp:amber`, `tlp:amber+strict`, `tlp:red` |
//! | topic, labels | tags `alertmesh:topic="<name>"`, one tag per label |
//! | domain, url, ipv4/ipv6, email, file-sha256, phone | attributes `domain`, `url`, `ip-dst`, `email-src`, `sha256`, `phone-number` |
//! | social account, hashtag | `microblog` objects (`username` + `type`, `hashtag`; `post` = the title) |
//! | ad id | attribute `text` (`network:id`) |
//! | update | same event, later `timestamp`, current attributes, tag `alertmesh:state="updated"` |
//! | retraction | tag `alertmesh:state="retracted"`, `info` prefixed `[RETRACTED]`, every `to_ids` false |
//!
//! **Feed** (under the API listener, same auth; a MISP instance adds it as a feed of type
//! "MISP Feed" with the header `X-Alertmesh-Token: <token>` or
//! `Authorization: Bearer <token>`): `GET /misp/manifest.json`, `GET /misp/<uuid>.json`,
//! `GET /misp/hashes.csv` (MD5 of each attribute value, then the event uuid), each with a
//! strong `ETag`; a matching `If-None-Match` gets 304. At most [`MAX_FEED_EVENTS`] events,
//! the most recently modified.
//!
//! **Import** (`alertmesh import misp EVENT.json --topic T`, `POST /v1/misp/events?topic=T`):
//! a MISP event becomes one alert (kind indicator). Attributes of the types above (and
//! `hostname`, `ip-src`, `email-dst`, `email`, `link`, microblog `hashtag`/`username`) become
//! observables; every other attribute is listed in the answer's `unmapped` with the reason,
//! never dropped silently. The TLP is the event's `tlp:*` tag (default `TLP:AMBER`).

use crate::core::CoreHandle;
use crate::stix;
use crate::views::lifecycle::{AlertState, Status};
use alertmesh_protocol::{Alert, AlertKind, Content, NetworkId, Observable, Severity, Tlp};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use md5::Digest as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Most events the feed lists (the most recently modified).
pub const MAX_FEED_EVENTS: usize = 10_000;
/// The misp-objects `microblog` template.
const MICROBLOG_UUID: &str = "8ec8c911-ddbe-4f5b-895b-fbff70c42a60";
const MICROBLOG_VERSION: &str = "20";
/// Largest MISP event accepted for import.
pub const MAX_IMPORT_BYTES: usize = 512 * 1024;

fn uuid(name: &str) -> String {
    stix::uuid_v5(&stix::namespace(), name.as_bytes())
}

/// The MISP tag of a TLP level.
pub fn tlp_tag(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "tlp:clear",
        Tlp::Green => "tlp:green",
        Tlp::Amber => "tlp:amber",
        Tlp::AmberStrict => "tlp:amber+strict",
        Tlp::Red => "tlp:red",
    }
}

/// A MISP `microblog` object holding `attrs`.
fn microblog(object_uuid: &str, ts: &str, attrs: Vec<Value>) -> Value {
    json!({
        "uuid": object_uuid,
        "name": "microblog",
        "meta-category": "misc",
        "description": "Microblog post like a Twitter tweet or a post on a Facebook wall.",
        "template_uuid": MICROBLOG_UUID,
        "template_version": MICROBLOG_VERSION,
        "timestamp": ts,
        "distribution": "5",
        "comment": "",
        "deleted": false,
        "Attribute": attrs,
    })
}

fn tag(name: &str) -> Value {
    json!({ "name": name })
}

/// The org names of the charters a database holds.
fn org_names(conn: &rusqlite::Connection) -> anyhow::Result<HashMap<String, String>> {
    let mut names = HashMap::new();
    for (_, bytes) in crate::store::charters(conn)? {
        if let Ok(c) = alertmesh_protocol::SignedCharter::decode(&bytes) {
            for m in &c.charter().members {
                names.insert(m.org_id.to_string(), m.name.clone());
            }
        }
    }
    Ok(names)
}

fn attribute(
    event_uuid: &str,
    ty: &str,
    category: &str,
    value: &str,
    ts: &str,
    to_ids: bool,
) -> Value {
    json!({
        "uuid": uuid(&format!("misp-attribute:{event_uuid}:{ty}:{value}")),
        "type": ty,
        "category": category,
        "value": value,
        "to_ids": to_ids,
        "timestamp": ts,
        "distribution": "5",
        "comment": "",
        "deleted": false,
        "disable_correlation": false,
    })
}

/// One alert's MISP event (`{"Event": {...}}`).
pub fn event(network: &NetworkId, names: &HashMap<String, String>, s: &AlertState) -> Value {
    let event_uuid = uuid(&format!("misp-event:{}", s.id));
    let retracted = s.retraction.is_some();
    let to_ids = !retracted;
    let modified_ms = s.modified_ms.max(s.created_ms).max(0) as u64;
    let ts = (modified_ms / 1000).to_string();
    let alert = &s.current;
    let title = alert.title.clone();
    let mut attributes = Vec::new();
    let mut objects = Vec::new();
    let mut hashtags = Vec::new();
    for (i, obs) in alert.observables.iter().enumerate() {
        let mut add = |t: &str, cat: &str, value: String| {
            attributes.push(attribute(&event_uuid, t, cat, &value, &ts, to_ids));
        };
        match obs {
            Observable::Domain(v) => add("domain", "Network activity", v.clone()),
            Observable::Url(v) => add("url", "Network activity", v.clone()),
            Observable::Email(v) => add("email-src", "Payload delivery", v.clone()),
            Observable::Phone(v) => add("phone-number", "Other", v.clone()),
            Observable::Ipv4(a) => add(
                "ip-dst",
                "Network activity",
                std::net::Ipv4Addr::from(*a).to_string(),
            ),
            Observable::Ipv6(a) => add(
                "ip-dst",
                "Network activity",
                std::net::Ipv6Addr::from(*a).to_string(),
            ),
            Observable::FileSha256(h) => add("sha256", "Payload delivery", hex::encode(h)),
            Observable::AdId { network, id } => add("text", "Other", format!("{network}:{id}")),
            Observable::Hashtag(v) => hashtags.push(v.clone()),
            Observable::SocialAccount { platform, handle } => {
                let object_uuid = uuid(&format!("misp-object:{event_uuid}:{i}"));
                let rel = |relation: &str, t: &str, value: &str| {
                    let mut a = attribute(&object_uuid, t, "Social network", value, &ts, false);
                    a["object_relation"] = json!(relation);
                    a
                };
                let attrs = vec![
                    rel("post", "text", &title),
                    rel("username", "text", handle),
                    rel("type", "text", platform),
                ];
                objects.push(microblog(&object_uuid, &ts, attrs));
            }
        }
    }
    if !hashtags.is_empty() {
        let object_uuid = uuid(&format!("misp-object:{event_uuid}:hashtags"));
        let mut attrs = Vec::new();
        let mut post = attribute(&object_uuid, "text", "Social network", &title, &ts, false);
        post["object_relation"] = json!("post");
        attrs.push(post);
        for h in &hashtags {
            let mut a = attribute(&object_uuid, "text", "Social network", h, &ts, false);
            a["object_relation"] = json!("hashtag");
            attrs.push(a);
        }
        objects.push(microblog(&object_uuid, &ts, attrs));
    }
    let mut tags = vec![
        tag(tlp_tag(s.tlp)),
        tag(&format!("alertmesh:topic=\"{}\"", s.topic)),
    ];
    match s.state {
        Status::Retracted => tags.push(tag("alertmesh:state=\"retracted\"")),
        Status::Updated => tags.push(tag("alertmesh:state=\"updated\"")),
        Status::Active => {}
    }
    for l in &alert.labels {
        tags.push(tag(l));
    }
    let threat = match alert.severity {
        Severity::Critical | Severity::High => "1",
        Severity::Low => "3",
        Severity::Medium => "2",
    };
    let info = if retracted {
        format!("[RETRACTED] {title}")
    } else {
        title.clone()
    };
    let date = crate::clock::rfc3339(s.created_ms.max(0) as u64);
    let org_name = names.get(&s.org).cloned().unwrap_or_else(|| s.org.clone());
    let mut ev = json!({
        "uuid": event_uuid,
        "info": info,
        "date": date.get(..10).unwrap_or("1970-01-01"),
        "timestamp": ts,
        "publish_timestamp": ts,
        "published": true,
        "analysis": "2",
        "threat_level_id": threat,
        "distribution": "3",
        "Orgc": {
            "name": org_name,
            "uuid": uuid(&format!("misp-org:{}:{}", network.to_hex(), s.org)),
        },
        "Tag": tags,
        "Attribute": attributes,
        "Object": objects,
    });
    let description = alert.description.clone();
    if !description.is_empty() || retracted {
        let mut comment = description;
        if let Some(r) = &s.retraction {
            comment = format!("Retracted: {}. {comment}", r.reason);
        }
        if let Some(a) = ev["Attribute"].as_array_mut() {
            a.push(attribute(
                &event_uuid,
                "comment",
                "Other",
                &comment,
                &ts,
                false,
            ));
        }
    }
    json!({ "Event": ev })
}

/// Every event of a data dir (optionally one topic), most recently modified last.
pub fn events_for_data_dir(data_dir: &Path, topic: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let conn = crate::store::open_reader(data_dir)?;
    let network = crate::store::network_id(&conn)?;
    let names = org_names(&conn)?;
    let mut states = crate::views::lifecycle::all_states(&conn, topic)?;
    states.sort_by_key(|s| (s.modified_ms, s.cursor));
    let skip = states.len().saturating_sub(MAX_FEED_EVENTS);
    Ok(states[skip..]
        .iter()
        .map(|s| event(&network, &names, s))
        .collect())
}

/// The feed's manifest entry of an event.
fn manifest_entry(ev: &Value) -> Value {
    let e = &ev["Event"];
    json!({
        "Orgc": e["Orgc"],
        "Tag": e["Tag"],
        "info": e["info"],
        "date": e["date"],
        "analysis": e["analysis"],
        "threat_level_id": e["threat_level_id"],
        "timestamp": e["timestamp"],
    })
}

/// Attribute values of an event (and its objects).
fn values(ev: &Value) -> Vec<String> {
    let e = &ev["Event"];
    let mut out = Vec::new();
    let mut push = |attrs: &Value| {
        for a in attrs.as_array().into_iter().flatten() {
            if let Some(v) = a.get("value").and_then(Value::as_str) {
                out.push(v.to_string());
            }
        }
    };
    push(&e["Attribute"]);
    for o in e["Object"].as_array().into_iter().flatten() {
        push(&o["Attribute"]);
    }
    out
}

/// A MISP feed directory's files: `manifest.json`, `hashes.csv`, `<uuid>.json`.
pub fn feed_files(events: &[Value]) -> Vec<(String, String)> {
    let mut manifest = serde_json::Map::new();
    let mut hashes = String::new();
    let mut files = Vec::new();
    for ev in events {
        let id = ev["Event"]["uuid"].as_str().unwrap_or("").to_string();
        manifest.insert(id.clone(), manifest_entry(ev));
        for v in values(ev) {
            hashes.push_str(&format!(
                "{},{id}\n",
                hex::encode(md5::Md5::digest(v.as_bytes()))
            ));
        }
        files.push((format!("{id}.json"), ev.to_string()));
    }
    files.push(("manifest.json".into(), Value::Object(manifest).to_string()));
    files.push(("hashes.csv".into(), hashes));
    files
}

/// What an import made of an event.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The alert.
    pub alert: Alert,
    /// The TLP.
    pub tlp: Tlp,
    /// Attributes that have no alertmesh observable: `{type, value, reason}`.
    pub unmapped: Vec<Value>,
    /// How many attributes became observables.
    pub mapped: usize,
}

fn tlp_of_tag(name: &str) -> Option<Tlp> {
    match name.trim().to_ascii_lowercase().as_str() {
        "tlp:clear" | "tlp:white" => Some(Tlp::Clear),
        "tlp:green" => Some(Tlp::Green),
        "tlp:amber" => Some(Tlp::Amber),
        "tlp:amber+strict" => Some(Tlp::AmberStrict),
        "tlp:red" => Some(Tlp::Red),
        _ => None,
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Maps a MISP event (`{"Event": …}` or the bare event) to an alert.
pub fn import(event: &Value, now_ms: u64) -> Result<Imported, String> {
    let e = event.get("Event").unwrap_or(event);
    if !e.is_object() {
        return Err("a MISP event must be a JSON object ({\"Event\": {...}})".into());
    }
    let info = e.get("info").and_then(Value::as_str).unwrap_or("").trim();
    let uuid = e.get("uuid").and_then(Value::as_str).unwrap_or("");
    let title = if info.is_empty() {
        format!("MISP event {uuid}")
    } else {
        truncate(info, 256)
    };
    let mut observables = Vec::new();
    let mut unmapped = Vec::new();
    let mut mapped = 0usize;
    let mut description_parts = Vec::new();
    let mut map_one = |ty: &str, value: &str, relation: Option<&str>, platform: Option<&str>| {
        let obs = match (relation, ty) {
            (Some("hashtag"), _) => Some(Observable::Hashtag(
                value.trim_start_matches('#').to_string(),
            )),
            (Some("username"), _) => Some(Observable::SocialAccount {
                platform: platform
                    .filter(|p| !p.is_empty())
                    .unwrap_or("unknown")
                    .to_string(),
                handle: value.to_string(),
            }),
            (Some("post" | "type"), _) => return,
            (_, "domain" | "hostname") => Some(Observable::Domain(value.to_string())),
            (_, "url" | "link") => Some(Observable::Url(value.to_string())),
            (_, "ip-dst" | "ip-src") => match value.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(a)) => Some(Observable::Ipv4(a.octets())),
                Ok(std::net::IpAddr::V6(a)) => Some(Observable::Ipv6(a.octets())),
                Err(_) => {
                    unmapped.push(json!({"type": ty, "value": truncate(value, 256), "reason": "not an IP address (ranges and ports do not map)"}));
                    return;
                }
            },
            (_, "email-src" | "email-dst" | "email") => Some(Observable::Email(value.to_string())),
            (_, "sha256") => {
                let mut b = [0u8; 32];
                match hex::decode_to_slice(value.trim(), &mut b) {
                    Ok(()) => Some(Observable::FileSha256(b)),
                    Err(_) => {
                        unmapped.push(json!({"type": ty, "value": truncate(value, 256), "reason": "not 64 hex digits"}));
                        return;
                    }
                }
            }
            (_, "phone-number") => Some(Observable::Phone(value.to_string())),
            (_, "comment") => {
                description_parts.push(value.to_string());
                mapped += 1;
                return;
            }
            _ => None,
        };
        match obs {
            Some(o) if !value.is_empty() && value.len() <= 2048 && observables.len() < 1000 => {
                observables.push(o);
                mapped += 1;
            }
            Some(_) => unmapped.push(json!({"type": ty, "value": truncate(value, 256), "reason": "empty, over 2048 bytes, or beyond 1000 observables"})),
            None => unmapped.push(json!({"type": ty, "value": truncate(value, 256), "reason": format!("MISP type {ty} has no alertmesh observable")})),
        }
    };
    for a in e
        .get("Attribute")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ty = a.get("type").and_then(Value::as_str).unwrap_or("");
        let value = a.get("value").and_then(Value::as_str).unwrap_or("");
        map_one(ty, value, None, None);
    }
    for o in e
        .get("Object")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = o.get("name").and_then(Value::as_str).unwrap_or("");
        let attrs: Vec<&Value> = o
            .get("Attribute")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        if name == "microblog" {
            let platform = attrs
                .iter()
                .find(|a| a.get("object_relation").and_then(Value::as_str) == Some("type"))
                .and_then(|a| a.get("value").and_then(Value::as_str));
            for a in &attrs {
                let ty = a.get("type").and_then(Value::as_str).unwrap_or("");
                let value = a.get("value").and_then(Value::as_str).unwrap_or("");
                let rel = a.get("object_relation").and_then(Value::as_str);
                match rel {
                    Some("hashtag" | "username" | "post" | "type") => {
                        map_one(ty, value, rel, platform)
                    }
                    _ => map_one(ty, value, None, None),
                }
            }
        } else {
            for a in attrs {
                let ty = a.get("type").and_then(Value::as_str).unwrap_or("");
                let value = a.get("value").and_then(Value::as_str).unwrap_or("");
                map_one(ty, value, None, None);
            }
        }
    }
    let mut tlp = None;
    let mut labels = Vec::new();
    for t in e.get("Tag").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        if let Some(level) = tlp_of_tag(name) {
            tlp = tlp.max(Some(level));
        } else if !name.starts_with("alertmesh:")
            && !name.is_empty()
            && name.len() <= 2048
            && labels.len() < 1000
        {
            labels.push(name.to_string());
        }
    }
    let severity = match e
        .get("threat_level_id")
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        })
        .as_deref()
    {
        Some("1") => Severity::High,
        Some("3") => Severity::Low,
        _ => Severity::Medium,
    };
    let valid_from_ms = e
        .get("date")
        .and_then(Value::as_str)
        .and_then(|d| crate::stix::parse_ms(&format!("{d}T00:00:00Z")))
        .unwrap_or(now_ms);
    let mut references = Vec::new();
    if !uuid.is_empty() && uuid.len() <= 100 {
        references.push(format!("misp-event:{uuid}"));
    }
    let org = e
        .get("Orgc")
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut description = description_parts.join("\n");
    if description.is_empty() {
        description = format!("Imported from MISP event {uuid} of {org}");
    }
    let alert = Alert {
        kind: AlertKind::Indicator,
        title,
        description: truncate(&description, 16 * 1024),
        severity,
        confidence: 50,
        observables,
        labels,
        references,
        valid_from_ms,
        valid_until_ms: None,
        related: vec![],
        stix: None,
    };
    alert.check().map_err(|e| e.to_string())?;
    Ok(Imported {
        alert,
        tlp: tlp.unwrap_or(Tlp::Amber),
        unmapped,
        mapped,
    })
}

/// The feed's files, with the database state they were built from.
type FeedCache = Arc<Mutex<Option<((i64, i64), Arc<Vec<(String, String)>>)>>>;

#[derive(Clone)]
struct Misp {
    core: CoreHandle,
    data_dir: PathBuf,
    /// Built once per database state (latest `added_us`, row count), so a MISP instance
    /// fetching every event costs one build, not one per event.
    cache: FeedCache,
}

/// The feed files of the database's current state, from the cache when it is current.
fn feed(data_dir: &Path, cache: &FeedCache) -> anyhow::Result<Arc<Vec<(String, String)>>> {
    let conn = crate::store::open_reader(data_dir)?;
    let key = crate::store::alerts_version(&conn)?;
    if let Ok(c) = cache.lock() {
        if let Some((k, files)) = c.as_ref() {
            if *k == key {
                return Ok(files.clone());
            }
        }
    }
    let files = Arc::new(feed_files(&events_for_data_dir(data_dir, None)?));
    if let Ok(mut c) = cache.lock() {
        *c = Some((key, files.clone()));
    }
    Ok(files)
}

/// The MISP routes (feed and import), to be merged into the API router.
pub fn router<S: Clone + Send + Sync + 'static>(core: CoreHandle, data_dir: PathBuf) -> Router<S> {
    Router::new()
        .route("/misp/{file}", get(feed_file))
        .route("/v1/misp/events", post(import_route))
        .with_state(Misp {
            core,
            data_dir,
            cache: Arc::new(Mutex::new(None)),
        })
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

async fn feed_file(
    State(s): State<Misp>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let dir = s.data_dir.clone();
    let cache = s.cache.clone();
    let want = file.clone();
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> {
        Ok(feed(&dir, &cache)?
            .iter()
            .find(|(name, _)| *name == want)
            .map(|(_, body)| body.clone()))
    })
    .await;
    let body = match found {
        Ok(Ok(Some(body))) => body,
        Ok(Ok(None)) => return err(StatusCode::NOT_FOUND, format!("no feed file {file:?}")),
        Ok(Err(e)) => return err(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => return err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let etag = format!(
        "\"{}\"",
        hex::encode(alertmesh_protocol::ids::sha256(body.as_bytes()))
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if matches {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    let ct = if file.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    (StatusCode::OK, h, body).into_response()
}

/// Query of `POST /v1/misp/events`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    topic: String,
}

async fn import_route(
    State(s): State<Misp>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return err(
            StatusCode::BAD_REQUEST,
            "pass the topic: /v1/misp/events?topic=<name>",
        );
    };
    let body = match body {
        Ok(b) if b.len() <= MAX_IMPORT_BYTES => b,
        Ok(_) => return err(StatusCode::PAYLOAD_TOO_LARGE, "the event is too large"),
        Err(e) => return err(e.status(), e.body_text()),
    };
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("the body is not valid JSON: {e}"),
            );
        }
    };
    let imported = match import(&event, crate::clock::now_ms()) {
        Ok(i) => i,
        Err(e) => return err(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    match s
        .core
        .publish(
            q.topic.clone(),
            imported.tlp,
            Content::Alert(imported.alert),
        )
        .await
    {
        Ok(Ok(receipt)) => (
            StatusCode::CREATED,
            axum::Json(json!({
                "receipt": receipt,
                "tlp": imported.tlp,
                "mapped": imported.mapped,
                "unmapped": imported.unmapped,
            })),
        )
            .into_response(),
        Ok(Err(e)) => {
            let status = crate::http::publish_status(&e);
            err(
                status,
                format!(
                    "{e}; unmapped attributes: {}",
                    Value::from(imported.unmapped)
                ),
            )
        }
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn import_lists_what_does_not_map() {
        let ev = json!({"Event": {
            "uuid": "5e2f1b7c-0000-4000-8000-000000000001", "info": "Phishing wave",
            "threat_level_id": "1", "date": "2020-09-13",
            "Tag": [{"name": "tlp:green"}, {"name": "election-2020"}],
            "Attribute": [
                {"type": "domain", "value": "vote.example"},
                {"type": "ip-dst", "value": "192.0.2.7"},
                {"type": "mutex", "value": "Global\\x"},
                {"type": "sha256", "value": "zz"}
            ],
            "Object": [{"name": "microblog", "Attribute": [
                {"type": "text", "object_relation": "post", "value": "p"},
                {"type": "text", "object_relation": "hashtag", "value": "#stopthevote"},
                {"type": "text", "object_relation": "username", "value": "@x"},
                {"type": "text", "object_relation": "type", "value": "Twitter"}
            ]}]
        }});
        let i = import(&ev, 0).unwrap();
        assert_eq!(i.tlp, Tlp::Green);
        assert_eq!(i.alert.severity, Severity::High);
        assert_eq!(i.alert.labels, vec!["election-2020".to_string()]);
        assert_eq!(i.mapped, 4);
        assert!(
            i.alert
                .observables
                .contains(&Observable::Hashtag("stopthevote".into()))
        );
        assert!(i.alert.observables.contains(&Observable::SocialAccount {
            platform: "Twitter".into(),
            handle: "@x".into()
        }));
        let types: Vec<&str> = i
            .unmapped
            .iter()
            .map(|u| u["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["mutex", "sha256"]);
    }
}
