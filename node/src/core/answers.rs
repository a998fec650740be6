//! The answers to the operator's requests: receipts and typed refusals.

use alertmesh_protocol::charter::CharterError;
use alertmesh_protocol::{EnvelopeId, OrgId, Tlp};

/// The answer to a successful publish.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Topic name.
    pub topic: String,
    /// Position in our chain on the topic.
    pub seq: u64,
}

/// Why a local publish was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The topic is not in the charter.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// Our org may not publish on the topic.
    #[error("org {org} may not publish on topic {topic:?} under charter version {version}")]
    Forbidden {
        /// Our org.
        org: OrgId,
        /// The topic.
        topic: String,
        /// The charter version.
        version: u64,
    },
    /// TLP above the topic's maximum.
    #[error("{tlp} is above the maximum {max} of topic {topic:?}")]
    TlpTooHigh {
        /// Requested.
        tlp: Tlp,
        /// Allowed.
        max: Tlp,
        /// The topic.
        topic: String,
    },
    /// The content is invalid.
    #[error("invalid alert: {0}")]
    Invalid(String),
    /// An update or retraction of an alert we did not author.
    #[error("{0}")]
    NotAuthor(String),
    /// This node's certificate is revoked or expired.
    #[error(
        "this node's certificate is revoked or expired, or its org was removed; it may not publish"
    )]
    CertInvalid,
    /// Storage failed.
    #[error("storage failed: {0}")]
    Storage(String),
}

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
