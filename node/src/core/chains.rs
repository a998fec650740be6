//! Held chain positions, in memory (rebuilt from the database at start).

use alertmesh_protocol::chain::{ChainEntry, ChainView};
use alertmesh_protocol::{EnvelopeId, NodePublicKey, SignedEnvelope, TopicId};
use std::collections::{BTreeMap, HashMap};

/// Every held envelope's chain position, per (author, topic).
#[derive(Default)]
pub(super) struct ChainIndex {
    pub(super) chains: HashMap<(NodePublicKey, TopicId), BTreeMap<u64, ChainEntry>>,
    pub(super) len: usize,
}

impl ChainView for ChainIndex {
    fn entry(&self, author: &NodePublicKey, topic: &TopicId, seq: u64) -> Option<ChainEntry> {
        self.chains.get(&(*author, *topic))?.get(&seq).copied()
    }
}

impl ChainIndex {
    pub(super) fn insert(&mut self, env: &SignedEnvelope) {
        let h = env.header();
        let chain = self.chains.entry((h.author, h.topic_id)).or_default();
        let entry = ChainEntry {
            id: env.id(),
            prev: h.prev,
        };
        if chain.insert(h.seq, entry).is_none() {
            self.len += 1;
        }
    }

    /// The highest held seq of a chain and its id.
    pub(super) fn head(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
    ) -> Option<(u64, EnvelopeId)> {
        self.chains
            .get(&(*author, *topic))?
            .last_key_value()
            .map(|(s, e)| (*s, e.id))
    }

    /// Chains with missing entries below their head.
    pub(super) fn gaps(&self) -> usize {
        self.chains
            .values()
            .filter(|c| {
                c.last_key_value()
                    .is_some_and(|(head, _)| *head as usize != c.len())
            })
            .count()
    }
}
