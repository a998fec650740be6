//! Measurement: the delivery collector, latency statistics, process CPU time
//! (`getrusage`) and peak memory (`VmHWM`, reset per run through `/proc/self/clear_refs`).

use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Deliveries buffered between the nodes' recorders and the collector.
pub const DELIVERY_QUEUE: usize = 65_536;

/// What recorders send to the collector.
pub enum Msg {
    /// Node `node` received the message `key` at `at`.
    Delivery {
        /// Receiving node.
        node: usize,
        /// Message key: envelope id (alertmesh) or publish index (baseline).
        key: String,
        /// When the node's application saw it.
        at: Instant,
    },
    /// Hand over everything collected so far.
    Snapshot(oneshot::Sender<HashMap<(usize, String), Instant>>),
}

/// Handle to the collector task.
#[derive(Clone)]
pub struct Collector {
    tx: mpsc::Sender<Msg>,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    again: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Collector {
    /// Starts the collector task.
    pub fn start() -> Self {
        let (tx, mut rx) = mpsc::channel::<Msg>(DELIVERY_QUEUE);
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        let again = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let twice = again.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<(usize, String), Instant> = HashMap::new();
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Delivery { node, key, at } => match seen.entry((node, key)) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(at);
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        std::collections::hash_map::Entry::Occupied(_) => {
                            twice.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    },
                    Msg::Snapshot(reply) => {
                        let _ = reply.send(seen.clone());
                    }
                }
            }
        });
        Self { tx, count, again }
    }

    /// Deliveries of a message a node's application had already seen.
    pub fn redelivered(&self) -> usize {
        self.again.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A sender for a recorder.
    pub fn sender(&self) -> mpsc::Sender<Msg> {
        self.tx.clone()
    }

    /// Distinct deliveries so far.
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Everything collected so far: first arrival per (node, key).
    pub async fn snapshot(&self) -> HashMap<(usize, String), Instant> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Snapshot(tx)).await.is_err() {
            return HashMap::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Statistics of `samples` (sorted in place), nearest-rank percentiles.
    pub fn of(samples: &mut [f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Self {
            count: samples.len(),
            p50_ms: pct(50.0),
            p95_ms: pct(95.0),
            p99_ms: pct(99.0),
            max_ms: samples[samples.len() - 1],
            mean_ms: samples.iter().sum::<f64>() / samples.len() as f64,
        }
    }
}

/// Process CPU time (user + system) so far, from `getrusage(RUSAGE_SELF)`.
pub fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Peak resident memory of the process since the last [`reset_peak_memory`], in MiB
/// (`VmHWM` of `/proc/self/status`; Linux only, 0 elsewhere).
pub fn peak_memory_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// Resident memory now, in MiB.
pub fn memory_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Resets the peak-memory mark to the current resident size (Linux ≥ 4.0).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Distribution of a per-node quantity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PerNode {
    /// Mean over nodes.
    pub mean: f64,
    /// Median node.
    pub p50: f64,
    /// Largest node.
    pub max: f64,
    /// Sum over nodes.
    pub total: f64,
}

impl PerNode {
    /// Summary of per-node values.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let total: f64 = v.iter().sum();
        Self {
            mean: total / v.len() as f64,
            p50: v[(v.len() - 1) / 2],
            max: v[v.len() - 1],
            total,
        }
    }
}

/// Parses Prometheus text for `alertmesh_envelopes_total{verdict=..,reason=..} N` lines;
/// adds them into `out` keyed by `verdict/reason`, and the gossip messages the swarm shed
/// because the core's queue was full (`alertmesh_dropped_events_total`) as
/// `shed/core_saturated`.
pub fn add_verdicts(text: &str, out: &mut std::collections::BTreeMap<String, u64>) {
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("alertmesh_dropped_events_total ") {
            let n: f64 = n.trim().parse().unwrap_or(0.0);
            *out.entry("shed/core_saturated".into()).or_default() += n as u64;
            continue;
        }
        let Some(rest) = line.strip_prefix("alertmesh_envelopes_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let get = |name: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == name).then(|| v.trim_matches('"').to_string())
            })
        };
        let (Some(verdict), Some(reason)) = (get("verdict"), get("reason")) else {
            continue;
        };
        let n: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry(format!("{verdict}/{reason}")).or_default() += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = Latency::of(&mut v);
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
    }

    #[test]
    fn verdict_lines_parse() {
        let mut out = Default::default();
        add_verdicts(
            "# HELP x\nalertmesh_envelopes_total{verdict=\"reject\",reason=\"bad_signature\"} 3\n\
             alertmesh_envelopes_total{verdict=\"accept\",reason=\"ok\"} 10\n",
            &mut out,
        );
        assert_eq!(out.get("reject/bad_signature"), Some(&3));
        assert_eq!(out.get("accept/ok"), Some(&10));
    }

    #[test]
    fn cpu_time_advances() {
        let a = cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time() >= a);
    }
}
