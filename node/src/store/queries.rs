//! Queries of the node, its core and its API.

use super::{Counts, Loaded, StoreError, StoredAlert, migrate::db_path, migrate::sql_err};
use alertmesh_protocol::chain::ChainEntry;
use alertmesh_protocol::{Content, EnvelopeId, NetworkId, NodePublicKey, Tlp, TopicId};
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// Reads what the node keeps in memory at start (see [`Loaded`]): index reads whose
/// cost follows the number of chains, key packages and undecrypted envelopes, not the
/// number of envelopes held.
pub fn load(conn: &Connection, data_dir: &Path) -> Result<Loaded, StoreError> {
    let path = db_path(data_dir);
    let e = sql_err(&path);
    let blobs = |sql: &str| -> Result<Vec<Vec<u8>>, StoreError> {
        let mut q = conn.prepare(sql).map_err(&e)?;
        q.query_map([], |r| r.get(0))
            .map_err(&e)?
            .collect::<Result<_, _>>()
            .map_err(&e)
    };
    let mut out = Loaded {
        charters: blobs("SELECT bytes FROM charters WHERE version > 1 ORDER BY version")?,
        certs: blobs("SELECT bytes FROM certs")?,
        key_packages: blobs(
            "SELECT bytes FROM envelopes WHERE kind = 'key_package' ORDER BY cursor",
        )?,
        ..Loaded::default()
    };
    let mut q = conn
        .prepare("SELECT author, topic, head_seq, head_id, head_prev, held FROM chain_heads")
        .map_err(&e)?;
    let rows = q
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(&e)?;
    let array = |v: Vec<u8>| <[u8; 32]>::try_from(v.as_slice()).ok();
    for row in rows {
        let (author, topic, seq, id, prev, held) = row.map_err(&e)?;
        let (Some(author), Some(topic), Some(id), Some(prev)) =
            (array(author), array(topic), array(id), array(prev))
        else {
            continue;
        };
        out.heads.push(super::ChainHead {
            author: NodePublicKey(author),
            topic: TopicId(topic),
            seq: seq.max(0) as u64,
            entry: ChainEntry {
                id: EnvelopeId(id),
                prev: EnvelopeId(prev),
            },
            held: held.max(0) as u64,
        });
    }
    let mut q = conn
        .prepare(
            "SELECT e.bytes FROM undecrypted u JOIN envelopes e ON e.id = u.envelope_id
             ORDER BY u.cursor",
        )
        .map_err(&e)?;
    let mut rows = q.query([]).map_err(&e)?;
    let mut bytes_total = 0;
    while let Some(row) = rows.next().map_err(&e)? {
        let bytes: Vec<u8> = row.get(0).map_err(&e)?;
        bytes_total += bytes.len();
        if bytes_total > super::UNDECRYPTED_LOADED_BYTES {
            break;
        }
        out.undecrypted.push(bytes);
    }
    out.evidence = conn
        .query_row("SELECT count(*) FROM evidence", [], |r| r.get::<_, i64>(0))
        .map_err(&e)?
        .max(0) as u64;
    out.tlog = super::tlog::load_tlog(conn).map_err(&e)?;
    Ok(out)
}

/// The ids of the evidence held.
pub fn evidence_ids(conn: &Connection) -> rusqlite::Result<Vec<[u8; 32]>> {
    let mut q = conn.prepare("SELECT id FROM evidence")?;
    let ids = q
        .query_map([], |r| r.get::<_, Vec<u8>>(0))?
        .filter_map(Result::ok)
        .filter_map(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
        .collect();
    Ok(ids)
}

/// The bytes of a held envelope.
pub fn envelope_bytes(conn: &Connection, id: &EnvelopeId) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT bytes FROM envelopes WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| r.get(0))
        .optional()
}

/// The bytes of the held envelope at a chain position.
pub fn envelope_bytes_at(
    conn: &Connection,
    author: &NodePublicKey,
    topic: &TopicId,
    seq: u64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached(
        "SELECT bytes FROM envelopes WHERE author = ?1 AND topic = ?2 AND seq = ?3",
    )?
    .query_row(
        params![author.as_bytes(), topic.as_bytes(), seq as i64],
        |r| r.get(0),
    )
    .optional()
}

/// The columns of a [`StoredAlert`], for [`stored_alert`].
const ALERT_COLUMNS: &str = "a.cursor, a.envelope_id, a.topic_name, a.org, a.original, a.tlp,
     a.timestamp_ms, a.content_json, e.received_ms
     FROM alerts a JOIN envelopes e ON e.id = a.envelope_id";

