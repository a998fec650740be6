//! The node's configuration file: one TOML file per node.
//!
//! ```toml
//! # Paths are relative to this file's directory.
//! data_dir = "data"                       # SQLite database and runtime files
//! listen = ["/ip4/127.0.0.1/tcp/4101"]    # libp2p listen addresses (QUIC on the same port too)
//! quic = true                             # optional: also listen on QUIC (UDP) (default true)
//! bootstrap = ["/ip4/127.0.0.1/tcp/4102/p2p/12D3Koo..."]  # peers to dial at start
//! genesis = "charter-v1.bin"             # the genesis charter (binary, as signed)
//! genesis_hash = "<64 hex digits>"        # pinned: the node refuses any other genesis
//! log_format = "human"                    # or "json"
//! sync_interval_ms = 15000                # optional: anti-entropy period (default 15 s)
//! max_peers = 32                          # optional: admitted peers kept at most (default 32)
//! max_connections = 64                    # optional: established connections at most
//! max_pending_incoming = 32               # optional: incoming handshakes in flight at most
//! max_connections_per_peer = 2            # optional: connections to one peer at most
//! sync_requests_per_sec = 50              # optional: requests one peer may make per second
//! sync_bytes_per_sec = 33554432           # optional: sync page bytes served to one peer per second
//! relay = false                           # optional: serve as circuit relay for admitted members
//! relays = ["/ip4/203.0.113.5/tcp/4101/p2p/12D3Koo..."]  # optional: relays to listen through when unreachable
//! external = ["/ip4/203.0.113.7/tcp/4101"]  # optional: addresses others reach this node on
//!
//! [keys]
//! node_key = "keys/node.key"              # Ed25519 node signing key (0600)
//! agreement_key = "keys/agreement.key"    # X25519 agreement key (0600)
//! cert = "keys/node.cert"                 # the node certificate (binary, as signed)
//!
//! [api]
//! bind = "127.0.0.1:8101"                 # local HTTP API; must be a loopback address
//! token_file = "keys/api.token"           # bearer token (0600)
//! ```

use anyhow::{Context, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A node's configuration, with paths resolved against the config file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from (for messages).
    pub source: PathBuf,
    /// Database and runtime files.
    pub data_dir: PathBuf,
    /// libp2p listen multiaddrs, as configured.
    pub listen: Vec<libp2p::Multiaddr>,
    /// Whether each TCP listen address gets a QUIC twin on the same UDP port (`quic`).
    pub quic: bool,
    /// libp2p multiaddrs (with `/p2p/<peer id>`) dialled at start.
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// The genesis charter file.
    pub genesis: PathBuf,
    /// The pinned genesis hash.
    pub genesis_hash: alertmesh_protocol::CharterHash,
    /// `human` or `json` logs.
    pub log_format: LogFormat,
    /// How often the node runs anti-entropy with a few peers (`sync_interval_ms`).
    pub sync_interval: std::time::Duration,
    /// Admitted peers kept at most (`max_peers`); extra connections are pruned.
    pub max_peers: usize,
    /// libp2p connection limits (`max_connections`, `max_pending_incoming`,
    /// `max_connections_per_peer`).
    pub limits: crate::net::ConnectionLimits,
    /// Per-peer request limits (`sync_requests_per_sec`, `sync_bytes_per_sec`).
    pub request_limits: crate::core::RequestLimits,
    /// Whether the node serves as circuit relay for admitted members (`relay`).
    pub relay: bool,
    /// Relay nodes (with `/p2p/<peer id>`) to listen through when unreachable (`relays`).
    pub relays: Vec<libp2p::Multiaddr>,
    /// Addresses others reach this node on, announced as confirmed (`external`).
    pub external: Vec<libp2p::Multiaddr>,
    /// Key files.
    pub keys: KeyPaths,
    /// Local API.
    pub api: ApiConfig,
}

/// Paths of the node's key material.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    /// Ed25519 node signing key file.
    pub node_key: PathBuf,
    /// X25519 agreement key file.
    pub agreement_key: PathBuf,
    /// Node certificate file.
    pub cert: PathBuf,
}

