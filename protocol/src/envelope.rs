//! The signed envelope: `encode(Header) ‖ payload ‖ signature(64)`.
//!
//! The signature is by the author's node key over
//! `"alertmesh/v1/envelope" ‖ 0x00 ‖ encode(Header) ‖ payload`, i.e. over the exact bytes
//! that precede it. The envelope id is `SHA-256` of the complete signed bytes.
//!
//! For alert-bearing kinds the payload is XChaCha20-Poly1305 ciphertext under the author's
//! sender key for the topic, with `Header.nonce` as nonce and the encoded header as
//! associated data. Key packages and evidence travel in clear (they are public by design).

use crate::alert::{Alert, AlertUpdate, Content, MAX_ALERT_BYTES, Retraction, Tlp};
use crate::codec::{self, DecodeError};
use crate::ids::{EnvelopeId, NetworkId, NodePublicKey, TopicId, sha256, tags};
use crate::keys::{NodeKey, Signature, SignatureError};
use crate::sender_key::{CryptoError, SenderKey};
use bincode::{Decode, Encode};
use rand_core::CryptoRngCore;

/// The only header version this implementation speaks.
pub const ENVELOPE_VERSION: u8 = 1;
/// Size of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

impl Content {
    /// The envelope kind that carries this content.
    pub fn kind(&self) -> Kind {
        match self {
            Content::Alert(_) => Kind::Alert,
            Content::Update(_) => Kind::Update,
            Content::Retraction(_) => Kind::Retraction,
        }
    }
}

/// What an envelope carries. In JSON: its [`Kind::as_str`] name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A new alert (encrypted [`Alert`]).
    Alert,
    /// An update of an earlier alert (encrypted [`AlertUpdate`]).
    Update,
    /// A retraction (encrypted [`Retraction`]).
    Retraction,
    /// A sender-key package (clear [`crate::KeyPackage`]).
    KeyPackage,
    /// Equivocation evidence (clear [`crate::Evidence`]).
    Evidence,
}

impl Kind {
    /// Whether the payload is encrypted under the author's sender key.
    pub fn is_encrypted(self) -> bool {
        matches!(self, Kind::Alert | Kind::Update | Kind::Retraction)
    }

    /// Name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Update => "update",
            Kind::Retraction => "retraction",
            Kind::KeyPackage => "key_package",
            Kind::Evidence => "evidence",
        }
    }
}

/// The envelope header, bound into the signature and used as AEAD associated data.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Header {
    /// [`ENVELOPE_VERSION`].
    pub version: u8,
    /// The network.
    pub network_id: NetworkId,
    /// The topic.
    pub topic_id: TopicId,
    /// The author's node key.
    pub author: NodePublicKey,
    /// Position in the author's chain on this topic, from 1.
    pub seq: u64,
    /// Id of the author's previous envelope on this topic (zero for `seq` 1).
    pub prev: EnvelopeId,
    /// The charter version the author published under.
    pub charter_version: u64,
    /// The author's claimed time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// What the payload is.
    pub kind: Kind,
    /// The sender-key epoch (encrypted kinds) or the epoch a key package carries.
    pub key_epoch: u64,
    /// TLP marking.
    pub tlp: Tlp,
    /// XChaCha20-Poly1305 nonce (zero for clear kinds).
    pub nonce: [u8; 24],
}

/// A decoded envelope that keeps the exact received bytes.
///
/// Decoding does not check the signature; [`SignedEnvelope::verify_signature`] does, over
/// the received bytes. Nothing inside should be trusted before that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEnvelope {
    bytes: Vec<u8>,
    header_len: usize,
    header: Header,
    id: EnvelopeId,
}

