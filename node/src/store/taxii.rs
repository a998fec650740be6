//! The reads of TAXII collections (one per topic): object versions by key-set page.
//!
//! Every decrypted alert row is one version of one STIX object, served under the row's
//! `stix_id` (set by the writer from [`crate::stix::served_id`]) with `date_added` its
//! `added_us`: strictly increasing in log order, and the page key. A page is
//! `WHERE topic = ? AND added_us > key ORDER BY added_us LIMIT n`, an index range scan
//! whose cost does not depend on how deep the page is (no OFFSET).

use super::queries::{conversion_failure, json_column, label_column};
use alertmesh_protocol::{Content, EnvelopeId, Tlp};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value as Sql};

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

    /// Whether SQL alone selects the versions (no `modified` timestamp to compare).
    fn by_sql(&self) -> bool {
        !self.all && self.at_ms.is_empty()
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

/// One stored version of a STIX object: an alert row with its original's.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// The row's envelope.
    pub envelope_id: EnvelopeId,
    /// For an update or retraction: the original alert.
    pub original: Option<EnvelopeId>,
    /// Author org (of the envelope's signer).
    pub org: String,
    /// The envelope's TLP.
    pub tlp: Tlp,
    /// Author's timestamp.
    pub timestamp_ms: i64,
    /// The row's content.
    pub content: Content,
    /// The STIX id served.
    pub stix_id: String,
    /// `date_added`, µs since the epoch.
    pub added_us: i64,
    /// The original's timestamp (this row's, for an original).
    pub created_ms: i64,
    /// The original's content, for an amendment.
    pub original_content: Option<Content>,
}

/// Up to `batch` rows of `q` added after `key`, by `added_us`. Filters ids, types and
/// (when SQL can) versions; the caller applies `match[version]` timestamps.
pub fn versions_after(
    conn: &Connection,
    q: &Query,
    key: i64,
    batch: usize,
) -> rusqlite::Result<Vec<VersionRow>> {
    let mut sql = String::from(
        "SELECT a.envelope_id, a.original, a.org, a.tlp, a.timestamp_ms, a.content_json,
                a.stix_id, a.added_us, o.timestamp_ms, o.content_json
         FROM alerts a LEFT JOIN alerts o ON o.envelope_id = a.original
         WHERE a.topic_name = ?1 AND a.added_us > ?2 AND a.stix_id IS NOT NULL",
    );
    let mut args: Vec<Sql> = vec![Sql::Text(q.topic.clone()), Sql::Integer(key)];
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
    if v.by_sql() {
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
    let mut sql = renumber(&sql);
    sql.push_str(&format!(" ORDER BY a.added_us LIMIT {batch}"));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        let timestamp_ms: i64 = r.get(4)?;
        let original_content: Option<String> = r.get(9)?;
        Ok(VersionRow {
            envelope_id: id_column(r, 0)?,
            original: r
                .get::<_, Option<Vec<u8>>>(1)?
                .map(|b| id_of(&b, 1))
                .transpose()?,
            org: r.get(2)?,
            tlp: label_column(r, 3)?,
            timestamp_ms,
            content: json_column(r, 5)?,
            stix_id: r.get(6)?,
            added_us: r.get(7)?,
            created_ms: r.get::<_, Option<i64>>(8)?.unwrap_or(timestamp_ms),
            original_content: original_content
                .map(|c| serde_json::from_str(&c).map_err(|e| conversion_failure(9, e)))
                .transpose()?,
        })
    })?;
    rows.collect()
}

/// Whether no version of the row's object on `topic` was added after it.
pub fn is_last(conn: &Connection, topic: &str, row: &VersionRow) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM alerts WHERE topic_name = ?1 AND stix_id = ?2 AND added_us > ?3)",
        params![topic, row.stix_id, row.added_us],
        |r| r.get(0),
    )
}

/// Whether no version of the row's object on `topic` was added before it.
pub fn is_first(conn: &Connection, topic: &str, row: &VersionRow) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM alerts WHERE topic_name = ?1 AND stix_id = ?2 AND added_us < ?3)",
        params![topic, row.stix_id, row.added_us],
        |r| r.get(0),
    )
}

/// The content of the latest update of `original`, if any.
pub fn latest_update(
    conn: &Connection,
    original: &EnvelopeId,
) -> rusqlite::Result<Option<Content>> {
    conn.query_row(
        "SELECT content_json FROM alerts WHERE original = ?1 AND kind = 'update'
         ORDER BY added_us DESC LIMIT 1",
        [original.as_bytes()],
        |r| json_column(r, 0),
    )
    .optional()
}

/// The STIX id the alert of envelope `id` is served under, if held.
pub fn served_id_of(conn: &Connection, id: &EnvelopeId) -> rusqlite::Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT stix_id FROM alerts WHERE envelope_id = ?1",
            [id.as_bytes()],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// The author org and original envelope of the version added at `added_us` on `topic`.
pub fn version_at(
    conn: &Connection,
    topic: &str,
    added_us: i64,
) -> rusqlite::Result<Option<(String, EnvelopeId)>> {
    conn.query_row(
        "SELECT org, coalesce(original, envelope_id) FROM alerts
         WHERE topic_name = ?1 AND added_us = ?2",
        params![topic, added_us],
        |r| Ok((r.get(0)?, id_column(r, 1)?)),
    )
    .optional()
}

/// The envelope id of the original alert held under STIX id `id` on `topic` (an index
/// lookup).
pub fn envelope_of(
    conn: &Connection,
    topic: &str,
    id: &str,
) -> rusqlite::Result<Option<EnvelopeId>> {
    conn.query_row(
        "SELECT envelope_id FROM alerts WHERE topic_name = ?1 AND stix_id = ?2
         AND original IS NULL ORDER BY added_us LIMIT 1",
        [topic, id],
        |r| id_column(r, 0),
    )
    .optional()
}

/// A blob column holding an envelope id.
fn id_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<EnvelopeId> {
    id_of(&r.get::<_, Vec<u8>>(i)?, i)
}

fn id_of(bytes: &[u8], i: usize) -> rusqlite::Result<EnvelopeId> {
    <[u8; 32]>::try_from(bytes).map(EnvelopeId).map_err(|_| {
        rusqlite::Error::InvalidColumnType(i, "envelope id".into(), rusqlite::types::Type::Blob)
    })
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

#[cfg(test)]
mod tests {
    use super::renumber;

    #[test]
    fn placeholders_are_renumbered_in_order() {
        assert_eq!(
            renumber("a = ?1 AND b = ?7 OR c IN (?3, ?3)"),
            "a = ?1 AND b = ?2 OR c IN (?3, ?4)"
        );
    }
}
