//! The network screen: this node, its peers (org, admission, score, connection age, mesh
//! topics), sync state, the charter version, and evidence and forks shown first.

use super::layout::{self, PageError, Tab};
use super::util::read_db;
use super::{Authed, Console};
use alertmesh_protocol::{SignedNodeCert, TopicId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use std::collections::HashMap;

/// A duration in seconds as `1h 02m`, `3m 07s` or `12s`.
fn age(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The evidence held, prominently (also on the audit screen).
pub fn evidence_panel(reports: &[Value]) -> Markup {
    html! {
        @if reports.is_empty() {
            p.ok id="evidence" { "No equivocation evidence held." }
        } @else {
            section.alarm id="evidence" {
                h2 { (reports.len()) " piece(s) of equivocation evidence" }
                ul {
                    @for r in reports {
                        li {
                            strong { (r["misbehaviour"].as_str().unwrap_or("")) } " by org "
                            (r["org"].as_str().unwrap_or("unknown")) " (node "
                            span.mono { (r["author"].as_str().unwrap_or("")) } ") on topic "
                            (r["topic"].as_str().unwrap_or("")) " at seq " (r["seq"].as_u64().unwrap_or(0))
                        }
                    }
                }
            }
        }
    }
}

/// `GET /network`.
pub async fn page(State(console): State<Console>, authed: Authed) -> Result<Response, PageError> {
    let core = &console.api.core;
    let (status, peers, topics) =
        tokio::try_join!(core.status(), console.api.net.peers(), core.topics())
            .map_err(super::util::unavailable)?;
    let dir = console.api.data_dir.clone();
    let (network, orgs, evidence) = read_db(&console.api.data_dir, move |conn| {
        let network = crate::store::network_id(conn)?;
        let mut orgs = HashMap::new();
        for (_, bytes) in crate::store::certs(conn)? {
            if let Ok(c) = SignedNodeCert::decode(&bytes) {
                if let Some(p) = crate::net::peer_id_of(&c.cert().node_sign_pub) {
                    orgs.insert(p.to_string(), c.cert().org_id.to_string());
                }
            }
        }
        let evidence = crate::audit::evidence_reports(&dir)?;
        Ok((network, orgs, evidence))
    })
    .await?;
    let mut gossip_names: HashMap<String, String> = topics
        .iter()
        .map(|t| {
            (
                TopicId::derive(&network, &t.name).gossip_name(&network),
                t.name.clone(),
            )
        })
        .collect();
    gossip_names.insert(
        TopicId::control(&network).gossip_name(&network),
        "control".into(),
    );
    let topic_of = |g: &String| gossip_names.get(g).cloned().unwrap_or_else(|| g.clone());
    let body = html! {
        h1 { "Network " (status.network) }
        @if !status.charter_forks.is_empty() {
            section.alarm id="forks" {
                h2 { "Governance fork" }
                p { "Conflicting charters were seen at version(s) "
                    (status.charter_forks.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
                    ". See the governance screen." }
            }
        }
        (evidence_panel(&evidence))
        dl.facts {
            dt { "This node" } dd.mono { (status.peer_id) }
            dt { "Org" } dd { (status.org) }
            dt { "Charter version" } dd id="charter-version" { (status.charter_version) }
            dt { "Publishing allowed" } dd { (if status.publishing_allowed { "yes" } else { "no (certificate revoked or expired, or org removed)" }) }
            dt { "Envelopes held" } dd { (status.envelopes) }
            dt { "Not decryptable yet" } dd { (status.undecryptable) }
            dt { "Chain gaps" } dd class=[(status.chain_gaps > 0).then_some("bad")] { (status.chain_gaps) }
            dt { "Certificates known" } dd { (status.known_nodes) }
        }
        h2 { "Peers (" (peers.len()) " connected, " (status.admitted_peers) " admitted)" }
        table.peers id="peers" {
            thead { tr { th { "Org" } th { "Peer" } th { "Address" } th { "Admission" } th { "Score" } th { "Connected for" } th { "Mesh topics" } } }
            tbody {
                @for p in &peers {
                    tr {
                        td.org { (orgs.get(&p.peer_id).map_or("unknown", String::as_str)) }
                        td.mono { (p.peer_id) }
                        td.mono { (p.address) }
                        td { @if p.admitted { span.ok { "admitted" } } @else { span.bad { "not admitted" } } }
                        td { (p.score.map_or_else(|| "-".to_string(), |s| format!("{s:.2}"))) }
                        td { (age(p.connected_secs)) }
                        td { (p.mesh.iter().map(&topic_of).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
        h2 { "Sync state per topic" }
        table.sync {
            thead { tr { th { "Topic" } th { "Readable" } th { "Authors' sender keys held" } th { "Mesh peers" } } }
            tbody {
                @for t in &topics {
                    @let g = TopicId::derive(&network, &t.name).gossip_name(&network);
                    tr {
                        td { (t.name) }
                        td { (if t.can_read { "yes" } else { "no" }) }
                        td { (status.sender_keys.get(&t.name).map_or_else(|| "-".into(), usize::to_string)) }
                        td { (peers.iter().filter(|p| p.mesh.contains(&g)).count()) }
                    }
                }
            }
        }
    };
    let csrf = authed.csrf(&console);
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Network", Tab::Network, Some(&csrf), body),
    ))
}
