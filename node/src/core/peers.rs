//! A bounded, useful set of connections. Kademlia walks connect a node to whomever they
//! query, and without a bound a network of N nodes ends up with N² connections, each
//! with its own Noise session, hello, sync and gossip heartbeat. Every few seconds the
//! core (1) dials reader nodes of any topic it reads that has fewer than
//! [`TOPIC_PEERS_MIN`] admitted reader peers, and (2) when more than `max_peers` peers
//! are admitted, has the swarm close connections that are in none of gossipsub's meshes.
//! Mesh links are never pruned, so a topic keeps its mesh; a topic with fewer than
//! `mesh_n_low` connected readers grafts every one it has, so a connection dialled for
//! coverage joins the mesh and is not pruned in turn.

use super::Core;
use crate::net::NetCommand;
use alertmesh_protocol::charter::TopicRule;
use libp2p::PeerId;
use rand::seq::IteratorRandom;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How often the connection set is checked.
pub(super) const PEER_CHECK_PERIOD: Duration = Duration::from_secs(3);
/// Admitted peers of a reader org wanted per topic we read: gossipsub's `mesh_n_low`.
pub const TOPIC_PEERS_MIN: usize = 2;
/// Admitted peers kept unless the config's `max_peers` says otherwise.
pub const DEFAULT_MAX_PEERS: usize = 32;

impl Core {
    /// Dials for under-covered topics and prunes connections above `max_peers`.
    pub(super) async fn manage_peers(&mut self, now: Instant) {
        if now < self.next_peer_check {
            return;
        }
        self.next_peer_check = now + PEER_CHECK_PERIOD;
        let charter = self.charters.current().charter().clone();
        let read: Vec<&TopicRule> = charter
            .topics
            .iter()
            .filter(|t| t.readers.contains(&self.org) && t.readers.len() > 1)
            .collect();
        let admitted: Vec<&alertmesh_protocol::OrgId> =
            self.peers.values().filter_map(|p| p.org.as_ref()).collect();
        let coverage: Vec<usize> = read
            .iter()
            .map(|t| admitted.iter().filter(|o| t.readers.contains(o)).count())
            .collect();

        // 1. Too few reader peers on a topic: dial reader nodes we know a cert of.
        if admitted.len() < self.max_peers {
            let me = self.me.key.public();
            let now_ms = super::now_ms();
            let mut dialled: HashSet<PeerId> = HashSet::new();
            for (rule, have) in read.iter().zip(&coverage) {
                let need = TOPIC_PEERS_MIN.saturating_sub(*have);
                if need == 0 {
                    continue;
                }
                let candidates = self
                    .certs
                    .all()
                    .filter(|c| {
                        let c = c.cert();
                        rule.readers.contains(&c.org_id)
                            && c.node_sign_pub != me
                            && !charter.is_revoked(&c.node_sign_pub)
                    })
                    .filter(|c| c.valid_at(now_ms))
                    .filter_map(|c| crate::net::peer_id_of(&c.cert().node_sign_pub))
                    .filter(|p| {
                        !self.peers.contains_key(p)
                            && !self.banned.contains_key(p)
                            && !dialled.contains(p)
                    })
                    .choose_multiple(&mut rand::thread_rng(), need);
                for peer in candidates {
                    tracing::debug!(%peer, topic = %rule.name, "dialling a reader of an under-covered topic");
                    dialled.insert(peer);
                    self.send(NetCommand::DialPeer(peer)).await;
                }
            }
        }

        // 2. Too many: the swarm drops connections that carry no gossip mesh.
        if admitted.len() > self.max_peers {
            self.send(NetCommand::Prune(self.max_peers)).await;
        }
    }
}
