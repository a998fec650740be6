//! Transparency (PROTOCOL.md §19): our own log of authored envelope ids, its signed
//! checkpoints and their cosignatures; witnessing other orgs' logs; split views and
//! withheld envelopes.
//!
//! Memory is O(log n) for our log (its right border) and O(1) per other log (the newest
//! checkpoint held, our witness state, a bounded list of envelope ids not yet proven
//! included). Leaves and subtree hashes live in the store; proofs are read from it by the
//! driver ([`AfterCommit::OfferCheckpoint`]).

use super::state::{AfterCommit, CoreState, InboundId, Outstanding};
use crate::net::RequestTag;
use crate::store::Write;
use crate::store::tlog::LeafRow;
use alertmesh_protocol::tlog::note::{self, Checkpoint, Note, NoteSignature};
use alertmesh_protocol::tlog::{AddCheckpoint, CompactRange, Hash, SplitView, tree};
use alertmesh_protocol::{
    ControlMessage, EnvelopeId, NodePublicKey, OrgId, SignedEnvelope, TopicId,
};
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Witnesses asked per checkpoint at most.
const MAX_WITNESSES: usize = 16;
/// Envelope ids per author awaiting proof of inclusion at most (oldest dropped).
const MAX_UNPROVEN: usize = 1024;
/// An author's add-checkpoint requests are served at most this often.
const MIN_OFFER_INTERVAL: Duration = Duration::from_millis(500);
/// A newer checkpoint of one log is taken from gossip at most this often.
const MIN_GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// How long a new checkpoint of ours waits for cosignatures before it is gossiped anyway.
const COSIGN_WAIT: Duration = Duration::from_secs(3);
/// Withheld envelopes are asked for through sync at most this often.
const WITHHELD_SYNC_PERIOD: Duration = Duration::from_secs(5);
/// How long envelopes a witnessed checkpoint shows may take to arrive by gossip before
/// they are asked for through sync (a checkpoint often outruns the last envelopes it
/// covers).
const WITHHELD_GRACE: Duration = Duration::from_secs(10);
/// Witnesses that have not cosigned our newest checkpoint are asked again this often.
const OFFER_RETRY: Duration = Duration::from_secs(5);

/// The charter's N: a checkpoint at least this often while we publish.
pub(super) fn checkpoint_period(limits: &alertmesh_protocol::Limits) -> Duration {
    Duration::from_millis(limits.checkpoint_period_ms)
}

/// Our newest checkpoint and the cosignatures it gathered.
struct OwnCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
    /// One cosignature per witnessing org.
    cosigs: BTreeMap<OrgId, NoteSignature>,
    /// Gossip it anyway at this time if not witnessed by then.
    gossip_at: Instant,
    gossiped: bool,
    gossiped_witnessed: bool,
}

impl OwnCheckpoint {
    /// The note with as many of its cosignatures as a note may carry: with more witnessing
    /// orgs than fit, every peer would refuse the note as malformed.
    fn note_bytes(&self) -> Vec<u8> {
        let mut note = self.note.clone();
        note.add_signatures_within_limits(self.cosigs.values().cloned());
        note.to_bytes()
    }
}

/// The newest checkpoint we hold of another log.
pub(super) struct Known {
    pub(super) checkpoint: Checkpoint,
    pub(super) note: Vec<u8>,
    pub(super) witnessed: bool,
    at: Instant,
}

/// What we last cosigned of a log.
struct Witnessed {
    size: u64,
    root: Hash,
    note: Vec<u8>,
    last_offer: Option<Instant>,
    /// When we cosigned it (0: before a restart).
    cosigned_ms: u64,
}

/// An envelope received live from an author, not yet proven in its log.
struct Unproven {
    id: EnvelopeId,
    topic: TopicId,
    seq: u64,
    /// A checkpoint came and did not include it: the next one must.
    overdue: bool,
}

