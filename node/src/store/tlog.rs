//! Transparency-log rows (PROTOCOL.md §19): our own log's leaves and perfect subtrees,
//! the newest checkpoint held per log, our witness state per log, and split-view
//! evidence; and the inclusion proofs of other logs' envelopes, with the checkpoints they
//! lead to, for audit exports. Proofs are computed from these rows; memory keeps only
//! O(log n) per log.

use alertmesh_protocol::tlog::{Hash, Inclusion, ProvenInclusion, SubtreeSource};
use alertmesh_protocol::{EnvelopeId, NodePublicKey, TopicId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Schema of the transparency tables (a migration).
pub(super) const SCHEMA: &str = "
    CREATE TABLE tlog_leaves (
        idx INTEGER PRIMARY KEY,
        id BLOB NOT NULL UNIQUE,
        topic BLOB NOT NULL,
        seq INTEGER NOT NULL);
    CREATE TABLE tlog_nodes (
        level INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)) WITHOUT ROWID;
    CREATE TABLE tlog_checkpoints (
        author BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        note BLOB NOT NULL,
        witnessed INTEGER NOT NULL,
        received_ms INTEGER NOT NULL);
    CREATE TABLE tlog_witnessed (
        author BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        root BLOB NOT NULL,
        note BLOB NOT NULL);
    CREATE TABLE split_views (
        id BLOB PRIMARY KEY,
        author BLOB NOT NULL,
        size INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        received_ms INTEGER NOT NULL);
    CREATE TABLE tlog_inclusions (
        envelope_id BLOB PRIMARY KEY,
        author BLOB NOT NULL,
        size INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        path BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE tlog_proof_checkpoints (
        author BLOB NOT NULL,
        size INTEGER NOT NULL,
        note BLOB NOT NULL,
        PRIMARY KEY (author, size)) WITHOUT ROWID;
    CREATE TABLE tlog_unproven (
        envelope_id BLOB PRIMARY KEY,
        author BLOB NOT NULL,
        cursor INTEGER NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
    CREATE INDEX tlog_unproven_author ON tlog_unproven (author, tries, cursor);
    CREATE TRIGGER tlog_unproven_insert AFTER INSERT ON envelopes
        WHEN NOT EXISTS (SELECT 1 FROM tlog_leaves WHERE id = new.id) BEGIN
        INSERT OR IGNORE INTO tlog_unproven (envelope_id, author, cursor)
        VALUES (new.id, new.author, new.cursor);
    END;";

/// Times an author may leave an envelope out of its answer before we stop asking.
pub const MAX_INCLUSION_TRIES: i64 = 3;

/// A leaf appended to our own log, with the perfect subtrees it completes.
#[derive(Debug, Clone)]
pub struct LeafRow {
    /// Leaf index.
    pub index: u64,
    /// The envelope id.
    pub id: EnvelopeId,
    /// Its topic.
    pub topic: TopicId,
    /// Its seq on the topic.
    pub seq: u64,
    /// `(level, index, hash)` of every perfect subtree completed.
    pub nodes: Vec<(u8, u64, Hash)>,
}

/// The transparency state loaded at start.
#[derive(Debug, Default)]
pub struct LoadedTlog {
    /// Leaves in our own log.
    pub size: u64,
    /// Our log's right border (O(log n) hashes).
    pub range: alertmesh_protocol::tlog::CompactRange,
    /// Newest checkpoint held per log: (author, note, witnessed).
    pub checkpoints: Vec<(NodePublicKey, Vec<u8>, bool)>,
    /// Our witness state per log: (author, size, root, note).
    pub witnessed: Vec<(NodePublicKey, u64, Hash, Vec<u8>)>,
    /// Ids of the split-view evidence held.
    pub split_views: Vec<[u8; 32]>,
}

fn key32(v: Vec<u8>) -> Option<[u8; 32]> {
    v.try_into().ok()
}

/// Reads the transparency state.
pub fn load_tlog(conn: &Connection) -> rusqlite::Result<LoadedTlog> {
    let size: i64 = conn.query_row(
        "SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_leaves",
        [],
        |r| r.get(0),
    )?;
    let mut out = LoadedTlog {
        size: size as u64,
        ..Default::default()
    };
    out.range = alertmesh_protocol::tlog::CompactRange::load(&StoredSubtrees(conn), out.size)
        .map_err(|e| rusqlite::Error::InvalidParameterName(format!("transparency log: {e}")))?;
    let mut q = conn.prepare("SELECT author, note, witnessed FROM tlog_checkpoints")?;
    for row in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)))? {
        let (author, note, w): (Vec<u8>, Vec<u8>, i64) = row?;
        if let Some(a) = key32(author) {
            out.checkpoints.push((NodePublicKey(a), note, w != 0));
        }
    }
    let mut q = conn.prepare("SELECT author, size, root, note FROM tlog_witnessed")?;
    for row in q.query_map([], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?))
    })? {
        let (author, size, root, note): (Vec<u8>, i64, Vec<u8>, Vec<u8>) = row?;
        if let (Some(a), Some(root)) = (key32(author), key32(root)) {
            out.witnessed
                .push((NodePublicKey(a), size as u64, root, note));
        }
    }
    let mut q = conn.prepare("SELECT id FROM split_views")?;
    for row in q.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
        if let Some(id) = key32(row?) {
            out.split_views.push(id);
        }
    }
    Ok(out)
}

