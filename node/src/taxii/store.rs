//! What a TAXII collection holds, read from the node's database with key-set paging.
//!
//! One collection per topic. Every decrypted alert row (alert, update, retraction) is
//! one **version** of one STIX object:
//!
//! - the object's id is the row's `stix_id` column: for an alert that carries a STIX
//!   object (`Alert::stix`, e.g. pushed through TAXII) that object's own id; for a native
//!   alert the deterministic id of [`crate::stix`] (`<type>--uuidv5("alert:<envelope>")`);
//!   updates and retractions keep their original's id;
//! - the version's `date_added` is the row's `added_us`, strictly increasing in log order
//!   (set by the database writer), which is also the page key: a page is
//!   `WHERE topic = ? AND added_us > key ORDER BY added_us LIMIT n`, an index range scan
//!   whose cost does not depend on how deep the page is (no OFFSET).
//!
//! Authorship comes from the envelope, never from the JSON: every object served has
//! `created_by_ref` = the identity of the org whose node signed the envelope.

use crate::stix::{self, parse_ms};
use alertmesh_protocol::{EnvelopeId, NetworkId, Tlp};
use rusqlite::{Connection, OptionalExtension, params_from_iter, types::Value as Sql};
use serde_json::{Value, json};

/// Most values one `match[...]` filter may list.
pub const MAX_MATCH_VALUES: usize = 100;
/// Most rows one request examines (filters that SQL cannot apply, such as
/// `match[version]=<timestamp>`, may then answer a short page with `more`).
const MAX_SCAN: usize = 10_000;

/// The STIX id an original alert row is served under, from its content JSON
/// (`{"alert": …}` or `{"update": …}`); `None` if the content holds no alert.
pub fn stix_id_for(envelope: &EnvelopeId, content_json: &str) -> Option<String> {
    let content: Value = serde_json::from_str(content_json).ok()?;
    let (alert, original) = match (content.get("alert"), content.get("update")) {
        (Some(a), _) => (a, envelope.to_hex()),
        (None, Some(u)) => (u.get("alert")?, u.get("original")?.as_str()?.to_string()),
        _ => return None,
    };
    if let Some(obj) = attached(alert) {
        if let Some(id) = obj.get("id").and_then(Value::as_str) {
            return Some(id.to_string());
        }
    }
    Some(native_id(alert, &original))
}

/// The STIX object an alert carries, if it passes the checks of a POSTed object.
fn attached(alert: &Value) -> Option<Value> {
    alert
        .get("stix")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .filter(super::ingest::acceptable_received)
}

/// The id of a native alert's STIX object.
fn native_id(alert: &Value, envelope_hex: &str) -> String {
    match stix::native_type(alert) {
        "sighting" => stix::deterministic_id("note", &format!("sighting-note:{envelope_hex}")),
        ty => stix::deterministic_id(ty, &format!("alert:{envelope_hex}")),
    }
}

/// Which versions of each object a query returns (`match[version]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// Every version.
    pub all: bool,
    /// The first version.
    pub first: bool,
    /// The latest version (the default).
    pub last: bool,
    /// Versions whose `modified` is one of these (ms since the epoch).
    pub at_ms: Vec<u64>,
}

impl Versions {
    /// The default: `last`.
    pub fn last() -> Self {
        Versions {
            last: true,
            ..Default::default()
        }
    }
}

/// A page query on one collection.
#[derive(Debug, Clone)]
pub struct Query {
    /// The topic.
    pub topic: String,
    /// Only versions added strictly after this (µs since the epoch).
    pub after_us: i64,
    /// Only these object ids (empty: any).
    pub ids: Vec<String>,
    /// Only these object types (empty: any).
    pub types: Vec<String>,
    /// Which versions.
    pub versions: Versions,
    /// Page size.
    pub limit: usize,
}

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

struct Row {
    envelope_id: Vec<u8>,
    original: Option<Vec<u8>>,
    org: String,
    kind: String,
    tlp: String,
    timestamp_ms: i64,
    content: Value,
    stix_id: String,
    added_us: i64,
    created_ms: i64,
    original_content: Option<Value>,
}

