//! Secret keys: org root keys, node signing keys and node agreement (X25519) keys.
//!
//! Secrets zeroize on drop and print as `SecretKey(..)`. Public halves live in
//! [`crate::ids`]. Signature checks always use `verify_strict` and refuse weak keys.

use crate::ids::{AgreementPublicKey, NodePublicKey, OrgPublicKey, tagged};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, Serializable};
use rand_core::CryptoRngCore;
use std::fmt;
use zeroize::Zeroizing;

/// The HPKE KEM used for sealing sender keys: DHKEM(X25519, HKDF-SHA256).
pub(crate) type Kem = hpke::kem::X25519HkdfSha256;

/// An Ed25519 signature.
pub type Signature = [u8; 64];

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key bytes are not a valid Ed25519 point.
    #[error("public key is not a valid Ed25519 point")]
    InvalidKey,
    /// The public key has small order and could validate forged signatures.
    #[error("public key is weak (small order)")]
    WeakKey,
    /// The signature does not verify under `verify_strict`.
    #[error("signature does not verify")]
    Invalid,
}

fn verify(
    public: &[u8; 32],
    tag: &[u8],
    body: &[u8],
    sig: &Signature,
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| SignatureError::InvalidKey)?;
    if key.is_weak() {
        return Err(SignatureError::WeakKey);
    }
    let sig = ed25519_dalek::Signature::from_bytes(sig);
    key.verify_strict(&tagged(tag, body), &sig)
        .map_err(|_| SignatureError::Invalid)
}

impl OrgPublicKey {
    /// Checks `sig` over `tag ‖ 0 ‖ body` with `verify_strict`.
    pub fn verify(&self, tag: &[u8], body: &[u8], sig: &Signature) -> Result<(), SignatureError> {
        verify(&self.0, tag, body, sig)
    }
}

impl NodePublicKey {
    /// Checks `sig` over `tag ‖ 0 ‖ body` with `verify_strict`.
    pub fn verify(&self, tag: &[u8], body: &[u8], sig: &Signature) -> Result<(), SignatureError> {
        verify(&self.0, tag, body, sig)
    }
}

macro_rules! signing_key {
    ($(#[$doc:meta])* $name:ident, $public:ident) => {
        $(#[$doc])*
        pub struct $name(SigningKey);

        impl $name {
            /// Generates a fresh key from the caller's RNG.
            pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
                Self(SigningKey::generate(rng))
            }

            /// Rebuilds a key from its 32 secret bytes.
            pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
                Self(SigningKey::from_bytes(bytes))
            }

            /// The secret bytes, in a buffer that zeroizes on drop.
            pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
                Zeroizing::new(self.0.to_bytes())
            }

            /// The public key.
            pub fn public(&self) -> $public {
                $public(self.0.verifying_key().to_bytes())
            }

            /// Signs `tag ‖ 0 ‖ body`.
            pub fn sign(&self, tag: &[u8], body: &[u8]) -> Signature {
                self.0.sign(&tagged(tag, body)).to_bytes()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("SecretKey(..)")
            }
        }
    };
}

signing_key!(
    /// An organization's root identity key. Signs node certificates and charters; meant to
    /// be kept offline.
    OrgRootKey,
    OrgPublicKey
);
signing_key!(
    /// A node's signing key: its libp2p identity and the key that signs its envelopes.
    NodeKey,
    NodePublicKey
);

impl NodeKey {
    /// The Ed25519 secret for building the node's libp2p identity.
    pub fn libp2p_secret(&self) -> Zeroizing<[u8; 32]> {
        self.secret_bytes()
    }
}

/// A node's X25519 key: sender keys for topics it may read are sealed to it.
pub struct AgreementKey(Zeroizing<[u8; 32]>);

impl AgreementKey {
    /// Generates a fresh key from the caller's RNG.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// Rebuilds a key from its 32 secret bytes.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The secret bytes, in a buffer that zeroizes on drop.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// The public key.
    pub fn public(&self) -> AgreementPublicKey {
        let public = Kem::sk_to_pk(&self.hpke_secret());
        let mut out = [0u8; 32];
        out.copy_from_slice(&public.to_bytes());
        AgreementPublicKey(out)
    }

    pub(crate) fn hpke_secret(&self) -> <Kem as hpke::Kem>::PrivateKey {
        // Any 32 bytes form a valid X25519 secret (it is clamped), so this cannot fail.
        match <Kem as hpke::Kem>::PrivateKey::from_bytes(self.0.as_ref()) {
            Ok(key) => key,
            Err(_) => unreachable!("X25519 accepts every 32-byte secret"),
        }
    }
}

impl fmt::Debug for AgreementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha08::ChaCha20Rng;
    use rand_chacha08::rand_core::SeedableRng;

    #[test]
    fn secrets_print_redacted() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let k = NodeKey::generate(&mut rng);
        let hex_secret = hex::encode(k.secret_bytes().as_ref());
        let printed = format!(
            "{k:?} {:?} {:?}",
            OrgRootKey::generate(&mut rng),
            AgreementKey::generate(&mut rng)
        );
        assert_eq!(printed, "SecretKey(..) SecretKey(..) SecretKey(..)");
        assert!(!printed.contains(&hex_secret));
    }

    #[test]
    fn sign_verify_with_domain_separation() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let k = OrgRootKey::generate(&mut rng);
        let sig = k.sign(b"tag-a", b"body");
        assert_eq!(k.public().verify(b"tag-a", b"body", &sig), Ok(()));
        assert_eq!(
            k.public().verify(b"tag-b", b"body", &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            k.public().verify(b"tag-a", b"bodY", &sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn weak_and_invalid_keys_refused() {
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1; // the identity point: small order
            OrgPublicKey(b)
        };
        assert_eq!(
            identity.verify(b"t", b"m", &[0u8; 64]),
            Err(SignatureError::WeakKey)
        );
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            OrgPublicKey(off_curve).verify(b"t", b"m", &[0u8; 64]),
            Err(SignatureError::InvalidKey)
        );
    }
}
