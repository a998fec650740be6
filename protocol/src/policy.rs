//! The rights rules: who may publish what, where, under which charter version
//! (validation rules 3–6 of [`crate::validate`], PROTOCOL.md §18.5).
//!
//! One set of rules, read two ways:
//!
//! - [`authorize`], the validator's reading: the first [`Refusal`] in rule order, or the
//!   author's [`Standing`]. [`crate::validate`] maps the refusal to its verdict.
//! - [`review`], the auditor's reading: every refusal under the named charter version,
//!   and whether the current version withdrew the right without a cut-off.
//!   [`crate::audit`] reports each as a finding with [`Refusal::code`] and the refusal's
//!   words ([`std::fmt::Display`]).
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
//!
//! # Where the two readings differ
//!
//! They ask different questions (may a node accept this envelope now? was this log
//! written by authorized authors?), so they differ on purpose:
//!
//! - The validator stops at the first refusal; the audit reports them all.
//! - The validator requires the topic in the current charter ([`Refusal::UnknownTopic`])
//!   and ignores an envelope naming a version ahead of its own
//!   ([`Refusal::CharterAhead`]); the audit requires the topic in the named version
//!   ([`Refusal::TopicNotInVersion`]) and reports any version the log does not establish
//!   as [`Refusal::UnknownCharterVersion`].
//! - An unknown author is ignored by the validator (its certificate may come later) and a
//!   problem in the audit (the log must hold it).
//! - The audit also checks the size against the named version's limit
//!   ([`Refusal::TooLarge`]); the validator checks the current one's before decoding.
//! - Unless a cut-off makes the envelope historical, the validator requires the rights
//!   under the current version too and refuses with the specific reason
//!   ([`Refusal::CertRevoked`], [`Refusal::OrgRemoved`], a certificate not valid under the
//!   current version's root, not a publisher, TLP too high). The audit reports that only
//!   as a note, [`Refusal::WithdrawnWithoutCutoff`], and only when the named version is
//!   not the current one; it does not re-check the certificate against the current
//!   version's root, nor the kind (an evidence envelope on a data topic is already
//!   reported under the named version), nor an envelope beyond its cut-off (already
//!   [`Refusal::BeyondCutoff`]). So an envelope that names the current version, by a node
//!   key that version revokes, is refused by the validator and passes the audit's rights
//!   checks.
//! - Among several refusals to publish, the validator reports a missing right to publish
//!   (under either version) before a TLP above the maximum.

use crate::alert::Tlp;
use crate::certs::{Attribution, CertDirectory};
use crate::charter::{Charter, CharterChain};
use crate::envelope::{Header, Kind};
use crate::ids::{NodePublicKey, OrgId, TopicId};

/// The certificates a reading may consult.
pub trait Certificates {
    /// Which org the held certificates attribute `node` to.
    fn attribution(&self, node: &NodePublicKey) -> Attribution<'_>;

    /// Whether a certificate for `node`, verified with the root key `charter` lists for
    /// its org, covers `time_ms`.
    fn certified(&self, node: &NodePublicKey, charter: &Charter, time_ms: u64) -> bool;
}

impl Certificates for CertDirectory {
    fn attribution(&self, node: &NodePublicKey) -> Attribution<'_> {
        CertDirectory::attribution(self, node)
    }

    fn certified(&self, node: &NodePublicKey, charter: &Charter, time_ms: u64) -> bool {
        self.valid_for(node, charter, time_ms).is_some()
    }
}

