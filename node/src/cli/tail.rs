//! `alertmesh tail`: each alert's state once, then what arrives live.

use alertmesh_node::client::{Client, query_escape};
use alertmesh_node::clock::rfc3339;
use alertmesh_node::store::StoredAlert;
use alertmesh_node::views::lifecycle::{
    AlertState, MAX_VIEW_PAGE, Status, is_sighting, related_of,
};
use alertmesh_protocol::Content;
use std::collections::HashMap;

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Prints one alert's state and history (what `alertmesh tail` shows first).
pub fn print_state(s: &AlertState) {
    let title = &s.current.title;
    let kind = s.current.kind.as_str();
    let state = match s.state {
        Status::Retracted => "RETRACTED".to_string(),
        Status::Updated => format!("updated, v{}", s.version),
        Status::Active => "active".to_string(),
    };
    let sightings = if s.sightings.is_empty() {
        String::new()
    } else {
        let orgs: Vec<&str> = s.sightings.iter().map(|x| x.org.as_str()).collect();
        format!(", sighted by {}", orgs.join(", "))
    };
    println!(
        "[{}] {} {kind} {} from {}: {title} ({state}{sightings})",
        s.topic,
        s.tlp,
        short(&s.id),
        s.org
    );
    if !s.sighting_of.is_empty() {
        let ids: Vec<&str> = s.sighting_of.iter().map(|i| short(i)).collect();
        println!("    sighting of {}", ids.join(", "));
    }
    if s.history.len() > 1 {
        for h in &s.history {
            let what = match &h.content {
                Content::Retraction(r) => r.reason.as_str(),
                _ => h.title(),
            };
            println!(
                "    {} {:<10} {} {what}",
                rfc3339(h.timestamp_ms.max(0) as u64),
                h.kind.as_str(),
                short(&h.id)
            );
        }
    }
}

/// `alertmesh tail`: prints every alert's current state with its history (unless
/// `live_only`), then follows the live stream, saying what each update, retraction and
/// sighting changes.
pub fn tail(client: &Client, topic: Option<&str>, live_only: bool) -> anyhow::Result<()> {
    let mut titles: HashMap<String, String> = HashMap::new();
    // The live stream starts right after what the backfill below can show, so nothing
    // committed while it runs is missed.
    let mut start = None;
    if !live_only {
        let status: serde_json::Value = client.get("/v1/status")?;
        start = status["last_cursor"].as_i64();
        let mut after = 0i64;
        loop {
            let mut path = format!("/v1/alerts?view=current&limit={MAX_VIEW_PAGE}&after={after}");
            if let Some(t) = topic {
                path.push_str(&format!("&topic={}", query_escape(t)));
            }
            let page: serde_json::Value = client.get(&path)?;
            let states: Vec<AlertState> =
                serde_json::from_value(page["alerts"].clone()).unwrap_or_default();
            if states.is_empty() {
                break;
            }
            for s in &states {
                titles.insert(s.id.clone(), s.current.title.clone());
                print_state(s);
            }
            after = page["next"].as_i64().unwrap_or(after);
        }
        println!("-- following live alerts --");
    }
    client.follow(start, |alert| {
        let Ok(row) = serde_json::from_value::<StoredAlert>(alert) else {
            return true;
        };
        if topic.is_some_and(|t| t != row.topic) {
            return true;
        }
        let orig = row.original.clone().unwrap_or_default();
        let orig_title = titles.get(&orig).cloned().unwrap_or_default();
        match &row.content {
            Content::Update(u) => {
                let title = u.alert.title.clone();
                println!(
                    "[{}] {} UPDATE of {} \"{orig_title}\" by {}: {title}",
                    row.topic,
                    row.tlp,
                    short(&orig),
                    row.org
                );
                titles.insert(orig, title);
            }
            Content::Retraction(r) => {
                let reason = &r.reason;
                println!(
                    "[{}] {} RETRACTED {} \"{orig_title}\" by {}: {reason}",
                    row.topic,
                    row.tlp,
                    short(&orig),
                    row.org
                );
            }
            Content::Alert(alert) => {
                let title = alert.title.clone();
                if is_sighting(alert) {
                    let of: Vec<String> = related_of(alert)
                        .iter()
                        .map(|r| {
                            format!(
                                "{} \"{}\"",
                                short(r),
                                titles.get(r).map(String::as_str).unwrap_or("?")
                            )
                        })
                        .collect();
                    println!(
                        "[{}] {} SIGHTING {} by {} of {}: {title}",
                        row.topic,
                        row.tlp,
                        short(&row.id),
                        row.org,
                        of.join(", ")
                    );
                } else {
                    let kind = alert.kind.as_str();
                    println!(
                        "[{}] {} {kind} {} from {}: {title}",
                        row.topic,
                        row.tlp,
                        short(&row.id),
                        row.org
                    );
                }
                titles.insert(row.id.clone(), title);
            }
        }
        true
    })
}
