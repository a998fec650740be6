//! Admission: who may talk to this node, and what a stranger learns.
//!
//! 1. On a new connection each side sends a `Hello` carrying only its own certificate.
//! 2. A certificate that verifies under the current charter admits the peer: the swarm
//!    opens gossipsub and Kademlia to it ([`NetCommand::Admit`]), history sync starts, and
//!    the node asks for the peer's `Directory` (charters and certificates it holds).
//! 3. A certificate of an org the current charter does not know may be valid under a
//!    newer charter: the node asks the peer for its directory, which the peer answers
//!    only once it has admitted this node, adopts what verifies, and judges again.
//! 4. Anything else, or no certificate within [`ADMISSION_TIMEOUT`], refuses the peer: it
//!    is told `Refused(reason)`, then disconnected and banned by the swarm task.
//!
//! Every request of a peer spends from its [`Throttle`]; a peer beyond it gets `Busy`.

use super::state::{CoreState, InboundId, Output, Outstanding, PeerState};
use super::throttle::Throttle;
use crate::net::{BAD_PEER_SCORE, NetCommand, RequestError};
use alertmesh_protocol::wire::{
    self, Directory, Hello, MAX_DIRECTORY_CERTS, MAX_DIRECTORY_CHARTERS,
};
use alertmesh_protocol::{SignedCharter, SignedNodeCert, TopicId};
use libp2p::PeerId;
use libp2p::gossipsub::TopicHash;
use rand::seq::IteratorRandom;
use std::time::{Duration, Instant};

/// A connected peer must show a valid certificate within this time.
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(5);
/// While directories keep teaching us certificates, a random admitted peer is asked for
/// its directory this often.
pub(super) const DIRECTORY_REFRESH_MIN: Duration = Duration::from_secs(2);
/// The longest wait between directory refreshes: each one that teaches nothing doubles
/// the wait, up to this.
pub(super) const DIRECTORY_REFRESH_MAX: Duration = Duration::from_secs(300);

/// When to pull a random peer's directory next. A sender key is sealed only to the
/// reader nodes whose certificates we hold, and a peer's directory is otherwise asked
/// once, on admission: without a refresh, a certificate that reached the peer after that
/// reached us only with the next certificate announcement (every 150 s). Pulling while
/// directories still teach something spreads every certificate epidemically in a few
/// rounds (and costs one request per [`DIRECTORY_REFRESH_MAX`] once nothing is new).
pub(super) struct DirectoryRefresh {
    /// Next pull; `None`: at the first tick with an admitted peer.
    next: Option<Instant>,
    /// Wait after the next pull.
    interval: Duration,
}

impl Default for DirectoryRefresh {
    fn default() -> Self {
        Self {
            next: None,
            interval: DIRECTORY_REFRESH_MIN,
        }
    }
}

/// Why a peer's certificate was not accepted.
pub(super) enum Judgement {
    /// Not valid here, whatever charter comes next.
    Refuse(String),
    /// Its org is unknown to the current charter; a newer charter may name it.
    NeedsCharter(Box<SignedNodeCert>),
}

impl CoreState {
    pub(super) fn my_hello(&self) -> Hello {
        Hello {
            cert: self.me.cert.as_bytes().to_vec(),
        }
    }

    /// What this node tells an admitted peer about the network.
    pub(super) fn my_directory(&self) -> Directory {
        Directory {
            charters: self
                .charters
                .history()
                .iter()
                .skip(1)
                .rev()
                .take(MAX_DIRECTORY_CHARTERS)
                .rev()
                .map(|c| c.as_bytes().to_vec())
                .collect(),
            certs: self
                .certs
                .all()
                .take(MAX_DIRECTORY_CERTS)
                .map(|c| c.as_bytes().to_vec())
                .collect(),
        }
    }

    /// A new connection: introduce ourselves.
    pub(super) fn on_connected(&mut self, peer: PeerId) {
        let now = self.now.instant;
        self.peers.insert(
            peer,
            PeerState {
                connected_at: now,
                org: None,
                node: None,
                subscriptions: Default::default(),
                penalty: 0.0,
                unjudged: None,
                directory_asked: false,
                directory_waiting: None,
                throttle: Throttle::new(self.request_limits, now),
            },
        );
        let hello = wire::Request::Hello(self.my_hello()).encode();
        self.request(peer, hello, Outstanding::Hello);
    }

