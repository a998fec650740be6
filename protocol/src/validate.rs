//! Validation of received envelopes: the rules of DESIGN.md §7, in order.
//!
//! Contract: call [`Validator::validate`] with the exact received bytes, the node's view
//! of charters, certificates and chains, and the current time. It returns
//! [`Verdict::Accept`] (store and forward), [`Verdict::Ignore`] (drop without penalty) or
//! [`Verdict::Reject`] (drop and penalize the sender). The validator reads no clock and
//! no RNG; its only state is the per-org rate limiter. Rules, in order:
//!
//! 1. size ≤ the charter's `max_envelope_bytes`
//! 2. strict decode
//! 3. (rules 3–6 are [`crate::policy`]'s) network is ours; topic is in the current
//!    charter (or the control topic); the named charter version is known
//! 4. the author: a certificate is known for its node key (else Ignore); the held
//!    certificates all name one org (else Reject [`RejectReason::AmbiguousAuthor`]); one
//!    of them is valid at the envelope's timestamp under the named version; the seq is not
//!    beyond a cut-off recorded in the current charter. Unless such a cut-off covers the
//!    seq (a *historical* envelope): the node key is not revoked, the org is still a
//!    member, and a certificate is valid at the timestamp under the current version too
//! 5. the author's org may publish the kind on the topic under the named version and,
//!    unless historical, under the current one
//! 6. TLP not above the topic's `max_tlp` under the named version and, unless historical,
//!    under the current one
//! 7. signature (`verify_strict` over the received bytes)
//! 8. clear payloads (key packages, evidence) are well formed
//! 9. timestamp not in the future beyond the allowed skew
//! 10. chain: new → continue; same bytes held → Ignore; conflicting → Reject (evidence)
//! 11. per-org rate limit (gossip only)
//!
//! # Authorization across charter versions
//!
//! Rules 3–6 are [`crate::policy::authorize`]; the module docs there say how the named
//! and the current charter versions combine, and why cut-offs matter to governance.

use crate::batch::Checked;
use crate::certs::CertDirectory;
use crate::chain::{ChainPosition, ChainView, classify};
use crate::charter::{Charter, CharterChain};
use crate::codec::DecodeError;
use crate::envelope::{Kind, SignedEnvelope};
use crate::evidence::Evidence;
use crate::ids::{EnvelopeId, OrgId};
use crate::keys::SignatureError;
use crate::policy::{self, Refusal, Standing};
use crate::ratelimit::RateLimiter;
use crate::sender_key::KeyPackage;

/// The outcome of validating one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and new: store and forward.
    Accept(Box<Accepted>),
    /// Not forwarded, no penalty.
    Ignore(IgnoreReason),
    /// Invalid: not forwarded, the sender is penalized.
    Reject(RejectReason),
}

/// An accepted envelope and what validation learned about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The envelope.
    pub envelope: SignedEnvelope,
    /// The author's org.
    pub org: OrgId,
    /// The author's previous envelope is not held yet.
    pub gap: bool,
}

/// Why an envelope was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreReason {
    /// We already hold exactly this envelope.
    #[error("duplicate")]
    Duplicate,
    /// No certificate is known for the author yet.
    #[error("author's certificate is unknown")]
    UnknownAuthor,
    /// The envelope names a charter version newer than ours.
    #[error("names charter version {named}, we have {current}")]
    CharterAhead {
        /// The version named.
        named: u64,
        /// Our current version.
        current: u64,
    },
    /// The author's org exceeded its rate.
    #[error("org rate limit exceeded")]
    RateLimited,
}

/// Why an envelope was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// Larger than the charter allows.
    #[error("envelope of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Does not decode strictly.
    #[error("malformed: {0}")]
    Malformed(DecodeError),
    /// For another network.
    #[error("wrong network")]
    WrongNetwork,
    /// The topic is not in the charter.
    #[error("unknown topic")]
    UnknownTopic,
    /// The named charter version is zero or unknown.
    #[error("unknown charter version {0}")]
    UnknownCharterVersion(u64),
    /// The certificates held for the author's node key name more than one org, so the
    /// envelope cannot be attributed.
    #[error("author's node key is certified by more than one org")]
    AmbiguousAuthor,
    /// The author's certificate does not cover the timestamp, or its org is not a
    /// member of the named charter (or, unless a cut-off admits the envelope, of the
    /// current one) with the root key that signed the certificate.
    #[error("author has no valid certificate at the envelope's time")]
    CertNotValid,
    /// The author's certificate is revoked.
    #[error("author's certificate is revoked")]
    CertRevoked,
    /// The author's org is no longer a member.
    #[error("author's org is no longer a member")]
    OrgRemoved,
    /// The seq is beyond the cut-off recorded for this author and topic.
    #[error("seq {seq} is beyond the cut-off {last_seq}")]
    BeyondCutoff {
        /// The envelope's seq.
        seq: u64,
        /// The last accepted seq.
        last_seq: u64,
    },
    /// The author's org may not publish this kind on the topic (under the named charter
    /// version or, unless a cut-off admits the envelope, the current one).
    #[error("org may not publish on this topic")]
    NotPublisher,
    /// TLP above the topic's maximum (under the named charter version or, unless a
    /// cut-off admits the envelope, the current one).
    #[error("TLP above the topic's maximum")]
    TlpTooHigh,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A clear payload (key package, evidence) is malformed or inconsistent.
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// The timestamp is too far in the future.
    #[error("timestamp {timestamp_ms} is ahead of now {now_ms} beyond the allowed skew")]
    FromFuture {
        /// The claimed time.
        timestamp_ms: u64,
        /// Our time.
        now_ms: u64,
    },
    /// Another envelope with the same (author, topic, seq) is held: equivocation.
    #[error("equivocation with {existing:?}")]
    Equivocation {
        /// The envelope held.
        existing: EnvelopeId,
    },
    /// The envelope contradicts the held predecessor or successor.
    #[error("chain conflict with {other:?}")]
    ChainConflict {
        /// The held envelope it contradicts.
        other: EnvelopeId,
    },
}

