//! C2SP signed-note, tlog-checkpoint and tlog-cosignature/v1, byte for byte.
//!
//! A note is `text ‖ "\n" ‖ signature lines`; the text ends with a newline and each
//! signature line is `"— " ‖ name ‖ " " ‖ base64(key id ‖ signature) ‖ "\n"`.
//! Ed25519 note signatures sign the text; their key id is
//! `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4]`. A cosignature/v1 line's payload is
//! `key id ‖ u64 BE timestamp ‖ signature`, its key id uses `0x04`, and it signs
//! `"cosignature/v1\ntime " ‖ decimal timestamp ‖ "\n" ‖ checkpoint text`.
//!
//! Signatures are raw Ed25519 over these messages, checked with `verify_strict`. They
//! cannot collide with alertmesh's tagged signatures (`tag ‖ 0x00 ‖ body`): a note text
//! holds no control characters but newlines, so it never contains a zero byte.

use super::tree::Hash;
use crate::ids::{NetworkId, NodePublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Largest note accepted (text and signatures).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Most signature lines in a note.
pub const MAX_NOTE_SIGNATURES: usize = 100;
/// Most extension lines in a checkpoint.
pub const MAX_EXTENSION_LINES: usize = 256;
/// Signature type byte of Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte of Ed25519 cosignature/v1.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Why a note, checkpoint or cosignature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Larger than [`MAX_NOTE_BYTES`] or more than [`MAX_NOTE_SIGNATURES`] signatures.
    #[error("note too large")]
    TooLarge,
    /// Not a well-formed note.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// Not a well-formed checkpoint body.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// The origin is not an alertmesh log of this network.
    #[error("origin is not an alertmesh log of this network")]
    ForeignOrigin,
    /// No signature by the expected key.
    #[error("no signature by the expected key")]
    Unsigned,
    /// A signature by the expected key does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The 4-byte key id.
    pub key_id: [u8; 4],
    /// The signature bytes after the key id.
    pub sig: Vec<u8>,
}

impl NoteSignature {
    /// Parses one signature line (without its newline).
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
            "signature line must start with an em dash",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("signature line lacks a space"))?;
        if !valid_name(name) {
            return Err(NoteError::Malformed("invalid key name"));
        }
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if raw.len() < 5 || B64.encode(&raw) != b64 {
            return Err(NoteError::Malformed("signature is not canonical base64"));
        }
        Ok(Self {
            name: name.to_string(),
            key_id: [raw[0], raw[1], raw[2], raw[3]],
            sig: raw[4..].to_vec(),
        })
    }

    /// The line, newline included.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.sig);
        format!("\u{2014} {} {}\n", self.name, B64.encode(raw))
    }
}

/// A parsed signed note: its text and signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text, ending with a newline.
    pub text: String,
    /// The signature lines, in order.
    pub sigs: Vec<NoteSignature>,
}

/// The key id of `name` and an Ed25519 key under signature type `alg`.
pub fn key_id(name: &str, alg: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

impl Note {
    /// Parses a note strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        let split = s
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no signature block"))?;
        let (text, sigs) = (&s[..=split], &s[split + 2..]);
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("control character in text"));
        }
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end with a newline",
            ));
        }
        let lines: Vec<&str> = sigs[..sigs.len() - 1].split('\n').collect();
        if lines.len() > MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooLarge);
        }
        let sigs = lines
            .into_iter()
            .map(NoteSignature::parse_line)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            text: text.to_string(),
            sigs,
        })
    }

    /// Appends `sigs` in order while the note stays within [`MAX_NOTE_BYTES`] and
    /// [`MAX_NOTE_SIGNATURES`], so that the note still parses; returns how many fit.
    pub fn add_signatures_within_limits(
        &mut self,
        sigs: impl IntoIterator<Item = NoteSignature>,
    ) -> usize {
        let mut len = self.to_bytes().len();
        let mut added = 0;
        for sig in sigs {
            let line = sig.line().len();
            if self.sigs.len() >= MAX_NOTE_SIGNATURES || len + line > MAX_NOTE_BYTES {
                break;
            }
            len += line;
            self.sigs.push(sig);
            added += 1;
        }
        added
    }

    /// The note's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.sigs {
            s.push_str(&sig.line());
        }
        s.into_bytes()
    }
}

