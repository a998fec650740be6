//! Publishing: the operator's alerts, and our own key packages and evidence, sealed into
//! our chain on a topic and gossiped once committed; sender keys follow the readers.

use super::answers::PublishError;
use super::state::{AfterCommit, CoreState, ReplyId};
use crate::store::{EnvelopeRow, Write};
use alertmesh_protocol::charter::TopicRule;
use alertmesh_protocol::{
    AgreementPublicKey, Content, ControlMessage, Draft, EnvelopeId, KeyPackage, Kind, OrgId,
    SenderKey, SignedEnvelope, SignedNodeCert, Tlp, TopicId,
};
use libp2p::gossipsub::TopicHash;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Key packages go out this long after the last change of a topic's readers.
const KEY_PACKAGE_DEBOUNCE: Duration = Duration::from_millis(400);

impl CoreState {
    /// The operator's publish: checked against the charter, sealed and stored; answered
    /// with a receipt once committed (through the store's [`AfterCommit`]).
    pub(super) fn local_publish(
        &mut self,
        reply: ReplyId,
        name: &str,
        tlp: Tlp,
        content: Content,
    ) -> Result<(), PublishError> {
        let charter = self.charters.current().charter();
        let rule = charter
            .topic_by_name(name)
            .ok_or_else(|| PublishError::UnknownTopic(name.into()))?;
        let topic = TopicId::derive(&charter.network_id, name);
        if !rule.publishers.contains(&self.org) {
            return Err(PublishError::Forbidden {
                org: self.org.clone(),
                topic: name.into(),
                version: charter.version,
            });
        }
        if tlp > rule.max_tlp {
            return Err(PublishError::TlpTooHigh {
                tlp,
                max: rule.max_tlp,
                topic: name.into(),
            });
        }
        if !self.may_publish_at_all() {
            return Err(PublishError::CertInvalid);
        }
        content
            .check()
            .map_err(|e| PublishError::Invalid(e.to_string()))?;
        if let Some(original) = content.original() {
            let ok = self
                .chains
                .alert_origin(&original)
                .is_some_and(|(o, t)| o == self.org && t == topic);
            if !ok {
                return Err(PublishError::NotAuthor(format!(
                    "alert {} is not an alert of {} on {name:?}",
                    original.short(),
                    self.org
                )));
            }
        }
        // Make sure readers hold the current key before the alert goes out.
        if self.own.get(&topic).is_some_and(|o| o.due.is_some()) {
            self.refresh_key_package(topic);
        }
        // The alert row commits in the envelope's transaction; the receipt waits for it.
        let env = self.publish_own(
            topic,
            content.kind(),
            tlp,
            &content.encode(),
            Some(&content),
            Some(reply),
        )?;
        if content.original().is_none() {
            self.chains.insert_origin(env.id(), self.org.clone(), topic);
        }
        Ok(())
    }

    /// Seals an envelope of ours and stores it (with the row of `alert`, its readable
    /// content, in the same transaction); it is gossiped, and `reply` answered, once
    /// committed, so a restart can never reuse its sequence number.
    pub(super) fn publish_own(
        &mut self,
        topic: TopicId,
        kind: Kind,
        tlp: Tlp,
        payload: &[u8],
        alert: Option<&Content>,
        reply: Option<ReplyId>,
    ) -> Result<SignedEnvelope, PublishError> {
        let me = self.me.key.public();
        let (seq, prev) = self
            .chains
            .head(&me, &topic)
            .map_or((1, EnvelopeId::default()), |(s, id)| (s + 1, id));
        let charter = self.charters.current().charter();
        let draft = Draft {
            network_id: charter.network_id,
            topic_id: topic,
            seq,
            prev,
            charter_version: charter.version,
            timestamp_ms: self.now.unix_ms,
            kind,
            key_epoch: 0,
            tlp,
        };
        let env = if kind.is_encrypted() {
            let own = self
                .own
                .get(&topic)
                .ok_or(PublishError::Invalid("no sender key for topic".into()))?;
            let draft = Draft {
                key_epoch: own.key.epoch(),
                ..draft
            };
            SignedEnvelope::seal_encrypted(&self.me.key, &draft, &own.key, payload, &mut self.rng)
        } else {
            let key_epoch = if kind == Kind::KeyPackage {
                self.own.get(&topic).map_or(0, |o| o.key.epoch())
            } else {
                0
            };
            SignedEnvelope::seal_clear(&self.me.key, &Draft { key_epoch, ..draft }, payload)
        }
        .map_err(|e| PublishError::Invalid(e.to_string()))?;
        self.chains.insert(&env);
        self.metrics.published.inc();
        let net_id = charter.network_id;
        let data = if topic == TopicId::control(&net_id) {
            ControlMessage::Envelope(env.as_bytes().to_vec()).encode()
        } else {
            env.as_bytes().to_vec()
        };
        let receipt = reply.map(|reply| {
            let topic_name = charter.topic(&topic).map(|t| t.name.clone());
            let receipt = super::answers::Receipt {
                id: env.id(),
                topic: topic_name.unwrap_or_default(),
                seq,
            };
            (reply, receipt)
        });
        let then = AfterCommit::Gossip {
            topic: TopicHash::from_raw(topic.gossip_name(&net_id)),
            data,
            receipt,
        };
        let leaf = self.log_own(&env);
        let mut writes = vec![
            Write::Envelope(EnvelopeRow {
                envelope: env.clone(),
                received_ms: self.now.unix_ms,
            }),
            leaf,
        ];
        if let Some(content) = alert {
            writes.push(Write::Alert(self.alert_row(
                &env,
                &self.org,
                content.clone(),
            )));
        }
        self.store(writes, then);
        Ok(env)
    }

