//! A bounded, useful set of connections. Kademlia walks connect a node to whomever they
//! query, and without a bound a network of N nodes ends up with N² connections, each
//! with its own Noise session, hello, sync and gossip heartbeat. Every few seconds the
//! core (1) dials reader nodes of any topic it reads that has fewer than
//! [`TOPIC_PEERS_MIN`] admitted reader peers, and (2) when more than `max_peers` peers
//! are admitted, has the swarm close connections that are in none of gossipsub's meshes.
//! Mesh links are never pruned, so a topic keeps its mesh; a topic with fewer than
//! `mesh_n_low` connected readers grafts every one it has, so a connection dialled for
//! coverage joins the mesh and is not pruned in turn.

use super::state::CoreState;
use crate::net::NetCommand;
use libp2p::PeerId;
use rand::seq::IteratorRandom;
use std::time::{Duration, Instant};

/// How often the connection set is checked.
pub(super) const PEER_CHECK_PERIOD: Duration = Duration::from_secs(3);
/// Admitted peers of a reader org wanted per topic we read: gossipsub's `mesh_n_low`.
const TOPIC_PEERS_MIN: usize = 2;

impl CoreState {
    /// Dials for under-covered topics and prunes connections above `max_peers`.
    pub(super) fn manage_peers(&mut self, now: Instant) {
        if now < self.next_peer_check {
            return;
        }
        self.next_peer_check = now + PEER_CHECK_PERIOD;
        let admitted = self.peers.values().filter(|p| p.org.is_some()).count();
        if admitted < self.max_peers {
            for (peer, topic) in self.readers_to_dial() {
                tracing::debug!(%peer, %topic, "dialling a reader of an under-covered topic");
                self.send(NetCommand::DialPeer(peer));
            }
        }
        // Too many: the swarm drops connections that carry no gossip mesh.
        if admitted > self.max_peers {
            self.send(NetCommand::Prune(self.max_peers));
        }
    }

    /// For each topic we read with fewer than [`TOPIC_PEERS_MIN`] admitted reader peers,
    /// random reader nodes we hold a certificate of and are not connected to, with the
    /// topic's name.
    fn readers_to_dial(&mut self) -> Vec<(PeerId, String)> {
        let charter = self.charters.current().charter();
        let me = self.me.key.public();
        let now_ms = self.now.unix_ms;
        let mut dial: Vec<(PeerId, String)> = Vec::new();
        for rule in &charter.topics {
            if !rule.readers.contains(&self.org) || rule.readers.len() < 2 {
                continue;
            }
            let have = self
                .peers
                .values()
                .filter(|p| p.org.as_ref().is_some_and(|o| rule.readers.contains(o)))
                .count();
            let need = TOPIC_PEERS_MIN.saturating_sub(have);
            if need == 0 {
                continue;
            }
            let candidates: Vec<PeerId> = self
                .reader_certs(rule, now_ms)
                .filter(|c| c.cert().node_sign_pub != me)
                .filter_map(|c| crate::net::peer_id_of(&c.cert().node_sign_pub))
                .filter(|p| {
                    // The swarm task skips banned peers.
                    !self.peers.contains_key(p) && !dial.iter().any(|(d, _)| d == p)
                })
                .collect();
            let candidates = candidates.into_iter().choose_multiple(&mut self.rng, need);
            dial.extend(candidates.into_iter().map(|p| (p, rule.name.clone())));
        }
        dial
    }
}
