//! Ingest: judging gossip and synced envelopes, storing what is accepted, decrypting what
//! we can read, and learning certificates, key packages and charters on the way.

use super::penalty::Offence;
use super::state::{AfterCommit, CheckedGossip, CoreState, MAX_PENDING, MAX_PENDING_BYTES};
use crate::net::{Gossip, NetCommand};
use crate::store::{AlertRow, EnvelopeRow, Write};
use alertmesh_protocol::batch::Checked;
use alertmesh_protocol::cert::CertError;
use alertmesh_protocol::charter::CharterError;
use alertmesh_protocol::wire;
use alertmesh_protocol::{
    CharterUpdate, Content, ControlMessage, KeyPackage, Kind, NodePublicKey, OrgId, RejectReason,
    SignedCharter, SignedEnvelope, SignedNodeCert, Source, TopicId, Verdict,
};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId, TopicHash};

/// How a message was judged, and so what gossipsub is told.
pub(super) enum Judgement {
    /// Accepted and nothing to wait for: `Accept` now.
    Accept,
    /// Accepted and queued for the database: reported from its [`AfterCommit`] once the
    /// row is committed (`Ignore` if the write failed), so nothing is forwarded before it
    /// is on disk.
    Stored,
    /// Dropped without counting against the sender.
    Ignore,
    /// Dropped and counted against the sender (gossipsub's invalid-message penalty, P4).
    Reject,
}

/// A judgement, and whether the message counts against the gossip peer that sent it.
type Judged = (Judgement, Option<Offence>);

/// Whether no honest node would have forwarded an envelope rejected for `reason`: its
/// bytes are broken or forged whatever the relay's charter version, clock or history.
/// Other rejections (equivocation, cut-offs, revocations, clock skew) can reach a node
/// through an honest relay that judged earlier or with another charter, so they are
/// reported as `Ignore` and do not lower the relay's gossipsub score.
fn no_honest_relay_forwards(reason: &RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::TooLarge { .. }
            | RejectReason::Malformed(_)
            | RejectReason::WrongNetwork
            | RejectReason::BadSignature
            | RejectReason::BadPayload(_)
    )
}

/// A received envelope: its bytes, or what the verification pool made of them.
#[derive(Clone, Copy)]
pub(super) enum Incoming<'a> {
    /// As received; the validator decodes it and checks the signature.
    Bytes(&'a [u8]),
    /// Decoded and signature-checked by the verification pool.
    Checked(&'a Checked),
}

impl Incoming<'_> {
    /// The bytes as received.
    fn bytes(&self) -> &[u8] {
        match self {
            Incoming::Bytes(bytes) => bytes,
            Incoming::Checked(checked) => checked.bytes(),
        }
    }
}

impl CoreState {
    pub(super) fn on_gossip(&mut self, msg: Gossip) {
        let Gossip {
            source,
            id,
            topic,
            data,
        } = msg;
        self.judge_gossip(source, id, &topic, Incoming::Bytes(&data));
    }

    /// A gossip message the verification pool checked.
    pub(super) fn on_checked_gossip(&mut self, msg: CheckedGossip) {
        let CheckedGossip {
            source,
            id,
            topic,
            checked,
        } = msg;
        self.judge_gossip(source, id, &topic, Incoming::Checked(&checked));
    }

    fn judge_gossip(
        &mut self,
        source: PeerId,
        id: MessageId,
        topic: &TopicHash,
        data: Incoming<'_>,
    ) {
        let report = |acceptance| NetCommand::Report(id.clone(), source, acceptance);
        // The swarm opens gossip to admitted peers only; this catches a peer refused
        // while its message was queued.
        if !self.is_admitted(&source) {
            self.metrics.verdict("reject", "unadmitted_peer");
            self.send(report(MessageAcceptance::Reject));
            return;
        }
        let Some(topic_id) = self.topic_by_hash.get(topic).copied() else {
            self.metrics.verdict("reject", "unknown_topic");
            self.send(report(MessageAcceptance::Reject));
            return;
        };
        // Forward only after the row is on disk: the caller reports the message to
        // gossipsub once it has committed it.
        let then = AfterCommit::Report {
            message: id.clone(),
            source,
        };
        let (judgement, offence) = if topic_id == TopicId::control(&self.network()) {
            self.on_control(data.bytes(), source, then)
        } else {
            self.on_envelope(data, Some(topic_id), Source::Gossip, then)
        };
        if let Some(offence) = offence {
            self.penalize(source, offence);
        }
        let acceptance = match judgement {
            Judgement::Accept => MessageAcceptance::Accept,
            Judgement::Ignore => MessageAcceptance::Ignore,
            Judgement::Reject => MessageAcceptance::Reject,
            // Reported once the row is on disk (see `then`).
            Judgement::Stored => return,
        };
        self.send(report(acceptance));
    }

