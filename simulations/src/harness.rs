//! A network of real alertmesh nodes in your own tests.
//!
//! [`Builder`] describes the network (orgs, nodes per org, topics with their readers and
//! publishers, governors and threshold, a seed, link faults); [`Builder::start`] creates the
//! keys, certificates and genesis charter, writes every node's files into a temporary
//! directory, starts each node with the daemon's own library ([`Node::start_with`]),
//! connects them all and waits until every node admitted every other and holds every
//! sender key it may read. The returned [`Harness`] publishes as an org, awaits alerts,
//! partitions and heals, kills and restarts nodes on their database, changes the charter,
//! waits for convergence and reads per-node stats and verdict counters.
//!
//! Nodes are named `org` (its first node, or every node of the org where a set is meant)
//! and `org/i` (its `i`-th node, from 0). Every wait is bounded (by the timeout given, or
//! [`Builder::timeout`]) and fails with a [`HarnessError`] that says what it waited for.
//!
//! ```no_run
//! # async fn demo() -> Result<(), alertmesh_sim::harness::HarnessError> {
//! use alertmesh_sim::harness::Builder;
//! use std::time::Duration;
//!
//! let net = Builder::new()
//!     .org("fbi", 1)
//!     .org("meta", 2)
//!     .topic("disinfo", &["fbi", "meta"], &["fbi"])
//!     .seed(7)
//!     .memory() // libp2p's in-process transport; leave out for loopback TCP
//!     .start()
//!     .await?;
//! let sent = net.publish_sample("fbi", "disinfo", "hoax about voting dates").await?;
//! net.wait_alert("meta/1", &sent, Duration::from_secs(10)).await?;
//! net.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Link faults ([`crate::link`]) apply to the nodes' real connections: set a profile for
//! every link with [`Builder::links`] (e.g. [`LinkProfile::WAN`]) or one link with
//! [`Builder::link`] or [`Harness::set_link`]. [`Harness::partition`] cuts links;
//! [`Harness::heal`] restores them and reconnects.
//!
//! [`Harness::add_hostile`] adds a member with a valid certificate that runs the
//! [`HostilePeer`] instead of a node, to send the network anything.

use crate::hostile::HostilePeer;
use crate::link::{LinkProfile, LinkSpec, Links, RawTransport};
pub use crate::samples::sample_alert;
use alertmesh_node::config::Config;
use alertmesh_node::node::{Node, StartOptions};
use alertmesh_node::store::StoredAlert;
use alertmesh_protocol::bootstrap::{Network, NetworkPlan, NodeMaterial, OrgPlan, TopicPlan};
use alertmesh_protocol::charter::Limits;
use alertmesh_protocol::{Content, OrgId, SignedCharter, Tlp};
use libp2p::Multiaddr;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long a wait may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a condition without an event (status, convergence) is checked.
const POLL: Duration = Duration::from_millis(20);