/// Why the charter refuses an envelope. The words are those of an audit finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// For another network.
    #[error("the envelope names another network")]
    WrongNetwork,
    /// The topic is not in the current charter (validator only).
    #[error("the topic is not in the current charter")]
    UnknownTopic,
    /// Names a charter version newer than the current one (validator only).
    #[error("names charter version {named}, we have {current}")]
    CharterAhead {
        /// The version named.
        named: u64,
        /// The current version.
        current: u64,
    },
    /// Names a charter version that is zero or not adopted.
    #[error(
        "names charter version {named}, which the log does not establish (adopted: 1..{current})"
    )]
    UnknownCharterVersion {
        /// The version named.
        named: u64,
        /// The current version.
        current: u64,
    },
    /// Larger than the named version allows (audit only).
    #[error("{len} bytes, over the {max}-byte limit of charter version {version}")]
    TooLarge {
        /// The envelope's size.
        len: usize,
        /// The limit.
        max: u32,
        /// The version whose limit it is.
        version: u64,
    },
    /// No certificate is held for the author.
    #[error("no valid certificate in the log names the author's node key")]
    UnknownAuthor,
    /// The held certificates for the author name more than one org.
    #[error("the author's node key is certified by more than one org")]
    AmbiguousAuthor,
    /// The author's org is not a member of a charter version it must be a member of.
    #[error("org {org} is not a member of charter version {version}")]
    NotMember {
        /// The author's org.
        org: OrgId,
        /// The version.
        version: u64,
    },
    /// No certificate of the author under the org root a version lists covers the
    /// envelope's timestamp.
    #[error(
        "no certificate of the author under org {org}'s root in version {version} covers the timestamp {timestamp_ms}"
    )]
    CertNotValid {
        /// The author's org.
        org: OrgId,
        /// The version.
        version: u64,
        /// The envelope's timestamp.
        timestamp_ms: u64,
    },
    /// The current charter revokes the author's node key.
    #[error("the author's node key is revoked")]
    CertRevoked,
    /// The author's org is not a member of the current charter.
    #[error("the author's org is no longer a member")]
    OrgRemoved,
    /// The seq is beyond the cut-off the current charter records for author and topic.
    #[error("seq {seq} is beyond the cut-off {last_seq} that charter version {version} records")]
    BeyondCutoff {
        /// The envelope's seq.
        seq: u64,
        /// The last seq accepted.
        last_seq: u64,
        /// The current version.
        version: u64,
    },
    /// A kind other than evidence on the control topic.
    #[error("a {} envelope on the control topic", kind.as_str())]
    ControlNotEvidence {
        /// The envelope's kind.
        kind: Kind,
    },
    /// The topic is not in a charter version the envelope must be authorized under.
    #[error("the topic is not in charter version {version}")]
    TopicNotInVersion {
        /// The version.
        version: u64,
    },
    /// An evidence envelope on a data topic.
    #[error("an evidence envelope on a data topic")]
    EvidenceOnDataTopic,
    /// The author's org is not a publisher of the topic.
    #[error("org {org} may not publish on {topic:?} under charter version {version}")]
    NotPublisher {
        /// The author's org.
        org: OrgId,
        /// The topic's name.
        topic: String,
        /// The version.
        version: u64,
    },
    /// The TLP is above the topic's maximum.
    #[error("{tlp} is above the maximum {max} of {topic:?} in charter version {version}")]
    TlpTooHigh {
        /// The envelope's TLP.
        tlp: Tlp,
        /// The topic's maximum.
        max: Tlp,
        /// The topic's name.
        topic: String,
        /// The version.
        version: u64,
    },
    /// The current version withdrew a right the named one granted, without a cut-off
    /// (audit only, a note; the validator refuses such an envelope).
    #[error(
        "charter version {version} withdrew this author's right without a cut-off; nodes now refuse this envelope in history sync"
    )]
    WithdrawnWithoutCutoff {
        /// The current version.
        version: u64,
        /// The first refusal under it (revocation, membership, topic rights).
        cause: Box<Refusal>,
    },
}

impl Refusal {
    /// The stable label of an audit finding (PROTOCOL.md §18.6).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::WrongNetwork => "wrong_network",
            Refusal::UnknownTopic | Refusal::TopicNotInVersion { .. } => "unknown_topic",
            Refusal::CharterAhead { .. } => "charter_ahead",
            Refusal::UnknownCharterVersion { .. } => "unknown_charter_version",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::UnknownAuthor => "unknown_author",
            Refusal::AmbiguousAuthor => "ambiguous_author",
            Refusal::NotMember { .. } | Refusal::CertNotValid { .. } => "cert_not_valid",
            Refusal::CertRevoked => "cert_revoked",
            Refusal::OrgRemoved => "org_removed",
            Refusal::BeyondCutoff { .. } => "beyond_cutoff",
            Refusal::ControlNotEvidence { .. } => "control_not_evidence",
            Refusal::EvidenceOnDataTopic => "evidence_on_data_topic",
            Refusal::NotPublisher { .. } => "not_publisher",
            Refusal::TlpTooHigh { .. } => "tlp_too_high",
            Refusal::WithdrawnWithoutCutoff { .. } => "rights_withdrawn_without_cutoff",
        }
    }
}

