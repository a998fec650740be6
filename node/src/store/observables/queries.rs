//! Index reads: lookup of a value, full-text search, an alert's correlations, and the
//! values several orgs reported. Every page is bounded; hits are newest first (by the
//! original's cursor) and `next` continues after the last one.

use super::normalize::{Key, ObsType};
use alertmesh_protocol::Content;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most alerts listed per shared value in an alert's correlations.
pub const MAX_PER_VALUE: usize = 50;

/// One alert found, in its current state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hit {
    /// The alert's id (its original envelope's id).
    pub id: String,
    /// The original's cursor (the paging key).
    pub cursor: i64,
    /// Topic name.
    pub topic: String,
    /// The org that vouches for the alert: the org of the node that signed it.
    pub org: String,
    /// The signing node's public key (hex).
    pub author: String,
    /// TLP of the original.
    pub tlp: String,
    /// The current version's alert kind (`indicator`, `campaign`, …).
    pub kind: String,
    /// `active`, `updated` or `retracted`.
    pub state: String,
    /// The original's timestamp.
    pub created_ms: i64,
    /// The current version's timestamp (the retraction's, if retracted).
    pub modified_ms: i64,
    /// The current version's title.
    pub title: String,
    /// Which of the searched values it carries (lookups only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched: Vec<Key>,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            ty: String,
            value: String,
        }
        let raw = Raw::deserialize(d)?;
        let ty = ObsType::parse(&raw.ty)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown type {}", raw.ty)))?;
        Ok(Key {
            ty,
            value: raw.value,
        })
    }
}

/// How many alerts of one org carry a value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgCount {
    /// The org.
    pub org: String,
    /// Its alerts that are not retracted.
    pub alerts: i64,
    /// Its retracted alerts (no support).
    pub retracted: i64,
}

/// A page of a lookup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupPage {
    /// The normalized values searched.
    pub keys: Vec<Key>,
    /// Alerts carrying any of them, over every page.
    pub alerts: i64,
    /// Of those, retracted.
    pub retracted: i64,
    /// Distinct orgs with a not-retracted alert carrying it (independent sightings).
    pub distinct_orgs: usize,
    /// Per org, over every page.
    pub orgs: Vec<OrgCount>,
    /// This page's hits, newest first.
    pub hits: Vec<Hit>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next: Option<i64>,
}

/// A page of a full-text search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchPage {
    /// Hits, newest first.
    pub hits: Vec<Hit>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next: Option<i64>,
}

/// Search filters (all optional, all must hold).
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Topic name.
    pub topic: Option<String>,
    /// TLP label (`TLP:GREEN`).
    pub tlp: Option<String>,
    /// Alert kind (`indicator`, …).
    pub kind: Option<String>,
    /// Author org.
    pub org: Option<String>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created before (ms).
    pub until: Option<i64>,
}

/// A value an alert shares with others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shared {
    /// The shared value.
    #[serde(flatten)]
    pub key: Key,
    /// Orgs with a not-retracted alert carrying it (this alert's org included).
    pub orgs: Vec<String>,
    /// The other alerts carrying it, newest first (at most [`MAX_PER_VALUE`]).
    pub alerts: Vec<Hit>,
    /// Whether more alerts carry it than listed.
    pub more: bool,
}

/// An alert's correlations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Correlations {
    /// The alert.
    pub alert: Hit,
    /// Values it shares with other alerts, most orgs first.
    pub shared: Vec<Shared>,
}

/// A value reported by several orgs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Correlated {
    /// The value.
    #[serde(flatten)]
    pub key: Key,
    /// Distinct orgs with a not-retracted alert carrying it.
    pub distinct_orgs: i64,
    /// Those orgs.
    pub orgs: Vec<String>,
    /// Not-retracted alerts carrying it.
    pub alerts: i64,
    /// The newest of them (created, ms).
    pub last_ms: i64,
}

