//! Node certificates: an org root vouches for a node's signing and agreement keys, and the
//! node proves that it holds the signing key and consents to belong to that org.
//!
//! Issuing takes two steps, so that the org root can stay offline and the node key never
//! leaves the node:
//!
//! 1. on the node, [`NodeCert::request`] signs the certificate body with the node's own
//!    key, giving a [`CertRequest`]: `encode(NodeCert) ‖ node_signature(64)`, where
//!    `node_signature` is by the node key over
//!    `"alertmesh/v1/node-cert-pop" ‖ 0x00 ‖ encode(NodeCert)` (proof of possession);
//! 2. offline, [`SignedNodeCert::issue`] checks that proof and adds the org root's
//!    signature.
//!
//! Wire form of a [`SignedNodeCert`]: `encode(NodeCert) ‖ node_signature(64) ‖
//! org_signature(64)`, the org signature by the org root key over
//! `"alertmesh/v1/node-cert" ‖ 0x00 ‖ encode(NodeCert) ‖ node_signature`.
//!
//! Because the node co-signs the body (which names the org), no org can certify another
//! org's node key: a node key is bound to the orgs its holder signed requests for.

use crate::codec::{self, DecodeError};
use crate::ids::{AgreementPublicKey, NetworkId, NodePublicKey, OrgId, OrgPublicKey, tags};
use crate::keys::{NodeKey, OrgRootKey, Signature, SignatureError};
use bincode::{Decode, Encode};

/// Largest encoded signed certificate accepted (body and both signatures).
pub const MAX_CERT_BYTES: usize = 1024;
/// Largest encoded certificate request accepted (body and the node signature).
pub const MAX_CERT_REQUEST_BYTES: usize = MAX_CERT_BYTES - 64;

const SIG: usize = 64;

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

/// A [`NodeCert`] signed by the node key it names (proof of possession), waiting for the
/// org root's signature. Keeps the exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    bytes: Vec<u8>,
    cert: NodeCert,
}

/// A [`NodeCert`] with the node's and the org root's signatures, keeping the exact
/// received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNodeCert {
    bytes: Vec<u8>,
    cert: NodeCert,
}

/// Why a certificate (or certificate request) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The bytes do not decode.
    #[error("certificate does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The org root signature does not verify.
    #[error("certificate signature: {0}")]
    Signature(#[from] SignatureError),
    /// The node's signature (proof of possession of `node_sign_pub`) does not verify.
    #[error("certificate's node signature (proof of possession): {0}")]
    ProofOfPossession(SignatureError),
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

impl CertError {
    /// A short label for metrics and test vectors.
    pub fn label(&self) -> &'static str {
        match self {
            CertError::Decode(_) => "malformed",
            CertError::Signature(_) => "bad_org_signature",
            CertError::ProofOfPossession(_) => "bad_node_signature",
            CertError::WrongNetwork => "wrong_network",
            CertError::UnknownOrg(_) => "unknown_org",
            CertError::EmptyValidity => "empty_validity",
        }
    }
}

impl NodeCert {
    /// Signs this body with the node key it names, producing the request an org root
    /// signs with [`SignedNodeCert::issue`]. `node` should be the key whose public half
    /// is `node_sign_pub`; a request signed by any other key fails
    /// [`CertRequest::verify_pop`] and is refused by `issue`.
    pub fn request(self, node: &NodeKey) -> CertRequest {
        let mut bytes = codec::encode(&self);
        let pop = node.sign(tags::NODE_CERT_POP, &bytes);
        bytes.extend_from_slice(&pop);
        CertRequest { bytes, cert: self }
    }
}

fn signature_at(bytes: &[u8], at: usize) -> Signature {
    let mut sig = [0u8; SIG];
    sig.copy_from_slice(&bytes[at..at + SIG]);
    sig
}

/// Checks the node's proof of possession: `pop` by `cert.node_sign_pub` over `body`.
fn verify_pop(cert: &NodeCert, body: &[u8], pop: &Signature) -> Result<(), CertError> {
    cert.node_sign_pub
        .verify(tags::NODE_CERT_POP, body, pop)
        .map_err(CertError::ProofOfPossession)
}

/// Strictly decodes the `NodeCert` before `signatures` trailing signatures in `bytes` (at
/// most `max` bytes in all).
fn decode_body(bytes: &[u8], signatures: usize, max: usize) -> Result<NodeCert, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let body_len = bytes
        .len()
        .checked_sub(signatures * SIG)
        .ok_or(DecodeError::Truncated)?;
    codec::decode_exact::<NodeCert>(&bytes[..body_len], max)
}

