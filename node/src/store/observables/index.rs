//! Index writes: each alert's current observables and text, kept by the writer in the
//! same transaction as the alert row ([`index_alert`]), and built for an older database
//! by migration 4 ([`backfill`]).
//!
//! An alert is indexed under its original's cursor. What counts is its **current
//! state**: an update replaces the alert's observables and text when it is the latest
//! version (by author timestamp, then cursor, as the lifecycle view orders amendments)
//! and is not after a retraction; a retraction marks the alert retracted, and its
//! observables stay indexed (a lookup shows it as retracted) but it supports nothing
//! (org counts and correlations leave it out).
//!
//! Layout, chosen so that indexing costs ingest little: `observed` has one row per alert
//! (appended, keyed by its cursor) with its current normalized keys as JSON; the keys are
//! also searchable as tokens of the contentless FTS5 table `observable_keys` (one token per
//! key: `k` and 20 hex digits of SHA-256 over type code and value) and the text in
//! `alert_text`. FTS5 writes each transaction's postings as one new sorted segment and
//! merges segments in the background of later writes (a log-structured merge), where a
//! B-tree keyed by value would rewrite one random page per observable. A token names its
//! key up to a 2⁻⁸⁰ collision, and every read checks the `keys` of what it finds, so
//! a collision can never show a wrong alert.

use super::normalize::{Key, ObsType, key_of};
use alertmesh_protocol::alert::Alert;
use alertmesh_protocol::{Content, EnvelopeId};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Migration 4's schema.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE observed (
        alert INTEGER PRIMARY KEY,
        topic_name TEXT NOT NULL,
        org TEXT NOT NULL,
        tlp TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        version_cursor INTEGER NOT NULL,
        version_ms INTEGER NOT NULL,
        retracted_cursor INTEGER,
        retracted_ms INTEGER,
        keys TEXT NOT NULL);
    CREATE INDEX observed_created ON observed (created_ms);
    CREATE VIRTUAL TABLE observable_keys USING fts5(
        key, content = '', contentless_delete = 1, detail = none);
    CREATE VIRTUAL TABLE alert_text USING fts5(
        title, description, labels, content = '', contentless_delete = 1, detail = none);";

/// The FTS5 token of a key.
pub(crate) fn token(key: &Key) -> String {
    let mut h = Sha256::new();
    h.update(key.ty.code().to_be_bytes());
    h.update(key.value.as_bytes());
    format!("k{}", hex::encode(&h.finalize()[..10]))
}

/// An alert's keys (deduplicated, sorted) as stored in `observed.keys`.
fn keys_of(alert: &Alert) -> Vec<Key> {
    let keys: BTreeSet<Key> = alert.observables.iter().map(key_of).collect();
    keys.into_iter().collect()
}

/// The `observed.keys` text: `[[type code, value], …]`.
fn keys_json(keys: &[Key]) -> String {
    let pairs: Vec<(i64, &str)> = keys
        .iter()
        .map(|k| (k.ty.code(), k.value.as_str()))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

/// Reads `observed.keys` (unknown codes are skipped).
pub(crate) fn parse_keys(json: &str) -> Vec<Key> {
    serde_json::from_str::<Vec<(i64, String)>>(json)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(code, value)| ObsType::from_code(code).map(|ty| Key { ty, value }))
        .collect()
}

/// What the index needs of a stored alert row besides its content.
#[derive(Debug, Clone, Copy)]
pub struct AlertMeta<'a> {
    /// The row's cursor.
    pub cursor: i64,
    /// Topic name.
    pub topic: &'a str,
    /// Author org (the org whose node signed the envelope).
    pub org: &'a str,
    /// TLP label, e.g. `TLP:GREEN`.
    pub tlp: &'a str,
    /// The envelope's timestamp.
    pub timestamp_ms: i64,
}

/// Indexes a just-inserted alert row (call it in the row's transaction, and
/// [`PendingTerms::write`] before it commits): a new alert's observables and text; an
/// update that is now the current version replaces them; a retraction marks the alert
/// retracted. Amendments of an alert the index does not hold are ignored (the core stores
/// none).
pub fn index_alert(
    conn: &Connection,
    terms: &mut PendingTerms,
    meta: &AlertMeta<'_>,
    content: &Content,
) -> rusqlite::Result<()> {
    match content {
        Content::Alert(alert) => {
            let keys = keys_of(alert);
            let added = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO observed (alert, topic_name, org, tlp, kind, created_ms,
                     version_cursor, version_ms, keys) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?1, ?6, ?7)",
                )?
                .execute(params![
                    meta.cursor,
                    meta.topic,
                    meta.org,
                    meta.tlp,
                    kind_name(alert),
                    meta.timestamp_ms,
                    keys_json(&keys)
                ])?;
            if added == 1 {
                terms.insert(meta.cursor, alert, &keys);
            }
            Ok(())
        }
        Content::Update(update) => {
            let Some((alert, current, retraction)) = state_of(conn, &update.original)? else {
                return Ok(());
            };
            let version = (meta.timestamp_ms, meta.cursor);
            if version <= current || retraction.is_some_and(|r| version > r) {
                return Ok(());
            }
            let keys = keys_of(&update.alert);
            conn.prepare_cached(
                "UPDATE observed SET kind = ?2, version_cursor = ?3, version_ms = ?4, keys = ?5
                 WHERE alert = ?1",
            )?
            .execute(params![
                alert,
                kind_name(&update.alert),
                meta.cursor,
                meta.timestamp_ms,
                keys_json(&keys)
            ])?;
            terms.replace(alert, &update.alert, &keys);
            Ok(())
        }
        Content::Retraction(r) => {
            let Some((alert, _, retraction)) = state_of(conn, &r.original)? else {
                return Ok(());
            };
            let this = (meta.timestamp_ms, meta.cursor);
            if retraction.is_none_or(|earlier| this < earlier) {
                conn.prepare_cached(
                    "UPDATE observed SET retracted_cursor = ?2, retracted_ms = ?3 WHERE alert = ?1",
                )?
                .execute(params![alert, meta.cursor, meta.timestamp_ms])?;
            }
            Ok(())
        }
    }
}

