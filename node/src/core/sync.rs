//! History sync (anti-entropy): on admission and periodically, ask peers for what we lack,
//! page by page; answer their asks with what their org may read.

use super::ingest::Incoming;
use super::state::{AfterCommit, CheckedPage, CoreState, Outstanding, PagePlan};
use alertmesh_protocol::wire;
use alertmesh_protocol::{NodePublicKey, OrgId, SignedNodeCert, Source, TopicId};
use libp2p::PeerId;
use rand::seq::IteratorRandom;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Anti-entropy runs this often unless the config's `sync_interval_ms` says otherwise.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// Peers asked per anti-entropy period.
const SYNC_PEERS_PER_PERIOD: usize = 2;
/// Most pages one sync session may fetch (a peer sending endless pages is cut off).
const MAX_SYNC_ROUNDS: u32 = 10_000;
/// Range reads of the database one sync page plan makes at most.
const MAX_PLAN_READS: usize = 256;

/// The seq ranges within `1..=head` an asker lacks, given what it says it holds (its
/// first [`wire::MAX_SYNC_RANGES`] ranges, in any order).
fn lacking(have: Option<&wire::ChainSummary>, head: u64) -> Vec<(u64, u64)> {
    let mut held: Vec<(u64, u64)> = have
        .map(|s| {
            s.ranges
                .iter()
                .take(wire::MAX_SYNC_RANGES)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    held.sort_unstable();
    let mut out = Vec::new();
    let mut next = 1u64; // the lowest seq not known to be held
    for (a, b) in held {
        if a > b || next > head {
            continue;
        }
        if a > next {
            out.push((next, (a - 1).min(head)));
        }
        next = next.max(b.saturating_add(1));
    }
    if next <= head {
        out.push((next, head));
    }
    out
}

impl CoreState {
    /// Topics we ask a peer of `peer_org` to sync: the control topic and every topic we
    /// read that its org reads or publishes on.
    pub(super) fn sync_topics(&self, peer_org: &OrgId) -> Vec<TopicId> {
        self.shared_topics(&self.org, peer_org)
    }

    /// Topics a peer of `peer_org` may sync from us: the control topic and every topic its
    /// org reads that ours reads or publishes on.
    fn served_topics(&self, peer_org: &OrgId) -> Vec<TopicId> {
        self.shared_topics(peer_org, &self.org)
    }

    /// The control topic and every topic `reader` reads that `holder` reads or publishes
    /// on. A publisher that does not read a topic still holds its own chain there; without
    /// it, an envelope of that chain that no reader got by gossip (a key package sealed
    /// before the readers' meshes formed) would never reach them.
    fn shared_topics(&self, reader: &OrgId, holder: &OrgId) -> Vec<TopicId> {
        let c = self.charters.current().charter();
        std::iter::once(TopicId::control(&c.network_id))
            .chain(
                c.topics
                    .iter()
                    .filter(|t| {
                        t.readers.contains(reader)
                            && (t.readers.contains(holder) || t.publishers.contains(holder))
                    })
                    .map(|t| TopicId::derive(&c.network_id, &t.name)),
            )
            .collect()
    }

    /// What we hold on a topic, per author: one range for a chain without gaps (from its
    /// head), ranges read from the database for the others.
    fn summary(&self, topic: &TopicId) -> Vec<wire::ChainSummary> {
        self.chains
            .chains_of(topic)
            .into_iter()
            .take(wire::MAX_SYNC_AUTHORS)
            .map(|(author, head, whole)| {
                if whole {
                    wire::ChainSummary {
                        author,
                        ranges: vec![(1, head)],
                    }
                } else {
                    self.held_ranges(author, topic, head)
                }
            })
            .collect()
    }

    /// The held ranges of a gapped chain, read in chunks until the summary is full.
    fn held_ranges(&self, author: NodePublicKey, topic: &TopicId, head: u64) -> wire::ChainSummary {
        const CHUNK: usize = 4096;
        let mut summary = wire::ChainSummary {
            author,
            ranges: Vec::new(),
        };
        let mut from = 1;
        while from <= head && summary.ranges.len() <= wire::MAX_SYNC_RANGES {
            let seqs = self.chains.held_seqs(&author, topic, from, head, CHUNK);
            let Some(&last) = seqs.last() else { break };
            for s in seqs {
                match summary.ranges.last_mut() {
                    Some((_, end)) if s == *end + 1 => *end = s,
                    _ => summary.ranges.push((s, s)),
                }
            }
            from = last + 1;
        }
        summary.ranges.truncate(wire::MAX_SYNC_RANGES);
        summary
    }

    pub(super) fn start_sync(&mut self, peer: PeerId) {
        let Some(org) = self.peers.get(&peer).and_then(|p| p.org.clone()) else {
            return;
        };
        for topic in self.sync_topics(&org) {
            self.request_sync(peer, topic);
        }
    }

    fn request_sync(&mut self, peer: PeerId, topic: TopicId) {
        *self.sync_rounds.entry((peer, topic)).or_insert(0) += 1;
        let req = wire::Request::Sync(wire::SyncRequest {
            topic,
            have: self.summary(&topic),
        });
        self.request(peer, req.encode(), Outstanding::Sync(topic));
    }

    /// Asks again the busy peers whose wait is over.
    pub(super) fn retry_busy_syncs(&mut self, now: Instant) {
        if self.sync_retries.is_empty() {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sync_retries)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.sync_retries = later;
        for (_, peer, topic) in due {
            if self.is_admitted(&peer) && self.sync_rounds.contains_key(&(peer, topic)) {
                self.request_sync(peer, topic);
            }
        }
    }

    /// A busy peer asked us to come back later.
    pub(super) fn retry_sync_after(&mut self, peer: PeerId, topic: TopicId, retry_after_ms: u32) {
        let wait = Duration::from_millis(u64::from(retry_after_ms).clamp(10, 10_000));
        self.sync_retries
            .push((self.now.instant + wait, peer, topic));
    }

    /// Plans the answer to a sync request: at most one bounded page of what the asker
    /// lacks, if its org may read the topic.
    pub(super) fn plan_page(
        &self,
        peer: PeerId,
        req: &wire::SyncRequest,
    ) -> Result<PagePlan, String> {
        let org = self
            .peers
            .get(&peer)
            .and_then(|p| p.org.clone())
            .ok_or("not admitted")?;
        if !self.served_topics(&org).contains(&req.topic) {
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
        // Database reads of one plan, at most (a summary can name many small gaps).
        let mut reads = MAX_PLAN_READS;
        'chains: for (author, head, whole) in self.chains.chains_of(&req.topic) {
            for (from, to) in lacking(have.get(&author).copied(), head) {
                let room = wire::MAX_PAGE_ENVELOPES - wanted.len();
                let seqs = if whole {
                    (from..=to).take(room + 1).collect()
                } else if reads > 0 {
                    reads -= 1;
                    self.chains
                        .committed_seqs(&author, &req.topic, from, to, room + 1)
                } else {
                    more = true;
                    break 'chains;
                };
                for seq in seqs {
                    if wanted.len() == wire::MAX_PAGE_ENVELOPES {
                        more = true;
                        break 'chains;
                    }
                    wanted.push((author, seq));
                }
            }
        }
        wanted.sort();
        let certs = wanted
            .iter()
            .filter_map(|(a, _)| Some((*a, self.certs.any_for(a)?.as_bytes().to_vec())))
            .collect();
        Ok(PagePlan {
            topic: req.topic,
            wanted,
            more,
            certs,
        })
    }

    /// A sync page checked by the verification pool, answering our request `what`.
    pub(super) fn on_checked_page(&mut self, peer: PeerId, what: Outstanding, page: CheckedPage) {
        let Outstanding::Sync(_) = what else {
            tracing::debug!("unexpected sync page ignored");
            return;
        };
        let envelopes = page.envelopes.iter().map(Incoming::Checked);
        self.on_sync_page(peer, page.topic, &page.certs, envelopes, page.more);
    }

    /// Validates and stores a page (same validation as gossip, without the rate limit);
    /// asks for the next page while there is progress.
    pub(super) fn on_sync_page<'a>(
        &mut self,
        peer: PeerId,
        topic: TopicId,
        certs: &[Vec<u8>],
        envelopes: impl Iterator<Item = Incoming<'a>>,
        more: bool,
    ) {
        let _span = tracing::debug_span!("sync", topic = %topic.short()).entered();
        let Some(org) = self.peers.get(&peer).and_then(|p| p.org.clone()) else {
            return;
        };
        if !self.sync_topics(&org).contains(&topic)
            || !self.sync_rounds.contains_key(&(peer, topic))
        {
            return; // unsolicited
        }
        for bytes in certs.iter().take(wire::MAX_PAGE_ENVELOPES) {
            if let Ok(cert) = SignedNodeCert::decode(bytes) {
                let _ = self.learn_cert(cert);
            }
        }
        let before = self.chains.len;
        for envelope in envelopes.take(wire::MAX_PAGE_ENVELOPES) {
            let _ = self.on_envelope(envelope, Some(topic), Source::Sync, AfterCommit::Nothing);
        }
        let progress = self.chains.len > before;
        let rounds = self.sync_rounds.get(&(peer, topic)).copied().unwrap_or(0);
        if more && progress && rounds < MAX_SYNC_ROUNDS {
            self.request_sync(peer, topic);
        } else {
            self.sync_rounds.remove(&(peer, topic));
            if more && !progress {
                tracing::warn!(%peer, "sync peer sends pages without anything new; stopped");
            }
        }
    }

    /// Periodic anti-entropy with a few admitted peers.
    pub(super) fn periodic_sync(&mut self) {
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.org.is_some())
            .map(|(id, _)| *id)
            .choose_multiple(&mut self.rng, SYNC_PEERS_PER_PERIOD);
        for peer in peers {
            // A session that never completed (refused, timed out) is restarted.
            self.sync_rounds.retain(|(p, _), _| *p != peer);
            self.start_sync(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have(ranges: &[(u64, u64)]) -> wire::ChainSummary {
        wire::ChainSummary {
            author: NodePublicKey([1; 32]),
            ranges: ranges.to_vec(),
        }
    }

    #[test]
    fn lacking_is_the_complement_of_what_the_asker_holds_up_to_our_head() {
        assert_eq!(lacking(None, 5), vec![(1, 5)]);
        assert_eq!(
            lacking(Some(&have(&[(1, 2), (4, 4)])), 6),
            vec![(3, 3), (5, 6)]
        );
        // Unsorted, overlapping, reversed and beyond-head ranges from an untrusted peer.
        assert_eq!(
            lacking(Some(&have(&[(4, 9), (1, 3), (7, 5)])), 10),
            vec![(10, 10)]
        );
        assert_eq!(lacking(Some(&have(&[(1, u64::MAX)])), 10), vec![]);
        assert_eq!(lacking(Some(&have(&[(3, 20)])), 10), vec![(1, 2)]);
        assert_eq!(lacking(Some(&have(&[])), 0), vec![]);
    }
}
