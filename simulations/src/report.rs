//! From measurements to a report: per-run summaries, ratios against the baseline, the
//! scenario's invariants, the JSON file and a console summary.

use crate::measure::{Latency, PerNode};
use crate::plan::Plan;
use crate::scenario::Scenario;
use crate::{Check, RunData};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Width of one step of the delivery-over-time series.
pub const TIMELINE_STEP: Duration = Duration::from_millis(250);

/// Seconds from start until every node is ready, at most (issue 20, for `scale-200`).
pub const READY_TARGET_S: f64 = 60.0;

/// One run, summarized.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// `alertmesh`, `signed-gossipsub` or `plain-gossipsub`.
    pub system: String,
    /// Publishes attempted.
    pub publishes: usize,
    /// Publishes that failed.
    pub publish_failures: usize,
    /// First publish errors, if any.
    pub publish_errors: Vec<String>,
    /// (alert, honest reader node) pairs that must be delivered.
    pub expected_deliveries: usize,
    /// Of those, delivered by the end (alertmesh: found in the readers' databases).
    pub delivered: usize,
    /// `delivered / expected_deliveries`.
    pub delivery_ratio: f64,
    /// Delivery ratio per topic.
    pub delivery_per_topic: BTreeMap<String, f64>,
    /// Deliveries the applications saw live (with a latency).
    pub delivered_live: usize,
    /// Publish call to the reader's application, every live delivery.
    pub latency: Latency,
    /// The same, only alerts published before the first fault (fault scenarios).
    pub latency_before_faults: Option<Latency>,
    /// Gossip messages received per delivery beyond the first copy (window).
    pub duplicates_per_delivery: f64,
    /// Bytes each node wrote to its TCP sockets during the window.
    pub bytes_sent_per_node: PerNode,
    /// Bytes each node wrote during setup (admission, key packages, mesh).
    pub setup_bytes_sent_per_node: PerNode,
    /// Window bytes of all nodes per delivery.
    pub bytes_per_delivery: f64,
    /// Validation outcomes by `verdict/reason`, summed over honest nodes (alertmesh).
    pub verdicts: BTreeMap<String, u64>,
    /// Rejected messages by reason (the `reject/` part of `verdicts`).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Seconds from start until ready (connected, sender keys held).
    pub ready_s: f64,
    /// Setup wall time, seconds: until ready and settled (no Kademlia query running, no
    /// connection change for 2.1 s).
    pub setup_s: f64,
    /// CPU seconds of setup.
    pub cpu_setup_s: f64,
    /// Measurement window (workload + tail), seconds.
    pub window_s: f64,
    /// CPU seconds in the window (process, user + system).
    pub cpu_window_s: f64,
    /// Cores busy on average in the window.
    pub cpu_cores_busy: f64,
    /// Resident memory once ready, MiB.
    pub ready_memory_mib: f64,
    /// Peak resident memory of the run, MiB.
    pub peak_memory_mib: f64,
    /// Connections per node at the end of the window.
    pub connections_per_node: PerNode,
    /// Messages an application saw twice.
    pub redelivered: u64,
    /// What hostile members sent.
    pub hostile_sent: BTreeMap<String, u64>,
    /// Delivery ratio over time: (seconds since workload start, delivered / due).
    pub delivery_over_time: Vec<(f64, f64)>,
    /// Partition scenarios: seconds from the heal until every alert published before it
    /// had reached every honest reader (None while one never did).
    pub heal_to_convergence_s: Option<f64>,
    /// Run-specific checks.
    pub checks: Vec<Check>,
    /// Notes.
    pub notes: Vec<String>,
    /// Latency samples in ms, sorted (for the CDF; not written to JSON).
    #[serde(skip)]
    pub samples: Vec<f64>,
}

/// Our cost against a baseline (alertmesh / baseline).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// p50 latency ratio.
    pub latency_p50: f64,
    /// p95 latency ratio.
    pub latency_p95: f64,
    /// p99 latency ratio.
    pub latency_p99: f64,
    /// CPU time in the window.
    pub cpu: f64,
    /// Bytes sent in the window.
    pub bytes: f64,
}