/// Local HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Loopback address to bind.
    pub bind: SocketAddr,
    /// Bearer token file.
    pub token_file: PathBuf,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    quic: Option<bool>,
    #[serde(default)]
    bootstrap: Vec<String>,
    genesis: PathBuf,
    genesis_hash: String,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default)]
    sync_interval_ms: Option<u64>,
    #[serde(default)]
    max_peers: Option<usize>,
    #[serde(default)]
    max_connections: Option<u32>,
    #[serde(default)]
    max_pending_incoming: Option<u32>,
    #[serde(default)]
    max_connections_per_peer: Option<u32>,
    #[serde(default)]
    sync_requests_per_sec: Option<u32>,
    #[serde(default)]
    sync_bytes_per_sec: Option<u64>,
    #[serde(default)]
    relay: bool,
    #[serde(default)]
    relays: Vec<String>,
    #[serde(default)]
    external: Vec<String>,
    keys: RawKeys,
    api: RawApi,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    node_key: PathBuf,
    agreement_key: PathBuf,
    cert: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    bind: String,
    token_file: PathBuf,
}

impl Config {
    /// The addresses the node listens on: `listen`, plus, with `quic` (the default) and no
    /// QUIC address listed, a QUIC twin of each TCP address on the same UDP port.
    pub fn listen_addrs(&self) -> Vec<libp2p::Multiaddr> {
        let mut out = self.listen.clone();
        let has_quic = self.listen.iter().any(|a| {
            a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1))
        });
        if self.quic && !has_quic {
            out.extend(self.listen.iter().filter_map(crate::net::quic_twin));
        }
        out
    }

    /// The addresses announced as reachable: `external` if given; else, on a relay, its
    /// `listen` addresses that name a host (not `0.0.0.0` / `::`), since a relay must hand
    /// its members an address to be reached at.
    pub fn external_addrs(&self) -> Vec<libp2p::Multiaddr> {
        use libp2p::multiaddr::Protocol;
        if !self.external.is_empty() || !self.relay {
            return self.external.clone();
        }
        self.listen_addrs()
            .into_iter()
            .filter(|a| {
                a.iter().all(|p| match p {
                    Protocol::Ip4(ip) => !ip.is_unspecified(),
                    Protocol::Ip6(ip) => !ip.is_unspecified(),
                    Protocol::Tcp(port) | Protocol::Udp(port) => port != 0,
                    _ => true,
                })
            })
            .collect()
    }

    /// Loads and checks a config file; errors name the file, the key and the fix.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` locates relative paths and names the file in errors.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let file = path.display();
        let raw: RawConfig = toml::from_str(text).with_context(|| {
            format!(
                "config file {file} is not valid (see the configuration reference in README.md)"
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let addrs = |list: &[String], key: &str| -> anyhow::Result<Vec<libp2p::Multiaddr>> {
            list.iter()
                .map(|s| {
                    s.parse().with_context(|| {
                        format!("config file {file}: `{key}` entry {s:?} is not a multiaddr; write e.g. \"/ip4/127.0.0.1/tcp/4101\"")
                    })
                })
                .collect()
        };
        let genesis_hash = alertmesh_protocol::CharterHash::from_hex(&raw.genesis_hash).map_err(|_| {
            anyhow::anyhow!("config file {file}: `genesis_hash` must be 64 hex digits (see `alertmesh charter show`)")
        })?;
        let bind: SocketAddr = raw.api.bind.parse().with_context(|| {
            format!("config file {file}: `api.bind` {:?} is not an address; write e.g. \"127.0.0.1:8101\"", raw.api.bind)
        })?;
        if !bind.ip().is_loopback() {
            bail!(
                "config file {file}: `api.bind` must be a loopback address (127.0.0.1 or ::1); the API is local only"
            );
        }
        let bootstrap = addrs(&raw.bootstrap, "bootstrap")?;
        let sync_interval = match raw.sync_interval_ms {
            None => crate::core::SYNC_PERIOD,
            Some(ms @ 100..=86_400_000) => std::time::Duration::from_millis(ms),
            Some(ms) => bail!(
                "config file {file}: `sync_interval_ms` {ms} is out of range; write a value from 100 (0.1 s) to 86400000 (one day)"
            ),
        };
        let max_peers = match raw.max_peers {
            None => crate::net::DEFAULT_MAX_PEERS,
            Some(n @ 4..=10_000) => n,
            Some(n) => bail!(
                "config file {file}: `max_peers` {n} is out of range; write a value from 4 to 10000"
            ),
        };
        let in_range = |value: Option<u64>, key: &str, lo: u64, hi: u64, default: u64| match value {
            None => Ok(default),
            Some(v) if (lo..=hi).contains(&v) => Ok(v),
            Some(v) => Err(anyhow::anyhow!(
                "config file {file}: `{key}` {v} is out of range; write a value from {lo} to {hi}"
            )),
        };
        let max_connections = in_range(
            raw.max_connections.map(u64::from),
            "max_connections",
            8,
            100_000,
            u64::from(crate::net::default_max_connections(max_peers)),
        )?;
        let max_pending_incoming = in_range(
            raw.max_pending_incoming.map(u64::from),
            "max_pending_incoming",
            1,
            10_000,
            u64::from(crate::net::DEFAULT_MAX_PENDING_INCOMING),
        )?;
        let max_connections_per_peer = in_range(
            raw.max_connections_per_peer.map(u64::from),
            "max_connections_per_peer",
            1,
            16,
            u64::from(crate::net::DEFAULT_MAX_CONNECTIONS_PER_PEER),
        )?;
        let defaults = crate::core::RequestLimits::default();
        let request_limits = crate::core::RequestLimits {
            requests_per_sec: in_range(
                raw.sync_requests_per_sec.map(u64::from),
                "sync_requests_per_sec",
                1,
                100_000,
                u64::from(defaults.requests_per_sec),
            )? as u32,
            bytes_per_sec: in_range(
                raw.sync_bytes_per_sec,
                "sync_bytes_per_sec",
                64 * 1024,
                1 << 40,
                defaults.bytes_per_sec,
            )?,
        };
        let limits = crate::net::ConnectionLimits::default()
            .with_max_established(Some(max_connections as u32))
            .with_max_pending_incoming(Some(max_pending_incoming as u32))
            .with_max_established_per_peer(Some(max_connections_per_peer as u32));
        let relays = addrs(&raw.relays, "relays")?;
        for a in &relays {
            if crate::net::reach::is_relayed(a) || crate::net::reach::target_peer(a).is_none() {
                bail!(
                    "config file {file}: `relays` entry {a} must be a relay node's address ending in /p2p/<peer id> (without /p2p-circuit)"
                );
            }
        }
        let external = addrs(&raw.external, "external")?;
        for a in &bootstrap {
            if !a
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
            {
                bail!(
                    "config file {file}: `bootstrap` entry {a} lacks /p2p/<peer id>; append the peer's id"
                );
            }
        }
        Ok(Self {
            source: path.to_owned(),
            data_dir: resolve(&raw.data_dir),
            listen: addrs(&raw.listen, "listen")?,
            quic: raw.quic.unwrap_or(true),
            bootstrap,
            genesis: resolve(&raw.genesis),
            genesis_hash,
            log_format: raw.log_format,
            sync_interval,
            max_peers,
            limits,
            request_limits,
            relay: raw.relay,
            relays,
            external,
            keys: KeyPaths {
                node_key: resolve(&raw.keys.node_key),
                agreement_key: resolve(&raw.keys.agreement_key),
                cert: resolve(&raw.keys.cert),
            },
            api: ApiConfig {
                bind,
                token_file: resolve(&raw.api.token_file),
            },
        })
    }
}

/// Renders a config file (used by the example network and the demo).
pub fn render(
    data_dir: &str,
    listen: &[String],
    bootstrap: &[String],
    genesis_hash: &str,
    api_bind: &str,
    key_dir: &str,
    genesis: &str,
) -> String {
    let list = |l: &[String]| {
        l.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "# alertmesh node configuration. Paths are relative to this file.\n\
         data_dir = {data_dir:?}\n\
         listen = [{}]\n\
         bootstrap = [{}]\n\
         genesis = {genesis:?}\n\
         genesis_hash = {genesis_hash:?}\n\
         log_format = \"human\"\n\n\
         [keys]\n\
         node_key = \"{key_dir}/node.key\"\n\
         agreement_key = \"{key_dir}/agreement.key\"\n\
         cert = \"{key_dir}/node.cert\"\n\n\
         [api]\n\
         bind = {api_bind:?}\n\
         token_file = \"{key_dir}/api.token\"\n",
        list(listen),
        list(bootstrap),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        render(
            "data",
            &["/ip4/127.0.0.1/tcp/0".into()],
            &[],
            &"ab".repeat(32),
            "127.0.0.1:0",
            "keys",
            "charter-v1.bin",
        )
    }

    #[test]
    fn rendered_config_parses_and_resolves_paths() {
        let c = Config::parse(&sample(), Path::new("/etc/am/node.toml")).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/am/data"));
        assert_eq!(c.keys.node_key, Path::new("/etc/am/keys/node.key"));
    }

    #[test]
    fn errors_name_file_and_key() {
        let bad = sample().replace("127.0.0.1:0", "0.0.0.0:80");
        let e = format!(
            "{:#}",
            Config::parse(&bad, Path::new("n.toml")).unwrap_err()
        );
        assert!(e.contains("n.toml") && e.contains("api.bind"), "{e}");
        let bad = sample().replace("data_dir", "data_dri");
        let e = format!(
            "{:#}",
            Config::parse(&bad, Path::new("n.toml")).unwrap_err()
        );
        assert!(e.contains("n.toml") && e.contains("data_dri"), "{e}");
        let bad = sample().replace(&"ab".repeat(32), "xyz");
        let e = format!(
            "{:#}",
            Config::parse(&bad, Path::new("n.toml")).unwrap_err()
        );
        assert!(e.contains("genesis_hash"), "{e}");
    }

    #[test]
    fn relay_keys_parse_and_relays_need_a_peer_id() {
        let c = Config::parse(&sample(), Path::new("n.toml")).unwrap();
        assert!(!c.relay && c.relays.is_empty() && c.external_addrs().is_empty());
        let id = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let c = Config::parse(
            &format!(
                "relay = true\nrelays = [\"/ip4/10.0.0.1/tcp/4101/p2p/{id}\"]\n{}",
                sample().replace("tcp/0", "tcp/4101")
            ),
            Path::new("n.toml"),
        )
        .unwrap();
        assert!(c.relay);
        assert_eq!(c.relays.len(), 1);
        // A relay announces its listen addresses (TCP and the QUIC twin).
        assert_eq!(c.external_addrs().len(), 2);
        for bad in [
            "relays = [\"/ip4/10.0.0.1/tcp/4101\"]".to_string(),
            format!("relays = [\"/ip4/10.0.0.1/tcp/4101/p2p/{id}/p2p-circuit\"]"),
        ] {
            let e = format!(
                "{:#}",
                Config::parse(&format!("{bad}\n{}", sample()), Path::new("n.toml")).unwrap_err()
            );
            assert!(e.contains("n.toml") && e.contains("relays"), "{e}");
        }
    }

    #[test]
    fn max_peers_defaults_and_is_bounded() {
        let c = Config::parse(&sample(), Path::new("n.toml")).unwrap();
        assert_eq!(c.max_peers, crate::net::DEFAULT_MAX_PEERS);
        let c = Config::parse(
            &format!("max_peers = 12\n{}", sample()),
            Path::new("n.toml"),
        )
        .unwrap();
        assert_eq!(c.max_peers, 12);
        let e = format!(
            "{:#}",
            Config::parse(&format!("max_peers = 1\n{}", sample()), Path::new("n.toml"))
                .unwrap_err()
        );
        assert!(e.contains("n.toml") && e.contains("max_peers"), "{e}");
    }

    #[test]
    fn quic_twins_tcp_listen_addresses_unless_off_or_listed() {
        let c = Config::parse(&sample(), Path::new("n.toml")).unwrap();
        let addrs: Vec<String> = c.listen_addrs().iter().map(ToString::to_string).collect();
        assert_eq!(
            addrs,
            ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]
        );
        let off =
            Config::parse(&format!("quic = false\n{}", sample()), Path::new("n.toml")).unwrap();
        assert_eq!(off.listen_addrs().len(), 1);
        let listed = sample().replace(
            "\"/ip4/127.0.0.1/tcp/0\"",
            "\"/ip4/127.0.0.1/tcp/0\", \"/ip4/127.0.0.1/udp/9/quic-v1\"",
        );
        let listed = Config::parse(&listed, Path::new("n.toml")).unwrap();
        assert_eq!(listed.listen_addrs().len(), 2);
    }

    #[test]
    fn connection_and_request_limits_default_and_are_bounded() {
        let c = Config::parse(&sample(), Path::new("n.toml")).unwrap();
        assert_eq!(
            c.request_limits.requests_per_sec,
            crate::core::RequestLimits::default().requests_per_sec
        );
        let c = Config::parse(
            &format!(
                "sync_requests_per_sec = 5
sync_bytes_per_sec = 100000
{}",
                sample()
            ),
            Path::new("n.toml"),
        )
        .unwrap();
        assert_eq!(c.request_limits.requests_per_sec, 5);
        assert_eq!(c.request_limits.bytes_per_sec, 100_000);
        for bad in [
            "max_connections = 2",
            "max_pending_incoming = 0",
            "max_connections_per_peer = 99",
            "sync_requests_per_sec = 0",
            "sync_bytes_per_sec = 10",
        ] {
            let key = bad.split(' ').next().unwrap();
            let e = format!(
                "{:#}",
                Config::parse(
                    &format!(
                        "{bad}
{}",
                        sample()
                    ),
                    Path::new("n.toml")
                )
                .unwrap_err()
            );
            assert!(e.contains("n.toml") && e.contains(key), "{e}");
        }
    }
}