/// The transparency state of the core.
#[derive(Default)]
pub(super) struct Transparency {
    range: CompactRange,
    since_checkpoint: u64,
    next_due: Option<Instant>,
    next_offer: Option<Instant>,
    own: Option<OwnCheckpoint>,
    /// The size each witness last cosigned of our log (tlog-witness old size).
    witness_sizes: HashMap<NodePublicKey, u64>,
    /// Witnesses with an add-checkpoint of ours in flight.
    busy: HashSet<NodePublicKey>,
    witnessed: HashMap<NodePublicKey, Witnessed>,
    pub(super) known: HashMap<NodePublicKey, Known>,
    unproven: HashMap<NodePublicKey, VecDeque<Unproven>>,
    pub(super) split_views: HashSet<[u8; 32]>,
    /// Chain heads a witnessed checkpoint claims beyond what we hold: (author, topic) → seq.
    pub(super) claimed: HashMap<(NodePublicKey, TopicId), u64>,
    last_withheld_sync: Option<Instant>,
    /// When to look again at what witnessed checkpoints show that we lack.
    withheld_check_at: Option<Instant>,
    /// Inclusion proofs we ask of each log's author.
    pub(super) proofs: HashMap<NodePublicKey, super::inclusions::AuthorProofs>,
    pub(super) next_inclusion_ask: Option<Instant>,
}

impl Transparency {
    /// The state rebuilt from the store; the first checkpoint is due at `first_due`.
    pub(super) fn load(
        loaded: crate::store::tlog::LoadedTlog,
        network: &alertmesh_protocol::NetworkId,
        now: Instant,
        first_due: Instant,
    ) -> Self {
        let mut t = Self {
            range: loaded.range,
            split_views: loaded.split_views.into_iter().collect(),
            next_due: Some(first_due),
            ..Default::default()
        };
        for (author, size, root, note) in loaded.witnessed {
            t.witnessed.insert(
                author,
                Witnessed {
                    size,
                    root,
                    note,
                    last_offer: None,
                    cosigned_ms: 0,
                },
            );
        }
        for (author, bytes, witnessed) in loaded.checkpoints {
            let Ok(n) = Note::parse(&bytes) else { continue };
            let Ok(checkpoint) = Checkpoint::verify(&n, network) else {
                continue;
            };
            t.known.insert(
                author,
                Known {
                    checkpoint,
                    note: bytes,
                    witnessed,
                    at: now,
                },
            );
        }
        t
    }

    /// Leaves in our log.
    pub(super) fn size(&self) -> u64 {
        self.range.size()
    }

    /// Our newest checkpoint's size and how many orgs cosigned it.
    pub(super) fn own_checkpoint(&self) -> Option<(u64, usize)> {
        self.own
            .as_ref()
            .map(|o| (o.checkpoint.size, o.cosigs.len()))
    }
}

impl CoreState {
    /// The number of cosigning orgs that makes a checkpoint witnessed here.
    pub(super) fn witness_threshold(&self) -> usize {
        self.charters.current().charter().witness_threshold()
    }

    /// Appends an envelope of ours to our log; the write goes in its transaction.
    pub(super) fn log_own(&mut self, env: &SignedEnvelope) -> Write {
        let index = self.tlog.range.size();
        let nodes = self.tlog.range.append(env.id().as_bytes());
        self.tlog.since_checkpoint += 1;
        let h = env.header();
        Write::TlogLeaf(LeafRow {
            index,
            id: env.id(),
            topic: h.topic_id,
            seq: h.seq,
            nodes,
        })
    }

    /// Timers: sign a checkpoint after M envelopes or N seconds, ask witnesses again,
    /// gossip a checkpoint that waited long enough for cosignatures.
    pub(super) fn transparency_tick(&mut self) {
        let now = self.now.instant;
        let signed = self.tlog.own.as_ref().map_or(0, |o| o.checkpoint.size);
        let due = self.tlog.next_due.is_none_or(|d| now >= d);
        let every = self.charters.current().charter().limits.checkpoint_every;
        if self.tlog.size() > signed && (self.tlog.since_checkpoint >= u64::from(every) || due) {
            self.sign_checkpoint();
        }
        if self.tlog.next_offer.is_some_and(|t| now >= t) {
            self.offer_to_witnesses();
        }
        if self
            .tlog
            .own
            .as_ref()
            .is_some_and(|o| !o.gossiped && now >= o.gossip_at)
        {
            self.gossip_own(true);
        }
        self.ask_due_inclusions();
        self.sync_withheld();
    }

