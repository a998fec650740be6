//! Node certificates: an org root vouches for a node's signing and agreement keys.
//!
//! Wire form: `encode(NodeCert) ‖ signature(64)`, the signature by the org root key over
//! `"alertmesh/v1/node-cert" ‖ 0x00 ‖ encode(NodeCert)`.

use crate::codec::{self, DecodeError};
use crate::ids::{AgreementPublicKey, NetworkId, NodePublicKey, OrgId, OrgPublicKey, tags};
use crate::keys::{OrgRootKey, Signature, SignatureError};
use bincode::{Decode, Encode};

/// Largest encoded signed certificate accepted.
pub const MAX_CERT_BYTES: usize = 1024;

/// What an org root vouches for: this node belongs to `org_id` in `network_id`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct NodeCert {
    /// The network this certificate is valid in.
    pub network_id: NetworkId,
    /// The organization that runs the node.
    pub org_id: OrgId,
    /// The node's Ed25519 key (libp2p identity, envelope author).
    pub node_sign_pub: NodePublicKey,
    /// The node's X25519 key for receiving sealed sender keys.
    pub node_agree_pub: AgreementPublicKey,
    /// Start of validity, milliseconds since the Unix epoch.
    pub not_before_ms: u64,
    /// End of validity (inclusive), milliseconds since the Unix epoch.
    pub not_after_ms: u64,
    /// Serial number chosen by the org, unique per org.
    pub serial: u64,
}

/// A [`NodeCert`] with its org root signature, keeping the exact received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNodeCert {
    bytes: Vec<u8>,
    cert: NodeCert,
}

/// Why a certificate is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The bytes do not decode.
    #[error("certificate does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The org root signature does not verify.
    #[error("certificate signature: {0}")]
    Signature(#[from] SignatureError),
    /// The certificate names another network.
    #[error("certificate is for another network")]
    WrongNetwork,
    /// The org is not a member of the charter.
    #[error("org {0} is not a member")]
    UnknownOrg(OrgId),
    /// Validity ends before it starts.
    #[error("certificate validity interval is empty")]
    EmptyValidity,
}

impl SignedNodeCert {
    /// Signs `cert` with the org root key.
    pub fn issue(root: &OrgRootKey, cert: NodeCert) -> Self {
        let mut bytes = codec::encode(&cert);
        let sig = root.sign(tags::NODE_CERT, &bytes);
        bytes.extend_from_slice(&sig);
        Self { bytes, cert }
    }

    /// Strictly decodes a signed certificate (the signature is not checked here).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_CERT_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_CERT_BYTES,
            });
        }
        let body_len = bytes.len().checked_sub(64).ok_or(DecodeError::Truncated)?;
        let cert = codec::decode_exact::<NodeCert>(&bytes[..body_len], MAX_CERT_BYTES)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            cert,
        })
    }

    /// The certificate body.
    pub fn cert(&self) -> &NodeCert {
        &self.cert
    }

    /// The exact signed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn signature(&self) -> Signature {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&self.bytes[self.bytes.len() - 64..]);
        sig
    }

    /// Checks network, validity interval and the org root signature over the exact bytes.
    pub fn verify(&self, network: &NetworkId, root: &OrgPublicKey) -> Result<(), CertError> {
        if &self.cert.network_id != network {
            return Err(CertError::WrongNetwork);
        }
        if self.cert.not_after_ms < self.cert.not_before_ms {
            return Err(CertError::EmptyValidity);
        }
        root.verify(
            tags::NODE_CERT,
            &self.bytes[..self.bytes.len() - 64],
            &self.signature(),
        )?;
        Ok(())
    }

    /// Whether `time_ms` lies within the validity interval.
    pub fn valid_at(&self, time_ms: u64) -> bool {
        self.cert.not_before_ms <= time_ms && time_ms <= self.cert.not_after_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{AgreementKey, NodeKey};
    use rand_chacha08::ChaCha20Rng;
    use rand_chacha08::rand_core::SeedableRng;

    fn sample() -> (OrgRootKey, SignedNodeCert) {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let root = OrgRootKey::generate(&mut rng);
        let cert = NodeCert {
            network_id: NetworkId([9; 32]),
            org_id: OrgId::new("fbi").unwrap(),
            node_sign_pub: NodeKey::generate(&mut rng).public(),
            node_agree_pub: AgreementKey::generate(&mut rng).public(),
            not_before_ms: 10,
            not_after_ms: 20,
            serial: 1,
        };
        (OrgRootKey::from_secret_bytes(&root.secret_bytes()), SignedNodeCert::issue(&root, cert))
    }

    #[test]
    fn issue_decode_verify() {
        let (root, signed) = sample();
        let decoded = SignedNodeCert::decode(signed.as_bytes()).unwrap();
        assert_eq!(decoded, signed);
        assert_eq!(decoded.verify(&NetworkId([9; 32]), &root.public()), Ok(()));
        assert_eq!(decoded.verify(&NetworkId([8; 32]), &root.public()), Err(CertError::WrongNetwork));
        assert!(decoded.valid_at(10) && decoded.valid_at(20) && !decoded.valid_at(21));
    }

    #[test]
    fn any_flipped_bit_fails() {
        let (root, signed) = sample();
        let bytes = signed.as_bytes();
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            let ok = SignedNodeCert::decode(&b)
                .map(|c| c.verify(&NetworkId([9; 32]), &root.public()).is_ok())
                .unwrap_or(false);
            assert!(!ok, "bit {i} flip accepted");
        }
    }
}