fn ed25519_verify(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> Result<(), NoteError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| NoteError::BadSignature)?;
    if key.is_weak() {
        return Err(NoteError::BadSignature);
    }
    let sig: [u8; 64] = sig.try_into().map_err(|_| NoteError::BadSignature)?;
    key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| NoteError::BadSignature)
}

/// An alertmesh log checkpoint: a node's tree of authored envelope ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The network.
    pub network: NetworkId,
    /// The author (its log).
    pub author: NodePublicKey,
    /// Leaves in the tree.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// The author's chain head per topic when it signed: `(topic, seq)`, topics
    /// ascending (extension lines `head <topic hex> <seq>`).
    pub heads: Vec<(crate::ids::TopicId, u64)>,
}

/// The origin line of `author`'s log on `network`.
pub fn origin(network: &NetworkId, author: &NodePublicKey) -> String {
    format!("alertmesh.log/{}/{}", network.to_hex(), author.to_hex())
}

/// The cosigner name of the witness node `witness` on `network`.
pub fn cosigner_name(network: &NetworkId, witness: &NodePublicKey) -> String {
    format!(
        "alertmesh.witness/{}/{}",
        network.to_hex(),
        witness.to_hex()
    )
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

impl Checkpoint {
    /// The checkpoint text (the note body).
    pub fn text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            origin(&self.network, &self.author),
            self.size,
            B64.encode(self.root)
        );
        for (topic, seq) in &self.heads {
            s.push_str(&format!("head {} {seq}\n", topic.to_hex()));
        }
        s
    }

    /// Parses a checkpoint text of a log on `network`.
    pub fn parse_text(text: &str, network: &NetworkId) -> Result<Self, NoteError> {
        let bad = NoteError::MalformedCheckpoint;
        let body = text.strip_suffix('\n').ok_or(bad("no final newline"))?;
        let mut lines = body.split('\n');
        let origin_line = lines.next().ok_or(bad("no origin"))?;
        let prefix = format!("alertmesh.log/{}/", network.to_hex());
        let author_hex = origin_line
            .strip_prefix(&prefix)
            .ok_or(NoteError::ForeignOrigin)?;
        if author_hex.len() != 64 || author_hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(NoteError::ForeignOrigin);
        }
        let author = NodePublicKey::from_hex(author_hex).map_err(|_| NoteError::ForeignOrigin)?;
        let size = lines
            .next()
            .and_then(parse_u64)
            .ok_or(bad("bad tree size"))?;
        let root_b64 = lines.next().ok_or(bad("no root hash"))?;
        let root: Hash = B64
            .decode(root_b64)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(bad("bad root hash"))?;
        if B64.encode(root) != root_b64 {
            return Err(bad("root hash is not canonical base64"));
        }
        let mut heads = Vec::new();
        for line in lines {
            if heads.len() >= MAX_EXTENSION_LINES {
                return Err(bad("too many extension lines"));
            }
            let mut parts = line.split(' ');
            let (Some("head"), Some(t), Some(seq), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("unknown extension line"));
            };
            if t.len() != 64 || t.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(bad("bad head topic"));
            }
            let topic = crate::ids::TopicId::from_hex(t).map_err(|_| bad("bad head topic"))?;
            let seq = parse_u64(seq).ok_or(bad("bad head seq"))?;
            if heads.last().is_some_and(|(last, _)| *last >= topic) {
                return Err(bad("head lines not in ascending topic order"));
            }
            heads.push((topic, seq));
        }
        Ok(Self {
            network: *network,
            author,
            size,
            root,
            heads,
        })
    }

    /// Signs the checkpoint as its author: a note with one signature line.
    pub fn sign(&self, key: &crate::keys::NodeKey) -> Note {
        let text = self.text();
        let signing = SigningKey::from_bytes(&key.secret_bytes());
        let name = origin(&self.network, &self.author);
        let sig = signing.sign(text.as_bytes()).to_bytes().to_vec();
        Note {
            text,
            sigs: vec![NoteSignature {
                key_id: key_id(&name, ALG_ED25519, self.author.as_bytes()),
                name,
                sig,
            }],
        }
    }

    /// Parses a signed checkpoint of `network` and checks its author's signature.
    pub fn verify(note: &Note, network: &NetworkId) -> Result<Self, NoteError> {
        let cp = Self::parse_text(&note.text, network)?;
        let name = origin(network, &cp.author);
        let id = key_id(&name, ALG_ED25519, cp.author.as_bytes());
        let sig = note
            .sigs
            .iter()
            .find(|s| s.name == name && s.key_id == id)
            .ok_or(NoteError::Unsigned)?;
        ed25519_verify(cp.author.as_bytes(), note.text.as_bytes(), &sig.sig)?;
        Ok(cp)
    }
}