/// The hit of the alert indexed at `alert` (an original's cursor).
pub fn hit(conn: &Connection, alert: i64) -> rusqlite::Result<Option<Hit>> {
    conn.prepare_cached(
        "SELECT a.envelope_id, o.topic_name, o.org, e.author, o.tlp, o.kind, o.created_ms,
                o.version_cursor, o.version_ms, o.retracted_ms, v.content_json
         FROM observed o JOIN alerts a ON a.cursor = o.alert JOIN envelopes e ON e.id = a.envelope_id
              JOIN alerts v ON v.cursor = o.version_cursor
         WHERE o.alert = ?1",
    )?
    .query_row([alert], |r| {
        let version_cursor: i64 = r.get(7)?;
        let retracted_ms: Option<i64> = r.get(9)?;
        let json: String = r.get(10)?;
        let title = serde_json::from_str::<Content>(&json)
            .ok()
            .and_then(|c| c.alert().map(|a| a.title.clone()))
            .unwrap_or_default();
        let state = match (retracted_ms, version_cursor == alert) {
            (Some(_), _) => "retracted",
            (None, true) => "active",
            (None, false) => "updated",
        };
        let version_ms: i64 = r.get(8)?;
        Ok(Hit {
            id: hex::encode(r.get::<_, Vec<u8>>(0)?),
            cursor: alert,
            topic: r.get(1)?,
            org: r.get(2)?,
            author: hex::encode(r.get::<_, Vec<u8>>(3)?),
            tlp: r.get(4)?,
            kind: r.get(5)?,
            state: state.into(),
            created_ms: r.get(6)?,
            modified_ms: retracted_ms.unwrap_or(version_ms).max(version_ms),
            title,
            matched: vec![],
        })
    })
    .optional()
}

/// The indexed alert (an original's cursor) of an alert or amendment id.
pub fn alert_cursor(conn: &Connection, id: &[u8]) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT coalesce((SELECT o.cursor FROM alerts o WHERE o.envelope_id = a.original), a.cursor)
         FROM alerts a WHERE a.envelope_id = ?1",
    )?
    .query_row([id], |r| r.get(0))
    .optional()
}

/// The text of `key` inside `observed.keys` (`[code,"value"]`; JSON escaping makes it
/// match only a whole pair).
fn pair_text(key: &Key) -> String {
    serde_json::to_string(&(key.ty.code(), &key.value)).unwrap_or_default()
}

/// The FTS5 expression matching `key`'s token.
fn token_query(key: &Key) -> String {
    format!("\"{}\"", super::index::token(key))
}

