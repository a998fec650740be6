//! The writer thread: every write goes through it, grouped into transactions;
//! each queued batch is acknowledged only after its commit. Before its first write it
//! checks the whole file ([`super::migrate::check_whole_file`]): on a damaged database it
//! writes nothing and fails every write.

use super::{StoreError, StoredAlert, Write};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Writes queued for the writer thread before senders wait.
const WRITE_QUEUE: usize = 4096;
/// Most writes grouped into one transaction.
const MAX_BATCH: usize = 512;
/// Committed alerts buffered per subscriber; a slower one is told it lagged.
pub const ALERT_BUFFER: usize = 1024;

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
    /// The whole-file check: `None` while it runs, then its outcome (the error's text).
    checked: watch::Receiver<Option<Result<(), String>>>,
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

    /// Waits for the writer's check of the whole file: `Err` with the reason (naming the
    /// file, which was left untouched) if the database is damaged.
    pub async fn checked(&self) -> Result<(), String> {
        let mut checked = self.checked.clone();
        match checked.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err(StoreError::WriterGone.to_string()),
        }
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

/// Starts the writer thread on an open connection; it checks the whole file before its
/// first write ([`Writer::checked`]).
pub fn spawn_writer(conn: Connection) -> Writer {
    spawn(conn, true)
}

/// The writer without the observable index (alert rows are stored, not indexed), for
/// benchmarks that measure the index's cost; a node always indexes.
#[doc(hidden)]
pub fn spawn_writer_unindexed(conn: Connection) -> Writer {
    spawn(conn, false)
}

