//! The node core: one task that owns the node's protocol state (charters, certificates,
//! chains, sender keys) and turns network events and local requests into verdicts,
//! stored rows, decrypted alerts and outgoing messages.
//!
//! It runs beside the swarm task, so signature checks never stall the event loop.
//! Writes go to the database writer; an envelope is reported `Accept` to gossipsub (and
//! so forwarded) only after its row is committed.

mod admission;
mod governance;
mod peers;
mod penalty;
mod requests;

pub use admission::{ADMISSION_TIMEOUT, RequestLimits};
pub use peers::DEFAULT_MAX_PEERS;

pub use governance::SubmitError;

use crate::metrics::Metrics;
use crate::net::{EventReceivers, Gossip, NetCommand, NetEvent, NetHandle, RequestTag};
use crate::store::{self, AlertRow, EnvelopeRow, StoredAlert, Write, Writer};
use alertmesh_protocol::cert::CertError;
use alertmesh_protocol::chain::{ChainEntry, ChainView};
use alertmesh_protocol::charter::CharterError;
use alertmesh_protocol::charter::TopicRule;
use alertmesh_protocol::evidence::Evidence;
use alertmesh_protocol::wire;
use alertmesh_protocol::{
    AgreementKey, AgreementPublicKey, CertDirectory, CharterChain, CharterUpdate, Content,
    ControlMessage, Draft, EnvelopeId, KeyPackage, Kind, NodeKey, NodePublicKey, OrgId,
    RejectReason, SenderKey, SignedCharter, SignedEnvelope, SignedNodeCert, Source, Tlp, TopicId,
    Validator, Verdict,
};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, TopicHash};
use rand::rngs::OsRng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Requests queued from the API and CLI.
const REQUEST_QUEUE: usize = 256;
/// Undecryptable envelopes kept in memory awaiting a sender key.
const MAX_PENDING: usize = 50_000;
/// Key packages go out this long after the last change of a topic's readers.
const KEY_PACKAGE_DEBOUNCE: Duration = Duration::from_millis(400);
/// Anti-entropy runs this often unless the config's `sync_interval_ms` says otherwise.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// Peers asked per anti-entropy period.
const SYNC_PEERS_PER_PERIOD: usize = 2;
/// Most pages one sync session may fetch (a peer sending endless pages is cut off).
const MAX_SYNC_ROUNDS: u32 = 10_000;
/// Own certificate re-announced on the control topic this often.
const CERT_ANNOUNCE_PERIOD: Duration = Duration::from_secs(150);

/// This node's own key material.
pub struct Identity {
    /// Signing key (libp2p identity, envelope author).
    pub key: NodeKey,
    /// Agreement key (receives sender keys).
    pub agreement: AgreementKey,
    /// Certificate.
    pub cert: SignedNodeCert,
}

/// A local request to the core.
pub enum Request {
    /// Publish content on a topic.
    Publish {
        /// Topic name.
        topic: String,
        /// TLP marking.
        tlp: Tlp,
        /// What to publish.
        content: Content,
        /// Answer once stored.
        reply: oneshot::Sender<Result<Receipt, PublishError>>,
    },
    /// Node status.
    Status(oneshot::Sender<Status>),
    /// Topics and our rights on them.
    Topics(oneshot::Sender<Vec<TopicInfo>>),
    /// Adopt a signed charter handed in by the operator and gossip it.
    SubmitCharter {
        /// The signed charter's bytes.
        bytes: Vec<u8>,
        /// The adopted version, or why it was not adopted.
        reply: oneshot::Sender<Result<u64, governance::SubmitError>>,
    },
}

/// The answer to a successful publish.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Topic name.
    pub topic: String,
    /// Position in our chain on the topic.
    pub seq: u64,
}

/// Why a local publish was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The topic is not in the charter.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// Our org may not publish on the topic.
    #[error("org {org} may not publish on topic {topic:?} under charter version {version}")]
    Forbidden {
        /// Our org.
        org: OrgId,
        /// The topic.
        topic: String,
        /// The charter version.
        version: u64,
    },
    /// TLP above the topic's maximum.
    #[error("{tlp} is above the maximum {max} of topic {topic:?}")]
    TlpTooHigh {
        /// Requested.
        tlp: Tlp,
        /// Allowed.
        max: Tlp,
        /// The topic.
        topic: String,
    },
    /// The content is invalid.
    #[error("invalid alert: {0}")]
    Invalid(String),
    /// An update or retraction of an alert we did not author.
    #[error("{0}")]
    NotAuthor(String),
    /// This node's certificate is revoked or expired.
    #[error(
        "this node's certificate is revoked or expired, or its org was removed; it may not publish"
    )]
    CertInvalid,
    /// Storage failed.
    #[error("storage failed: {0}")]
    Storage(String),
}

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

/// Cloneable handle to the core.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Request>,
    writer: Writer,
}

impl CoreHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| anyhow::anyhow!("node is shutting down"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("node is shutting down"))
    }

    /// Publishes content; resolves once it is durably stored.
    pub async fn publish(
        &self,
        topic: String,
        tlp: Tlp,
        content: Content,
    ) -> anyhow::Result<Result<Receipt, PublishError>> {
        self.ask(|reply| Request::Publish {
            topic,
            tlp,
            content,
            reply,
        })
        .await
    }

    /// Node status.
    pub async fn status(&self) -> anyhow::Result<Status> {
        self.ask(Request::Status).await
    }

    /// Topics.
    pub async fn topics(&self) -> anyhow::Result<Vec<TopicInfo>> {
        self.ask(Request::Topics).await
    }

    /// Hands a signed charter to the node: adopted and gossiped if it is the valid next
    /// version.
    pub async fn submit_charter(
        &self,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Result<u64, governance::SubmitError>> {
        self.ask(|reply| Request::SubmitCharter { bytes, reply })
            .await
    }

    /// Alerts decrypted (or published) by this node, each once its row is committed, with
    /// its cursor.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredAlert> {
        self.writer.subscribe()
    }
}

/// Held chain positions, in memory (rebuilt from the database at start).
#[derive(Default)]
struct ChainIndex {
    chains: HashMap<(NodePublicKey, TopicId), BTreeMap<u64, ChainEntry>>,
    len: usize,
}

impl ChainView for ChainIndex {
    fn entry(&self, author: &NodePublicKey, topic: &TopicId, seq: u64) -> Option<ChainEntry> {
        self.chains.get(&(*author, *topic))?.get(&seq).copied()
    }
}

