//! The alert lifecycle: every alert's current state with its history.
//!
//! An alert (an `Alert` envelope) may be followed by updates (a newer version, `Update`)
//! and a retraction (`Retraction`, final), each a signed envelope that names the original.
//! The node applies an amendment only if it comes from the original's org on the
//! original's topic (`alertmesh_protocol::alert::check_amendment`; the core refuses and
//! counts the others, metric `alertmesh_envelopes_total{verdict="reject",
//! reason="amendment_not_by_author"}`), so the `alerts` table holds only applicable
//! amendments; this view re-checks it anyway. A sighting is an alert of kind `sighting`
//! whose `related` ids name the alerts another org saw; each alert's view lists them.
//!
//! Used by `GET /v1/alerts?view=current`, `alertmesh tail` and the STIX export.

use crate::store::{self, StoredAlert};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// Most alerts one page of the current view returns.
pub const MAX_VIEW_PAGE: usize = 500;
/// Most amendments or sightings listed per alert.
const MAX_PER_ALERT: usize = 1000;

/// A sighting of an alert by some org.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sighting {
    /// The sighting alert's envelope id.
    pub id: String,
    /// The org that saw it.
    pub org: String,
    /// When (author's claimed time).
    pub timestamp_ms: i64,
    /// The sighting's title.
    pub title: String,
}

/// The retraction of an alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetractionInfo {
    /// The retraction's envelope id.
    pub id: String,
    /// Why.
    pub reason: String,
    /// When (author's claimed time).
    pub timestamp_ms: i64,
}

/// One alert with its current state and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertState {
    /// The original alert's envelope id (the alert's identity).
    pub id: String,
    /// Position of the original in this node's log (the page cursor).
    pub cursor: i64,
    /// Topic name.
    pub topic: String,
    /// Author org.
    pub org: String,
    /// TLP of the original.
    pub tlp: String,
    /// `active`, `updated` or `retracted`.
    pub state: String,
    /// 1 for the original, +1 per applied update.
    pub version: u32,
    /// The original's timestamp.
    pub created_ms: i64,
    /// The latest applied version's (or the retraction's) timestamp.
    pub modified_ms: i64,
    /// The current content (the latest version's `Alert`).
    pub current: serde_json::Value,
    /// The retraction, if retracted.
    pub retraction: Option<RetractionInfo>,
    /// For a sighting: the ids of the alerts it confirms.
    pub sighting_of: Vec<String>,
    /// Other orgs' sightings of this alert.
    pub sightings: Vec<Sighting>,
    /// The original, then every update and retraction, in the order applied.
    pub history: Vec<StoredAlert>,
}

/// The `Alert` inside a stored row's content (`{"alert": …}` or `{"update": {"alert": …}}`).
pub fn alert_of(row: &StoredAlert) -> Option<&serde_json::Value> {
    row.content
        .get("alert")
        .or_else(|| row.content.get("update").and_then(|u| u.get("alert")))
}

/// A stored row's alert title (empty if none).
pub fn title_of(row: &StoredAlert) -> String {
    alert_of(row)
        .and_then(|a| a.get("title"))
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string()
}

/// The ids of the alerts an alert relates to.
pub fn related_of(alert: &serde_json::Value) -> Vec<String> {
    alert
        .get("related")
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an alert is a sighting of others.
pub fn is_sighting(alert: &serde_json::Value) -> bool {
    alert.get("kind").and_then(|k| k.as_str()) == Some("sighting")
}

/// Builds one alert's state from its original row.
fn state_of(conn: &Connection, original: StoredAlert) -> rusqlite::Result<AlertState> {
    let id_bytes = hex::decode(&original.id).unwrap_or_default();
    let amendments = store::amendments_of(conn, &id_bytes, MAX_PER_ALERT)?;
    let mut current = alert_of(&original).cloned().unwrap_or_default();
    let mut state = "active";
    let mut version = 1u32;
    let mut modified = original.timestamp_ms;
    let mut retraction = None;
    let mut history = vec![original.clone()];
    for a in amendments {
        // The core stores only amendments by the original's org on its topic; a row that
        // is not (an older database, a changed file) is not applied.
        if a.org != original.org || a.topic != original.topic {
            continue;
        }
        if retraction.is_none() {
            match a.kind.as_str() {
                "update" => {
                    if let Some(alert) = alert_of(&a) {
                        current = alert.clone();
                        version += 1;
                        modified = modified.max(a.timestamp_ms);
                        state = "updated";
                    }
                }
                "retraction" => {
                    let reason = a
                        .content
                        .get("retraction")
                        .and_then(|r| r.get("reason"))
                        .and_then(|r| r.as_str())
                        .unwrap_or("")
                        .to_string();
                    retraction = Some(RetractionInfo {
                        id: a.id.clone(),
                        reason,
                        timestamp_ms: a.timestamp_ms,
                    });
                    modified = modified.max(a.timestamp_ms);
                    state = "retracted";
                }
                _ => {}
            }
        }
        history.push(a);
    }
    let sighting_of = if is_sighting(&current) {
        related_of(&current)
    } else {
        Vec::new()
    };
    let sightings = store::originals_mentioning(conn, &original.id, MAX_PER_ALERT)?
        .into_iter()
        .filter(|s| {
            alert_of(s).is_some_and(|a| is_sighting(a) && related_of(a).contains(&original.id))
        })
        .map(|s| Sighting {
            title: title_of(&s),
            id: s.id,
            org: s.org,
            timestamp_ms: s.timestamp_ms,
        })
        .collect();
    Ok(AlertState {
        id: original.id.clone(),
        cursor: original.cursor,
        topic: original.topic.clone(),
        org: original.org.clone(),
        tlp: original.tlp.clone(),
        state: state.to_string(),
        version,
        created_ms: original.timestamp_ms,
        modified_ms: modified,
        current,
        retraction,
        sighting_of,
        sightings,
        history,
    })
}

/// One page of the current view: alerts (originals) after `after`, optionally on one
/// topic, each with its current state and history. Returns the page and the next cursor.
pub fn current_view(
    conn: &Connection,
    topic: Option<&str>,
    after: i64,
    limit: usize,
) -> rusqlite::Result<(Vec<AlertState>, i64)> {
    let limit = limit.clamp(1, MAX_VIEW_PAGE);
    let originals = store::list_originals(conn, topic, after, limit)?;
    let next = originals.last().map_or(after, |o| o.cursor);
    let states = originals
        .into_iter()
        .map(|o| state_of(conn, o))
        .collect::<Result<_, _>>()?;
    Ok((states, next))
}

/// Every alert's state (for the STIX export), optionally on one topic.
pub fn all_states(conn: &Connection, topic: Option<&str>) -> rusqlite::Result<Vec<AlertState>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (page, next) = current_view(conn, topic, after, MAX_VIEW_PAGE)?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
        after = next;
    }
}
