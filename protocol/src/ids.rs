//! Fixed-size identifiers and public keys, with hex display and domain-separated hashing.

use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};
use std::fmt;

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hex of the 32 bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s.trim(), &mut out)?;
                Ok(Self(out))
            }

            /// The first 8 hex digits, for logs.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id32!(
    /// Identifies one alertmesh network; every signed object names it.
    NetworkId
);
id32!(
    /// Identifies a topic: a domain-separated hash of the network id and topic name.
    TopicId
);
id32!(
    /// SHA-256 of an envelope's complete signed bytes.
    EnvelopeId
);
id32!(
    /// Domain-separated SHA-256 of a charter's encoded body.
    CharterHash
);
id32!(
    /// An org root's Ed25519 public key.
    OrgPublicKey
);
id32!(
    /// A node's Ed25519 public key: its libp2p identity and the author of its envelopes.
    NodePublicKey
);
id32!(
    /// A node's X25519 public key, to which sender keys are sealed.
    AgreementPublicKey
);

/// Domain-separation tags. Each signed or hashed object uses its own tag, followed by a
/// zero byte, then the object's exact bytes.
pub mod tags {
    /// Signature over an envelope's header and payload.
    pub const ENVELOPE: &[u8] = b"alertmesh/v1/envelope";
    /// Signature by an org root over a node certificate and the node's signature.
    pub const NODE_CERT: &[u8] = b"alertmesh/v1/node-cert";
    /// A node's signature over its certificate body: proof of possession of the node key
    /// and consent to belong to the org the body names.
    pub const NODE_CERT_POP: &[u8] = b"alertmesh/v1/node-cert-pop";
    /// A governor's signature over a charter body.
    pub const CHARTER: &[u8] = b"alertmesh/v1/charter";
    /// Hash of a charter body (its identity and the next version's `prev_hash`).
    pub const CHARTER_HASH: &[u8] = b"alertmesh/v1/charter-hash";
    /// Topic id derivation.
    pub const TOPIC: &[u8] = b"alertmesh/v1/topic";
    /// HPKE `info` when sealing a sender key.
    pub const SENDER_KEY: &[u8] = b"alertmesh/v1/sender-key";
}

/// `tag ‖ 0x00 ‖ body`: the exact message signed or hashed for a domain.
pub fn tagged(tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(tag.len() + 1 + body.len());
    msg.extend_from_slice(tag);
    msg.push(0);
    msg.extend_from_slice(body);
    msg
}

/// SHA-256 of `tag ‖ 0x00 ‖ part₀ ‖ part₁ ‖ …`.
pub fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update([0u8]);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Plain SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// An organization's identifier in the charter: 1–64 characters of `a-z`, `0-9`, `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct OrgId(pub String);

impl OrgId {
    /// Maximum length of an org id.
    pub const MAX_LEN: usize = 64;

    /// Builds an org id, checking its syntax.
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidOrgId> {
        let id = Self(s.into());
        if id.is_valid() {
            Ok(id)
        } else {
            Err(InvalidOrgId(id.0))
        }
    }

    /// Whether the id has the required syntax.
    pub fn is_valid(&self) -> bool {
        !self.0.is_empty()
            && self.0.len() <= Self::MAX_LEN
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.0)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// An org id with characters outside `a-z0-9-` or a bad length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid org id {0:?}: use 1-64 characters of a-z, 0-9 and '-'")]
pub struct InvalidOrgId(pub String);
