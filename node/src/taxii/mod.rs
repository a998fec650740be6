//! A TAXII 2.1 server (OASIS TAXII 2.1 CS01) on the node's API listener, under `/taxii2/`.
//!
//! | route | what |
//! |---|---|
//! | `GET /taxii2/` | discovery: one API root, `/taxii2/api/` |
//! | `GET /taxii2/api/` | API root information, with `max_content_length` |
//! | `GET /taxii2/api/collections/` | one collection per topic this org may read or publish on |
//! | `GET /taxii2/api/collections/{id}/` | one collection |
//! | `GET /taxii2/api/collections/{id}/objects/` | objects: `limit`, `next`, `added_after`, `match[id\|type\|version\|spec_version]` |
//! | `POST /taxii2/api/collections/{id}/objects/` | add STIX objects: published as alerts; answers 202 with a status |
//! | `GET /taxii2/api/collections/{id}/objects/{object-id}/` | one object (default: its last version) |
//! | `GET /taxii2/api/collections/{id}/objects/{object-id}/versions/` | its versions |
//! | `GET /taxii2/api/collections/{id}/manifest/` | manifest entries, with the same filters as objects |
//! | `GET /taxii2/api/status/{status-id}/` | the status of an earlier POST |
//!
//! Every route also answers without its trailing slash. Requests must accept
//! `application/taxii+json;version=2.1` (406 otherwise) and POST bodies must be of that type
//! (415 otherwise). Authentication is the API's (see [`crate::api`]): the API token as a
//! Bearer token, or as the password of HTTP Basic (any user name).
//!
//! A collection's id is UUIDv5 (alertmesh's STIX namespace) of
//! `collection:<network id hex>:<topic name>`: the same on every node and across restarts.
//! How objects map to alerts: [`pages`] (reading, key-set pages) and
//! [`crate::stix::ingest`] (writing).

pub mod pages;

use crate::stix::ingest;
use crate::store::taxii::{self as rows, Versions};
use pages::{MAX_MATCH_VALUES, Page};

use crate::core::{CoreHandle, PublishError, TopicInfo};
use alertmesh_protocol::alert::AlertUpdate;
use alertmesh_protocol::{Content, NetworkId};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The TAXII 2.1 media type.
pub const MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// The STIX 2.1 media type of collection contents.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// Largest POST body, announced as the API root's `max_content_length`.
pub const MAX_CONTENT_LENGTH: usize = 512 * 1024;
/// Largest page.
pub const MAX_PAGE: usize = 1000;
/// Page size when the client names none.
const DEFAULT_PAGE: usize = 100;
/// Most objects one POST may carry.
const MAX_POST_OBJECTS: usize = 1000;
/// Status resources kept for `GET /status/{id}/` (the oldest are dropped).
const MAX_STATUSES: usize = 1024;

/// Shared state of the TAXII routes.
#[derive(Clone)]
struct Taxii {
    core: CoreHandle,
    data_dir: PathBuf,
    statuses: Arc<Mutex<VecDeque<(String, Value)>>>,
}

/// The TAXII routes, to be merged into the API router (inside its auth layer).
pub fn router<S: Clone + Send + Sync + 'static>(core: CoreHandle, data_dir: PathBuf) -> Router<S> {
    let state = Taxii {
        core,
        data_dir,
        statuses: Arc::new(Mutex::new(VecDeque::new())),
    };
    let mut r = Router::new();
    // Every route with and without its trailing slash (taxii2-client asks for
    // `status/{id}` without one).
    for (path, route) in [
        ("/taxii2", get(discovery)),
        ("/taxii2/api", get(api_root)),
        ("/taxii2/api/collections", get(collections)),
        ("/taxii2/api/collections/{id}", get(collection)),
        (
            "/taxii2/api/collections/{id}/objects",
            get(get_objects).post(add_objects),
        ),
        (
            "/taxii2/api/collections/{id}/objects/{object}",
            get(get_object),
        ),
        (
            "/taxii2/api/collections/{id}/objects/{object}/versions",
            get(versions),
        ),
        ("/taxii2/api/collections/{id}/manifest", get(manifest)),
        ("/taxii2/api/status/{status}", get(status)),
    ] {
        r = r
            .route(path, route.clone())
            .route(&format!("{path}/"), route);
    }
    r.with_state(state)
}