/// What the rules learned about an author whose envelope they admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The one org its certificates name.
    pub org: OrgId,
    /// A cut-off in the current charter covers the envelope's seq: it is checked against
    /// the named charter version only.
    pub historical: bool,
}

/// The validator's reading (rules 3–6, see [`crate::validate`]): the first refusal, in
/// rule order, or the author's standing.
pub fn authorize(
    charters: &CharterChain,
    certs: &impl Certificates,
    h: &Header,
) -> Result<Standing, Refusal> {
    let current = charters.current().charter();
    if h.network_id != current.network_id {
        return Err(Refusal::WrongNetwork);
    }
    let is_control = h.topic_id == TopicId::control(&current.network_id);
    if !is_control && current.topic(&h.topic_id).is_none() {
        return Err(Refusal::UnknownTopic);
    }
    if h.charter_version > current.version {
        return Err(Refusal::CharterAhead {
            named: h.charter_version,
            current: current.version,
        });
    }
    let named = named_version(charters, h)?;

    // 4. the author
    let org = author(certs, h)?.clone();
    certified(certs, h, &org, named)?;
    let historical = covered_by_cutoff(current, h)?;
    if !historical {
        standing_now(current, h, &org)?;
        if named.version != current.version {
            certified(certs, h, &org, current)?;
        }
    }

    // 5–6. publishing rights under the named version and, unless historical, the current
    if is_control {
        kind_on_control(h)?;
    } else {
        let mut refusals = topic_rights(named, h, Some(&org));
        if !historical && named.version != current.version {
            refusals.extend(topic_rights(current, h, Some(&org)));
        }
        // A missing right to publish outranks a TLP above the maximum.
        let first = refusals
            .iter()
            .position(|r| !matches!(r, Refusal::TlpTooHigh { .. }))
            .unwrap_or(0);
        if !refusals.is_empty() {
            return Err(refusals.swap_remove(first));
        }
    }
    Ok(Standing { org, historical })
}

/// What the auditor's reading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    /// Every refusal under the named version, in rule order (problems).
    pub refusals: Vec<Refusal>,
    /// [`Refusal::WithdrawnWithoutCutoff`], if the current version withdrew the right
    /// (a note).
    pub withdrawn: Option<Refusal>,
}

/// The auditor's reading (PROTOCOL.md §18.5) of an envelope of `len` bytes.
pub fn review(
    charters: &CharterChain,
    certs: &impl Certificates,
    h: &Header,
    len: usize,
) -> Review {
    let current = charters.current().charter();
    let mut review = Review::default();
    let refusals = &mut review.refusals;
    if h.network_id != current.network_id {
        refusals.push(Refusal::WrongNetwork);
    }
    let named = match named_version(charters, h) {
        Ok(named) => named,
        Err(refusal) => {
            refusals.push(refusal);
            return review;
        }
    };
    if len > named.limits.max_envelope_bytes as usize {
        refusals.push(Refusal::TooLarge {
            len,
            max: named.limits.max_envelope_bytes,
            version: named.version,
        });
    }
    let org = match author(certs, h) {
        Ok(org) => Some(org),
        Err(refusal) => {
            refusals.push(refusal);
            None
        }
    };
    if let Some(org) = org {
        refusals.extend(certified(certs, h, org, named).err());
    }
    let covered = covered_by_cutoff(current, h);
    // Even a seq beyond the cut-off is checked against the named version only.
    let historical = !matches!(covered, Ok(false));
    refusals.extend(covered.err());
    if h.topic_id == TopicId::control(&current.network_id) {
        refusals.extend(kind_on_control(h).err());
        return review;
    }
    refusals.extend(topic_rights(named, h, org));
    if let Some(org) = org.filter(|_| !historical && current.version != named.version) {
        let cause = standing_now(current, h, org).err().or_else(|| {
            topic_rights(current, h, Some(org))
                .into_iter()
                .find(|r| !matches!(r, Refusal::EvidenceOnDataTopic))
        });
        review.withdrawn = cause.map(|cause| Refusal::WithdrawnWithoutCutoff {
            version: current.version,
            cause: Box::new(cause),
        });
    }
    review
}

