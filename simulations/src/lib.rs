//! alertmesh-sim: many real alertmesh nodes in one process (issue 7).
//!
//! Each node is the node library the daemon runs ([`alertmesh_node::node::Node`]): real
//! keys and certificates, Noise over loopback TCP, gossipsub with validation, SQLite, its
//! own tasks on one multi-thread tokio runtime. A scenario (TOML, [`scenario`]) and its
//! seed fix the network, the ACLs, the dial graph, the publish schedule and the faults
//! ([`plan`]). [`alertmesh`] runs it; [`baseline`] runs the same plan on signed gossipsub
//! over the node's protocol stack (the fair baseline) and on anonymous gossipsub alone (no
//! envelope, no encryption, no validation, no storage in either); [`report`] turns them
//! into numbers, invariant verdicts, a JSON file and SVG plots ([`plot`]).
//!
//! - [`measure`]: delivery collector, latency percentiles, CPU time, peak memory.
//! - [`hostile`]: members that flood, forge, replay and equivocate, and the hostile peer
//!   (any certificate, any bytes on any protocol) they and the attack tests run.
//! - [`harness`]: a network of real nodes for your own tests, with link faults ([`link`]).
//! - [`files`]: a node's key, certificate and config files; [`samples`]: sample alerts.
//! - [`progress`]: the progress bar.

pub mod alertmesh;
pub mod baseline;
pub mod files;
pub mod harness;
pub mod hostile;
pub mod link;
pub mod measure;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod report;
pub mod samples;
pub mod scenario;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Extra time after the last publish that the CPU and bytes window covers.
pub const WINDOW_TAIL: Duration = Duration::from_secs(3);

/// How long no connection may open or close before the workload starts (longer than
/// three gossip heartbeats, so meshes have formed too).
pub const SETTLE_QUIET: Duration = Duration::from_millis(2100);

/// One publish as it happened.
#[derive(Debug, Clone)]
pub struct Published {
    /// Index in the plan's schedule.
    pub index: usize,
    /// Publisher.
    pub node: usize,
    /// Topic index.
    pub topic: usize,
    /// When the publish call started.
    pub at: Instant,
    /// The message key (envelope id or index), if the publish succeeded.
    pub key: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A named check and whether it held.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What must hold.
    pub name: String,
    /// Whether it held.
    pub holds: bool,
    /// Numbers behind the verdict.
    pub detail: String,
}

/// Everything one run (alertmesh or baseline) measured.
#[derive(Debug, Default)]
pub struct RunData {
    /// `alertmesh`, `signed-gossipsub` or `plain-gossipsub`.
    pub system: String,
    /// Publishes.
    pub published: Vec<Published>,
    /// When the workload started.
    pub workload_start: Option<Instant>,
    /// When the run stopped waiting for deliveries.
    pub end: Option<Instant>,
    /// First live arrival per (node, key).
    pub deliveries: HashMap<(usize, String), Instant>,
    /// Deliveries found in the nodes' databases at the end (alertmesh only).
    pub stored: Option<HashSet<(usize, String)>>,
    /// Time from start to ready (connected, sender keys delivered).
    pub ready: Duration,
    /// Time from start to settled (ready, then no Kademlia query running and no connection
    /// change for [`SETTLE_QUIET`]).
    pub setup: Duration,
    /// CPU time of setup.
    pub cpu_setup: Duration,
    /// CPU time of the measurement window (workload + [`WINDOW_TAIL`]).
    pub cpu_window: Duration,
    /// Length of the measurement window.
    pub window: Duration,
    /// Bytes each node sent during the window.
    pub bytes_window: Vec<f64>,
    /// Bytes each node sent during setup.
    pub bytes_setup: Vec<f64>,
    /// Gossip messages each node received during the window, duplicates included.
    pub gossip_received: Vec<f64>,
    /// Validation outcomes summed over honest nodes (`verdict/reason`).
    pub verdicts: BTreeMap<String, u64>,
    /// Peak resident memory during the run (MiB).
    pub peak_memory_mib: f64,
    /// Resident memory when ready (MiB).
    pub ready_memory_mib: f64,
    /// Connections per node when the window closed.
    pub connections: Vec<f64>,
    /// Deliveries of the same message to the same node seen more than once by the app.
    pub redelivered: u64,
    /// Live events lost by a lagging recorder.
    pub lagged: u64,
    /// System-specific checks (foreign reads, hostile containment).
    pub checks: Vec<Check>,
    /// Connections between honest nodes once ready (`(i, j)`, `i < j`): the topology the
    /// baseline reproduces (the node's Kademlia adds links to the dialled graph).
    pub ready_links: Vec<(usize, usize)>,
    /// What hostile members sent, by kind.
    pub hostile_sent: BTreeMap<String, u64>,
    /// Notes for the report.
    pub notes: Vec<String>,
}

/// Sleeps until `start + offset`.
pub async fn sleep_until(start: Instant, offset: Duration) {
    tokio::time::sleep_until((start + offset).into()).await;
}

/// Waits until `done()` or the timeout; polls every `every`.
pub async fn wait_until(
    timeout: Duration,
    every: Duration,
    mut done: impl AsyncFnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Expected (node, key) deliveries of a run.
pub fn expected(plan: &plan::Plan, published: &[Published]) -> Vec<(usize, String, usize)> {
    let mut out = Vec::new();
    for p in published {
        if let Some(key) = &p.key {
            for r in plan.expected_readers(p.topic, p.node) {
                out.push((r, key.clone(), p.index));
            }
        }
    }
    out
}
