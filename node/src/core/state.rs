//! [`CoreState`]: the node's protocol state as a pure state machine.
//!
//! # Contract
//!
//! The state owns everything the node knows (charters, certificates, chain heads, sender
//! keys, peers and their admission) and does no I/O but reads of committed history
//! ([`History`], point lookups; see `core::chains`): no network, no writes, no clock, no
//! OS randomness. Time comes in with every call ([`Now`]); randomness comes from the seeded
//! RNG given to [`CoreState::new`].
//!
//! - Feed each event as an [`Input`] to [`CoreState::handle`], with the current time. It
//!   returns the [`Output`]s to execute, **in order**.
//! - Call `handle(now, Input::Tick)` every few hundred milliseconds: timers (admission
//!   timeout, key-package debounce, sync, penalties, evictions) fire from there.
//! - Writes come out as [`Output::Store`] with an [`AfterCommit`] action. The caller runs
//!   the action only once the writes are committed (with the write's result), and runs the
//!   actions of successive `Store` outputs in the order they were emitted. This is what
//!   keeps the invariant *nothing is forwarded or announced before it is on disk*: an
//!   accepted gossip message is reported `Accept` to gossipsub, and an envelope of ours is
//!   published, only from its `AfterCommit`.
//! - Two outputs ask the caller to read committed data and hand it back:
//!   [`Output::FetchHeld`] (answered with [`Input::Held`]) and [`Output::ServePage`]
//!   (answered with [`Input::PageServed`]). Answer them before the next input.
//! - A request of a peer is identified by an [`InboundId`] the caller chose; the state
//!   answers it at most once ([`Output::Respond`], [`Output::Refuse`],
//!   [`Output::RespondRefused`], [`Output::ServePage`]). The caller drops unanswered ids
//!   of a peer when it disconnects.
//! - Local requests that are not answered at once carry a [`ReplyId`]; the answer comes
//!   back as [`Output::Answer`] or inside an [`AfterCommit`].
//!
//! The driver (`core::driver`) is the one caller in the daemon; the unit tests in
//! `core::tests` are the other, with a fixed clock and a seeded RNG.

