//! The alertmesh run: every honest node is a real [`Node`] (keys, certificate, Noise over
//! loopback TCP, validated gossipsub, SQLite), started from files like `alertmesh run`.

use crate::hostile::HostileDriver;
use crate::measure::{self, Collector, Msg};
use crate::plan::{Event, Plan};
use crate::progress::Progress;
use crate::scenario::{Scenario, Storage};
use crate::{Check, Published, RunData, SETTLE_QUIET, WINDOW_TAIL, sleep_until, wait_until};
use alertmesh_node::config::Config;
use alertmesh_node::metrics::Metrics;
use alertmesh_node::net::{NetCommand, Traffic};
use alertmesh_node::node::Node;
use alertmesh_protocol::{KeyPackage, Kind, SignedEnvelope, Tlp, TopicId};
use anyhow::Context;
use libp2p::{Multiaddr, PeerId};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

/// Non-reader keys tried against every key package of a topic.
const MAX_NON_READERS_CHECKED: usize = 20;
/// How long a node may take to start listening.
const LISTEN_WAIT: Duration = Duration::from_secs(30);

/// One honest node slot (it survives restarts).
struct Slot {
    config: PathBuf,
    data: PathBuf,
    org: String,
    node: Option<Node>,
    peer: PeerId,
    addr: Option<Multiaddr>,
    /// Every incarnation's counters (a restart starts new ones).
    traffic: Vec<Traffic>,
    metrics: Vec<Metrics>,
    recorder: Option<tokio::task::JoinHandle<()>>,
}

/// A concise alert for the workload (same plaintext as the baseline's payload).
pub fn workload_alert(index: usize) -> alertmesh_protocol::Content {
    use alertmesh_protocol::alert::{Alert, AlertKind, Observable, Severity};
    alertmesh_protocol::Content::Alert(Alert {
        kind: AlertKind::Indicator,
        title: format!("simulated alert {index}"),
        description: "coordinated inauthentic accounts amplifying a voting-date hoax".into(),
        severity: Severity::High,
        confidence: 80,
        observables: vec![Observable::Domain(format!("vote-info-{index}.example"))],
        labels: vec!["disinformation".into()],
        references: vec![],
        valid_from_ms: 0,
        valid_until_ms: None,
        related: vec![],
        stix: None,
    })
}

