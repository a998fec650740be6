//! Reachability and listening through relays: a node that finds itself unreachable
//! (AutoNAT v2 could not dial it back, or no verdict came within [`VERDICT_GRACE`])
//! reserves a slot on each configured relay (`relays` in the config) and listens on
//! `<relay>/p2p-circuit`. It keeps doing so until it restarts, even if a later probe
//! succeeds: one server reaching it back (say, through a mapping a hole punch left open
//! in its NAT) does not make it reachable for every member. A reservation that fails or ends (relay down, circuit dropped)
//! is retried with exponential backoff from [`RETRY_MIN`] to [`RETRY_MAX`], logged once
//! per outage.

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::time::{Duration, Instant};

/// With no AutoNAT verdict by then, a node with relays configured listens through them.
pub const VERDICT_GRACE: Duration = Duration::from_secs(20);
/// First wait before a failed relay reservation is tried again.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between tries of one relay.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the node knows of its own reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// No verdict yet.
    Unknown,
    /// An AutoNAT server dialled one of our addresses back.
    Public,
    /// AutoNAT servers could not dial us back, or no verdict came in time.
    Private,
}

/// One configured relay.
#[derive(Debug)]
struct Relay {
    /// `<relay address>/p2p-circuit`.
    circuit: Multiaddr,
    listener: Option<ListenerId>,
    /// Whether the relay accepted our reservation on the current listener.
    reserved: bool,
    next_try: Instant,
    backoff: Duration,
    /// Whether this outage was logged already.
    logged: bool,
}

/// Reachability and the relay listeners.
#[derive(Debug)]
pub struct Reach {
    reachability: Reachability,
    started: Instant,
    relays: Vec<Relay>,
    /// Whether the node was ever found unreachable: its relay listeners are kept.
    use_relays: bool,
}

impl Reach {
    /// Tracks `relays` (each `…/p2p/<relay id>`), starting at `now` with no verdict.
    pub fn new(relays: &[Multiaddr], now: Instant) -> Self {
        let relays = relays
            .iter()
            .map(|a| Relay {
                circuit: a.clone().with(Protocol::P2pCircuit),
                listener: None,
                reserved: false,
                next_try: now,
                backoff: RETRY_MIN,
                logged: false,
            })
            .collect();
        Self {
            reachability: Reachability::Unknown,
            started: now,
            relays,
            use_relays: false,
        }
    }

    /// The current verdict.
    pub fn reachability(&self) -> Reachability {
        self.reachability
    }

    /// An AutoNAT v2 result for one of our addresses: a dial-back makes us public; a
    /// failure makes us private unless some address was confirmed (`confirmed`).
    pub fn autonat(&mut self, reachable: bool, confirmed: bool) {
        let next = if reachable || confirmed {
            Reachability::Public
        } else {
            Reachability::Private
        };
        if next != self.reachability {
            tracing::info!(reachability = ?next, "reachability changed");
            self.reachability = next;
        }
        self.use_relays |= next == Reachability::Private;
    }

    /// Relay circuit addresses to listen on now: none unless the node was found
    /// unreachable (or got no verdict within [`VERDICT_GRACE`]); then each relay without
    /// a listener whose retry time has come.
    pub fn due(&mut self, now: Instant) -> Vec<Multiaddr> {
        if self.reachability == Reachability::Unknown
            && now.duration_since(self.started) >= VERDICT_GRACE
            && !self.relays.is_empty()
        {
            tracing::info!("no AutoNAT verdict yet: listening through the configured relays");
            self.reachability = Reachability::Private;
            self.use_relays = true;
        }
        if !self.use_relays {
            return Vec::new();
        }
        self.relays
            .iter()
            .filter(|r| r.listener.is_none() && r.next_try <= now)
            .map(|r| r.circuit.clone())
            .collect()
    }

    /// `listen_on(circuit)` returned `id` (or failed).
    pub fn listening(&mut self, circuit: &Multiaddr, id: Result<ListenerId, String>, now: Instant) {
        let Some(r) = self.relays.iter_mut().find(|r| &r.circuit == circuit) else {
            return;
        };
        match id {
            Ok(id) => r.listener = Some(id),
            Err(e) => Self::failed(r, &e, now),
        }
    }