impl ChainIndex {
    fn insert(&mut self, env: &SignedEnvelope) {
        let h = env.header();
        let chain = self.chains.entry((h.author, h.topic_id)).or_default();
        if chain
            .insert(
                h.seq,
                ChainEntry {
                    id: env.id(),
                    prev: h.prev,
                },
            )
            .is_none()
        {
            self.len += 1;
        }
    }

    fn head(&self, author: &NodePublicKey, topic: &TopicId) -> Option<(u64, EnvelopeId)> {
        self.chains
            .get(&(*author, *topic))?
            .last_key_value()
            .map(|(s, e)| (*s, e.id))
    }

    fn gaps(&self) -> usize {
        self.chains
            .values()
            .filter(|c| {
                c.last_key_value()
                    .is_some_and(|(head, _)| *head as usize != c.len())
            })
            .count()
    }
}

/// Our own chain and sender key on one topic.
struct OwnTopic {
    key: SenderKey,
    /// Reader nodes the current key was sealed to.
    sealed_to: BTreeSet<AgreementPublicKey>,
    /// When the reader set last changed (a key package is due after the debounce).
    due: Option<Instant>,
}

struct PeerState {
    connected_at: Instant,
    /// Its org, once admitted.
    org: Option<OrgId>,
    /// The node key its certificate names (once admitted).
    node: Option<NodePublicKey>,
    subscriptions: HashSet<TopicHash>,
    /// Offence penalty, fed into its gossipsub application score (see `penalty`).
    penalty: f64,
    /// A certificate of an org our charter does not know, judged again once the peer's
    /// directory (newer charters) is in.
    unjudged: Option<SignedNodeCert>,
    /// Whether we asked it for its directory on this connection.
    directory_asked: bool,
    /// Its directory request, answered once it is admitted.
    directory_waiting: Option<libp2p::request_response::ResponseChannel<Vec<u8>>>,
    /// What it may still ask of us.
    throttle: admission::Throttle,
}

/// What an outbound request of ours asked for.
#[derive(Debug, Clone, Copy)]
enum Outstanding {
    Hello,
    Directory,
    Sync(TopicId),
}

/// The core's state.
pub struct Core {
    me: Identity,
    org: OrgId,
    charters: CharterChain,
    certs: CertDirectory,
    chains: ChainIndex,
    validator: Validator,
    keys: HashMap<(NodePublicKey, TopicId, u64), SenderKey>,
    own: HashMap<TopicId, OwnTopic>,
    pending: HashMap<(NodePublicKey, TopicId, u64), Vec<SignedEnvelope>>,
    pending_len: usize,
    /// Decrypted alerts: id → (org, topic), for update/retraction authorship checks.
    alert_origin: HashMap<EnvelopeId, (OrgId, TopicId)>,
    peers: HashMap<PeerId, PeerState>,
    /// Our requests awaiting an answer, by tag.
    outstanding: HashMap<RequestTag, (PeerId, Outstanding)>,
    next_tag: u64,
    /// Per-peer request limits.
    request_limits: RequestLimits,
    /// Sync requests to send again once a busy peer's wait is over.
    sync_retries: Vec<(Instant, PeerId, TopicId)>,
    topic_by_hash: HashMap<TopicHash, TopicId>,
    evidence: HashSet<[u8; 32]>,
    /// Open sync sessions: pages requested per (peer, topic).
    sync_rounds: HashMap<(PeerId, TopicId), u32>,
    next_sync: Instant,
    /// How often anti-entropy runs.
    sync_period: Duration,
    /// Gossip topics we are subscribed to.
    subscribed: HashSet<String>,
    /// Peers to disconnect once the time comes (removed orgs, revoked nodes).
    evictions: Vec<(PeerId, Instant)>,
    writer: Writer,
    reader: std::sync::Mutex<rusqlite::Connection>,
    data_dir: std::path::PathBuf,
    net: NetHandle,
    metrics: Metrics,
    next_cert_announce: Instant,
    /// Set by `on_envelope` / `on_control` when the message just judged counts against
    /// the gossip peer that sent it; taken by `on_gossip`.
    offence: Option<penalty::Offence>,
    /// While a gossip message is judged: what the writer does once its envelope is
    /// committed (report it to gossipsub). Taken by [`Core::accept`].
    on_commit: Option<store::OnCommit>,
    /// When penalties next halve.
    next_penalty_decay: Instant,
    /// Admitted peers kept at most (see `peers`).
    max_peers: usize,
    /// When the connection set is next checked.
    next_peer_check: Instant,
}

/// How a gossip message was judged, and so what gossipsub is told.
enum Judgement {
    /// Accepted and nothing to wait for: `Accept` now.
    Accept,
    /// Accepted and queued for the database: reported by [`Core::on_commit`] once the row
    /// is committed (`Ignore` if the write failed), so nothing is forwarded before it is on
    /// disk.
    Stored,
    /// Dropped without counting against the sender.
    Ignore,
    /// Dropped and counted against the sender (gossipsub's invalid-message penalty, P4).
    Reject,
}

