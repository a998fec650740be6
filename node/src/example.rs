//! The example network in `keys-example/`, modelled on the seed scenario: four platform
//! companies and three agencies. **All keys are test-only and public.**
//!
//! Regenerate with `cargo run --release -- example generate --out keys-example`
//! (deterministic: the same seed gives the same keys).

use alertmesh_protocol::bootstrap::{NetworkPlan, OrgPlan, TopicPlan};
use alertmesh_protocol::keyfile::SecretKeyFile;
use alertmesh_protocol::{AgreementKey, Limits, NodeKey, OrgId, OrgRootKey, Tlp};
use anyhow::Context;
use rand_chacha03::ChaCha20Rng;
use rand_chacha03::rand_core::SeedableRng;
use std::path::{Path, PathBuf};

/// Marks every example key file.
pub const TEST_ONLY: &str =
    "TEST-ONLY KEY of the alertmesh example network. It is public: never use it for real alerts.";
/// Seed of the example network.
const SEED: u64 = 20_201_103; // 2020-11-03
/// First libp2p port; org i listens on BASE_P2P_PORT + i.
pub const BASE_P2P_PORT: u16 = 4101;
/// First API port; org i serves on BASE_API_PORT + i.
pub const BASE_API_PORT: u16 = 8101;

/// The seven example organizations: (id, name, roles).
pub const ORGS: [(&str, &str, &str); 7] = [
    ("chirper", "Chirper (microblogging platform)", "platform"),
    ("facespace", "FaceSpace (social network)", "platform"),
    ("vidtube", "VidTube (video platform)", "platform"),
    ("searchly", "Searchly (search and ads)", "platform"),
    ("fbi", "Federal Bureau of Investigation", "law-enforcement"),
    (
        "dhs",
        "Department of Homeland Security (CISA)",
        "homeland-security",
    ),
    (
        "odni",
        "Office of the Director of National Intelligence",
        "intelligence",
    ),
];

fn ids(list: &[&str]) -> Vec<OrgId> {
    list.iter().map(|s| OrgId((*s).to_string())).collect()
}

/// The example network's plan: every org a governor, threshold 4 of 7, four topics.
pub fn plan() -> NetworkPlan {
    let all: Vec<&str> = ORGS.iter().map(|o| o.0).collect();
    let platforms = &all[..4];
    let agencies = &all[4..];
    NetworkPlan {
        network_name: "election-security-2020 (EXAMPLE, TEST-ONLY KEYS)".into(),
        orgs: ORGS
            .iter()
            .map(|(id, name, role)| OrgPlan {
                org_id: OrgId((*id).to_string()),
                name: (*name).to_string(),
                roles: vec![(*role).to_string()],
                governor: true,
                nodes: 1,
            })
            .collect(),
        topics: vec![
            TopicPlan {
                name: "election-2020/disinfo".into(),
                readers: ids(&all),
                publishers: ids(&all),
                max_tlp: Tlp::Amber,
            },
            TopicPlan {
                name: "phishing/domains".into(),
                readers: ids(&all),
                publishers: ids(&all),
                max_tlp: Tlp::Green,
            },
            TopicPlan {
                name: "agency/leads".into(),
                readers: ids(agencies),
                publishers: ids(agencies),
                max_tlp: Tlp::Red,
            },
            TopicPlan {
                name: "platform/takedowns".into(),
                readers: ids(agencies),
                publishers: ids(platforms),
                max_tlp: Tlp::AmberStrict,
            },
        ],
        threshold: 4,
        limits: Limits::default(),
        // 2020-01-01T00:00:00Z, certificates valid for 30 years.
        now_ms: 1_577_836_800_000,
        cert_lifetime_ms: 30 * 365 * 24 * 3600 * 1000,
    }
}

fn write_secret(path: &Path, key: SecretKeyFile) -> anyhow::Result<()> {
    crate::files::write_key(&key, path, TEST_ONLY)?;
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    Ok(())
}

/// One node of a runnable copy of the example network ([`materialize`]).
#[derive(Debug, Clone)]
pub struct RunnableNode {
    /// Its org.
    pub org: String,
    /// Its `node.toml`.
    pub config: PathBuf,
    /// The peer id of its node key.
    pub peer_id: String,
}

