//! What the node holds, without holding it in memory: one head per chain, committed
//! history read from the database ([`History`]), and an overlay of what the core
//! accepted but the writer may not have committed yet.
//!
//! # Memory
//!
//! Memory follows the number of chains (authors × topics), not the number of envelopes.
//! The overlay ([`Unflushed`]) holds chain entries, original alerts and evidence ids from
//! their acceptance until they are seen committed: at each tick the core checks the
//! newest item of the previous tick (the writer commits in queue order, so everything
//! before it is committed, or its transaction failed and the database is the truth).
//! Its hard bound, [`MAX_UNFLUSHED`], is far above what the writer's queue lets the core
//! run ahead ([`crate::store`]'s queue of jobs, one batch in commit, one input's writes):
//! an item pushed out by it is long committed.

use crate::store::{ChainHead, History};
use alertmesh_protocol::chain::{ChainEntry, ChainView};
use alertmesh_protocol::{EnvelopeId, NodePublicKey, OrgId, SignedEnvelope, TopicId};
use std::collections::{HashMap, HashSet, VecDeque};

/// Items kept in the overlay at most (see the module docs).
pub(super) const MAX_UNFLUSHED: usize = 1 << 17;

/// A chain's highest held position and its size.
#[derive(Debug, Clone, Copy)]
struct Head {
    seq: u64,
    entry: ChainEntry,
    held: u64,
}

/// One accepted item the writer may not have committed yet.
#[derive(Debug, Clone, Copy)]
enum Item {
    Entry(NodePublicKey, TopicId, u64),
    Origin(EnvelopeId),
    Evidence([u8; 32]),
}

/// Accepted, maybe uncommitted: read before the database.
#[derive(Default)]
struct Unflushed {
    entries: HashMap<(NodePublicKey, TopicId, u64), ChainEntry>,
    origins: HashMap<EnvelopeId, (OrgId, TopicId)>,
    evidence: HashSet<[u8; 32]>,
    order: VecDeque<Item>,
    /// Items popped so far (the number of `order[0]`).
    popped: u64,
    /// The number of the newest item at the last check.
    mark: Option<u64>,
}

impl Unflushed {
    fn push(&mut self, item: Item) {
        if self.order.len() >= MAX_UNFLUSHED {
            self.pop();
        }
        self.order.push_back(item);
    }

    fn pop(&mut self) {
        let Some(item) = self.order.pop_front() else {
            return;
        };
        self.popped += 1;
        match item {
            Item::Entry(a, t, s) => {
                self.entries.remove(&(a, t, s));
            }
            Item::Origin(id) => {
                self.origins.remove(&id);
            }
            Item::Evidence(id) => {
                self.evidence.remove(&id);
            }
        }
    }
}

/// Held chain positions, alert origins and evidence (see the module docs).
pub(super) struct ChainIndex {
    heads: HashMap<(NodePublicKey, TopicId), Head>,
    unflushed: Unflushed,
    history: Box<dyn History>,
    /// Envelopes held.
    pub(super) len: usize,
    /// Evidence objects held.
    pub(super) evidence: usize,
}

impl ChainView for ChainIndex {
    fn entry(&self, author: &NodePublicKey, topic: &TopicId, seq: u64) -> Option<ChainEntry> {
        let head = self.heads.get(&(*author, *topic))?;
        if seq > head.seq {
            return None;
        }
        if seq == head.seq {
            return Some(head.entry);
        }
        if let Some(e) = self.unflushed.entries.get(&(*author, *topic, seq)) {
            return Some(*e);
        }
        self.history.chain_entry(author, topic, seq)
    }
}

impl ChainIndex {
    /// Committed envelopes of `author` whose place in its log is not proven yet.
    pub(super) fn unproven_ids(&self, author: &NodePublicKey, limit: usize) -> Vec<EnvelopeId> {
        self.history.unproven_ids(author, limit)
    }

    /// The index of what the database holds: its chain heads and evidence count.
    pub(super) fn new(history: Box<dyn History>, heads: &[ChainHead], evidence: u64) -> Self {
        let heads: HashMap<_, _> = heads
            .iter()
            .map(|h| {
                let head = Head {
                    seq: h.seq,
                    entry: h.entry,
                    held: h.held,
                };
                ((h.author, h.topic), head)
            })
            .collect();
        Self {
            len: heads.values().map(|h| h.held as usize).sum(),
            heads,
            unflushed: Unflushed::default(),
            history,
            evidence: evidence as usize,
        }
    }

