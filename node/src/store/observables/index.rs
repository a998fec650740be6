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

use super::normalize::key_of;
use alertmesh_protocol::alert::Alert;
use alertmesh_protocol::{Content, EnvelopeId};
use rusqlite::{Connection, OptionalExtension, params};

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
        retracted_ms INTEGER);
    CREATE INDEX observed_created ON observed (created_ms);
    CREATE TABLE observables (
        type INTEGER NOT NULL,
        value TEXT NOT NULL,
        alert INTEGER NOT NULL,
        PRIMARY KEY (type, value, alert)) WITHOUT ROWID;
    CREATE INDEX observables_alert ON observables (alert);
    CREATE VIRTUAL TABLE alert_text USING fts5(
        title, description, labels, content = '', contentless_delete = 1, detail = none);";

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

/// Indexes a just-inserted alert row (call it in the row's transaction): a new alert's
/// observables and text; an update that is now the current version replaces them; a
/// retraction marks the alert retracted. Amendments of an alert the index does not
/// hold are ignored (the core stores none).
pub fn index_alert(
    conn: &Connection,
    meta: &AlertMeta<'_>,
    content: &Content,
) -> rusqlite::Result<()> {
    match content {
        Content::Alert(alert) => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO observed (alert, topic_name, org, tlp, kind, created_ms,
                 version_cursor, version_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?1, ?6)",
            )?
            .execute(params![
                meta.cursor,
                meta.topic,
                meta.org,
                meta.tlp,
                kind_name(alert),
                meta.timestamp_ms
            ])?;
            insert_terms(conn, meta.cursor, alert)
        }
        Content::Update(update) => {
            let Some((alert, current, retraction)) = state_of(conn, &update.original)? else {
                return Ok(());
            };
            let version = (meta.timestamp_ms, meta.cursor);
            if version <= current || retraction.is_some_and(|r| version > r) {
                return Ok(());
            }
            conn.prepare_cached(
                "UPDATE observed SET kind = ?2, version_cursor = ?3, version_ms = ?4 WHERE alert = ?1",
            )?
            .execute(params![alert, kind_name(&update.alert), meta.cursor, meta.timestamp_ms])?;
            delete_terms(conn, alert)?;
            insert_terms(conn, alert, &update.alert)
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

fn insert_terms(conn: &Connection, alert: i64, content: &Alert) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO observables (type, value, alert) VALUES (?1, ?2, ?3)",
    )?;
    for o in &content.observables {
        let key = key_of(o);
        insert.execute(params![key.ty.code(), key.value, alert])?;
    }
    conn.prepare_cached(
        "INSERT INTO alert_text (rowid, title, description, labels) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        alert,
        content.title,
        content.description,
        content.labels.join(" ")
    ])?;
    Ok(())
}

fn delete_terms(conn: &Connection, alert: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM observables WHERE alert = ?1")?
        .execute([alert])?;
    conn.prepare_cached("DELETE FROM alert_text WHERE rowid = ?1")?
        .execute([alert])?;
    Ok(())
}

/// Builds the index of every alert row already stored, in cursor order (migration 4).
/// A row whose content does not read as [`Content`] is skipped.
pub(crate) fn backfill(conn: &Connection) -> rusqlite::Result<()> {
    let mut q = conn.prepare(
        "SELECT cursor, topic_name, org, tlp, timestamp_ms, content_json FROM alerts ORDER BY cursor",
    )?;
    let mut rows = q.query([])?;
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
        index_alert(conn, &meta, &content)?;
    }
    Ok(())
}
