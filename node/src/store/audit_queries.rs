//! Queries of `alertmesh audit export|verify` and of the evidence report: whole tables,
//! in log order, streamed to a callback so that a large database is never held in memory.

use rusqlite::Connection;

/// One envelope row: (cursor, received ms, bytes, decrypted content JSON if any).
pub type EnvelopeRecord = (i64, i64, Vec<u8>, Option<String>);
/// One evidence row: (rowid, received ms, bytes, topic id bytes).
pub type EvidenceRecord = (i64, i64, Vec<u8>, Vec<u8>);

/// The bytes of every key-package envelope, in log order.
pub fn key_packages(conn: &Connection) -> rusqlite::Result<Vec<Vec<u8>>> {
    let mut q =
        conn.prepare("SELECT bytes FROM envelopes WHERE kind = 'key_package' ORDER BY cursor")?;
    let rows = q.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Calls `f` with every envelope row in log order; the decrypted content is read only
/// `with_content` (else `None`).
pub fn for_each_envelope(
    conn: &Connection,
    with_content: bool,
    mut f: impl FnMut(EnvelopeRecord) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let sql = if with_content {
        "SELECT e.cursor, e.received_ms, e.bytes, a.content_json
         FROM envelopes e LEFT JOIN alerts a ON a.envelope_id = e.id ORDER BY e.cursor"
    } else {
        "SELECT cursor, received_ms, bytes, NULL FROM envelopes ORDER BY cursor"
    };
    let mut q = conn.prepare(sql)?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        f((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))?;
    }
    Ok(())
}

/// Calls `f` with every evidence row in storage order.
pub fn for_each_evidence(
    conn: &Connection,
    mut f: impl FnMut(EvidenceRecord) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut q =
        conn.prepare("SELECT rowid, received_ms, bytes, topic FROM evidence ORDER BY rowid")?;
    let mut rows = q.query([])?;
    while let Some(row) = rows.next()? {
        f((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))?;
    }
    Ok(())
}