    /// Marks a key package due on every topic we publish on.
    pub(super) fn mark_readers_changed(&mut self) {
        let now = self.now.instant;
        for own in self.own.values_mut() {
            own.due = Some(now);
        }
    }

    /// Marks a key package due on our topics that `org` reads (a node of it appeared).
    pub(super) fn mark_reader_org_changed(&mut self, org: &OrgId) {
        let now = self.now.instant;
        let charter = self.charters.current().charter();
        for (topic, own) in &mut self.own {
            if charter
                .topic(topic)
                .is_some_and(|r| r.readers.contains(org))
            {
                own.due = Some(now);
            }
        }
    }

    /// Key packages whose reader set changed at least the debounce ago.
    pub(super) fn refresh_due_key_packages(&mut self, now: Instant) {
        let due: Vec<TopicId> = self
            .own
            .iter()
            .filter(|(_, o)| {
                o.due
                    .is_some_and(|d| now.duration_since(d) >= KEY_PACKAGE_DEBOUNCE)
            })
            .map(|(t, _)| *t)
            .collect();
        for topic in due {
            self.refresh_key_package(topic);
        }
    }

    /// The reader nodes a topic's sender key must be sealed to now.
    fn readers_of(&self, topic: &TopicId) -> BTreeSet<AgreementPublicKey> {
        let charter = self.charters.current().charter();
        let Some(rule) = charter.topic(topic) else {
            return BTreeSet::new();
        };
        self.reader_certs(rule, self.now.unix_ms)
            .map(|c| c.cert().node_agree_pub)
            .collect()
    }

    /// Held certificates of `rule`'s reader nodes that count at `now_ms`: valid then, not
    /// revoked, of a member org.
    pub(super) fn reader_certs<'a>(
        &'a self,
        rule: &'a TopicRule,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a SignedNodeCert> + 'a {
        let charter = self.charters.current().charter();
        self.certs.all().filter(move |c| {
            rule.readers.contains(&c.cert().org_id)
                && c.valid_at(now_ms)
                && !charter.is_revoked(&c.cert().node_sign_pub)
                && charter.member(&c.cert().org_id).is_some()
        })
    }

    /// Publishes a key package if the topic's reader set changed. A reader that left means
    /// a fresh key and epoch sealed to every reader; readers that were only added get a
    /// package of the same epoch addressed to them alone, so a network of N readers seals
    /// each epoch N times in all rather than once per reader per arrival.
    pub(super) fn refresh_key_package(&mut self, topic: TopicId) {
        let readers = self.readers_of(&topic);
        let net = self.network();
        let me = self.me.key.public();
        let Some(own) = self.own.get_mut(&topic) else {
            return;
        };
        own.due = None;
        if readers == own.sealed_to {
            return;
        }
        if !own.sealed_to.is_subset(&readers) {
            own.key = SenderKey::generate(own.key.epoch() + 1, &mut self.rng);
            own.sealed_to.clear();
            tracing::info!(
                epoch = own.key.epoch(),
                "reader removed: rotated sender key"
            );
        }
        let recipients: Vec<AgreementPublicKey> =
            readers.difference(&own.sealed_to).copied().collect();
        let (pkg, refused) =
            KeyPackage::seal(&net, &topic, &me, &own.key, &recipients, &mut self.rng);
        if !refused.is_empty() {
            tracing::warn!(count = refused.len(), "HPKE refused some reader keys");
        }
        own.sealed_to = readers;
        let key_id = (me, topic, own.key.epoch());
        let key = own.key.clone();
        self.keys.insert(key_id, key);
        if let Err(e) = self.publish_own(
            topic,
            Kind::KeyPackage,
            Tlp::Clear,
            &pkg.encode(),
            None,
            None,
        ) {
            tracing::warn!(error = %e, "cannot publish key package");
        }
    }
}
