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
//! derived from `secret`, which catches a corrupted or hand-edited file. Files are created
//! with `create_new` and mode `0600`: an existing key is never overwritten.

use crate::keys::{AgreementKey, NodeKey, OrgRootKey};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const MAGIC: &str = "alertmesh-secret-key v1";
const MAX_KEY_FILE_BYTES: u64 = 4096;

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

/// A key file could not be read or written. The message names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("key file {}: {problem}", path.display())]
pub struct KeyFileError {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub problem: KeyFileProblem,
}

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileProblem {
    /// The file could not be opened or read.
    #[error("cannot read it ({0}); check the path in your config")]
    Read(std::io::Error),
    /// The file could not be created (it may already exist: keys are never overwritten).
    #[error(
        "cannot create it ({0}); keys are never overwritten, choose a new path or remove the old file deliberately"
    )]
    Create(std::io::Error),
    /// Group or others can access the file.
    #[error("permissions are {mode:o}, group or others can access it; run `chmod 600` on it")]
    Permissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// The file is too large to be a key file.
    #[error("it is {0} bytes, far too large for a key file; is this the right file?")]
    TooLarge(u64),
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
    pub fn parse(text: &str, expected: KeyKind) -> Result<Self, KeyFileProblem> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(MAGIC) {
            return Err(KeyFileProblem::Format("missing the header line"));
        }
        let mut field = |name: &'static str| -> Result<&str, KeyFileProblem> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(':'))
                .map(str::trim)
                .ok_or(KeyFileProblem::Format("missing or misplaced field"))
        };
        let found =
            KeyKind::parse(field("kind")?).ok_or(KeyFileProblem::Format("unknown key kind"))?;
        let public = field("public")?.to_owned();
        let secret_hex = field("secret")?;
        if found != expected {
            return Err(KeyFileProblem::WrongKind { expected, found });
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret_hex, secret.as_mut()).map_err(|_| KeyFileProblem::BadSecret)?;
        let key = Self::from_secret(found, &secret);
        if key.public_hex() != public.to_ascii_lowercase() {
            return Err(KeyFileProblem::PublicMismatch);
        }
        Ok(key)
    }

    /// Writes a new key file with mode `0600`. Fails if the file exists.
    pub fn write_new(&self, path: &Path, comment: &str) -> Result<(), KeyFileError> {
        let err = |problem| KeyFileError {
            path: path.to_owned(),
            problem,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(|e| err(KeyFileProblem::Create(e)))?;
        file.write_all(self.render(comment).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| err(KeyFileProblem::Create(e)))
    }

    /// Loads a key file, refusing loose permissions, wrong kinds and damaged contents.
    pub fn load(path: &Path, expected: KeyKind) -> Result<Self, KeyFileError> {
        let err = |problem| KeyFileError {
            path: path.to_owned(),
            problem,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(KeyFileProblem::Read(e)))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(KeyFileProblem::Permissions { mode }));
            }
        }
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(err(KeyFileProblem::TooLarge(meta.len())));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(KeyFileProblem::Read(e)))?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| err(KeyFileProblem::Format("not UTF-8 text")))?;
        Self::parse(text, expected).map_err(err)
    }
}

/// Loads an org root key file.
pub fn load_org_root(path: &Path) -> Result<OrgRootKey, KeyFileError> {
    match SecretKeyFile::load(path, KeyKind::OrgRoot)? {
        SecretKeyFile::OrgRoot(k) => Ok(k),
        _ => unreachable!("load checks the kind"),
    }
}

/// Loads a node signing key file.
pub fn load_node_key(path: &Path) -> Result<NodeKey, KeyFileError> {
    match SecretKeyFile::load(path, KeyKind::NodeSign)? {
        SecretKeyFile::NodeSign(k) => Ok(k),
        _ => unreachable!("load checks the kind"),
    }
}

/// Loads a node agreement key file.
pub fn load_agreement_key(path: &Path) -> Result<AgreementKey, KeyFileError> {
    match SecretKeyFile::load(path, KeyKind::NodeAgreement)? {
        SecretKeyFile::NodeAgreement(k) => Ok(k),
        _ => unreachable!("load checks the kind"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand_chacha08::ChaCha20Rng;
    use rand_chacha08::rand_core::SeedableRng;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn write_then_load_round_trip_with_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(3));
        let path = dir.path().join("node.key");
        SecretKeyFile::NodeSign(NodeKey::from_secret_bytes(&key.secret_bytes()))
            .write_new(&path, "TEST ONLY")
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_node_key(&path).unwrap().public(), key.public());
        // never overwritten
        let again = SecretKeyFile::NodeSign(NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(4)))
            .write_new(&path, "");
        assert!(matches!(
            again.unwrap_err().problem,
            KeyFileProblem::Create(_)
        ));
        assert_eq!(load_node_key(&path).unwrap().public(), key.public());
    }

    #[test]
    fn bad_files_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let good = SecretKeyFile::OrgRoot(OrgRootKey::generate(&mut ChaCha20Rng::seed_from_u64(5)))
            .render("x");
        let loose = write(dir.path(), "loose.key", &good, 0o644);
        let e = load_org_root(&loose).unwrap_err();
        assert!(
            e.to_string().contains("loose.key") && e.to_string().contains("chmod 600"),
            "{e}"
        );

        let wrong = write(dir.path(), "wrong.key", &good, 0o600);
        let e = load_node_key(&wrong).unwrap_err();
        assert!(matches!(e.problem, KeyFileProblem::WrongKind { .. }), "{e}");

        let garbage = write(dir.path(), "garbage.key", "\u{0}\u{1}hello", 0o600);
        assert!(matches!(
            load_org_root(&garbage).unwrap_err().problem,
            KeyFileProblem::Format(_)
        ));

        let short = write(
            dir.path(),
            "short.key",
            &good.replace("secret: ", "secret: ab"),
            0o600,
        );
        assert!(matches!(
            load_org_root(&short).unwrap_err().problem,
            KeyFileProblem::BadSecret
        ));

        let mut flipped = good.to_string();
        let pos = flipped.find("secret: ").unwrap() + 8;
        let c = if &flipped[pos..pos + 1] == "0" {
            "1"
        } else {
            "0"
        };
        flipped.replace_range(pos..pos + 1, c);
        let flipped = write(dir.path(), "flipped.key", &flipped, 0o600);
        assert!(matches!(
            load_org_root(&flipped).unwrap_err().problem,
            KeyFileProblem::PublicMismatch
        ));

        let missing = dir.path().join("missing.key");
        assert!(matches!(
            load_org_root(&missing).unwrap_err().problem,
            KeyFileProblem::Read(_)
        ));
    }
}