use super::answers::{PublishError, Receipt, SubmitError};
use super::chains::ChainIndex;
use super::throttle::{RequestLimits, Throttle};
use crate::metrics::Metrics;
use crate::net::{Gossip, NetCommand, RequestError, RequestTag};
use crate::store::{History, Loaded, Write};
use alertmesh_protocol::batch::Checked;
use alertmesh_protocol::charter::CharterFork;
use alertmesh_protocol::{
    AgreementKey, AgreementPublicKey, CertDirectory, CharterChain, Content, EnvelopeId, NodeKey,
    NodePublicKey, OrgId, SenderKey, SignedEnvelope, SignedNodeCert, Tlp, TopicId, Validator,
};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageId, TopicHash};
use rand::rngs::StdRng;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Undecryptable envelopes kept in memory awaiting a sender key (those beyond stay
/// stored and are loaded again at the next start).
pub(super) const MAX_PENDING: usize = 50_000;
/// Bytes of undecryptable envelopes kept in memory at most (see [`MAX_PENDING`]).
pub(super) const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;
/// Own certificate re-announced on the control topic this often.
pub(super) const CERT_ANNOUNCE_PERIOD: Duration = Duration::from_secs(150);

/// The time of a call: a monotonic instant for timers and the wall clock for envelopes.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// This node's own key material.
pub struct Identity {
    /// Signing key (libp2p identity, envelope author).
    pub key: NodeKey,
    /// Agreement key (receives sender keys).
    pub agreement: AgreementKey,
    /// Certificate.
    pub cert: SignedNodeCert,
}

/// The caller's number for a peer's request, to answer it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundId(pub u64);

/// The caller's number for a local request answered later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyId(pub u64);

/// An event for the state.
#[derive(Debug)]
pub enum Input {
    /// A connection to a new peer is up.
    Connected(PeerId),
    /// The last connection to a peer closed.
    Disconnected(PeerId),
    /// A peer subscribed to a gossip topic.
    Subscribed(PeerId, TopicHash),
    /// A peer sent a request frame.
    Request {
        /// The peer.
        peer: PeerId,
        /// The raw frame.
        data: Vec<u8>,
        /// How to answer it.
        inbound: InboundId,
    },
    /// A peer answered one of our requests.
    Response {
        /// The peer.
        peer: PeerId,
        /// Our request's tag.
        tag: RequestTag,
        /// The raw frame.
        data: Vec<u8>,
    },
    /// One of our requests got no answer.
    RequestFailed {
        /// The peer.
        peer: PeerId,
        /// Our request's tag.
        tag: RequestTag,
        /// Why.
        error: RequestError,
    },
    /// A gossip message to judge.
    Gossip(Gossip),
    /// The operator publishes content.
    Publish {
        /// Where the answer goes.
        reply: ReplyId,
        /// Topic name.
        topic: String,
        /// TLP marking.
        tlp: Tlp,
        /// What to publish.
        content: Content,
    },
    /// The operator hands in a signed charter.
    SubmitCharter {
        /// Where the answer goes.
        reply: ReplyId,
        /// The signed charter's bytes.
        bytes: Vec<u8>,
    },
    /// The answer to [`Output::FetchHeld`]: the committed envelope, if held.
    Held {
        /// The held envelope's bytes.
        held: Option<Vec<u8>>,
        /// The envelope that conflicts with it.
        conflicting: Vec<u8>,
    },
    /// The answer to [`Output::ServePage`]: how many envelope bytes went to the peer.
    PageServed {
        /// The peer.
        peer: PeerId,
        /// Envelope bytes in the page.
        bytes: usize,
    },
    /// A gossip message whose envelope the verification pool decoded and checked.
    CheckedGossip(CheckedGossip),
    /// An answer to one of our requests that is a sync page, its envelopes decoded and
    /// checked by the verification pool.
    CheckedPage {
        /// The peer.
        peer: PeerId,
        /// Our request's tag.
        tag: RequestTag,
        /// The page.
        page: CheckedPage,
    },
    /// Time passed: run the timers.
    Tick,
}

/// A gossip message as the verification pool hands it over.
#[derive(Debug)]
pub struct CheckedGossip {
    /// The peer that sent it to us.
    pub source: PeerId,
    /// gossipsub's id.
    pub id: MessageId,
    /// The topic.
    pub topic: TopicHash,
    /// Its data, decoded as an envelope and signature-checked if it is one.
    pub checked: Checked,
}

/// A sync page ([`alertmesh_protocol::wire::SyncPage`]) with checked envelopes.
#[derive(Debug)]
pub struct CheckedPage {
    /// The topic.
    pub topic: TopicId,
    /// Certificates of the page's authors.
    pub certs: Vec<Vec<u8>>,
    /// The envelopes, decoded and signature-checked.
    pub envelopes: Vec<Checked>,
    /// Whether more pages are available.
    pub more: bool,
}

impl Input {
    /// The peer the input is about, if any.
    fn peer(&self) -> Option<PeerId> {
        match self {
            Input::Connected(peer)
            | Input::Disconnected(peer)
            | Input::Subscribed(peer, _)
            | Input::Request { peer, .. }
            | Input::Response { peer, .. }
            | Input::RequestFailed { peer, .. }
            | Input::PageServed { peer, .. }
            | Input::CheckedPage { peer, .. } => Some(*peer),
            Input::Gossip(msg) => Some(msg.source),
            Input::CheckedGossip(msg) => Some(msg.source),
            _ => None,
        }
    }
}

/// What the caller does after a [`Output::Store`] is committed.
#[derive(Debug)]
pub enum AfterCommit {
    /// Nothing.
    Nothing,
    /// Report the gossip message `Accept` (so gossipsub forwards it), or `Ignore` if the
    /// write failed.
    Report {
        /// gossipsub's id.
        message: MessageId,
        /// The peer it came from.
        source: PeerId,
    },
    /// Answer a peer's request (with `Refused` if the write failed).
    Respond {
        /// The request.
        inbound: InboundId,
        /// The encoded response.
        response: Vec<u8>,
    },
    /// Send tlog-witness add-checkpoint to `peer` as request `tag` (queued with no
    /// writes: it runs once everything queued before is committed): the consistency
    /// proof from `old_size` to `size` and the inclusion proofs of the new leaves on
    /// `topics`, read from the store.
    OfferCheckpoint {
        /// The witness.
        peer: PeerId,
        /// The request's tag (already awaited by the state).
        tag: RequestTag,
        /// The size the witness last cosigned.
        old_size: u64,
        /// The checkpoint's size.
        size: u64,
        /// The signed checkpoint note.
        note: Vec<u8>,
        /// Topics whose new leaves the witness may hold.
        topics: Vec<TopicId>,
    },
    /// Answer an inclusion request with the proofs of those `ids` that are leaves of our
    /// log below `size`, read from the store (queued with no writes, like
    /// [`AfterCommit::OfferCheckpoint`]).
    ServeInclusions {
        /// The request.
        inbound: InboundId,
        /// The checkpoint's size.
        size: u64,
        /// The asked envelope ids.
        ids: Vec<EnvelopeId>,
    },
    /// Publish our envelope on gossip (only if the write succeeded), then answer the local
    /// publish that made it, if any (`Err(Storage)` if the write failed).
    Gossip {
        /// The gossip topic.
        topic: TopicHash,
        /// The message.
        data: Vec<u8>,
        /// The local publish to answer.
        receipt: Option<(ReplyId, Receipt)>,
    },
}

/// An answer to a local request.
#[derive(Debug)]
pub enum Answer {
    /// To [`Input::Publish`] (a refusal; success comes through [`AfterCommit::Gossip`]).
    Published(Result<Receipt, PublishError>),
    /// To [`Input::SubmitCharter`].
    Submitted(Result<u64, SubmitError>),
}

/// Which envelopes a sync page should carry, in order; the caller reads them.
#[derive(Debug)]
pub struct PagePlan {
    /// The topic.
    pub topic: TopicId,
    /// The envelopes wanted, by (author, seq), sorted.
    pub wanted: Vec<(NodePublicKey, u64)>,
    /// Whether more were wanted than fit.
    pub more: bool,
    /// The certificate of each author in `wanted`.
    pub certs: HashMap<NodePublicKey, Vec<u8>>,
}

/// Something for the caller to do.
#[derive(Debug)]
pub enum Output {
    /// A command for the swarm task.
    Net(NetCommand),
    /// Answer a peer's request.
    Respond {
        /// The request.
        inbound: InboundId,
        /// The encoded response.
        response: Vec<u8>,
    },
    /// Refuse a peer (see [`NetCommand::Refuse`]).
    Refuse {
        /// The peer.
        peer: PeerId,
        /// The encoded refusal.
        refusal: Vec<u8>,
        /// A request of it to answer with the refusal.
        inbound: Option<InboundId>,
        /// Whether it can hear a refusal.
        speaks_protocol: bool,
    },
    /// Answer the request of a peer the state no longer tracks (see
    /// [`NetCommand::RespondRefused`]).
    RespondRefused {
        /// The peer.
        peer: PeerId,
        /// The request.
        inbound: InboundId,
        /// The answer if no refusal is pending.
        fallback: Vec<u8>,
    },
    /// Commit these writes in one transaction, in order; then run `then`.
    Store {
        /// The writes.
        writes: Vec<Write>,
        /// What to do once committed.
        then: AfterCommit,
    },
    /// Read the committed envelope `held` and hand it back with [`Input::Held`].
    FetchHeld {
        /// The held envelope's id.
        held: EnvelopeId,
        /// The envelope that conflicts with it.
        conflicting: Vec<u8>,
    },
    /// Answer a sync request with the planned envelopes that are committed, up to
    /// `wire::MAX_PAGE_BYTES`; then report the bytes with [`Input::PageServed`].
    ServePage {
        /// The request.
        inbound: InboundId,
        /// The peer.
        peer: PeerId,
        /// What to send.
        plan: PagePlan,
    },
    /// Keep both charters of a governance fork for the operator.
    RecordFork(Box<CharterFork>),
    /// Answer a local request.
    Answer(ReplyId, Answer),
}

/// Our own chain and sender key on one topic.
pub(super) struct OwnTopic {
    pub(super) key: SenderKey,
    /// Reader nodes the current key was sealed to.
    pub(super) sealed_to: BTreeSet<AgreementPublicKey>,
    /// When the reader set last changed (a key package is due after the debounce).
    pub(super) due: Option<Instant>,
}

pub(super) struct PeerState {
    pub(super) connected_at: Instant,
    /// Its org, once admitted.
    pub(super) org: Option<OrgId>,
    /// The node key its certificate names (once admitted).
    pub(super) node: Option<NodePublicKey>,
    pub(super) subscriptions: HashSet<TopicHash>,
    /// Offence penalty, fed into its gossipsub application score (see `penalty`).
    pub(super) penalty: f64,
    /// A certificate of an org our charter does not know, judged again once the peer's
    /// directory (newer charters) is in.
    pub(super) unjudged: Option<SignedNodeCert>,
    /// Whether we asked it for its directory on this connection.
    pub(super) directory_asked: bool,
    /// Its directory request, answered once it is admitted.
    pub(super) directory_waiting: Option<InboundId>,
    /// What it may still ask of us.
    pub(super) throttle: Throttle,
}

/// What an outbound request of ours asked for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outstanding {
    Hello,
    Directory,
    Sync(TopicId),
    /// Our add-checkpoint of `size` to `witness`.
    AddCheckpoint {
        witness: NodePublicKey,
        size: u64,
    },
    /// A peer's witnessed checkpoints.
    Checkpoints,
    /// Inclusion proofs from the author of a log.
    Inclusions {
        author: NodePublicKey,
    },
}