/// A (timestamp, cursor) version order.
type Version = (i64, i64);

/// The indexed alert an amendment names: its cursor, current version, retraction.
fn state_of(
    conn: &Connection,
    original: &EnvelopeId,
) -> rusqlite::Result<Option<(i64, Version, Option<Version>)>> {
    conn.prepare_cached(
        "SELECT o.alert, o.version_ms, o.version_cursor, o.retracted_ms, o.retracted_cursor
         FROM alerts a JOIN observed o ON o.alert = a.cursor WHERE a.envelope_id = ?1",
    )?
    .query_row([original.as_bytes()], |r| {
        let alert: i64 = r.get(0)?;
        let version_cursor: i64 = r.get(2)?;
        // The original itself comes before every update, whatever their timestamps.
        let current = if version_cursor == alert {
            (i64::MIN, 0)
        } else {
            (r.get(1)?, version_cursor)
        };
        let retracted: Option<i64> = r.get(3)?;
        let retracted_cursor: Option<i64> = r.get(4)?;
        Ok((alert, current, retracted.zip(retracted_cursor)))
    })
    .optional()
}

/// The alert's kind as its JSON names it (`indicator`, `account-network`, …).
fn kind_name(alert: &Alert) -> String {
    serde_json::to_value(alert.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The full-text rows of a batch of alerts, written to the two FTS5 tables with one
/// statement each when the batch ends ([`PendingTerms::write`]).
///
/// Inside a transaction every statement that writes an FTS5 table opens a savepoint, and
/// FTS5 writes what it holds in memory to disk as a new segment at each savepoint. One
/// statement per alert thus made one segment per alert, and merging those cost more than
/// storing the alert itself (BENCHMARKS.md §8); one statement per batch makes one segment
/// per batch.
#[derive(Debug, Default)]
pub struct PendingTerms {
    /// Rows to insert, by alert cursor (the FTS rowid).
    rows: BTreeMap<i64, TermRow>,
    /// Rows already in the tables to delete first (an alert replaced by an update).
    deletes: Vec<i64>,
}

#[derive(Debug)]
struct TermRow {
    tokens: String,
    title: String,
    description: String,
    labels: String,
}

impl PendingTerms {
    fn insert(&mut self, alert: i64, content: &Alert, keys: &[Key]) {
        let tokens: Vec<String> = keys.iter().map(token).collect();
        self.rows.insert(
            alert,
            TermRow {
                tokens: tokens.join(" "),
                title: content.title.clone(),
                description: content.description.clone(),
                labels: content.labels.join(" "),
            },
        );
    }

    /// Replaces an alert's terms: those of this batch, or those already written.
    fn replace(&mut self, alert: i64, content: &Alert, keys: &[Key]) {
        if self.rows.remove(&alert).is_none() {
            self.deletes.push(alert);
        }
        self.insert(alert, content, keys);
    }

    /// Writes the batch's rows (call it before the transaction commits); empties `self`.
    pub fn write(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        for alert in self.deletes.drain(..) {
            conn.prepare_cached("DELETE FROM observable_keys WHERE rowid = ?1")?
                .execute([alert])?;
            conn.prepare_cached("DELETE FROM alert_text WHERE rowid = ?1")?
                .execute([alert])?;
        }
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let json = |v: Vec<serde_json::Value>| serde_json::Value::Array(v).to_string();
        let keys = json(
            rows.iter()
                .map(|(id, r)| serde_json::json!([id, r.tokens]))
                .collect(),
        );
        let text = json(
            rows.iter()
                .map(|(id, r)| serde_json::json!([id, r.title, r.description, r.labels]))
                .collect(),
        );
        conn.prepare_cached(
            "INSERT INTO observable_keys (rowid, key)
             SELECT value ->> 0, value ->> 1 FROM json_each(?1)",
        )?
        .execute([keys])?;
        conn.prepare_cached(
            "INSERT INTO alert_text (rowid, title, description, labels)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?1)",
        )?
        .execute([text])?;
        Ok(())
    }
}

/// Alerts whose terms the backfill writes with one statement.
const BACKFILL_BATCH: usize = 512;

/// Builds the index of every alert row already stored, in cursor order (migration 4).
/// A row whose content does not read as [`Content`] is skipped.
pub(crate) fn backfill(conn: &Connection) -> rusqlite::Result<()> {
    let mut q = conn.prepare(
        "SELECT cursor, topic_name, org, tlp, timestamp_ms, content_json FROM alerts ORDER BY cursor",
    )?;
    let mut rows = q.query([])?;
    let mut terms = PendingTerms::default();
    while let Some(r) = rows.next()? {
        let (topic, org, tlp): (String, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
        let json: String = r.get(5)?;
        let Ok(content) = serde_json::from_str::<Content>(&json) else {
            continue;
        };
        let meta = AlertMeta {
            cursor: r.get(0)?,
            topic: &topic,
            org: &org,
            tlp: &tlp,
            timestamp_ms: r.get(4)?,
        };
        index_alert(conn, &mut terms, &meta, &content)?;
        if terms.rows.len() >= BACKFILL_BATCH {
            terms.write(conn)?;
        }
    }
    terms.write(conn)
}