/// A TAXII error: a status and an error message resource.
#[derive(Debug)]
pub struct TaxiiError {
    status: StatusCode,
    title: &'static str,
    description: String,
}

impl TaxiiError {
    fn new(status: StatusCode, title: &'static str, description: impl Into<String>) -> Self {
        TaxiiError {
            status,
            title,
            description: description.into(),
        }
    }

    fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad request", description)
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            format!("{e:#}"),
        )
    }
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let body = json!({
            "title": self.title,
            "description": self.description,
            "http_status": self.status.as_u16().to_string(),
        });
        taxii_json(self.status, &body, HeaderMap::new())
    }
}

fn taxii_json(status: StatusCode, body: &Value, mut headers: HeaderMap) -> Response {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    (status, headers, body.to_string()).into_response()
}

type Result<T> = std::result::Result<T, TaxiiError>;

/// Whether a media type (parameters included, spaces and case ignored) names TAXII 2.1.
fn is_taxii(media: &str, allow_wildcards: bool) -> bool {
    let m: String = media
        .split(';')
        .map(str::trim)
        .filter(|p| !p.to_ascii_lowercase().starts_with("q=") && !p.is_empty())
        .collect::<Vec<_>>()
        .join(";")
        .to_ascii_lowercase();
    m == MEDIA_TYPE
        || m == "application/taxii+json"
        || (allow_wildcards && (m == "*/*" || m == "application/*"))
}

/// 406 unless the request accepts TAXII 2.1 (no `Accept` at all is accepted).
fn check_accept(headers: &HeaderMap) -> Result<()> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(());
    };
    let ok = accept
        .to_str()
        .map(|a| a.split(',').any(|m| is_taxii(m, true)))
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(TaxiiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Not acceptable",
            format!("this server answers with {MEDIA_TYPE}; send it in the Accept header"),
        ))
    }
}

async fn discovery(headers: HeaderMap) -> Result<Response> {
    check_accept(&headers)?;
    Ok(taxii_json(
        StatusCode::OK,
        &json!({
            "title": "alertmesh node",
            "description": "TAXII 2.1 view of the alertmesh topics this organization may read or publish on",
            "default": "/taxii2/api/",
            "api_roots": ["/taxii2/api/"],
        }),
        HeaderMap::new(),
    ))
}

async fn api_root(headers: HeaderMap) -> Result<Response> {
    check_accept(&headers)?;
    Ok(taxii_json(
        StatusCode::OK,
        &json!({
            "title": "alertmesh",
            "description": "One collection per alertmesh topic",
            "versions": [MEDIA_TYPE],
            "max_content_length": MAX_CONTENT_LENGTH,
        }),
        HeaderMap::new(),
    ))
}

/// The collection id of a topic.
pub fn collection_id(network: &NetworkId, topic: &str) -> String {
    crate::stix::uuid_v5(
        &crate::stix::namespace(),
        format!("collection:{}:{topic}", network.to_hex()).as_bytes(),
    )
}

impl Taxii {
    async fn network(&self) -> Result<NetworkId> {
        let dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let conn = crate::store::open_reader(&dir)?;
            crate::store::network_id(&conn)
        })
        .await
        .map_err(TaxiiError::internal)?
        .map_err(TaxiiError::internal)
    }

    /// The collections: (id, topic).
    async fn collections(&self) -> Result<Vec<(String, TopicInfo)>> {
        let network = self.network().await?;
        let topics = self.core.topics().await.map_err(|e| {
            TaxiiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                format!("{e:#}"),
            )
        })?;
        Ok(topics
            .into_iter()
            .filter(|t| t.can_read || t.can_publish)
            .map(|t| (collection_id(&network, &t.name), t))
            .collect())
    }

    async fn collection(&self, id: &str) -> Result<TopicInfo> {
        self.collections()
            .await?
            .into_iter()
            .find(|(cid, _)| cid == id)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                TaxiiError::new(
                    StatusCode::NOT_FOUND,
                    "Collection not found",
                    format!("no collection {id:?}; list them at /taxii2/api/collections/"),
                )
            })
    }

    async fn readable(&self, id: &str) -> Result<TopicInfo> {
        let t = self.collection(id).await?;
        if !t.can_read {
            return Err(TaxiiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("this organization may not read topic {:?}", t.name),
            ));
        }
        Ok(t)
    }
}

