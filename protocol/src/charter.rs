//! The network charter: members, governors, topics and their ACLs, revocations.
//!
//! Wire form of a [`SignedCharter`]: `encode(Charter) ‖ encode(Vec<GovernorSignature>)`.
//! Each signature is by a governor's org root key over
//! `"alertmesh/v1/charter" ‖ 0x00 ‖ encode(Charter)`. The charter's identity is
//! `SHA-256("alertmesh/v1/charter-hash" ‖ 0x00 ‖ encode(Charter))`.
//!
//! Version 1 (genesis) needs `threshold` signatures of its own governors; version n+1
//! names `prev_hash = hash(version n)` and needs `threshold(n)` signatures of version n's
//! governors. [`CharterChain`] applies these rules and the fork rule.

use crate::alert::Tlp;
use crate::codec::{self, DecodeError};
use crate::ids::{
    CharterHash, NetworkId, NodePublicKey, OrgId, OrgPublicKey, TopicId, tagged_hash, tags,
};
use crate::keys::{OrgRootKey, Signature, SignatureError};
use crate::topic::CONTROL_TOPIC_NAME;
use bincode::{Decode, Encode};
use std::collections::{BTreeMap, HashSet};

/// Largest encoded signed charter accepted.
pub const MAX_CHARTER_BYTES: usize = 1024 * 1024;
/// Hard cap on any envelope, whatever a charter's limits say.
pub const MAX_ENVELOPE_BYTES: u32 = 1024 * 1024;

/// A member organization.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Member {
    /// Short identifier, e.g. `fbi`.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
    /// The org root public key that signs its node certificates and votes.
    pub root_pub: OrgPublicKey,
    /// Free-form roles, e.g. `platform`, `law-enforcement`.
    pub roles: Vec<String>,
}

/// A topic and who may read and publish on it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct TopicRule {
    /// Human name, e.g. `election-2020/disinfo`. Never starts with `_`.
    pub name: String,
    /// Orgs whose nodes receive the topic's sender keys.
    pub readers: Vec<OrgId>,
    /// Orgs whose nodes may publish on it.
    pub publishers: Vec<OrgId>,
    /// The most restrictive TLP marking allowed on the topic.
    pub max_tlp: Tlp,
}

/// The last sequence number accepted from an author on a topic. Governance records one
/// whenever an author's rights on a topic shrink (org removed, node key revoked, org
/// dropped from the publishers, `max_tlp` lowered below what the author used, org root
/// replaced): envelopes up to `last_seq` are then checked against the charter version they
/// name only, and anything later is rejected everywhere (see [`crate::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Cutoff {
    /// The node key concerned.
    pub author: NodePublicKey,
    /// The topic concerned.
    pub topic: TopicId,
    /// The last accepted sequence number (0: nothing).
    pub last_seq: u64,
}

/// The checkpoint periods a charter may set, in ms (0.1 s to one day).
pub const CHECKPOINT_PERIOD_MS: std::ops::RangeInclusive<u64> = 100..=86_400_000;

/// Network-wide limits.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Limits {
    /// Largest envelope, in bytes (≤ [`MAX_ENVELOPE_BYTES`]).
    pub max_envelope_bytes: u32,
    /// How far in the future an envelope's timestamp may be, in ms.
    pub max_clock_skew_ms: u64,
    /// Sustained envelopes per org per minute.
    pub rate_per_org_per_minute: u32,
    /// Burst allowance per org.
    pub rate_burst: u32,
    /// Each node signs a checkpoint of its log at least this often while it publishes,
    /// in ms (N, PROTOCOL.md §19.2).
    pub checkpoint_period_ms: u64,
    /// ... and after this many new envelopes (M).
    pub checkpoint_every: u32,
    /// Cosigning orgs that make a checkpoint witnessed (k), capped by the other member
    /// orgs: see [`Charter::witness_threshold`].
    pub witness_threshold: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_envelope_bytes: 256 * 1024,
            max_clock_skew_ms: 30_000,
            rate_per_org_per_minute: 6_000,
            rate_burst: 2_000,
            checkpoint_period_ms: 60_000,
            checkpoint_every: 256,
            witness_threshold: 2,
        }
    }
}