/// Lays out a runnable copy of the example network `example` in `dir`: each org's key
/// files (0600), certificate and `node.toml`, org `i` listening on loopback ports
/// `ports[i]` = (libp2p, API) and dialling every other org.
pub fn materialize(
    example: &Path,
    dir: &Path,
    ports: &[(u16, u16)],
) -> anyhow::Result<Vec<RunnableNode>> {
    anyhow::ensure!(ports.len() == ORGS.len(), "one port pair per example org");
    std::fs::create_dir_all(dir)?;
    std::fs::copy(example.join("charter-v1.bin"), dir.join("charter-v1.bin"))
        .with_context(|| format!("cannot copy the example charter from {}", example.display()))?;
    let hash = std::fs::read_to_string(example.join("genesis-hash.txt"))?
        .trim()
        .to_string();
    let mut peers = Vec::new();
    for (org, _, _) in ORGS {
        let src = example.join("nodes").join(org);
        let node_dir = dir.join(org);
        std::fs::create_dir_all(&node_dir)?;
        for f in ["node.key", "agreement.key", "api.token"] {
            let bytes = std::fs::read(src.join(f))
                .with_context(|| format!("cannot read {}", src.join(f).display()))?;
            write_private(&node_dir.join(f), &bytes)?;
        }
        std::fs::copy(src.join("node.cert"), node_dir.join("node.cert"))?;
        let key = crate::files::load_node_key(&node_dir.join("node.key"))?;
        peers.push(
            crate::net::peer_id_of(&key.public())
                .context("bad example node key")?
                .to_string(),
        );
    }
    let mut out = Vec::new();
    for (i, (org, _, _)) in ORGS.iter().enumerate() {
        let bootstrap: Vec<String> = (0..ORGS.len())
            .filter(|j| *j != i)
            .map(|j| format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", ports[j].0, peers[j]))
            .collect();
        let text = crate::config::render(
            "data",
            &[format!("/ip4/127.0.0.1/tcp/{}", ports[i].0)],
            &bootstrap,
            &hash,
            &format!("127.0.0.1:{}", ports[i].1),
            ".",
            "../charter-v1.bin",
        );
        let config = dir.join(org).join("node.toml");
        std::fs::write(&config, text)?;
        out.push(RunnableNode {
            org: (*org).to_string(),
            config,
            peer_id: peers[i].clone(),
        });
    }
    Ok(out)
}

/// Writes the example network into `out` (which must not exist yet).
pub fn generate(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} exists; remove it first (the example is regenerated from scratch)",
            out.display()
        );
    }
    let mut rng = ChaCha20Rng::seed_from_u64(SEED);
    let network = plan().build(&mut rng);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("charter-v1.bin"), network.genesis.as_bytes())?;
    std::fs::write(
        out.join("genesis-hash.txt"),
        format!("{}\n", network.genesis_hash()),
    )?;
    let peer_ids: Vec<String> = network
        .nodes()
        .map(|(_, n)| {
            crate::net::peer_id_of(&n.key.public())
                .map(|p| p.to_string())
                .unwrap_or_default()
        })
        .collect();
    for (i, org) in network.orgs.iter().enumerate() {
        let org_dir = out.join("orgs").join(org.member.org_id.as_str());
        std::fs::create_dir_all(&org_dir)?;
        write_secret(
            &org_dir.join("org-root.key"),
            SecretKeyFile::OrgRoot(OrgRootKey::from_secret_bytes(&org.root.secret_bytes())),
        )?;
        let node = &org.nodes[0];
        let node_dir = out.join("nodes").join(org.member.org_id.as_str());
        std::fs::create_dir_all(&node_dir)?;
        write_secret(
            &node_dir.join("node.key"),
            SecretKeyFile::NodeSign(NodeKey::from_secret_bytes(&node.key.secret_bytes())),
        )?;
        write_secret(
            &node_dir.join("agreement.key"),
            SecretKeyFile::NodeAgreement(AgreementKey::from_secret_bytes(
                &node.agreement.secret_bytes(),
            )),
        )?;
        std::fs::write(node_dir.join("node.cert"), node.cert.as_bytes())?;
        let token = format!(
            "example-token-{}-{}",
            org.member.org_id,
            hex::encode(&node.key.public().as_bytes()[..8])
        );
        write_private(&node_dir.join("api.token"), token.as_bytes())?;
        let bootstrap: Vec<String> = (0..network.orgs.len())
            .filter(|j| *j != i)
            .map(|j| {
                format!(
                    "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                    BASE_P2P_PORT + j as u16,
                    peer_ids[j]
                )
            })
            .collect();
        let config = crate::config::render(
            "data",
            &[format!("/ip4/127.0.0.1/tcp/{}", BASE_P2P_PORT + i as u16)],
            &bootstrap,
            &network.genesis_hash().to_hex(),
            &format!("127.0.0.1:{}", BASE_API_PORT + i as u16),
            ".",
            "../../charter-v1.bin",
        );
        std::fs::write(
            node_dir.join("node.toml"),
            format!("# {TEST_ONLY}\n{config}"),
        )?;
    }
    std::fs::write(
        out.join("README.md"),
        readme(&network.genesis_hash().to_hex()),
    )?;
    Ok(())
}

fn readme(hash: &str) -> String {
    let mut orgs = String::new();
    for (i, (id, name, role)) in ORGS.iter().enumerate() {
        orgs.push_str(&format!(
            "| `{id}` | {name} | {role} | {} | {} |\n",
            BASE_P2P_PORT + i as u16,
            BASE_API_PORT + i as u16
        ));
    }
    format!(
        "# keys-example: an example alertmesh network — TEST-ONLY KEYS\n\n\
**Every key in this directory is public and for testing only. Never use them for real alerts.**\n\n\
Modelled on the seed scenario: four platform companies and three agencies. Every org is a\n\
governor; the genesis charter is signed by 4 of 7 (threshold 4).\n\n\
| org | name | role | p2p port | API port |\n|---|---|---|---|---|\n{orgs}\n\
Topics:\n\n\
| topic | readers | publishers | max TLP |\n|---|---|---|---|\n\
| `election-2020/disinfo` | all | all | AMBER |\n\
| `phishing/domains` | all | all | GREEN |\n\
| `agency/leads` | fbi, dhs, odni | fbi, dhs, odni | RED |\n\
| `platform/takedowns` | fbi, dhs, odni | the four platforms | AMBER+STRICT |\n\n\
Genesis hash: `{hash}`\n\n\
Layout: `charter-v1.bin` (signed genesis), `orgs/<org>/org-root.key`, `nodes/<org>/` with\n\
`node.key`, `agreement.key`, `node.cert`, `api.token`, `node.toml`.\n\n\
Git does not keep file modes: `alertmesh demo` copies what it needs with mode 0600. To run a\n\
node from here by hand, first `chmod 600 keys-example/*/*/*.key keys-example/nodes/*/api.token`.\n\n\
Regenerate (deterministic): `rm -rf keys-example && cargo run --release -- example generate --out keys-example`.\n"
    )
}
