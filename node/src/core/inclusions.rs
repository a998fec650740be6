//! Inclusion proofs for audit exports (PROTOCOL.md §19.6): we ask each log's author to
//! prove the place of its envelopes we hold in a witnessed checkpoint, verify the proofs
//! against that checkpoint's root and store them; and we answer such requests about our
//! own log from the store.

use super::state::{AfterCommit, CoreState, InboundId, Outstanding};
use crate::store::Write;
use alertmesh_protocol::tlog::{Hash, Inclusion, MAX_INCLUSION_ASK};
use alertmesh_protocol::{EnvelopeId, NodePublicKey, wire};
use libp2p::PeerId;
use std::collections::HashSet;
use std::time::Duration;

/// How often each author is asked about the envelopes of its that reached us since its
/// last witnessed checkpoint.
const INCLUSION_ASK_PERIOD: Duration = Duration::from_secs(10);

/// An inclusion request of ours in flight.
struct Asked {
    size: u64,
    root: Hash,
    note: Vec<u8>,
    ids: Vec<EnvelopeId>,
}

/// What we ask of one log's author.
#[derive(Default)]
pub(super) struct AuthorProofs {
    asked: Option<Asked>,
    /// The checkpoint size an answer last proved nothing new at: not asked again.
    settled: u64,
    /// The checkpoint size whose omissions were last counted against the asked ids
    /// (each checkpoint counts once, however often we ask).
    omissions_counted: u64,
}

impl CoreState {
    /// Every [`INCLUSION_ASK_PERIOD`]: ask each connected author of a witnessed
    /// checkpoint about the envelopes that reached us since.
    pub(super) fn ask_due_inclusions(&mut self) {
        let now = self.now.instant;
        if self.tlog.next_inclusion_ask.is_some_and(|t| now < t) {
            return;
        }
        self.tlog.next_inclusion_ask = Some(now + INCLUSION_ASK_PERIOD);
        let authors: Vec<NodePublicKey> = self.tlog.known.keys().copied().collect();
        for author in authors {
            self.ask_inclusions(author);
        }
    }

    /// If `author` is a connected peer and we hold a witnessed checkpoint of its log,
    /// ask it to prove the place in it of its envelopes we hold and have not proven.
    pub(super) fn ask_inclusions(&mut self, author: NodePublicKey) {
        let Some(known) = self.tlog.known.get(&author).filter(|k| k.witnessed) else {
            return;
        };
        let (size, root) = (known.checkpoint.size, known.checkpoint.root);
        let state = self.tlog.proofs.entry(author).or_default();
        if state.asked.is_some() || state.settled == size {
            return;
        }
        let Some(peer) = self
            .peers
            .iter()
            .find(|(_, p)| p.org.is_some() && p.node == Some(author))
            .map(|(peer, _)| *peer)
        else {
            return;
        };
        let ids = self.chains.unproven_ids(&author, MAX_INCLUSION_ASK);
        if ids.is_empty() {
            return;
        }
        let note = known.note.clone();
        let request = wire::Request::Inclusions {
            size,
            ids: ids.clone(),
        };
        self.tlog.proofs.entry(author).or_default().asked = Some(Asked {
            size,
            root,
            note,
            ids,
        });
        self.request(peer, request.encode(), Outstanding::Inclusions { author });
    }

    /// The author's proofs: kept only if every one is of an id we asked and leads to the
    /// checkpoint's root.
    pub(super) fn on_inclusions(&mut self, author: NodePublicKey, proofs: Vec<Inclusion>) {
        let Some(state) = self.tlog.proofs.get_mut(&author) else {
            return;
        };
        let Some(asked) = state.asked.take() else {
            return;
        };
        if proofs.is_empty() {
            state.settled = asked.size;
        }
        let count_omissions =
            std::mem::replace(&mut state.omissions_counted, asked.size) != asked.size;
        let mut wanted: HashSet<EnvelopeId> = asked.ids.iter().copied().collect();
        for p in &proofs {
            if !wanted.remove(&p.id) {
                self.metrics.verdict("reject", "inclusion_not_asked");
                return;
            }
            if p.verify(asked.size, &asked.root).is_err() {
                tracing::warn!(author = %author.short(), size = asked.size, "an inclusion proof from its author does not verify");
                self.metrics.verdict("reject", "inclusion_bad");
                return;
            }
        }
        self.metrics.verdict("accept", "inclusion");
        let missing: Vec<EnvelopeId> = if count_omissions {
            asked
                .ids
                .into_iter()
                .filter(|id| wanted.contains(id))
                .collect()
        } else {
            Vec::new()
        };
        if proofs.is_empty() && missing.is_empty() {
            return;
        }
        let write = Write::Inclusions {
            author,
            size: asked.size,
            note: asked.note,
            proofs,
            missing,
        };
        self.store(vec![write], AfterCommit::Nothing);
    }

    /// Our inclusion request got no proofs (refused, busy or gone): asked again at the
    /// next period.
    pub(super) fn on_inclusions_failed(&mut self, author: NodePublicKey) {
        if let Some(state) = self.tlog.proofs.get_mut(&author) {
            state.asked = None;
        }
    }

    /// A peer asks where envelopes of ours are in our log of `size` leaves.
    pub(super) fn on_inclusions_request(
        &mut self,
        inbound: InboundId,
        peer: PeerId,
        size: u64,
        ids: Vec<EnvelopeId>,
    ) {
        let refusal = if ids.len() > MAX_INCLUSION_ASK {
            Some(("inclusions_too_many", "too many ids"))
        } else if size == 0 || size > self.tlog.size() {
            Some(("inclusions_size", "no checkpoint of that size"))
        } else {
            None
        };
        if let Some((label, reason)) = refusal {
            tracing::debug!(%peer, size, reason, "inclusion request refused");
            self.metrics.verdict("reject", label);
            self.respond(inbound, wire::Response::Refused(reason.into()));
            return;
        }
        self.store(
            Vec::new(),
            AfterCommit::ServeInclusions { inbound, size, ids },
        );
    }
}