    fn sign_checkpoint(&mut self) {
        let now = self.now.instant;
        let me = self.me.key.public();
        let charter = self.charters.current().charter();
        let net = charter.network_id;
        let mut heads: Vec<(TopicId, u64)> = std::iter::once(TopicId::control(&net))
            .chain(
                charter
                    .topics
                    .iter()
                    .map(|t| TopicId::derive(&net, &t.name)),
            )
            .filter_map(|t| self.chains.head(&me, &t).map(|(seq, _)| (t, seq)))
            .collect();
        heads.sort();
        heads.dedup_by_key(|(t, _)| *t);
        let checkpoint = Checkpoint {
            network: net,
            author: me,
            size: self.tlog.range.size(),
            root: self.tlog.range.root(),
            heads,
        };
        let note = checkpoint.sign(&self.me.key);
        let write = Write::Checkpoint {
            author: me,
            size: checkpoint.size,
            note: note.to_bytes(),
            witnessed: false,
            received_ms: self.now.unix_ms,
        };
        self.store(vec![write], AfterCommit::Nothing);
        self.metrics.verdict("tlog", "checkpoint_signed");
        tracing::debug!(size = checkpoint.size, "checkpoint signed");
        self.tlog.own = Some(OwnCheckpoint {
            checkpoint,
            note,
            cosigs: BTreeMap::new(),
            gossip_at: now + COSIGN_WAIT,
            gossiped: false,
            gossiped_witnessed: false,
        });
        self.tlog.since_checkpoint = 0;
        self.tlog.next_due =
            Some(now + checkpoint_period(&self.charters.current().charter().limits));
        self.offer_to_witnesses();
    }

    /// Sends add-checkpoint to admitted peers of other orgs that have not cosigned our
    /// newest checkpoint (the driver adds the proofs read from the store).
    fn offer_to_witnesses(&mut self) {
        self.tlog.next_offer = Some(self.now.instant + OFFER_RETRY);
        // A witness whose request was dropped (it disconnected) may be asked again.
        let in_flight: HashSet<NodePublicKey> = self
            .outstanding
            .values()
            .filter_map(|(_, o)| match o {
                Outstanding::AddCheckpoint { witness, .. } => Some(*witness),
                _ => None,
            })
            .collect();
        self.tlog.busy.retain(|w| in_flight.contains(w));
        let Some(own) = &self.tlog.own else { return };
        let (size, note) = (own.checkpoint.size, own.note.to_bytes());
        let charter = self.charters.current().charter();
        let net = charter.network_id;
        let mut asked = 0;
        let candidates: Vec<(PeerId, OrgId, NodePublicKey)> = self
            .peers
            .iter()
            .filter_map(|(p, s)| Some((*p, s.org.clone()?, s.node?)))
            .filter(|(_, org, _)| *org != self.org)
            .collect();
        for (peer, org, node) in candidates {
            if asked >= MAX_WITNESSES {
                break;
            }
            let old_size = self.tlog.witness_sizes.get(&node).copied().unwrap_or(0);
            if old_size == size || self.tlog.busy.contains(&node) {
                continue;
            }
            let charter = self.charters.current().charter();
            let topics: Vec<TopicId> = std::iter::once(TopicId::control(&net))
                .chain(
                    charter
                        .topics
                        .iter()
                        .filter(|t| t.readers.contains(&org))
                        .map(|t| TopicId::derive(&net, &t.name)),
                )
                .collect();
            self.next_tag += 1;
            let tag = RequestTag(self.next_tag);
            self.outstanding.insert(
                tag,
                (
                    peer,
                    Outstanding::AddCheckpoint {
                        witness: node,
                        size,
                    },
                ),
            );
            self.tlog.busy.insert(node);
            let offer = AfterCommit::OfferCheckpoint {
                peer,
                tag,
                old_size: old_size.min(size),
                size,
                note: note.clone(),
                topics,
            };
            self.store(Vec::new(), offer);
            asked += 1;
        }
    }