/// The charter body.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Charter {
    /// The network's id.
    pub network_id: NetworkId,
    /// Human name of the network.
    pub network_name: String,
    /// 1 for genesis, then +1 per change.
    pub version: u64,
    /// Hash of the previous version (zero for genesis).
    pub prev_hash: CharterHash,
    /// When it was proposed (informational), ms since the Unix epoch.
    pub created_ms: u64,
    /// Member organizations.
    pub members: Vec<Member>,
    /// Orgs whose signatures count for the next version.
    pub governors: Vec<OrgId>,
    /// Signatures of governors needed for the next version (and for genesis).
    pub threshold: u32,
    /// Topics and their ACLs.
    pub topics: Vec<TopicRule>,
    /// Revoked node keys.
    pub revoked_certs: Vec<NodePublicKey>,
    /// Per-(author, topic) cut-offs for authors whose rights shrank (revoked nodes,
    /// removed orgs, demoted publishers ...).
    pub cutoffs: Vec<Cutoff>,
    /// Network-wide limits.
    pub limits: Limits,
}

/// A governor's signature over a charter body.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct GovernorSignature {
    /// The signing governor.
    pub org_id: OrgId,
    /// Ed25519 signature by the governor's org root key.
    pub signature: Signature,
}

/// Why a charter is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CharterError {
    /// The bytes do not decode.
    #[error("charter does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The body is inconsistent.
    #[error("charter is malformed: {0}")]
    Malformed(String),
    /// Fewer valid governor signatures than the threshold.
    #[error("charter has {valid} valid governor signatures, {needed} needed")]
    TooFewSignatures {
        /// Valid signatures of distinct governors.
        valid: usize,
        /// The threshold.
        needed: usize,
    },
    /// A signature by an org that is not a governor of the authorizing version.
    #[error("signature by {0}, which is not a governor of the authorizing charter")]
    NotGovernor(OrgId),
    /// Two signatures by the same governor.
    #[error("governor {0} signed twice")]
    DuplicateSignature(OrgId),
    /// A signature that does not verify.
    #[error("signature by {0} does not verify: {1}")]
    BadSignature(OrgId, SignatureError),
    /// Genesis does not match the hash pinned in the node's config.
    #[error("genesis hash {found} differs from the pinned {pinned}")]
    GenesisMismatch {
        /// The pinned hash.
        pinned: CharterHash,
        /// The offered genesis' hash.
        found: CharterHash,
    },
    /// The charter is for another network.
    #[error("charter is for another network")]
    WrongNetwork,
    /// `prev_hash` does not name the previous version.
    #[error("prev_hash does not match version {0}")]
    WrongPrevHash(u64),
    /// The version is not newer than what we have.
    #[error("version {offered} does not follow {current}")]
    VersionNotIncreasing {
        /// The offered version.
        offered: u64,
        /// Our current version.
        current: u64,
    },
    /// A later version than the next one: its predecessors are needed first.
    #[error("version {offered} needs versions {current}+1.. first")]
    MissingPredecessor {
        /// The offered version.
        offered: u64,
        /// Our current version.
        current: u64,
    },
    /// Governance halted at a fork: no version at or after it is adopted.
    #[error("governance is halted by a fork at version {0}")]
    Halted(u64),
}

/// A decoded charter with its signatures and exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCharter {
    bytes: Vec<u8>,
    body_len: usize,
    charter: Charter,
    signatures: Vec<GovernorSignature>,
}

impl SignedCharter {
    /// A charter with no signatures yet.
    pub fn unsigned(charter: Charter) -> Self {
        let mut bytes = codec::encode(&charter);
        let body_len = bytes.len();
        bytes.extend_from_slice(&codec::encode(&Vec::<GovernorSignature>::new()));
        Self {
            bytes,
            body_len,
            charter,
            signatures: Vec::new(),
        }
    }

    /// Adds (or replaces) the signature of `org_id`.
    pub fn sign(&mut self, org_id: &OrgId, key: &OrgRootKey) {
        let signature = key.sign(tags::CHARTER, self.body_bytes());
        self.signatures.retain(|s| &s.org_id != org_id);
        self.signatures.push(GovernorSignature {
            org_id: org_id.clone(),
            signature,
        });
        self.signatures.sort_by(|a, b| a.org_id.cmp(&b.org_id));
        self.bytes.truncate(self.body_len);
        self.bytes
            .extend_from_slice(&codec::encode(&self.signatures));
    }