/// The full report of one scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario as run.
    pub scenario: Scenario,
    /// Shape of the plan.
    pub plan: PlanSummary,
    /// The command that reproduces it.
    pub command: String,
    /// Cores of this machine.
    pub cores: usize,
    /// alertmesh.
    pub alertmesh: RunSummary,
    /// The fair baseline, if run: signed gossipsub on the node's protocol stack
    /// ([`crate::baseline::Kind::Signed`]).
    pub baseline: Option<RunSummary>,
    /// alertmesh / the fair baseline (the targets are judged on these).
    pub ratios: Option<Ratios>,
    /// Anonymous gossipsub alone, if run ([`crate::baseline::Kind::Anonymous`]): for
    /// reference.
    pub anonymous: Option<RunSummary>,
    /// alertmesh / anonymous gossipsub.
    pub anonymous_ratios: Option<Ratios>,
    /// The scenario's invariants (the run fails if one does not hold).
    pub invariants: Vec<Check>,
    /// Issue 20's targets against the fair baseline, and ready within
    /// [`READY_TARGET_S`] (reported, not enforced).
    pub targets: Vec<Check>,
    /// All invariants hold.
    pub passed: bool,
}

/// Shape of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    /// Nodes.
    pub nodes: usize,
    /// Hostile nodes.
    pub hostile: usize,
    /// Dial-graph edges.
    pub edges: usize,
    /// Per topic: (name, reader orgs, publisher orgs).
    pub topics: Vec<(String, usize, usize)>,
    /// Scheduled publishes.
    pub publishes: usize,
    /// Restarts.
    pub restarts: usize,
}

impl PlanSummary {
    /// Summary of a plan.
    pub fn of(plan: &Plan) -> Self {
        Self {
            nodes: plan.len(),
            hostile: plan.hostile.iter().filter(|h| **h).count(),
            edges: plan.edges.len(),
            topics: plan
                .topics
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.readers.iter().filter(|r| **r).count(),
                        t.publishers.iter().filter(|p| **p).count(),
                    )
                })
                .collect(),
            publishes: plan.publishes.len(),
            restarts: plan.restarts.len(),
        }
    }
}

