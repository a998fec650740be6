//! Opening a database: it must be ours and for this network; migrations bring its schema
//! up to date, filling new columns of old rows in the same transaction.

use super::StoreError;
use alertmesh_protocol::{Content, EnvelopeId, NetworkId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// SQLite `application_id` marking an alertmesh database ("alms").
pub(super) const APPLICATION_ID: i64 = 0x616c_6d73;
/// Schema migrations; `user_version` is the number applied.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 4: the observable index and full-text search (`super::observables`), built for the
    // rows of an older database by `observables::backfill` in the same transaction.
    super::observables::SCHEMA,
    // 5: what the core loads at start instead of every envelope (`super::history`): the
    // head and size of each chain, and the encrypted envelopes without an alert row, both
    // kept in the writer's transaction (by triggers; since 7 partly by the writer's own
    // statements); key packages indexed on their own. Rows of an older database are
    // filled in by the statements at the end.
    HISTORY_SCHEMA,
    // 6: transparency logs (`super::tlog`).
    super::tlog::SCHEMA,
    // 7: the writer keeps `chain_heads` and empties `undecrypted` itself
    // (`super::writer`): with these triggers SQLite copied every page each envelope and
    // alert insert touched into a statement journal.
    "DROP TRIGGER chain_heads_insert; DROP TRIGGER undecrypted_delete;",
];

/// Migration 5 (see [`MIGRATIONS`]).
const HISTORY_SCHEMA: &str = "
    CREATE TABLE chain_heads (
        author BLOB NOT NULL,
        topic BLOB NOT NULL,
        head_seq INTEGER NOT NULL,
        head_id BLOB NOT NULL,
        head_prev BLOB NOT NULL,
        held INTEGER NOT NULL,
        PRIMARY KEY (author, topic)) WITHOUT ROWID;
    CREATE TRIGGER chain_heads_insert AFTER INSERT ON envelopes BEGIN
        INSERT INTO chain_heads (author, topic, head_seq, head_id, head_prev, held)
        VALUES (new.author, new.topic, new.seq, new.id, new.prev, 1)
        ON CONFLICT (author, topic) DO UPDATE SET
            held = held + 1,
            head_id = iif(excluded.head_seq > head_seq, excluded.head_id, head_id),
            head_prev = iif(excluded.head_seq > head_seq, excluded.head_prev, head_prev),
            head_seq = max(head_seq, excluded.head_seq);
    END;
    CREATE TABLE undecrypted (
        envelope_id BLOB PRIMARY KEY,
        cursor INTEGER NOT NULL) WITHOUT ROWID;
    CREATE INDEX undecrypted_cursor ON undecrypted (cursor);
    CREATE TRIGGER undecrypted_insert AFTER INSERT ON envelopes
        WHEN new.kind IN ('alert', 'update', 'retraction') BEGIN
        INSERT OR IGNORE INTO undecrypted (envelope_id, cursor) VALUES (new.id, new.cursor);
    END;
    CREATE TRIGGER undecrypted_delete AFTER INSERT ON alerts BEGIN
        DELETE FROM undecrypted WHERE envelope_id = new.envelope_id;
    END;
    CREATE INDEX envelopes_key_packages ON envelopes (cursor) WHERE kind = 'key_package';
    INSERT INTO chain_heads (author, topic, head_seq, head_id, head_prev, held)
        SELECT e.author, e.topic, e.seq, e.id, e.prev, c.held
        FROM (SELECT author, topic, max(seq) AS head, count(*) AS held
              FROM envelopes GROUP BY author, topic) c
        JOIN envelopes e ON e.author = c.author AND e.topic = c.topic AND e.seq = c.head;
    INSERT INTO undecrypted (envelope_id, cursor)
        SELECT id, cursor FROM envelopes e
        WHERE kind IN ('alert', 'update', 'retraction')
          AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.envelope_id = e.id);
";

/// The database file inside a data dir.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("alertmesh.db")
}

/// The error of a SQLite failure while a node opens its database and reads its start-up
/// state, before anything is written: a file that is not SQLite or is damaged is
/// [`StoreError::Foreign`] (left untouched), anything else [`StoreError::Sqlite`].
pub(super) fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => foreign(path, "is not a SQLite database"),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            foreign(path, &format!("is damaged ({source})"))
        }
        _ => StoreError::Sqlite {
            path: path.to_owned(),
            source,
        },
    }
}

fn foreign(path: &Path, problem: &str) -> StoreError {
    StoreError::Foreign {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Reads every page of the database (`PRAGMA quick_check`) and refuses a damaged one.
/// Its time grows with the file, so [`open`] runs it only before migrating; otherwise the
/// writer runs it before its first write ([`super::spawn_writer`]), and a node starts
/// without waiting for it.
pub fn check_whole_file(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let ok: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(sql_err(path))?;
    if ok != "ok" {
        return Err(foreign(path, &format!("is damaged ({ok})")));
    }
    Ok(())
}

/// Opens (creating if needed) the database, checks it is ours and for this network,
/// and applies migrations. Pages the start-up does not read are checked before a
/// migration writes, else by the writer before its first write ([`check_whole_file`]).
pub fn open(data_dir: &Path, network: &NetworkId) -> Result<Connection, StoreError> {
    let path = db_path(data_dir);
    let e = sql_err(&path);
    let existed = path.exists();
    let conn = Connection::open(&path).map_err(&e)?;
    // Reading the header and the schema writes nothing: a file that is not SQLite at all,
    // or whose first pages are damaged, fails here.
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(&e)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(&e)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(&e)?;
    if existed && app_id != APPLICATION_ID && (tables > 0 || version > 0) {
        return Err(foreign(&path, "is not an alertmesh database"));
    }
    if version as usize > MIGRATIONS.len() {
        return Err(foreign(&path, "was written by a newer alertmesh"));
    }
    if app_id == APPLICATION_ID && (version as usize) < MIGRATIONS.len() {
        check_whole_file(&conn, &path)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&e)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(&e)?;
    bound_page_cache(&conn).map_err(&e)?;
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
        if i + 1 == 4 {
            super::observables::backfill(&tx).map_err(&e)?;
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
        Some(id) if id != network.as_bytes() => {
            return Err(foreign(&path, "belongs to another network"));
        }
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
    bound_page_cache(&conn).map_err(sql_err(&path))?;
    Ok(conn)
}

/// SQLite's page cache per connection, in KiB (SQLite's default, stated so that it stays
/// bounded whatever the build's defaults): resident memory does not grow with the file.
const PAGE_CACHE_KIB: i64 = 2048;

/// Bounds a connection's memory: a fixed page cache and no memory-mapped I/O (mapped
/// pages of a large file would count in the resident set).
fn bound_page_cache(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    conn.pragma_update(None, "mmap_size", 0)
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
                .zip(serde_json::from_str::<Content>(&json).ok())
                .and_then(|(b, content)| crate::stix::served_id(&EnvelopeId(b), &content)),
        };
        ids.insert(id, stix.clone());
        tx.execute(
            "UPDATE alerts SET stix_id = ?1, added_us = ?2 WHERE cursor = ?3",
            params![stix, added, cursor],
        )?;
    }
    Ok(())
}
