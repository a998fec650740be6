//! Scenario files: one TOML file per scenario in `simulations/scenarios/`.
//!
//! ```toml
//! name = "baseline-50"
//! nodes = 50                 # one node per org
//! seed = 50                  # topology, ACLs, workload and faults derive from it
//! degree = 6                 # each node dials about this many random peers (plus a ring)
//! baseline = true            # also run the gossipsub baselines (signed, anonymous)
//!
//! [[topics]]                 # readers/publishers: a fraction of the orgs, drawn by seed
//! name = "election/disinfo"
//! readers = 1.0
//! publishers = 0.5
//!
//! [workload]
//! rate = 20.0                # alerts per second, whole network
//! duration_secs = 30
//!
//! [faults]                   # all optional
//! churn = { fraction = 0.3, start_secs = 5, end_secs = 20, down_secs = 3 }
//! partition = { start_secs = 10, heal_secs = 20 }
//! hostile = { fraction = 0.1, rate = 20.0 }
//!
//! [invariants]               # the run fails when one does not hold
//! min_delivery = 1.0
//! ```

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `links` of a scenario: a preset name or one model for every link.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LinksConfig {
    /// `"wan"` or `"ideal"`.
    Preset(String),
    /// The same model on every link.
    Spec(crate::link::LinkSpec),
}

impl Scenario {
    /// The link profile of this scenario.
    pub fn link_profile(&self) -> anyhow::Result<crate::link::LinkProfile> {
        use crate::link::LinkProfile;
        match &self.links {
            None => Ok(LinkProfile::default()),
            Some(LinksConfig::Preset(p)) if p == "wan" => Ok(LinkProfile::WAN),
            Some(LinksConfig::Preset(p)) if p == "ideal" => Ok(LinkProfile::default()),
            Some(LinksConfig::Preset(p)) => {
                bail!("`links = \"{p}\"`: unknown preset (known: \"wan\", \"ideal\")")
            }
            Some(LinksConfig::Spec(spec)) => {
                spec.check().map_err(|e| anyhow::anyhow!("`links`: {e}"))?;
                Ok(LinkProfile::Uniform(*spec))
            }
        }
    }
}

/// A scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (used for output files).
    pub name: String,
    /// What it shows, one line.
    #[serde(default)]
    pub description: String,
    /// Number of nodes (one org each).
    pub nodes: usize,
    /// Seed of topology, ACLs, workload and faults.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Random peers each node dials, besides its ring neighbour.
    #[serde(default = "default_degree")]
    pub degree: usize,
    /// Also run the gossipsub baselines (signed on the node stack, anonymous) on the same
    /// topology and workload.
    #[serde(default = "yes")]
    pub baseline: bool,
    /// Where node databases live: `tmpfs` (`/dev/shm`, the default) or `disk` (the
    /// system temp dir).
    #[serde(default)]
    pub storage: Storage,
    /// How long nodes may take to connect and exchange sender keys.
    #[serde(default = "default_setup")]
    pub setup_timeout_secs: u64,
    /// How long after the last publish (and after faults heal) deliveries may take.
    #[serde(default = "default_settle")]
    pub settle_timeout_secs: u64,
    /// The nodes' anti-entropy period (`sync_interval_ms` of the node config), if not
    /// the node's default.
    #[serde(default)]
    pub sync_interval_ms: Option<u64>,
    /// The charter's checkpoint period N in ms (PROTOCOL.md §19.2), if not the default.
    #[serde(default)]
    pub checkpoint_period_ms: Option<u64>,
    /// The charter's checkpoint interval M in envelopes, if not the default.
    #[serde(default)]
    pub checkpoint_every: Option<u32>,
    /// Per-org rate limit written into the charter (envelopes per minute, burst).
    #[serde(default)]
    pub rate_limit: Option<(u32, u32)>,
    /// Topics.
    pub topics: Vec<TopicSpec>,
    /// Publishing.
    pub workload: Workload,
    /// Faults.
    #[serde(default)]
    pub faults: Faults,
    /// How every link between alertmesh nodes is shaped (see [`crate::link`]): the preset
    /// `"wan"` (30–150 ms one way, 0.5 % segment loss), `"ideal"` (the default), or a
    /// table `{ latency = 40, jitter = 10, loss = 0.01, bandwidth_bps = 10000000 }`
    /// (milliseconds). The baselines run on the same shaped links.
    #[serde(default)]
    pub links: Option<LinksConfig>,
    /// What must hold.
    #[serde(default)]
    pub invariants: Invariants,
}