impl IgnoreReason {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            IgnoreReason::Duplicate => "duplicate",
            IgnoreReason::UnknownAuthor => "unknown_author",
            IgnoreReason::CharterAhead { .. } => "charter_ahead",
            IgnoreReason::RateLimited => "rate_limited",
        }
    }
}

impl RejectReason {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RejectReason::TooLarge { .. } => "too_large",
            RejectReason::Malformed(_) => "malformed",
            RejectReason::WrongNetwork => "wrong_network",
            RejectReason::UnknownTopic => "unknown_topic",
            RejectReason::UnknownCharterVersion(_) => "unknown_charter_version",
            RejectReason::AmbiguousAuthor => "ambiguous_author",
            RejectReason::CertNotValid => "cert_not_valid",
            RejectReason::CertRevoked => "cert_revoked",
            RejectReason::OrgRemoved => "org_removed",
            RejectReason::BeyondCutoff { .. } => "beyond_cutoff",
            RejectReason::NotPublisher => "not_publisher",
            RejectReason::TlpTooHigh => "tlp_too_high",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::BadPayload(_) => "bad_payload",
            RejectReason::FromFuture { .. } => "from_future",
            RejectReason::Equivocation { .. } => "equivocation",
            RejectReason::ChainConflict { .. } => "chain_conflict",
        }
    }
}

impl From<Refusal> for Verdict {
    /// The verdict of a refused right (see [`crate::policy`]): the validator folds the
    /// finer refusals to publish into [`RejectReason::NotPublisher`].
    fn from(refusal: Refusal) -> Self {
        let reject = match refusal {
            Refusal::UnknownAuthor => return Verdict::Ignore(IgnoreReason::UnknownAuthor),
            Refusal::CharterAhead { named, current } => {
                return Verdict::Ignore(IgnoreReason::CharterAhead { named, current });
            }
            Refusal::WrongNetwork => RejectReason::WrongNetwork,
            Refusal::UnknownTopic => RejectReason::UnknownTopic,
            Refusal::UnknownCharterVersion { named, .. } => {
                RejectReason::UnknownCharterVersion(named)
            }
            Refusal::TooLarge { len, max, .. } => RejectReason::TooLarge {
                len,
                max: max as usize,
            },
            Refusal::AmbiguousAuthor => RejectReason::AmbiguousAuthor,
            Refusal::NotMember { .. } | Refusal::CertNotValid { .. } => RejectReason::CertNotValid,
            Refusal::CertRevoked => RejectReason::CertRevoked,
            Refusal::OrgRemoved => RejectReason::OrgRemoved,
            Refusal::BeyondCutoff { seq, last_seq, .. } => {
                RejectReason::BeyondCutoff { seq, last_seq }
            }
            Refusal::ControlNotEvidence { .. }
            | Refusal::TopicNotInVersion { .. }
            | Refusal::EvidenceOnDataTopic
            | Refusal::NotPublisher { .. } => RejectReason::NotPublisher,
            Refusal::TlpTooHigh { .. } => RejectReason::TlpTooHigh,
            Refusal::WithdrawnWithoutCutoff { cause, .. } => return (*cause).into(),
        };
        Verdict::Reject(reject)
    }
}

/// Where an envelope came from: gossip is rate limited, history sync is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Live gossip.
    Gossip,
    /// History sync or local import.
    Sync,
}

/// What the validator needs to know about the node's state.
pub struct Context<'a, V: ChainView> {
    /// Adopted charters.
    pub charters: &'a CharterChain,
    /// Known certificates.
    pub certs: &'a CertDirectory,
    /// Held chain positions.
    pub chains: &'a V,
    /// The current time, ms since the Unix epoch.
    pub now_ms: u64,
}

/// Validates envelopes; holds the per-org rate limiter.
#[derive(Debug, Default)]
pub struct Validator {
    limiter: RateLimiter,
}

macro_rules! reject {
    ($reason:expr) => {
        return Verdict::Reject($reason)
    };
}