fn spawn(conn: Connection, index: bool) -> Writer {
    let (tx, mut rx) = mpsc::channel::<Job>(WRITE_QUEUE);
    let (alerts, _) = broadcast::channel(ALERT_BUFFER);
    let (check_done, checked) = watch::channel(None);
    let announce = alerts.clone();
    std::thread::Builder::new()
        .name("alertmesh-db-writer".into())
        .spawn(move || {
            let mut conn = conn;
            let started = std::time::Instant::now();
            let path = std::path::PathBuf::from(conn.path().unwrap_or_default());
            if let Err(e) = super::migrate::check_whole_file(&conn, &path) {
                let reason = e.to_string();
                tracing::error!(error = %reason, "database check failed; writing nothing");
                check_done.send_replace(Some(Err(reason.clone())));
                while let Some(job) = rx.blocking_recv() {
                    let _ = job.done.send(Err(reason.clone()));
                }
                return;
            }
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "database checked: every page reads"
            );
            check_done.send_replace(Some(Ok(())));
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let mut inserted = Vec::new();
                let result =
                    commit(&mut conn, &batch, index, &mut inserted).map_err(|e| e.to_string());
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
    Writer {
        tx,
        alerts,
        checked,
    }
}

/// Applies a batch in one transaction; `inserted` collects the alerts it added.
fn commit(
    conn: &mut Connection,
    batch: &[Job],
    index: bool,
    inserted: &mut Vec<StoredAlert>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut terms = super::observables::PendingTerms::default();
    for write in batch.iter().flat_map(|job| &job.writes) {
        if let Some(alert) = apply(&tx, write, index.then_some(&mut terms))? {
            inserted.push(alert);
        }
    }
    terms.write(&tx)?;
    tx.commit()
}

/// Advances the head and size of an envelope's chain (`chain_heads`, read at start by
/// `super::history`), after the envelope's row is inserted: ?1 author, ?2 topic, ?3 seq,
/// ?4 id, ?5 prev.
const ADVANCE_CHAIN_HEAD: &str = "
    INSERT INTO chain_heads (author, topic, head_seq, head_id, head_prev, held)
    VALUES (?1, ?2, ?3, ?4, ?5, 1)
    ON CONFLICT (author, topic) DO UPDATE SET
        held = held + 1,
        head_id = iif(excluded.head_seq > head_seq, excluded.head_id, head_id),
        head_prev = iif(excluded.head_seq > head_seq, excluded.head_prev, head_prev),
        head_seq = max(head_seq, excluded.head_seq)";

/// Applies one write (indexing a new alert row if given the batch's pending terms); for a
/// new alert row, returns it as the API shows it.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    write: &Write,
    terms: Option<&mut super::observables::PendingTerms>,
) -> rusqlite::Result<Option<StoredAlert>> {
    match write {
        Write::Envelope(row) => {
            let h = row.envelope.header();
            let inserted = tx.prepare_cached(
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
            if inserted == 1 {
                tx.prepare_cached(ADVANCE_CHAIN_HEAD)?.execute(params![
                    h.author.as_bytes(),
                    h.topic_id.as_bytes(),
                    h.seq as i64,
                    row.envelope.id().as_bytes(),
                    h.prev.as_bytes(),
                ])?;
            }
        }
        Write::Alert(a) => {
            // The row's values are read first so that the insert is a plain one-row
            // insert: with a subquery, `RETURNING` or a trigger, SQLite would copy every
            // page it touches into a statement journal (for the foreign key).
            let original = a.content.original().map(|o| o.0.to_vec());
            let Some((received_ms, original_stix, last_added_us, cursor)) = tx
                .prepare_cached(
                    "SELECT received_ms, (SELECT stix_id FROM alerts WHERE envelope_id = ?2),
                            (SELECT max(added_us) FROM alerts),
                            (SELECT coalesce(max(cursor), 0) + 1 FROM alerts)
                     FROM envelopes WHERE id = ?1",
                )?
                .query_row(params![a.envelope_id.as_bytes(), original], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()?
            else {
                return Ok(None);
            };
            // An amendment is served under its original's STIX id; `added_us` is now,
            // or one more than the latest, so it increases strictly (TAXII paging key).
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let added_us = now_us.max(last_added_us.unwrap_or(0) + 1);
            let stix_id =
                original_stix.or_else(|| crate::stix::served_id(&a.envelope_id, &a.content));
            let content_json = serde_json::to_string(&a.content)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO alerts
                     (envelope_id, cursor, topic_name, org, kind, original, tlp, timestamp_ms, content_json,
                      stix_id, added_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    a.envelope_id.as_bytes(),
                    cursor,
                    a.topic_name,
                    a.org,
                    a.content.kind().as_str(),
                    original,
                    a.tlp.to_string(),
                    a.timestamp_ms as i64,
                    content_json,
                    stix_id,
                    added_us,
                ])?;
            if inserted == 0 {
                return Ok(None);
            }
            tx.prepare_cached("DELETE FROM undecrypted WHERE envelope_id = ?1")?
                .execute([a.envelope_id.as_bytes()])?;
            if let Some(terms) = terms {
                let meta = super::observables::AlertMeta {
                    cursor,
                    topic: &a.topic_name,
                    org: &a.org,
                    tlp: &a.tlp.to_string(),
                    timestamp_ms: a.timestamp_ms as i64,
                };
                super::observables::index_alert(tx, terms, &meta, &a.content)?;
            }
            return Ok(Some(StoredAlert {
                cursor,
                id: a.envelope_id.to_hex(),
                topic: a.topic_name.clone(),
                org: a.org.clone(),
                kind: a.content.kind(),
                original: a.content.original().map(|o| o.to_hex()),
                tlp: a.tlp,
                timestamp_ms: a.timestamp_ms as i64,
                received_ms,
                content: a.content.clone(),
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
        Write::TlogLeaf(leaf) => super::tlog::apply_leaf(tx, leaf)?,
        Write::Checkpoint {
            author,
            size,
            note,
            witnessed,
            received_ms,
        } => super::tlog::apply_checkpoint(tx, author, *size, note, *witnessed, *received_ms)?,
        Write::Witnessed {
            author,
            size,
            root,
            note,
        } => super::tlog::apply_witnessed(tx, author, *size, root, note)?,
        Write::SplitView {
            id,
            author,
            size,
            bytes,
            received_ms,
        } => super::tlog::apply_split_view(tx, id, author, *size, bytes, *received_ms)?,
        Write::Inclusions {
            author,
            size,
            note,
            proofs,
            missing,
        } => super::tlog::apply_inclusions(tx, author, *size, note, proofs, missing)?,
    }
    Ok(None)
}