/// Everything [`CoreState::new`] needs.
pub struct StateParts {
    /// Our keys.
    pub me: Identity,
    /// Charter history.
    pub charters: CharterChain,
    /// What was loaded from the database.
    pub loaded: Loaded,
    /// Committed history, read on demand.
    pub history: Box<dyn History>,
    /// Metrics.
    pub metrics: Metrics,
    /// How often anti-entropy runs.
    pub sync_period: Duration,
    /// Admitted peers kept at most.
    pub max_peers: usize,
    /// Per-peer request limits.
    pub request_limits: RequestLimits,
}

/// The node's protocol state (see the module docs for the contract).
pub struct CoreState {
    pub(super) me: Identity,
    pub(super) org: OrgId,
    pub(super) charters: CharterChain,
    pub(super) certs: CertDirectory,
    pub(super) chains: ChainIndex,
    pub(super) validator: Validator,
    pub(super) keys: HashMap<(NodePublicKey, TopicId, u64), SenderKey>,
    pub(super) own: HashMap<TopicId, OwnTopic>,
    pub(super) pending: HashMap<(NodePublicKey, TopicId, u64), Vec<SignedEnvelope>>,
    pub(super) pending_len: usize,
    pub(super) pending_bytes: usize,
    pub(super) peers: HashMap<PeerId, PeerState>,
    /// Our requests awaiting an answer, by tag.
    pub(super) outstanding: HashMap<RequestTag, (PeerId, Outstanding)>,
    pub(super) next_tag: u64,
    pub(super) request_limits: RequestLimits,
    /// Sync requests to send again once a busy peer's wait is over.
    pub(super) sync_retries: Vec<(Instant, PeerId, TopicId)>,
    pub(super) topic_by_hash: HashMap<TopicHash, TopicId>,
    /// Transparency logs: ours, and what we witness and hold of others.
    pub(super) tlog: super::transparency::Transparency,
    /// Open sync sessions: pages requested per (peer, topic).
    pub(super) sync_rounds: HashMap<(PeerId, TopicId), u32>,
    pub(super) next_sync: Instant,
    pub(super) sync_period: Duration,
    /// Gossip topics we are subscribed to.
    pub(super) subscribed: HashSet<String>,
    /// Peers to disconnect once the time comes (removed orgs, revoked nodes).
    pub(super) evictions: Vec<(PeerId, Instant)>,
    pub(super) metrics: Metrics,
    pub(super) next_cert_announce: Instant,
    /// When to pull a random peer's directory next.
    pub(super) directory_refresh: super::admission::DirectoryRefresh,
    pub(super) next_penalty_decay: Instant,
    pub(super) max_peers: usize,
    pub(super) next_peer_check: Instant,
    /// The time of the call being handled.
    pub(super) now: Now,
    pub(super) rng: StdRng,
    /// Outputs of the call being handled.
    pub(super) out: Vec<Output>,
}

