//! The node's SQLite database: signed envelopes as raw bytes, decrypted alerts, charters,
//! certificates and evidence.
//!
//! WAL mode with `synchronous=FULL`. All writes go through one [`Writer`] thread that
//! groups queued writes into one transaction and acknowledges each write only after the
//! commit, so an acknowledged write survives `kill -9`. Readers use their own
//! connections. A database that is not ours, or is damaged, is refused, never overwritten.
//!
//! Each decrypted alert gets a cursor when its row is inserted: one more than the largest
//! held, so cursors grow in commit order (an alert decrypted late, once its key arrived,
//! comes after those already delivered). Committed alerts are announced to
//! [`Writer::subscribe`] with their cursor, after the commit and never before.

use alertmesh_protocol::{EnvelopeId, NetworkId, NodePublicKey, SignedEnvelope, TopicId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use tokio::sync::{broadcast, mpsc, oneshot};

/// SQLite `application_id` marking an alertmesh database ("alms").
const APPLICATION_ID: i64 = 0x616c_6d73;
/// Writes queued for the writer thread before senders wait.
const WRITE_QUEUE: usize = 4096;
/// Most writes grouped into one transaction.
const MAX_BATCH: usize = 512;
/// Committed alerts buffered per subscriber; a slower one is told it lagged.
pub const ALERT_BUFFER: usize = 1024;

/// Schema migrations; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE envelopes (
         cursor INTEGER PRIMARY KEY AUTOINCREMENT,
         id BLOB NOT NULL UNIQUE,
         author BLOB NOT NULL,
         topic BLOB NOT NULL,
         seq INTEGER NOT NULL,
         prev BLOB NOT NULL,
         kind TEXT NOT NULL,
         charter_version INTEGER NOT NULL,
         timestamp_ms INTEGER NOT NULL,
         key_epoch INTEGER NOT NULL,
         received_ms INTEGER NOT NULL,
         bytes BLOB NOT NULL,
         UNIQUE (author, topic, seq));
     CREATE TABLE alerts (
         envelope_id BLOB PRIMARY KEY REFERENCES envelopes(id),
         cursor INTEGER NOT NULL,
         topic_name TEXT NOT NULL,
         org TEXT NOT NULL,
         kind TEXT NOT NULL,
         original BLOB,
         tlp TEXT NOT NULL,
         timestamp_ms INTEGER NOT NULL,
         content_json TEXT NOT NULL);
     CREATE INDEX alerts_topic_cursor ON alerts (topic_name, cursor);
     CREATE TABLE charters (version INTEGER PRIMARY KEY, hash BLOB NOT NULL, bytes BLOB NOT NULL);
     CREATE TABLE certs (node BLOB NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (node, bytes));
     CREATE TABLE evidence (
         id BLOB PRIMARY KEY,
         author BLOB NOT NULL,
         topic BLOB NOT NULL,
         seq INTEGER NOT NULL,
         bytes BLOB NOT NULL,
         received_ms INTEGER NOT NULL);",
    // 2: alert cursors in commit order (new rows take MAX + 1; old rows keep theirs)
    "CREATE UNIQUE INDEX alerts_cursor ON alerts (cursor);",
    // 3: TAXII (crate::taxii): the STIX id each alert row is served under, and a
    // strictly increasing `added_us` (TAXII `date_added`, the key of its pages). Rows of
    // an older database are filled in by `backfill_taxii` in the same transaction.
    "ALTER TABLE alerts ADD COLUMN stix_id TEXT;
     ALTER TABLE alerts ADD COLUMN added_us INTEGER;
     CREATE INDEX alerts_topic_added ON alerts (topic_name, added_us);
     CREATE INDEX alerts_added ON alerts (added_us);
     CREATE INDEX alerts_stix_id ON alerts (topic_name, stix_id, added_us);
     CREATE INDEX alerts_original ON alerts (original, cursor);",
];

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The file is not an alertmesh database, or belongs to another network.
    #[error(
        "database {path} {problem}; it was left untouched: point `data_dir` elsewhere or move the file away"
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The writer thread has stopped.
    #[error("the database writer has stopped")]
    WriterGone,
}