    /// A reservation on `relay` was accepted: the backoff starts over.
    pub fn reserved(&mut self, relay: PeerId) {
        for r in self
            .relays
            .iter_mut()
            .filter(|r| relay_id(&r.circuit) == Some(relay))
        {
            if r.listener.is_some() {
                r.reserved = true;
                r.backoff = RETRY_MIN;
                if r.logged {
                    tracing::info!(relay = %r.circuit, "relay reservation restored");
                }
                r.logged = false;
            }
        }
    }

    /// A listener closed (the relay went away, refused or dropped the reservation):
    /// its relay is tried again after the backoff.
    pub fn closed(&mut self, id: ListenerId, reason: &str, now: Instant) {
        if let Some(r) = self.relays.iter_mut().find(|r| r.listener == Some(id)) {
            r.listener = None;
            r.reserved = false;
            Self::failed(r, reason, now);
        }
    }

    fn failed(r: &mut Relay, reason: &str, now: Instant) {
        if !r.logged {
            tracing::warn!(relay = %r.circuit, reason, retry_in = ?r.backoff, "relay reservation lost; retrying with backoff");
            r.logged = true;
        }
        r.next_try = now + r.backoff;
        r.backoff = (r.backoff * 2).min(RETRY_MAX);
    }

    /// The relay circuit addresses with an accepted reservation.
    pub fn reserved_circuits(&self) -> Vec<Multiaddr> {
        self.relays
            .iter()
            .filter(|r| r.reserved)
            .map(|r| r.circuit.clone())
            .collect()
    }
}

/// The peer id of a relay address `…/p2p/<id>[/p2p-circuit[/p2p/<peer>]]` (the first id).
pub fn relay_id(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter()
        .filter_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .next()
}

/// Whether a connection's address goes through a relay (`/p2p-circuit`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The peer an address names: the last `/p2p/<id>` (for a relayed address
/// `…/p2p/<relay>/p2p-circuit/p2p/<peer>`, the peer behind the relay).
pub fn target_peer(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter()
        .filter_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_addr() -> (PeerId, Multiaddr) {
        let id = PeerId::random();
        let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/4101/p2p/{id}").parse().unwrap();
        (id, addr)
    }

    #[test]
    fn public_nodes_never_listen_through_relays() {
        let (_, addr) = relay_addr();
        let t0 = Instant::now();
        let mut r = Reach::new(&[addr], t0);
        r.autonat(true, true);
        assert!(r.due(t0 + VERDICT_GRACE * 2).is_empty());
    }

    #[test]
    fn private_or_silent_nodes_listen_and_back_off_after_losses() {
        let (id, addr) = relay_addr();
        let t0 = Instant::now();
        let mut r = Reach::new(std::slice::from_ref(&addr), t0);
        assert!(r.due(t0).is_empty(), "no verdict yet, grace not over");
        let due = r.due(t0 + VERDICT_GRACE);
        assert_eq!(due, vec![addr.clone().with(Protocol::P2pCircuit)]);
        assert_eq!(r.reachability(), Reachability::Private);
        let listener = ListenerId::next();
        r.listening(&due[0], Ok(listener), t0);
        assert!(r.due(t0 + VERDICT_GRACE).is_empty(), "already listening");
        r.reserved(id);
        assert_eq!(r.reserved_circuits().len(), 1);
        // Lost twice without a reservation in between: 1 s, then 2 s.
        r.closed(listener, "relay down", t0);
        assert!(r.due(t0).is_empty());
        let due = r.due(t0 + RETRY_MIN);
        assert_eq!(due.len(), 1);
        let again = ListenerId::next();
        r.listening(&due[0], Ok(again), t0 + RETRY_MIN);
        r.closed(again, "relay down", t0 + RETRY_MIN);
        assert!(r.due(t0 + RETRY_MIN * 2).is_empty());
        assert_eq!(r.due(t0 + RETRY_MIN * 3).len(), 1);
        // A later successful probe does not drop the relays.
        r.autonat(true, true);
        assert_eq!(r.reachability(), Reachability::Public);
        assert_eq!(r.due(t0 + RETRY_MIN * 3).len(), 1);
    }

    #[test]
    fn relayed_addresses_name_the_peer_behind_the_relay() {
        let (relay, addr) = relay_addr();
        let peer = PeerId::random();
        let via = addr.with(Protocol::P2pCircuit).with(Protocol::P2p(peer));
        assert!(is_relayed(&via));
        assert_eq!(target_peer(&via), Some(peer));
        assert_eq!(relay_id(&via), Some(relay));
    }
}