/// Reads one page. Cost: one index range scan from the key, `limit + 1` rows (more only
/// when a `match[version]` timestamp filter must be applied row by row).
pub fn page(conn: &Connection, network: &NetworkId, q: &Query) -> anyhow::Result<Page> {
    let mut sql = String::from(
        "SELECT a.envelope_id, a.original, a.org, a.kind, a.tlp, a.timestamp_ms, a.content_json,
                a.stix_id, a.added_us, o.timestamp_ms, o.content_json
         FROM alerts a LEFT JOIN alerts o ON o.envelope_id = a.original
         WHERE a.topic_name = ?1 AND a.added_us > ?2 AND a.stix_id IS NOT NULL",
    );
    let mut args: Vec<Sql> = vec![Sql::Text(q.topic.clone()), Sql::Integer(q.after_us)];
    let placeholders = |values: &[String], args: &mut Vec<Sql>| -> String {
        args.extend(values.iter().cloned().map(Sql::Text));
        vec!["?"; values.len()].join(", ")
    };
    if !q.ids.is_empty() {
        let p = placeholders(&q.ids, &mut args);
        sql.push_str(&format!(" AND a.stix_id IN ({p})"));
    }
    if !q.types.is_empty() {
        let p = placeholders(&q.types, &mut args);
        sql.push_str(&format!(
            " AND substr(a.stix_id, 1, instr(a.stix_id, '--') - 1) IN ({p})"
        ));
    }
    let v = &q.versions;
    let sql_filters_versions = !v.all && v.at_ms.is_empty();
    if sql_filters_versions {
        let last = "NOT EXISTS (SELECT 1 FROM alerts b WHERE b.topic_name = a.topic_name
                    AND b.stix_id = a.stix_id AND b.added_us > a.added_us)";
        let first = "NOT EXISTS (SELECT 1 FROM alerts b WHERE b.topic_name = a.topic_name
                    AND b.stix_id = a.stix_id AND b.added_us < a.added_us)";
        match (v.first, v.last) {
            (true, true) => sql.push_str(&format!(" AND ({first} OR {last})")),
            (true, false) => sql.push_str(&format!(" AND {first}")),
            _ => sql.push_str(&format!(" AND {last}")),
        }
    }
    // Placeholders are numbered in order of appearance, as `args` lists them.
    let batch = (q.limit + 1).min(MAX_SCAN);
    let mut sql = renumber(&sql);
    sql.push_str(&format!(" ORDER BY a.added_us LIMIT {batch}"));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Page::default();
    let mut key = q.after_us;
    let mut scanned = 0usize;
    loop {
        args[1] = Sql::Integer(key);
        let rows: Vec<Row> = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                let content: String = r.get(6)?;
                let original_content: Option<String> = r.get(10)?;
                let ts: i64 = r.get(5)?;
                Ok(Row {
                    envelope_id: r.get(0)?,
                    original: r.get(1)?,
                    org: r.get(2)?,
                    kind: r.get(3)?,
                    tlp: r.get(4)?,
                    timestamp_ms: ts,
                    content: serde_json::from_str(&content).unwrap_or(Value::Null),
                    stix_id: r.get(7)?,
                    added_us: r.get(8)?,
                    created_ms: r.get::<_, Option<i64>>(9)?.unwrap_or(ts),
                    original_content: original_content.and_then(|c| serde_json::from_str(&c).ok()),
                })
            })?
            .collect::<Result<_, _>>()?;
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
                || (v.last && is_last(conn, &q.topic, &row)?)
                || (v.first && is_first(conn, &q.topic, &row)?);
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

/// Numbers `?`/`?N` placeholders in order of appearance: `?1, ?2, …`.
fn renumber(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            n += 1;
            out.push_str(&format!("?{n}"));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_last(conn: &Connection, topic: &str, row: &Row) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM alerts WHERE topic_name = ?1 AND stix_id = ?2 AND added_us > ?3)",
        rusqlite::params![topic, row.stix_id, row.added_us],
        |r| r.get(0),
    )
}

fn is_first(conn: &Connection, topic: &str, row: &Row) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM alerts WHERE topic_name = ?1 AND stix_id = ?2 AND added_us < ?3)",
        rusqlite::params![topic, row.stix_id, row.added_us],
        |r| r.get(0),
    )
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
        versions: Versions::last(),
        limit: 1,
    };
    let p = page(conn, network, &q)?;
    let Some(item) = p.items.first() else {
        return Ok(None);
    };
    let row: Option<(String, Vec<u8>, Option<Vec<u8>>)> = conn
        .query_row(
            "SELECT org, envelope_id, original FROM alerts WHERE topic_name = ?1 AND added_us = ?2",
            rusqlite::params![topic, item.added_us],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((org, env, original)) = row else {
        return Ok(None);
    };
    let original = original.unwrap_or(env);
    let Ok(bytes) = <[u8; 32]>::try_from(original.as_slice()) else {
        return Ok(None);
    };
    Ok(Some((org, EnvelopeId(bytes), parse_ms(&item.version))))
}

/// The envelope id of the original alert held under STIX id `id` on `topic` (an index
/// lookup).
pub fn envelope_of(
    conn: &Connection,
    topic: &str,
    id: &str,
) -> rusqlite::Result<Option<EnvelopeId>> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT envelope_id FROM alerts WHERE topic_name = ?1 AND stix_id = ?2
             AND original IS NULL ORDER BY added_us LIMIT 1",
            [topic, id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok().map(EnvelopeId)))
}