/// Header fields chosen by the publisher (the nonce is drawn when sealing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The network.
    pub network_id: NetworkId,
    /// The topic.
    pub topic_id: TopicId,
    /// Position in the author's chain, from 1.
    pub seq: u64,
    /// Id of the previous envelope (zero for `seq` 1).
    pub prev: EnvelopeId,
    /// Charter version published under.
    pub charter_version: u64,
    /// Claimed time.
    pub timestamp_ms: u64,
    /// Payload kind.
    pub kind: Kind,
    /// Sender-key epoch.
    pub key_epoch: u64,
    /// TLP marking.
    pub tlp: Tlp,
}

impl Draft {
    fn header(&self, author: NodePublicKey, nonce: [u8; 24]) -> Header {
        Header {
            version: ENVELOPE_VERSION,
            network_id: self.network_id,
            topic_id: self.topic_id,
            author,
            seq: self.seq,
            prev: self.prev,
            charter_version: self.charter_version,
            timestamp_ms: self.timestamp_ms,
            kind: self.kind,
            key_epoch: self.key_epoch,
            tlp: self.tlp,
            nonce,
        }
    }
}

/// Why an envelope could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The draft's kind does not match the sealing function.
    #[error("kind {0:?} cannot be sealed this way")]
    WrongKind(Kind),
    /// The sender key's epoch is not the draft's.
    #[error("sender key epoch differs from the draft's key_epoch")]
    EpochMismatch,
    /// The result would exceed the size limit.
    #[error("sealed envelope would be {0} bytes, over the limit")]
    TooLarge(usize),
}

impl SignedEnvelope {
    /// Encrypts `plaintext` under `key` and signs: for [`Kind::Alert`], [`Kind::Update`]
    /// and [`Kind::Retraction`].
    pub fn seal_encrypted(
        author: &NodeKey,
        draft: &Draft,
        key: &SenderKey,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, SealError> {
        if !draft.kind.is_encrypted() {
            return Err(SealError::WrongKind(draft.kind));
        }
        if key.epoch() != draft.key_epoch {
            return Err(SealError::EpochMismatch);
        }
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let header = draft.header(author.public(), nonce);
        let header_bytes = codec::encode(&header);
        let ciphertext = key.encrypt(&nonce, &header_bytes, plaintext);
        Ok(Self::sign(author, header, header_bytes, &ciphertext))
    }

    /// Signs a clear payload: for [`Kind::KeyPackage`] and [`Kind::Evidence`].
    pub fn seal_clear(author: &NodeKey, draft: &Draft, payload: &[u8]) -> Result<Self, SealError> {
        if draft.kind.is_encrypted() {
            return Err(SealError::WrongKind(draft.kind));
        }
        let header = draft.header(author.public(), [0u8; 24]);
        let header_bytes = codec::encode(&header);
        Ok(Self::sign(author, header, header_bytes, payload))
    }

    fn sign(author: &NodeKey, header: Header, mut bytes: Vec<u8>, payload: &[u8]) -> Self {
        let header_len = bytes.len();
        bytes.reserve(payload.len() + SIGNATURE_LEN);
        bytes.extend_from_slice(payload);
        let sig = author.sign(tags::ENVELOPE, &bytes);
        bytes.extend_from_slice(&sig);
        let id = EnvelopeId(sha256(&bytes));
        Self {
            bytes,
            header_len,
            header,
            id,
        }
    }

    /// Strictly decodes an envelope: size limit first, canonical header, room for the
    /// signature. Does **not** check the signature.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<Self, DecodeError> {
        if bytes.len() > max_len {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: max_len,
            });
        }
        let (header, header_len) = codec::decode_prefix::<Header>(bytes, max_len)?;
        if bytes.len() < header_len + SIGNATURE_LEN {
            return Err(DecodeError::Truncated);
        }
        if header.version != ENVELOPE_VERSION {
            return Err(DecodeError::InvalidField {
                field: "version",
                reason: "unsupported envelope version",
            });
        }
        if header.seq == 0 {
            return Err(DecodeError::InvalidField {
                field: "seq",
                reason: "sequence numbers start at 1",
            });
        }
        if header.seq == 1 && header.prev != EnvelopeId::default() {
            return Err(DecodeError::InvalidField {
                field: "prev",
                reason: "must be zero for seq 1",
            });
        }
        if !header.kind.is_encrypted() && header.nonce != [0u8; 24] {
            return Err(DecodeError::InvalidField {
                field: "nonce",
                reason: "must be zero for clear payloads",
            });
        }
        Ok(Self {
            id: EnvelopeId(sha256(bytes)),
            bytes: bytes.to_vec(),
            header_len,
            header,
        })
    }

    /// Checks the author's signature over the exact received bytes with `verify_strict`.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        self.header
            .author
            .verify(tags::ENVELOPE, self.signed_bytes(), &self.signature())
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The envelope id (SHA-256 of all bytes).
    pub fn id(&self) -> EnvelopeId {
        self.id
    }

    /// The complete bytes as received or sealed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the envelope, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The encoded header (the AEAD associated data).
    pub fn header_bytes(&self) -> &[u8] {
        &self.bytes[..self.header_len]
    }

    /// The payload (ciphertext or clear body).
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.header_len..self.bytes.len() - SIGNATURE_LEN]
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - SIGNATURE_LEN]
    }

    /// The signature.
    pub fn signature(&self) -> Signature {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&self.bytes[self.bytes.len() - SIGNATURE_LEN..]);
        sig
    }

    /// Decrypts an encrypted payload with the author's sender key for this epoch.
    pub fn decrypt(&self, key: &SenderKey) -> Result<Vec<u8>, CryptoError> {
        if !self.header.kind.is_encrypted() {
            return Err(CryptoError::NotEncrypted);
        }
        if key.epoch() != self.header.key_epoch {
            return Err(CryptoError::WrongEpoch);
        }
        key.decrypt(&self.header.nonce, self.header_bytes(), self.payload())
    }

    /// Decrypts and decodes the alert content of an encrypted envelope.
    pub fn open(&self, key: &SenderKey) -> Result<Content, OpenError> {
        let plaintext = self.decrypt(key)?;
        decode_content(self.header.kind, &plaintext)
    }
}