/// A row of [`ALERT_COLUMNS`] as a [`StoredAlert`].
fn stored_alert(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
    let content: Content = json_column(r, 7)?;
    Ok(StoredAlert {
        cursor: r.get(0)?,
        id: hex::encode(r.get::<_, Vec<u8>>(1)?),
        topic: r.get(2)?,
        org: r.get(3)?,
        kind: content.kind(),
        original: r.get::<_, Option<Vec<u8>>>(4)?.map(hex::encode),
        tlp: label_column(r, 5)?,
        timestamp_ms: r.get(6)?,
        received_ms: r.get(8)?,
        content,
    })
}

/// A text column holding a TLP label.
pub(super) fn label_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Tlp> {
    let label: String = r.get(i)?;
    label.parse().map_err(|e| conversion_failure(i, e))
}

/// A text column holding JSON, such as `content_json`.
pub(super) fn json_column<T: serde::de::DeserializeOwned>(
    r: &rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| conversion_failure(i, e))
}

pub(super) fn conversion_failure(
    i: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

/// Lists decrypted alerts after `cursor`, optionally on one topic.
pub fn list_alerts(
    conn: &Connection,
    topic: Option<&str>,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<StoredAlert>> {
    alerts_after(conn, false, topic, after, limit)
}

/// Originals (alerts, not amendments) after `after`, optionally on one topic.
pub fn list_originals(
    conn: &Connection,
    topic: Option<&str>,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<StoredAlert>> {
    alerts_after(conn, true, topic, after, limit)
}

fn alerts_after(
    conn: &Connection,
    originals_only: bool,
    topic: Option<&str>,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS}
         WHERE a.cursor > ?1 AND (?2 IS NULL OR a.topic_name = ?2) AND (?4 = 0 OR a.kind = 'alert')
         ORDER BY a.cursor LIMIT ?3"
    ))?;
    let rows = q.query_map(
        params![after, topic, limit as i64, originals_only],
        stored_alert,
    )?;
    rows.collect()
}

/// The amendments (updates, retraction) of an alert, oldest first, at most `limit`.
pub fn amendments_of(
    conn: &Connection,
    original: &[u8],
    limit: usize,
) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} WHERE a.original = ?1 ORDER BY a.timestamp_ms, a.cursor LIMIT ?2"
    ))?;
    let rows = q.query_map(params![original, limit as i64], stored_alert)?;
    rows.collect()
}

/// Originals whose content mentions `text` (candidate sightings of an alert id), at most
/// `limit`; rows that do not read are skipped.
pub fn originals_mentioning(
    conn: &Connection,
    text: &str,
    limit: usize,
) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} WHERE a.kind = 'alert' AND a.content_json LIKE ?1 ORDER BY a.cursor LIMIT ?2"
    ))?;
    let rows = q.query_map(params![format!("%{text}%"), limit as i64], stored_alert)?;
    Ok(rows.filter_map(Result::ok).collect())
}

/// The cursor of the newest alert held (0 if none).
pub fn last_cursor(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(cursor), 0) FROM alerts", [], |r| {
        r.get(0)
    })
}

/// Counts stored rows.
pub fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    Ok(Counts {
        envelopes: conn.query_row("SELECT count(*) FROM envelopes", [], |r| r.get(0))?,
        alerts: conn.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))?,
        evidence: conn.query_row("SELECT count(*) FROM evidence", [], |r| r.get(0))?,
    })
}

/// The network the database belongs to.
pub fn network_id(conn: &Connection) -> anyhow::Result<NetworkId> {
    let id: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'network_id'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let id = id.context("the database names no network")?;
    let id: [u8; 32] = id
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the database's network id is not 32 bytes"))?;
    Ok(NetworkId(id))
}

/// Every stored charter: (version, bytes), by version.
pub fn charters(conn: &Connection) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let mut q = conn.prepare("SELECT version, bytes FROM charters ORDER BY version")?;
    let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Every stored certificate: (rowid, bytes), in storage order.
pub fn certs(conn: &Connection) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let mut q = conn.prepare("SELECT rowid, bytes FROM certs ORDER BY rowid")?;
    let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The newest stored charter's bytes, if any.
pub fn latest_charter(conn: &Connection) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT bytes FROM charters ORDER BY version DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
}

/// Calls `f` with the bytes of every stored envelope (in no particular order).
pub fn for_each_envelope_bytes(
    conn: &Connection,
    mut f: impl FnMut(Vec<u8>),
) -> rusqlite::Result<()> {
    let mut q = conn.prepare("SELECT bytes FROM envelopes")?;
    for bytes in q.query_map([], |r| r.get(0))? {
        f(bytes?);
    }
    Ok(())
}

/// What changes whenever an alert row is added: (largest `added_us`, row count).
pub fn alerts_version(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT coalesce(max(added_us), 0), count(*) FROM alerts",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