/// The charter version the envelope names, if adopted.
fn named_version<'c>(charters: &'c CharterChain, h: &Header) -> Result<&'c Charter, Refusal> {
    charters
        .version(h.charter_version)
        .map(|c| c.charter())
        .ok_or_else(|| Refusal::UnknownCharterVersion {
            named: h.charter_version,
            current: charters.current().charter().version,
        })
}

/// The one org the held certificates attribute the author to.
fn author<'a>(certs: &'a impl Certificates, h: &Header) -> Result<&'a OrgId, Refusal> {
    match certs.attribution(&h.author) {
        Attribution::Org(org) => Ok(org),
        Attribution::Unknown => Err(Refusal::UnknownAuthor),
        Attribution::Ambiguous => Err(Refusal::AmbiguousAuthor),
    }
}

/// The org is a member of `charter` and a certificate under its root covers the
/// timestamp.
fn certified(
    certs: &impl Certificates,
    h: &Header,
    org: &OrgId,
    charter: &Charter,
) -> Result<(), Refusal> {
    if certs.certified(&h.author, charter, h.timestamp_ms) {
        return Ok(());
    }
    Err(match charter.member(org) {
        None => Refusal::NotMember {
            org: org.clone(),
            version: charter.version,
        },
        Some(_) => Refusal::CertNotValid {
            org: org.clone(),
            version: charter.version,
            timestamp_ms: h.timestamp_ms,
        },
    })
}

/// Whether the current charter records a cut-off covering the seq (`true`: the envelope
/// is historical); a seq beyond it is refused.
fn covered_by_cutoff(current: &Charter, h: &Header) -> Result<bool, Refusal> {
    match current.cutoff(&h.author, &h.topic_id) {
        Some(last_seq) if h.seq > last_seq => Err(Refusal::BeyondCutoff {
            seq: h.seq,
            last_seq,
            version: current.version,
        }),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// The author's node key is not revoked and its org is still a member.
fn standing_now(current: &Charter, h: &Header, org: &OrgId) -> Result<(), Refusal> {
    if current.is_revoked(&h.author) {
        return Err(Refusal::CertRevoked);
    }
    if current.member(org).is_none() {
        return Err(Refusal::OrgRemoved);
    }
    Ok(())
}

/// Only evidence goes on the control topic.
fn kind_on_control(h: &Header) -> Result<(), Refusal> {
    if h.kind == Kind::Evidence {
        return Ok(());
    }
    Err(Refusal::ControlNotEvidence { kind: h.kind })
}

/// Rules 5–6 on a data topic under `charter`, every refusal in order: the topic is in
/// it; not evidence; the org (if known) a publisher; the TLP at most the maximum.
fn topic_rights(charter: &Charter, h: &Header, org: Option<&OrgId>) -> Vec<Refusal> {
    let Some(rule) = charter.topic(&h.topic_id) else {
        return vec![Refusal::TopicNotInVersion {
            version: charter.version,
        }];
    };
    let mut refusals = Vec::new();
    if h.kind == Kind::Evidence {
        refusals.push(Refusal::EvidenceOnDataTopic);
    }
    if let Some(org) = org.filter(|org| !rule.publishers.contains(org)) {
        refusals.push(Refusal::NotPublisher {
            org: org.clone(),
            topic: rule.name.clone(),
            version: charter.version,
        });
    }
    if h.tlp > rule.max_tlp {
        refusals.push(Refusal::TlpTooHigh {
            tlp: h.tlp,
            max: rule.max_tlp,
            topic: rule.name.clone(),
            version: charter.version,
        });
    }
    refusals
}