/// Why an envelope's content could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The plaintext is not valid content for the kind.
    #[error(transparent)]
    Content(#[from] crate::alert::AlertError),
}

/// Decodes and bounds-checks the plaintext of an alert-bearing kind.
pub fn decode_content(kind: Kind, plaintext: &[u8]) -> Result<Content, OpenError> {
    // An `Alert` or `AlertUpdate` may be followed by one `Trailer` (PROTOCOL.md §10.2).
    fn trailer(rest: &[u8]) -> Result<Option<String>, crate::alert::AlertError> {
        if rest.is_empty() {
            return Ok(None);
        }
        match codec::decode_exact::<crate::alert::Trailer>(rest, MAX_ALERT_BYTES)? {
            crate::alert::Trailer::Stix(json) => Ok(Some(json)),
        }
    }
    let content = match kind {
        Kind::Alert => {
            let (mut alert, used) = codec::decode_prefix::<Alert>(plaintext, MAX_ALERT_BYTES)
                .map_err(crate::alert::AlertError::from)?;
            alert.stix = trailer(plaintext.get(used..).unwrap_or_default())?;
            Content::Alert(alert)
        }
        Kind::Update => {
            let (mut update, used) =
                codec::decode_prefix::<AlertUpdate>(plaintext, MAX_ALERT_BYTES)
                    .map_err(crate::alert::AlertError::from)?;
            update.alert.stix = trailer(plaintext.get(used..).unwrap_or_default())?;
            Content::Update(update)
        }
        Kind::Retraction => Content::Retraction(
            codec::decode_exact::<Retraction>(plaintext, MAX_ALERT_BYTES)
                .map_err(crate::alert::AlertError::from)?,
        ),
        Kind::KeyPackage | Kind::Evidence => {
            return Err(OpenError::Crypto(CryptoError::NotEncrypted));
        }
    };
    content.check()?;
    Ok(content)
}