    /// Strictly decodes a signed charter (signatures are checked by [`CharterChain`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (charter, body_len) = codec::decode_prefix::<Charter>(bytes, MAX_CHARTER_BYTES)?;
        let signatures =
            codec::decode_exact::<Vec<GovernorSignature>>(&bytes[body_len..], MAX_CHARTER_BYTES)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            body_len,
            charter,
            signatures,
        })
    }

    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded body that governors sign.
    pub fn body_bytes(&self) -> &[u8] {
        &self.bytes[..self.body_len]
    }

    /// The charter body.
    pub fn charter(&self) -> &Charter {
        &self.charter
    }

    /// The signatures.
    pub fn signatures(&self) -> &[GovernorSignature] {
        &self.signatures
    }

    /// The charter's identity hash.
    pub fn hash(&self) -> CharterHash {
        CharterHash(tagged_hash(tags::CHARTER_HASH, &[self.body_bytes()]))
    }

    /// Checks that every signature is by a distinct governor of `authority`, verifies, and
    /// that there are at least `authority.threshold` of them.
    pub fn verify_signatures(&self, authority: &Charter) -> Result<(), CharterError> {
        let mut seen = HashSet::new();
        for sig in &self.signatures {
            if !authority.governors.contains(&sig.org_id) {
                return Err(CharterError::NotGovernor(sig.org_id.clone()));
            }
            if !seen.insert(&sig.org_id) {
                return Err(CharterError::DuplicateSignature(sig.org_id.clone()));
            }
            let member = authority
                .member(&sig.org_id)
                .ok_or_else(|| CharterError::NotGovernor(sig.org_id.clone()))?;
            member
                .root_pub
                .verify(tags::CHARTER, self.body_bytes(), &sig.signature)
                .map_err(|e| CharterError::BadSignature(sig.org_id.clone(), e))?;
        }
        let needed = authority.threshold as usize;
        if seen.len() < needed {
            return Err(CharterError::TooFewSignatures {
                valid: seen.len(),
                needed,
            });
        }
        Ok(())
    }
}

impl Charter {
    /// The member with this id.
    pub fn member(&self, org: &OrgId) -> Option<&Member> {
        self.members.iter().find(|m| &m.org_id == org)
    }

    /// The topic with this id.
    pub fn topic(&self, id: &TopicId) -> Option<&TopicRule> {
        self.topics
            .iter()
            .find(|t| &TopicId::derive(&self.network_id, &t.name) == id)
    }

    /// The topic with this name.
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicRule> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// Whether `org` may read `topic`.
    pub fn may_read(&self, org: &OrgId, topic: &TopicId) -> bool {
        self.topic(topic).is_some_and(|t| t.readers.contains(org))
    }

    /// Whether `org` may publish on `topic`.
    pub fn may_publish(&self, org: &OrgId, topic: &TopicId) -> bool {
        self.topic(topic)
            .is_some_and(|t| t.publishers.contains(org))
    }

    /// Whether this node key is revoked.
    pub fn is_revoked(&self, node: &NodePublicKey) -> bool {
        self.revoked_certs.contains(node)
    }

    /// The cut-off for an author on a topic, if one was recorded.
    pub fn cutoff(&self, author: &NodePublicKey, topic: &TopicId) -> Option<u64> {
        self.cutoffs
            .iter()
            .find(|c| &c.author == author && &c.topic == topic)
            .map(|c| c.last_seq)
    }