fn alert_of(content: &Value) -> Option<&Value> {
    content
        .get("alert")
        .or_else(|| content.get("update").and_then(|u| u.get("alert")))
}

/// The STIX object of one row, or `None` if the row holds nothing servable.
fn render(conn: &Connection, network: &NetworkId, row: &Row) -> anyhow::Result<Option<Value>> {
    let author = stix::org_identity_id(network, &row.org);
    let tlp = stix::parse_tlp(&row.tlp);
    let revoked = row.kind == "retraction";
    // The content this version shows: its own, or for a retraction the latest version
    // before it.
    let content: Value = if revoked {
        let latest: Option<String> = conn
            .query_row(
                "SELECT content_json FROM alerts WHERE original = ?1 AND kind = 'update'
                 ORDER BY added_us DESC LIMIT 1",
                [&row.original],
                |r| r.get(0),
            )
            .optional()?;
        match latest.and_then(|c| serde_json::from_str(&c).ok()) {
            Some(c) => c,
            None => match &row.original_content {
                Some(c) => c.clone(),
                None => return Ok(None),
            },
        }
    } else {
        row.content.clone()
    };
    let Some(alert) = alert_of(&content) else {
        return Ok(None);
    };
    let created_ms = row.created_ms.max(0) as u64;
    let amendment = row.original.is_some();
    let own_ms = (row.timestamp_ms.max(0) as u64).max(created_ms + u64::from(amendment));
    if let Some(mut obj) = attached(alert).filter(|o| {
        // An update whose object changed type is served as a native object.
        o.get("type").and_then(Value::as_str) == row.stix_id.split_once("--").map(|(t, _)| t)
    }) {
        obj["id"] = json!(row.stix_id);
        obj["created_by_ref"] = json!(author);
        super::ingest::set_tlp(&mut obj, tlp);
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
            "external_id": hex::encode(row.original.as_deref().unwrap_or(&row.envelope_id)),
        }],
    });
    if revoked {
        obj["revoked"] = json!(true);
    }
    if let Some(c) = alert.get("confidence").and_then(Value::as_u64) {
        obj["confidence"] = json!(c.min(100));
    }
    let labels: Vec<&str> = alert
        .get("labels")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !labels.is_empty() && ty != "note" {
        obj["labels"] = json!(labels);
    }
    let s = |k: &str| {
        alert
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let title = s("title");
    let description = s("description");
    let from = alert
        .get("valid_from_ms")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let until = alert.get("valid_until_ms").and_then(Value::as_u64);
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
                        .and_then(alert_of)
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
            for r in alert
                .get("related")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .take(MAX_MATCH_VALUES)
            {
                let bytes = hex::decode(r).unwrap_or_default();
                let target: Option<String> = conn
                    .query_row(
                        "SELECT stix_id FROM alerts WHERE envelope_id = ?1",
                        [bytes],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                refs.extend(target);
            }
            if refs.is_empty() {
                refs.push(author.clone());
            }
            obj["abstract"] = json!(title);
            obj["content"] = json!(if description.is_empty() {
                format!("Sighting: {title}")
            } else {
                description
            });
            obj["object_refs"] = json!(refs);
        }
        _ => {
            let report_type = if s("kind") == "account-network" {
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

/// The TLP the envelope of a native row was published under.
pub fn tlp_of(label: &str) -> Tlp {
    stix::parse_tlp(label)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stix::{format_us, is_stix_id, parse_us};

    #[test]
    fn timestamps_round_trip() {
        let us = parse_us("2020-09-13T12:26:40.123456Z").unwrap();
        assert_eq!(us, 1_600_000_000_123_456);
        assert_eq!(format_us(us), "2020-09-13T12:26:40.123456Z");
        assert_eq!(
            parse_us("2020-09-13T12:26:40Z"),
            Some(1_600_000_000_000_000)
        );
        assert_eq!(
            parse_us("2020-09-13T12:26:40.1234569Z"),
            Some(1_600_000_000_123_456)
        );
        assert_eq!(parse_us("2020-09-13 12:26:40Z"), None);
        assert_eq!(parse_us("yesterday"), None);
        assert_eq!(parse_us("2020-09-13T12:26:40+01:00"), None);
    }

    #[test]
    fn ids_and_renumbering() {
        assert!(is_stix_id(
            "indicator--886313e1-3b8a-5372-9b90-0c9aee199e5d"
        ));
        assert!(!is_stix_id("indicator--886313e1"));
        assert!(!is_stix_id(
            "Indicator--886313e1-3b8a-5372-9b90-0c9aee199e5d"
        ));
        assert_eq!(
            renumber("a = ?1 AND b = ?7 OR c IN (?3, ?3)"),
            "a = ?1 AND b = ?2 OR c IN (?3, ?4)"
        );
    }
}