/// Alerts (their indexed cursors) carrying `key`, below `before`, newest first, at most
/// `limit`.
fn alerts_with(
    conn: &Connection,
    key: &Key,
    before: i64,
    limit: usize,
) -> rusqlite::Result<Vec<i64>> {
    let mut q = conn.prepare_cached(
        "SELECT observable_keys.rowid, o.keys
         FROM observable_keys CROSS JOIN observed o ON o.alert = observable_keys.rowid
         WHERE observable_keys MATCH ?1 AND observable_keys.rowid < ?2
         ORDER BY observable_keys.rowid DESC LIMIT ?3",
    )?;
    let pair = pair_text(key);
    let rows = q.query_map(params![token_query(key), before, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (alert, keys) = row?;
        if keys.contains(&pair) {
            out.push(alert);
        }
    }
    Ok(out)
}

/// Every alert carrying `key`: (alert, org, retracted).
fn supporters(conn: &Connection, key: &Key) -> rusqlite::Result<Vec<(i64, String, bool)>> {
    let mut q = conn.prepare_cached(
        "SELECT observable_keys.rowid, o.org, o.retracted_ms IS NOT NULL, o.keys
         FROM observable_keys CROSS JOIN observed o ON o.alert = observable_keys.rowid
         WHERE observable_keys MATCH ?1",
    )?;
    let pair = pair_text(key);
    let rows = q.query_map(params![token_query(key)], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (alert, org, retracted, keys) = row?;
        if keys.contains(&pair) {
            out.push((alert, org, retracted));
        }
    }
    Ok(out)
}

/// Looks up alerts carrying any of `keys` (one value, or a URL and its host): one page
/// of hits below `before`, and counts over every page.
pub fn lookup(
    conn: &Connection,
    keys: &[Key],
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<LookupPage> {
    let before = before.unwrap_or(i64::MAX);
    let mut found: BTreeMap<i64, Vec<Key>> = BTreeMap::new();
    for key in keys {
        for alert in alerts_with(conn, key, before, limit + 1)? {
            found.entry(alert).or_default().push(key.clone());
        }
    }
    let more = found.len() > limit;
    let mut hits = Vec::new();
    for (alert, matched) in found.into_iter().rev().take(limit) {
        if let Some(mut h) = hit(conn, alert)? {
            h.matched = matched;
            hits.push(h);
        }
    }
    let next = if more {
        hits.last().map(|h| h.cursor)
    } else {
        None
    };
    let mut all: HashMap<i64, (String, bool)> = HashMap::new();
    for key in keys {
        for (alert, org, retracted) in supporters(conn, key)? {
            all.insert(alert, (org, retracted));
        }
    }
    let mut orgs: BTreeMap<String, OrgCount> = BTreeMap::new();
    for (org, retracted) in all.values() {
        let c = orgs.entry(org.clone()).or_insert_with(|| OrgCount {
            org: org.clone(),
            alerts: 0,
            retracted: 0,
        });
        if *retracted {
            c.retracted += 1;
        } else {
            c.alerts += 1;
        }
    }
    let retracted = all.values().filter(|(_, r)| *r).count() as i64;
    Ok(LookupPage {
        keys: keys.to_vec(),
        alerts: all.len() as i64,
        retracted,
        distinct_orgs: orgs.values().filter(|c| c.alerts > 0).count(),
        orgs: orgs.into_values().collect(),
        hits,
        next,
    })
}

/// Full-text search: alerts whose current title, description or labels match the FTS5
/// expression `fts` (build it with `fts_query`), with `filter`, below `before`, newest
/// first. An FTS5 syntax error is returned as is (the API builds only valid
/// expressions).
pub fn search(
    conn: &Connection,
    fts: &str,
    filter: &SearchFilter,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<SearchPage> {
    let mut q = conn.prepare_cached(
        "SELECT alert_text.rowid FROM alert_text CROSS JOIN observed o ON o.alert = alert_text.rowid
         WHERE alert_text MATCH ?1 AND alert_text.rowid < ?2
           AND (?3 IS NULL OR o.topic_name = ?3) AND (?4 IS NULL OR o.tlp = ?4)
           AND (?5 IS NULL OR o.kind = ?5) AND (?6 IS NULL OR o.org = ?6)
           AND (?7 IS NULL OR o.created_ms >= ?7) AND (?8 IS NULL OR o.created_ms < ?8)
         ORDER BY alert_text.rowid DESC LIMIT ?9",
    )?;
    let alerts: Vec<i64> = q
        .query_map(
            params![
                fts,
                before.unwrap_or(i64::MAX),
                filter.topic,
                filter.tlp,
                filter.kind,
                filter.org,
                filter.since,
                filter.until,
                limit as i64 + 1
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let more = alerts.len() > limit;
    let mut hits = Vec::new();
    for alert in alerts.into_iter().take(limit) {
        hits.extend(hit(conn, alert)?);
    }
    let next = if more {
        hits.last().map(|h| h.cursor)
    } else {
        None
    };
    Ok(SearchPage { hits, next })
}

/// The values the alert indexed at `alert` shares with other alerts, each with the
/// orgs involved and up to [`MAX_PER_VALUE`] other alerts; `None` if not indexed.
pub fn correlations_of(conn: &Connection, alert: i64) -> rusqlite::Result<Option<Correlations>> {
    let Some(this) = hit(conn, alert)? else {
        return Ok(None);
    };
    let keys: String = conn
        .prepare_cached("SELECT keys FROM observed WHERE alert = ?1")?
        .query_row([alert], |r| r.get(0))?;
    let keys = super::index::parse_keys(&keys);
    let mut cache: HashMap<i64, Option<Hit>> = HashMap::new();
    let mut shared = Vec::new();
    for key in keys {
        let mut others = alerts_with(conn, &key, i64::MAX, MAX_PER_VALUE + 2)?;
        others.retain(|a| *a != alert);
        if others.is_empty() {
            continue;
        }
        let more = others.len() > MAX_PER_VALUE;
        let mut alerts = Vec::new();
        for other in others.into_iter().take(MAX_PER_VALUE) {
            let h = match cache.get(&other) {
                Some(h) => h.clone(),
                None => {
                    let h = hit(conn, other)?;
                    cache.insert(other, h.clone());
                    h
                }
            };
            alerts.extend(h);
        }
        let orgs: BTreeSet<String> = supporters(conn, &key)?
            .into_iter()
            .filter(|(_, _, retracted)| !retracted)
            .map(|(_, org, _)| org)
            .collect();
        shared.push(Shared {
            key,
            orgs: orgs.into_iter().collect(),
            alerts,
            more,
        });
    }
    shared.sort_by(|a, b| b.orgs.len().cmp(&a.orgs.len()).then(a.key.cmp(&b.key)));
    Ok(Some(Correlations {
        alert: this,
        shared,
    }))
}

/// Most alerts [`correlated`] reads.
pub const MAX_SCAN: usize = 200_000;
/// Most observables [`correlated`] counts (alerts of up to 1 000 observables each cannot
/// make it hold more).
pub const MAX_SCAN_KEYS: usize = 2_000_000;

/// Values several orgs reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorrelatedPage {
    /// Most orgs first, then newest.
    pub values: Vec<Correlated>,
    /// Alerts read.
    pub scanned: usize,
    /// Whether more than [`MAX_SCAN`] alerts (or [`MAX_SCAN_KEYS`] observables) were in
    /// range: only the newest were read (narrow `since`).
    pub truncated: bool,
}

/// Values carried by not-retracted alerts of at least `min_orgs` distinct orgs, counting
/// only alerts created at or after `since` (the newest [`MAX_SCAN`] of them, up to
/// [`MAX_SCAN_KEYS`] observables); most orgs first, at most `limit`.
pub fn correlated(
    conn: &Connection,
    min_orgs: usize,
    since: i64,
    limit: usize,
) -> rusqlite::Result<CorrelatedPage> {
    let mut q = conn.prepare_cached(
        "SELECT org, created_ms, keys FROM observed
         WHERE created_ms >= ?1 AND retracted_ms IS NULL
         ORDER BY created_ms DESC LIMIT ?2",
    )?;
    let rows = q.query_map(params![since, MAX_SCAN as i64 + 1], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut by_key: HashMap<Key, (BTreeSet<String>, i64, i64)> = HashMap::new();
    let (mut scanned, mut counted, mut truncated) = (0, 0, false);
    for row in rows {
        let (org, created, keys) = row?;
        let keys = super::index::parse_keys(&keys);
        counted += keys.len();
        if scanned == MAX_SCAN || counted > MAX_SCAN_KEYS {
            truncated = true;
            break;
        }
        scanned += 1;
        for key in keys {
            let e = by_key.entry(key).or_default();
            e.0.insert(org.clone());
            e.1 += 1;
            e.2 = e.2.max(created);
        }
    }
    let mut values: Vec<Correlated> = by_key
        .into_iter()
        .filter(|(_, (orgs, _, _))| orgs.len() >= min_orgs)
        .map(|(key, (orgs, alerts, last_ms))| Correlated {
            key,
            distinct_orgs: orgs.len() as i64,
            orgs: orgs.into_iter().collect(),
            alerts,
            last_ms,
        })
        .collect();
    values.sort_by(|a, b| {
        b.distinct_orgs
            .cmp(&a.distinct_orgs)
            .then(b.last_ms.cmp(&a.last_ms))
            .then(a.key.cmp(&b.key))
    });
    values.truncate(limit);
    Ok(CorrelatedPage {
        values,
        scanned,
        truncated,
    })
}