    /// Checks internal consistency (ids, references, threshold, limits).
    pub fn check_well_formed(&self) -> Result<(), CharterError> {
        let bad = |msg: String| Err(CharterError::Malformed(msg));
        if self.version == 0 {
            return bad("version must be at least 1".into());
        }
        if self.version == 1 && self.prev_hash != CharterHash::default() {
            return bad("genesis must have a zero prev_hash".into());
        }
        if self.members.is_empty() {
            return bad("no members".into());
        }
        let mut orgs = HashSet::new();
        let mut roots = HashSet::new();
        for m in &self.members {
            if !m.org_id.is_valid() {
                return bad(format!("invalid org id {:?}", m.org_id.0));
            }
            if !orgs.insert(&m.org_id) {
                return bad(format!("org {} listed twice", m.org_id));
            }
            if !roots.insert(m.root_pub) {
                return bad(format!("org {} reuses another org's root key", m.org_id));
            }
        }
        let known = |list: &[OrgId], what: &str| -> Result<(), CharterError> {
            let mut seen = HashSet::new();
            for o in list {
                if !orgs.contains(o) {
                    return bad(format!("{what} names {o}, which is not a member"));
                }
                if !seen.insert(o) {
                    return bad(format!("{what} names {o} twice"));
                }
            }
            Ok(())
        };
        known(&self.governors, "governors")?;
        if self.threshold == 0 || self.threshold as usize > self.governors.len() {
            return bad(format!(
                "threshold {} must be between 1 and the {} governors",
                self.threshold,
                self.governors.len()
            ));
        }
        let mut names = HashSet::new();
        for t in &self.topics {
            if t.name.is_empty() || t.name.len() > 128 || t.name.starts_with('_') {
                return bad(format!(
                    "topic name {:?} must be 1-128 bytes and not start with '_'",
                    t.name
                ));
            }
            if t.name == CONTROL_TOPIC_NAME || !names.insert(&t.name) {
                return bad(format!("topic {} listed twice or reserved", t.name));
            }
            known(&t.readers, &format!("topic {} readers", t.name))?;
            known(&t.publishers, &format!("topic {} publishers", t.name))?;
        }
        if self.limits.max_envelope_bytes == 0
            || self.limits.max_envelope_bytes > MAX_ENVELOPE_BYTES
        {
            return bad(format!(
                "max_envelope_bytes must be 1..={MAX_ENVELOPE_BYTES}"
            ));
        }
        if self.limits.rate_per_org_per_minute == 0 || self.limits.rate_burst == 0 {
            return bad("rate limits must be positive".into());
        }
        if !CHECKPOINT_PERIOD_MS.contains(&self.limits.checkpoint_period_ms) {
            return bad(format!(
                "checkpoint_period_ms must be {}..={}",
                CHECKPOINT_PERIOD_MS.start(),
                CHECKPOINT_PERIOD_MS.end()
            ));
        }
        if self.limits.checkpoint_every == 0 || self.limits.witness_threshold == 0 {
            return bad("checkpoint_every and witness_threshold must be positive".into());
        }
        Ok(())
    }

    /// The number of cosigning orgs that makes a checkpoint of one member's log
    /// witnessed: the limit's k, capped by the other member orgs, and at least 1.
    pub fn witness_threshold(&self) -> usize {
        let others = self.members.len().saturating_sub(1);
        (self.limits.witness_threshold as usize).min(others).max(1)
    }
}

/// Two different valid charters with the same version: transferable proof of a
/// governance fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharterFork {
    /// The version both claim.
    pub version: u64,
    /// One charter (the one with the smaller hash).
    pub first: SignedCharter,
    /// The other.
    pub second: SignedCharter,
}

/// What offering a charter to a [`CharterChain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharterUpdate {
    /// It became the current charter.
    Adopted(u64),
    /// We already hold it.
    AlreadyKnown,
    /// It conflicts with a valid charter of the same version: governance halts below it.
    Fork(Box<CharterFork>),
}

/// The verified history of charters from the pinned genesis.
///
/// Rules: a charter is adopted only if it is the next version, names the current
/// charter's hash and carries enough valid signatures of the current governors. If two
/// different valid charters of one version are ever seen, both are kept as evidence, the
/// effective charter falls back to the version before the fork, and nothing at or after
/// that version is adopted again: every node that sees both ends in the same state,
/// whichever it saw first.
#[derive(Debug, Clone)]
pub struct CharterChain {
    versions: Vec<SignedCharter>,
    forks: Vec<CharterFork>,
}

impl CharterChain {
    /// Starts from a genesis charter, which must match the pinned hash.
    pub fn from_genesis(
        genesis: SignedCharter,
        pinned: &CharterHash,
    ) -> Result<Self, CharterError> {
        if &genesis.hash() != pinned {
            return Err(CharterError::GenesisMismatch {
                pinned: *pinned,
                found: genesis.hash(),
            });
        }
        Self::verify_genesis(&genesis)?;
        Ok(Self {
            versions: vec![genesis],
            forks: Vec::new(),
        })
    }

    /// Checks a genesis charter on its own: well-formed, version 1, signed by k of its
    /// own governors.
    pub fn verify_genesis(genesis: &SignedCharter) -> Result<(), CharterError> {
        let c = genesis.charter();
        if c.version != 1 {
            return Err(CharterError::VersionNotIncreasing {
                offered: c.version,
                current: 0,
            });
        }
        c.check_well_formed()?;
        genesis.verify_signatures(c)
    }

