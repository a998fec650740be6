//! Reading the files an operator hands a node: certificate, charter, API token. Key
//! files are read and written by `alertmesh_protocol::keyfile`.

use alertmesh_protocol::{SignedCharter, SignedNodeCert};
use anyhow::Context;
use std::path::Path;
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
