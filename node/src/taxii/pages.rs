//! What a TAXII collection holds, as object versions in key-set pages.
//!
//! One collection per topic. Every decrypted alert row (alert, update, retraction) is
//! one **version** of one STIX object:
//!
//! - the object's id is the row's `stix_id` column ([`crate::stix::served_id`]): for an
//!   alert that carries a STIX object (`Alert::stix`, e.g. pushed through TAXII) that
//!   object's own id; for a native alert the deterministic id of [`crate::stix`];
//!   updates and retractions keep their original's id;
//! - the version's `date_added` is the row's `added_us`, the page key (see
//!   [`crate::store::taxii`] for the queries).
//!
//! Authorship comes from the envelope, never from the JSON: every object served has
//! `created_by_ref` = the identity of the org whose node signed the envelope.

use crate::stix::{self, parse_ms};
use crate::store::taxii::{self as rows, Query, VersionRow};
use alertmesh_protocol::{AlertKind, Content, EnvelopeId, NetworkId};
use rusqlite::Connection;
use serde_json::{Value, json};

/// Most values one `match[...]` filter may list.
pub const MAX_MATCH_VALUES: usize = 100;
/// Most rows one request examines (filters that SQL cannot apply, such as
/// `match[version]=<timestamp>`, may then answer a short page with `more`).
const MAX_SCAN: usize = 10_000;

/// One object version as served.
#[derive(Debug, Clone)]
pub struct Item {
    /// The STIX object.
    pub object: Value,
    /// Its `date_added`, µs since the epoch.
    pub added_us: i64,
    /// Its `modified` (the version), as in the object.
    pub version: String,
}

/// A page of a collection.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The versions, by `date_added`.
    pub items: Vec<Item>,
    /// Whether more may follow.
    pub more: bool,
    /// The key to continue after (the last examined row's `added_us`).
    pub next_key: Option<i64>,
}

/// Reads one page. Cost: one index range scan from the key, `limit + 1` rows (more only
/// when a `match[version]` timestamp filter must be applied row by row).
pub fn page(conn: &Connection, network: &NetworkId, q: &Query) -> anyhow::Result<Page> {
    let v = &q.versions;
    let batch = (q.limit + 1).min(MAX_SCAN);
    let mut out = Page::default();
    let mut key = q.after_us;
    let mut scanned = 0usize;
    loop {
        let rows = rows::versions_after(conn, q, key, batch)?;
        let exhausted = rows.len() < batch;
        for row in rows {
            scanned += 1;
            key = row.added_us;
            if out.items.len() == q.limit {
                out.more = true;
                return Ok(out);
            }
            out.next_key = Some(row.added_us);
            let Some(object) = render(conn, network, &row)? else {
                continue;
            };
            let version = object
                .get("modified")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let wanted = v.at_ms.is_empty()
                || v.all
                || parse_ms(&version).is_some_and(|ms| v.at_ms.contains(&ms))
                || (v.last && rows::is_last(conn, &q.topic, &row)?)
                || (v.first && rows::is_first(conn, &q.topic, &row)?);
            if !wanted {
                continue;
            }
            out.items.push(Item {
                object,
                added_us: row.added_us,
                version,
            });
        }
        if exhausted {
            return Ok(out);
        }
        if scanned >= MAX_SCAN {
            out.more = true;
            out.next_key = Some(key);
            return Ok(out);
        }
    }
}

/// The latest version of object `id` on `topic`: (org, envelope id of the original,
/// `modified` ms of the latest version), if held.
pub fn latest(
    conn: &Connection,
    network: &NetworkId,
    topic: &str,
    id: &str,
) -> anyhow::Result<Option<(String, EnvelopeId, Option<u64>)>> {
    let q = Query {
        topic: topic.to_string(),
        after_us: 0,
        ids: vec![id.to_string()],
        types: vec![],
        versions: rows::Versions::last(),
        limit: 1,
    };
    let p = page(conn, network, &q)?;
    let Some(item) = p.items.first() else {
        return Ok(None);
    };
    let held = rows::version_at(conn, topic, item.added_us)?;
    Ok(held.map(|(org, original)| (org, original, parse_ms(&item.version))))
}