/// Perfect subtrees of our log, read from the store.
pub struct StoredSubtrees<'a>(pub &'a Connection);

impl SubtreeSource for StoredSubtrees<'_> {
    fn perfect(&self, level: u8, index: u64) -> Option<Hash> {
        let mut q = self
            .0
            .prepare_cached("SELECT hash FROM tlog_nodes WHERE level = ?1 AND idx = ?2")
            .ok()?;
        q.query_row(params![level as i64, index as i64], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .optional()
        .ok()
        .flatten()
        .and_then(key32)
    }
}

/// Leaves of our log in `[from, to)` on the given topics, as `(index, id)`, ascending.
pub fn leaves_on_topics(
    conn: &Connection,
    from: u64,
    to: u64,
    topics: &[TopicId],
) -> rusqlite::Result<Vec<(u64, EnvelopeId)>> {
    let mut q = conn.prepare_cached(
        "SELECT idx, id, topic FROM tlog_leaves WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
    )?;
    let mut out = Vec::new();
    for row in q.query_map(params![from as i64, to as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })? {
        let (idx, id, topic) = row?;
        let (Some(id), Some(topic)) = (key32(id), key32(topic)) else {
            continue;
        };
        if topics.contains(&TopicId(topic)) {
            out.push((idx as u64, EnvelopeId(id)));
        }
    }
    Ok(out)
}

/// The leaf index of an envelope of our log.
pub fn leaf_index(conn: &Connection, id: &EnvelopeId) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT idx FROM tlog_leaves WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| r.get::<_, i64>(0))
        .optional()
        .map(|o| o.map(|i| i as u64))
}

/// The newest checkpoint held per log, with whether it is witnessed.
pub fn checkpoints(conn: &Connection) -> rusqlite::Result<Vec<(NodePublicKey, Vec<u8>, bool)>> {
    Ok(load_tlog(conn)?.checkpoints)
}

/// Split-view evidence held: (author, size, encoded evidence).
pub fn split_views(conn: &Connection) -> rusqlite::Result<Vec<(NodePublicKey, u64, Vec<u8>)>> {
    let mut q = conn.prepare("SELECT author, size, bytes FROM split_views ORDER BY received_ms")?;
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (a, size, bytes) = row?;
        if let Some(a) = key32(a) {
            out.push((NodePublicKey(a), size as u64, bytes));
        }
    }
    Ok(out)
}

pub(super) fn apply_leaf(tx: &Transaction<'_>, leaf: &LeafRow) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO tlog_leaves (idx, id, topic, seq) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            leaf.index as i64,
            leaf.id.as_bytes(),
            leaf.topic.as_bytes(),
            leaf.seq as i64
        ])?;
    let mut q = tx.prepare_cached(
        "INSERT OR REPLACE INTO tlog_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
    )?;
    for (level, index, hash) in &leaf.nodes {
        q.execute(params![*level as i64, *index as i64, hash.as_slice()])?;
    }
    // Our own envelopes need no proof from anyone.
    tx.prepare_cached("DELETE FROM tlog_unproven WHERE envelope_id = ?1")?
        .execute([leaf.id.as_bytes()])?;
    Ok(())
}