    /// Gossips our newest checkpoint with the cosignatures it has (`force`: even if not
    /// witnessed yet).
    fn gossip_own(&mut self, force: bool) {
        let k = self.witness_threshold();
        let Some(own) = self.tlog.own.as_mut() else {
            return;
        };
        let witnessed = own.cosigs.len() >= k;
        if (own.gossiped && !witnessed) || own.gossiped_witnessed || (!witnessed && !force) {
            return;
        }
        own.gossiped = true;
        own.gossiped_witnessed = witnessed;
        let bytes = own.note_bytes();
        let write = Write::Checkpoint {
            author: own.checkpoint.author,
            size: own.checkpoint.size,
            note: bytes.clone(),
            witnessed,
            received_ms: self.now.unix_ms,
        };
        self.store(vec![write], AfterCommit::Nothing);
        if witnessed {
            self.metrics.verdict("tlog", "checkpoint_witnessed");
        }
        self.gossip_control(ControlMessage::Checkpoint(bytes));
    }

    /// A witness answered our add-checkpoint with a cosignature line.
    pub(super) fn on_cosigned(
        &mut self,
        peer: PeerId,
        witness: NodePublicKey,
        size: u64,
        line: &[u8],
    ) {
        self.tlog.busy.remove(&witness);
        let net = self.network();
        let Some(org) = self.peers.get(&peer).and_then(|p| p.org.clone()) else {
            return;
        };
        let Some(own) = self.tlog.own.as_mut() else {
            return;
        };
        let sig = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_suffix('\n'))
            .and_then(|l| NoteSignature::parse_line(l).ok());
        let ok = own.checkpoint.size == size
            && sig.as_ref().is_some_and(|s| {
                note::verify_cosignature(s, &own.note.text, &net, &witness).is_ok()
            });
        let Some(sig) = sig.filter(|_| ok) else {
            if own.checkpoint.size != size {
                // An answer about a checkpoint we have since replaced.
                self.metrics.verdict("ignore", "cosignature_stale");
            } else {
                self.metrics.verdict("reject", "cosignature_bad");
            }
            return;
        };
        own.cosigs.insert(org, sig);
        self.tlog.witness_sizes.insert(witness, size);
        self.metrics.verdict("tlog", "cosignature_received");
        self.gossip_own(false);
    }

    /// A witness last cosigned `size`, not what we assumed: offer again from there.
    pub(super) fn on_witness_conflict(&mut self, witness: NodePublicKey, size: u64) {
        self.tlog.busy.remove(&witness);
        let before = self.tlog.witness_sizes.insert(witness, size);
        let ours = self.tlog.own.as_ref().map_or(0, |o| o.checkpoint.size);
        if size > ours {
            tracing::warn!(witness = %witness.short(), size, ours, "a witness cosigned a larger tree of our log than we have");
            return;
        }
        if before != Some(size) {
            self.offer_to_witnesses();
        }
    }

    /// Our add-checkpoint got no cosignature.
    pub(super) fn on_offer_failed(&mut self, witness: NodePublicKey, reason: &str) {
        self.tlog.busy.remove(&witness);
        tracing::warn!(witness = %witness.short(), %reason, "witness did not cosign our checkpoint");
    }

    /// A log's add-checkpoint: cosign it if it is consistent with what we last cosigned
    /// and includes every envelope of it we hold that is due; the answer waits for the
    /// new witness state to be committed.
    pub(super) fn on_add_checkpoint(
        &mut self,
        peer: PeerId,
        req: AddCheckpoint,
        inbound: InboundId,
    ) {
        use alertmesh_protocol::wire::Response;
        match self.judge_add_checkpoint(peer, &req) {
            Ok((checkpoint, note)) => {
                let author = checkpoint.author;
                let unix_s = self.now.unix_ms / 1000;
                let sig = note::cosign(&note.text, &checkpoint.network, &self.me.key, unix_s);
                let w = self.tlog.witnessed.entry(author).or_insert(Witnessed {
                    size: 0,
                    root: tree::empty_root(),
                    note: Vec::new(),
                    last_offer: None,
                    cosigned_ms: 0,
                });
                w.size = checkpoint.size;
                w.root = checkpoint.root;
                w.note = req.checkpoint.clone();
                w.cosigned_ms = self.now.unix_ms;
                // The inclusion proofs verified against the root we cosign also prove,
                // in an audit export, the place of the envelopes we hold.
                let proofs = Write::Inclusions {
                    author,
                    size: checkpoint.size,
                    note: req.checkpoint.clone(),
                    proofs: req.inclusions,
                    missing: Vec::new(),
                };
                let witnessed = Write::Witnessed {
                    author,
                    size: checkpoint.size,
                    root: checkpoint.root,
                    note: req.checkpoint,
                };
                self.metrics.verdict("tlog", "cosignature_given");
                let response = Response::Cosigned(sig.line().into_bytes()).encode();
                self.store(
                    vec![witnessed, proofs],
                    AfterCommit::Respond { inbound, response },
                );
            }
            Err(Refusal::Conflict(size)) => {
                self.respond(inbound, Response::WitnessConflict { size });
            }
            Err(Refusal::Busy) => {
                self.metrics.verdict("ignore", "checkpoint_rate");
                let retry_after_ms = MIN_OFFER_INTERVAL.as_millis() as u32;
                self.respond(inbound, Response::Busy { retry_after_ms });
            }
            Err(Refusal::Reason(label, text)) => {
                self.metrics.verdict("reject", label);
                tracing::warn!(%peer, reason = %text, "refused to cosign a checkpoint");
                self.respond(inbound, Response::Refused(text));
            }
        }
    }

    fn judge_add_checkpoint(
        &mut self,
        peer: PeerId,
        req: &AddCheckpoint,
    ) -> Result<(Checkpoint, Note), Refusal> {
        let net = self.network();
        let reason = |l: &'static str, t: &str| Refusal::Reason(l, t.to_string());
        let (org, node) = self
            .peers
            .get(&peer)
            .and_then(|p| Some((p.org.clone()?, p.node?)))
            .ok_or_else(|| reason("checkpoint_unadmitted", "not admitted"))?;
        if org == self.org {
            return Err(reason(
                "checkpoint_same_org",
                "a node does not witness its own org",
            ));
        }
        if !req.within_bounds() {
            return Err(reason(
                "checkpoint_oversized",
                "add-checkpoint over its bounds",
            ));
        }
        let now = self.now.instant;
        let w = self.tlog.witnessed.get_mut(&node);
        if let Some(w) = &w
            && w.last_offer
                .is_some_and(|t| now.duration_since(t) < MIN_OFFER_INTERVAL)
        {
            return Err(Refusal::Busy);
        }
        if let Some(w) = w {
            w.last_offer = Some(now);
        }
        let note = Note::parse(&req.checkpoint)
            .map_err(|e| reason("checkpoint_malformed", &e.to_string()))?;
        let cp = Checkpoint::verify(&note, &net)
            .map_err(|e| reason("checkpoint_bad_signature", &e.to_string()))?;
        if cp.author != node {
            return Err(reason(
                "checkpoint_not_senders",
                "checkpoint of another log",
            ));
        }
        let (old_size, old_root, old_note) = self
            .tlog
            .witnessed
            .get(&node)
            .map_or((0, tree::empty_root(), Vec::new()), |w| {
                (w.size, w.root, w.note.clone())
            });
        if req.old_size != old_size {
            return Err(Refusal::Conflict(old_size));
        }
        if cp.size < old_size {
            return Err(reason(
                "checkpoint_rollback",
                "checkpoint smaller than one cosigned",
            ));
        }
        if cp.size == old_size && cp.root != old_root {
            if let Ok(ev) = SplitView::new(old_note, req.checkpoint.clone(), &net) {
                self.record_split_view(ev, true);
            }
            return Err(reason(
                "checkpoint_split_view",
                "same size, another root: split view",
            ));
        }
        tree::verify_consistency(old_size, cp.size, &req.consistency, &old_root, &cp.root)
            .map_err(|e| {
                reason(
                    "checkpoint_inconsistent",
                    &format!("consistency proof: {e}"),
                )
            })?;
        let mut proven = HashSet::new();
        for inc in &req.inclusions {
            tree::verify_inclusion(
                &tree::leaf_hash(inc.id.as_bytes()),
                inc.index,
                cp.size,
                &inc.path,
                &cp.root,
            )
            .map_err(|e| reason("checkpoint_bad_inclusion", &format!("inclusion proof: {e}")))?;
            proven.insert(inc.id);
        }
        let heads: HashMap<TopicId, u64> = cp.heads.iter().copied().collect();
        if let Some(list) = self.tlog.unproven.get(&node) {
            for u in list {
                if proven.contains(&u.id) {
                    if heads.get(&u.topic).is_none_or(|h| *h < u.seq) {
                        return Err(reason(
                            "checkpoint_head_behind",
                            "a head line claims less than an included envelope",
                        ));
                    }
                } else if u.overdue {
                    return Err(reason(
                        "checkpoint_omits_envelope",
                        &format!("checkpoint omits envelope {} it signed", u.id.short()),
                    ));
                }
            }
        }
        if let Some(list) = self.tlog.unproven.get_mut(&node) {
            list.retain(|u| !proven.contains(&u.id));
            for u in list.iter_mut() {
                u.overdue = true;
            }
        }
        Ok((cp, note))
    }

    /// An envelope of another org's node arrived live: its log must include it soon.
    pub(super) fn track_unproven(&mut self, env: &SignedEnvelope) {
        let h = env.header();
        if h.author == self.me.key.public() || self.certs.org_of(&h.author) == Some(&self.org) {
            return;
        }
        // An envelope stamped before our last cosignature of its log may be in that tree
        // already (gossip can lag behind the witness exchange): its place cannot be proven
        // any more, so it is not required (PROTOCOL.md §19.8).
        if self
            .tlog
            .witnessed
            .get(&h.author)
            .is_some_and(|w| h.timestamp_ms <= w.cosigned_ms)
        {
            return;
        }
        let list = self.tlog.unproven.entry(h.author).or_default();
        if list.len() >= MAX_UNPROVEN {
            list.pop_front();
            self.metrics.verdict("ignore", "unproven_dropped");
        }
        list.push_back(Unproven {
            id: env.id(),
            topic: h.topic_id,
            seq: h.seq,
            overdue: false,
        });
    }

    /// A checkpoint from the control topic (or a peer's list): kept if newer, checked
    /// against what we hold of that log; `Ok(true)` if it told us something new.
    pub(super) fn on_checkpoint(&mut self, bytes: &[u8]) -> Result<bool, &'static str> {
        let net = self.network();
        let note = Note::parse(bytes).map_err(|_| "checkpoint_malformed")?;
        let cp = Checkpoint::verify(&note, &net).map_err(|e| match e {
            note::NoteError::ForeignOrigin => "checkpoint_foreign",
            note::NoteError::Unsigned | note::NoteError::BadSignature => "checkpoint_bad_signature",
            _ => "checkpoint_malformed",
        })?;
        let author = cp.author;
        if author == self.me.key.public() {
            return Ok(false);
        }
        let charter = self.charters.current().charter();
        let Some(author_org) = self.certs.org_of(&author).cloned() else {
            return Err("checkpoint_unknown_author");
        };
        let mut orgs = HashSet::new();
        for sig in &note.sigs {
            let Some(w) = note::cosigner_of(sig, &net) else {
                continue;
            };
            let org = self
                .certs
                .org_of(&w)
                .filter(|o| {
                    charter.member(o).is_some() && **o != author_org && !charter.is_revoked(&w)
                })
                .cloned();
            let Some(org) = org else {
                self.metrics.verdict("ignore", "cosignature_of_non_member");
                continue;
            };
            if note::verify_cosignature(sig, &note.text, &net, &w).is_err() {
                self.metrics.verdict("ignore", "cosignature_bad");
                continue;
            }
            orgs.insert(org);
        }
        let witnessed = orgs.len() >= self.witness_threshold();
        // Same size, another root than one we hold or cosigned: a split view.
        let held: Vec<Vec<u8>> = [
            self.tlog
                .known
                .get(&author)
                .filter(|k| k.checkpoint.size == cp.size && k.checkpoint.root != cp.root)
                .map(|k| k.note.clone()),
            self.tlog
                .witnessed
                .get(&author)
                .filter(|w| w.size == cp.size && w.root != cp.root)
                .map(|w| w.note.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(other) = held.into_iter().next() {
            if let Ok(ev) = SplitView::new(other, bytes.to_vec(), &net) {
                self.record_split_view(ev, true);
            }
            return Ok(true);
        }
        let now = self.now.instant;
        let newer = match self.tlog.known.get(&author) {
            None => true,
            Some(k) if cp.size > k.checkpoint.size => {
                if now.duration_since(k.at) < MIN_GOSSIP_INTERVAL && !witnessed {
                    return Err("checkpoint_rate");
                }
                !k.witnessed || witnessed
            }
            Some(k) => cp.size == k.checkpoint.size && witnessed && !k.witnessed,
        };
        if !newer {
            return Ok(false);
        }
        if witnessed {
            let write = Write::Checkpoint {
                author,
                size: cp.size,
                note: bytes.to_vec(),
                witnessed,
                received_ms: self.now.unix_ms,
            };
            self.store(vec![write], AfterCommit::Nothing);
            self.check_withheld(&cp);
        }
        self.tlog.known.insert(
            author,
            Known {
                checkpoint: cp,
                note: bytes.to_vec(),
                witnessed,
                at: now,
            },
        );
        if witnessed {
            self.ask_inclusions(author);
        }
        Ok(true)
    }

    /// A witnessed checkpoint claims chain heads: those beyond what we hold on topics we
    /// read are withheld from us until they arrive; sync asks for them.
    fn check_withheld(&mut self, cp: &Checkpoint) {
        let charter = self.charters.current().charter();
        let net = charter.network_id;
        let readable: HashSet<TopicId> = std::iter::once(TopicId::control(&net))
            .chain(
                charter
                    .topics
                    .iter()
                    .filter(|t| t.readers.contains(&self.org))
                    .map(|t| TopicId::derive(&net, &t.name)),
            )
            .collect();
        let mut missing = false;
        for (topic, seq) in &cp.heads {
            if !readable.contains(topic) {
                continue;
            }
            let held = self.chains.head(&cp.author, topic).map_or(0, |(s, _)| s);
            if held < *seq {
                missing = true;
                self.tlog.claimed.insert((cp.author, *topic), *seq);
            }
        }
        // Gossip usually brings them a moment later: look again after the grace.
        if missing && self.tlog.withheld_check_at.is_none() {
            self.tlog.withheld_check_at = Some(self.now.instant + WITHHELD_GRACE);
        }
    }

    /// Once the grace is over, asks for what witnessed checkpoints still show that we
    /// lack through sync: one peer (an author of it if connected), at most every
    /// [`WITHHELD_SYNC_PERIOD`].
    fn sync_withheld(&mut self) {
        let now = self.now.instant;
        if self.tlog.withheld_check_at.is_none_or(|t| now < t)
            || self
                .tlog
                .last_withheld_sync
                .is_some_and(|t| now.duration_since(t) < WITHHELD_SYNC_PERIOD)
        {
            return;
        }
        self.tlog.withheld_check_at = None;
        let lacking: HashSet<NodePublicKey> = self.lacking().map(|(author, _)| author).collect();
        if lacking.is_empty() {
            return;
        }
        tracing::info!(
            authors = lacking.len(),
            "witnessed checkpoints show envelopes we lack: asking through sync"
        );
        let peer = self
            .peers
            .iter()
            .filter(|(_, p)| p.org.is_some())
            .min_by_key(|(_, p)| !p.node.is_some_and(|n| lacking.contains(&n)))
            .map(|(p, _)| *p);
        if let Some(peer) = peer {
            self.tlog.last_withheld_sync = Some(now);
            self.start_sync(peer);
        }
        // Still lacking after this sync: look again.
        self.tlog.withheld_check_at = Some(now + WITHHELD_GRACE);
    }

    /// Envelopes a witnessed checkpoint shows that we still lack.
    pub(super) fn withheld(&self) -> u64 {
        self.lacking().map(|(_, missing)| missing).sum()
    }

    /// The authors whose chains a witnessed checkpoint shows above what we hold, with
    /// how many envelopes each such chain lacks.
    fn lacking(&self) -> impl Iterator<Item = (NodePublicKey, u64)> + '_ {
        self.tlog
            .claimed
            .iter()
            .filter_map(|((author, topic), seq)| {
                let held = self.chains.head(author, topic).map_or(0, |(s, _)| s);
                (held < *seq).then(|| (*author, seq - held))
            })
    }

    /// Split-view evidence: kept, counted, and told to every member.
    pub(super) fn record_split_view(&mut self, ev: SplitView, gossip: bool) {
        let net = self.network();
        let Ok(proven) = ev.verify(&net) else {
            return;
        };
        let bytes = ev.encode();
        let id = alertmesh_protocol::ids::sha256(&bytes);
        if !self.tlog.split_views.insert(id) {
            return;
        }
        tracing::error!(author = %proven.author.short(), size = proven.size, "SPLIT VIEW: an author signed two checkpoints of one size with different roots; evidence stored");
        self.metrics.split_views.inc();
        let write = Write::SplitView {
            id,
            author: proven.author,
            size: proven.size,
            bytes: bytes.clone(),
            received_ms: self.now.unix_ms,
        };
        self.store(vec![write], AfterCommit::Nothing);
        if gossip {
            self.gossip_control(ControlMessage::SplitView(bytes));
        }
    }

    /// Split-view evidence from the control topic; `Err` names why it is refused.
    pub(super) fn on_split_view(&mut self, bytes: &[u8]) -> Result<bool, &'static str> {
        let ev = SplitView::decode(bytes).map_err(|_| "split_view_malformed")?;
        ev.verify(&self.network())
            .map_err(|_| "split_view_invalid")?;
        let id = alertmesh_protocol::ids::sha256(bytes);
        let new = !self.tlog.split_views.contains(&id);
        self.record_split_view(ev, false);
        Ok(new)
    }

    /// For a peer that asks: the witnessed checkpoints we hold, and the checkpoints we
    /// cosigned ourselves (so peers that were cut off from us compare views).
    pub(super) fn witnessed_checkpoints(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self
            .tlog
            .known
            .values()
            .filter(|k| k.witnessed)
            .map(|k| k.note.clone())
            .chain(self.tlog.witnessed.values().map(|w| w.note.clone()))
            .filter(|n| !n.is_empty())
            .take(alertmesh_protocol::wire::MAX_CHECKPOINTS)
            .collect();
        if let Some(own) = &self.tlog.own
            && own.gossiped
            && out.len() < alertmesh_protocol::wire::MAX_CHECKPOINTS
        {
            out.push(own.note_bytes());
        }
        out
    }

    /// A peer's list of checkpoints.
    pub(super) fn on_checkpoints(&mut self, list: Vec<Vec<u8>>) {
        for bytes in list
            .into_iter()
            .take(alertmesh_protocol::wire::MAX_CHECKPOINTS)
        {
            if let Err(label) = self.on_checkpoint(&bytes) {
                self.metrics.verdict("reject", label);
            }
        }
    }
}

/// Why an add-checkpoint is not cosigned.
enum Refusal {
    /// tlog-witness 409: we last cosigned this size.
    Conflict(u64),
    /// Too soon after the previous one.
    Busy,
    /// Refused: metric label and reason.
    Reason(&'static str, String),
}