fn collection_resource(id: &str, t: &TopicInfo) -> Value {
    json!({
        "id": id,
        "title": t.name,
        "description": format!(
            "alertmesh topic {} (maximum {}; readers: {}; publishers: {})",
            t.name, t.max_tlp, t.readers.join(", "), t.publishers.join(", ")
        ),
        "can_read": t.can_read,
        "can_write": t.can_publish,
        "media_types": [STIX_MEDIA_TYPE],
    })
}

async fn collections(State(s): State<Taxii>, headers: HeaderMap) -> Result<Response> {
    check_accept(&headers)?;
    let list: Vec<Value> = s
        .collections()
        .await?
        .iter()
        .map(|(id, t)| collection_resource(id, t))
        .collect();
    let body = if list.is_empty() {
        json!({})
    } else {
        json!({ "collections": list })
    };
    Ok(taxii_json(StatusCode::OK, &body, HeaderMap::new()))
}

async fn collection(
    State(s): State<Taxii>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response> {
    check_accept(&headers)?;
    let t = s.collection(&id).await?;
    Ok(taxii_json(
        StatusCode::OK,
        &collection_resource(&id, &t),
        HeaderMap::new(),
    ))
}

/// The filters and paging of a GET.
#[derive(Debug, Default)]
struct Filters {
    limit: usize,
    after_us: i64,
    ids: Vec<String>,
    types: Vec<String>,
    versions: Versions,
    spec_ok: bool,
}

const NEXT_PREFIX: &str = "am1.";

fn parse_filters(q: &[(String, String)]) -> Result<Filters> {
    let mut f = Filters {
        limit: DEFAULT_PAGE,
        versions: Versions::last(),
        spec_ok: true,
        ..Default::default()
    };
    let list = |v: &str| -> Result<Vec<String>> {
        let items: Vec<String> = v
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if items.len() > MAX_MATCH_VALUES {
            return Err(TaxiiError::bad_request(format!(
                "at most {} values per match filter",
                MAX_MATCH_VALUES
            )));
        }
        Ok(items)
    };
    for (k, v) in q {
        match k.as_str() {
            "limit" => {
                let n: usize = v.parse().map_err(|_| {
                    TaxiiError::bad_request(format!("limit must be a positive integer, not {v:?}"))
                })?;
                if n == 0 {
                    return Err(TaxiiError::bad_request("limit must be at least 1"));
                }
                f.limit = n.min(MAX_PAGE);
            }
            "next" => {
                let key = v
                    .strip_prefix(NEXT_PREFIX)
                    .and_then(|k| k.parse::<i64>().ok())
                    .filter(|k| *k >= 0)
                    .ok_or_else(|| {
                        TaxiiError::bad_request(format!(
                            "invalid next {v:?}: pass the value of an earlier response's next"
                        ))
                    })?;
                f.after_us = f.after_us.max(key);
            }
            "added_after" => {
                let us = crate::stix::parse_us(v).ok_or_else(|| {
                    TaxiiError::bad_request(format!(
                        "invalid added_after {v:?}: use a timestamp like 2020-09-13T12:26:40.000Z"
                    ))
                })?;
                f.after_us = f.after_us.max(us);
            }
            "match[id]" => {
                let ids = list(v)?;
                if let Some(bad) = ids.iter().find(|i| !crate::stix::is_stix_id(i)) {
                    return Err(TaxiiError::bad_request(format!(
                        "match[id]: {bad:?} is not a STIX id"
                    )));
                }
                f.ids.extend(ids);
            }
            "match[type]" => f.types.extend(list(v)?),
            "match[version]" => {
                let mut versions = Versions::default();
                for item in list(v)? {
                    match item.as_str() {
                        "all" => versions.all = true,
                        "first" => versions.first = true,
                        "last" => versions.last = true,
                        ts => versions
                            .at_ms
                            .push(crate::stix::parse_ms(ts).ok_or_else(|| {
                                TaxiiError::bad_request(format!(
                                    "match[version]: {ts:?} is not first, last, all or a timestamp"
                                ))
                            })?),
                    }
                }
                f.versions = versions;
            }
            "match[spec_version]" => {
                f.spec_ok = list(v)?.iter().any(|s| s == "2.1");
            }
            other if other.starts_with("match[") => {
                return Err(TaxiiError::bad_request(format!(
                    "unsupported filter {other}; supported: match[id], match[type], match[version], match[spec_version]"
                )));
            }
            _ => {}
        }
    }
    if f.ids.len() > MAX_MATCH_VALUES || f.types.len() > MAX_MATCH_VALUES {
        return Err(TaxiiError::bad_request(format!(
            "at most {} values per match filter",
            MAX_MATCH_VALUES
        )));
    }
    Ok(f)
}

async fn read_page(s: &Taxii, topic: &str, f: &Filters) -> Result<Page> {
    if !f.spec_ok {
        return Ok(Page::default());
    }
    let q = rows::Query {
        topic: topic.to_string(),
        after_us: f.after_us,
        ids: f.ids.clone(),
        types: f.types.clone(),
        versions: f.versions.clone(),
        limit: f.limit,
    };
    let dir = s.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        let conn = crate::store::open_reader(&dir)?;
        let network = crate::store::network_id(&conn)?;
        pages::page(&conn, &network, &q)
    })
    .await
    .map_err(TaxiiError::internal)?
    .map_err(TaxiiError::internal)
}