/// Envelopes of `author` whose place in its log we have not proven yet, least asked and
/// oldest first.
pub fn unproven_ids(
    conn: &Connection,
    author: &NodePublicKey,
    limit: usize,
) -> rusqlite::Result<Vec<EnvelopeId>> {
    conn.prepare_cached(
        "SELECT envelope_id FROM tlog_unproven WHERE author = ?1 ORDER BY tries, cursor LIMIT ?2",
    )?
    .query_map(params![author.as_bytes(), limit as i64], |r| {
        r.get::<_, Vec<u8>>(0)
    })?
    .filter_map(|r| r.map(|v| key32(v).map(EnvelopeId)).transpose())
    .collect()
}

/// Inclusion proofs of those `ids` that are leaves of our log below `size`.
pub fn inclusion_proofs(
    conn: &Connection,
    size: u64,
    ids: &[EnvelopeId],
) -> anyhow::Result<Vec<Inclusion>> {
    let src = StoredSubtrees(conn);
    let mut out = Vec::new();
    for id in ids {
        let Some(index) = leaf_index(conn, id)?.filter(|i| *i < size) else {
            continue;
        };
        let path = alertmesh_protocol::tlog::tree::inclusion_proof(&src, index, size)?;
        out.push(Inclusion {
            index,
            id: *id,
            path,
        });
    }
    Ok(out)
}

/// The stored proof of an envelope's place in its author's log.
pub fn inclusion_of(
    conn: &Connection,
    id: &EnvelopeId,
) -> rusqlite::Result<Option<ProvenInclusion>> {
    let row = conn
        .prepare_cached(
            "SELECT author, size, idx, path FROM tlog_inclusions WHERE envelope_id = ?1",
        )?
        .query_row([id.as_bytes()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(author, size, index, path)| {
        Some(ProvenInclusion {
            author: NodePublicKey(key32(author)?),
            size: size as u64,
            inclusion: Inclusion {
                index: index as u64,
                id: *id,
                path: path
                    .chunks_exact(32)
                    .map(|c| <Hash>::try_from(c).unwrap_or_default())
                    .collect(),
            },
        })
    }))
}

/// The checkpoint of `(author, size)` that stored inclusion proofs lead to.
pub fn proof_checkpoint(
    conn: &Connection,
    author: &NodePublicKey,
    size: u64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT note FROM tlog_proof_checkpoints WHERE author = ?1 AND size = ?2")?
        .query_row(params![author.as_bytes(), size as i64], |r| r.get(0))
        .optional()
}

/// Our own log as an export proves it: its author, and the size and note of the newest
/// checkpoint of it we signed (`None` before the first).
pub fn own_log(conn: &Connection) -> rusqlite::Result<Option<(NodePublicKey, u64, Vec<u8>)>> {
    conn.query_row(
        "SELECT c.author, c.size, c.note FROM tlog_leaves l
         JOIN envelopes e ON e.id = l.id
         JOIN tlog_checkpoints c ON c.author = e.author
         WHERE l.idx = 0",
        [],
        |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        },
    )
    .optional()
    .map(|row| row.and_then(|(a, size, note)| Some((NodePublicKey(key32(a)?), size as u64, note))))
}

/// The proof an export carries of an envelope's place in its author's log: from our own
/// tree for our envelopes (`own` from [`own_log`]), else the one its author gave us.
pub fn export_proof(
    conn: &Connection,
    own: Option<&(NodePublicKey, u64, Vec<u8>)>,
    id: &EnvelopeId,
    author: &NodePublicKey,
) -> anyhow::Result<Option<ProvenInclusion>> {
    match own {
        Some((me, size, _)) if me == author => Ok(inclusion_proofs(conn, *size, &[*id])?
            .pop()
            .map(|inclusion| ProvenInclusion {
                author: *me,
                size: *size,
                inclusion,
            })),
        _ => Ok(inclusion_of(conn, id)?),
    }
}