/// An envelope row to insert.
#[derive(Debug, Clone)]
pub struct EnvelopeRow {
    /// The envelope.
    pub envelope: SignedEnvelope,
    /// When we received (or published) it.
    pub received_ms: u64,
}

/// A decrypted alert row to insert.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// The envelope it came in.
    pub envelope_id: EnvelopeId,
    /// The topic's name.
    pub topic_name: String,
    /// The author's org.
    pub org: String,
    /// `alert`, `update` or `retraction`.
    pub kind: String,
    /// For updates and retractions: the original alert.
    pub original: Option<EnvelopeId>,
    /// TLP label.
    pub tlp: String,
    /// The envelope's timestamp.
    pub timestamp_ms: u64,
    /// The content as JSON.
    pub content_json: String,
}

/// One write for the writer thread.
#[derive(Debug)]
pub enum Write {
    /// A validated envelope (ignored if the id or position is already stored).
    Envelope(EnvelopeRow),
    /// A decrypted alert.
    Alert(AlertRow),
    /// An adopted charter.
    Charter {
        /// Version.
        version: u64,
        /// Hash.
        hash: [u8; 32],
        /// Exact bytes.
        bytes: Vec<u8>,
    },
    /// A verified certificate.
    Cert {
        /// Node key.
        node: NodePublicKey,
        /// Exact bytes.
        bytes: Vec<u8>,
    },
    /// Nothing: acknowledged once everything queued before it is committed.
    Barrier,
    /// Equivocation evidence.
    Evidence {
        /// Evidence id (SHA-256 of its bytes).
        id: [u8; 32],
        /// The author.
        author: NodePublicKey,
        /// The topic.
        topic: TopicId,
        /// The seq.
        seq: u64,
        /// Encoded evidence.
        bytes: Vec<u8>,
        /// When we learned of it.
        received_ms: u64,
    },
}

/// The outcome of queued writes: `Ok` once committed, `Err` if the transaction failed.
pub type Committed = oneshot::Receiver<Result<(), String>>;

struct Job {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Handle to the writer thread; cloneable.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    alerts: broadcast::Sender<StoredAlert>,
}

impl Writer {
    /// Queues a write (writes are applied in queue order); it is committed with the next
    /// batch.
    pub async fn write(&self, write: Write) -> Result<(), StoreError> {
        self.write_all(vec![write]).await.map(drop)
    }

    /// Queues writes committed in one transaction, in this order; the returned
    /// [`Committed`] resolves once the transaction is over (closed if the writer stops).
    pub async fn write_all(&self, writes: Vec<Write>) -> Result<Committed, StoreError> {
        let (done, committed) = oneshot::channel();
        self.tx
            .send(Job { writes, done })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Ok(committed)
    }

    /// Alerts as they are committed, with their cursors, in cursor order.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredAlert> {
        self.alerts.subscribe()
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let committed = self.write_all(vec![Write::Barrier]).await?;
        committed
            .await
            .map_err(|_| StoreError::WriterGone)?
            .map_err(|_| StoreError::WriterGone)
    }
}

