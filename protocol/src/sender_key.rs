//! Sender keys (one per publishing node, topic and epoch) and the key packages that seal
//! them to every reader node with HPKE.
//!
//! HPKE suite (RFC 9180, base mode): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305. `info = "alertmesh/v1/sender-key" ‖ 0x00 ‖ network_id ‖ topic_id ‖
//! author ‖ epoch (u64 LE)`, `aad = recipient X25519 public key`. The sealed plaintext is
//! the 32-byte sender key.

use crate::codec::{self, DecodeError};
use crate::ids::{AgreementPublicKey, NetworkId, NodePublicKey, TopicId, tags};
use crate::keys::{AgreementKey, Kem};
use bincode::{Decode, Encode};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRngCore;
use std::fmt;
use zeroize::Zeroizing;

/// Most readers one key package may address.
pub const MAX_KEY_PACKAGE_ENTRIES: usize = 1024;

type HpkeAead = hpke::aead::ChaCha20Poly1305;
type HpkeKdf = hpke::kdf::HkdfSha256;

/// A symmetric sender key for one (publisher, topic, epoch).
#[derive(Clone)]
pub struct SenderKey {
    epoch: u64,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SenderKey(epoch {}, ..)", self.epoch)
    }
}

/// Why a decryption failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The AEAD tag does not verify: wrong key or tampered header or ciphertext.
    #[error("decryption failed (wrong key, or tampered header or ciphertext)")]
    Aead,
    /// The payload kind is not encrypted.
    #[error("payload is not encrypted")]
    NotEncrypted,
    /// The key is for another epoch.
    #[error("sender key epoch does not match the envelope")]
    WrongEpoch,
    /// The key package has no entry for this node.
    #[error("no sealed key for this node in the key package")]
    NotARecipient,
    /// HPKE failed to seal or open.
    #[error("HPKE failed")]
    Hpke,
}

impl SenderKey {
    /// A fresh random key for `epoch`.
    pub fn generate(epoch: u64, rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self { epoch, key }
    }

    /// Rebuilds a key from stored bytes.
    pub fn from_bytes(epoch: u64, bytes: &[u8; 32]) -> Self {
        Self {
            epoch,
            key: Zeroizing::new(*bytes),
        }
    }

    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The key bytes (for persisting), zeroized on drop.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.key.clone()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    /// XChaCha20-Poly1305 encryption with `aad`.
    pub fn encrypt(&self, nonce: &[u8; 24], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        // Encryption into a Vec fails only for plaintexts beyond 256 GiB.
        self.cipher()
            .encrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default()
    }

    /// XChaCha20-Poly1305 decryption with `aad`.
    pub fn decrypt(
        &self,
        nonce: &[u8; 24],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Aead)
    }
}

/// One reader's sealed copy of a sender key.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SealedKey {
    /// The reader node's X25519 key.
    pub recipient: AgreementPublicKey,
    /// HPKE encapsulated key.
    pub enc: [u8; 32],
    /// HPKE ciphertext of the 32-byte sender key (plus 16-byte tag).
    pub ciphertext: [u8; 48],
}

/// A sender key sealed to every reader node; the clear payload of a
/// [`crate::Kind::KeyPackage`] envelope.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct KeyPackage {
    /// The topic.
    pub topic_id: TopicId,
    /// The sender key's epoch.
    pub epoch: u64,
    /// One entry per reader node.
    pub entries: Vec<SealedKey>,
}

fn hpke_info(network: &NetworkId, topic: &TopicId, author: &NodePublicKey, epoch: u64) -> Vec<u8> {
    let mut info = crate::ids::tagged(tags::SENDER_KEY, network.as_bytes());
    info.extend_from_slice(topic.as_bytes());
    info.extend_from_slice(author.as_bytes());
    info.extend_from_slice(&epoch.to_le_bytes());
    info
}

