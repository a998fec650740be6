//! Decoding and signature checks of many envelopes at once, off the validator's thread.
//!
//! [`BatchVerifier::check`] decodes received envelopes and checks their signatures with
//! ed25519-dalek's batch verification where that gives exactly the answer of
//! `verify_strict`, and with `verify_strict` one by one elsewhere. The result, a
//! [`Checked`] envelope, goes to [`crate::Validator::validate_checked`], which applies
//! the rules in their usual order and takes rule 7's answer from it.
//!
//! # Why the batch agrees with `verify_strict`
//!
//! `verify_strict` accepts iff S is canonical, neither A nor R has small order, R is
//! canonically encoded and `R = [S]B − [k]A` holds exactly (cofactorless). The batch
//! checks `Σ zᵢ(Rᵢ − [Sᵢ]B + [kᵢ]Aᵢ) = 0` for random 128-bit `zᵢ`. Every envelope that
//! `verify_strict` accepts satisfies its own equation, so a batch of them passes. The
//! converse needs every difference `Rᵢ − [Sᵢ]B + [kᵢ]Aᵢ` to lie in the prime-order
//! subgroup (a torsion part could vanish in the random sum), so an envelope goes into a
//! batch only if A and R are torsion-free, R is canonical and S is canonical; any other
//! one is checked alone with `verify_strict`. A failed batch is checked again one
//! envelope at a time, so one bad signature costs its neighbours nothing but time.

use crate::codec::MAX_DECODE_BYTES;
use crate::envelope::SignedEnvelope;
use crate::ids::{tagged, tags};
use crate::keys::SignatureError;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, VerifyingKey};
use std::collections::HashMap;

/// Signatures verified together at most (ed25519-dalek's batch gains little beyond).
pub const BATCH_SIZE: usize = 64;
/// Author keys kept decompressed; the cache starts over when full.
const MAX_CACHED_KEYS: usize = 4096;

/// A received envelope, decoded and signature-checked by a [`BatchVerifier`].
#[derive(Debug)]
pub struct Checked(Inner);

// Nearly every envelope decodes: boxing the large variant would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Inner {
    /// Decoded; the result of `verify_strict` (or of a batch that agrees with it).
    Decoded {
        env: SignedEnvelope,
        signature: Result<(), SignatureError>,
    },
    /// Not decodable here; the validator decodes it again and says why.
    Raw(Vec<u8>),
}

impl Checked {
    /// The bytes as received.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Inner::Decoded { env, .. } => env.as_bytes(),
            Inner::Raw(bytes) => bytes,
        }
    }

    /// Whether the signature verified (`None` if the bytes do not decode).
    pub fn signature_ok(&self) -> Option<bool> {
        match &self.0 {
            Inner::Decoded { signature, .. } => Some(signature.is_ok()),
            Inner::Raw(_) => None,
        }
    }

    /// The decoded envelope and its signature check (`None` if the bytes do not decode).
    pub(crate) fn parts(&self) -> Option<(&SignedEnvelope, Result<(), SignatureError>)> {
        match &self.0 {
            Inner::Decoded { env, signature } => Some((env, *signature)),
            Inner::Raw(_) => None,
        }
    }
}

/// An author key as the batch needs it.
#[derive(Clone, Copy)]
struct AuthorKey {
    key: VerifyingKey,
    /// Not weak and torsion-free: may go into a batch.
    batchable: bool,
}

/// Checks envelope signatures in batches; keeps decompressed author keys.
#[derive(Default)]
pub struct BatchVerifier {
    keys: HashMap<[u8; 32], Result<AuthorKey, SignatureError>>,
}

impl std::fmt::Debug for BatchVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchVerifier")
            .field("cached_keys", &self.keys.len())
            .finish()
    }
}