/// The database file inside a data dir.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("alertmesh.db")
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating if needed) the database, checks it is ours and for this network,
/// and applies migrations.
pub fn open(data_dir: &Path, network: &NetworkId) -> Result<Connection, StoreError> {
    let path = db_path(data_dir);
    let e = sql_err(&path);
    let foreign = |problem: &str| StoreError::Foreign {
        path: path.clone(),
        problem: problem.into(),
    };
    let existed = path.exists();
    let conn = Connection::open(&path).map_err(&e)?;
    // Reading the header and the schema writes nothing: a file that is not SQLite at all,
    // or is damaged, fails here.
    let unreadable = |err: rusqlite::Error| match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => foreign("is not a SQLite database"),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => foreign(&format!("is damaged ({err})")),
        _ => e(err),
    };
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(unreadable)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(unreadable)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(unreadable)?;
    if existed && app_id != APPLICATION_ID && (tables > 0 || version > 0) {
        return Err(foreign("is not an alertmesh database"));
    }
    if app_id == APPLICATION_ID {
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(unreadable)?;
        if ok != "ok" {
            return Err(foreign(&format!("is damaged ({ok})")));
        }
    }
    if version as usize > MIGRATIONS.len() {
        return Err(foreign("was written by a newer alertmesh"));
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&e)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(&e)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&e)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction().map_err(&e)?;
        tx.execute_batch(&format!(
            "{sql}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {};",
            i + 1
        ))
        .map_err(&e)?;
        if i + 1 == 3 {
            backfill_taxii(&tx).map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
    }
    let stored: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'network_id'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(&e)?;
    match stored {
        Some(id) if id != network.as_bytes() => return Err(foreign("belongs to another network")),
        Some(_) => {}
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('network_id', ?1)",
                [network.as_bytes()],
            )
            .map_err(&e)?;
        }
    }
    Ok(conn)
}

/// Opens a read-only connection to an existing database.
pub fn open_reader(data_dir: &Path) -> Result<Connection, StoreError> {
    let path = db_path(data_dir);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err(&path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql_err(&path))?;
    Ok(conn)
}