impl CoreState {
    /// Handles one input at time `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Now, input: Input) -> Vec<Output> {
        self.now = now;
        let _span = match input.peer() {
            Some(peer) => tracing::debug_span!("peer", %peer).entered(),
            None => tracing::Span::none().entered(),
        };
        match input {
            Input::Connected(peer) => self.on_connected(peer),
            Input::Disconnected(peer) => self.on_disconnected(peer),
            Input::Subscribed(peer, topic) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.subscriptions.insert(topic.clone());
                }
                self.check_subscription(peer, &topic);
            }
            Input::Request {
                peer,
                data,
                inbound,
            } => self.on_request_frame(peer, &data, inbound),
            Input::Response { peer, tag, data } => {
                if let Some((_, what)) = self.outstanding.remove(&tag) {
                    self.on_response(peer, what, &data);
                }
            }
            Input::RequestFailed { peer, tag, error } => {
                if let Some((_, what)) = self.outstanding.remove(&tag) {
                    self.on_request_failed(peer, what, error);
                }
            }
            Input::Gossip(msg) => self.on_gossip(msg),
            Input::CheckedGossip(msg) => self.on_checked_gossip(msg),
            Input::CheckedPage { peer, tag, page } => {
                if let Some((_, what)) = self.outstanding.remove(&tag) {
                    self.on_checked_page(peer, what, page);
                }
            }
            Input::Publish {
                reply,
                topic,
                tlp,
                content,
            } => {
                if let Err(e) = self.local_publish(reply, &topic, tlp, content) {
                    self.out
                        .push(Output::Answer(reply, Answer::Published(Err(e))));
                }
            }
            Input::SubmitCharter { reply, bytes } => {
                let result = self.submit_charter(bytes);
                self.out
                    .push(Output::Answer(reply, Answer::Submitted(result)));
            }
            Input::Held { held, conflicting } => self.on_held(held, &conflicting),
            Input::PageServed { peer, bytes } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.throttle.spend_bytes(bytes);
                }
            }
            Input::Tick => self.on_tick(),
        }
        std::mem::take(&mut self.out)
    }

    /// Gossip topics this node subscribes to: control plus every topic its org reads.
    pub fn subscriptions(&self) -> Vec<String> {
        let c = self.charters.current().charter();
        let net = c.network_id;
        std::iter::once(TopicId::control(&net))
            .chain(
                c.topics
                    .iter()
                    .filter(|t| t.readers.contains(&self.org))
                    .map(|t| TopicId::derive(&net, &t.name)),
            )
            .map(|t| t.gossip_name(&net))
            .collect()
    }

    pub(super) fn network(&self) -> alertmesh_protocol::NetworkId {
        self.charters.current().charter().network_id
    }

    pub(super) fn send(&mut self, cmd: NetCommand) {
        self.out.push(Output::Net(cmd));
    }

    pub(super) fn store(&mut self, writes: Vec<Write>, then: AfterCommit) {
        self.out.push(Output::Store { writes, then });
    }

    pub(super) fn update_topic_map(&mut self) {
        let c = self.charters.current().charter();
        let net = c.network_id;
        self.topic_by_hash.clear();
        let control = TopicId::control(&net);
        self.topic_by_hash
            .insert(TopicHash::from_raw(control.gossip_name(&net)), control);
        for t in &c.topics {
            let id = TopicId::derive(&net, &t.name);
            self.topic_by_hash
                .insert(TopicHash::from_raw(id.gossip_name(&net)), id);
        }
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        self.sync_rounds.retain(|(p, _), _| *p != peer);
        self.outstanding.retain(|_, (p, _)| *p != peer);
        if self.peers.remove(&peer).is_some_and(|p| p.org.is_some()) {
            self.metrics.admitted_peers.dec();
        }
    }

    fn on_tick(&mut self) {
        let now = self.now.instant;
        self.chains.forget_committed();
        self.refuse_late(now);
        self.retry_busy_syncs(now);
        self.refresh_due_key_packages(now);
        self.transparency_tick();
        self.evict_due(now);
        self.decay_penalties(now);
        self.manage_peers(now);
        self.refresh_directory(now);
        if now >= self.next_sync {
            self.next_sync = now + self.sync_period;
            self.periodic_sync();
        }
        // Announce our certificate on the control topic.
        if now >= self.next_cert_announce && self.peers.values().any(|p| p.org.is_some()) {
            self.next_cert_announce = now + CERT_ANNOUNCE_PERIOD;
            let msg = alertmesh_protocol::ControlMessage::Cert(self.me.cert.as_bytes().to_vec());
            self.gossip_control(msg);
        }
    }
}
