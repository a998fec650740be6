//! The core's read path into committed history: point lookups the state machine makes
//! instead of keeping every envelope, chain position and alert origin in memory.
//!
//! The core reads synchronously, on its own read-only connection, by primary key or
//! unique index (microseconds each, with SQLite's bounded page cache). Answers computed by
//! the writer thread would put a round trip on every validation and split the state
//! machine's steps; a read-only WAL connection never blocks the writer nor is blocked by
//! it. It sees committed rows only: what the core accepted but the writer has not
//! committed yet is the core's own overlay (`core::chains`).

use alertmesh_protocol::chain::ChainEntry;
use alertmesh_protocol::{EnvelopeId, NodePublicKey, OrgId, TopicId};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// Committed history as the core reads it. Read failures are logged and read as "not
/// held": the writer's unique keys still refuse a second envelope at a position.
pub trait History: Send + Sync {
    /// The chain entry committed at a position.
    fn chain_entry(&self, author: &NodePublicKey, topic: &TopicId, seq: u64) -> Option<ChainEntry>;
    /// The committed seqs of a chain within `from..=to`, ascending, at most `limit`.
    fn held_seqs(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Vec<u64>;
    /// The author org and topic of a committed original alert (not an amendment).
    fn alert_origin(&self, id: &EnvelopeId) -> Option<(OrgId, TopicId)>;
    /// Whether an evidence object is committed.
    fn holds_evidence(&self, id: &[u8; 32]) -> bool;
    /// Committed envelopes of `author` not yet proven in its log, at most `limit`.
    fn unproven_ids(&self, author: &NodePublicKey, limit: usize) -> Vec<EnvelopeId>;
}

/// [`History`] on a read-only SQLite connection.
pub struct SqliteHistory {
    conn: Mutex<Connection>,
}

impl SqliteHistory {
    /// Opens a read-only connection to the database of `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, super::StoreError> {
        Ok(Self {
            conn: Mutex::new(super::open_reader(data_dir)?),
        })
    }

    /// Runs `f` on the connection; a failure is logged and read as `None`.
    fn read<T>(&self, what: &str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let conn = self.conn.lock().ok()?;
        match f(&conn) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, what, "cannot read the database");
                None
            }
        }
    }
}

fn array32(v: Vec<u8>) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(v.as_slice()).ok()
}

impl History for SqliteHistory {
    fn chain_entry(&self, author: &NodePublicKey, topic: &TopicId, seq: u64) -> Option<ChainEntry> {
        let row = self.read("chain entry", |c| {
            c.prepare_cached(
                "SELECT id, prev FROM envelopes WHERE author = ?1 AND topic = ?2 AND seq = ?3",
            )?
            .query_row(
                params![author.as_bytes(), topic.as_bytes(), seq as i64],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
        })??;
        Some(ChainEntry {
            id: EnvelopeId(array32(row.0)?),
            prev: EnvelopeId(array32(row.1)?),
        })
    }

    fn held_seqs(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Vec<u64> {
        let (from, to) = (from.min(i64::MAX as u64), to.min(i64::MAX as u64));
        self.read("held seqs", |c| {
            c.prepare_cached(
                "SELECT seq FROM envelopes WHERE author = ?1 AND topic = ?2 AND seq BETWEEN ?3 AND ?4
                 ORDER BY seq LIMIT ?5",
            )?
            .query_map(
                params![
                    author.as_bytes(),
                    topic.as_bytes(),
                    from as i64,
                    to as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| r.get::<_, i64>(0),
            )?
            .map(|s| s.map(|s| s as u64))
            .collect()
        })
        .unwrap_or_default()
    }

    fn alert_origin(&self, id: &EnvelopeId) -> Option<(OrgId, TopicId)> {
        let (org, topic) = self.read("alert origin", |c| {
            c.prepare_cached(
                "SELECT a.org, e.topic FROM alerts a JOIN envelopes e ON e.id = a.envelope_id
                 WHERE a.envelope_id = ?1 AND a.kind = 'alert'",
            )?
            .query_row([id.as_bytes()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()
        })??;
        Some((OrgId(org), TopicId(array32(topic)?)))
    }

    fn holds_evidence(&self, id: &[u8; 32]) -> bool {
        self.read("evidence", |c| {
            c.prepare_cached("SELECT 1 FROM evidence WHERE id = ?1")?
                .query_row([id.as_slice()], |_| Ok(()))
                .optional()
        })
        .flatten()
        .is_some()
    }

    fn unproven_ids(&self, author: &NodePublicKey, limit: usize) -> Vec<EnvelopeId> {
        self.read("unproven ids", |c| {
            super::tlog::unproven_ids(c, author, limit)
        })
        .unwrap_or_default()
    }
}
