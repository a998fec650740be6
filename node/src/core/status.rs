//! What the core tells the API about itself: status and topics.

use super::state::{CoreState, Now};
use alertmesh_protocol::{NodePublicKey, Tlp, TopicId};
use std::collections::{BTreeMap, HashSet};

/// Node status for the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// Our peer id.
    pub peer_id: String,
    /// Our org.
    pub org: String,
    /// Network name.
    pub network: String,
    /// Current charter version.
    pub charter_version: u64,
    /// Governance forks seen (versions).
    pub charter_forks: Vec<u64>,
    /// Connected peers with a valid certificate.
    pub admitted_peers: usize,
    /// Certificates known.
    pub known_nodes: usize,
    /// Envelopes held.
    pub envelopes: usize,
    /// Envelopes we cannot decrypt yet.
    pub undecryptable: usize,
    /// Equivocations detected.
    pub evidence: usize,
    /// Chains with missing entries.
    pub chain_gaps: usize,
    /// False when this node's certificate is revoked or expired, or its org removed.
    pub publishing_allowed: bool,
    /// Per readable topic: how many authors' sender keys this node holds.
    pub sender_keys: BTreeMap<String, usize>,
    /// Envelopes in this node's own transparency log.
    pub log_size: u64,
    /// Our newest checkpoint: its size and how many orgs cosigned it.
    pub checkpoint: Option<CheckpointStatus>,
    /// Logs of other nodes whose witnessed checkpoint we hold.
    pub witnessed_logs: usize,
    /// Split views proven (two checkpoints of one log, one size, two roots).
    pub split_views: usize,
    /// Envelopes a witnessed checkpoint shows that we still lack.
    pub withheld: u64,
}

/// Our newest checkpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckpointStatus {
    /// Tree size.
    pub size: u64,
    /// Orgs that cosigned it.
    pub cosigning_orgs: usize,
    /// Whether that meets the threshold.
    pub witnessed: bool,
}

/// A topic and our rights on it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: String,
    /// Whether our org may read it.
    pub can_read: bool,
    /// Whether our org may publish on it.
    pub can_publish: bool,
    /// Maximum TLP.
    pub max_tlp: Tlp,
    /// Reader orgs.
    pub readers: Vec<String>,
    /// Publisher orgs.
    pub publishers: Vec<String>,
}

impl CoreState {
    /// The node's status at `now`.
    pub fn status(&mut self, now: Now) -> Status {
        self.now = now;
        let c = self.charters.current().charter();
        Status {
            peer_id: crate::net::peer_id_of(&self.me.key.public())
                .map(|p| p.to_string())
                .unwrap_or_default(),
            org: self.org.to_string(),
            network: c.network_name.clone(),
            charter_version: c.version,
            charter_forks: self.charters.forks().iter().map(|f| f.version).collect(),
            admitted_peers: self.peers.values().filter(|p| p.org.is_some()).count(),
            known_nodes: self.certs.len(),
            envelopes: self.chains.len,
            undecryptable: self.pending_len,
            evidence: self.chains.evidence,
            chain_gaps: self.chains.gaps(),
            publishing_allowed: self.may_publish_at_all(),
            log_size: self.tlog.size(),
            checkpoint: self
                .tlog
                .own_checkpoint()
                .map(|(size, orgs)| CheckpointStatus {
                    size,
                    cosigning_orgs: orgs,
                    witnessed: orgs >= self.witness_threshold(),
                }),
            witnessed_logs: self.tlog.known.values().filter(|k| k.witnessed).count(),
            split_views: self.tlog.split_views.len(),
            withheld: self.withheld(),
            sender_keys: c
                .topics
                .iter()
                .filter(|t| t.readers.contains(&self.org))
                .map(|t| {
                    let id = TopicId::derive(&c.network_id, &t.name);
                    let authors: HashSet<&NodePublicKey> = self
                        .keys
                        .keys()
                        .filter(|(_, tp, _)| *tp == id)
                        .map(|(a, _, _)| a)
                        .collect();
                    (t.name.clone(), authors.len())
                })
                .collect(),
        }
    }

    /// Every topic of the current charter with our rights on it.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let c = self.charters.current().charter();
        c.topics
            .iter()
            .map(|t| TopicInfo {
                name: t.name.clone(),
                id: TopicId::derive(&c.network_id, &t.name).to_hex(),
                can_read: t.readers.contains(&self.org),
                can_publish: t.publishers.contains(&self.org),
                max_tlp: t.max_tlp,
                readers: t.readers.iter().map(ToString::to_string).collect(),
                publishers: t.publishers.iter().map(ToString::to_string).collect(),
            })
            .collect()
    }
}