/// The message a cosignature/v1 signs.
pub fn cosigned_message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// A witness node's cosignature/v1 over a checkpoint text.
pub fn cosign(
    text: &str,
    network: &NetworkId,
    key: &crate::keys::NodeKey,
    timestamp: u64,
) -> NoteSignature {
    let me = key.public();
    let name = cosigner_name(network, &me);
    let signing = SigningKey::from_bytes(&key.secret_bytes());
    let sig = signing.sign(&cosigned_message(text, timestamp)).to_bytes();
    let mut payload = timestamp.to_be_bytes().to_vec();
    payload.extend_from_slice(&sig);
    NoteSignature {
        key_id: key_id(&name, ALG_COSIGNATURE_V1, me.as_bytes()),
        name,
        sig: payload,
    }
}

/// Checks a cosignature line by `witness` over `text`; returns its timestamp.
pub fn verify_cosignature(
    sig: &NoteSignature,
    text: &str,
    network: &NetworkId,
    witness: &NodePublicKey,
) -> Result<u64, NoteError> {
    let name = cosigner_name(network, witness);
    if sig.name != name || sig.key_id != key_id(&name, ALG_COSIGNATURE_V1, witness.as_bytes()) {
        return Err(NoteError::Unsigned);
    }
    if sig.sig.len() != 72 {
        return Err(NoteError::BadSignature);
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&sig.sig[..8]);
    let timestamp = u64::from_be_bytes(ts);
    if timestamp > i64::MAX as u64 {
        return Err(NoteError::BadSignature);
    }
    ed25519_verify(
        witness.as_bytes(),
        &cosigned_message(text, timestamp),
        &sig.sig[8..],
    )?;
    Ok(timestamp)
}

