//! Penalties for peers that send their own org's messages beyond what the network allows.
//!
//! gossipsub's own invalid-message penalty cannot tell a peer that originates bad traffic
//! from an honest relay, and a rate-limited envelope is `Ignore`d (the verdict depends on
//! the receiver's local history, so it must not penalize relays). The node therefore keeps
//! its own per-peer penalty and feeds it into gossipsub's application score (P5):
//!
//! - an **offence** is a gossip message from an admitted peer that was rate limited or
//!   rejected while its author's org is the peer's own org, or that did not decode at all
//!   or came on another topic than the one it names (an honest relay validates before
//!   forwarding, so it never forwards these);
//! - each offence adds [`OFFENCE_PENALTY`]; the penalty halves every
//!   [`PENALTY_HALF_LIFE`]; the application score is minus the penalty (plus
//!   [`BAD_PEER_SCORE`] while the peer is subscribed to a topic its org may not read).
//!
//! With the thresholds of [`crate::net`], a peer flooding beyond its org's rate is out of
//! every mesh (score below 0) after its first offence, no longer gets gossip or published
//! messages below −10 and −50, and is graylisted (everything it sends is dropped before
//! validation) after nine offences within a half-life.

use super::state::CoreState;
use crate::net::{BAD_PEER_SCORE, NetCommand};
use alertmesh_protocol::{NodePublicKey, SignedEnvelope, TopicId};
use libp2p::PeerId;
use std::time::{Duration, Instant};

/// Application-score penalty per offence.
pub const OFFENCE_PENALTY: f64 = 10.0;
/// Penalties halve this often.
pub const PENALTY_HALF_LIFE: Duration = Duration::from_secs(10);
/// Penalties are not raised beyond this (a peer is long graylisted by then).
const MAX_PENALTY: f64 = 10_000.0;

/// What made a gossip message count against the peer that sent it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Offence {
    /// Bytes an honest relay never forwards: they do not decode, or they came on another
    /// gossip topic than the envelope names.
    Garbage,
    /// The message was rejected or rate limited; its author.
    By(NodePublicKey),
}

impl Offence {
    /// The offence of a rejected or rate-limited envelope (or of bytes that do not decode).
    pub(super) fn of(data: &[u8]) -> Self {
        match SignedEnvelope::decode(data, data.len()) {
            Ok(env) => Offence::By(env.header().author),
            Err(_) => Offence::Garbage,
        }
    }
}

impl CoreState {
    /// Counts an offence of `peer` if it is one (see the module docs) and updates its score.
    pub(super) fn penalize(&mut self, peer: PeerId, offence: Offence) {
        let own_org = match offence {
            Offence::Garbage => true,
            Offence::By(author) => {
                let author_org = self.certs.org_of(&author);
                self.peers
                    .get(&peer)
                    .and_then(|p| p.org.as_ref())
                    .is_some_and(|org| author_org == Some(org))
            }
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !own_org || p.org.is_none() || p.penalty >= MAX_PENALTY {
            return;
        }
        p.penalty += OFFENCE_PENALTY;
        tracing::debug!(%peer, penalty = p.penalty, "peer sent its own org's traffic beyond the rules; score lowered");
        self.metrics.verdict("penalty", "own_org_offence");
        let score = self.app_score(&peer);
        self.send(NetCommand::Score(peer, score));
    }

    /// The application score a peer should have now.
    fn app_score(&self, peer: &PeerId) -> f64 {
        let Some(p) = self.peers.get(peer) else {
            return 0.0;
        };
        let charter = self.charters.current().charter();
        let control = TopicId::control(&charter.network_id);
        let forbidden = p.org.as_ref().is_some_and(|org| {
            p.subscriptions.iter().any(|t| {
                self.topic_by_hash
                    .get(t)
                    .is_some_and(|id| *id != control && !charter.may_read(org, id))
            })
        });
        -p.penalty + if forbidden { BAD_PEER_SCORE } else { 0.0 }
    }

    /// Halves every penalty once per [`PENALTY_HALF_LIFE`].
    pub(super) fn decay_penalties(&mut self, now: Instant) {
        if now < self.next_penalty_decay {
            return;
        }
        self.next_penalty_decay = now + PENALTY_HALF_LIFE;
        let mut changed = Vec::new();
        for (peer, p) in &mut self.peers {
            if p.penalty > 0.0 {
                p.penalty = if p.penalty < 1.0 {
                    0.0
                } else {
                    p.penalty / 2.0
                };
                changed.push(*peer);
            }
        }
        for peer in changed {
            let score = self.app_score(&peer);
            self.send(NetCommand::Score(peer, score));
        }
    }
}
