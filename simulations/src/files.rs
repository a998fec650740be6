//! A node's files on disk: keys, certificate, API token, genesis charter and config, as
//! the daemon reads them. The harness, the scenario runner and the tests write nodes with
//! [`write_node_files`].

use alertmesh_node::files::{KeyFileError, write_key};
use alertmesh_protocol::bootstrap::Network;
use alertmesh_protocol::keyfile::SecretKeyFile;
use alertmesh_protocol::{AgreementKey, NodeKey};
use std::path::{Path, PathBuf};

/// The API token every node written here accepts.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Why a node's files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A secret key file.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// Any other file of the node.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    std::fs::write(path, bytes).map_err(io(path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    use std::os::unix::fs::PermissionsExt;
    write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))
}

/// Writes a node's key files, certificate, [`TOKEN`], genesis charter and config into
/// `dir` (TCP only, listening on port 0, data in `dir/data`); returns the config path.
pub fn write_node_files(
    dir: &Path,
    network: &Network,
    key: &NodeKey,
    agreement: &AgreementKey,
    cert: &[u8],
) -> Result<PathBuf, FilesError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let node_key = SecretKeyFile::NodeSign(NodeKey::from_secret_bytes(&key.secret_bytes()));
    write_key(&node_key, &dir.join("node.key"), "test")?;
    let agreement =
        SecretKeyFile::NodeAgreement(AgreementKey::from_secret_bytes(&agreement.secret_bytes()));
    write_key(&agreement, &dir.join("agreement.key"), "test")?;
    write(&dir.join("node.cert"), cert)?;
    write_private(&dir.join("api.token"), TOKEN.as_bytes())?;
    write(&dir.join("charter-v1.bin"), network.genesis.as_bytes())?;
    let text = alertmesh_node::config::render(
        "data",
        &["/ip4/127.0.0.1/tcp/0".to_string()],
        &[],
        &network.genesis_hash().to_hex(),
        "127.0.0.1:0",
        ".",
        "charter-v1.bin",
    );
    // TCP only, so that the hostile peer (TCP) can reach every node and the simulator's
    // byte counts (TCP sockets) see all traffic; transport tests turn QUIC on.
    let text = text.replacen("\n[keys]", "quic = false\n\n[keys]", 1);
    let path = dir.join("node.toml");
    write(&path, text.as_bytes())?;
    Ok(path)
}