impl CertRequest {
    /// Strictly decodes a request (the node signature is not checked here).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let cert = decode_body(bytes, 1, MAX_CERT_REQUEST_BYTES)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            cert,
        })
    }

    /// The certificate body the node asks to have signed.
    pub fn cert(&self) -> &NodeCert {
        &self.cert
    }

    /// The exact bytes: `encode(NodeCert) ‖ node_signature`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn body(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - SIG]
    }

    /// Checks the node signature over the body with `verify_strict` under the body's
    /// `node_sign_pub`: the requester holds that key and asks to belong to `org_id`.
    pub fn verify_pop(&self) -> Result<(), CertError> {
        let pop = signature_at(&self.bytes, self.bytes.len() - SIG);
        verify_pop(&self.cert, self.body(), &pop)
    }
}

impl SignedNodeCert {
    /// Signs a request with the org root key, after checking its proof of possession
    /// (refused with [`CertError::ProofOfPossession`]). The org decides what it vouches
    /// for; [`SignedNodeCert::verify`] still refuses an empty validity interval.
    pub fn issue(root: &OrgRootKey, request: CertRequest) -> Result<Self, CertError> {
        request.verify_pop()?;
        let CertRequest { mut bytes, cert } = request;
        let sig = root.sign(tags::NODE_CERT, &bytes);
        bytes.extend_from_slice(&sig);
        Ok(Self { bytes, cert })
    }

    /// Both steps at once, for when the org root and the node key are at hand (network
    /// bootstrap, tests): `issue(root, cert.request(node))`.
    pub fn issue_with_node_key(
        root: &OrgRootKey,
        node: &NodeKey,
        cert: NodeCert,
    ) -> Result<Self, CertError> {
        Self::issue(root, cert.request(node))
    }

    /// Strictly decodes a signed certificate (the signatures are not checked here).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let cert = decode_body(bytes, 2, MAX_CERT_BYTES)?;
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