    /// Validates an envelope; on accept, stores and processes it (`then` runs once it is
    /// committed).
    pub(super) fn on_envelope(
        &mut self,
        incoming: Incoming<'_>,
        expected_topic: Option<TopicId>,
        source: Source,
        then: AfterCommit,
    ) -> Judged {
        let now = self.now.unix_ms;
        let ctx = alertmesh_protocol::Context {
            charters: &self.charters,
            certs: &self.certs,
            chains: &self.chains,
            now_ms: now,
        };
        let verdict = match incoming {
            Incoming::Bytes(bytes) => self.validator.validate(&ctx, bytes, source),
            Incoming::Checked(checked) => self.validator.validate_checked(&ctx, checked, source),
        };
        let data = incoming.bytes();
        match verdict {
            Verdict::Accept(accepted) => {
                let env = accepted.envelope;
                if expected_topic.is_some_and(|t| t != env.header().topic_id) {
                    self.metrics.verdict("reject", "topic_mismatch");
                    return (Judgement::Reject, Some(Offence::Garbage));
                }
                self.metrics.verdict("accept", "ok");
                if source == Source::Gossip {
                    self.track_unproven(&env);
                }
                self.accept(env, accepted.org, then);
                (Judgement::Stored, None)
            }
            Verdict::Ignore(reason) => {
                let offence = (reason == alertmesh_protocol::IgnoreReason::RateLimited)
                    .then(|| Offence::of(data));
                self.metrics.verdict("ignore", reason.label());
                tracing::debug!(%reason, "ignored envelope");
                (Judgement::Ignore, offence)
            }
            Verdict::Reject(reason) => {
                self.metrics.verdict("reject", reason.label());
                tracing::debug!(%reason, "rejected envelope");
                self.on_conflict(&reason, data);
                let judgement = if no_honest_relay_forwards(&reason) {
                    Judgement::Reject
                } else {
                    Judgement::Ignore
                };
                (judgement, Some(Offence::of(data)))
            }
        }
    }

    /// Stores an accepted envelope and processes its payload.
    fn accept(&mut self, env: SignedEnvelope, org: OrgId, then: AfterCommit) {
        self.chains.insert(&env);
        let h = env.header();
        let kind = h.kind;
        let has_key = self.keys.contains_key(&(h.author, h.topic_id, h.key_epoch));
        // An alert we can read now is stored in the same transaction as its envelope.
        let decrypted = match kind {
            Kind::Alert | Kind::Update | Kind::Retraction if has_key => {
                self.decrypt(&env, &org, true)
            }
            _ => None,
        };
        let mut writes = vec![Write::Envelope(EnvelopeRow {
            envelope: env.clone(),
            received_ms: self.now.unix_ms,
        })];
        // The envelope row goes before any row that refers to it.
        if let Some(row) = decrypted {
            writes.push(Write::Alert(row));
            self.metrics.delivered.inc();
        }
        self.store(writes, then);
        match kind {
            Kind::KeyPackage => {
                if let Some(key_id) = self.learn_key_package(&env) {
                    self.retry_pending(key_id);
                }
            }
            Kind::Evidence => self.record_evidence_envelope(&env),
            Kind::Alert | Kind::Update | Kind::Retraction if !has_key => self.queue_pending(env),
            Kind::Alert | Kind::Update | Kind::Retraction => {}
        }
    }

    pub(super) fn learn_key_package(
        &mut self,
        env: &SignedEnvelope,
    ) -> Option<(NodePublicKey, TopicId, u64)> {
        let pkg = KeyPackage::decode(env.payload()).ok()?;
        let h = env.header();
        let key_id = (h.author, h.topic_id, h.key_epoch);
        if self.keys.contains_key(&key_id) {
            return None;
        }
        let key = pkg
            .open(&h.network_id, &h.author, &self.me.agreement)
            .ok()?;
        self.keys.insert(key_id, key);
        Some(key_id)
    }

