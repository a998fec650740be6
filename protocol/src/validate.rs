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
//! 3. network is ours; topic is in the current charter (or the control topic); the named
//!    charter version is known
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
//! An envelope names the charter version it was published under, and any adopted version
//! may be named. Naming an old version must not restore rights the network has withdrawn
//! since, so the author must be authorized under **both** the named version and the
//! current one: its org a member with a certificate for the node key that is valid at the
//! envelope's timestamp and was verified with the org root key that version lists, the org
//! a publisher on the topic, and the TLP at most the topic's `max_tlp`, in each of the two.
//!
//! The one exception is a *historical* envelope: one whose seq a cut-off in the current
//! charter covers for (author, topic). It is checked against the named version only, so
//! that history sync still admits what the author published before it lost its rights.
//! Cut-offs are thus the only way an envelope that the current rules forbid is admitted.
//!
//! Consequence for governance: a charter change that shrinks an author's rights on a
//! topic (org removed, node key revoked, org dropped from the topic's publishers, the
//! topic's `max_tlp` lowered below what the author used, org root key replaced without
//! re-certifying the org's node keys for the same period) MUST record a cut-off for that
//! author and topic with the last seq the signers accept; otherwise the author's earlier
//! envelopes that the new rules forbid are rejected from then on, e.g. in history sync. A
//! cut-off also ends the author's stream on the topic: every later seq is rejected, so an
//! author that keeps publishing there (e.g. after a lowered `max_tlp`) continues with a
//! new node key.

use crate::certs::{Attribution, CertDirectory};
use crate::chain::{ChainPosition, ChainView, classify};
use crate::charter::{Charter, CharterChain};
use crate::codec::DecodeError;
use crate::envelope::{Kind, SignedEnvelope};
use crate::evidence::Evidence;
use crate::ids::{EnvelopeId, OrgId, TopicId};
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

    /// Applies rules 3–11 to an envelope decoded with [`SignedEnvelope::decode`].
    pub fn validate_decoded<V: ChainView>(
        &mut self,
        ctx: &Context<'_, V>,
        env: SignedEnvelope,
        source: Source,
    ) -> Verdict {
        let current = ctx.charters.current().charter();
        let h = env.header();
        if h.network_id != current.network_id {
            reject!(RejectReason::WrongNetwork);
        }
        let is_control = h.topic_id == TopicId::control(&current.network_id);
        if !is_control && current.topic(&h.topic_id).is_none() {
            reject!(RejectReason::UnknownTopic);
        }
        if h.charter_version > current.version {
            return Verdict::Ignore(IgnoreReason::CharterAhead {
                named: h.charter_version,
                current: current.version,
            });
        }
        let Some(named) = ctx.charters.version(h.charter_version).map(|c| c.charter()) else {
            reject!(RejectReason::UnknownCharterVersion(h.charter_version));
        };

        // 4. the author
        let Standing { org, historical } = match author_standing(ctx, current, named, &env) {
            Ok(standing) => standing,
            Err(verdict) => return verdict,
        };

        // 5–6. publishing rights under the named version and, unless a cut-off admits
        // the envelope, under the current one
        if is_control {
            if h.kind != Kind::Evidence {
                reject!(RejectReason::NotPublisher);
            }
        } else {
            let both = [named, current];
            let authorities = if historical || named.version == current.version {
                &both[..1]
            } else {
                &both[..]
            };
            let mut tlp_ok = true;
            for charter in authorities {
                let Some(rule) = charter.topic(&h.topic_id) else {
                    reject!(RejectReason::NotPublisher);
                };
                if h.kind == Kind::Evidence || !rule.publishers.contains(&org) {
                    reject!(RejectReason::NotPublisher);
                }
                tlp_ok &= h.tlp <= rule.max_tlp;
            }
            if !tlp_ok {
                reject!(RejectReason::TlpTooHigh);
            }
        }

        // 7. signature over the exact received bytes
        if env.verify_signature().is_err() {
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

/// What rule 4 learned about the author.
struct Standing {
    /// The one org its certificates name.
    org: OrgId,
    /// A cut-off in the current charter covers the envelope's seq: it is checked against
    /// the named charter version only.
    historical: bool,
}

/// Rule 4: the author's certificate, attribution, cut-off, revocation and membership.
fn author_standing<V: ChainView>(
    ctx: &Context<'_, V>,
    current: &Charter,
    named: &Charter,
    env: &SignedEnvelope,
) -> Result<Standing, Verdict> {
    let h = env.header();
    let org = match ctx.certs.attribution(&h.author) {
        Attribution::Unknown => return Err(Verdict::Ignore(IgnoreReason::UnknownAuthor)),
        Attribution::Ambiguous => return Err(Verdict::Reject(RejectReason::AmbiguousAuthor)),
        Attribution::Org(org) => org.clone(),
    };
    if ctx
        .certs
        .valid_for(&h.author, named, h.timestamp_ms)
        .is_none()
    {
        return Err(Verdict::Reject(RejectReason::CertNotValid));
    }
    match current.cutoff(&h.author, &h.topic_id) {
        Some(last_seq) if h.seq > last_seq => {
            return Err(Verdict::Reject(RejectReason::BeyondCutoff {
                seq: h.seq,
                last_seq,
            }));
        }
        Some(_) => {
            return Ok(Standing {
                org,
                historical: true,
            });
        }
        None => {}
    }
    if current.is_revoked(&h.author) {
        return Err(Verdict::Reject(RejectReason::CertRevoked));
    }
    if current.member(&org).is_none() {
        return Err(Verdict::Reject(RejectReason::OrgRemoved));
    }
    if named.version != current.version
        && ctx
            .certs
            .valid_for(&h.author, current, h.timestamp_ms)
            .is_none()
    {
        return Err(Verdict::Reject(RejectReason::CertNotValid));
    }
    Ok(Standing {
        org,
        historical: false,
    })
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