/// Starts the writer thread on an open connection.
pub fn spawn_writer(conn: Connection) -> Writer {
    let (tx, mut rx) = mpsc::channel::<Job>(WRITE_QUEUE);
    let (alerts, _) = broadcast::channel(ALERT_BUFFER);
    let announce = alerts.clone();
    std::thread::Builder::new()
        .name("alertmesh-db-writer".into())
        .spawn(move || {
            let mut conn = conn;
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let mut inserted = Vec::new();
                let result = commit(&mut conn, &batch, &mut inserted).map_err(|e| e.to_string());
                match &result {
                    Ok(()) => {
                        for alert in inserted {
                            let _ = announce.send(alert);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, writes = batch.len(), "database write failed");
                    }
                }
                for job in batch {
                    let _ = job.done.send(result.clone());
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the database writer"));
    Writer { tx, alerts }
}

/// Applies a batch in one transaction; `inserted` collects the alerts it added.
fn commit(
    conn: &mut Connection,
    batch: &[Job],
    inserted: &mut Vec<StoredAlert>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for write in batch.iter().flat_map(|job| &job.writes) {
        if let Some(alert) = apply(&tx, write)? {
            inserted.push(alert);
        }
    }
    tx.commit()
}

/// Applies one write; for a new alert row, returns it as the API shows it.
fn apply(tx: &rusqlite::Transaction<'_>, write: &Write) -> rusqlite::Result<Option<StoredAlert>> {
    match write {
        Write::Envelope(row) => {
            let h = row.envelope.header();
            tx.prepare_cached(
                "INSERT OR IGNORE INTO envelopes
                 (id, author, topic, seq, prev, kind, charter_version, timestamp_ms, key_epoch, received_ms, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                row.envelope.id().as_bytes(),
                h.author.as_bytes(),
                h.topic_id.as_bytes(),
                h.seq as i64,
                h.prev.as_bytes(),
                h.kind.as_str(),
                h.charter_version as i64,
                h.timestamp_ms as i64,
                h.key_epoch as i64,
                row.received_ms as i64,
                row.envelope.as_bytes(),
            ])?;
        }
        Write::Alert(a) => {
            // An amendment is served under its original's STIX id; `added_us` is now,
            // or one more than the latest, so it increases strictly (TAXII paging key).
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let added: Option<(i64, i64)> = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO alerts
                     (envelope_id, cursor, topic_name, org, kind, original, tlp, timestamp_ms, content_json,
                      stix_id, added_us)
                     SELECT ?1, (SELECT COALESCE(MAX(cursor), 0) + 1 FROM alerts),
                            ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                            coalesce((SELECT stix_id FROM alerts WHERE envelope_id = ?5), ?9),
                            max(?10, coalesce((SELECT max(added_us) FROM alerts), 0) + 1)
                     FROM envelopes WHERE id = ?1
                     RETURNING cursor, (SELECT received_ms FROM envelopes WHERE id = ?1)",
                )?
                .query_row(
                    params![
                        a.envelope_id.as_bytes(),
                        a.topic_name,
                        a.org,
                        a.kind,
                        a.original.map(|o| o.0.to_vec()),
                        a.tlp,
                        a.timestamp_ms as i64,
                        a.content_json,
                        crate::taxii::store::stix_id_for(&a.envelope_id, &a.content_json),
                        now_us,
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            return Ok(added.map(|(cursor, received_ms)| StoredAlert {
                cursor,
                id: a.envelope_id.to_hex(),
                topic: a.topic_name.clone(),
                org: a.org.clone(),
                kind: a.kind.clone(),
                original: a.original.map(|o| o.to_hex()),
                tlp: a.tlp.clone(),
                timestamp_ms: a.timestamp_ms as i64,
                received_ms,
                content: serde_json::from_str(&a.content_json).unwrap_or(serde_json::Value::Null),
            }));
        }
        Write::Barrier => {}
        Write::Charter {
            version,
            hash,
            bytes,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO charters (version, hash, bytes) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![*version as i64, hash.as_slice(), bytes])?;
        }
        Write::Cert { node, bytes } => {
            tx.prepare_cached("INSERT OR IGNORE INTO certs (node, bytes) VALUES (?1, ?2)")?
                .execute(params![node.as_bytes(), bytes])?;
        }
        Write::Evidence {
            id,
            author,
            topic,
            seq,
            bytes,
            received_ms,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO evidence (id, author, topic, seq, bytes, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                id.as_slice(),
                author.as_bytes(),
                topic.as_bytes(),
                *seq as i64,
                bytes,
                *received_ms as i64
            ])?;
        }
    }
    Ok(None)
}

/// Fills `stix_id` and `added_us` of the rows written before migration 3: `added_us` in
/// log order from the envelopes' receive times, strictly increasing.
fn backfill_taxii(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    type Row = (i64, Vec<u8>, Option<Vec<u8>>, String, i64);
    let rows: Vec<Row> = tx
        .prepare(
            "SELECT a.cursor, a.envelope_id, a.original, a.content_json, e.received_ms
             FROM alerts a JOIN envelopes e ON e.id = a.envelope_id ORDER BY a.cursor",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut last = 0i64;
    let mut ids: std::collections::HashMap<Vec<u8>, Option<String>> = Default::default();
    for (cursor, id, original, json, received_ms) in rows {
        let added = received_ms.saturating_mul(1000).max(last + 1);
        last = added;
        let stix = match &original {
            Some(o) => ids.get(o).cloned().flatten(),
            None => <[u8; 32]>::try_from(id.as_slice())
                .ok()
                .and_then(|b| crate::taxii::store::stix_id_for(&EnvelopeId(b), &json)),
        };
        ids.insert(id, stix.clone());
        tx.execute(
            "UPDATE alerts SET stix_id = ?1, added_us = ?2 WHERE cursor = ?3",
            params![stix, added, cursor],
        )?;
    }
    Ok(())
}

/// Everything the node loads at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Charters after genesis, by version.
    pub charters: Vec<Vec<u8>>,
    /// Certificates.
    pub certs: Vec<Vec<u8>>,
    /// All envelopes, in insertion order.
    pub envelopes: Vec<Vec<u8>>,
    /// Envelopes with a decrypted alert row: id → (author org, topic name).
    pub decrypted: std::collections::HashMap<EnvelopeId, (String, String)>,
    /// Ids of the evidence held.
    pub evidence: Vec<[u8; 32]>,
}

/// Reads everything the node needs in memory at start.
pub fn load(conn: &Connection, data_dir: &Path) -> Result<Loaded, StoreError> {
    let path = db_path(data_dir);
    let e = sql_err(&path);
    let mut out = Loaded::default();
    let mut q = conn
        .prepare("SELECT bytes FROM charters WHERE version > 1 ORDER BY version")
        .map_err(&e)?;
    out.charters = q
        .query_map([], |r| r.get(0))
        .map_err(&e)?
        .collect::<Result<_, _>>()
        .map_err(&e)?;
    let mut q = conn.prepare("SELECT bytes FROM certs").map_err(&e)?;
    out.certs = q
        .query_map([], |r| r.get(0))
        .map_err(&e)?
        .collect::<Result<_, _>>()
        .map_err(&e)?;
    let mut q = conn
        .prepare("SELECT bytes FROM envelopes ORDER BY cursor")
        .map_err(&e)?;
    out.envelopes = q
        .query_map([], |r| r.get(0))
        .map_err(&e)?
        .collect::<Result<_, _>>()
        .map_err(&e)?;
    let mut q = conn
        .prepare("SELECT envelope_id, org, topic_name FROM alerts")
        .map_err(&e)?;
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    });
    for row in rows.map_err(&e)? {
        let (id, org, topic) = row.map_err(&e)?;
        if let Ok(arr) = <[u8; 32]>::try_from(id.as_slice()) {
            out.decrypted.insert(EnvelopeId(arr), (org, topic));
        }
    }
    out.evidence = evidence_ids(conn).map_err(&e)?;
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

/// A stored alert as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredAlert {
    /// Position in this node's log (the pagination cursor).
    pub cursor: i64,
    /// Envelope id.
    pub id: String,
    /// Topic name.
    pub topic: String,
    /// Author org.
    pub org: String,
    /// `alert`, `update` or `retraction`.
    pub kind: String,
    /// The original alert, for updates and retractions.
    pub original: Option<String>,
    /// TLP.
    pub tlp: String,
    /// Author's timestamp.
    pub timestamp_ms: i64,
    /// When this node received (or published) it.
    pub received_ms: i64,
    /// Decrypted content.
    pub content: serde_json::Value,
}