/// The witness node key a cosignature line names, if it is an alertmesh cosigner of
/// `network` (the caller still verifies it with [`verify_cosignature`]).
pub fn cosigner_of(sig: &NoteSignature, network: &NetworkId) -> Option<NodePublicKey> {
    let prefix = format!("alertmesh.witness/{}/", network.to_hex());
    let hex = sig.name.strip_prefix(&prefix)?;
    if hex.len() != 64 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    NodePublicKey::from_hex(hex).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NodeKey;

    fn key(b: u8) -> NodeKey {
        NodeKey::from_secret_bytes(&[b; 32])
    }

    fn checkpoint(author: &NodeKey) -> Checkpoint {
        Checkpoint {
            network: NetworkId([7; 32]),
            author: author.public(),
            size: 8,
            root: [9; 32],
            heads: vec![
                (crate::ids::TopicId([1; 32]), 5),
                (crate::ids::TopicId([2; 32]), 3),
            ],
        }
    }

    #[test]
    fn signed_checkpoint_round_trips_and_verifies() {
        let a = key(1);
        let cp = checkpoint(&a);
        let note = cp.sign(&a);
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(Checkpoint::verify(&parsed, &cp.network).unwrap(), cp);
        // Another network, a flipped byte, a missing signature: refused.
        assert_eq!(
            Checkpoint::verify(&parsed, &NetworkId([8; 32])),
            Err(NoteError::ForeignOrigin)
        );
        let mut forged = parsed.clone();
        forged.text = forged.text.replace("\n8\n", "\n9\n");
        assert_eq!(
            Checkpoint::verify(&forged, &cp.network),
            Err(NoteError::BadSignature)
        );
        let mut unsigned = parsed;
        unsigned.sigs[0].name = "someone".into();
        assert_eq!(
            Checkpoint::verify(&unsigned, &cp.network),
            Err(NoteError::Unsigned)
        );
    }

    #[test]
    fn signatures_are_added_only_while_the_note_still_parses() {
        let a = key(1);
        let cp = checkpoint(&a);
        let text = cp.text();
        let mut note = cp.sign(&a);
        let cosigs: Vec<_> = (0..150u8)
            .map(|i| cosign(&text, &cp.network, &key(i.wrapping_add(2)), 1_700_000_000))
            .collect();
        let added = note.add_signatures_within_limits(cosigs.clone());
        assert!(added > 0 && added < cosigs.len());
        assert_eq!(note.sigs[1..], cosigs[..added]);
        let bytes = note.to_bytes();
        assert!(bytes.len() <= MAX_NOTE_BYTES);
        assert_eq!(Note::parse(&bytes).unwrap(), note);
        // One more line would have been too large.
        note.sigs.push(cosigs[added].clone());
        assert_eq!(Note::parse(&note.to_bytes()), Err(NoteError::TooLarge));
    }

    #[test]
    fn cosignature_verifies_only_for_its_witness_and_text() {
        let (a, w) = (key(1), key(2));
        let cp = checkpoint(&a);
        let text = cp.text();
        let sig = cosign(&text, &cp.network, &w, 1_700_000_000);
        assert_eq!(cosigner_of(&sig, &cp.network), Some(w.public()));
        assert_eq!(
            verify_cosignature(&sig, &text, &cp.network, &w.public()),
            Ok(1_700_000_000)
        );
        assert!(verify_cosignature(&sig, &text, &cp.network, &a.public()).is_err());
        let other = text.replace("\n8\n", "\n9\n");
        assert_eq!(
            verify_cosignature(&sig, &other, &cp.network, &w.public()),
            Err(NoteError::BadSignature)
        );
    }

    #[test]
    fn malformed_notes_are_refused() {
        for bad in [
            &b"no signatures\n"[..],
            b"text\n\n",
            b"text\n\n- name AAAAAAAA\n",
            b"text\n\n\xe2\x80\x94 name !!!!\n",
            b"te\x00xt\n\n\xe2\x80\x94 name AAAAAAA=\n",
            b"text\n\n\xe2\x80\x94 name AAAAAAA=",
        ] {
            assert!(
                Note::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = vec![b'a'; MAX_NOTE_BYTES + 1];
        assert_eq!(Note::parse(&big), Err(NoteError::TooLarge));
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let net = NetworkId([7; 32]);
        let o = origin(&net, &NodePublicKey([3; 32]));
        let root = B64.encode([0u8; 32]);
        for text in [
            format!("{o}\n01\n{root}\n"),
            format!("{o}\n1\n{root}"),
            format!("{o}\n1\nAAAA\n"),
            format!("{o}\n1\n{root}\nextra line\n"),
            format!(
                "{o}\n1\n{root}\nhead {} 1\nhead {} 2\n",
                "22".repeat(32),
                "11".repeat(32)
            ),
        ] {
            assert!(Checkpoint::parse_text(&text, &net).is_err(), "{text}");
        }
        assert_eq!(
            Checkpoint::parse_text(&format!("example.com/log\n1\n{root}\n"), &net),
            Err(NoteError::ForeignOrigin)
        );
    }
}
