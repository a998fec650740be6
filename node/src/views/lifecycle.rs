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
use alertmesh_protocol::alert::tlp_label;
use alertmesh_protocol::{Alert, AlertKind, Content, Tlp};
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
    /// TLP of the original, as its label.
    #[serde(with = "tlp_label")]
    pub tlp: Tlp,
    /// Active, updated or retracted.
    pub state: Status,
    /// 1 for the original, +1 per applied update.
    pub version: u32,
    /// The original's timestamp.
    pub created_ms: i64,
    /// The latest applied version's (or the retraction's) timestamp.
    pub modified_ms: i64,
    /// The current content (the latest version's `Alert`).
    pub current: Alert,
    /// The retraction, if retracted.
    pub retraction: Option<RetractionInfo>,
    /// For a sighting: the ids of the alerts it confirms.
    pub sighting_of: Vec<String>,
    /// Other orgs' sightings of this alert.
    pub sightings: Vec<Sighting>,
    /// The original, then every update and retraction, in the order applied.
    pub history: Vec<StoredAlert>,
}

/// Where an alert stands after its amendments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As first published.
    Active,
    /// At least one update applied.
    Updated,
    /// Withdrawn by its author (final).
    Retracted,
}

/// The ids (hex) of the alerts an alert relates to.
pub fn related_of(alert: &Alert) -> Vec<String> {
    alert.related.iter().map(|id| id.to_hex()).collect()
}

/// Whether an alert is a sighting of others.
pub fn is_sighting(alert: &Alert) -> bool {
    alert.kind == AlertKind::Sighting
}

/// Builds one alert's state from its original row (`None` if it holds no alert).
fn state_of(conn: &Connection, original: StoredAlert) -> rusqlite::Result<Option<AlertState>> {
    let Some(mut current) = original.alert().cloned() else {
        return Ok(None);
    };
    let id_bytes = hex::decode(&original.id).unwrap_or_default();
    let amendments = store::amendments_of(conn, &id_bytes, MAX_PER_ALERT)?;
    let mut state = Status::Active;
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
            match &a.content {
                Content::Update(u) => {
                    current = u.alert.clone();
                    version += 1;
                    modified = modified.max(a.timestamp_ms);
                    state = Status::Updated;
                }
                Content::Retraction(r) => {
                    retraction = Some(RetractionInfo {
                        id: a.id.clone(),
                        reason: r.reason.clone(),
                        timestamp_ms: a.timestamp_ms,
                    });
                    modified = modified.max(a.timestamp_ms);
                    state = Status::Retracted;
                }
                Content::Alert(_) => {}
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
            s.alert()
                .is_some_and(|a| is_sighting(a) && related_of(a).contains(&original.id))
        })
        .map(|s| Sighting {
            title: s.title().to_string(),
            id: s.id,
            org: s.org,
            timestamp_ms: s.timestamp_ms,
        })
        .collect();
    Ok(Some(AlertState {
        id: original.id.clone(),
        cursor: original.cursor,
        topic: original.topic.clone(),
        org: original.org.clone(),
        tlp: original.tlp,
        state,
        version,
        created_ms: original.timestamp_ms,
        modified_ms: modified,
        current,
        retraction,
        sighting_of,
        sightings,
        history,
    }))
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
    let mut states = Vec::with_capacity(originals.len());
    for o in originals {
        states.extend(state_of(conn, o)?);
    }
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