impl Ratios {
    /// `am` over `base`.
    fn of(am: &RunSummary, base: &RunSummary) -> Self {
        Self {
            latency_p50: ratio(am.latency.p50_ms, base.latency.p50_ms),
            latency_p95: ratio(am.latency.p95_ms, base.latency.p95_ms),
            latency_p99: ratio(am.latency.p99_ms, base.latency.p99_ms),
            cpu: ratio(am.cpu_window_s, base.cpu_window_s),
            bytes: ratio(am.bytes_sent_per_node.total, base.bytes_sent_per_node.total),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// Summarizes one run.
pub fn summarize(s: &Scenario, plan: &Plan, d: &RunData) -> RunSummary {
    let expected = crate::expected(plan, &d.published);
    let start = d.workload_start.unwrap_or_else(std::time::Instant::now);
    let first_fault = plan
        .restarts
        .iter()
        .map(|r| r.stop)
        .chain(plan.partition.iter().map(|p| p.1))
        .min();
    let by_index: HashMap<usize, &crate::Published> =
        d.published.iter().map(|p| (p.index, p)).collect();
    let stored: Option<&HashSet<(usize, String)>> = d.stored.as_ref();
    let mut delivered = 0;
    let mut per_topic: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut before = Vec::new();
    let mut arrivals: Vec<(f64, f64)> = Vec::new(); // (publish offset, arrival offset)
    for (r, key, idx) in &expected {
        let p = by_index[idx];
        let live = d.deliveries.get(&(*r, key.clone()));
        let ok = match stored {
            Some(set) => set.contains(&(*r, key.clone())),
            None => live.is_some(),
        } || live.is_some();
        let e = per_topic
            .entry(plan.topics[p.topic].name.clone())
            .or_default();
        e.1 += 1;
        let offset = p.at.saturating_duration_since(start).as_secs_f64();
        if ok {
            delivered += 1;
            e.0 += 1;
        }
        match live {
            Some(at) => {
                let ms = at.saturating_duration_since(p.at).as_secs_f64() * 1000.0;
                samples.push(ms);
                if first_fault.is_some_and(|f| offset < f.as_secs_f64()) {
                    before.push(ms);
                }
                arrivals.push((offset, at.saturating_duration_since(start).as_secs_f64()));
            }
            None => arrivals.push((offset, f64::INFINITY)),
        }
    }
    let heal_to_convergence_s = plan.partition.as_ref().and_then(|(_, _, heal)| {
        let heal = heal.as_secs_f64();
        let last = arrivals
            .iter()
            .filter(|(published, _)| *published < heal)
            .map(|(_, arrived)| *arrived)
            .fold(0.0, f64::max);
        (delivered == expected.len() && last.is_finite()).then(|| (last - heal).max(0.0))
    });
    let latency = Latency::of(&mut samples);
    let latency_before_faults = first_fault.map(|_| Latency::of(&mut before));
    // Delivery over time: of the deliveries due by t (published by t), those arrived by t.
    let end = d
        .end
        .map_or(0.0, |e| e.saturating_duration_since(start).as_secs_f64());
    let mut timeline = Vec::new();
    if s.has_delivery_faults() || !arrivals.is_empty() {
        let mut t = 0.0;
        while t <= end + 1e-9 {
            let due = arrivals.iter().filter(|(p, _)| *p <= t).count();
            let got = arrivals.iter().filter(|(p, a)| *p <= t && *a <= t).count();
            if due > 0 {
                timeline.push((t, got as f64 / due as f64));
            }
            t += TIMELINE_STEP.as_secs_f64();
        }
    }
    let window = d.window.as_secs_f64();
    let in_window = d
        .deliveries
        .values()
        .filter(|at| at.saturating_duration_since(start).as_secs_f64() <= window)
        .count();
    let received: f64 = d.gossip_received.iter().sum();
    let bytes: f64 = d.bytes_window.iter().sum();
    let failures: Vec<&crate::Published> = d.published.iter().filter(|p| p.key.is_none()).collect();
    RunSummary {
        system: d.system.clone(),
        publishes: d.published.len(),
        publish_failures: failures.len(),
        publish_errors: failures
            .iter()
            .take(5)
            .filter_map(|p| p.error.clone())
            .collect(),
        expected_deliveries: expected.len(),
        delivered,
        delivery_ratio: ratio(delivered as f64, expected.len() as f64),
        delivery_per_topic: per_topic
            .into_iter()
            .map(|(k, (got, due))| (k, ratio(got as f64, due as f64)))
            .collect(),
        delivered_live: d.deliveries.len(),
        latency,
        latency_before_faults,
        duplicates_per_delivery: if in_window > 0 {
            (received - in_window as f64).max(0.0) / in_window as f64
        } else {
            f64::NAN
        },
        bytes_sent_per_node: PerNode::of(&d.bytes_window),
        setup_bytes_sent_per_node: PerNode::of(&d.bytes_setup),
        bytes_per_delivery: ratio(bytes, in_window as f64),
        rejected_by_reason: d
            .verdicts
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("reject/").map(|r| (r.to_string(), *v)))
            .collect(),
        verdicts: d.verdicts.clone(),
        ready_s: d.ready.as_secs_f64(),
        setup_s: d.setup.as_secs_f64(),
        cpu_setup_s: d.cpu_setup.as_secs_f64(),
        window_s: window,
        cpu_window_s: d.cpu_window.as_secs_f64(),
        cpu_cores_busy: ratio(d.cpu_window.as_secs_f64(), window),
        ready_memory_mib: d.ready_memory_mib,
        peak_memory_mib: d.peak_memory_mib,
        connections_per_node: PerNode::of(&d.connections),
        redelivered: d.redelivered,
        hostile_sent: d.hostile_sent.clone(),
        delivery_over_time: timeline,
        heal_to_convergence_s,
        checks: d.checks.clone(),
        notes: d.notes.clone(),
        samples,
    }
}

/// Builds the report and evaluates the invariants.
pub fn build(
    s: &Scenario,
    plan: &Plan,
    command: String,
    am: RunSummary,
    base: Option<RunSummary>,
    anonymous: Option<RunSummary>,
) -> Report {
    let inv = &s.invariants;
    let mut invariants = vec![
        Check {
            name: "delivery".into(),
            holds: am.delivery_ratio >= inv.min_delivery,
            detail: format!(
                "{}/{} (alert, honest reader) pairs delivered = {:.4}; required ≥ {}{}",
                am.delivered,
                am.expected_deliveries,
                am.delivery_ratio,
                inv.min_delivery,
                if s.has_delivery_faults() {
                    " after healing"
                } else {
                    ""
                }
            ),
        },
        Check {
            name: "publishes_succeed".into(),
            holds: am.publish_failures == 0 && am.publishes > 0,
            detail: format!(
                "{} of {} publishes failed {:?}",
                am.publish_failures, am.publishes, am.publish_errors
            ),
        },
        Check {
            name: "no_double_delivery".into(),
            holds: am.redelivered == 0,
            detail: format!("{} alerts reached an application twice", am.redelivered),
        },
    ];
    if let Some(max) = inv.max_p99_ms {
        invariants.push(Check {
            name: "p99_latency".into(),
            holds: am.latency.p99_ms <= max,
            detail: format!("p99 {:.1} ms; required ≤ {max} ms", am.latency.p99_ms),
        });
    }
    for c in &am.checks {
        let enforced = match c.name.as_str() {
            "no_foreign_reads" => inv.no_foreign_reads,
            _ => inv.hostile_contained,
        };
        if enforced {
            invariants.push(c.clone());
        }
    }
    let ratios = base.as_ref().map(|b| Ratios::of(&am, b));
    let anonymous_ratios = anonymous.as_ref().map(|b| Ratios::of(&am, b));
    let mut targets = Vec::new();
    if let Some(r) = &ratios {
        targets.push(Check {
            name: "p99_latency_ratio_le_1.5".into(),
            holds: r.latency_p99 <= 1.5,
            detail: format!(
                "p50 ×{:.2}, p95 ×{:.2}, p99 ×{:.2}",
                r.latency_p50, r.latency_p95, r.latency_p99
            ),
        });
        targets.push(Check {
            name: "cpu_ratio_le_1.5".into(),
            holds: r.cpu <= 1.5,
            detail: format!("×{:.2}", r.cpu),
        });
    }
    targets.push(Check {
        name: "ready_le_60s".into(),
        holds: am.ready_s <= READY_TARGET_S,
        detail: format!("ready after {:.1} s", am.ready_s),
    });
    let passed = invariants.iter().all(|c| c.holds);
    Report {
        scenario: s.clone(),
        plan: PlanSummary::of(plan),
        command,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        alertmesh: am,
        baseline: base,
        ratios,
        anonymous,
        anonymous_ratios,
        invariants,
        targets,
        passed,
    }
}

/// A human summary of the report.
pub fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} — {} nodes ({} hostile), {} edges, {} topics, {} publishes, seed {}",
        r.scenario.name,
        r.plan.nodes,
        r.plan.hostile,
        r.plan.edges,
        r.plan.topics.len(),
        r.plan.publishes,
        r.scenario.seed
    );
    let mut row = |s: &RunSummary| {
        let _ = writeln!(
            out,
            "  {:<16} delivery {:.4} ({}/{})  latency p50 {:.1} p95 {:.1} p99 {:.1} max {:.1} ms  dup/delivery {:.2}  sent/node {:.0} KiB  CPU {:.2} s ({:.2} cores)  peak {:.0} MiB  ready {:.1} s, settled {:.1} s",
            s.system,
            s.delivery_ratio,
            s.delivered,
            s.expected_deliveries,
            s.latency.p50_ms,
            s.latency.p95_ms,
            s.latency.p99_ms,
            s.latency.max_ms,
            s.duplicates_per_delivery,
            s.bytes_sent_per_node.mean / 1024.0,
            s.cpu_window_s,
            s.cpu_cores_busy,
            s.peak_memory_mib,
            s.ready_s,
            s.setup_s,
        );
    };
    row(&r.alertmesh);
    for b in r.baseline.iter().chain(&r.anonymous) {
        row(b);
    }
    for (x, against) in [
        (&r.ratios, "signed gossipsub, fair"),
        (&r.anonymous_ratios, "anonymous gossipsub, reference"),
    ] {
        if let Some(x) = x {
            let _ = writeln!(
                out,
                "  ratios (alertmesh / {against}): latency p50 ×{:.2} p95 ×{:.2} p99 ×{:.2}, CPU ×{:.2}, bytes ×{:.2}",
                x.latency_p50, x.latency_p95, x.latency_p99, x.cpu, x.bytes
            );
        }
    }
    if r.scenario.faults.partition.is_some() {
        let _ = writeln!(
            out,
            "  heal to convergence (everything published before the heal at every reader): {}",
            r.alertmesh
                .heal_to_convergence_s
                .map_or("not reached".to_string(), |s| format!("{s:.2} s"))
        );
    }
    for note in r.alertmesh.notes.iter().filter(|n| n.starts_with("setup:")) {
        let _ = writeln!(out, "  {note}");
    }
    if !r.alertmesh.rejected_by_reason.is_empty() {
        let _ = writeln!(
            out,
            "  rejected by reason: {:?}",
            r.alertmesh.rejected_by_reason
        );
    }
    if !r.alertmesh.hostile_sent.is_empty() {
        let _ = writeln!(out, "  hostile sent: {:?}", r.alertmesh.hostile_sent);
    }
    for c in &r.invariants {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if c.holds { "ok" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    for c in &r.targets {
        let _ = writeln!(
            out,
            "  target {} {}: {}",
            if c.holds { "met" } else { "MISSED" },
            c.name,
            c.detail
        );
    }
    let _ = writeln!(out, "  {}", if r.passed { "PASSED" } else { "FAILED" });
    out
}
