//! Transferable proof that an author signed two conflicting envelopes.
//!
//! Wire form: `encode(Evidence)` = two length-prefixed signed envelopes, in canonical
//! order (same seq: smaller id first; consecutive seqs: lower seq first). Anyone can check
//! it with the author's public key alone (the author's cert ties that key to an org).

use crate::codec::{self, DecodeError};
use crate::envelope::SignedEnvelope;
use crate::ids::{EnvelopeId, NodePublicKey, TopicId};
use crate::keys::SignatureError;
use bincode::{Decode, Encode};

/// Two signed envelopes by one author that cannot both be honest.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Evidence {
    /// The first envelope's exact bytes.
    pub first: Vec<u8>,
    /// The second envelope's exact bytes.
    pub second: Vec<u8>,
}

/// The kind of misbehaviour proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Two different envelopes with the same (author, topic, seq).
    Equivocation,
    /// Envelope seq n+1 names a predecessor other than the author's envelope seq n.
    ChainConflict,
}

/// What a verified [`Evidence`] proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proven {
    /// What was done.
    pub misbehaviour: Misbehaviour,
    /// The author who did it.
    pub author: NodePublicKey,
    /// On which topic.
    pub topic: TopicId,
    /// At which seq (the lower one for a chain conflict).
    pub seq: u64,
    /// The two envelope ids.
    pub ids: (EnvelopeId, EnvelopeId),
}

/// Why evidence does not prove anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The evidence or an envelope in it does not decode.
    #[error("evidence does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// An envelope's signature does not verify.
    #[error("an envelope's signature does not verify: {0}")]
    Signature(#[from] SignatureError),
    /// The two envelopes are not by the same author on the same network and topic.
    #[error("envelopes are not by one author on one topic")]
    Unrelated,
    /// The envelopes do not conflict.
    #[error("envelopes do not conflict")]
    NoConflict,
    /// The pair is not in canonical order.
    #[error("envelopes are not in canonical order")]
    NotCanonical,
}

fn conflict(a: &SignedEnvelope, b: &SignedEnvelope) -> Result<(Misbehaviour, bool), EvidenceError> {
    let (ha, hb) = (a.header(), b.header());
    if ha.author != hb.author || ha.topic_id != hb.topic_id || ha.network_id != hb.network_id {
        return Err(EvidenceError::Unrelated);
    }
    if ha.seq == hb.seq {
        if a.id() == b.id() {
            return Err(EvidenceError::NoConflict);
        }
        return Ok((Misbehaviour::Equivocation, a.id() < b.id()));
    }
    let (lo, hi, ordered) = if ha.seq < hb.seq {
        (a, b, true)
    } else {
        (b, a, false)
    };
    if hi.header().seq == lo.header().seq + 1 && hi.header().prev != lo.id() {
        return Ok((Misbehaviour::ChainConflict, ordered));
    }
    Err(EvidenceError::NoConflict)
}

impl Evidence {
    /// Builds canonical evidence from two conflicting envelopes (signatures are assumed
    /// checked by the caller; [`Evidence::verify`] re-checks them).
    pub fn new(a: &SignedEnvelope, b: &SignedEnvelope) -> Result<Self, EvidenceError> {
        let (_, ordered) = conflict(a, b)?;
        let (first, second) = if ordered { (a, b) } else { (b, a) };
        Ok(Self {
            first: first.as_bytes().to_vec(),
            second: second.as_bytes().to_vec(),
        })
    }

    /// Encodes the evidence.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Strictly decodes evidence whose envelopes are at most `max_envelope` bytes each
    /// (the bound `2 × (max_envelope + 8)` saturates, so any `max_envelope` is safe).
    pub fn decode(bytes: &[u8], max_envelope: usize) -> Result<Self, DecodeError> {
        codec::decode_exact(bytes, Self::max_encoded_len(max_envelope))
    }

    /// The largest encoding of evidence whose envelopes are at most `max_envelope` bytes
    /// each: two length-prefixed envelopes, `2 × (max_envelope + 8)`, saturating at
    /// `usize::MAX`.
    pub fn max_encoded_len(max_envelope: usize) -> usize {
        max_envelope.saturating_add(8).saturating_mul(2)
    }

    /// Checks both signatures with `verify_strict` and that the envelopes conflict.
    pub fn verify(&self, max_envelope: usize) -> Result<Proven, EvidenceError> {
        let a = SignedEnvelope::decode(&self.first, max_envelope)?;
        let b = SignedEnvelope::decode(&self.second, max_envelope)?;
        let (misbehaviour, ordered) = conflict(&a, &b)?;
        if !ordered {
            return Err(EvidenceError::NotCanonical);
        }
        a.verify_signature()?;
        b.verify_signature()?;
        Ok(Proven {
            misbehaviour,
            author: a.header().author,
            topic: a.header().topic_id,
            seq: a.header().seq.min(b.header().seq),
            ids: (a.id(), b.id()),
        })
    }
}
