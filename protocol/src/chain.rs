//! Per-(author, topic) hash chains: each envelope names its predecessor's id, so gaps,
//! reordering and forks are visible to every reader (as in Secure Scuttlebutt).

use crate::envelope::{Header, SignedEnvelope};
use crate::ids::{EnvelopeId, NodePublicKey, TopicId};
use std::collections::{BTreeMap, HashMap};

/// What we hold at one chain position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainEntry {
    /// The envelope's id.
    pub id: EnvelopeId,
    /// The id it names as predecessor.
    pub prev: EnvelopeId,
}

/// Read access to the chain positions a node holds (in memory or in its database).
pub trait ChainView {
    /// The entry held at `(author, topic, seq)`, if any.
    fn entry(&self, author: &NodePublicKey, topic: &TopicId, seq: u64) -> Option<ChainEntry>;
}

/// Where an envelope falls in its author's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainPosition {
    /// Not held yet. `gap` is true when the predecessor is missing too.
    New {
        /// The predecessor (seq − 1) is not held.
        gap: bool,
    },
    /// The identical envelope is already held.
    Duplicate,
    /// A different envelope is held for the same seq: equivocation.
    Equivocation {
        /// The envelope already held.
        existing: EnvelopeId,
    },
    /// The held predecessor's id differs from `prev`: the author signed two histories.
    PrevMismatch {
        /// The predecessor we hold.
        predecessor: EnvelopeId,
    },
    /// The held successor names another predecessor than this envelope.
    SuccessorMismatch {
        /// The successor we hold.
        successor: EnvelopeId,
    },
}

/// Classifies an envelope against what `view` holds.
pub fn classify(view: &impl ChainView, header: &Header, id: &EnvelopeId) -> ChainPosition {
    let (author, topic, seq) = (&header.author, &header.topic_id, header.seq);
    if let Some(held) = view.entry(author, topic, seq) {
        return if &held.id == id {
            ChainPosition::Duplicate
        } else {
            ChainPosition::Equivocation { existing: held.id }
        };
    }
    let predecessor = if seq > 1 {
        view.entry(author, topic, seq - 1)
    } else {
        None
    };
    if let Some(p) = predecessor {
        if p.id != header.prev {
            return ChainPosition::PrevMismatch { predecessor: p.id };
        }
    }
    if let Some(s) = seq
        .checked_add(1)
        .and_then(|next| view.entry(author, topic, next))
    {
        if &s.prev != id {
            return ChainPosition::SuccessorMismatch { successor: s.id };
        }
    }
    ChainPosition::New {
        gap: seq > 1 && predecessor.is_none(),
    }
}

/// An in-memory chain store, for the simulator, tests and auditors.
#[derive(Debug, Default, Clone)]
pub struct MemoryChains {
    chains: HashMap<(NodePublicKey, TopicId), BTreeMap<u64, SignedEnvelope>>,
}

impl ChainView for MemoryChains {
    fn entry(&self, author: &NodePublicKey, topic: &TopicId, seq: u64) -> Option<ChainEntry> {
        self.get(author, topic, seq).map(|e| ChainEntry {
            id: e.id(),
            prev: e.header().prev,
        })
    }
}

impl MemoryChains {
    /// Stores an accepted envelope (replacing nothing: the first one held stays).
    pub fn insert(&mut self, env: SignedEnvelope) {
        let h = env.header();
        self.chains
            .entry((h.author, h.topic_id))
            .or_default()
            .entry(h.seq)
            .or_insert(env);
    }

    /// The envelope held at a position.
    pub fn get(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
        seq: u64,
    ) -> Option<&SignedEnvelope> {
        self.chains.get(&(*author, *topic))?.get(&seq)
    }

    /// The envelope held with this id at the position its header names.
    pub fn find(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
        id: &EnvelopeId,
    ) -> Option<&SignedEnvelope> {
        self.chains
            .get(&(*author, *topic))?
            .values()
            .find(|e| &e.id() == id)
    }

    /// Highest seq held per (author, topic).
    pub fn heads(&self) -> BTreeMap<(NodePublicKey, TopicId), u64> {
        self.chains
            .iter()
            .filter_map(|(k, v)| Some((*k, *v.keys().next_back()?)))
            .collect()
    }

    /// Missing seqs below the head, per (author, topic).
    pub fn gaps(&self) -> BTreeMap<(NodePublicKey, TopicId), Vec<u64>> {
        self.chains
            .iter()
            .filter_map(|(k, v)| {
                let head = *v.keys().next_back()?;
                let missing: Vec<u64> = (1..head).filter(|s| !v.contains_key(s)).collect();
                (!missing.is_empty()).then_some((*k, missing))
            })
            .collect()
    }

    /// Number of envelopes held.
    pub fn len(&self) -> usize {
        self.chains.values().map(BTreeMap::len).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