impl Validator {
    /// A validator with empty rate buckets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies every rule to `bytes` (see the module docs for the order).
    pub fn validate<V: ChainView>(
        &mut self,
        ctx: &Context<'_, V>,
        bytes: &[u8],
        source: Source,
    ) -> Verdict {
        let current = ctx.charters.current().charter();
        let max = current.limits.max_envelope_bytes as usize;
        if bytes.len() > max {
            reject!(RejectReason::TooLarge {
                len: bytes.len(),
                max
            });
        }
        let env = match SignedEnvelope::decode(bytes, max) {
            Ok(env) => env,
            Err(e) => reject!(RejectReason::Malformed(e)),
        };
        self.validate_decoded(ctx, env, source)
    }

    /// Applies every rule to an envelope decoded and signature-checked by a
    /// [`BatchVerifier`](crate::batch::BatchVerifier): the same verdict as
    /// [`Validator::validate`] on its bytes, with rule 7 answered by the check.
    pub fn validate_checked<V: ChainView>(
        &mut self,
        ctx: &Context<'_, V>,
        checked: &Checked,
        source: Source,
    ) -> Verdict {
        let max = ctx.charters.current().charter().limits.max_envelope_bytes as usize;
        match checked.parts() {
            Some((env, _)) if env.as_bytes().len() > max => {
                Verdict::Reject(RejectReason::TooLarge {
                    len: env.as_bytes().len(),
                    max,
                })
            }
            Some((env, signature)) => self.validate_with(ctx, env.clone(), source, Some(signature)),
            None => self.validate(ctx, checked.bytes(), source),
        }
    }

    /// Applies rules 3–11 to an envelope decoded with [`SignedEnvelope::decode`].
    pub fn validate_decoded<V: ChainView>(
        &mut self,
        ctx: &Context<'_, V>,
        env: SignedEnvelope,
        source: Source,
    ) -> Verdict {
        self.validate_with(ctx, env, source, None)
    }

    /// Rules 3–11; rule 7 takes `signature` if it was checked already.
    fn validate_with<V: ChainView>(
        &mut self,
        ctx: &Context<'_, V>,
        env: SignedEnvelope,
        source: Source,
        signature: Option<Result<(), SignatureError>>,
    ) -> Verdict {
        let current = ctx.charters.current().charter();
        let h = env.header();

        // 3–6. the author's rights
        let Standing { org, .. } = match policy::authorize(ctx.charters, ctx.certs, h) {
            Ok(standing) => standing,
            Err(refusal) => return refusal.into(),
        };

        // 7. signature over the exact received bytes
        if signature.unwrap_or_else(|| env.verify_signature()).is_err() {
            reject!(RejectReason::BadSignature);
        }

        // 8. clear payloads
        if let Err(reason) = check_clear_payload(&env, current) {
            reject!(RejectReason::BadPayload(reason));
        }

        // 9. time
        if h.timestamp_ms > ctx.now_ms.saturating_add(current.limits.max_clock_skew_ms) {
            reject!(RejectReason::FromFuture {
                timestamp_ms: h.timestamp_ms,
                now_ms: ctx.now_ms,
            });
        }

        // 10. chain
        let gap = match classify(ctx.chains, h, &env.id()) {
            ChainPosition::New { gap } => gap,
            ChainPosition::Duplicate => return Verdict::Ignore(IgnoreReason::Duplicate),
            ChainPosition::Equivocation { existing } => {
                reject!(RejectReason::Equivocation { existing })
            }
            ChainPosition::PrevMismatch { predecessor } => {
                reject!(RejectReason::ChainConflict { other: predecessor })
            }
            ChainPosition::SuccessorMismatch { successor } => {
                reject!(RejectReason::ChainConflict { other: successor })
            }
        };

        // 11. rate
        if source == Source::Gossip
            && !self.limiter.allow(
                &org,
                ctx.now_ms,
                current.limits.rate_per_org_per_minute,
                current.limits.rate_burst,
            )
        {
            return Verdict::Ignore(IgnoreReason::RateLimited);
        }
        Verdict::Accept(Box::new(Accepted {
            envelope: env,
            org,
            gap,
        }))
    }

    /// Forgets rate state of orgs that are no longer members.
    pub fn retain_members(&mut self, charter: &Charter) {
        self.limiter.retain(|org| charter.member(org).is_some());
    }
}

/// Rule 8: a key package must address its own topic and epoch; evidence must prove a
/// conflict.
fn check_clear_payload(env: &SignedEnvelope, charter: &Charter) -> Result<(), String> {
    let h = env.header();
    match h.kind {
        Kind::KeyPackage => {
            let pkg = KeyPackage::decode(env.payload()).map_err(|e| e.to_string())?;
            if pkg.topic_id != h.topic_id || pkg.epoch != h.key_epoch {
                return Err("key package topic or epoch differs from the header".into());
            }
            Ok(())
        }
        Kind::Evidence => {
            let max = charter.limits.max_envelope_bytes as usize;
            let evidence = Evidence::decode(env.payload(), max).map_err(|e| e.to_string())?;
            evidence.verify(max).map(|_| ()).map_err(|e| e.to_string())
        }
        Kind::Alert | Kind::Update | Kind::Retraction => Ok(()),
    }
}
