//! Evidence of equivocation: built from a conflicting envelope and the one we hold, kept,
//! and told to every member on the control topic.

use super::state::{AfterCommit, CoreState, Output};
use crate::store::Write;
use alertmesh_protocol::evidence::Evidence;
use alertmesh_protocol::{Kind, RejectReason, SignedEnvelope, Tlp, TopicId};

impl CoreState {
    /// On equivocation or a chain conflict, asks for the held envelope it conflicts with
    /// (the answer comes back as `Input::Held`).
    pub(super) fn on_conflict(&mut self, reason: &RejectReason, data: &[u8]) {
        let held = match reason {
            RejectReason::Equivocation { existing } => *existing,
            RejectReason::ChainConflict { other } => *other,
            _ => return,
        };
        self.out.push(Output::FetchHeld {
            held,
            conflicting: data.to_vec(),
        });
    }

    /// The held envelope of a conflict: evidence is built, stored and published.
    pub(super) fn on_held(&mut self, held: Option<Vec<u8>>, conflicting: &[u8]) {
        let max = self.max_envelope_bytes();
        let Ok(new) = SignedEnvelope::decode(conflicting, max) else {
            return;
        };
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
        self.store_evidence(&evidence);
        // Tell every member: an evidence envelope on the control topic.
        let control = TopicId::control(&self.network());
        let _ = self.publish_own(
            control,
            Kind::Evidence,
            Tlp::Clear,
            &evidence.encode(),
            None,
            None,
        );
    }

    fn store_evidence(&mut self, evidence: &Evidence) {
        let bytes = evidence.encode();
        let id = alertmesh_protocol::ids::sha256(&bytes);
        let Ok(proven) = evidence.verify(self.max_envelope_bytes()) else {
            return;
        };
        if !self.chains.insert_evidence(id) {
            return;
        }
        tracing::error!(author = %proven.author.short(), seq = proven.seq, kind = ?proven.misbehaviour, "EQUIVOCATION: an author signed conflicting envelopes; evidence stored");
        self.metrics.evidence.inc();
        let write = Write::Evidence {
            id,
            author: proven.author,
            topic: proven.topic,
            seq: proven.seq,
            bytes,
            received_ms: self.now.unix_ms,
        };
        self.store(vec![write], AfterCommit::Nothing);
    }

    /// An evidence envelope another member published.
    pub(super) fn record_evidence_envelope(&mut self, env: &SignedEnvelope) {
        if let Ok(evidence) = Evidence::decode(env.payload(), self.max_envelope_bytes()) {
            self.store_evidence(&evidence);
        }
    }

    fn max_envelope_bytes(&self) -> usize {
        self.charters.current().charter().limits.max_envelope_bytes as usize
    }
}