/// The STIX object of one row, or `None` if the row holds nothing servable.
fn render(
    conn: &Connection,
    network: &NetworkId,
    row: &VersionRow,
) -> anyhow::Result<Option<Value>> {
    let author = stix::org_identity_id(network, &row.org);
    let tlp = row.tlp;
    let revoked = matches!(row.content, Content::Retraction(_));
    // The content this version shows: its own, or for a retraction the latest version
    // before it.
    let latest;
    let content = match (&row.content, row.original) {
        (Content::Retraction(_), Some(original)) => {
            latest = rows::latest_update(conn, &original)?;
            match latest.as_ref().or(row.original_content.as_ref()) {
                Some(c) => c,
                None => return Ok(None),
            }
        }
        (own, _) => own,
    };
    let Some(alert) = content.alert() else {
        return Ok(None);
    };
    let created_ms = row.created_ms.max(0) as u64;
    let amendment = row.original.is_some();
    let own_ms = (row.timestamp_ms.max(0) as u64).max(created_ms + u64::from(amendment));
    if let Some(mut obj) = stix::attached(alert).filter(|o| {
        // An update whose object changed type is served as a native object.
        o.get("type").and_then(Value::as_str) == row.stix_id.split_once("--").map(|(t, _)| t)
    }) {
        obj["id"] = json!(row.stix_id);
        obj["created_by_ref"] = json!(author);
        stix::ingest::set_tlp(&mut obj, tlp);
        if revoked {
            let prev = obj
                .get("modified")
                .and_then(Value::as_str)
                .and_then(parse_ms)
                .unwrap_or(0);
            obj["modified"] = json!(crate::clock::rfc3339(own_ms.max(prev + 1)));
            obj["revoked"] = json!(true);
        }
        return Ok(Some(obj));
    }
    let ty = row.stix_id.split_once("--").map_or("report", |(t, _)| t);
    let mut obj = json!({
        "type": ty,
        "spec_version": "2.1",
        "id": row.stix_id,
        "created": crate::clock::rfc3339(created_ms),
        "modified": crate::clock::rfc3339(own_ms),
        "created_by_ref": author,
        "object_marking_refs": [stix::tlp_marking_id(tlp)],
        "external_references": [{
            "source_name": "alertmesh",
            "external_id": row.original.unwrap_or(row.envelope_id).to_hex(),
        }],
    });
    if revoked {
        obj["revoked"] = json!(true);
    }
    obj["confidence"] = json!(alert.confidence.min(100));
    if !alert.labels.is_empty() && ty != "note" {
        obj["labels"] = json!(alert.labels);
    }
    let title = &alert.title;
    let description = &alert.description;
    let from = alert.valid_from_ms;
    let until = alert.valid_until_ms;
    if ty != "note" {
        obj["name"] = json!(title);
        if !description.is_empty() {
            obj["description"] = json!(description);
        }
    }
    match ty {
        "indicator" => {
            let pattern = stix::pattern(alert)
                .or_else(|| {
                    row.original_content
                        .as_ref()
                        .and_then(Content::alert)
                        .and_then(stix::pattern)
                })
                .unwrap_or_else(|| "[x-alertmesh-none:value = 'none']".into());
            obj["indicator_types"] = json!(["malicious-activity"]);
            obj["pattern"] = json!(pattern);
            obj["pattern_type"] = json!("stix");
            obj["pattern_version"] = json!("2.1");
            obj["valid_from"] = json!(crate::clock::rfc3339(from));
            if let Some(u) = until.filter(|u| *u > from) {
                obj["valid_until"] = json!(crate::clock::rfc3339(u));
            }
        }
        "campaign" => {
            obj["first_seen"] = json!(crate::clock::rfc3339(from));
            if let Some(u) = until.filter(|u| *u >= from) {
                obj["last_seen"] = json!(crate::clock::rfc3339(u));
            }
        }
        "note" => {
            let mut refs: Vec<String> = Vec::new();
            for related in alert.related.iter().take(MAX_MATCH_VALUES) {
                refs.extend(rows::served_id_of(conn, related)?);
            }
            if refs.is_empty() {
                refs.push(author.clone());
            }
            obj["abstract"] = json!(title);
            obj["content"] = json!(if description.is_empty() {
                format!("Sighting: {title}")
            } else {
                description.clone()
            });
            obj["object_refs"] = json!(refs);
        }
        _ => {
            let report_type = if alert.kind == AlertKind::AccountNetwork {
                "threat-actor"
            } else {
                "threat-report"
            };
            obj["report_types"] = json!([report_type]);
            obj["published"] = json!(crate::clock::rfc3339(created_ms));
            obj["object_refs"] = json!([author]);
        }
    }
    Ok(Some(obj))
}