/// Lists decrypted alerts after `cursor`, optionally on one topic.
pub fn list_alerts(
    conn: &Connection,
    topic: Option<&str>,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut q = conn.prepare_cached(
        "SELECT a.cursor, a.envelope_id, a.topic_name, a.org, a.kind, a.original, a.tlp, a.timestamp_ms,
                a.content_json, e.received_ms
         FROM alerts a JOIN envelopes e ON e.id = a.envelope_id
         WHERE a.cursor > ?1 AND (?2 IS NULL OR a.topic_name = ?2)
         ORDER BY a.cursor LIMIT ?3",
    )?;
    let rows = q.query_map(params![after, topic, limit as i64], |r| {
        let json: String = r.get(8)?;
        Ok(StoredAlert {
            cursor: r.get(0)?,
            id: hex::encode(r.get::<_, Vec<u8>>(1)?),
            topic: r.get(2)?,
            org: r.get(3)?,
            kind: r.get(4)?,
            original: r.get::<_, Option<Vec<u8>>>(5)?.map(hex::encode),
            tlp: r.get(6)?,
            timestamp_ms: r.get(7)?,
            received_ms: r.get(9)?,
            content: serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}

/// The cursor of the newest alert held (0 if none).
pub fn last_cursor(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(cursor), 0) FROM alerts", [], |r| {
        r.get(0)
    })
}

/// Counts of what is stored.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Counts {
    /// Envelopes.
    pub envelopes: i64,
    /// Decrypted alerts.
    pub alerts: i64,
    /// Evidence objects.
    pub evidence: i64,
}

