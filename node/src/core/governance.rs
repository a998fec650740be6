//! Governance effects inside the core: adopting charters handed in by the operator or
//! gossiped, and applying what a new charter changes (subscriptions, sender keys,
//! connections, our own right to publish).

use super::answers::SubmitError;
use super::state::{AfterCommit, CoreState, Output, OwnTopic};
use crate::net::NetCommand;
use crate::store::Write;
use alertmesh_protocol::charter::CharterError;
use alertmesh_protocol::{CharterUpdate, ControlMessage, SenderKey, SignedCharter, TopicId};
use libp2p::PeerId;
use libp2p::gossipsub::TopicHash;
use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

/// How long a removed or revoked peer stays connected after the charter is adopted.
const EVICTION_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

impl CoreState {
    /// Adopts a charter from the operator and gossips it on the control topic.
    pub(super) fn submit_charter(&mut self, bytes: Vec<u8>) -> Result<u64, SubmitError> {
        let charter =
            SignedCharter::decode(&bytes).map_err(|e| SubmitError::Malformed(e.to_string()))?;
        let version = charter.charter().version;
        match self.offer_charter(charter)? {
            CharterUpdate::Adopted(v) => {
                self.gossip_control(ControlMessage::Charter(bytes));
                Ok(v)
            }
            CharterUpdate::AlreadyKnown => Ok(version),
            CharterUpdate::Fork(fork) => {
                // Every member must see both charters to halt the same way.
                self.gossip_control(ControlMessage::Charter(bytes));
                Err(SubmitError::Fork(fork.version))
            }
        }
    }

    pub(super) fn gossip_control(&mut self, msg: ControlMessage) {
        let net = self.network();
        let topic = TopicHash::from_raw(TopicId::control(&net).gossip_name(&net));
        self.send(NetCommand::Publish(topic, msg.encode()));
    }

    /// Whether this node may publish at all: certificate valid now, not revoked, org a member.
    pub(super) fn may_publish_at_all(&self) -> bool {
        let c = self.charters.current().charter();
        let me = self.me.key.public();
        !c.is_revoked(&me)
            && c.member(&self.org).is_some()
            && self.me.cert.valid_at(self.now.unix_ms)
    }

    /// Subscribes to exactly the topics our org may read (plus control).
    pub(super) fn sync_subscriptions(&mut self) {
        let wanted: HashSet<String> = self.subscriptions().into_iter().collect();
        let join: Vec<String> = wanted.difference(&self.subscribed).cloned().collect();
        let leave: Vec<String> = self.subscribed.difference(&wanted).cloned().collect();
        for topic in join {
            self.send(NetCommand::Subscribe(topic));
        }
        for topic in leave {
            self.send(NetCommand::Unsubscribe(topic));
        }
        self.subscribed = wanted;
    }

    /// Applies a newly adopted charter.
    pub(super) fn apply_charter_effects(&mut self) {
        let c = self.charters.current().charter().clone();
        self.update_topic_map();
        self.validator.retain_members(&c);
        self.sync_subscriptions();

        // Our sender keys follow our publishing rights; a reader that left means a new key
        // (refresh_key_package rotates when the sealed set is not a subset of the readers).
        let may_publish: BTreeSet<TopicId> = c
            .topics
            .iter()
            .filter(|t| t.publishers.contains(&self.org))
            .map(|t| TopicId::derive(&c.network_id, &t.name))
            .collect();
        self.own.retain(|topic, _| may_publish.contains(topic));
        let me = self.me.key.public();
        for topic in may_publish {
            if !self.own.contains_key(&topic) {
                let epoch = 1 + self
                    .keys
                    .keys()
                    .filter(|(a, t, _)| *a == me && *t == topic)
                    .map(|(_, _, e)| *e)
                    .max()
                    .unwrap_or(0);
                self.own.insert(
                    topic,
                    OwnTopic {
                        key: SenderKey::generate(epoch, &mut self.rng),
                        sealed_to: BTreeSet::new(),
                        due: Some(self.now.instant),
                    },
                );
            }
        }
        self.mark_readers_changed();

        // Removed orgs and revoked nodes lose their connections.
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.org.as_ref().is_some_and(|o| c.member(o).is_none())
                    || p.node.as_ref().is_some_and(|n| c.is_revoked(n))
            })
            .map(|(id, _)| *id)
            .collect();
        // After a short grace period, so the charter reaches them first and they learn why.
        let at = self.now.instant + EVICTION_GRACE;
        self.evictions
            .extend(gone.into_iter().map(|peer| (peer, at)));
        if !self.may_publish_at_all() {
            tracing::error!(
                version = c.version,
                "this node's certificate is revoked or its org removed by the charter: it stops publishing"
            );
        }
    }

    /// Closes connections whose eviction is due.
    pub(super) fn evict_due(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .evictions
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(p, _)| *p)
            .collect();
        self.evictions.retain(|(_, at)| *at > now);
        let version = self.charters.current().charter().version;
        for peer in due {
            self.refuse(
                peer,
                &format!("removed or revoked by charter version {version}"),
                None,
            );
        }
    }

    /// Offers a charter from the operator, gossip or a directory; adopts it if it is the
    /// valid next version and applies what it changes.
    pub(super) fn offer_charter(
        &mut self,
        charter: SignedCharter,
    ) -> Result<CharterUpdate, CharterError> {
        let result = self.charters.offer(charter.clone());
        match &result {
            Ok(CharterUpdate::Adopted(version)) => {
                tracing::info!(version, "adopted charter");
                let write = Write::Charter {
                    version: *version,
                    hash: charter.hash().0,
                    bytes: charter.as_bytes().to_vec(),
                };
                self.store(vec![write], AfterCommit::Nothing);
                self.apply_charter_effects();
            }
            Ok(CharterUpdate::Fork(fork)) => {
                // Both charters are kept on disk for the operator.
                self.metrics.charter_forks.inc();
                self.out.push(Output::RecordFork(fork.clone()));
            }
            _ => {}
        }
        result
    }
}