fn spawn_recorder(
    node: &Node,
    index: usize,
    org: String,
    tx: tokio::sync::mpsc::Sender<Msg>,
) -> tokio::task::JoinHandle<()> {
    let mut rx = node.core.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(alert) => {
                    let at = Instant::now();
                    if alert.org == org {
                        continue; // our own publish
                    }
                    if tx
                        .send(Msg::Delivery {
                            node: index,
                            key: alert.id,
                            at,
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(node = index, lost = n, "recorder lagged");
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// Connections between honest nodes now (`(i, j)`, `i < j`).
async fn current_links(slots: &[Option<Slot>]) -> BTreeSet<(usize, usize)> {
    let index: std::collections::HashMap<String, usize> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().map(|s| (s.peer.to_string(), i)))
        .collect();
    let mut links = BTreeSet::new();
    for (i, slot) in slots.iter().enumerate() {
        if let Some(node) = slot.as_ref().and_then(|s| s.node.as_ref()) {
            for p in node.net.peers().await.unwrap_or_default() {
                if let Some(&j) = index.get(&p.peer_id) {
                    links.insert((i.min(j), i.max(j)));
                }
            }
        }
    }
    links
}

/// Kademlia queries running on all live nodes.
async fn kad_queries(slots: &[Option<Slot>]) -> usize {
    let mut running = 0;
    for node in slots.iter().flatten().filter_map(|s| s.node.as_ref()) {
        running += node.net.kad_queries().await.unwrap_or(0);
    }
    running
}

fn data_root(storage: Storage) -> anyhow::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    let dir = match storage {
        Storage::Tmpfs if shm.is_dir() => tempfile::Builder::new()
            .prefix("alertmesh-sim-")
            .tempdir_in(shm)?,
        _ => tempfile::Builder::new()
            .prefix("alertmesh-sim-")
            .tempdir()?,
    };
    Ok(dir)
}

/// Sum over every incarnation of the slots.
fn sum_traffic(slots: &[Option<Slot>], f: impl Fn(&Traffic) -> u64) -> Vec<f64> {
    slots
        .iter()
        .map(|s| {
            s.as_ref()
                .map_or(0.0, |s| s.traffic.iter().map(&f).sum::<u64>() as f64)
        })
        .collect()
}

fn diff(after: &[f64], before: &[f64]) -> Vec<f64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// Runs the scenario on real alertmesh nodes.
pub async fn run(s: &Scenario, plan: &Plan, progress: &Progress) -> anyhow::Result<RunData> {
    let n = plan.len();
    let mut data = RunData {
        system: "alertmesh".into(),
        ..Default::default()
    };
    measure::reset_peak_memory();
    let cpu0 = measure::cpu_time();
    let t0 = Instant::now();
    let root = data_root(s.storage)?;
    data.notes.push(format!(
        "databases under {} ({:?}); SQLite WAL with synchronous=FULL as in the daemon",
        root.path().display(),
        s.storage
    ));
    let collector = Collector::start();
    let link_table = crate::link::Links::new(s.link_profile()?, s.seed);
    if s.links.is_some() {
        data.notes.push(format!("links: {:?}", s.link_profile()?));
    }
    let start_node = |i: usize, config: &std::path::Path| {
        let links = link_table.clone();
        let config = config.to_owned();
        async move {
            let options = alertmesh_node::node::StartOptions {
                transport: Some(crate::link::transport(
                    crate::link::RawTransport::Tcp,
                    links,
                    i,
                )),
                ..Default::default()
            };
            Node::start_with(&Config::load(&config)?, options).await
        }
    };
    let materials: Vec<_> = plan.network.nodes().map(|(_, m)| m).collect();

    // Start honest nodes from files, as `alertmesh run` does.
    progress.phase("alertmesh: start", n as u64);
    let mut slots: Vec<Option<Slot>> = Vec::with_capacity(n);
    for (i, m) in materials.iter().copied().enumerate().take(n) {
        progress.set(i as u64);
        if plan.hostile[i] {
            slots.push(None);
            continue;
        }
        let dir = root.path().join(format!("{i:03}"));
        let config = crate::files::write_node_files(
            &dir,
            &plan.network,
            &m.key,
            &m.agreement,
            m.cert.as_bytes(),
        )?;
        if let Some(ms) = s.sync_interval_ms {
            let text = std::fs::read_to_string(&config)?;
            std::fs::write(&config, format!("sync_interval_ms = {ms}\n{text}"))?;
        }
        let node = start_node(i, &config)
            .await
            .with_context(|| format!("node {i} did not start"))?;
        let recorder = spawn_recorder(&node, i, plan.orgs[i].clone(), collector.sender());
        slots.push(Some(Slot {
            config,
            data: dir.join("data"),
            org: plan.orgs[i].clone(),
            peer: node.peer_id,
            addr: None,
            traffic: vec![node.net.traffic()],
            metrics: vec![node.metrics.clone()],
            node: Some(node),
            recorder: Some(recorder),
        }));
    }
    for (i, slot) in slots.iter_mut().enumerate() {
        let Some(slot) = slot else { continue };
        if let Some(node) = &slot.node {
            let addr = crate::harness::listen_addr(node, LISTEN_WAIT).await?;
            link_table.set_address(i, &addr);
            slot.addr = Some(addr);
        }
    }
    let mut hostile = HostileDriver::start(plan, &materials)?;
    for &(a, b) in &plan.edges {
        let Some(addr) = slots[b].as_ref().and_then(|s| s.addr.clone()) else {
            continue;
        };
        if let Some(node) = slots[a].as_ref().and_then(|s| s.node.as_ref()) {
            node.dial(addr).await?;
        } else {
            hostile.dial(a, addr).await?;
        }
    }

    let dialled = t0.elapsed();
    // Ready: every honest node admitted its neighbours and holds the sender key of every
    // honest publisher of every topic it reads.
    progress.phase("alertmesh: keys", n as u64);
    let needed: Vec<BTreeMap<String, usize>> = (0..n)
        .map(|i| {
            plan.topics
                .iter()
                .enumerate()
                .filter(|(_, t)| t.readers[i])
                .map(|(k, t)| (t.name.clone(), plan.honest_publishers(k)))
                .collect()
        })
        .collect();
    let neighbours: Vec<usize> = (0..n).map(|i| plan.neighbours(i).len()).collect();
    let mut ready = vec![false; n];
    // Where setup time goes: when each node became ready, and when each held the
    // certificate of every honest node (a sender key is sealed only to known readers).
    let honest = slots.iter().flatten().count();
    let mut ready_at: Vec<Duration> = Vec::new();
    let mut all_certs = vec![false; n];
    let mut all_certs_at: Vec<Duration> = Vec::new();
    let ok = wait_until(
        Duration::from_secs(s.setup_timeout_secs),
        Duration::from_millis(250),
        async || {
            // Every node not ready yet is asked at once, and each answer is timed when it
            // arrives: a node whose core is busy does not delay the others' times.
            let asks = (0..n).filter(|&i| !ready[i]).map(|i| {
                let node = slots[i].as_ref().and_then(|s| s.node.as_ref());
                async move {
                    let status = match node {
                        Some(node) => Some(node.core.status().await),
                        None => None,
                    };
                    (i, status, t0.elapsed())
                }
            });
            for (i, status, at) in futures::future::join_all(asks).await {
                let Some(status) = status else {
                    ready[i] = true;
                    all_certs[i] = true;
                    continue;
                };
                if let Ok(st) = status {
                    if !all_certs[i] && st.known_nodes >= honest {
                        all_certs[i] = true;
                        all_certs_at.push(at);
                    }
                    ready[i] = st.admitted_peers >= neighbours[i]
                        && needed[i]
                            .iter()
                            .all(|(t, c)| st.sender_keys.get(t).copied().unwrap_or(0) >= *c);
                    if ready[i] {
                        ready_at.push(at);
                    }
                }
            }
            let count = ready.iter().filter(|r| **r).count();
            progress.set(count as u64);
            count == n
        },
    )
    .await;
    data.notes.push(format!(
        "setup: {} nodes started and dialled {:.1} s; ready {}; every certificate held {} (of the nodes not ready at that point)",
        honest,
        dialled.as_secs_f64(),
        spread(&ready_at),
        spread(&all_certs_at),
    ));
    if !ok {
        let missing: Vec<usize> = (0..n).filter(|i| !ready[*i]).collect();
        anyhow::bail!(
            "setup timed out after {} s: {} node(s) not ready (e.g. {:?})",
            s.setup_timeout_secs,
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
    data.ready = t0.elapsed();
    // Settled: no Kademlia query running and no connection opened or closed anywhere for
    // `SETTLE_QUIET`, so the start-up walks and the admissions they cause are over before
    // the window opens.
    progress.phase("alertmesh: settle", 1);
    let mut links = current_links(&slots).await;
    let mut quiet_since = Instant::now();
    let settled = wait_until(
        Duration::from_secs(s.setup_timeout_secs).saturating_sub(data.ready),
        Duration::from_millis(250),
        async || {
            let now = current_links(&slots).await;
            if now != links {
                links = now;
                quiet_since = Instant::now();
            }
            quiet_since.elapsed() >= SETTLE_QUIET && kad_queries(&slots).await == 0
        },
    )
    .await;
    if !settled {
        anyhow::bail!(
            "setup timed out after {} s: connections still changing or Kademlia queries still running",
            s.setup_timeout_secs
        );
    }
    data.setup = t0.elapsed();
    data.cpu_setup = measure::cpu_time() - cpu0;
    data.ready_links = links.into_iter().collect();
    data.ready_memory_mib = measure::memory_mib();
    let bytes0 = sum_traffic(&slots, Traffic::bytes_sent);
    let ids0 = sum_traffic(&slots, Traffic::gossip_message_ids);
    data.bytes_setup = bytes0.clone();

    // The workload, with faults, in time order.
    progress.phase("alertmesh: publish", plan.publishes.len() as u64);
    let start = Instant::now();
    data.workload_start = Some(start);
    let cpu_w0 = measure::cpu_time();
    let duration = Duration::from_secs_f64(s.workload.duration_secs);
    let (events, last_fault) = plan.schedule(duration, WINDOW_TAIL);
    hostile.start_attacks(s, plan, duration, &slots_data_dirs(&slots));

    let mut publishes: JoinSet<Published> = JoinSet::new();
    let mut stopping: JoinSet<()> = JoinSet::new();
    let mut done = 0u64;
    let mut bytes_w1 = None;
    for (at, ev) in events {
        sleep_until(start, at).await;
        match ev {
            Event::Publish(k) => {
                let p = plan.publishes[k];
                done += 1;
                progress.set(done);
                let Some(core) = slots[p.node]
                    .as_ref()
                    .and_then(|s| s.node.as_ref())
                    .map(|n| n.core.clone())
                else {
                    continue;
                };
                let topic = plan.topics[p.topic].name.clone();
                publishes.spawn(async move {
                    let at = Instant::now();
                    let r = core.publish(topic, Tlp::Green, workload_alert(k)).await;
                    let (key, error) = match r {
                        Ok(Ok(receipt)) => (Some(receipt.id.to_hex()), None),
                        Ok(Err(e)) => (None, Some(e.to_string())),
                        Err(e) => (None, Some(format!("{e:#}"))),
                    };
                    Published {
                        index: k,
                        node: p.node,
                        topic: p.topic,
                        at,
                        key,
                        error,
                    }
                });
            }
            Event::Stop(i) => {
                if let Some(slot) = slots[i].as_mut() {
                    if let Some(r) = slot.recorder.take() {
                        r.abort();
                    }
                    if let Some(node) = slot.node.take() {
                        stopping.spawn(node.shutdown());
                    }
                }
                progress.msg(format!("node {i} stopped"));
            }
            Event::Start(i) => {
                while stopping.try_join_next().is_some() {}
                let Some(slot) = slots[i].as_mut() else {
                    continue;
                };
                // Wait for this node's own shutdown (its database must be closed).
                let deadline = Instant::now() + Duration::from_secs(10);
                let node = loop {
                    match start_node(i, &slot.config).await {
                        Ok(node) => break node,
                        Err(e) if Instant::now() < deadline => {
                            tracing::debug!(error = %e, "restart not possible yet");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => return Err(e).context(format!("node {i} did not restart")),
                    }
                };
                slot.recorder = Some(spawn_recorder(
                    &node,
                    i,
                    slot.org.clone(),
                    collector.sender(),
                ));
                slot.traffic.push(node.net.traffic());
                slot.metrics.push(node.metrics.clone());
                let addr = crate::harness::listen_addr(&node, LISTEN_WAIT).await?;
                link_table.forget_addresses(i);
                link_table.set_address(i, &addr);
                slot.addr = Some(addr);
                slot.node = Some(node);
                for j in plan.neighbours(i) {
                    if let Some(addr) = slots[j].as_ref().and_then(|s| s.addr.clone()) {
                        if let Some(node) = slots[i].as_ref().and_then(|s| s.node.as_ref()) {
                            node.dial(addr).await?;
                        }
                    } else if plan.hostile[j] {
                        if let Some(addr) = slots[i].as_ref().and_then(|s| s.addr.clone()) {
                            hostile.dial(j, addr).await?;
                        }
                    }
                }
                progress.msg(format!("node {i} restarted"));
            }
            Event::Split | Event::Heal => {
                let Some((half, _, _)) = &plan.partition else {
                    continue;
                };
                let split = matches!(ev, Event::Split);
                for a in 0..n {
                    for b in a + 1..n {
                        if half[a] == half[b] {
                            continue;
                        }
                        // Honest pairs: the link is cut (its connections close, dials
                        // fail) or healed, as a real network would.
                        if slots[a].is_some() && slots[b].is_some() {
                            if split {
                                link_table.cut(a, b);
                            } else {
                                link_table.heal(a, b);
                            }
                            continue;
                        }
                        // A hostile peer dials over plain TCP, outside the link table:
                        // its honest neighbour bans it instead.
                        let (honest, other) = if slots[a].is_some() { (a, b) } else { (b, a) };
                        let Some(node) = slots[honest].as_ref().and_then(|s| s.node.as_ref())
                        else {
                            continue;
                        };
                        let peer = hostile.peer_id(other);
                        let cmd = if split {
                            NetCommand::Ban(peer)
                        } else {
                            NetCommand::Unban(peer)
                        };
                        node.net.send(cmd).await?;
                    }
                }
                if !split {
                    for &(a, b) in &plan.edges {
                        if half[a] == half[b] {
                            continue;
                        }
                        if let (Some(node), Some(addr)) = (
                            slots[a].as_ref().and_then(|s| s.node.as_ref()),
                            slots[b].as_ref().and_then(|s| s.addr.clone()),
                        ) {
                            node.dial(addr).await?;
                        }
                    }
                }
                progress.msg(if split {
                    "partitioned".into()
                } else {
                    "healed".into()
                });
            }
            Event::WindowEnd => {
                data.cpu_window = measure::cpu_time() - cpu_w0;
                data.window = start.elapsed();
                bytes_w1 = Some((
                    sum_traffic(&slots, Traffic::bytes_sent),
                    sum_traffic(&slots, Traffic::gossip_message_ids),
                ));
                let mut conns = Vec::new();
                for slot in slots.iter().flatten() {
                    if let Some(node) = &slot.node {
                        conns.push(node.net.peers().await.map(|p| p.len()).unwrap_or(0) as f64);
                    }
                }
                data.connections = conns;
            }
        }
    }
    while let Some(p) = publishes.join_next().await {
        data.published.push(p?);
    }
    data.published.sort_by_key(|p| p.index);
    while stopping.join_next().await.is_some() {}
    hostile.stop_attacks().await;
    if let Some((b1, ids1)) = bytes_w1 {
        data.bytes_window = diff(&b1, &bytes0);
        // Own publishes also compute a message id: subtract them.
        let mut own = vec![0.0; n];
        for p in &data.published {
            if p.key.is_some() {
                own[p.node] += 1.0;
            }
        }
        data.gossip_received = diff(&ids1, &ids0)
            .iter()
            .zip(&own)
            .map(|(a, o)| (a - o).max(0.0))
            .collect();
    }

    // Settle: until every expected delivery is seen live or in the databases.
    let expected = crate::expected(plan, &data.published);
    progress.phase("alertmesh: settle", expected.len() as u64);
    let settle_start = Instant::now();
    let mut last_db = Instant::now();
    let complete = wait_until(
        Duration::from_secs(s.settle_timeout_secs)
            + last_fault
                .unwrap_or_default()
                .saturating_sub(start.elapsed()),
        Duration::from_millis(100),
        async || {
            let live = collector.count();
            progress.set(live as u64);
            if live >= expected.len() {
                return true;
            }
            if last_db.elapsed() > Duration::from_secs(5) {
                last_db = Instant::now();
                let stored = stored_alerts(&slots).await;
                return expected
                    .iter()
                    .all(|(r, k, _)| stored.contains(&(*r, k.clone())));
            }
            false
        },
    )
    .await;
    data.end = Some(Instant::now());
    if !complete {
        data.notes.push(format!(
            "settle timed out after {:.1} s",
            settle_start.elapsed().as_secs_f64()
        ));
    }
    data.deliveries = collector.snapshot().await;
    data.redelivered = collector.redelivered() as u64;
    let stored = stored_alerts(&slots).await;
    if !complete {
        let missing: Vec<(usize, String)> = expected
            .iter()
            .filter(|(r, k, _)| !stored.contains(&(*r, k.clone())))
            .map(|(r, k, _)| (*r, k.clone()))
            .collect();
        data.notes
            .extend(undelivered_states(&slots, &missing, 10).await);
    }

    // No node holds a decrypted alert of a topic its org may not read.
    let mut foreign = 0usize;
    for (i, slot) in slots.iter().enumerate() {
        let Some(slot) = slot else { continue };
        for (topic, _) in stored_topics(&slot.data).await {
            if !plan.topics.iter().any(|t| t.name == topic && t.readers[i]) {
                foreign += 1;
            }
        }
    }
    let (packages, opened) = key_package_check(plan, &slots, &materials).await;
    data.checks.push(Check {
        name: "no_foreign_reads".into(),
        holds: foreign == 0 && opened == 0,
        detail: format!(
            "{foreign} alerts held by non-reader orgs; {packages} key packages tried against up to {MAX_NON_READERS_CHECKED} non-reader keys each, {opened} opened"
        ),
    });
    data.stored = Some(stored);

    // Verdicts over every incarnation of every honest node.
    for slot in slots.iter().flatten() {
        for m in &slot.metrics {
            measure::add_verdicts(&m.encode(), &mut data.verdicts);
        }
    }
    if s.faults.hostile.is_some() {
        data.checks
            .extend(hostile.checks(&slots_handles(&slots)).await);
        let count = |k: &str| data.verdicts.get(k).copied().unwrap_or(0);
        let wanted = [
            "reject/bad_signature",
            "reject/not_publisher",
            "reject/equivocation",
            "ignore/rate_limited",
        ];
        data.checks.push(Check {
            name: "attacks_rejected_by_reason".into(),
            holds: wanted.iter().all(|k| count(k) > 0),
            detail: wanted
                .iter()
                .map(|k| format!("{k}={}", count(k)))
                .collect::<Vec<_>>()
                .join(", "),
        });
        data.hostile_sent = hostile.sent();
    }

    // Stop.
    progress.phase("alertmesh: stop", n as u64);
    for slot in slots.iter_mut().flatten() {
        if let Some(r) = slot.recorder.take() {
            r.abort();
        }
        if let Some(node) = slot.node.take() {
            node.shutdown().await;
        }
    }
    drop(hostile);
    data.peak_memory_mib = measure::peak_memory_mib();
    drop(root);
    Ok(data)
}

/// "p50 A s, p90 B s, last C s" of times since start.
fn spread(times: &[Duration]) -> String {
    let mut t: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    if t.is_empty() {
        return "by none".into();
    }
    format!(
        "p50 {:.1} s, p90 {:.1} s, last {:.1} s",
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

fn slots_data_dirs(slots: &[Option<Slot>]) -> Vec<Option<PathBuf>> {
    slots
        .iter()
        .map(|s| s.as_ref().map(|s| s.data.clone()))
        .collect()
}

fn slots_handles(
    slots: &[Option<Slot>],
) -> Vec<Option<(PathBuf, alertmesh_node::core::CoreHandle)>> {
    slots
        .iter()
        .map(|s| {
            s.as_ref()
                .and_then(|s| s.node.as_ref().map(|n| (s.data.clone(), n.core.clone())))
        })
        .collect()
}

/// (node, envelope id) of every decrypted alert in every honest node's database.
async fn stored_alerts(slots: &[Option<Slot>]) -> HashSet<(usize, String)> {
    let dirs = slots_data_dirs(slots);
    tokio::task::spawn_blocking(move || {
        let mut out = HashSet::new();
        for (i, dir) in dirs.iter().enumerate() {
            let Some(dir) = dir else { continue };
            let Ok(conn) = alertmesh_node::store::open_reader(dir) else {
                continue;
            };
            let Ok(mut q) = conn.prepare("SELECT envelope_id FROM alerts") else {
                continue;
            };
            let ids = q.query_map([], |r| r.get::<_, Vec<u8>>(0));
            if let Ok(ids) = ids {
                for id in ids.flatten() {
                    out.insert((i, hex_string(&id)));
                }
            }
        }
        out
    })
    .await
    .unwrap_or_default()
}

/// For the first `limit` undelivered (reader, envelope id) pairs, what the reader's
/// database holds of the envelope: not received, or held but not decrypted.
async fn undelivered_states(
    slots: &[Option<Slot>],
    missing: &[(usize, String)],
    limit: usize,
) -> Vec<String> {
    let dirs = slots_data_dirs(slots);
    let missing: Vec<(usize, String)> = missing.iter().take(limit).cloned().collect();
    let total = missing.len();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        if total > 0 {
            out.push(format!("states of the first {total} undelivered pairs:"));
        }
        for (reader, id) in missing {
            let Some(Some(dir)) = dirs.get(reader) else {
                continue;
            };
            let Ok(conn) = alertmesh_node::store::open_reader(dir) else {
                continue;
            };
            let count =
                |sql: &str| -> i64 { conn.query_row(sql, [&id], |r| r.get(0)).unwrap_or(-1) };
            let held = count("SELECT count(*) FROM envelopes WHERE hex(id) = upper(?1)");
            let undecrypted = count(
                "SELECT count(*) FROM undecrypted u JOIN envelopes e ON e.id = u.envelope_id
                 WHERE hex(e.id) = upper(?1)",
            );
            let state = match (held, undecrypted) {
                (0, _) => "not received",
                (_, 1) => "held, not decrypted (no sender key)",
                _ => "held",
            };
            out.push(format!(
                "undelivered: node {reader}, envelope {:.16}…: {state}",
                id
            ));
        }
        out
    })
    .await
    .unwrap_or_default()
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Topic names of the decrypted alerts in a database, with counts.
async fn stored_topics(dir: &std::path::Path) -> Vec<(String, i64)> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = alertmesh_node::store::open_reader(&dir).ok()?;
        let mut q = conn
            .prepare("SELECT topic_name, count(*) FROM alerts GROUP BY topic_name")
            .ok()?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .ok()?;
        Some(rows.flatten().collect::<Vec<_>>())
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Tries every key package stored at one reader of each topic against the agreement keys
/// of (up to [`MAX_NON_READERS_CHECKED`]) nodes of orgs that may not read it.
async fn key_package_check(
    plan: &Plan,
    slots: &[Option<Slot>],
    materials: &[&alertmesh_protocol::bootstrap::NodeMaterial],
) -> (usize, usize) {
    let network = plan.network.genesis.charter().network_id;
    let mut packages = 0;
    let mut opened = 0;
    for t in &plan.topics {
        let Some(reader) = (0..plan.len()).find(|&i| t.readers[i] && slots[i].is_some()) else {
            continue;
        };
        let Some(dir) = slots[reader].as_ref().map(|s| s.data.clone()) else {
            continue;
        };
        let topic = TopicId::derive(&network, &t.name);
        let stored: Vec<Vec<u8>> = tokio::task::spawn_blocking(move || {
            let conn = alertmesh_node::store::open_reader(&dir).ok()?;
            let mut q = conn
                .prepare("SELECT bytes FROM envelopes WHERE topic = ?1")
                .ok()?;
            let rows = q
                .query_map([topic.as_bytes()], |r| r.get::<_, Vec<u8>>(0))
                .ok()?;
            Some(rows.flatten().collect::<Vec<_>>())
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        let outsiders: Vec<usize> = (0..plan.len())
            .filter(|&i| !t.readers[i])
            .take(MAX_NON_READERS_CHECKED)
            .collect();
        for bytes in stored {
            let Ok(env) = SignedEnvelope::decode(&bytes, bytes.len().max(1 << 20)) else {
                continue;
            };
            if env.header().kind != Kind::KeyPackage {
                continue;
            }
            let Ok(pkg) = KeyPackage::decode(env.payload()) else {
                continue;
            };
            packages += 1;
            for &o in &outsiders {
                if pkg
                    .open(&network, &env.header().author, &materials[o].agreement)
                    .is_ok()
                {
                    opened += 1;
                }
            }
        }
    }
    (packages, opened)
}
