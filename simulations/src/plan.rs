//! Everything a scenario's seed decides: orgs and keys, topic ACLs, the dial graph, the
//! publish schedule and the fault schedule. Every run (alertmesh and the gossipsub
//! baselines) uses the same plan.

use crate::scenario::Scenario;
use alertmesh_protocol::bootstrap::{Network, NetworkPlan, OrgPlan, TopicPlan};
use alertmesh_protocol::{Limits, OrgId, Tlp};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha03::ChaCha20Rng;
use rand_chacha03::rand_core::SeedableRng;
use std::time::Duration;

/// One topic's ACL, by node index.
#[derive(Debug, Clone)]
pub struct TopicAcl {
    /// Topic name.
    pub name: String,
    /// Node `i` reads it.
    pub readers: Vec<bool>,
    /// Node `i` may publish on it.
    pub publishers: Vec<bool>,
}

/// One scheduled publish.
#[derive(Debug, Clone, Copy)]
pub struct Publish {
    /// Offset from the workload start.
    pub at: Duration,
    /// Publishing node.
    pub node: usize,
    /// Topic index.
    pub topic: usize,
}

/// One node's restart.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// The node.
    pub node: usize,
    /// When it stops (offset from the workload start).
    pub stop: Duration,
    /// When it starts again.
    pub start: Duration,
}

/// One step of a run's schedule ([`Plan::schedule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Publish `plan.publishes[k]`.
    Publish(usize),
    /// Stop node `i`.
    Stop(usize),
    /// Start node `i` again.
    Start(usize),
    /// Cut the partition.
    Split,
    /// Heal it.
    Heal,
    /// The measurement window ends.
    WindowEnd,
}

/// Neighbours of `i` in the undirected graph `edges`.
pub fn neighbours(edges: &[(usize, usize)], i: usize) -> Vec<usize> {
    edges
        .iter()
        .filter_map(|&(a, b)| {
            if a == i {
                Some(b)
            } else if b == i {
                Some(a)
            } else {
                None
            }
        })
        .collect()
}