/// hpke 0.13 takes rand_core 0.9 RNGs; seed one from the caller's RNG at this boundary.
fn hpke_rng(rng: &mut impl CryptoRngCore) -> rand_chacha::ChaCha20Rng {
    use rand_chacha::rand_core::SeedableRng;
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    rand_chacha::ChaCha20Rng::from_seed(*seed)
}

impl KeyPackage {
    /// Seals `key` to each recipient, in order. Recipients whose key HPKE refuses (e.g. a
    /// low-order point) are skipped and returned so the caller can report them, and so
    /// are all recipients after the first [`MAX_KEY_PACKAGE_ENTRIES`] sealed ones: the
    /// package never has more entries than [`KeyPackage::decode`] accepts.
    pub fn seal(
        network: &NetworkId,
        topic: &TopicId,
        author: &NodePublicKey,
        key: &SenderKey,
        recipients: &[AgreementPublicKey],
        rng: &mut impl CryptoRngCore,
    ) -> (Self, Vec<AgreementPublicKey>) {
        let info = hpke_info(network, topic, author, key.epoch);
        let mut hrng = hpke_rng(rng);
        let mut entries = Vec::with_capacity(recipients.len().min(MAX_KEY_PACKAGE_ENTRIES));
        let mut refused = Vec::new();
        for recipient in recipients {
            if entries.len() == MAX_KEY_PACKAGE_ENTRIES {
                refused.push(*recipient);
                continue;
            }
            match seal_one(recipient, &info, key, &mut hrng) {
                Some(entry) => entries.push(entry),
                None => refused.push(*recipient),
            }
        }
        let package = Self {
            topic_id: *topic,
            epoch: key.epoch,
            entries,
        };
        (package, refused)
    }

    /// Encodes the package (the envelope payload).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The largest encoded package: topic (32), epoch (8), entry count (8) and
    /// [`MAX_KEY_PACKAGE_ENTRIES`] entries of 112 bytes.
    pub const MAX_ENCODED_LEN: usize = 32 + 8 + 8 + MAX_KEY_PACKAGE_ENTRIES * (32 + 32 + 48);

    /// Strictly decodes a package of at most [`MAX_KEY_PACKAGE_ENTRIES`] entries.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_exact(bytes, Self::MAX_ENCODED_LEN)
    }

    /// The recipients addressed.
    pub fn recipients(&self) -> impl Iterator<Item = &AgreementPublicKey> {
        self.entries.iter().map(|e| &e.recipient)
    }

    /// Opens this node's copy of the sender key.
    pub fn open(
        &self,
        network: &NetworkId,
        author: &NodePublicKey,
        me: &AgreementKey,
    ) -> Result<SenderKey, CryptoError> {
        let my_pub = me.public();
        let entry = self
            .entries
            .iter()
            .find(|e| e.recipient == my_pub)
            .ok_or(CryptoError::NotARecipient)?;
        let info = hpke_info(network, &self.topic_id, author, self.epoch);
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&entry.enc)
            .map_err(|_| CryptoError::Hpke)?;
        let plain = Zeroizing::new(
            hpke::single_shot_open::<HpkeAead, HpkeKdf, Kem>(
                &OpModeR::Base,
                &me.hpke_secret(),
                &enc,
                &info,
                &entry.ciphertext,
                my_pub.as_bytes(),
            )
            .map_err(|_| CryptoError::Hpke)?,
        );
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| CryptoError::Hpke)?;
        Ok(SenderKey::from_bytes(self.epoch, &bytes))
    }
}

fn seal_one(
    recipient: &AgreementPublicKey,
    info: &[u8],
    key: &SenderKey,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Option<SealedKey> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes()).ok()?;
    let (enc, ct) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, Kem, _>(
        &OpModeS::Base,
        &pk,
        info,
        key.key.as_ref(),
        recipient.as_bytes(),
        rng,
    )
    .ok()?;
    Some(SealedKey {
        recipient: *recipient,
        enc: enc.to_bytes().into(),
        ciphertext: ct.as_slice().try_into().ok()?,
    })
}