    pub(super) fn queue_pending(&mut self, env: SignedEnvelope) {
        let len = env.as_bytes().len();
        if self.pending_len >= MAX_PENDING || self.pending_bytes + len > MAX_PENDING_BYTES {
            return; // still stored; decrypted after a restart or never, but never lost
        }
        self.pending_bytes += len;
        let h = env.header();
        self.pending
            .entry((h.author, h.topic_id, h.key_epoch))
            .or_default()
            .push(env);
        self.pending_len += 1;
        self.metrics.undecryptable.set(self.pending_len as i64);
    }

    /// Decrypts every pending envelope whose key is held now (at start, and when
    /// certificates change).
    pub(super) fn retry_all_pending(&mut self) {
        let ready: Vec<_> = self
            .pending
            .keys()
            .filter(|k| self.keys.contains_key(k))
            .copied()
            .collect();
        for k in ready {
            self.deliver_pending(k, false);
        }
        self.metrics.undecryptable.set(self.pending_len as i64);
    }

    /// Decrypts the envelopes that waited for a key that just arrived.
    fn retry_pending(&mut self, key_id: (NodePublicKey, TopicId, u64)) {
        self.deliver_pending(key_id, true);
        self.metrics.undecryptable.set(self.pending_len as i64);
    }

    fn deliver_pending(&mut self, key_id: (NodePublicKey, TopicId, u64), live: bool) {
        let Some(list) = self.pending.remove(&key_id) else {
            return;
        };
        self.pending_len -= list.len();
        self.pending_bytes -= list.iter().map(|e| e.as_bytes().len()).sum::<usize>();
        for env in list {
            let Some(org) = self.certs.org_of(&env.header().author).cloned() else {
                continue;
            };
            if let Some(row) = self.decrypt(&env, &org, live) {
                self.store(vec![Write::Alert(row)], AfterCommit::Nothing);
                if live {
                    self.metrics.delivered.inc();
                }
            }
        }
    }