    /// Records an accepted envelope (its position is not held yet).
    pub(super) fn insert(&mut self, env: &SignedEnvelope) {
        let h = env.header();
        let entry = ChainEntry {
            id: env.id(),
            prev: h.prev,
        };
        let head = self.heads.entry((h.author, h.topic_id)).or_insert(Head {
            seq: h.seq,
            entry,
            held: 0,
        });
        if h.seq >= head.seq {
            head.seq = h.seq;
            head.entry = entry;
        }
        head.held += 1;
        self.len += 1;
        self.unflushed
            .entries
            .insert((h.author, h.topic_id, h.seq), entry);
        self.unflushed
            .push(Item::Entry(h.author, h.topic_id, h.seq));
    }

    /// The highest held seq of a chain and its id.
    pub(super) fn head(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
    ) -> Option<(u64, EnvelopeId)> {
        self.heads
            .get(&(*author, *topic))
            .map(|h| (h.seq, h.entry.id))
    }

    /// Chains with missing entries below their head.
    pub(super) fn gaps(&self) -> usize {
        self.heads.values().filter(|h| h.held != h.seq).count()
    }

    /// The chains of a topic: (author, head seq, whether positions 1..=head are all held).
    pub(super) fn chains_of(&self, topic: &TopicId) -> Vec<(NodePublicKey, u64, bool)> {
        self.heads
            .iter()
            .filter(|((_, t), _)| t == topic)
            .map(|((a, _), h)| (*a, h.seq, h.held == h.seq))
            .collect()
    }

    /// The held seqs of a chain within `from..=to`, ascending, at most `limit`: committed
    /// ones and those accepted since.
    pub(super) fn held_seqs(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Vec<u64> {
        let mut seqs = self.history.held_seqs(author, topic, from, to, limit);
        let recent = self
            .unflushed
            .entries
            .keys()
            .filter(|(a, t, s)| a == author && t == topic && (from..=to).contains(s))
            .map(|(_, _, s)| *s);
        seqs.extend(recent);
        seqs.sort_unstable();
        seqs.dedup();
        seqs.truncate(limit);
        seqs
    }

    /// Only the committed seqs of a chain within `from..=to` (what a sync page can carry).
    pub(super) fn committed_seqs(
        &self,
        author: &NodePublicKey,
        topic: &TopicId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Vec<u64> {
        self.history.held_seqs(author, topic, from, to, limit)
    }

    /// The author org and topic of a held original alert.
    pub(super) fn alert_origin(&self, id: &EnvelopeId) -> Option<(OrgId, TopicId)> {
        match self.unflushed.origins.get(id) {
            Some(origin) => Some(origin.clone()),
            None => self.history.alert_origin(id),
        }
    }

    /// Records a decrypted original alert (its row is being stored).
    pub(super) fn insert_origin(&mut self, id: EnvelopeId, org: OrgId, topic: TopicId) {
        self.unflushed.origins.insert(id, (org, topic));
        self.unflushed.push(Item::Origin(id));
    }

    /// Records an evidence object unless it is held; returns whether it is new.
    pub(super) fn insert_evidence(&mut self, id: [u8; 32]) -> bool {
        if self.unflushed.evidence.contains(&id) || self.history.holds_evidence(&id) {
            return false;
        }
        self.unflushed.evidence.insert(id);
        self.unflushed.push(Item::Evidence(id));
        self.evidence += 1;
        true
    }

    /// Forgets the overlay items seen committed (called every tick; one or two reads):
    /// everything up to the newest item of the previous call once that one is committed,
    /// or up to the newest item now if that one is (items of a failed write are never
    /// committed; the database is the truth for them).
    pub(super) fn forget_committed(&mut self) {
        let history = &*self.history;
        let u = &mut self.unflushed;
        let committed = |u: &Unflushed, number: u64| match u.order[(number - u.popped) as usize] {
            Item::Entry(a, t, s) => history.chain_entry(&a, &t, s).is_some(),
            Item::Origin(id) => history.alert_origin(&id).is_some(),
            Item::Evidence(id) => history.holds_evidence(&id),
        };
        let Some(newest) = (u.popped + u.order.len() as u64).checked_sub(1) else {
            return; // empty
        };
        let through = match u.mark.filter(|m| *m >= u.popped) {
            Some(mark) if committed(u, mark) => Some(mark),
            Some(_) if committed(u, newest) => Some(newest),
            Some(_) => return, // the writer is behind: check the same item next time
            None => None,
        };
        if let Some(through) = through {
            while u.popped <= through && !u.order.is_empty() {
                u.pop();
            }
        }
        u.mark = (!u.order.is_empty()).then(|| u.popped + u.order.len() as u64 - 1);
    }

    /// Items in the overlay.
    #[cfg(test)]
    pub(super) fn unflushed_len(&self) -> usize {
        self.unflushed.order.len()
    }
}