/// Counts stored rows.
pub fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    Ok(Counts {
        envelopes: conn.query_row("SELECT count(*) FROM envelopes", [], |r| r.get(0))?,
        alerts: conn.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))?,
        evidence: conn.query_row("SELECT count(*) FROM evidence", [], |r| r.get(0))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_foreign_files_without_touching_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        std::fs::write(&path, b"this is not a database, it is a text file of some length ........................................................").unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = open(dir.path(), &NetworkId([1; 32])).unwrap_err();
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);

        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(db_path(dir.path())).unwrap();
            c.execute_batch("CREATE TABLE other (x INTEGER); INSERT INTO other VALUES (1);")
                .unwrap();
        }
        let err = open(dir.path(), &NetworkId([1; 32])).unwrap_err();
        assert!(
            err.to_string().contains("not an alertmesh database"),
            "{err}"
        );
    }

    #[test]
    fn write_all_resolves_once_every_write_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let writer = spawn_writer(open(dir.path(), &NetworkId([1; 32])).unwrap());
        let writes = vec![
            Write::Cert {
                node: NodePublicKey([7; 32]),
                bytes: b"cert".to_vec(),
            },
            Write::Charter {
                version: 3,
                hash: [9; 32],
                bytes: b"charter".to_vec(),
            },
        ];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let committed = writer.write_all(writes).await.unwrap();
            committed.await.unwrap()
        });
        assert_eq!(result, Ok(()));
        // Both rows are readable once it resolved.
        let reader = open_reader(dir.path()).unwrap();
        let count = |table: &str| -> i64 {
            reader
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((count("certs"), count("charters")), (1, 1));
    }

    #[test]
    fn migration_3_fills_taxii_columns_of_an_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let network = NetworkId([1; 32]);
        {
            // A database as version 1 left it, with an alert and its update.
            let c = Connection::open(db_path(dir.path())).unwrap();
            c.execute_batch(&format!(
                "{}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;",
                MIGRATIONS[0]
            ))
            .unwrap();
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('network_id', ?1)",
                [network.as_bytes()],
            )
            .unwrap();
            let alert = r#"{"kind":"indicator","title":"t","description":"","severity":"low","confidence":1,"observables":[{"type":"domain","value":"x.example"}],"labels":[],"references":[],"valid_from_ms":0,"valid_until_ms":null,"related":[]}"#;
            for (i, original) in [(1u8, None), (2u8, Some([1u8; 32]))] {
                c.execute(
                    "INSERT INTO envelopes (id, author, topic, seq, prev, kind, charter_version,
                     timestamp_ms, key_epoch, received_ms, bytes)
                     VALUES (?1, x'00', x'00', ?2, x'00', 'alert', 1, 5, 1, 1000, x'00')",
                    params![[i; 32].as_slice(), i as i64],
                )
                .unwrap();
                let content = match original {
                    None => format!(r#"{{"alert":{alert}}}"#),
                    Some(o) => format!(
                        r#"{{"update":{{"original":"{}","alert":{alert}}}}}"#,
                        hex::encode(o)
                    ),
                };
                c.execute(
                    "INSERT INTO alerts (envelope_id, cursor, topic_name, org, kind, original, tlp,
                     timestamp_ms, content_json) VALUES (?1, ?2, 't', 'o', ?3, ?4, 'TLP:GREEN', 5, ?5)",
                    params![
                        [i; 32].as_slice(),
                        i as i64,
                        if original.is_some() { "update" } else { "alert" },
                        original.map(|o| o.to_vec()),
                        content
                    ],
                )
                .unwrap();
            }
        }
        let conn = open(dir.path(), &network).unwrap();
        let rows: Vec<(Option<String>, Option<i64>)> = conn
            .prepare("SELECT stix_id, added_us FROM alerts ORDER BY cursor")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = crate::stix::deterministic_id(
            "indicator",
            &format!("alert:{}", hex::encode([1u8; 32])),
        );
        assert_eq!(rows[0].0.as_deref(), Some(expected.as_str()));
        // The update is served under its original's id, one µs later.
        assert_eq!(rows[1].0, rows[0].0);
        assert_eq!(rows[0].1, Some(1_000_000));
        assert_eq!(rows[1].1, Some(1_000_001));
    }

    #[test]
    fn refuses_another_networks_database() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), &NetworkId([1; 32])).unwrap());
        drop(open(dir.path(), &NetworkId([1; 32])).unwrap());
        let err = open(dir.path(), &NetworkId([2; 32])).unwrap_err();
        assert!(err.to_string().contains("another network"), "{err}");
    }
}