/// The date headers and `more`/`next` of a page.
fn page_headers(page: &Page) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let (Some(first), Some(last)) = (page.items.first(), page.items.last()) {
        for (name, us) in [
            ("x-taxii-date-added-first", first.added_us),
            ("x-taxii-date-added-last", last.added_us),
        ] {
            if let Ok(v) = HeaderValue::from_str(&crate::stix::format_us(us)) {
                h.insert(name, v);
            }
        }
    }
    h
}

fn with_paging(mut body: Value, page: &Page) -> Value {
    body["more"] = json!(page.more);
    if page.more {
        if let Some(k) = page.next_key {
            body["next"] = json!(format!("{NEXT_PREFIX}{k}"));
        }
    }
    body
}

fn query_of(
    q: std::result::Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Vec<(String, String)>> {
    q.map(|Query(q)| q)
        .map_err(|e| TaxiiError::bad_request(e.body_text()))
}

async fn get_objects(
    State(s): State<Taxii>,
    UrlPath(id): UrlPath<String>,
    query: std::result::Result<
        Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
    headers: HeaderMap,
) -> Result<Response> {
    check_accept(&headers)?;
    let f = parse_filters(&query_of(query)?)?;
    let t = s.readable(&id).await?;
    let page = read_page(&s, &t.name, &f).await?;
    Ok(objects_response(&page))
}

/// An envelope of a page's objects (`{}` when empty), with its paging fields and headers.
fn objects_response(page: &Page) -> Response {
    let objects: Vec<Value> = page.items.iter().map(|i| i.object.clone()).collect();
    page_response("objects", objects, page)
}

/// A page's answer: `{key: items}` (or `{}` when there are none) with the paging fields
/// and headers.
fn page_response<T: serde::Serialize>(key: &str, items: Vec<T>, page: &Page) -> Response {
    let body = if items.is_empty() {
        json!({})
    } else {
        json!({ key: items })
    };
    taxii_json(StatusCode::OK, &with_paging(body, page), page_headers(page))
}

/// The filters of a request about one object: the query's, narrowed to `object`.
fn object_filters(query: &[(String, String)], object: &str) -> Result<Filters> {
    let mut f = parse_filters(query)?;
    if !crate::stix::is_stix_id(object) {
        return Err(TaxiiError::bad_request(format!(
            "{object:?} is not a STIX id"
        )));
    }
    f.ids = vec![object.to_string()];
    Ok(f)
}

/// 404 for an object the collection does not hold (an empty page past `added_after` is
/// an answer, not an absence).
fn check_found(page: &Page, f: &Filters, object: &str) -> Result<()> {
    if page.items.is_empty() && f.after_us == 0 {
        return Err(TaxiiError::new(
            StatusCode::NOT_FOUND,
            "Object not found",
            format!("no object {object} in this collection"),
        ));
    }
    Ok(())
}

async fn get_object(
    State(s): State<Taxii>,
    UrlPath((id, object)): UrlPath<(String, String)>,
    query: std::result::Result<
        Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
    headers: HeaderMap,
) -> Result<Response> {
    check_accept(&headers)?;
    let f = object_filters(&query_of(query)?, &object)?;
    let t = s.readable(&id).await?;
    let page = read_page(&s, &t.name, &f).await?;
    check_found(&page, &f, &object)?;
    Ok(objects_response(&page))
}

async fn versions(
    State(s): State<Taxii>,
    UrlPath((id, object)): UrlPath<(String, String)>,
    query: std::result::Result<
        Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
    headers: HeaderMap,
) -> Result<Response> {
    check_accept(&headers)?;
    let mut f = object_filters(&query_of(query)?, &object)?;
    f.versions = Versions {
        all: true,
        ..Default::default()
    };
    let t = s.readable(&id).await?;
    let page = read_page(&s, &t.name, &f).await?;
    check_found(&page, &f, &object)?;
    let versions: Vec<&str> = page.items.iter().map(|i| i.version.as_str()).collect();
    Ok(page_response("versions", versions, &page))
}

async fn manifest(
    State(s): State<Taxii>,
    UrlPath(id): UrlPath<String>,
    query: std::result::Result<
        Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
    headers: HeaderMap,
) -> Result<Response> {
    check_accept(&headers)?;
    let f = parse_filters(&query_of(query)?)?;
    let t = s.readable(&id).await?;
    let page = read_page(&s, &t.name, &f).await?;
    let entries: Vec<Value> = page
        .items
        .iter()
        .map(|i| {
            json!({
                "id": i.object.get("id").cloned().unwrap_or(Value::Null),
                "date_added": crate::stix::format_us(i.added_us),
                "version": i.version,
                "media_type": STIX_MEDIA_TYPE,
            })
        })
        .collect();
    Ok(page_response("objects", entries, &page))
}

async fn status(
    State(s): State<Taxii>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response> {
    check_accept(&headers)?;
    let found = s
        .statuses
        .lock()
        .map_err(|_| TaxiiError::internal("status store poisoned"))?
        .iter()
        .find(|(sid, _)| *sid == id)
        .map(|(_, v)| v.clone());
    match found {
        Some(v) => Ok(taxii_json(StatusCode::OK, &v, HeaderMap::new())),
        None => Err(TaxiiError::new(
            StatusCode::NOT_FOUND,
            "Status not found",
            format!("no status {id:?} (the latest {MAX_STATUSES} are kept)"),
        )),
    }
}

fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

async fn add_objects(
    State(s): State<Taxii>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response> {
    check_accept(&headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_taxii(content_type, false) {
        return Err(TaxiiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            format!("send the objects as {MEDIA_TYPE}, not {content_type:?}"),
        ));
    }
    let too_large = || {
        TaxiiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request too large",
            format!("the body exceeds max_content_length ({MAX_CONTENT_LENGTH} bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_CONTENT_LENGTH) {
        return Err(too_large());
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            TaxiiError::bad_request(e.body_text())
        }
    })?;
    if body.len() > MAX_CONTENT_LENGTH {
        return Err(too_large());
    }
    let t = s.collection(&id).await?;
    if !t.can_publish {
        return Err(TaxiiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "this organization may not publish on topic {:?} (can_write is false)",
                t.name
            ),
        ));
    }
    let envelope: Value = serde_json::from_slice(&body)
        .map_err(|e| TaxiiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let objects = envelope
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            TaxiiError::bad_request("the body must be a TAXII envelope: {\"objects\": [...]}")
        })?;
    if objects.len() > MAX_POST_OBJECTS {
        return Err(TaxiiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too many objects",
            format!("at most {MAX_POST_OBJECTS} objects per request"),
        ));
    }
    let request_timestamp = crate::clock::rfc3339(crate::clock::now_ms());
    let status = s.core.status().await.map_err(TaxiiError::internal)?;
    let network = s.network().await?;
    let identity = crate::stix::org_identity_id(&network, &status.org);
    let mut successes = Vec::new();
    let mut failures = Vec::new();
    for raw in objects {
        let oid = raw
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let over = raw.get("modified").and_then(Value::as_str).unwrap_or("");
        match add_one(&s, &t, &network, &identity, &status.org, raw).await {
            Ok((version, message)) => successes.push(json!({
                "id": oid, "version": version, "message": message,
            })),
            Err(message) => failures.push(json!({
                "id": oid, "version": over, "message": message,
            })),
        }
    }
    let sid = random_uuid();
    let resource = json!({
        "id": sid,
        "status": "complete",
        "request_timestamp": request_timestamp,
        "total_count": successes.len() + failures.len(),
        "success_count": successes.len(),
        "successes": successes,
        "failure_count": failures.len(),
        "failures": failures,
        "pending_count": 0,
        "pendings": [],
    });
    if let Ok(mut st) = s.statuses.lock() {
        if st.len() >= MAX_STATUSES {
            st.pop_front();
        }
        st.push_back((sid, resource.clone()));
    }
    Ok(taxii_json(
        StatusCode::ACCEPTED,
        &resource,
        HeaderMap::new(),
    ))
}