/// Where databases live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// `/dev/shm` (memory-backed; fsync is nearly free).
    #[default]
    Tmpfs,
    /// The system temp dir (a real disk: every commit pays an fsync).
    Disk,
}

/// One topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Fraction of orgs that read it (at least two orgs).
    pub readers: f64,
    /// Fraction of the readers that also publish (at least one org).
    pub publishers: f64,
}

/// The publishing workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Alerts per second, whole network.
    pub rate: f64,
    /// How long publishing lasts.
    pub duration_secs: f64,
}

/// Faults injected during the workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Nodes restart.
    pub churn: Option<Churn>,
    /// Two halves are split, then healed.
    pub partition: Option<Partition>,
    /// Some members misbehave.
    pub hostile: Option<Hostile>,
}

/// A fraction of nodes stops and restarts from its database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Fraction of nodes that restart.
    pub fraction: f64,
    /// First stop (seconds into the workload).
    pub start_secs: f64,
    /// Last stop.
    pub end_secs: f64,
    /// How long each stays down.
    pub down_secs: f64,
}

/// The node set splits into two halves (every cross link closed and refused).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// When the split starts (seconds into the workload).
    pub start_secs: f64,
    /// When it heals.
    pub heal_secs: f64,
}

/// Members with valid certificates that flood, forge, replay and equivocate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostile {
    /// Fraction of nodes that are hostile.
    pub fraction: f64,
    /// Messages per second each hostile node sends.
    pub rate: f64,
}

/// What must hold for the run to pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invariants {
    /// Minimum delivery ratio (every honest reader node, every honest alert), measured
    /// after the workload, faults healed and the settle time.
    #[serde(default = "one")]
    pub min_delivery: f64,
    /// No node holds a decrypted alert of a topic its org may not read, and no
    /// non-reader's agreement key opens a key package.
    #[serde(default = "yes")]
    pub no_foreign_reads: bool,
    /// Upper bound on the p99 latency in ms (before faults), if set.
    #[serde(default)]
    pub max_p99_ms: Option<f64>,
    /// Hostile scenario: no honest node stores a forged or unauthorized envelope, every
    /// honest node holds equivocation evidence, and rejections are counted.
    #[serde(default = "yes")]
    pub hostile_contained: bool,
}

impl Default for Invariants {
    fn default() -> Self {
        Self {
            min_delivery: 1.0,
            no_foreign_reads: true,
            max_p99_ms: None,
            hostile_contained: true,
        }
    }
}

fn default_seed() -> u64 {
    1
}
fn default_degree() -> usize {
    6
}
fn default_setup() -> u64 {
    240
}
fn default_settle() -> u64 {
    60
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

impl Scenario {
    /// Loads and checks a scenario file; errors name the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario file {}", path.display()))?;
        let s: Scenario = toml::from_str(&text)
            .with_context(|| format!("scenario file {} is not valid", path.display()))?;
        s.check()
            .with_context(|| format!("scenario file {}", path.display()))?;
        Ok(s)
    }

    /// Checks ranges.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.nodes < 3 {
            bail!("`nodes` must be at least 3");
        }
        if self.topics.is_empty() {
            bail!("at least one [[topics]] is needed");
        }
        self.link_profile()?;
        for t in &self.topics {
            if !(0.0..=1.0).contains(&t.readers) || !(0.0..=1.0).contains(&t.publishers) {
                bail!(
                    "topic {:?}: readers and publishers are fractions in 0..=1",
                    t.name
                );
            }
        }
        if !(self.workload.rate > 0.0 && self.workload.duration_secs > 0.0) {
            bail!("`workload.rate` and `workload.duration_secs` must be positive");
        }
        if let Some(c) = &self.faults.churn {
            if !(0.0..=1.0).contains(&c.fraction) || c.end_secs < c.start_secs {
                bail!("`faults.churn`: fraction in 0..=1 and end_secs ≥ start_secs");
            }
        }
        if let Some(p) = &self.faults.partition {
            if p.heal_secs <= p.start_secs {
                bail!("`faults.partition`: heal_secs must be after start_secs");
            }
        }
        if let Some(h) = &self.faults.hostile {
            if !(0.0..0.5).contains(&h.fraction) {
                bail!("`faults.hostile.fraction` must be below 0.5");
            }
        }
        Ok(())
    }

    /// Whether a fault disturbs delivery during the workload.
    pub fn has_delivery_faults(&self) -> bool {
        self.faults.churn.is_some() || self.faults.partition.is_some()
    }
}