    /// The current (highest adopted) charter.
    pub fn current(&self) -> &SignedCharter {
        // `versions` always holds the genesis.
        &self.versions[self.versions.len() - 1]
    }

    /// The adopted charter with this version.
    pub fn version(&self, version: u64) -> Option<&SignedCharter> {
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        self.versions.get(index)
    }

    /// All adopted charters, genesis first.
    pub fn history(&self) -> &[SignedCharter] {
        &self.versions
    }

    /// Governance forks seen.
    pub fn forks(&self) -> &[CharterFork] {
        &self.forks
    }

    fn halted_at(&self) -> Option<u64> {
        self.forks.iter().map(|f| f.version).min()
    }

    /// Offers a charter received from the network or an operator.
    pub fn offer(&mut self, offered: SignedCharter) -> Result<CharterUpdate, CharterError> {
        let c = offered.charter().clone();
        let current = self.current().charter().version;
        if c.network_id != self.current().charter().network_id {
            return Err(CharterError::WrongNetwork);
        }
        if c.version == 0 {
            return Err(CharterError::VersionNotIncreasing {
                offered: 0,
                current,
            });
        }
        if c.version == 1 {
            // Another genesis: only the pinned one counts.
            if offered.hash() == self.versions[0].hash() {
                return Ok(CharterUpdate::AlreadyKnown);
            }
            return Err(CharterError::GenesisMismatch {
                pinned: self.versions[0].hash(),
                found: offered.hash(),
            });
        }
        if let Some(halt) = self.halted_at() {
            if c.version >= halt {
                return self.record_fork(offered).ok_or(CharterError::Halted(halt));
            }
        }
        if c.version > current + 1 {
            return Err(CharterError::MissingPredecessor {
                offered: c.version,
                current,
            });
        }
        if let Some(existing) = self.version(c.version) {
            if existing.hash() == offered.hash() {
                return Ok(CharterUpdate::AlreadyKnown);
            }
        }
        // Verify against the predecessor (which we hold: version ≤ current + 1).
        let prev = self
            .version(c.version - 1)
            .ok_or(CharterError::MissingPredecessor {
                offered: c.version,
                current,
            })?;
        if c.prev_hash != prev.hash() {
            return Err(CharterError::WrongPrevHash(c.version - 1));
        }
        c.check_well_formed()?;
        offered.verify_signatures(prev.charter())?;
        let c = &c;
        if c.version == current + 1 {
            self.versions.push(offered);
            return Ok(CharterUpdate::Adopted(current + 1));
        }
        // A valid charter for a version we already adopted, with another hash: a fork.
        self.record_fork(offered)
            .ok_or(CharterError::VersionNotIncreasing {
                offered: c.version,
                current,
            })
    }

    /// Records a fork for a valid `offered` that conflicts with one we adopted or with a
    /// fork already recorded at its version; rolls back to the version before it.
    fn record_fork(&mut self, offered: SignedCharter) -> Option<CharterUpdate> {
        let version = offered.charter().version;
        let rival = self.version(version).cloned().or_else(|| {
            self.forks
                .iter()
                .find(|f| f.version == version)
                .map(|f| f.first.clone())
        })?;
        if rival.hash() == offered.hash()
            || self.forks.iter().any(|f| {
                f.version == version
                    && (f.first.hash() == offered.hash() || f.second.hash() == offered.hash())
            })
        {
            return Some(CharterUpdate::AlreadyKnown);
        }
        // The offered one must itself be valid against its predecessor.
        let prev = self.version(version - 1)?;
        if offered.charter().prev_hash != prev.hash()
            || offered.charter().check_well_formed().is_err()
            || offered.verify_signatures(prev.charter()).is_err()
        {
            return None;
        }
        let (first, second) = if rival.hash() < offered.hash() {
            (rival, offered)
        } else {
            (offered, rival)
        };
        let fork = CharterFork {
            version,
            first,
            second,
        };
        self.forks.push(fork.clone());
        let keep = usize::try_from(version - 1).unwrap_or(usize::MAX);
        self.versions.truncate(keep.max(1));
        Some(CharterUpdate::Fork(Box::new(fork)))
    }
}

/// Builds the topic-id → rule map of a charter (for quick lookups by callers).
pub fn topic_map(charter: &Charter) -> BTreeMap<TopicId, TopicRule> {
    charter
        .topics
        .iter()
        .map(|t| (TopicId::derive(&charter.network_id, &t.name), t.clone()))
        .collect()
}