impl BatchVerifier {
    /// A verifier with an empty key cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes every envelope and checks its signature; the answers are in input order
    /// and each equals what [`SignedEnvelope::verify_signature`] says.
    pub fn check(&mut self, envelopes: Vec<Vec<u8>>) -> Vec<Checked> {
        let mut out: Vec<Checked> = Vec::with_capacity(envelopes.len());
        // Envelopes that may go into a batch: (index in `out`, key).
        let mut batch: Vec<(usize, VerifyingKey)> = Vec::new();
        for bytes in envelopes {
            let env = match SignedEnvelope::decode(&bytes, MAX_DECODE_BYTES) {
                Ok(env) => env,
                Err(_) => {
                    out.push(Checked(Inner::Raw(bytes)));
                    continue;
                }
            };
            let key = self.author_key(env.header().author.as_bytes());
            let signature = match key {
                Err(e) => Err(e),
                Ok(key) if key.batchable && batchable_signature(&env.signature()) => {
                    batch.push((out.len(), key.key));
                    Ok(()) // provisional: settled by the batch below
                }
                Ok(_) => env.verify_signature(),
            };
            out.push(Checked(Inner::Decoded { env, signature }));
        }
        for chunk in batch.chunks(BATCH_SIZE) {
            if !verify_chunk(&out, chunk) {
                for (i, _) in chunk {
                    if let Inner::Decoded { env, signature } = &mut out[*i].0 {
                        *signature = env.verify_signature();
                    }
                }
            }
        }
        out
    }

    /// Decodes every envelope and checks it alone with `verify_strict` (cached keys), in
    /// input order. On this project's machine this is faster than [`Self::check`]: the
    /// torsion check each R needs before a batch costs about as much as the batch saves
    /// (BENCHMARKS.md §3).
    pub fn check_each(&mut self, envelopes: Vec<Vec<u8>>) -> Vec<Checked> {
        envelopes.into_iter().map(|e| self.check_one(e)).collect()
    }

    /// Checks one envelope (a gossip message): `verify_strict` with the cached key.
    pub fn check_one(&mut self, bytes: Vec<u8>) -> Checked {
        let env = match SignedEnvelope::decode(&bytes, MAX_DECODE_BYTES) {
            Ok(env) => env,
            Err(_) => return Checked(Inner::Raw(bytes)),
        };
        let signature = self
            .author_key(env.header().author.as_bytes())
            .and_then(|key| {
                let msg = tagged(tags::ENVELOPE, env.signed_bytes());
                key.key
                    .verify_strict(&msg, &Signature::from_bytes(&env.signature()))
                    .map_err(|_| SignatureError::Invalid)
            });
        Checked(Inner::Decoded { env, signature })
    }

    /// The decompressed key of an author, from the cache (parsed and judged once).
    fn author_key(&mut self, author: &[u8; 32]) -> Result<AuthorKey, SignatureError> {
        if let Some(key) = self.keys.get(author) {
            return *key;
        }
        if self.keys.len() >= MAX_CACHED_KEYS {
            self.keys.clear();
        }
        let key = VerifyingKey::from_bytes(author)
            .map_err(|_| SignatureError::InvalidKey)
            .and_then(|key| {
                if key.is_weak() {
                    return Err(SignatureError::WeakKey);
                }
                let batchable = key.to_edwards().is_torsion_free();
                Ok(AuthorKey { key, batchable })
            });
        self.keys.insert(*author, key);
        key
    }
}

/// Whether a signature's R and S are such that the batch answers as `verify_strict`
/// does: S canonical, R canonically encoded, not of small order and torsion-free.
fn batchable_signature(sig: &[u8; 64]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    if Scalar::from_canonical_bytes(s).is_none().into() || !canonical_y(&r) {
        return false;
    }
    CompressedEdwardsY(r)
        .decompress()
        .is_some_and(|point| !point.is_small_order() && point.is_torsion_free())
}

/// Whether the y coordinate of an encoded point is below p = 2²⁵⁵ − 19 (decompression
/// reduces it silently; `verify_strict` compares R's bytes, so only canonical R pass).
fn canonical_y(encoded: &[u8; 32]) -> bool {
    let top = encoded[31] & 0x7f;
    !(top == 0x7f && encoded[1..31].iter().all(|b| *b == 0xff) && encoded[0] >= 0xed)
}

