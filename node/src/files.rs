//! Reading the files an operator hands a node: secret keys (the format is
//! `alertmesh_protocol::keyfile`), certificate, charter, API token.

use alertmesh_protocol::keyfile::{KeyFormatError, KeyKind, MAX_KEY_FILE_BYTES, SecretKeyFile};
use alertmesh_protocol::{AgreementKey, NodeKey, OrgRootKey, SignedCharter, SignedNodeCert};
use anyhow::Context;
use std::io::Write as _;
use std::path::Path;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Reads a certificate file (binary, as signed).
pub fn load_cert(path: &Path) -> anyhow::Result<SignedNodeCert> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read certificate file {}", path.display()))?;
    SignedNodeCert::decode(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "certificate file {}: {e}; issue a new one with `alertmesh cert issue`",
            path.display()
        )
    })
}

/// Reads a charter file (binary, as signed).
pub fn load_charter(path: &Path) -> anyhow::Result<SignedCharter> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read charter file {}", path.display()))?;
    SignedCharter::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("charter file {}: {e}", path.display()))
}

/// Reads the bearer token from a file that must be private (0600) and non-empty.
pub fn load_token(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| anyhow::anyhow!("API token file {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            anyhow::bail!(
                "API token file {}: group or others can read it; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("API token file {}: {e}", path.display()))?,
    );
    let token = text.trim();
    if token.len() < 16 {
        anyhow::bail!(
            "API token file {}: the token must be at least 16 characters",
            path.display()
        );
    }
    Ok(Zeroizing::new(token.to_string()))
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
    /// The contents are not a valid key file.
    #[error(transparent)]
    Content(#[from] KeyFormatError),
}

/// Writes a new key file with mode `0600`. Fails if the file exists.
pub fn write_key(key: &SecretKeyFile, path: &Path, comment: &str) -> Result<(), KeyFileError> {
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
    file.write_all(key.render(comment).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| err(KeyFileProblem::Create(e)))
}

/// Loads a key file, refusing loose permissions, wrong kinds and damaged contents.
pub fn load_key(path: &Path, expected: KeyKind) -> Result<SecretKeyFile, KeyFileError> {
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
        .map_err(|_| err(KeyFormatError::Format("not UTF-8 text").into()))?;
    SecretKeyFile::parse(text, expected).map_err(|e| err(e.into()))
}

/// Loads an org root key file.
pub fn load_org_root(path: &Path) -> Result<OrgRootKey, KeyFileError> {
    match load_key(path, KeyKind::OrgRoot)? {
        SecretKeyFile::OrgRoot(k) => Ok(k),
        _ => unreachable!("load_key checks the kind"),
    }
}

/// Loads a node signing key file.
pub fn load_node_key(path: &Path) -> Result<NodeKey, KeyFileError> {
    match load_key(path, KeyKind::NodeSign)? {
        SecretKeyFile::NodeSign(k) => Ok(k),
        _ => unreachable!("load_key checks the kind"),
    }
}

/// Loads a node agreement key file.
pub fn load_agreement_key(path: &Path) -> Result<AgreementKey, KeyFileError> {
    match load_key(path, KeyKind::NodeAgreement)? {
        SecretKeyFile::NodeAgreement(k) => Ok(k),
        _ => unreachable!("load_key checks the kind"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alertmesh_protocol::keyfile::KeyFormatError;
    use rand_chacha03::ChaCha20Rng;
    use rand_chacha03::rand_core::SeedableRng;

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
        let file = SecretKeyFile::NodeSign(NodeKey::from_secret_bytes(&key.secret_bytes()));
        write_key(&file, &path, "TEST ONLY").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_node_key(&path).unwrap().public(), key.public());
        // never overwritten
        let other = SecretKeyFile::NodeSign(NodeKey::generate(&mut ChaCha20Rng::seed_from_u64(4)));
        let again = write_key(&other, &path, "");
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
        assert!(
            matches!(
                e.problem,
                KeyFileProblem::Content(KeyFormatError::WrongKind { .. })
            ),
            "{e}"
        );

        let garbage = write(dir.path(), "garbage.key", "\u{0}\u{1}hello", 0o600);
        assert!(matches!(
            load_org_root(&garbage).unwrap_err().problem,
            KeyFileProblem::Content(KeyFormatError::Format(_))
        ));

        let short = write(
            dir.path(),
            "short.key",
            &good.replace("secret: ", "secret: ab"),
            0o600,
        );
        assert!(matches!(
            load_org_root(&short).unwrap_err().problem,
            KeyFileProblem::Content(KeyFormatError::BadSecret)
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
            KeyFileProblem::Content(KeyFormatError::PublicMismatch)
        ));

        let missing = dir.path().join("missing.key");
        assert!(matches!(
            load_org_root(&missing).unwrap_err().problem,
            KeyFileProblem::Read(_)
        ));
    }
}