/// The seeded plan of a scenario.
pub struct Plan {
    /// Keys, certificates and the genesis charter.
    pub network: Network,
    /// Org id of node `i`.
    pub orgs: Vec<String>,
    /// Node `i` is hostile.
    pub hostile: Vec<bool>,
    /// Topic ACLs.
    pub topics: Vec<TopicAcl>,
    /// Dial graph: `(dialer, listener)`; a hostile node is always the dialer.
    pub edges: Vec<(usize, usize)>,
    /// Publishes, in time order.
    pub publishes: Vec<Publish>,
    /// Restarts (churn).
    pub restarts: Vec<Restart>,
    /// Partition: node `i` is in the first half; with the split and heal times.
    pub partition: Option<(Vec<bool>, Duration, Duration)>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl Plan {
    /// Builds the plan; `now_ms` is the certificates' reference time.
    pub fn build(s: &Scenario, now_ms: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(s.seed);
        let n = s.nodes;
        let orgs: Vec<String> = (0..n).map(|i| format!("org-{i:03}")).collect();

        // Hostile members.
        let mut hostile = vec![false; n];
        if let Some(h) = &s.faults.hostile {
            let count = ((n as f64) * h.fraction).round() as usize;
            let mut idx: Vec<usize> = (0..n).collect();
            idx.shuffle(&mut rng);
            for &i in idx.iter().take(count) {
                hostile[i] = true;
            }
        }
        let honest: Vec<usize> = (0..n).filter(|i| !hostile[*i]).collect();

        // Topic ACLs: readers drawn from all orgs (at least one honest publisher and one
        // other honest reader per topic).
        let mut topics = Vec::new();
        for t in &s.topics {
            let count = (((n as f64) * t.readers).round() as usize).clamp(2, n);
            let mut idx: Vec<usize> = (0..n).collect();
            idx.shuffle(&mut rng);
            let mut readers: Vec<usize> = idx[..count].to_vec();
            let honest_readers = readers.iter().filter(|i| !hostile[**i]).count();
            if honest_readers < 2 {
                for &h in &honest {
                    if !readers.contains(&h) {
                        readers.push(h);
                    }
                    if readers.iter().filter(|i| !hostile[**i]).count() >= 2 {
                        break;
                    }
                }
            }
            let pcount =
                (((readers.len() as f64) * t.publishers).round() as usize).clamp(1, readers.len());
            readers.shuffle(&mut rng);
            let mut publishers: Vec<usize> = readers[..pcount].to_vec();
            if publishers.iter().all(|p| hostile[*p]) {
                if let Some(h) = readers.iter().find(|r| !hostile[**r]) {
                    publishers.push(*h);
                }
            }
            let mut r = vec![false; n];
            let mut p = vec![false; n];
            readers.iter().for_each(|i| r[*i] = true);
            publishers.iter().for_each(|i| p[*i] = true);
            topics.push(TopicAcl {
                name: t.name.clone(),
                readers: r,
                publishers: p,
            });
        }

        // Dial graph: a ring over honest nodes, plus random links.
        let mut edges: Vec<(usize, usize)> = Vec::new();
        let push = |a: usize, b: usize, edges: &mut Vec<(usize, usize)>| {
            if a == b
                || edges
                    .iter()
                    .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
            {
                return;
            }
            // A hostile node always dials (it does not publish its listen address).
            if hostile[b] && !hostile[a] {
                edges.push((b, a));
            } else {
                edges.push((a, b));
            }
        };
        for w in 0..honest.len() {
            push(honest[w], honest[(w + 1) % honest.len()], &mut edges);
        }
        let extra = (s.degree / 2).saturating_sub(1).max(1);
        for i in 0..n {
            for _ in 0..extra {
                let j = honest[rng.gen_range(0..honest.len())];
                push(i, j, &mut edges);
            }
        }

        // Restarts.
        let mut restarts = Vec::new();
        if let Some(c) = &s.faults.churn {
            let count = ((honest.len() as f64) * c.fraction).round() as usize;
            let mut idx = honest.clone();
            idx.shuffle(&mut rng);
            for (k, &node) in idx.iter().take(count).enumerate() {
                let stop = c.start_secs
                    + (c.end_secs - c.start_secs) * (k as f64) / (count.max(2) - 1) as f64;
                restarts.push(Restart {
                    node,
                    stop: secs(stop),
                    start: secs(stop + c.down_secs),
                });
            }
        }

        // Publishes: evenly spaced; a random honest publisher that is up at that time.
        let total = (s.workload.rate * s.workload.duration_secs).round() as usize;
        let mut publishes = Vec::with_capacity(total);
        for k in 0..total {
            let at = secs(k as f64 / s.workload.rate);
            for _attempt in 0..32 {
                let topic = rng.gen_range(0..topics.len());
                let up: Vec<usize> = (0..n)
                    .filter(|&i| topics[topic].publishers[i] && !hostile[i])
                    .filter(|&i| {
                        !restarts
                            .iter()
                            .any(|r| r.node == i && r.stop <= at && at < r.start)
                    })
                    .collect();
                if let Some(&node) = up.get(rng.gen_range(0..up.len().max(1))) {
                    publishes.push(Publish { at, node, topic });
                    break;
                }
            }
        }

        let partition = s.faults.partition.as_ref().map(|p| {
            let half: Vec<bool> = (0..n).map(|i| i < n / 2).collect();
            (half, secs(p.start_secs), secs(p.heal_secs))
        });

        // Keys, certificates, charter.
        let defaults = Limits::default();
        let (rate_per_org_per_minute, rate_burst) = s
            .rate_limit
            .unwrap_or((defaults.rate_per_org_per_minute, defaults.rate_burst));
        let limits = Limits {
            rate_per_org_per_minute,
            rate_burst,
            checkpoint_period_ms: s
                .checkpoint_period_ms
                .unwrap_or(defaults.checkpoint_period_ms),
            checkpoint_every: s.checkpoint_every.unwrap_or(defaults.checkpoint_every),
            ..defaults
        };
        let net_plan = NetworkPlan {
            network_name: format!("sim-{}", s.name),
            orgs: orgs
                .iter()
                .enumerate()
                .map(|(i, o)| OrgPlan {
                    org_id: OrgId(o.clone()),
                    name: format!("Simulated organization {i}"),
                    roles: vec![],
                    governor: i < 3,
                    nodes: 1,
                })
                .collect(),
            topics: topics
                .iter()
                .map(|t| TopicPlan {
                    name: t.name.clone(),
                    readers: (0..n)
                        .filter(|i| t.readers[*i])
                        .map(|i| OrgId(orgs[i].clone()))
                        .collect(),
                    publishers: (0..n)
                        .filter(|i| t.publishers[*i])
                        .map(|i| OrgId(orgs[i].clone()))
                        .collect(),
                    max_tlp: Tlp::Amber,
                })
                .collect(),
            threshold: 2,
            limits,
            now_ms: now_ms.saturating_sub(60_000),
            cert_lifetime_ms: 24 * 3600 * 1000,
        };
        let network = net_plan.build(&mut rng);
        Plan {
            network,
            orgs,
            hostile,
            topics,
            edges,
            publishes,
            restarts,
            partition,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.orgs.len()
    }

    /// Whether the plan has no nodes.
    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty()
    }

    /// Neighbours of `i` in the dial graph.
    pub fn neighbours(&self, i: usize) -> Vec<usize> {
        neighbours(&self.edges, i)
    }

    /// What happens when in a run of `duration`, in time order: the publishes, the
    /// restarts, the partition, then the end of the measurement window (`duration +
    /// tail`). Also returns when the last fault ends (a restart or the heal), if any.
    pub fn schedule(
        &self,
        duration: Duration,
        tail: Duration,
    ) -> (Vec<(Duration, Event)>, Option<Duration>) {
        let mut events: Vec<(Duration, Event)> = self
            .publishes
            .iter()
            .enumerate()
            .map(|(k, p)| (p.at, Event::Publish(k)))
            .collect();
        for r in &self.restarts {
            events.push((r.stop, Event::Stop(r.node)));
            events.push((r.start, Event::Start(r.node)));
        }
        if let Some((_, split, heal)) = &self.partition {
            events.push((*split, Event::Split));
            events.push((*heal, Event::Heal));
        }
        events.push((duration + tail, Event::WindowEnd));
        events.sort_by_key(|(at, _)| *at);
        let last_fault = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Start(_) | Event::Heal))
            .map(|(at, _)| *at)
            .max();
        (events, last_fault)
    }

    /// Honest nodes other than `publisher` that read `topic`: who must receive an alert.
    pub fn expected_readers(&self, topic: usize, publisher: usize) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| i != publisher && !self.hostile[i] && self.topics[topic].readers[i])
            .collect()
    }

    /// Honest publisher nodes of a topic (the sender keys an honest reader must hold).
    pub fn honest_publishers(&self, topic: usize) -> usize {
        (0..self.len())
            .filter(|&i| self.topics[topic].publishers[i] && !self.hostile[i])
            .count()
    }
}