/// What went wrong in the harness; each says what it was about.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The network described cannot be built.
    #[error("invalid topology: {0}")]
    Topology(String),
    /// A name matches no node and no org.
    #[error("no node or org named `{name}` (known: {known})")]
    UnknownNode {
        /// The name given.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// The node is stopped (killed and not restarted).
    #[error("node {0} is not running")]
    NotRunning(String),
    /// A wait ran out of time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// A wait that can never succeed (e.g. an alert at an org that may not read its topic).
    #[error("impossible wait: {0}")]
    Impossible(String),
    /// A node refused a request or failed (its error, with context).
    #[error("node {node}: {error}")]
    Node {
        /// Which node.
        node: String,
        /// What it said.
        error: String,
    },
    /// Files of the network could not be written.
    #[error("harness files: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T, E = HarnessError> = std::result::Result<T, E>;

fn node_err(node: &str, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Node {
        node: node.to_string(),
        error: e.to_string(),
    }
}

/// Describes a network to start; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Builder {
    plan: NetworkPlan,
    seed: u64,
    raw: RawTransport,
    profile: LinkProfile,
    links: Vec<(String, String, LinkSpec)>,
    timeout: Duration,
    sync_interval_ms: Option<u64>,
    errors: Vec<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// An empty network (add orgs and topics); threshold: a majority of the governors.
    pub fn new() -> Self {
        Self::from_plan(NetworkPlan {
            network_name: "sim".into(),
            orgs: vec![],
            topics: vec![],
            threshold: 0,
            limits: Limits::default(),
            now_ms: alertmesh_node::clock::now_ms(),
            cert_lifetime_ms: 30 * 24 * 3600 * 1000,
        })
    }

    /// A network from a ready plan (orgs, topics, threshold as given there).
    pub fn from_plan(plan: NetworkPlan) -> Self {
        Self {
            plan,
            seed: 0,
            raw: RawTransport::Tcp,
            profile: LinkProfile::default(),
            links: vec![],
            timeout: DEFAULT_TIMEOUT,
            sync_interval_ms: None,
            errors: vec![],
        }
    }

    /// Adds an org running `nodes` nodes; it is a governor.
    pub fn org(self, name: &str, nodes: usize) -> Self {
        self.org_with(name, nodes, true)
    }

    /// Adds an org running `nodes` nodes, a governor or not.
    pub fn org_with(mut self, name: &str, nodes: usize, governor: bool) -> Self {
        if nodes == 0 {
            self.errors.push(format!("org {name} has zero nodes"));
        }
        self.plan.orgs.push(OrgPlan {
            governor,
            ..OrgPlan::new(name, nodes)
        });
        self
    }

    /// Adds a topic that `readers` may read and `publishers` may publish to (orgs).
    pub fn topic(mut self, name: &str, readers: &[&str], publishers: &[&str]) -> Self {
        let ids = |l: &[&str]| l.iter().map(|o| OrgId(o.to_string())).collect();
        self.plan.topics.push(TopicPlan {
            name: name.to_string(),
            readers: ids(readers),
            publishers: ids(publishers),
            max_tlp: Tlp::Red,
        });
        self
    }

    /// Governor signatures a charter change needs (default: a majority of governors).
    pub fn threshold(mut self, k: u32) -> Self {
        self.plan.threshold = k;
        self
    }

    /// The charter's network-wide limits (rates, envelope size, checkpoints).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.plan.limits = limits;
        self
    }

    /// The seed of every key, certificate and random link draw.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Runs the nodes on libp2p's in-process memory transport instead of loopback TCP.
    pub fn memory(mut self) -> Self {
        self.raw = RawTransport::Memory;
        self
    }

    /// Shapes every link by `profile` (e.g. [`LinkProfile::WAN`]).
    pub fn links(mut self, profile: LinkProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Shapes the links between the nodes named `a` and `b` (orgs: all their nodes).
    pub fn link(mut self, a: &str, b: &str, spec: LinkSpec) -> Self {
        if let Err(e) = spec.check() {
            self.errors.push(format!("link {a}–{b}: {e}"));
        }
        self.links.push((a.to_string(), b.to_string(), spec));
        self
    }

    /// How long the harness's own waits (start-up, heal) may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often nodes run history sync (default: the node's).
    pub fn sync_interval(mut self, every: Duration) -> Self {
        self.sync_interval_ms = Some(every.as_millis() as u64);
        self
    }

    fn check(&mut self) -> Result<()> {
        let mut errors = std::mem::take(&mut self.errors);
        let p = &mut self.plan;
        if p.orgs.is_empty() {
            errors.push("no orgs".into());
        }
        if !p.orgs.is_empty() && p.orgs.iter().all(|o| o.nodes == 0) {
            errors.push("no org runs a node".into());
        }
        let mut seen = BTreeSet::new();
        for o in &p.orgs {
            if !seen.insert(o.org_id.0.clone()) {
                errors.push(format!("org {} is listed twice", o.org_id.0));
            }
        }
        for t in &p.topics {
            for o in t.readers.iter().chain(&t.publishers) {
                if !seen.contains(&o.0) {
                    errors.push(format!("topic {} names unknown org {}", t.name, o.0));
                }
            }
        }
        let governors = p.orgs.iter().filter(|o| o.governor).count() as u32;
        if p.threshold == 0 {
            p.threshold = governors / 2 + 1;
        }
        if governors == 0 {
            errors.push("no governor org".into());
        } else if p.threshold > governors {
            errors.push(format!(
                "threshold {} is more than the {governors} governors",
                p.threshold
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(HarnessError::Topology(errors.join("; ")))
        }
    }

    /// Creates the network, starts every node, connects them and waits until every node
    /// admitted every other and holds every sender key it may read.
    pub async fn start(self) -> Result<Harness> {
        let (net, _) = self.start_some(usize::MAX).await?;
        Ok(net)
    }

    /// Like [`Builder::start`] but starts only the first `count` nodes (in org order);
    /// returns the names of the others, to start later with [`Harness::restart`].
    pub async fn start_some(mut self, count: usize) -> Result<(Harness, Vec<String>)> {
        use rand_chacha03::rand_core::SeedableRng;
        init_test_log();
        self.check()?;
        let mut rng = rand_chacha03::ChaCha20Rng::seed_from_u64(self.seed);
        let network = self.plan.build(&mut rng);
        let dir = tempfile::Builder::new()
            .prefix("alertmesh-harness-")
            .tempdir()?;
        let links = Links::new(self.profile, self.seed);
        let mut slots = Vec::new();
        for o in &network.orgs {
            for (i, m) in o.nodes.iter().enumerate() {
                let name = format!("{}/{i}", o.member.org_id.0);
                let node_dir = dir.path().join(name.replace('/', "-"));
                let config = crate::files::write_node_files(
                    &node_dir,
                    &network,
                    &m.key,
                    &m.agreement,
                    m.cert.as_bytes(),
                )
                .map_err(|e| node_err(&name, format!("{e:#}")))?;
                let index = slots.len();
                if let Some(ms) = self.sync_interval_ms {
                    let text = std::fs::read_to_string(&config)?;
                    std::fs::write(&config, format!("sync_interval_ms = {ms}\n{text}"))?;
                }
                slots.push(Slot {
                    name,
                    org: o.member.org_id.0.clone(),
                    index,
                    config,
                    data: node_dir.join("data"),
                    node: None,
                });
            }
        }
        let mut h = Harness {
            network,
            slots,
            links,
            raw: self.raw,
            timeout: self.timeout,
            _dir: dir,
        };
        for (a, b, spec) in &self.links {
            for i in h.resolve(a)? {
                for j in h.resolve(b)? {
                    h.links.set(i, j, *spec);
                }
            }
        }
        let later: Vec<String> = h.slots.iter().skip(count).map(|s| s.name.clone()).collect();
        for i in 0..h.slots.len().min(count) {
            h.boot(i).await?;
        }
        h.connect_all().await?;
        h.wait_ready(h.timeout).await?;
        Ok((h, later))
    }
}

/// Certificate serials of hostile members, unique in the process.
static HOSTILE_SERIAL: AtomicU64 = AtomicU64::new(0);

/// A process-wide unique memory-transport port (the memory hub is global).
fn memory_port() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Start somewhere random so that two harnesses in one process never collide with
    // ports another user of the memory transport picked.
    let base = NEXT.load(Ordering::Relaxed);
    if base == 0 {
        let _ = NEXT.compare_exchange(
            0,
            10_000 + u64::from(std::process::id()) * 1_000,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Slot {
    name: String,
    org: String,
    index: usize,
    config: PathBuf,
    data: PathBuf,
    node: Option<Node>,
}

impl Slot {
    fn view<'a>(&'a self, node: &'a Node) -> NodeView<'a> {
        NodeView {
            name: &self.name,
            org: &self.org,
            node,
            config: &self.config,
            data: &self.data,
        }
    }
}

/// A published alert, to await elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Envelope id (hex).
    pub id: String,
    /// Topic name.
    pub topic: String,
    /// The publishing node's name.
    pub from: String,
}

/// A running node with its name, org and files, as [`Harness::nodes`] lists them.
#[derive(Clone, Copy)]
pub struct NodeView<'a> {
    /// Its name, `org/i`.
    pub name: &'a str,
    /// Its org.
    pub org: &'a str,
    /// The node itself (its core, network handle, metrics, API address).
    pub node: &'a Node,
    /// Its config file.
    pub config: &'a Path,
    /// Its data directory (its SQLite database lives there).
    pub data: &'a Path,
}

/// What one node reports.
#[derive(Debug, Clone)]
pub struct NodeStats {
    /// The node's status (peers, charter version, envelopes, sender keys, ...).
    pub status: alertmesh_node::core::Status,
    /// Bytes it wrote to its connections (Noise and Yamux framing included).
    pub bytes_sent: u64,
    /// Bytes it read.
    pub bytes_received: u64,
    /// Validation outcomes, `verdict/reason` → count (e.g. `reject/bad_signature`).
    pub verdicts: BTreeMap<String, u64>,
}

/// A running network; see the [module docs](self). Dropping it without
/// [`Harness::shutdown`] aborts nothing gracefully but removes its files.
pub struct Harness {
    network: Network,
    slots: Vec<Slot>,
    links: Links,
    raw: RawTransport,
    timeout: Duration,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("nodes", &self.node_names())
            .field("transport", &self.raw)
            .finish()
    }
}

impl Harness {
    /// The keys, certificates and genesis charter of the network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The link table (set faults on single links at run time).
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Every node's name (`org/i`), in start order.
    pub fn node_names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.name.clone()).collect()
    }

    /// Node indices a name stands for: `org/i`, or every node of `org`.
    fn resolve(&self, name: &str) -> Result<Vec<usize>> {
        let found: Vec<usize> = self
            .slots
            .iter()
            .filter(|s| s.name == name || s.org == name)
            .map(|s| s.index)
            .collect();
        if found.is_empty() {
            return Err(HarnessError::UnknownNode {
                name: name.to_string(),
                known: self.node_names().join(", "),
            });
        }
        Ok(found)
    }

    /// The one node a name stands for: `org/i`, or the first running node of `org`.
    fn one(&self, name: &str) -> Result<&Slot> {
        let all = self.resolve(name)?;
        all.iter()
            .map(|&i| &self.slots[i])
            .find(|s| s.node.is_some())
            .ok_or_else(|| HarnessError::NotRunning(name.to_string()))
    }

    /// The running node named `name` (`org` means its first running node).
    pub fn node(&self, name: &str) -> Result<&Node> {
        let s = self.one(name)?;
        s.node
            .as_ref()
            .ok_or_else(|| HarnessError::NotRunning(s.name.clone()))
    }

    /// Every running node, in start order.
    pub fn nodes(&self) -> Vec<NodeView<'_>> {
        self.running().map(|(s, node)| s.view(node)).collect()
    }

    /// The running node named `name` (`org` means its first running node), with its
    /// name, org and files.
    pub fn view(&self, name: &str) -> Result<NodeView<'_>> {
        let s = self.one(name)?;
        let node = s
            .node
            .as_ref()
            .ok_or_else(|| HarnessError::NotRunning(s.name.clone()))?;
        Ok(s.view(node))
    }

    /// The listen address (with `/p2p/`) of the running node named `name`, for peers
    /// outside the harness (e.g. a [`crate::hostile::HostilePeer`]) to dial.
    pub async fn addr(&self, name: &str) -> Result<Multiaddr> {
        let s = self.one(name)?;
        self.addr_of(s.index)
            .await?
            .ok_or_else(|| HarnessError::NotRunning(s.name.clone()))
    }

    /// Starts a stopped node (or one held back by [`Builder::start_some`]) on its files
    /// without dialling anyone or waiting: the test decides whom it meets first. See
    /// [`Harness::restart`] for a node that joins everyone.
    pub async fn start_node(&mut self, name: &str) -> Result<()> {
        let i = self.stopped(name)?;
        self.boot(i).await
    }

    fn stopped(&self, name: &str) -> Result<usize> {
        let ids = self.resolve(name)?;
        ids.iter()
            .copied()
            .find(|&i| self.slots[i].node.is_none())
            .ok_or_else(|| HarnessError::Node {
                node: name.to_string(),
                error: "is running; kill it first".into(),
            })
    }

    /// Adds a member of `org` that runs the [`HostilePeer`] instead of a node: a fresh key
    /// with a valid certificate signed by the org's root ([`Harness::member_identity`]),
    /// introduced by its hello. Dials every running node and waits until each admitted
    /// it; the test then sends what it likes (any bytes on any topic or protocol). TCP
    /// networks only (the default).
    pub async fn add_hostile(&self, org: &str) -> Result<HostilePeer> {
        let identity = self.member_identity(org)?;
        let peer = HostilePeer::member(&identity)
            .map_err(|e| node_err(&format!("hostile member of {org}"), e))?;
        let running: Vec<String> = self.running().map(|(s, _)| s.name.clone()).collect();
        let running: Vec<&str> = running.iter().map(String::as_str).collect();
        self.admit(&peer, &running).await?;
        Ok(peer)
    }

    /// A fresh node key of `org` with a valid certificate signed by its root: what a
    /// modified member node holds (the test may sign its own envelopes with it).
    pub fn member_identity(&self, org: &str) -> Result<NodeMaterial> {
        use rand_chacha03::rand_core::SeedableRng;
        let o = self
            .network
            .orgs
            .iter()
            .find(|o| o.member.org_id.0 == org)
            .ok_or_else(|| HarnessError::UnknownNode {
                name: org.to_string(),
                known: self.node_names().join(", "),
            })?;
        let now = alertmesh_node::clock::now_ms();
        let serial = 1_000 + HOSTILE_SERIAL.fetch_add(1, Ordering::Relaxed);
        let mut rng = rand_chacha03::ChaCha20Rng::seed_from_u64(serial);
        Ok(alertmesh_protocol::bootstrap::new_node(
            &self.network.genesis.charter().network_id,
            &o.member.org_id,
            &o.root,
            serial,
            now.saturating_sub(60_000),
            now + 24 * 3_600_000,
            &mut rng,
        ))
    }

    /// Dials `peer` to each of `nodes` and waits until each admitted it.
    pub async fn admit(&self, peer: &HostilePeer, nodes: &[&str]) -> Result<()> {
        if self.raw != RawTransport::Tcp {
            return Err(HarnessError::Topology(
                "a hostile member speaks TCP; leave out Builder::memory".into(),
            ));
        }
        let id = peer.peer_id.to_string();
        for name in nodes {
            let node = self.node(name)?;
            let addr = listen_addr(node, self.timeout).await?;
            peer.dial(addr)
                .await
                .map_err(|e| node_err(&format!("hostile peer {id}"), e))?;
            let what = format!("{name} to admit hostile peer {id}");
            wait_for(&what, self.timeout, async || {
                node.net
                    .peers()
                    .await
                    .is_ok_and(|p| p.iter().any(|p| p.peer_id == id && p.admitted))
            })
            .await?;
        }
        Ok(())
    }

    /// The gossipsub topic a topic name is sent on in this network.
    pub fn gossip_topic(&self, name: &str) -> libp2p::gossipsub::TopicHash {
        let network = self.network.genesis.charter().network_id;
        libp2p::gossipsub::TopicHash::from_raw(
            alertmesh_protocol::TopicId::derive(&network, name).gossip_name(&network),
        )
    }

    /// The data directory of a node (its SQLite database lives there).
    pub fn data_dir(&self, name: &str) -> Result<PathBuf> {
        let i = self.resolve(name)?[0];
        Ok(self.slots[i].data.clone())
    }

    /// The config file of a node.
    pub fn config_path(&self, name: &str) -> Result<PathBuf> {
        let i = self.resolve(name)?[0];
        Ok(self.slots[i].config.clone())
    }

    async fn boot(&mut self, i: usize) -> Result<()> {
        let slot = &self.slots[i];
        let mut config =
            Config::load(&slot.config).map_err(|e| node_err(&slot.name, format!("{e:#}")))?;
        // A fresh memory port per start: a stopped node's port may linger in the hub.
        if self.raw == RawTransport::Memory {
            let addr = format!("/memory/{}", memory_port())
                .parse()
                .map_err(|e| node_err(&slot.name, e))?;
            config.listen = vec![addr];
        }
        let options = StartOptions {
            transport: Some(crate::link::transport(self.raw, self.links.clone(), i)),
            ..Default::default()
        };
        let node = Node::start_with(&config, options)
            .await
            .map_err(|e| node_err(&slot.name, format!("did not start: {e:#}")))?;
        let addr = listen_addr(&node, self.timeout).await?;
        self.links.set_address(i, &addr);
        self.slots[i].node = Some(node);
        Ok(())
    }

    fn running(&self) -> impl Iterator<Item = (&Slot, &Node)> {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref().map(|n| (s, n)))
    }

    async fn addr_of(&self, i: usize) -> Result<Option<Multiaddr>> {
        let Some(node) = &self.slots[i].node else {
            return Ok(None);
        };
        Ok(Some(listen_addr(node, self.timeout).await?))
    }

    /// Dials every pair of running nodes whose link is not cut.
    pub async fn connect_all(&self) -> Result<()> {
        for i in 0..self.slots.len() {
            let Some(addr) = self.addr_of(i).await? else {
                continue;
            };
            for (s, node) in self.running().filter(|(s, _)| s.index < i) {
                if !self.links.is_cut(s.index, i) {
                    node.dial(addr.clone())
                        .await
                        .map_err(|e| node_err(&s.name, e))?;
                }
            }
        }
        Ok(())
    }

    /// Nodes a running node can reach now (running, link not cut).
    fn reachable(&self, i: usize) -> usize {
        self.running()
            .filter(|(s, _)| s.index != i && !self.links.is_cut(s.index, i))
            .count()
    }

    /// Waits until every running node admitted every node it can reach and holds the
    /// sender key of every running publisher it can reach, of every topic it may read.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let charter = self.network.genesis.charter().clone();
        for (s, node) in self.running() {
            let peers = self.reachable(s.index);
            // Sender keys this node should hold per topic: one per running publisher node
            // it can reach, itself included.
            let publishers = |topic: &str| {
                charter.topic_by_name(topic).map_or(0, |t| {
                    self.running()
                        .filter(|(o, _)| {
                            (o.index == s.index || !self.links.is_cut(o.index, s.index))
                                && t.publishers.iter().any(|p| p.0 == o.org)
                        })
                        .count()
                })
            };
            let what = format!(
                "{} to admit {peers} peers and hold every sender key",
                s.name
            );
            wait_for(&what, timeout, async || {
                node.core.status().await.is_ok_and(|st| {
                    st.admitted_peers >= peers
                        && st
                            .sender_keys
                            .iter()
                            .all(|(topic, count)| *count >= publishers(topic))
                })
            })
            .await?;
        }
        Ok(())
    }

    /// Publishes `content` on `topic` from the node named `from` (`org`: its first running
    /// node); returns once the node stored it.
    pub async fn publish(
        &self,
        from: &str,
        topic: &str,
        tlp: Tlp,
        content: Content,
    ) -> Result<Sent> {
        let slot = self.one(from)?;
        let node = self.node(&slot.name)?;
        let receipt = node
            .core
            .publish(topic.to_string(), tlp, content)
            .await
            .map_err(|e| node_err(&slot.name, format!("{e:#}")))?
            .map_err(|e| node_err(&slot.name, format!("publish on {topic} refused: {e}")))?;
        Ok(Sent {
            id: receipt.id.to_hex(),
            topic: topic.to_string(),
            from: slot.name.clone(),
        })
    }

    /// Publishes [`sample_alert`]`(title)` (TLP green) as [`Harness::publish`] does.
    pub async fn publish_sample(&self, from: &str, topic: &str, title: &str) -> Result<Sent> {
        self.publish(from, topic, Tlp::Green, sample_alert(title))
            .await
    }

    /// Waits until the node named `at` (`org`: its first running node) holds `sent`.
    /// Fails at once if `at`'s org may not read the topic, or if the node is stopped.
    pub async fn wait_alert(
        &self,
        at: &str,
        sent: &Sent,
        timeout: Duration,
    ) -> Result<StoredAlert> {
        let slot = self.one(at)?;
        let node = self.node(&slot.name)?;
        let charter = self.current_charter(&slot.name).await?;
        let reads = charter
            .topic_by_name(&sent.topic)
            .is_some_and(|t| t.readers.iter().any(|r| r.0 == slot.org));
        if !reads {
            return Err(HarnessError::Impossible(format!(
                "{} (org {}) may not read topic {}, so alert {} never reaches it",
                slot.name, slot.org, sent.topic, sent.id
            )));
        }
        let what = format!(
            "{} to receive alert {} on {} from {}",
            slot.name,
            short(&sent.id),
            sent.topic,
            sent.from
        );
        // Subscribe before looking in the database, so that nothing slips between.
        let mut live = node.core.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(a) = stored_alert(&slot.data, &sent.id).await {
                return Ok(a);
            }
            loop {
                match tokio::time::timeout_at(deadline, live.recv()).await {
                    Err(_) => {
                        return Err(HarnessError::Timeout {
                            what,
                            after: timeout,
                        });
                    }
                    Ok(Ok(a)) if a.id == sent.id => return Ok(a),
                    Ok(Ok(_)) => {}
                    // Missed some: look in the database again.
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => {
                        return Err(HarnessError::NotRunning(slot.name.clone()));
                    }
                }
            }
        }
    }

    async fn current_charter(&self, name: &str) -> Result<alertmesh_protocol::Charter> {
        let data = self.data_dir(name)?;
        let genesis = self.network.genesis.clone();
        let latest = tokio::task::spawn_blocking(move || latest_charter(&data))
            .await
            .ok()
            .flatten();
        Ok(latest.unwrap_or(genesis).charter().clone())
    }

    /// Cuts every link between nodes of different groups (each a list of names: `org` for
    /// all its nodes, or `org/i`); nodes named in no group keep all their links. Open
    /// connections across the cut close; waits until no node is connected across it.
    pub async fn partition(&self, groups: &[&[&str]]) -> Result<()> {
        let mut group_of: BTreeMap<usize, usize> = BTreeMap::new();
        for (g, names) in groups.iter().enumerate() {
            for name in *names {
                for i in self.resolve(name)? {
                    if let Some(other) = group_of.insert(i, g) {
                        if other != g {
                            return Err(HarnessError::Topology(format!(
                                "node {} is in two partition groups ({other} and {g})",
                                self.slots[i].name
                            )));
                        }
                    }
                }
            }
        }
        for (&a, &ga) in &group_of {
            for (&b, &gb) in &group_of {
                if ga != gb {
                    self.links.cut(a, b);
                }
            }
        }
        self.wait_disconnected(&group_of).await
    }

    async fn wait_disconnected(&self, group_of: &BTreeMap<usize, usize>) -> Result<()> {
        for (s, node) in self.running() {
            let Some(&g) = group_of.get(&s.index) else {
                continue;
            };
            let others: BTreeSet<String> = group_of
                .iter()
                .filter(|(_, og)| **og != g)
                .filter_map(|(i, _)| self.slots[*i].node.as_ref().map(|n| n.peer_id.to_string()))
                .collect();
            let what = format!("{} to lose its connections across the partition", s.name);
            wait_for(&what, self.timeout, async || {
                node.net
                    .peers()
                    .await
                    .is_ok_and(|p| !p.iter().any(|p| others.contains(&p.peer_id)))
            })
            .await?;
        }
        Ok(())
    }

    /// Heals every cut link, reconnects every pair and waits until the nodes are ready
    /// again (admitted, sender keys held).
    pub async fn heal(&self) -> Result<()> {
        for a in 0..self.slots.len() {
            for b in a + 1..self.slots.len() {
                self.links.heal(a, b);
            }
        }
        self.connect_all().await?;
        self.wait_ready(self.timeout).await
    }

    /// Shapes the link between the nodes named `a` and `b` by `spec`, for connections
    /// opened from now on.
    pub fn set_link(&self, a: &str, b: &str, spec: LinkSpec) -> Result<()> {
        spec.check()
            .map_err(|e| HarnessError::Topology(format!("link {a}–{b}: {e}")))?;
        for i in self.resolve(a)? {
            for j in self.resolve(b)? {
                self.links.set(i, j, spec);
            }
        }
        Ok(())
    }

    /// Stops the named node (`org/i`; `org` means its first running node); its database
    /// stays for [`Harness::restart`].
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let i = self.one(name)?.index;
        if let Some(node) = self.slots[i].node.take() {
            node.shutdown().await;
        }
        self.links.forget_addresses(i);
        Ok(())
    }

    /// Starts a stopped node again on its database (or a node held back by
    /// [`Builder::start_some`]), connects it to every running node it can reach and waits
    /// until it is ready.
    pub async fn restart(&mut self, name: &str) -> Result<()> {
        let i = self.stopped(name)?;
        self.boot(i).await?;
        self.connect_all().await?;
        self.wait_ready(self.timeout).await
    }

    /// Waits until every running node holds every alert any running node holds on the
    /// topics its org may read (by the current charter).
    pub async fn wait_converged(&self, timeout: Duration) -> Result<()> {
        let mut readers: Vec<(usize, BTreeSet<String>)> = Vec::new();
        for (s, _) in self.running() {
            let charter = self.current_charter(&s.name).await?;
            let topics = charter
                .topics
                .iter()
                .filter(|t| t.readers.iter().any(|r| r.0 == s.org))
                .map(|t| t.name.clone())
                .collect();
            readers.push((s.index, topics));
        }
        let mut lacking = String::new();
        let ok = wait_for_quiet(timeout, async || {
            let mut held: BTreeMap<usize, BTreeSet<(String, String)>> = BTreeMap::new();
            for (i, _) in &readers {
                held.insert(*i, alert_ids(&self.slots[*i].data).await);
            }
            let all: BTreeSet<(String, String)> = held.values().flatten().cloned().collect();
            for (i, topics) in &readers {
                let missing = all
                    .iter()
                    .filter(|(t, _)| topics.contains(t))
                    .filter(|a| !held[i].contains(*a))
                    .count();
                if missing > 0 {
                    lacking = format!("{} lacks {missing} alert(s)", self.slots[*i].name);
                    return false;
                }
            }
            true
        })
        .await;
        if ok {
            Ok(())
        } else {
            Err(HarnessError::Timeout {
                what: format!("every node to hold the same alerts ({lacking})"),
                after: timeout,
            })
        }
    }

    /// A node's status, traffic and verdict counters.
    pub async fn stats(&self, name: &str) -> Result<NodeStats> {
        let slot = self.one(name)?;
        let node = self.node(&slot.name)?;
        let status = node
            .core
            .status()
            .await
            .map_err(|e| node_err(&slot.name, format!("{e:#}")))?;
        let mut verdicts = BTreeMap::new();
        crate::measure::add_verdicts(&node.metrics.encode(), &mut verdicts);
        let traffic = node.net.traffic();
        Ok(NodeStats {
            status,
            bytes_sent: traffic.bytes_sent(),
            bytes_received: traffic.bytes_received(),
            verdicts,
        })
    }

    /// How many envelopes the node named `name` judged `verdict` for `reason` (e.g.
    /// `"reject"`, `"bad_signature"`).
    pub fn verdict(&self, name: &str, verdict: &'static str, reason: &'static str) -> Result<u64> {
        Ok(verdict_count(self.node(name)?, verdict, reason))
    }

    /// Hands a signed charter (see [`Harness::sign_charter`]) to the node named `via` and
    /// waits until every running node of an org that is a member under it adopted its
    /// version (a removed org may be cut off before it hears of it).
    pub async fn adopt_charter(&self, via: &str, charter: &SignedCharter) -> Result<u64> {
        let slot = self.one(via)?;
        let node = self.node(&slot.name)?;
        let version = node
            .core
            .submit_charter(charter.as_bytes().to_vec())
            .await
            .map_err(|e| node_err(&slot.name, format!("{e:#}")))?
            .map_err(|e| node_err(&slot.name, format!("charter refused: {e}")))?;
        let members = &charter.charter().members;
        for (s, n) in self
            .running()
            .filter(|(s, _)| members.iter().any(|m| m.org_id.0 == s.org))
        {
            let what = format!("{} to adopt charter version {version}", s.name);
            wait_for(&what, self.timeout, async || {
                n.core
                    .status()
                    .await
                    .is_ok_and(|st| st.charter_version >= version)
            })
            .await?;
        }
        Ok(version)
    }

    /// Changes the charter: builds the next version from what the node named `via`
    /// holds, has the orgs `signers` sign it (their governors' root keys; a change needs
    /// the threshold's worth), and adopts it as [`Harness::adopt_charter`] does. Returns
    /// the new version; too few signatures give a [`HarnessError::Node`] naming the count.
    pub async fn change_charter(
        &self,
        via: &str,
        proposal: &alertmesh_node::proposal::Proposal,
        signers: &[&str],
    ) -> Result<u64> {
        let slot = self.one(via)?;
        let data = slot.data.clone();
        let history = tokio::task::spawn_blocking(move || {
            alertmesh_node::proposal::History::from_data_dir(&data)
        })
        .await
        .map_err(|e| node_err(&slot.name, e))?
        .map_err(|e| node_err(&slot.name, format!("{e:#}")))?;
        let data = slot.data.clone();
        let current = tokio::task::spawn_blocking(move || latest_charter(&data))
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| self.network.genesis.clone());
        let next = alertmesh_node::proposal::propose(
            &current,
            &history,
            proposal,
            alertmesh_node::clock::now_ms(),
        )
        .map_err(|e| HarnessError::Topology(format!("charter proposal: {e:#}")))?;
        let signed = self.sign_charter(next, signers)?;
        self.adopt_charter(&slot.name, &signed).await
    }

    /// Signs `charter` (the next version, unsigned) with the root keys of `signers` (org
    /// names); fails if one is not an org of the network.
    pub fn sign_charter(
        &self,
        charter: alertmesh_protocol::Charter,
        signers: &[&str],
    ) -> Result<SignedCharter> {
        let mut signed = SignedCharter::unsigned(charter);
        for s in signers {
            let org = self
                .network
                .orgs
                .iter()
                .find(|o| o.member.org_id.0 == *s)
                .ok_or_else(|| HarnessError::UnknownNode {
                    name: s.to_string(),
                    known: self
                        .network
                        .orgs
                        .iter()
                        .map(|o| o.member.org_id.0.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            signed.sign(&org.member.org_id, &org.root);
        }
        Ok(signed)
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for s in &mut self.slots {
            if let Some(node) = s.node.take() {
                node.shutdown().await;
            }
        }
    }
}

/// With `ALERTMESH_TEST_LOG` set (a `RUST_LOG`-style filter), logs of the harness's
/// nodes go to the test's output; [`Builder::start`] calls it.
pub fn init_test_log() {
    if let Ok(filter) = std::env::var("ALERTMESH_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// How many envelopes `node` judged `verdict` for `reason` (e.g. `"reject"`,
/// `"bad_signature"`).
pub fn verdict_count(node: &Node, verdict: &'static str, reason: &'static str) -> u64 {
    node.metrics
        .verdicts
        .get_or_create(&alertmesh_node::metrics::VerdictLabels { verdict, reason })
        .get()
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Polls `done` every [`POLL`] until it holds or `timeout` passed.
async fn wait_for_quiet(timeout: Duration, done: impl AsyncFnMut() -> bool) -> bool {
    crate::wait_until(timeout, POLL, done).await
}

/// [`wait_for_quiet`] that fails with a [`HarnessError::Timeout`] naming `what`.
pub async fn wait_for(
    what: &str,
    timeout: Duration,
    done: impl AsyncFnMut() -> bool,
) -> Result<()> {
    if wait_for_quiet(timeout, done).await {
        Ok(())
    } else {
        Err(HarnessError::Timeout {
            what: what.to_string(),
            after: timeout,
        })
    }
}

/// A node's first listen address with `/p2p/`, once it listens (within `timeout`).
pub async fn listen_addr(node: &Node, timeout: Duration) -> Result<Multiaddr> {
    let mut found = None;
    let what = format!("node {} to listen", node.peer_id);
    wait_for(&what, timeout, async || {
        found = node
            .listen_addrs()
            .await
            .ok()
            .and_then(|a| a.into_iter().next());
        found.is_some()
    })
    .await?;
    found.ok_or_else(|| HarnessError::NotRunning(node.peer_id.to_string()))
}

async fn stored_alert(data: &std::path::Path, id: &str) -> Option<StoredAlert> {
    let data = data.to_owned();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let conn = alertmesh_node::store::open_reader(&data).ok()?;
        let mut cursor = 0;
        loop {
            let page = alertmesh_node::store::list_alerts(&conn, None, cursor, 1000).ok()?;
            if let Some(a) = page.iter().find(|a| a.id == id) {
                return Some(a.clone());
            }
            cursor = page.last()?.cursor;
        }
    })
    .await
    .ok()
    .flatten()
}

/// (topic, envelope id) of every alert a node's database holds.
async fn alert_ids(data: &std::path::Path) -> BTreeSet<(String, String)> {
    let data = data.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = alertmesh_node::store::open_reader(&data).ok()?;
        let mut q = conn
            .prepare("SELECT topic_name, envelope_id FROM alerts")
            .ok()?;
        let rows = q
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .ok()?;
        Some(
            rows.flatten()
                .map(|(t, id)| (t, id.iter().map(|b| format!("{b:02x}")).collect()))
                .collect::<BTreeSet<_>>(),
        )
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// The highest charter version a node's database holds.
fn latest_charter(data: &std::path::Path) -> Option<SignedCharter> {
    let conn = alertmesh_node::store::open_reader(data).ok()?;
    let bytes: Vec<u8> = conn
        .query_row(
            "SELECT bytes FROM charters ORDER BY version DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok()?;
    SignedCharter::decode(&bytes).ok()
}
