//! Governance effects inside the core: adopting charters handed in by the operator or
//! gossiped, and applying what a new charter changes (subscriptions, sender keys,
//! connections, our own right to publish).

use super::{Core, OwnTopic};
use crate::net::NetCommand;
use alertmesh_protocol::charter::{CharterError, CharterFork};
use alertmesh_protocol::{CharterUpdate, ControlMessage, SenderKey, SignedCharter, TopicId};
use libp2p::PeerId;
use libp2p::gossipsub::TopicHash;
use rand::rngs::OsRng;
use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

/// How long a removed or revoked peer stays connected after the charter is adopted.
const EVICTION_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// Why a submitted charter was not adopted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// It does not decode.
    #[error("not a signed charter: {0}")]
    Malformed(String),
    /// It is not a valid next version (too few signatures, wrong prev_hash, ...).
    #[error("charter refused: {0}")]
    Refused(#[from] CharterError),
    /// It conflicts with another valid charter of the same version.
    #[error(
        "governance fork at version {0}: two valid charters with the same version; neither is adopted"
    )]
    Fork(u64),
}

impl Core {
    /// Adopts a charter from the operator and gossips it on the control topic.
    pub(super) async fn submit_charter(&mut self, bytes: Vec<u8>) -> Result<u64, SubmitError> {
        let charter =
            SignedCharter::decode(&bytes).map_err(|e| SubmitError::Malformed(e.to_string()))?;
        let version = charter.charter().version;
        match self.offer_charter(charter).await? {
            CharterUpdate::Adopted(v) => {
                self.gossip_control(ControlMessage::Charter(bytes)).await;
                Ok(v)
            }
            CharterUpdate::AlreadyKnown => Ok(version),
            CharterUpdate::Fork(fork) => {
                // Every member must see both charters to halt the same way.
                self.gossip_control(ControlMessage::Charter(bytes)).await;
                Err(SubmitError::Fork(fork.version))
            }
        }
    }

    pub(super) async fn gossip_control(&self, msg: ControlMessage) {
        let net = self.network();
        let topic = TopicHash::from_raw(TopicId::control(&net).gossip_name(&net));
        self.send(NetCommand::Publish(topic, msg.encode())).await;
    }

    /// Whether this node may publish at all: certificate valid now, not revoked, org a member.
    pub(super) fn may_publish_at_all(&self) -> bool {
        let c = self.charters.current().charter();
        let me = self.me.key.public();
        !c.is_revoked(&me)
            && c.member(&self.org).is_some()
            && self.me.cert.valid_at(super::now_ms())
    }

    /// Subscribes to exactly the topics our org may read (plus control).
    pub(super) async fn sync_subscriptions(&mut self) {
        let wanted: HashSet<String> = self.subscriptions().into_iter().collect();
        for topic in wanted.difference(&self.subscribed) {
            self.send(NetCommand::Subscribe(topic.clone())).await;
        }
        for topic in self.subscribed.difference(&wanted) {
            self.send(NetCommand::Unsubscribe(topic.clone())).await;
        }
        self.subscribed = wanted;
    }

    /// Applies a newly adopted charter.
    pub(super) async fn apply_charter_effects(&mut self) {
        let c = self.charters.current().charter().clone();
        self.update_topic_map();
        self.validator.retain_members(&c);
        self.sync_subscriptions().await;

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
                        key: SenderKey::generate(epoch, &mut OsRng),
                        sealed_to: BTreeSet::new(),
                        due: Some(Instant::now()),
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
        let at = Instant::now() + EVICTION_GRACE;
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
    pub(super) async fn evict_due(&mut self) {
        let now = Instant::now();
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
            )
            .await;
        }
    }

    /// Keeps both charters of a fork on disk as evidence for the operator.
    pub(super) fn record_fork(&mut self, fork: &CharterFork) {
        self.metrics.charter_forks.inc();
        let dir = self.data_dir.join("charter-forks");
        let result = std::fs::create_dir_all(&dir).and_then(|()| {
            for c in [&fork.first, &fork.second] {
                std::fs::write(
                    dir.join(format!("v{}-{}.bin", fork.version, c.hash())),
                    c.as_bytes(),
                )?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot store governance fork evidence");
        }
        tracing::error!(
            version = fork.version,
            first = %fork.first.hash(),
            second = %fork.second.hash(),
            dir = %dir.display(),
            "GOVERNANCE FORK: two valid charters with the same version; neither is adopted"
        );
    }
}
