//! Test harness for multi-node tests: builds a network of real nodes (real TCP, Noise,
//! Yamux, gossipsub, SQLite files) in one process, plus a hostile test peer that speaks
//! the wire protocols but is free to send anything.

pub mod process;

use alertmesh_node::config::Config;
use alertmesh_node::node::Node;
use alertmesh_protocol::bootstrap::{Network, NetworkPlan};
use alertmesh_sim::files::write_node_files;
use alertmesh_sim::harness::listen_addr;
use std::path::PathBuf;
use std::time::Duration;

/// How long any wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// One running test node.
pub struct TestNode {
    /// The node.
    pub node: Node,
    /// Its org.
    pub org: String,
    /// Its config file.
    pub config_path: PathBuf,
}

/// A running test network; files live in a temporary directory.
pub struct TestNetwork {
    /// The network's keys and charter.
    pub network: Network,
    /// Nodes, in the plan's org order.
    pub nodes: Vec<TestNode>,
    /// The directory holding every node's files.
    pub dir: tempfile::TempDir,
}

/// With `ALERTMESH_TEST_LOG` set (a `RUST_LOG`-style filter), the in-process nodes log to
/// the test's output.
pub fn init_test_log() {
    if let Ok(filter) = std::env::var("ALERTMESH_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Polls `condition` until it holds; fails after [`WAIT`] with an error naming `what`.
pub async fn wait_for(what: &str, condition: impl AsyncFnMut() -> bool) -> anyhow::Result<()> {
    Ok(alertmesh_sim::harness::wait_for(what, WAIT, condition).await?)
}

/// Files of one node, ready to start.
pub struct NodeFiles {
    /// Its org.
    pub org: String,
    /// Its config file.
    pub config_path: PathBuf,
}

impl TestNetwork {
    /// Builds `plan` with a fixed seed, starts every node, connects them all to each other
    /// and waits until every node has admitted every other and holds every sender key
    /// it may read.
    pub async fn start(plan: &NetworkPlan, seed: u64) -> anyhow::Result<Self> {
        let (net, _) = Self::start_some(plan, seed, usize::MAX).await?;
        Ok(net)
    }

    /// Like [`TestNetwork::start`] but starts only the first `count` nodes; returns the
    /// files of the others, to start later with [`TestNetwork::join`].
    pub async fn start_some(
        plan: &NetworkPlan,
        seed: u64,
        count: usize,
    ) -> anyhow::Result<(Self, Vec<NodeFiles>)> {
        use rand_chacha03::rand_core::SeedableRng;
        init_test_log();
        let mut rng = rand_chacha03::ChaCha20Rng::seed_from_u64(seed);
        let network = plan.build(&mut rng);
        let dir = tempfile::tempdir()?;
        let mut files = Vec::new();
        for (i, (org, material)) in network.nodes().enumerate() {
            let node_dir = dir.path().join(format!("{i}-{org}"));
            let config_path = write_node_files(
                &node_dir,
                &network,
                &material.key,
                &material.agreement,
                material.cert.as_bytes(),
            )?;
            files.push(NodeFiles {
                org: org.to_string(),
                config_path,
            });
        }
        let later = files.split_off(count.min(files.len()));
        let mut nodes = Vec::new();
        for f in files {
            let node = Node::start(&Config::load(&f.config_path)?).await?;
            nodes.push(TestNode {
                node,
                org: f.org,
                config_path: f.config_path,
            });
        }
        let net = Self {
            network,
            nodes,
            dir,
        };
        net.connect_all().await?;
        net.wait_ready().await?;
        Ok((net, later))
    }

    /// Starts a node (new, or restarted from its files) and dials every running node.
    pub async fn join(&mut self, files: &NodeFiles) -> anyhow::Result<()> {
        let node = Node::start(&Config::load(&files.config_path)?).await?;
        for other in &self.nodes {
            node.dial(listen_addr(&other.node, WAIT).await?).await?;
        }
        self.nodes.push(TestNode {
            node,
            org: files.org.clone(),
            config_path: files.config_path.clone(),
        });
        Ok(())
    }

    /// Dials every pair of nodes once.
    pub async fn connect_all(&self) -> anyhow::Result<()> {
        let mut addrs = Vec::new();
        for n in &self.nodes {
            addrs.push(listen_addr(&n.node, WAIT).await?);
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for addr in &addrs[..i] {
                n.node.dial(addr.clone()).await?;
            }
        }
        Ok(())
    }

    /// Waits until every node admitted all others and holds every sender key it may read.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let n = self.nodes.len();
        let charter = self.network.genesis.charter().clone();
        let running: Vec<&str> = self.nodes.iter().map(|n| n.org.as_str()).collect();
        let publishers = |topic: &str| {
            charter.topic_by_name(topic).map_or(0, |t| {
                t.publishers
                    .iter()
                    .filter(|p| running.contains(&p.as_str()))
                    .count()
            })
        };
        for node in &self.nodes {
            wait_for("peers admitted and sender keys delivered", || async {
                node.node.core.status().await.is_ok_and(|s| {
                    s.admitted_peers == n - 1
                        && s.sender_keys
                            .iter()
                            .all(|(topic, count)| *count == publishers(topic))
                })
            })
            .await?;
        }
        Ok(())
    }

    /// The node of an org.
    pub fn node(&self, org: &str) -> &TestNode {
        self.nodes
            .iter()
            .find(|n| n.org == org)
            .unwrap_or_else(|| panic!("no node for {org}"))
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for n in self.nodes {
            n.node.shutdown().await;
        }
    }
}