    /// The request this certificate was issued for: `encode(NodeCert) ‖ node_signature`.
    pub fn request_bytes(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - SIG]
    }

    /// Checks network, validity interval, the node's proof of possession (under
    /// `node_sign_pub`) and the org root signature, all with `verify_strict` over the
    /// exact bytes.
    pub fn verify(&self, network: &NetworkId, root: &OrgPublicKey) -> Result<(), CertError> {
        if &self.cert.network_id != network {
            return Err(CertError::WrongNetwork);
        }
        if self.cert.not_after_ms < self.cert.not_before_ms {
            return Err(CertError::EmptyValidity);
        }
        let n = self.bytes.len();
        let body = &self.bytes[..n - 2 * SIG];
        verify_pop(&self.cert, body, &signature_at(&self.bytes, n - 2 * SIG))?;
        root.verify(
            tags::NODE_CERT,
            self.request_bytes(),
            &signature_at(&self.bytes, n - SIG),
        )?;
        Ok(())
    }

    /// Whether `time_ms` lies within the validity interval.
    pub fn valid_at(&self, time_ms: u64) -> bool {
        self.cert.not_before_ms <= time_ms && time_ms <= self.cert.not_after_ms
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys::AgreementKey;
    use rand_chacha08::ChaCha20Rng;
    use rand_chacha08::rand_core::SeedableRng;

    const NET: NetworkId = NetworkId([9; 32]);

    struct Sample {
        root: OrgRootKey,
        node: NodeKey,
        cert: NodeCert,
    }

    fn sample() -> Sample {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let root = OrgRootKey::generate(&mut rng);
        let node = NodeKey::generate(&mut rng);
        let cert = NodeCert {
            network_id: NET,
            org_id: OrgId::new("fbi").unwrap(),
            node_sign_pub: node.public(),
            node_agree_pub: AgreementKey::generate(&mut rng).public(),
            not_before_ms: 10,
            not_after_ms: 20,
            serial: 1,
        };
        Sample { root, node, cert }
    }

    fn signed(s: &Sample) -> SignedNodeCert {
        SignedNodeCert::issue(&s.root, s.cert.clone().request(&s.node)).unwrap()
    }

    #[test]
    fn issue_decode_verify() {
        let s = sample();
        let signed = signed(&s);
        assert_eq!(signed.as_bytes().len(), codec::encode(&s.cert).len() + 128);
        let decoded = SignedNodeCert::decode(signed.as_bytes()).unwrap();
        assert_eq!(decoded, signed);
        assert_eq!(decoded.verify(&NET, &s.root.public()), Ok(()));
        assert_eq!(
            decoded.verify(&NetworkId([8; 32]), &s.root.public()),
            Err(CertError::WrongNetwork)
        );
        assert!(decoded.valid_at(10) && decoded.valid_at(20) && !decoded.valid_at(21));
        // Another root does not verify it.
        let other = OrgRootKey::from_secret_bytes(&[3; 32]);
        assert_eq!(
            decoded.verify(&NET, &other.public()),
            Err(CertError::Signature(SignatureError::Invalid))
        );
        // The convenience gives the same bytes (Ed25519 signing is deterministic).
        let again = SignedNodeCert::issue_with_node_key(&s.root, &s.node, s.cert.clone()).unwrap();
        assert_eq!(again, signed);
    }

    #[test]
    fn request_round_trip_and_layout() {
        let s = sample();
        let request = s.cert.clone().request(&s.node);
        let body = codec::encode(&s.cert);
        assert_eq!(&request.as_bytes()[..body.len()], &body[..]);
        assert_eq!(request.as_bytes().len(), body.len() + 64);
        let decoded = CertRequest::decode(request.as_bytes()).unwrap();
        assert_eq!(decoded, request);
        assert_eq!(decoded.cert(), &s.cert);
        assert_eq!(decoded.verify_pop(), Ok(()));
        let signed = SignedNodeCert::issue(&s.root, decoded).unwrap();
        // The signed certificate extends the request's exact bytes.
        assert_eq!(signed.request_bytes(), request.as_bytes());
        assert!(CertRequest::decode(&request.as_bytes()[..63]).is_err());
        let mut longer = request.as_bytes().to_vec();
        longer.push(0);
        assert!(CertRequest::decode(&longer).is_err());
    }

    #[test]
    fn request_signed_by_another_key_is_refused() {
        let s = sample();
        let intruder = NodeKey::from_secret_bytes(&[5; 32]);
        let request = s.cert.clone().request(&intruder);
        assert_eq!(
            request.verify_pop(),
            Err(CertError::ProofOfPossession(SignatureError::Invalid))
        );
        assert_eq!(
            SignedNodeCert::issue(&s.root, request),
            Err(CertError::ProofOfPossession(SignatureError::Invalid))
        );
        // An empty validity interval is issued as asked but never verifies.
        let mut empty = s.cert.clone();
        empty.not_after_ms = 9;
        let issued = SignedNodeCert::issue(&s.root, empty.request(&s.node)).unwrap();
        assert_eq!(
            issued.verify(&NET, &s.root.public()),
            Err(CertError::EmptyValidity)
        );
    }

    #[test]
    fn org_signature_alone_is_not_enough() {
        // An org root signs a body with a node signature it forged (by its own key): the
        // org signature is valid, the proof of possession is not.
        let s = sample();
        let mut bytes = codec::encode(&s.cert);
        let forged_pop = s.root.sign(tags::NODE_CERT_POP, &bytes);
        bytes.extend_from_slice(&forged_pop);
        let org_sig = s.root.sign(tags::NODE_CERT, &bytes);
        bytes.extend_from_slice(&org_sig);
        let cert = SignedNodeCert::decode(&bytes).unwrap();
        assert_eq!(
            cert.verify(&NET, &s.root.public()),
            Err(CertError::ProofOfPossession(SignatureError::Invalid))
        );
        // The node's proof over one body does not carry over to another.
        let genuine = signed(&s);
        let mut other = s.cert.clone();
        other.serial = 2;
        let mut bytes = codec::encode(&other);
        bytes.extend_from_slice(&genuine.as_bytes()[genuine.as_bytes().len() - 128..][..64]);
        let org_sig = s.root.sign(tags::NODE_CERT, &bytes);
        bytes.extend_from_slice(&org_sig);
        let cert = SignedNodeCert::decode(&bytes).unwrap();
        assert!(matches!(
            cert.verify(&NET, &s.root.public()),
            Err(CertError::ProofOfPossession(_))
        ));
    }

    #[test]
    fn any_flipped_bit_fails() {
        let s = sample();
        let signed = signed(&s);
        let bytes = signed.as_bytes();
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            let ok = SignedNodeCert::decode(&b)
                .map(|c| c.verify(&NET, &s.root.public()).is_ok())
                .unwrap_or(false);
            assert!(!ok, "bit {i} flip accepted");
        }
    }

    #[test]
    fn labels_are_distinct() {
        let all = [
            CertError::Decode(DecodeError::Truncated),
            CertError::Signature(SignatureError::Invalid),
            CertError::ProofOfPossession(SignatureError::Invalid),
            CertError::WrongNetwork,
            CertError::UnknownOrg(OrgId::new("x").unwrap()),
            CertError::EmptyValidity,
        ];
        let mut labels: Vec<_> = all.iter().map(CertError::label).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }
}