    /// Decrypts and checks authorship of amendments; returns the row to store (the writer
    /// announces it once committed). `live` is false for envelopes received before a
    /// restart (no delivery latency is observed for them).
    fn decrypt(&mut self, env: &SignedEnvelope, org: &OrgId, live: bool) -> Option<AlertRow> {
        let h = env.header();
        let key = self.keys.get(&(h.author, h.topic_id, h.key_epoch))?;
        let content = match env.open(key) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(id = %env.id().short(), error = %e, "cannot open an accepted envelope");
                self.metrics.verdict("undecryptable", "bad_content");
                return None;
            }
        };
        if let Some(original) = content.original() {
            let origin = self.chains.alert_origin(&original);
            let ok = origin.as_ref().is_some_and(|(o, t)| {
                alertmesh_protocol::alert::check_amendment(o, t, org, &h.topic_id).is_ok()
            });
            if !ok {
                tracing::warn!(id = %env.id().short(), %org, "amendment of an alert by another org (or unknown original) not applied");
                let reason = if origin.is_some() {
                    "amendment_not_by_author"
                } else {
                    "amendment_unknown_original"
                };
                self.metrics.verdict("reject", reason);
                return None;
            }
        } else {
            self.chains.insert_origin(env.id(), org.clone(), h.topic_id);
        }
        if live && h.author != self.me.key.public() {
            let latency = self.now.unix_ms.saturating_sub(h.timestamp_ms) as f64 / 1000.0;
            self.metrics.delivery_latency.observe(latency);
        }
        Some(self.alert_row(env, org, content))
    }

    pub(super) fn alert_row(
        &self,
        env: &SignedEnvelope,
        org: &OrgId,
        content: Content,
    ) -> AlertRow {
        let h = env.header();
        let topic_name = self
            .charters
            .current()
            .charter()
            .topic(&h.topic_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        AlertRow {
            envelope_id: env.id(),
            topic_name,
            org: org.to_string(),
            tlp: h.tlp,
            timestamp_ms: h.timestamp_ms,
            content,
        }
    }

    /// A control-topic message: a certificate, a charter or a clear envelope.
    fn on_control(&mut self, data: &[u8], source: PeerId, then: AfterCommit) -> Judged {
        let Ok(msg) = ControlMessage::decode(data) else {
            self.metrics.verdict("reject", "malformed_control");
            return (Judgement::Reject, Some(Offence::Garbage));
        };
        let judgement = match msg {
            ControlMessage::Cert(bytes) => self.on_control_cert(&bytes),
            ControlMessage::Charter(bytes) => self.on_control_charter(&bytes, source),
            ControlMessage::Envelope(bytes) => {
                let control = TopicId::control(&self.network());
                let incoming = Incoming::Bytes(&bytes);
                return self.on_envelope(incoming, Some(control), Source::Gossip, then);
            }
            ControlMessage::Checkpoint(bytes) => match self.on_checkpoint(&bytes) {
                Ok(true) => Judgement::Accept,
                Ok(false) => Judgement::Ignore,
                Err(label) => {
                    self.metrics.verdict("reject", label);
                    // Forged or malformed bytes: no honest relay forwards them.
                    let forged = matches!(
                        label,
                        "checkpoint_malformed" | "checkpoint_bad_signature" | "checkpoint_foreign"
                    );
                    return if forged {
                        (Judgement::Reject, Some(Offence::Garbage))
                    } else {
                        (Judgement::Ignore, None)
                    };
                }
            },
            ControlMessage::SplitView(bytes) => match self.on_split_view(&bytes) {
                Ok(true) => Judgement::Accept,
                Ok(false) => Judgement::Ignore,
                Err(label) => {
                    self.metrics.verdict("reject", label);
                    return (Judgement::Reject, Some(Offence::Garbage));
                }
            },
        };
        (judgement, None)
    }

    fn on_control_cert(&mut self, bytes: &[u8]) -> Judgement {
        let Ok(cert) = SignedNodeCert::decode(bytes) else {
            self.metrics.verdict("reject", "malformed_cert");
            return Judgement::Reject;
        };
        // A certificate already held (say, from the author's hello) is forwarded too, or
        // nodes beyond the first hop would only learn it through sync; gossipsub's
        // duplicate cache stops each announcement after one round.
        let held = self
            .charters
            .current()
            .charter()
            .member(&cert.cert().org_id)
            .is_some_and(|m| self.certs.holds_verified(&cert, &m.root_pub));
        match self.learn_cert(cert) {
            Ok(kept) if kept || held => {
                self.metrics.verdict("accept", "cert");
                Judgement::Accept
            }
            Ok(_) => Judgement::Ignore,
            Err(CertError::UnknownOrg(_)) => {
                // Not (or no longer) a member here; a relay may hold another charter.
                self.metrics.verdict("ignore", "cert_of_non_member");
                Judgement::Ignore
            }
            Err(_) => {
                self.metrics.verdict("reject", "bad_cert");
                Judgement::Reject
            }
        }
    }

    fn on_control_charter(&mut self, bytes: &[u8], source: PeerId) -> Judgement {
        let Ok(charter) = SignedCharter::decode(bytes) else {
            self.metrics.verdict("reject", "malformed_charter");
            return Judgement::Reject;
        };
        match self.offer_charter(charter) {
            Ok(CharterUpdate::Adopted(_)) | Ok(CharterUpdate::Fork(_)) => Judgement::Accept,
            Ok(CharterUpdate::AlreadyKnown) => Judgement::Ignore,
            Err(CharterError::MissingPredecessor { .. }) => {
                // We are behind: the source's directory has the versions between.
                let ask = wire::Request::Directory.encode();
                self.request(source, ask, super::state::Outstanding::Directory);
                Judgement::Ignore
            }
            Err(_) => {
                // Signed charters can be refused for the state we are in (a version
                // already passed), so this does not score the relay.
                self.metrics.verdict("reject", "bad_charter");
                Judgement::Ignore
            }
        }
    }

    /// Verifies and keeps a certificate; `Ok(true)` if it is new and kept (then stored,
    /// and key packages are due on the topics its org reads).
    pub(super) fn learn_cert(&mut self, cert: SignedNodeCert) -> Result<bool, CertError> {
        let kept = self
            .certs
            .insert(cert.clone(), self.charters.current().charter())?;
        if kept {
            let write = Write::Cert {
                node: cert.cert().node_sign_pub,
                bytes: cert.as_bytes().to_vec(),
            };
            self.store(vec![write], AfterCommit::Nothing);
            self.mark_reader_org_changed(&cert.cert().org_id);
            self.retry_all_pending();
        }
        Ok(kept)
    }
}
