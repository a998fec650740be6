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

impl CoreState {
    /// Topics we sync with a peer: the control topic and every topic both orgs may read.
    pub(super) fn sync_topics(&self, peer_org: &OrgId) -> Vec<TopicId> {
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