/// Proofs an author gave of its envelopes in its checkpoint (`note`, of `size` leaves),
/// and the asked ids it left out. Only proofs of envelopes held and not proven yet are
/// kept (an add-checkpoint carries proofs of every new leaf the witness may hold).
pub(super) fn apply_inclusions(
    tx: &Transaction<'_>,
    author: &NodePublicKey,
    size: u64,
    note: &[u8],
    proofs: &[Inclusion],
    missing: &[EnvelopeId],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO tlog_inclusions (envelope_id, author, size, idx, path)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS
             (SELECT 1 FROM tlog_unproven WHERE envelope_id = ?1 AND author = ?2)",
    )?;
    let mut proven = tx.prepare_cached("DELETE FROM tlog_unproven WHERE envelope_id = ?1")?;
    let mut kept = 0;
    for p in proofs {
        kept += insert.execute(params![
            p.id.as_bytes(),
            author.as_bytes(),
            size as i64,
            p.index as i64,
            p.path.concat()
        ])?;
        proven.execute([p.id.as_bytes()])?;
    }
    if kept > 0 {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO tlog_proof_checkpoints (author, size, note) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![author.as_bytes(), size as i64, note])?;
    }
    let mut tried =
        tx.prepare_cached("UPDATE tlog_unproven SET tries = tries + 1 WHERE envelope_id = ?1")?;
    for id in missing {
        tried.execute([id.as_bytes()])?;
    }
    tx.prepare_cached("DELETE FROM tlog_unproven WHERE author = ?1 AND tries >= ?2")?
        .execute(params![author.as_bytes(), MAX_INCLUSION_TRIES])?;
    Ok(())
}

pub(super) fn apply_checkpoint(
    tx: &Transaction<'_>,
    author: &NodePublicKey,
    size: u64,
    note: &[u8],
    witnessed: bool,
    received_ms: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO tlog_checkpoints (author, size, note, witnessed, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        author.as_bytes(),
        size as i64,
        note,
        witnessed as i64,
        received_ms as i64
    ])?;
    Ok(())
}

pub(super) fn apply_witnessed(
    tx: &Transaction<'_>,
    author: &NodePublicKey,
    size: u64,
    root: &Hash,
    note: &[u8],
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO tlog_witnessed (author, size, root, note) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        author.as_bytes(),
        size as i64,
        root.as_slice(),
        note
    ])?;
    Ok(())
}

pub(super) fn apply_split_view(
    tx: &Transaction<'_>,
    id: &[u8; 32],
    author: &NodePublicKey,
    size: u64,
    bytes: &[u8],
    received_ms: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO split_views (id, author, size, bytes, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id.as_slice(),
        author.as_bytes(),
        size as i64,
        bytes,
        received_ms as i64
    ])?;
    Ok(())
}

/// Our add-checkpoint of `note` (a checkpoint of `size` leaves) to a witness that last
/// cosigned `old_size`: the consistency proof, and inclusion proofs of the newest leaves
/// on `topics` in `[old_size, size)` (at most [`alertmesh_protocol::tlog::MAX_INCLUSIONS`]).
pub fn add_checkpoint(
    conn: &Connection,
    old_size: u64,
    size: u64,
    note: Vec<u8>,
    topics: &[TopicId],
) -> anyhow::Result<alertmesh_protocol::tlog::AddCheckpoint> {
    use alertmesh_protocol::tlog::{AddCheckpoint, Inclusion, MAX_INCLUSIONS, tree};
    let src = StoredSubtrees(conn);
    let consistency = tree::consistency_proof(&src, old_size, size)?;
    let from = old_size.max(size.saturating_sub(4 * MAX_INCLUSIONS as u64));
    let mut leaves = leaves_on_topics(conn, from, size, topics)?;
    let skip = leaves.len().saturating_sub(MAX_INCLUSIONS);
    let mut inclusions = Vec::with_capacity(leaves.len() - skip);
    for (index, id) in leaves.drain(skip..) {
        let path = tree::inclusion_proof(&src, index, size)?;
        inclusions.push(Inclusion { index, id, path });
    }
    Ok(AddCheckpoint {
        old_size,
        consistency,
        checkpoint: note,
        inclusions,
    })
}
