//! The secret key file format.
//!
//! A key file is UTF-8 text, at most 4 KiB, mode `0600`:
//!
//! ```text
//! # any number of comment lines starting with '#'
//! alertmesh-secret-key v1
//! kind: node-sign
//! public: <64 hex digits>
//! secret: <64 hex digits>
//! ```
//!
//! `kind` is `org-root`, `node-sign` or `node-agreement`. `public` must match the key
//! derived from `secret`, which catches a corrupted or hand-edited file. This module is
//! the format only; the node reads and writes the files (`alertmesh_node::files`: created
//! with `create_new` and mode `0600`, so an existing key is never overwritten).

use crate::keys::{AgreementKey, NodeKey, OrgRootKey};
use std::fmt;
use zeroize::Zeroizing;

const MAGIC: &str = "alertmesh-secret-key v1";
/// The largest key file read.
pub const MAX_KEY_FILE_BYTES: u64 = 4096;

/// The kinds of secret key a file can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An organization's root key ([`OrgRootKey`]).
    OrgRoot,
    /// A node's signing key ([`NodeKey`]).
    NodeSign,
    /// A node's X25519 agreement key ([`AgreementKey`]).
    NodeAgreement,
}

impl KeyKind {
    fn label(self) -> &'static str {
        match self {
            KeyKind::OrgRoot => "org-root",
            KeyKind::NodeSign => "node-sign",
            KeyKind::NodeAgreement => "node-agreement",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [KeyKind::OrgRoot, KeyKind::NodeSign, KeyKind::NodeAgreement]
            .into_iter()
            .find(|k| k.label() == s)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What is wrong with a key file's contents.
#[derive(Debug, thiserror::Error)]
pub enum KeyFormatError {
    /// The file is not a key file of this format.
    #[error("not an alertmesh secret key file ({0}); generate one with `alertmesh keygen`")]
    Format(&'static str),
    /// The file holds a different kind of key.
    #[error(
        "holds a {found} key but a {expected} key is needed here; check which file your config points to"
    )]
    WrongKind {
        /// The kind the caller needs.
        expected: KeyKind,
        /// The kind in the file.
        found: KeyKind,
    },
    /// The secret is not 32 bytes of hex.
    #[error(
        "the secret is not 64 hex digits (32 bytes); the file is damaged, restore it from backup"
    )]
    BadSecret,
    /// The stored public key does not match the secret.
    #[error(
        "the public key does not match the secret; the file is damaged, restore it from backup"
    )]
    PublicMismatch,
}

/// A secret key loaded from or written to a file.
pub enum SecretKeyFile {
    /// An org root key.
    OrgRoot(OrgRootKey),
    /// A node signing key.
    NodeSign(NodeKey),
    /// A node agreement key.
    NodeAgreement(AgreementKey),
}

impl SecretKeyFile {
    fn kind(&self) -> KeyKind {
        match self {
            SecretKeyFile::OrgRoot(_) => KeyKind::OrgRoot,
            SecretKeyFile::NodeSign(_) => KeyKind::NodeSign,
            SecretKeyFile::NodeAgreement(_) => KeyKind::NodeAgreement,
        }
    }

    fn public_hex(&self) -> String {
        match self {
            SecretKeyFile::OrgRoot(k) => k.public().to_hex(),
            SecretKeyFile::NodeSign(k) => k.public().to_hex(),
            SecretKeyFile::NodeAgreement(k) => k.public().to_hex(),
        }
    }

    fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        match self {
            SecretKeyFile::OrgRoot(k) => k.secret_bytes(),
            SecretKeyFile::NodeSign(k) => k.secret_bytes(),
            SecretKeyFile::NodeAgreement(k) => k.secret_bytes(),
        }
    }

    fn from_secret(kind: KeyKind, secret: &[u8; 32]) -> Self {
        match kind {
            KeyKind::OrgRoot => SecretKeyFile::OrgRoot(OrgRootKey::from_secret_bytes(secret)),
            KeyKind::NodeSign => SecretKeyFile::NodeSign(NodeKey::from_secret_bytes(secret)),
            KeyKind::NodeAgreement => {
                SecretKeyFile::NodeAgreement(AgreementKey::from_secret_bytes(secret))
            }
        }
    }

    /// Renders the file contents; `comment` lines are prefixed with `# `.
    pub fn render(&self, comment: &str) -> Zeroizing<String> {
        let mut out = String::new();
        for line in comment.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(MAGIC);
        out.push('\n');
        out.push_str(&format!(
            "kind: {}\npublic: {}\n",
            self.kind(),
            self.public_hex()
        ));
        out.push_str("secret: ");
        out.push_str(&hex::encode(self.secret_bytes().as_ref()));
        out.push('\n');
        Zeroizing::new(out)
    }

    /// Parses file contents, checking the kind and that the public key matches.
    pub fn parse(text: &str, expected: KeyKind) -> Result<Self, KeyFormatError> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(MAGIC) {
            return Err(KeyFormatError::Format("missing the header line"));
        }
        let mut field = |name: &'static str| -> Result<&str, KeyFormatError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(':'))
                .map(str::trim)
                .ok_or(KeyFormatError::Format("missing or misplaced field"))
        };
        let found =
            KeyKind::parse(field("kind")?).ok_or(KeyFormatError::Format("unknown key kind"))?;
        let public = field("public")?.to_owned();
        let secret_hex = field("secret")?;
        if found != expected {
            return Err(KeyFormatError::WrongKind { expected, found });
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret_hex, secret.as_mut()).map_err(|_| KeyFormatError::BadSecret)?;
        let key = Self::from_secret(found, &secret);
        if key.public_hex() != public.to_ascii_lowercase() {
            return Err(KeyFormatError::PublicMismatch);
        }
        Ok(key)
    }
}