/// Batch-verifies the envelopes of `chunk` (indices into `out`, with their keys).
fn verify_chunk(out: &[Checked], chunk: &[(usize, VerifyingKey)]) -> bool {
    let mut messages = Vec::with_capacity(chunk.len());
    let mut signatures = Vec::with_capacity(chunk.len());
    let mut keys = Vec::with_capacity(chunk.len());
    for (i, key) in chunk {
        let Inner::Decoded { env, .. } = &out[*i].0 else {
            return false;
        };
        messages.push(tagged(tags::ENVELOPE, env.signed_bytes()));
        signatures.push(Signature::from_bytes(&env.signature()));
        keys.push(*key);
    }
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Draft, Kind};
    use crate::ids::{EnvelopeId, NetworkId, TopicId};
    use crate::{NodeKey, Tlp};
    use curve25519_dalek::EdwardsPoint;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use rand_chacha08::ChaCha20Rng;
    use rand_chacha08::rand_core::SeedableRng;
    use sha2::{Digest, Sha512};

    /// A clear envelope of `key`, seq `seq`.
    fn envelope(key: &NodeKey, seq: u64) -> Vec<u8> {
        let draft = Draft {
            network_id: NetworkId([7; 32]),
            topic_id: TopicId([9; 32]),
            seq,
            prev: if seq == 1 {
                EnvelopeId::default()
            } else {
                EnvelopeId([seq as u8; 32])
            },
            charter_version: 1,
            timestamp_ms: 1_000 + seq,
            kind: Kind::Evidence,
            key_epoch: 0,
            tlp: Tlp::Green,
        };
        SignedEnvelope::seal_clear(key, &draft, format!("body {seq}").as_bytes())
            .expect("seal")
            .into_bytes()
    }

    /// What `verify_strict` says of `bytes` (through the envelope's own check).
    fn strict(bytes: &[u8]) -> bool {
        SignedEnvelope::decode(bytes, MAX_DECODE_BYTES)
            .expect("decodes")
            .verify_signature()
            .is_ok()
    }

    /// The batch's answers for `envelopes`, as one batch and each alone.
    fn batch(envelopes: &[Vec<u8>]) -> Vec<bool> {
        let mut verifier = BatchVerifier::new();
        let all: Vec<bool> = verifier
            .check(envelopes.to_vec())
            .iter()
            .map(|c| c.signature_ok().expect("decoded"))
            .collect();
        for (bytes, ok) in envelopes.iter().zip(&all) {
            let one = BatchVerifier::new().check_one(bytes.clone());
            assert_eq!(one.signature_ok(), Some(*ok), "check_one disagrees");
        }
        all
    }

    /// Asserts that the batch answers as `verify_strict` for `odd` placed among 63
    /// good envelopes, and returns `verify_strict`'s answer for it.
    fn agrees_in_batch(odd: Vec<u8>) -> bool {
        let key = NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let mut envelopes: Vec<Vec<u8>> = (1..=63).map(|s| envelope(&key, s)).collect();
        envelopes.insert(17, odd);
        let expected: Vec<bool> = envelopes.iter().map(|e| strict(e)).collect();
        assert_eq!(batch(&envelopes), expected);
        expected[17]
    }

    /// `bytes` with the author key replaced by `author` and the signature by `sig`.
    fn with(bytes: &[u8], old_author: &[u8; 32], author: &[u8; 32], sig: &[u8; 64]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let at = out
            .windows(32)
            .position(|w| w == old_author)
            .expect("author in header");
        out[at..at + 32].copy_from_slice(author);
        let n = out.len();
        out[n - 64..].copy_from_slice(sig);
        out
    }

    /// k = H(R ‖ A ‖ M) for the envelope `bytes` (signature part ignored).
    fn challenge(r: &[u8; 32], a: &[u8; 32], bytes: &[u8]) -> Scalar {
        let msg = tagged(tags::ENVELOPE, &bytes[..bytes.len() - 64]);
        let mut h = Sha512::new();
        h.update(r);
        h.update(a);
        h.update(&msg);
        Scalar::from_bytes_mod_order_wide(&h.finalize().into())
    }

    fn sig(r: &EdwardsPoint, s: &Scalar) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(r.compress().as_bytes());
        out[32..].copy_from_slice(s.as_bytes());
        out
    }

    /// A signer with secret scalar `a` and public point `a·B + torsion`, signing by hand.
    struct Forger {
        a: Scalar,
        public: EdwardsPoint,
    }

    impl Forger {
        fn new(seed: u8, torsion: EdwardsPoint) -> Self {
            let a = Scalar::from_bytes_mod_order([seed; 32]);
            Self {
                a,
                public: EdwardsPoint::mul_base(&a) + torsion,
            }
        }

        /// Envelope `seq` signed with nonce point `r·B + r_torsion` (S = r + k·a).
        fn sign(&self, seq: u64, r: Scalar, r_torsion: EdwardsPoint) -> Vec<u8> {
            let honest = NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(seq));
            let template = envelope(&honest, seq);
            let a_bytes = self.public.compress().to_bytes();
            let big_r = EdwardsPoint::mul_base(&r) + r_torsion;
            let r_bytes = big_r.compress().to_bytes();
            let unsigned = with(&template, honest.public().as_bytes(), &a_bytes, &[0; 64]);
            let k = challenge(&r_bytes, &a_bytes, &unsigned);
            with(
                &unsigned,
                &a_bytes,
                &a_bytes,
                &sig(&big_r, &(r + k * self.a)),
            )
        }
    }

    #[test]
    fn good_signatures_pass_in_a_batch_and_alone() {
        let key = NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(3));
        let envelopes: Vec<Vec<u8>> = (1..=100).map(|s| envelope(&key, s)).collect();
        assert!(batch(&envelopes).iter().all(|ok| *ok));
    }

    #[test]
    fn one_bad_signature_in_64_fails_alone() {
        let key = NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(4));
        let mut envelopes: Vec<Vec<u8>> = (1..=64).map(|s| envelope(&key, s)).collect();
        let n = envelopes[40].len();
        envelopes[40][n - 1] ^= 0x01;
        let answers = batch(&envelopes);
        let expected: Vec<bool> = (0..64).map(|i| i != 40).collect();
        assert_eq!(answers, expected);
        assert_eq!(
            answers,
            envelopes.iter().map(|e| strict(e)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn small_order_r_is_refused_as_verify_strict_does() {
        // R of order 8 and S = k·a: the equation differs from R's by R alone, so a
        // batch without the small-order check could pass it.
        for (i, torsion) in EIGHT_TORSION.iter().enumerate() {
            let forger = Forger::new(11, EdwardsPoint::default());
            let bytes = forger.sign(i as u64 + 1, Scalar::ZERO, *torsion);
            assert!(!agrees_in_batch(bytes), "small-order R {i} accepted");
        }
    }

    #[test]
    fn mixed_order_r_is_refused_as_verify_strict_does() {
        for (i, torsion) in EIGHT_TORSION.iter().enumerate().skip(1) {
            let forger = Forger::new(12, EdwardsPoint::default());
            let bytes = forger.sign(i as u64 + 1, Scalar::from(1234u64 + i as u64), *torsion);
            assert!(!agrees_in_batch(bytes), "mixed-order R {i} accepted");
        }
    }

    #[test]
    fn mixed_order_a_gets_verify_strict_answer_either_way() {
        // A = a·B + T with T of order 8: verify_strict accepts iff k·T = 0, that is
        // k ≡ 0 (mod 8); a random-coefficient batch could accept other k too.
        let forger = Forger::new(13, EIGHT_TORSION[1]);
        let mut seen = (0, 0);
        for seq in 1..=64u64 {
            let bytes = forger.sign(seq, Scalar::from(99u64 + seq), EdwardsPoint::default());
            if agrees_in_batch(bytes) {
                seen.0 += 1;
            } else {
                seen.1 += 1;
            }
        }
        assert!(seen.0 > 0 && seen.1 > 0, "both answers exercised: {seen:?}");
    }

    #[test]
    fn non_canonical_s_is_refused_as_verify_strict_does() {
        let key = NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(5));
        let mut bytes = envelope(&key, 1);
        assert!(strict(&bytes));
        // S + ℓ: the same scalar mod ℓ, not canonical.
        let n = bytes.len();
        let mut s = [0u8; 32];
        s.copy_from_slice(&bytes[n - 32..]);
        const ELL: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(s[i]) + u16::from(ELL[i]) + carry;
            s[i] = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        bytes[n - 32..].copy_from_slice(&s);
        assert!(!agrees_in_batch(bytes));
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        let forger = Forger::new(14, EdwardsPoint::default());
        let good = forger.sign(1, Scalar::from(5u64), EdwardsPoint::default());
        assert!(agrees_in_batch(good.clone()));
        let a = forger.public.compress().to_bytes();
        // A small-order key (the identity) with any signature.
        let weak = with(
            &good,
            &a,
            &EdwardsPoint::default().compress().to_bytes(),
            &[1; 64],
        );
        assert!(!agrees_in_batch(weak));
    }

    #[test]
    fn undecodable_bytes_are_left_to_the_validator() {
        let checked = BatchVerifier::new().check(vec![vec![1, 2, 3]]);
        assert_eq!(checked[0].signature_ok(), None);
        assert_eq!(checked[0].bytes(), &[1, 2, 3]);
    }
}