    /// A peer's hello, as a request (`inbound` set) or as the answer to ours.
    pub(super) fn on_hello(&mut self, peer: PeerId, hello: Hello, inbound: Option<InboundId>) {
        if !self.peers.contains_key(&peer) {
            return; // refused (or gone) meanwhile
        }
        if self.is_admitted(&peer) {
            if let Some(inbound) = inbound {
                self.respond(inbound, wire::Response::Hello(self.my_hello()));
            }
            return;
        }
        match self.judge_cert(peer, &hello.cert) {
            Ok(cert) => {
                if let Some(inbound) = inbound {
                    self.respond(inbound, wire::Response::Hello(self.my_hello()));
                }
                self.admit(peer, cert);
            }
            Err(Judgement::NeedsCharter(cert)) => {
                // Only our own certificate: the peer learns nothing else until admitted.
                if let Some(inbound) = inbound {
                    self.respond(inbound, wire::Response::Hello(self.my_hello()));
                }
                tracing::debug!(%peer, org = %cert.cert().org_id, "certificate of an org our charter does not know; asking the peer for newer charters");
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.unjudged = Some(*cert);
                }
                self.ask_directory(peer);
            }
            Err(Judgement::Refuse(reason)) => self.refuse(peer, &reason, inbound),
        }
    }

    /// Admits a peer whose certificate verified.
    fn admit(&mut self, peer: PeerId, cert: SignedNodeCert) {
        let org = cert.cert().org_id.clone();
        let node = cert.cert().node_sign_pub;
        let _ = self.learn_cert(cert);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.node = Some(node);
        p.unjudged = None;
        if p.org.replace(org.clone()).is_some() {
            return;
        }
        let waiting = p.directory_waiting.take();
        self.metrics.admitted_peers.inc();
        tracing::info!(%peer, %org, "peer admitted");
        self.send(NetCommand::Admit(peer));
        if let Some(inbound) = waiting {
            self.respond(inbound, wire::Response::Directory(self.my_directory()));
        }
        self.ask_directory(peer);
        self.start_sync(peer);
        let ask = wire::Request::Checkpoints.encode();
        self.request(peer, ask, Outstanding::Checkpoints);
        let subs: Vec<TopicHash> = self
            .peers
            .get(&peer)
            .map(|p| p.subscriptions.iter().cloned().collect())
            .unwrap_or_default();
        for t in subs {
            self.check_subscription(peer, &t);
        }
    }

    fn ask_directory(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if std::mem::replace(&mut p.directory_asked, true) {
            return;
        }
        self.request(
            peer,
            wire::Request::Directory.encode(),
            Outstanding::Directory,
        );
    }

    /// A directory request: answered once the asker is admitted.
    pub(super) fn on_directory_request(&mut self, peer: PeerId, inbound: InboundId) {
        if self.is_admitted(&peer) {
            self.respond(inbound, wire::Response::Directory(self.my_directory()));
            return;
        }
        // Not judged yet: the answer waits for the judgement (at most the admission
        // timeout); a second request meanwhile is turned away.
        match self.peers.get_mut(&peer) {
            Some(p) if p.directory_waiting.is_none() => {
                tracing::debug!(%peer, "directory request held until the peer is judged");
                p.directory_waiting = Some(inbound);
            }
            _ => {
                self.respond(inbound, wire::Response::Refused("not admitted".into()));
            }
        }
    }

    /// Asks a random admitted peer for its directory when the refresh is due.
    pub(super) fn refresh_directory(&mut self, now: Instant) {
        let refresh = &self.directory_refresh;
        if refresh.next.is_some_and(|next| now < next) {
            return;
        }
        let Some(peer) = self
            .peers
            .iter()
            .filter(|(_, p)| p.org.is_some())
            .map(|(id, _)| *id)
            .choose(&mut self.rng)
        else {
            return;
        };
        let refresh = &mut self.directory_refresh;
        refresh.next = Some(now + refresh.interval);
        refresh.interval = (refresh.interval * 2).min(DIRECTORY_REFRESH_MAX);
        self.request(
            peer,
            wire::Request::Directory.encode(),
            Outstanding::Directory,
        );
    }

    /// A peer's directory: adopt the charters and certificates that verify, then judge a
    /// certificate that was waiting for a newer charter.
    pub(super) fn on_directory(&mut self, peer: PeerId, directory: Directory) {
        for bytes in directory.charters.iter().take(MAX_DIRECTORY_CHARTERS) {
            if let Ok(c) = SignedCharter::decode(bytes) {
                let _ = self.offer_charter(c);
            }
        }
        let mut learned = 0;
        for bytes in directory.certs.iter().take(MAX_DIRECTORY_CERTS) {
            if let Ok(c) = SignedNodeCert::decode(bytes) {
                learned += usize::from(self.learn_cert(c).unwrap_or(false));
            }
        }
        if learned > 0 {
            // Certificates are still spreading: pull again soon.
            let soon = self.now.instant + DIRECTORY_REFRESH_MIN;
            let refresh = &mut self.directory_refresh;
            refresh.interval = DIRECTORY_REFRESH_MIN;
            refresh.next = Some(refresh.next.map_or(soon, |next| next.min(soon)));
        }
        let Some(cert) = self.peers.get_mut(&peer).and_then(|p| p.unjudged.take()) else {
            return;
        };
        match self.judge_cert(peer, cert.as_bytes()) {
            Ok(cert) => self.admit(peer, cert),
            Err(Judgement::NeedsCharter(cert)) => {
                let reason = format!("org {} is not a member", cert.cert().org_id);
                self.refuse(peer, &reason, None);
            }
            Err(Judgement::Refuse(reason)) => self.refuse(peer, &reason, None),
        }
    }

    /// A request of ours got no answer.
    pub(super) fn on_request_failed(
        &mut self,
        peer: PeerId,
        what: Outstanding,
        error: RequestError,
    ) {
        tracing::debug!(%peer, ?what, %error, "request failed");
        match what {
            Outstanding::Hello
                if !self.is_admitted(&peer) && error == RequestError::UnsupportedProtocol =>
            {
                self.refuse_silent(peer, "does not speak the request protocol");
            }
            Outstanding::Sync(topic) => {
                self.sync_rounds.remove(&(peer, topic));
            }
            Outstanding::AddCheckpoint { witness, .. } => {
                self.on_offer_failed(witness, &error.to_string());
            }
            Outstanding::Inclusions { author } => self.on_inclusions_failed(author),
            _ => {}
        }
    }

    /// Checks a peer's certificate against the current charter.
    pub(super) fn judge_cert(
        &self,
        peer: PeerId,
        bytes: &[u8],
    ) -> Result<SignedNodeCert, Judgement> {
        let refuse = |r: &str| Judgement::Refuse(r.to_string());
        let cert = SignedNodeCert::decode(bytes)
            .map_err(|e| Judgement::Refuse(format!("certificate does not decode: {e}")))?;
        let charter = self.charters.current().charter();
        let node = cert.cert().node_sign_pub;
        if crate::net::peer_id_of(&node) != Some(peer) {
            return Err(refuse("certificate is for another node key"));
        }
        let Some(member) = charter.member(&cert.cert().org_id) else {
            return Err(Judgement::NeedsCharter(Box::new(cert)));
        };
        cert.verify(&charter.network_id, &member.root_pub)
            .map_err(|e| Judgement::Refuse(e.to_string()))?;
        if !cert.valid_at(self.now.unix_ms) {
            return Err(refuse("certificate is expired or not yet valid"));
        }
        if charter.is_revoked(&node) {
            return Err(refuse("certificate is revoked"));
        }
        Ok(cert)
    }

    pub(super) fn is_admitted(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.org.is_some())
    }

    /// Refuses a peer: it is told why (on `inbound`, on a directory request it is waiting
    /// on, or on its next request within the grace), then banned by the swarm task.
    pub(super) fn refuse(&mut self, peer: PeerId, reason: &str, inbound: Option<InboundId>) {
        self.refuse_with(peer, reason, inbound, true);
    }

    /// Refuses a peer that cannot hear a refusal (it does not speak our protocol).
    pub(super) fn refuse_silent(&mut self, peer: PeerId, reason: &str) {
        self.refuse_with(peer, reason, None, false);
    }

    fn refuse_with(
        &mut self,
        peer: PeerId,
        reason: &str,
        inbound: Option<InboundId>,
        speaks_protocol: bool,
    ) {
        tracing::warn!(%peer, %reason, "refusing peer");
        let state = self.peers.remove(&peer);
        if state.as_ref().is_some_and(|p| p.org.is_some()) {
            self.metrics.admitted_peers.dec();
        }
        self.sync_rounds.retain(|(p, _), _| *p != peer);
        let inbound = inbound.or(state.and_then(|p| p.directory_waiting));
        self.out.push(Output::Refuse {
            peer,
            refusal: wire::Response::Refused(reason.to_string()).encode(),
            inbound,
            speaks_protocol,
        });
    }

    /// Refuses peers that showed no valid certificate within [`ADMISSION_TIMEOUT`].
    pub(super) fn refuse_late(&mut self, now: Instant) {
        let late: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.org.is_none() && now.duration_since(p.connected_at) > ADMISSION_TIMEOUT
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in late {
            self.refuse(peer, "no valid certificate shown in time", None);
        }
    }

    /// A peer in a topic its org may not read is scored below the graylist threshold.
    pub(super) fn check_subscription(&mut self, peer: PeerId, topic: &TopicHash) {
        let Some(org) = self.peers.get(&peer).and_then(|p| p.org.clone()) else {
            return;
        };
        let Some(id) = self.topic_by_hash.get(topic) else {
            return;
        };
        let charter = self.charters.current().charter();
        if *id != TopicId::control(&charter.network_id) && !charter.may_read(&org, id) {
            tracing::warn!(%peer, %org, "peer subscribed to a topic its org may not read; scoring it down");
            self.send(NetCommand::Score(peer, BAD_PEER_SCORE));
        }
    }
}