/// Whether no honest node would have forwarded an envelope rejected for `reason`: its
/// bytes are broken or forged whatever the relay's charter version, clock or history.
/// Other rejections (equivocation, cut-offs, revocations, clock skew) can reach a node
/// through an honest relay that judged earlier or with another charter, so they are
/// reported as `Ignore` and do not lower the relay's gossipsub score.
fn no_honest_relay_forwards(reason: &RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::TooLarge { .. }
            | RejectReason::Malformed(_)
            | RejectReason::WrongNetwork
            | RejectReason::BadSignature
            | RejectReason::BadPayload(_)
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Everything [`Core::new`] needs.
pub struct CoreParts {
    /// Our keys.
    pub me: Identity,
    /// Charter history.
    pub charters: CharterChain,
    /// Database writer.
    pub writer: Writer,
    /// A read connection.
    pub reader: rusqlite::Connection,
    /// Data dir (for messages).
    pub data_dir: std::path::PathBuf,
    /// What was loaded from the database.
    pub loaded: store::Loaded,
    /// Network handle.
    pub net: NetHandle,
    /// Metrics.
    pub metrics: Metrics,
    /// How often anti-entropy runs ([`SYNC_PERIOD`] by default).
    pub sync_period: Duration,
    /// Admitted peers kept at most ([`DEFAULT_MAX_PEERS`] by default).
    pub max_peers: usize,
    /// Per-peer request limits.
    pub request_limits: RequestLimits,
}

impl Core {
    /// Builds the core from loaded state and returns it with its handle.
    pub fn new(parts: CoreParts) -> anyhow::Result<(Self, CoreHandle, mpsc::Receiver<Request>)> {
        let CoreParts {
            me,
            mut charters,
            writer,
            reader,
            data_dir,
            loaded,
            net,
            metrics,
            sync_period,
            max_peers,
            request_limits,
        } = parts;
        for bytes in &loaded.charters {
            let signed = SignedCharter::decode(bytes)
                .map_err(|e| anyhow::anyhow!("stored charter does not decode: {e}"))?;
            if let Err(e) = charters.offer(signed) {
                tracing::warn!(error = %e, "stored charter not adopted");
            }
        }
        let org = me.cert.cert().org_id.clone();
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let handle = CoreHandle {
            tx,
            writer: writer.clone(),
        };
        let mut core = Self {
            org,
            charters,
            certs: CertDirectory::default(),
            chains: ChainIndex::default(),
            validator: Validator::new(),
            keys: HashMap::new(),
            own: HashMap::new(),
            pending: HashMap::new(),
            pending_len: 0,
            alert_origin: HashMap::new(),
            peers: HashMap::new(),
            outstanding: HashMap::new(),
            next_tag: 0,
            request_limits,
            sync_retries: Vec::new(),
            topic_by_hash: HashMap::new(),
            evidence: HashSet::new(),
            sync_rounds: HashMap::new(),
            next_sync: Instant::now() + sync_period,
            sync_period,
            max_peers,
            next_peer_check: Instant::now() + peers::PEER_CHECK_PERIOD,
            subscribed: HashSet::new(),
            evictions: Vec::new(),
            writer,
            reader: std::sync::Mutex::new(reader),
            data_dir,
            net,
            metrics,
            next_cert_announce: Instant::now() + Duration::from_secs(2),
            offence: None,
            on_commit: None,
            next_penalty_decay: Instant::now() + penalty::PENALTY_HALF_LIFE,
            me,
        };
        let charter = core.charters.current().charter().clone();
        core.certs
            .insert(core.me.cert.clone(), &charter)
            .map_err(|e| {
                anyhow::anyhow!("this node's certificate is not valid for the network: {e}")
            })?;
        for bytes in &loaded.certs {
            if let Ok(cert) = SignedNodeCert::decode(bytes) {
                let _ = core.certs.insert(cert, &charter);
            }
        }
        for (id, (org, topic_name)) in &loaded.decrypted {
            core.alert_origin.insert(
                *id,
                (
                    OrgId(org.clone()),
                    TopicId::derive(&charter.network_id, topic_name),
                ),
            );
        }
        // Rebuild chains and sender keys; queue what is not decrypted yet.
        let mut own_epochs: HashMap<TopicId, u64> = HashMap::new();
        let max = charter.limits.max_envelope_bytes as usize;
        for bytes in &loaded.envelopes {
            let Ok(env) = SignedEnvelope::decode(bytes, max.max(bytes.len())) else {
                continue;
            };
            core.chains.insert(&env);
            let h = env.header();
            if h.author == core.me.key.public() && h.kind == Kind::KeyPackage {
                let e = own_epochs.entry(h.topic_id).or_default();
                *e = (*e).max(h.key_epoch);
            }
            if h.kind == Kind::KeyPackage {
                core.learn_key_package(&env);
            } else if h.kind.is_encrypted() && !loaded.decrypted.contains_key(&env.id()) {
                core.queue_pending(env);
            }
        }
        // A fresh sender-key epoch on every start: a key is never reused after a crash.
        for rule in &charter.topics {
            let topic = TopicId::derive(&charter.network_id, &rule.name);
            if rule.publishers.contains(&core.org) {
                let epoch = own_epochs.get(&topic).map_or(1, |e| e + 1);
                core.own.insert(
                    topic,
                    OwnTopic {
                        key: SenderKey::generate(epoch, &mut OsRng),
                        sealed_to: BTreeSet::new(),
                        due: Some(Instant::now()),
                    },
                );
            }
        }
        core.update_topic_map();
        // Evidence held from earlier runs counts in status and metrics.
        let held = core
            .reader
            .lock()
            .map(|c| crate::audit::stored_evidence_ids(&c))
            .unwrap_or_default();
        core.metrics.evidence.inc_by(held.len() as u64);
        core.evidence.extend(held);
        core.retry_all_pending();
        Ok((core, handle, rx))
    }

    fn network(&self) -> alertmesh_protocol::NetworkId {
        self.charters.current().charter().network_id
    }

    fn update_topic_map(&mut self) {
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

    /// Runs until shutdown.
    pub async fn run(
        mut self,
        net: EventReceivers,
        mut requests: mpsc::Receiver<Request>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let EventReceivers {
            mut gossip,
            mut events,
        } = net;
        self.sync_subscriptions().await;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                // Connection and request events first: they are never shed.
                biased;
                _ = shutdown.changed() => break,
                ev = events.recv() => match ev {
                    Some(ev) => self.on_net_event(ev).await,
                    None => break,
                },
                msg = gossip.recv() => match msg {
                    Some(msg) => self.on_gossip(msg).await,
                    None => break,
                },
                req = requests.recv() => match req {
                    Some(req) => self.on_request(req).await,
                    None => break,
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
        let _ = self.writer.flush().await;
        tracing::debug!("core stopped");
    }

    async fn send(&self, cmd: NetCommand) {
        if self.net.send(cmd).await.is_err() {
            tracing::debug!("network task gone");
        }
    }

    async fn on_net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Connected(peer) => self.on_connected(peer).await,
            NetEvent::Disconnected(peer) => {
                self.sync_rounds.retain(|(p, _), _| *p != peer);
                self.outstanding.retain(|_, (p, _)| *p != peer);
                if self.peers.remove(&peer).is_some_and(|p| p.org.is_some()) {
                    self.metrics.admitted_peers.dec();
                }
            }
            NetEvent::Subscribed(peer, topic) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.subscriptions.insert(topic.clone());
                }
                self.check_subscription(peer, &topic).await;
            }
            NetEvent::Request {
                peer,
                data,
                channel,
            } => self.on_request_frame(peer, &data, channel).await,
            NetEvent::Response { peer, tag, data } => {
                let Some((_, what)) = self.outstanding.remove(&tag) else {
                    return;
                };
                self.on_response(peer, what, &data).await;
            }
            NetEvent::RequestFailed { peer, tag, error } => {
                if let Some((_, what)) = self.outstanding.remove(&tag) {
                    self.on_request_failed(peer, what, error).await;
                }
            }
        }
    }

    /// Verifies and keeps a certificate; `Ok(true)` if it is new and kept (then stored,
    /// and key packages are due on the topics its org reads).
    async fn learn_cert(&mut self, cert: SignedNodeCert) -> Result<bool, CertError> {
        let kept = self
            .certs
            .insert(cert.clone(), self.charters.current().charter())?;
        if kept {
            let bytes = cert.as_bytes().to_vec();
            let _ = self
                .writer
                .write(Write::Cert {
                    node: cert.cert().node_sign_pub,
                    bytes,
                })
                .await;
            self.mark_reader_org_changed(&cert.cert().org_id);
            self.retry_all_pending();
        }
        Ok(kept)
    }

    async fn offer_charter(
        &mut self,
        charter: SignedCharter,
    ) -> Result<CharterUpdate, CharterError> {
        let result = self.charters.offer(charter.clone());
        match &result {
            Ok(CharterUpdate::Adopted(version)) => {
                tracing::info!(version, "adopted charter");
                let _ = self
                    .writer
                    .write(Write::Charter {
                        version: *version,
                        hash: charter.hash().0,
                        bytes: charter.as_bytes().to_vec(),
                    })
                    .await;
                self.apply_charter_effects().await;
            }
            Ok(CharterUpdate::Fork(fork)) => {
                self.record_fork(fork);
            }
            _ => {}
        }
        result
    }

    fn mark_readers_changed(&mut self) {
        let now = Instant::now();
        for own in self.own.values_mut() {
            own.due = Some(now);
        }
    }

    /// Marks a key package due on our topics that `org` reads (a node of it appeared).
    fn mark_reader_org_changed(&mut self, org: &OrgId) {
        let now = Instant::now();
        let charter = self.charters.current().charter();
        for (topic, own) in &mut self.own {
            if charter
                .topic(topic)
                .is_some_and(|r| r.readers.contains(org))
            {
                own.due = Some(now);
            }
        }
    }

    async fn on_gossip(&mut self, msg: Gossip) {
        let Gossip {
            source,
            id,
            topic,
            data,
        } = msg;
        // The swarm opens gossip to admitted peers only; this catches a peer refused
        // while its message was queued.
        if !self.is_admitted(&source) {
            self.metrics.verdict("reject", "unadmitted_peer");
            self.send(NetCommand::Report(id, source, MessageAcceptance::Reject))
                .await;
            return;
        }
        let Some(topic_id) = self.topic_by_hash.get(&topic).copied() else {
            self.metrics.verdict("reject", "unknown_topic");
            self.send(NetCommand::Report(id, source, MessageAcceptance::Reject))
                .await;
            return;
        };
        let net = self.network();
        self.offence = None;
        // Forward only after the row is on disk: the writer thread reports the message
        // to gossipsub once it has committed it.
        let reporter = self.net.clone();
        let (rid, rsource) = (id.clone(), source);
        self.on_commit = Some(Box::new(move |result| {
            let acceptance = match result {
                Ok(()) => MessageAcceptance::Accept,
                Err(_) => MessageAcceptance::Ignore,
            };
            let _ = reporter.send_blocking(NetCommand::Report(rid, rsource, acceptance));
        }));
        let acceptance = if topic_id == TopicId::control(&net) {
            self.on_control(&data, source).await
        } else {
            self.on_envelope(&data, Some(topic_id), Source::Gossip)
                .await
        };
        self.on_commit = None;
        if let Some(offence) = self.offence.take() {
            self.penalize(source, offence).await;
        }
        let acceptance = match acceptance {
            Judgement::Accept => MessageAcceptance::Accept,
            Judgement::Ignore => MessageAcceptance::Ignore,
            Judgement::Reject => MessageAcceptance::Reject,
            // Reported by the writer thread once the row is on disk (see `on_commit`).
            Judgement::Stored => return,
        };
        self.send(NetCommand::Report(id, source, acceptance)).await;
    }

    /// Validates an envelope; on accept, stores and processes it.
    async fn on_envelope(
        &mut self,
        data: &[u8],
        expected_topic: Option<TopicId>,
        source: Source,
    ) -> Judgement {
        let now = now_ms();
        let ctx = alertmesh_protocol::Context {
            charters: &self.charters,
            certs: &self.certs,
            chains: &self.chains,
            now_ms: now,
        };
        let verdict = self.validator.validate(&ctx, data, source);
        match verdict {
            Verdict::Accept(accepted) => {
                let env = accepted.envelope;
                if expected_topic.is_some_and(|t| t != env.header().topic_id) {
                    self.metrics.verdict("reject", "topic_mismatch");
                    self.offence = Some(penalty::Offence::Garbage);
                    return Judgement::Reject;
                }
                self.metrics.verdict("accept", "ok");
                self.accept(env, accepted.org, now).await;
                Judgement::Stored
            }
            Verdict::Ignore(reason) => {
                if reason == alertmesh_protocol::IgnoreReason::RateLimited {
                    self.offence = Some(penalty::Offence::of(data));
                }
                self.metrics.verdict("ignore", reason.label());
                tracing::debug!(%reason, "ignored envelope");
                Judgement::Ignore
            }
            Verdict::Reject(reason) => {
                self.offence = Some(penalty::Offence::of(data));
                self.metrics.verdict("reject", reason.label());
                tracing::debug!(%reason, "rejected envelope");
                self.on_conflict(&reason, data).await;
                if no_honest_relay_forwards(&reason) {
                    Judgement::Reject
                } else {
                    Judgement::Ignore
                }
            }
        }
    }

    /// Stores an accepted envelope and processes its payload.
    async fn accept(&mut self, env: SignedEnvelope, org: OrgId, now: u64) {
        self.chains.insert(&env);
        let h = env.header();
        let kind = h.kind;
        let has_key = self.keys.contains_key(&(h.author, h.topic_id, h.key_epoch));
        // An alert we can read now is stored in the same transaction as its envelope.
        let decrypted = match kind {
            Kind::Alert | Kind::Update | Kind::Retraction if has_key => {
                self.decrypt_and_record(&env, &org, true)
            }
            _ => None,
        };
        let mut writes = vec![Write::Envelope(EnvelopeRow {
            envelope: env.clone(),
            received_ms: now,
        })];
        // The envelope row goes before any row that refers to it.
        if let Some(row) = decrypted {
            writes.push(Write::Alert(row));
            self.metrics.delivered.inc();
        }
        // If the writer is gone, a gossip message is never reported, so never forwarded.
        let _ = self.writer.write_all(writes, self.on_commit.take()).await;
        match kind {
            Kind::KeyPackage => {
                if let Some(key_id) = self.learn_key_package(&env) {
                    self.retry_pending(key_id).await;
                }
            }
            Kind::Evidence => self.record_evidence_envelope(&env).await,
            Kind::Alert | Kind::Update | Kind::Retraction if !has_key => self.queue_pending(env),
            Kind::Alert | Kind::Update | Kind::Retraction => {}
        }
    }

    fn learn_key_package(&mut self, env: &SignedEnvelope) -> Option<(NodePublicKey, TopicId, u64)> {
        let pkg = KeyPackage::decode(env.payload()).ok()?;
        let h = env.header();
        let key_id = (h.author, h.topic_id, h.key_epoch);
        if self.keys.contains_key(&key_id) {
            return None;
        }
        let key = pkg
            .open(&h.network_id, &h.author, &self.me.agreement)
            .ok()?;
        self.keys.insert(key_id, key);
        Some(key_id)
    }

    fn queue_pending(&mut self, env: SignedEnvelope) {
        if self.pending_len >= MAX_PENDING {
            return; // still stored; decrypted after a restart or never, but never lost
        }
        let h = env.header();
        self.pending
            .entry((h.author, h.topic_id, h.key_epoch))
            .or_default()
            .push(env);
        self.pending_len += 1;
        self.metrics.undecryptable.set(self.pending_len as i64);
    }

    fn retry_all_pending(&mut self) {
        // Called at start and when certs change: keys may have become available.
        let ready: Vec<_> = self
            .pending
            .keys()
            .filter(|k| self.keys.contains_key(k))
            .copied()
            .collect();
        for k in ready {
            if let Some(list) = self.pending.remove(&k) {
                self.pending_len -= list.len();
                for env in list {
                    let org = self.certs.org_of(&env.header().author).cloned();
                    if let Some(org) = org {
                        self.decrypt_and_record(&env, &org, false);
                    }
                }
            }
        }
        self.metrics.undecryptable.set(self.pending_len as i64);
    }

    async fn retry_pending(&mut self, key_id: (NodePublicKey, TopicId, u64)) {
        if let Some(list) = self.pending.remove(&key_id) {
            self.pending_len -= list.len();
            self.metrics.undecryptable.set(self.pending_len as i64);
            for env in list {
                if let Some(org) = self.certs.org_of(&env.header().author).cloned() {
                    self.deliver(&env, &org).await;
                }
            }
        }
    }

    async fn deliver(&mut self, env: &SignedEnvelope, org: &OrgId) {
        if let Some(row) = self.decrypt_and_record(env, org, true) {
            let _ = self.writer.write(Write::Alert(row)).await;
            self.metrics.delivered.inc();
        }
    }

    /// Decrypts, checks authorship of amendments, and returns the row to store (the writer
    /// announces it once committed). With `live = false` the row is written directly
    /// (start-up).
    fn decrypt_and_record(
        &mut self,
        env: &SignedEnvelope,
        org: &OrgId,
        live: bool,
    ) -> Option<AlertRow> {
        let h = env.header();
        let key = self.keys.get(&(h.author, h.topic_id, h.key_epoch))?;
        let content = match env.open(key) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(id = %env.id().short(), error = %e, "cannot open an accepted envelope");
                self.metrics.verdict("undecryptable", "bad_content");
                return None;
            }
        };
        if let Some(original) = content.original() {
            let ok = self.alert_origin.get(&original).is_some_and(|(o, t)| {
                alertmesh_protocol::alert::check_amendment(o, t, org, &h.topic_id).is_ok()
            });
            if !ok {
                tracing::warn!(id = %env.id().short(), %org, "amendment of an alert by another org (or unknown original) not applied");
                let reason = if self.alert_origin.contains_key(&original) {
                    "amendment_not_by_author"
                } else {
                    "amendment_unknown_original"
                };
                self.metrics.verdict("reject", reason);
                return None;
            }
        } else {
            self.alert_origin
                .insert(env.id(), (org.clone(), h.topic_id));
        }
        if live {
            let latency = now_ms().saturating_sub(h.timestamp_ms) as f64 / 1000.0;
            if h.author != self.me.key.public() {
                self.metrics.delivery_latency.observe(latency);
            }
        }
        let row = self.alert_row(env, org, &content);
        if !live {
            let writer = self.writer.clone();
            let row2 = row.clone();
            tokio::spawn(async move {
                let _ = writer.write(Write::Alert(row2)).await;
            });
        }
        Some(row)
    }

    fn alert_row(&self, env: &SignedEnvelope, org: &OrgId, content: &Content) -> AlertRow {
        let h = env.header();
        let topic_name = self
            .charters
            .current()
            .charter()
            .topic(&h.topic_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        AlertRow {
            envelope_id: env.id(),
            topic_name,
            org: org.to_string(),
            kind: h.kind.as_str().to_string(),
            original: content.original(),
            tlp: h.tlp.to_string(),
            timestamp_ms: h.timestamp_ms,
            content_json: serde_json::to_string(content).unwrap_or_default(),
        }
    }

    async fn on_control(&mut self, data: &[u8], source: PeerId) -> Judgement {
        let msg = match ControlMessage::decode(data) {
            Ok(m) => m,
            Err(_) => {
                self.offence = Some(penalty::Offence::Garbage);
                self.metrics.verdict("reject", "malformed_control");
                return Judgement::Reject;
            }
        };
        match msg {
            ControlMessage::Cert(bytes) => {
                let Ok(cert) = SignedNodeCert::decode(&bytes) else {
                    self.metrics.verdict("reject", "malformed_cert");
                    return Judgement::Reject;
                };
                // A certificate already held (say, from the author's hello) is forwarded
                // too, or nodes beyond the first hop would only learn it through sync;
                // gossipsub's duplicate cache stops each announcement after one round.
                let held = self
                    .charters
                    .current()
                    .charter()
                    .member(&cert.cert().org_id)
                    .is_some_and(|m| self.certs.holds_verified(&cert, &m.root_pub));
                match self.learn_cert(cert).await {
                    Ok(kept) if kept || held => {
                        self.metrics.verdict("accept", "cert");
                        Judgement::Accept
                    }
                    Ok(_) => Judgement::Ignore,
                    Err(CertError::UnknownOrg(_)) => {
                        // Not (or no longer) a member here; a relay may hold another charter.
                        self.metrics.verdict("ignore", "cert_of_non_member");
                        Judgement::Ignore
                    }
                    Err(_) => {
                        self.metrics.verdict("reject", "bad_cert");
                        Judgement::Reject
                    }
                }
            }
            ControlMessage::Charter(bytes) => {
                let Ok(charter) = SignedCharter::decode(&bytes) else {
                    self.metrics.verdict("reject", "malformed_charter");
                    return Judgement::Reject;
                };
                match self.offer_charter(charter).await {
                    Ok(CharterUpdate::Adopted(_)) | Ok(CharterUpdate::Fork(_)) => Judgement::Accept,
                    Ok(CharterUpdate::AlreadyKnown) => Judgement::Ignore,
                    Err(CharterError::MissingPredecessor { .. }) => {
                        // We are behind: the source's directory has the versions between.
                        let ask = wire::Request::Directory.encode();
                        self.request(source, ask, Outstanding::Directory).await;
                        Judgement::Ignore
                    }
                    Err(_) => {
                        // Signed charters can be refused for the state we are in (a
                        // version already passed), so this does not score the relay.
                        self.metrics.verdict("reject", "bad_charter");
                        Judgement::Ignore
                    }
                }
            }
            ControlMessage::Envelope(bytes) => {
                let net = self.network();
                self.on_envelope(&bytes, Some(TopicId::control(&net)), Source::Gossip)
                    .await
            }
        }
    }

    /// On equivocation or a chain conflict, builds evidence from the held envelope.
    async fn on_conflict(&mut self, reason: &RejectReason, data: &[u8]) {
        let other = match reason {
            RejectReason::Equivocation { existing } => *existing,
            RejectReason::ChainConflict { other } => *other,
            _ => return,
        };
        let max = self.charters.current().charter().limits.max_envelope_bytes as usize;
        let Ok(new) = SignedEnvelope::decode(data, max) else {
            return;
        };
        if self.writer.flush().await.is_err() {
            return;
        }
        let held: Option<Vec<u8>> = self.reader.lock().ok().and_then(|conn| {
            conn.query_row(
                "SELECT bytes FROM envelopes WHERE id = ?1",
                [other.as_bytes()],
                |r| r.get(0),
            )
            .ok()
        });
        let Some(held) = held.and_then(|b| SignedEnvelope::decode(&b, max.max(b.len())).ok())
        else {
            return;
        };
        let Ok(evidence) = Evidence::new(&held, &new) else {
            return;
        };
        if evidence.verify(max).is_err() {
            return;
        }
        self.store_evidence(&evidence).await;
        // Tell every member: an evidence envelope on the control topic.
        let net = self.network();
        let _ = self
            .publish_own(
                TopicId::control(&net),
                Kind::Evidence,
                Tlp::Clear,
                &evidence.encode(),
                None,
            )
            .await;
    }

    async fn store_evidence(&mut self, evidence: &Evidence) {
        let bytes = evidence.encode();
        let id = alertmesh_protocol::ids::sha256(&bytes);
        let max = self.charters.current().charter().limits.max_envelope_bytes as usize;
        let Ok(proven) = evidence.verify(max) else {
            return;
        };
        if !self.evidence.insert(id) {
            return;
        }
        tracing::error!(author = %proven.author.short(), seq = proven.seq, kind = ?proven.misbehaviour, "EQUIVOCATION: an author signed conflicting envelopes; evidence stored");
        self.metrics.evidence.inc();
        let _ = self
            .writer
            .write(Write::Evidence {
                id,
                author: proven.author,
                topic: proven.topic,
                seq: proven.seq,
                bytes,
                received_ms: now_ms(),
            })
            .await;
    }

    async fn record_evidence_envelope(&mut self, env: &SignedEnvelope) {
        let max = self.charters.current().charter().limits.max_envelope_bytes as usize;
        if let Ok(evidence) = Evidence::decode(env.payload(), max) {
            self.store_evidence(&evidence).await;
        }
    }

    /// Seals and stores an envelope of ours (with the row of `alert`, its readable content,
    /// in the same transaction); publishes it once committed.
    async fn publish_own(
        &mut self,
        topic: TopicId,
        kind: Kind,
        tlp: Tlp,
        payload: &[u8],
        alert: Option<&Content>,
    ) -> Result<(SignedEnvelope, oneshot::Receiver<Result<(), String>>), PublishError> {
        let me = self.me.key.public();
        let (seq, prev) = self
            .chains
            .head(&me, &topic)
            .map_or((1, EnvelopeId::default()), |(s, id)| (s + 1, id));
        let charter = self.charters.current().charter();
        let draft = Draft {
            network_id: charter.network_id,
            topic_id: topic,
            seq,
            prev,
            charter_version: charter.version,
            timestamp_ms: now_ms(),
            kind,
            key_epoch: 0,
            tlp,
        };
        let env = if kind.is_encrypted() {
            let own = self
                .own
                .get(&topic)
                .ok_or(PublishError::Invalid("no sender key for topic".into()))?;
            let draft = Draft {
                key_epoch: own.key.epoch(),
                ..draft
            };
            SignedEnvelope::seal_encrypted(&self.me.key, &draft, &own.key, payload, &mut OsRng)
        } else {
            let epoch = if kind == Kind::KeyPackage {
                self.own.get(&topic).map_or(0, |o| o.key.epoch())
            } else {
                0
            };
            SignedEnvelope::seal_clear(
                &self.me.key,
                &Draft {
                    key_epoch: epoch,
                    ..draft
                },
                payload,
            )
        }
        .map_err(|e| PublishError::Invalid(e.to_string()))?;
        self.chains.insert(&env);
        self.metrics.published.inc();
        let (ack_tx, ack_rx) = oneshot::channel();
        let writer = self.writer.clone();
        let netw = self.net.clone();
        let net_id = charter.network_id;
        let gossip = if topic == TopicId::control(&net_id) {
            ControlMessage::Envelope(env.as_bytes().to_vec()).encode()
        } else {
            env.as_bytes().to_vec()
        };
        let topic_hash = TopicHash::from_raw(topic.gossip_name(&net_id));
        let mut rows = vec![Write::Envelope(EnvelopeRow {
            envelope: env.clone(),
            received_ms: now_ms(),
        })];
        if let Some(content) = alert {
            rows.push(Write::Alert(self.alert_row(&env, &self.org, content)));
        }
        // Published only once it is on disk, so a restart can never reuse its sequence
        // number.
        writer
            .write_all(
                rows,
                Some(Box::new(move |result| {
                    if result.is_ok() {
                        let _ = netw.send_blocking(NetCommand::Publish(topic_hash, gossip));
                    }
                    let _ = ack_tx.send(result);
                })),
            )
            .await
            .map_err(|e| PublishError::Storage(e.to_string()))?;
        Ok((env, ack_rx))
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        self.refuse_late(now).await;
        self.retry_busy_syncs(now).await;
        // Key packages whose reader set changed.
        let due: Vec<TopicId> = self
            .own
            .iter()
            .filter(|(_, o)| {
                o.due
                    .is_some_and(|d| now.duration_since(d) >= KEY_PACKAGE_DEBOUNCE)
            })
            .map(|(t, _)| *t)
            .collect();
        for topic in due {
            self.refresh_key_package(topic).await;
        }
        self.evict_due().await;
        self.decay_penalties(now).await;
        self.manage_peers(now).await;
        if now >= self.next_sync {
            self.next_sync = now + self.sync_period;
            self.periodic_sync().await;
        }
        // Announce our certificate on the control topic.
        if now >= self.next_cert_announce && self.peers.values().any(|p| p.org.is_some()) {
            self.next_cert_announce = now + CERT_ANNOUNCE_PERIOD;
            let net = self.network();
            let msg = ControlMessage::Cert(self.me.cert.as_bytes().to_vec()).encode();
            self.send(NetCommand::Publish(
                TopicHash::from_raw(TopicId::control(&net).gossip_name(&net)),
                msg,
            ))
            .await;
        }
    }

    /// The reader nodes a topic's sender key must be sealed to now.
    fn readers_of(&self, topic: &TopicId) -> BTreeSet<AgreementPublicKey> {
        let charter = self.charters.current().charter();
        let Some(rule) = charter.topic(topic) else {
            return BTreeSet::new();
        };
        self.reader_certs(rule, now_ms())
            .map(|c| c.cert().node_agree_pub)
            .collect()
    }

    /// Held certificates of `rule`'s reader nodes that count at `now_ms`: valid then, not
    /// revoked, of a member org.
    fn reader_certs<'a>(
        &'a self,
        rule: &'a TopicRule,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a SignedNodeCert> + 'a {
        let charter = self.charters.current().charter();
        self.certs.all().filter(move |c| {
            rule.readers.contains(&c.cert().org_id)
                && c.valid_at(now_ms)
                && !charter.is_revoked(&c.cert().node_sign_pub)
                && charter.member(&c.cert().org_id).is_some()
        })
    }

    /// Publishes a key package if the topic's reader set changed. A reader that left means
    /// a fresh key and epoch sealed to every reader; readers that were only added get a
    /// package of the same epoch addressed to them alone, so a network of N readers seals
    /// each epoch N times in all rather than once per reader per arrival.
    async fn refresh_key_package(&mut self, topic: TopicId) {
        let readers = self.readers_of(&topic);
        let net = self.network();
        let Some(own) = self.own.get_mut(&topic) else {
            return;
        };
        own.due = None;
        if readers == own.sealed_to {
            return;
        }
        if !own.sealed_to.is_subset(&readers) {
            own.key = SenderKey::generate(own.key.epoch() + 1, &mut OsRng);
            own.sealed_to.clear();
            tracing::info!(
                epoch = own.key.epoch(),
                "reader removed: rotated sender key"
            );
        }
        let recipients: Vec<AgreementPublicKey> =
            readers.difference(&own.sealed_to).copied().collect();
        let (pkg, refused) = KeyPackage::seal(
            &net,
            &topic,
            &self.me.key.public(),
            &own.key,
            &recipients,
            &mut OsRng,
        );
        if !refused.is_empty() {
            tracing::warn!(count = refused.len(), "HPKE refused some reader keys");
        }
        own.sealed_to = readers;
        let key_id = (self.me.key.public(), topic, own.key.epoch());
        let key = own.key.clone();
        self.keys.insert(key_id, key);
        if let Err(e) = self
            .publish_own(topic, Kind::KeyPackage, Tlp::Clear, &pkg.encode(), None)
            .await
        {
            tracing::warn!(error = %e, "cannot publish key package");
        }
    }

    async fn on_request(&mut self, req: Request) {
        match req {
            Request::Publish {
                topic,
                tlp,
                content,
                reply,
            } => {
                let result = self.local_publish(&topic, tlp, content).await;
                match result {
                    Ok((receipt, done)) => {
                        tokio::spawn(async move {
                            let result = match done.await {
                                Ok(Ok(())) => Ok(receipt),
                                Ok(Err(e)) => Err(PublishError::Storage(e)),
                                Err(_) => Err(PublishError::Storage("writer stopped".into())),
                            };
                            let _ = reply.send(result);
                        });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::Topics(reply) => {
                let _ = reply.send(self.topics());
            }
            Request::SubmitCharter { bytes, reply } => {
                let _ = reply.send(self.submit_charter(bytes).await);
            }
        }
    }

    async fn local_publish(
        &mut self,
        name: &str,
        tlp: Tlp,
        content: Content,
    ) -> Result<(Receipt, oneshot::Receiver<Result<(), String>>), PublishError> {
        let charter = self.charters.current().charter().clone();
        let rule = charter
            .topic_by_name(name)
            .ok_or_else(|| PublishError::UnknownTopic(name.into()))?;
        let topic = TopicId::derive(&charter.network_id, name);
        if !rule.publishers.contains(&self.org) {
            return Err(PublishError::Forbidden {
                org: self.org.clone(),
                topic: name.into(),
                version: charter.version,
            });
        }
        if tlp > rule.max_tlp {
            return Err(PublishError::TlpTooHigh {
                tlp,
                max: rule.max_tlp,
                topic: name.into(),
            });
        }
        if !self.may_publish_at_all() {
            return Err(PublishError::CertInvalid);
        }
        content
            .check()
            .map_err(|e| PublishError::Invalid(e.to_string()))?;
        if let Some(original) = content.original() {
            let ok = self
                .alert_origin
                .get(&original)
                .is_some_and(|(o, t)| *o == self.org && *t == topic);
            if !ok {
                return Err(PublishError::NotAuthor(format!(
                    "alert {} is not an alert of {} on {name:?}",
                    original.short(),
                    self.org
                )));
            }
        }
        // Make sure readers hold the current key before the alert goes out.
        if self.own.get(&topic).is_some_and(|o| o.due.is_some()) {
            self.refresh_key_package(topic).await;
        }
        // The alert row commits in the envelope's transaction; the receipt waits for it.
        let (env, done) = self
            .publish_own(
                topic,
                content.kind(),
                tlp,
                &content.encode(),
                Some(&content),
            )
            .await?;
        if content.original().is_none() {
            self.alert_origin
                .insert(env.id(), (self.org.clone(), topic));
        }
        Ok((
            Receipt {
                id: env.id(),
                topic: name.into(),
                seq: env.header().seq,
            },
            done,
        ))
    }

    fn status(&self) -> Status {
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
            evidence: self.evidence.len(),
            chain_gaps: self.chains.gaps(),
            publishing_allowed: self.may_publish_at_all(),
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

    fn topics(&self) -> Vec<TopicInfo> {
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

    /// The data dir (for diagnostics).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }
}

/// History sync (anti-entropy): on admission and periodically, ask peers for what we lack.
impl Core {
    /// Topics we sync with a peer: the control topic and every topic both orgs may read.
    fn sync_topics(&self, peer_org: &OrgId) -> Vec<TopicId> {
        let c = self.charters.current().charter();
        std::iter::once(TopicId::control(&c.network_id))
            .chain(
                c.topics
                    .iter()
                    .filter(|t| t.readers.contains(&self.org) && t.readers.contains(peer_org))
                    .map(|t| TopicId::derive(&c.network_id, &t.name)),
            )
            .collect()
    }

    /// What we hold on a topic, per author.
    fn summary(&self, topic: &TopicId) -> Vec<wire::ChainSummary> {
        self.chains
            .chains
            .iter()
            .filter(|((_, t), _)| t == topic)
            .take(wire::MAX_SYNC_AUTHORS)
            .map(|((author, _), chain)| {
                wire::ChainSummary::from_seqs(*author, chain.keys().copied())
            })
            .collect()
    }

    async fn start_sync(&mut self, peer: PeerId) {
        let Some(org) = self.peers.get(&peer).and_then(|p| p.org.clone()) else {
            return;
        };
        for topic in self.sync_topics(&org) {
            self.request_sync(peer, topic).await;
        }
    }

    async fn request_sync(&mut self, peer: PeerId, topic: TopicId) {
        let rounds = self.sync_rounds.entry((peer, topic)).or_insert(0);
        *rounds += 1;
        let req = wire::Request::Sync(wire::SyncRequest {
            topic,
            have: self.summary(&topic),
        });
        self.request(peer, req.encode(), Outstanding::Sync(topic))
            .await;
    }

    /// Asks again the busy peers whose wait is over.
    async fn retry_busy_syncs(&mut self, now: Instant) {
        if self.sync_retries.is_empty() {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sync_retries)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.sync_retries = later;
        for (_, peer, topic) in due {
            if self.is_admitted(&peer) && self.sync_rounds.contains_key(&(peer, topic)) {
                self.request_sync(peer, topic).await;
            }
        }
    }

    /// Answers a sync request with one bounded page, if the peer's org may read the topic.
    fn serve_sync(
        &mut self,
        peer: PeerId,
        req: &wire::SyncRequest,
    ) -> Result<wire::SyncPage, String> {
        let org = self
            .peers
            .get(&peer)
            .and_then(|p| p.org.clone())
            .ok_or("not admitted")?;
        if !self.sync_topics(&org).contains(&req.topic) {
            return Err("your org may not read this topic".into());
        }
        let have: HashMap<&NodePublicKey, &wire::ChainSummary> = req
            .have
            .iter()
            .take(wire::MAX_SYNC_AUTHORS)
            .map(|s| (&s.author, s))
            .collect();
        let mut wanted: Vec<(NodePublicKey, u64)> = Vec::new();
        let mut more = false;
        'chains: for ((author, topic), chain) in &self.chains.chains {
            if *topic != req.topic {
                continue;
            }
            for seq in chain.keys() {
                if !have.get(author).is_some_and(|s| s.holds(*seq)) {
                    if wanted.len() == wire::MAX_PAGE_ENVELOPES {
                        more = true;
                        break 'chains;
                    }
                    wanted.push((*author, *seq));
                }
            }
        }
        wanted.sort();
        let conn = self.reader.lock().map_err(|_| "database unavailable")?;
        let mut q = conn
            .prepare_cached(
                "SELECT bytes FROM envelopes WHERE author = ?1 AND topic = ?2 AND seq = ?3",
            )
            .map_err(|e| e.to_string())?;
        let mut envelopes = Vec::new();
        let mut bytes_total = 0;
        let mut authors = BTreeSet::new();
        for (author, seq) in wanted {
            let Ok(bytes) = q.query_row(
                rusqlite::params![author.as_bytes(), req.topic.as_bytes(), seq as i64],
                |r| r.get::<_, Vec<u8>>(0),
            ) else {
                continue; // not committed yet: next round
            };
            if bytes_total + bytes.len() > wire::MAX_PAGE_BYTES {
                more = true;
                break;
            }
            bytes_total += bytes.len();
            authors.insert(author);
            envelopes.push(bytes);
        }
        let certs = authors
            .iter()
            .filter_map(|a| self.certs.any_for(a))
            .map(|c| c.as_bytes().to_vec())
            .collect();
        Ok(wire::SyncPage {
            topic: req.topic,
            certs,
            envelopes,
            more,
        })
    }

    /// Validates and stores a page (same validation as gossip, without the rate limit);
    /// asks for the next page while there is progress.
    async fn on_sync_page(&mut self, peer: PeerId, page: wire::SyncPage) {
        let Some(org) = self.peers.get(&peer).and_then(|p| p.org.clone()) else {
            return;
        };
        if !self.sync_topics(&org).contains(&page.topic)
            || !self.sync_rounds.contains_key(&(peer, page.topic))
        {
            return; // unsolicited
        }
        for bytes in page.certs.iter().take(wire::MAX_PAGE_ENVELOPES) {
            if let Ok(cert) = SignedNodeCert::decode(bytes) {
                let _ = self.learn_cert(cert).await;
            }
        }
        let before = self.chains.len;
        for bytes in page.envelopes.iter().take(wire::MAX_PAGE_ENVELOPES) {
            let _ = self
                .on_envelope(bytes, Some(page.topic), Source::Sync)
                .await;
        }
        let progress = self.chains.len > before;
        let rounds = self
            .sync_rounds
            .get(&(peer, page.topic))
            .copied()
            .unwrap_or(0);
        if page.more && progress && rounds < MAX_SYNC_ROUNDS {
            self.request_sync(peer, page.topic).await;
        } else {
            self.sync_rounds.remove(&(peer, page.topic));
            if page.more && !progress {
                tracing::warn!(%peer, "sync peer sends pages without anything new; stopped");
            }
        }
    }

    /// Periodic anti-entropy with a few admitted peers.
    async fn periodic_sync(&mut self) {
        use rand::seq::IteratorRandom;
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.org.is_some())
            .map(|(id, _)| *id)
            .choose_multiple(&mut rand::thread_rng(), SYNC_PEERS_PER_PERIOD);
        for peer in peers {
            // A session that never completed (refused, timed out) is restarted.
            self.sync_rounds.retain(|(p, _), _| *p != peer);
            self.start_sync(peer).await;
        }
    }
}