/// Checks and publishes one object; `Ok((version, message))` or the failure's reason.
async fn add_one(
    s: &Taxii,
    t: &TopicInfo,
    network: &NetworkId,
    identity: &str,
    org: &str,
    raw: &Value,
) -> std::result::Result<(String, String), String> {
    let dir = s.data_dir.clone();
    let raw = raw.clone();
    let topic = t.name.clone();
    let max_tlp = t.max_tlp;
    let identity = identity.to_string();
    let network = *network;
    let (prepared, existing) = tokio::task::spawn_blocking(move || {
        let conn = crate::store::open_reader(&dir).map_err(|e| e.to_string())?;
        let target = ingest::Target {
            topic: &topic,
            max_tlp,
            identity: &identity,
        };
        let lookup = |id: &str| rows::envelope_of(&conn, &topic, id).ok().flatten();
        let prepared = ingest::prepare(&raw, &target, &lookup)?;
        let existing =
            pages::latest(&conn, &network, &topic, &prepared.id).map_err(|e| format!("{e:#}"))?;
        Ok::<_, String>((prepared, existing))
    })
    .await
    .map_err(|e| e.to_string())??;
    let content = match existing {
        None => Content::Alert(prepared.alert),
        Some((owner, _, _)) if owner != org => {
            return Err(format!(
                "object {} was published by org {owner}; only it may add versions",
                prepared.id
            ));
        }
        Some((_, _, Some(held))) if prepared.modified_ms <= held => {
            return Err(format!(
                "version {} is not newer than the version held; give a later modified",
                prepared.version
            ));
        }
        Some((_, original, _)) => Content::Update(AlertUpdate {
            original,
            alert: prepared.alert,
        }),
    };
    match s.core.publish(t.name.clone(), prepared.tlp, content).await {
        Ok(Ok(receipt)) => Ok((
            prepared.version,
            format!(
                "published on topic {} as envelope {}",
                t.name,
                receipt.id.to_hex()
            ),
        )),
        Ok(Err(e @ (PublishError::Forbidden { .. } | PublishError::TlpTooHigh { .. }))) => {
            Err(e.to_string())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("{e:#}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert!(is_taxii("application/taxii+json;version=2.1", false));
        assert!(is_taxii("application/taxii+json; version=2.1", false));
        assert!(is_taxii("Application/TAXII+json", false));
        assert!(!is_taxii("application/json", true));
        assert!(!is_taxii("*/*", false));
        assert!(is_taxii("*/*;q=0.8", true));
        assert!(!is_taxii("application/taxii+json;version=2.0", true));
    }

    #[test]
    fn filters() {
        let q = |pairs: &[(&str, &str)]| {
            parse_filters(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(q(&[("next", "garbage")]).is_err());
        assert!(q(&[("added_after", "yesterday")]).is_err());
        assert!(q(&[("limit", "0")]).is_err());
        assert!(q(&[("match[colour]", "red")]).is_err());
        let f = q(&[
            ("limit", "5000"),
            ("next", "am1.42"),
            ("match[version]", "all"),
        ])
        .unwrap();
        assert_eq!((f.limit, f.after_us, f.versions.all), (MAX_PAGE, 42, true));
    }
}
