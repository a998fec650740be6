//! The plain-gossipsub baseline: the same plan on minimal libp2p nodes — the same
//! transport (TCP + Noise + Yamux, bytes counted the same way) and the same gossipsub
//! parameters as the node, but no envelope, no encryption, no validation, no storage, no
//! admission, no identify/Kademlia/sync. A message is the 8-byte publish index followed by
//! the same encoded alert the alertmesh run encrypts. Hostile nodes are left out.

use crate::measure::{self, Collector, Msg};
use crate::plan::{Event, Plan, neighbours};
use crate::progress::Progress;
use crate::scenario::Scenario;
use crate::{Published, RunData, WINDOW_TAIL, sleep_until, wait_until};
use alertmesh_node::net::{self, Traffic, counted_tcp_transport};
use alertmesh_protocol::TopicId;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, TopicHash};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identity};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

enum Cmd {
    Publish(TopicHash, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Dial(Multiaddr),
    Ban(PeerId),
    Unban(PeerId),
    Peers(oneshot::Sender<usize>),
    Addr(oneshot::Sender<Option<Multiaddr>>),
}

/// A running plain-gossipsub node.
struct PlainNode {
    peer_id: PeerId,
    tx: mpsc::Sender<Cmd>,
    traffic: Traffic,
    ids: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PlainNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The node's gossipsub settings ([`net::gossipsub_settings`]): no validation, no scoring.
fn config(ids: Arc<AtomicU64>) -> anyhow::Result<gossipsub::Config> {
    net::gossipsub_settings(move || {
        ids.fetch_add(1, Ordering::Relaxed);
    })
    .build()
    .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))
}

impl PlainNode {
    /// Its listen address, once it has one (waits up to 30 s).
    async fn listen_addr(&self) -> Option<Multiaddr> {
        let mut a = None;
        wait_until(
            Duration::from_secs(30),
            Duration::from_millis(10),
            async || {
                a = self.ask(Cmd::Addr).await;
                a.is_some()
            },
        )
        .await;
        a
    }

    fn start(
        index: usize,
        key: identity::Keypair,
        topics: &[String],
        deliveries: mpsc::Sender<Msg>,
    ) -> anyhow::Result<Self> {
        let traffic = Traffic::default();
        let ids = Arc::new(AtomicU64::new(0));
        let t = traffic.clone();
        let gossip_ids = ids.clone();
        let peer_id = key.public().to_peer_id();
        let mut swarm: Swarm<gossipsub::Behaviour> =
            libp2p::SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_other_transport(|key| {
                    counted_tcp_transport(key, t)
                        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                })?
                .with_behaviour(|_| {
                    let config = config(gossip_ids).map_err(|e| {
                        Box::<dyn std::error::Error + Send + Sync>::from(e.to_string())
                    })?;
                    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
                        .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
                .build();
        for t in topics {
            swarm
                .behaviour_mut()
                .subscribe(&IdentTopic::new(t.clone()))?;
        }
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(run(index, swarm, rx, deliveries));
        Ok(Self {
            peer_id,
            tx,
            traffic,
            ids,
            task,
        })
    }

    async fn send(&self, cmd: Cmd) {
        let _ = self.tx.send(cmd).await;
    }

    async fn ask<T: Default>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> T {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await;
        rx.await.unwrap_or_default()
    }
}

async fn run(
    index: usize,
    mut swarm: Swarm<gossipsub::Behaviour>,
    mut rx: mpsc::Receiver<Cmd>,
    deliveries: mpsc::Sender<Msg>,
) {
    let mut banned: HashSet<PeerId> = HashSet::new();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => break,
                Some(Cmd::Publish(topic, data, reply)) => {
                    let r = swarm.behaviour_mut().publish(topic, data).map(|_| ()).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Some(Cmd::Dial(addr)) => { let _ = swarm.dial(addr); }
                Some(Cmd::Ban(peer)) => {
                    banned.insert(peer);
                    swarm.behaviour_mut().blacklist_peer(&peer);
                    let _ = swarm.disconnect_peer_id(peer);
                }
                Some(Cmd::Unban(peer)) => {
                    banned.remove(&peer);
                    swarm.behaviour_mut().remove_blacklisted_peer(&peer);
                }
                Some(Cmd::Peers(reply)) => { let _ = reply.send(swarm.connected_peers().count()); }
                Some(Cmd::Addr(reply)) => { let _ = reply.send(swarm.listeners().next().cloned()); }
            },
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
                    let at = Instant::now();
                    if let Some(key) = message.data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                        let key = u64::from_le_bytes(key).to_string();
                        let _ = deliveries.send(Msg::Delivery { node: index, key, at }).await;
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } if banned.contains(&peer_id) => {
                    let _ = swarm.disconnect_peer_id(peer_id);
                }
                _ => {}
            }
        }
    }
}

/// Runs the plan on plain gossipsub nodes.
///
/// `links`: the connections to open (the alertmesh run's links once it was ready, so both
/// runs have the same topology); empty means the plan's dial graph.
pub async fn run_baseline(
    s: &Scenario,
    plan: &Plan,
    links: &[(usize, usize)],
    progress: &Progress,
) -> anyhow::Result<RunData> {
    let n = plan.len();
    let mut data = RunData {
        system: "plain-gossipsub".into(),
        ..Default::default()
    };
    measure::reset_peak_memory();
    let cpu0 = measure::cpu_time();
    let t0 = Instant::now();
    let collector = Collector::start();
    let network = plan.network.genesis.charter().network_id;
    let gossip_name =
        |k: usize| TopicId::derive(&network, &plan.topics[k].name).gossip_name(&network);
    let materials: Vec<_> = plan.network.nodes().map(|(_, m)| m).collect();
    let keys: Vec<identity::Keypair> = materials
        .iter()
        .map(|m| alertmesh_node::net::keypair(&m.key))
        .collect::<Result<_, _>>()?;
    let subscriptions: Vec<Vec<String>> = (0..n)
        .map(|i| {
            (0..plan.topics.len())
                .filter(|&k| plan.topics[k].readers[i])
                .map(gossip_name)
                .collect()
        })
        .collect();
    progress.phase("gossipsub: start", n as u64);
    let mut nodes: Vec<Option<PlainNode>> = Vec::new();
    let mut traffic: Vec<Vec<(Traffic, Arc<AtomicU64>)>> = vec![Vec::new(); n];
    for i in 0..n {
        progress.set(i as u64);
        if plan.hostile[i] {
            nodes.push(None);
            continue;
        }
        let node = PlainNode::start(i, keys[i].clone(), &subscriptions[i], collector.sender())?;
        traffic[i].push((node.traffic.clone(), node.ids.clone()));
        nodes.push(Some(node));
    }
    let mut addrs: Vec<Option<Multiaddr>> = vec![None; n];
    for i in 0..n {
        if let Some(node) = &nodes[i] {
            addrs[i] = node.listen_addr().await;
        }
    }
    let links: Vec<(usize, usize)> = if links.is_empty() {
        plan.edges
            .iter()
            .copied()
            .filter(|(a, b)| !plan.hostile[*a] && !plan.hostile[*b])
            .collect()
    } else {
        links.to_vec()
    };
    let neighbours_of = |i: usize| neighbours(&links, i);
    for &(a, b) in &links {
        if let (Some(node), Some(addr)) = (&nodes[a], &addrs[b]) {
            node.send(Cmd::Dial(addr.clone())).await;
        }
    }
    let neighbours: Vec<usize> = (0..n).map(|i| neighbours_of(i).len()).collect();
    data.notes.push(format!(
        "{} links opened: the alertmesh run's connections once it was ready",
        links.len()
    ));
    progress.phase("gossipsub: connect", n as u64);
    let ok = wait_until(
        Duration::from_secs(s.setup_timeout_secs),
        Duration::from_millis(100),
        async || {
            let mut ready = 0;
            for (i, node) in nodes.iter().enumerate() {
                match node {
                    Some(node) if node.ask(Cmd::Peers).await < neighbours[i] => {}
                    _ => ready += 1,
                }
            }
            progress.set(ready as u64);
            ready == n
        },
    )
    .await;
    if !ok {
        anyhow::bail!("baseline setup timed out");
    }
    data.ready = t0.elapsed();
    // Links are fixed here, so settled means the same quiet time: meshes form within a few
    // heartbeats.
    tokio::time::sleep(crate::SETTLE_QUIET).await;
    data.setup = t0.elapsed();
    data.cpu_setup = measure::cpu_time() - cpu0;
    data.ready_memory_mib = measure::memory_mib();
    let sum = |traffic: &[Vec<CountedLink>], f: &dyn Fn(&CountedLink) -> u64| -> Vec<f64> {
        traffic
            .iter()
            .map(|v| v.iter().map(f).sum::<u64>() as f64)
            .collect()
    };
    let bytes_of = |t: &(Traffic, Arc<AtomicU64>)| t.0.bytes_sent();
    let ids_of = |t: &(Traffic, Arc<AtomicU64>)| t.1.load(Ordering::Relaxed);
    let bytes0 = sum(&traffic, &bytes_of);
    let ids0 = sum(&traffic, &ids_of);
    data.bytes_setup = bytes0.clone();

    progress.phase("gossipsub: publish", plan.publishes.len() as u64);
    let start = Instant::now();
    data.workload_start = Some(start);
    let cpu_w0 = measure::cpu_time();
    let duration = Duration::from_secs_f64(s.workload.duration_secs);
    let (events, last_fault) = plan.schedule(duration, WINDOW_TAIL);
    let mut publishes: JoinSet<Published> = JoinSet::new();
    let mut w1 = None;
    let mut done = 0;
    for (at, ev) in events {
        sleep_until(start, at).await;
        match ev {
            Event::Publish(k) => {
                done += 1;
                progress.set(done);
                let p = plan.publishes[k];
                let Some(node) = &nodes[p.node] else { continue };
                let tx = node.tx.clone();
                let topic = TopicHash::from_raw(gossip_name(p.topic));
                let mut payload = (k as u64).to_le_bytes().to_vec();
                payload.extend(crate::alertmesh::workload_alert(k).encode());
                publishes.spawn(async move {
                    let at = Instant::now();
                    let (reply, rx) = oneshot::channel();
                    let r = match tx.send(Cmd::Publish(topic, payload, reply)).await {
                        Ok(()) => rx.await.unwrap_or_else(|_| Err("node stopped".into())),
                        Err(_) => Err("node stopped".into()),
                    };
                    Published {
                        index: k,
                        node: p.node,
                        topic: p.topic,
                        at,
                        key: r.is_ok().then(|| k.to_string()),
                        error: r.err(),
                    }
                });
            }
            Event::Stop(i) => {
                nodes[i] = None;
            }
            Event::Start(i) => {
                let node =
                    PlainNode::start(i, keys[i].clone(), &subscriptions[i], collector.sender())?;
                traffic[i].push((node.traffic.clone(), node.ids.clone()));
                addrs[i] = node.listen_addr().await;
                for j in neighbours_of(i) {
                    if let Some(addr) = &addrs[j] {
                        if nodes[j].is_some() {
                            node.send(Cmd::Dial(addr.clone())).await;
                        }
                    }
                }
                nodes[i] = Some(node);
            }
            Event::Split | Event::Heal => {
                let Some((half, _, _)) = &plan.partition else {
                    continue;
                };
                let split = matches!(ev, Event::Split);
                for a in 0..n {
                    let Some(node) = &nodes[a] else { continue };
                    for b in 0..n {
                        if half[a] == half[b] {
                            continue;
                        }
                        if let Some(other) = &nodes[b] {
                            let peer = other.peer_id;
                            node.send(if split {
                                Cmd::Ban(peer)
                            } else {
                                Cmd::Unban(peer)
                            })
                            .await;
                        }
                    }
                }
                if !split {
                    for &(a, b) in &links {
                        if half[a] != half[b] {
                            if let (Some(node), Some(addr)) = (&nodes[a], &addrs[b]) {
                                node.send(Cmd::Dial(addr.clone())).await;
                            }
                        }
                    }
                }
            }
            Event::WindowEnd => {
                data.cpu_window = measure::cpu_time() - cpu_w0;
                data.window = start.elapsed();
                w1 = Some((sum(&traffic, &bytes_of), sum(&traffic, &ids_of)));
                let mut conns = Vec::new();
                for node in nodes.iter().flatten() {
                    conns.push(node.ask(Cmd::Peers).await as f64);
                }
                data.connections = conns;
            }
        }
    }
    while let Some(p) = publishes.join_next().await {
        data.published.push(p?);
    }
    data.published.sort_by_key(|p| p.index);
    if let Some((b1, i1)) = w1 {
        data.bytes_window = b1.iter().zip(&bytes0).map(|(a, b)| a - b).collect();
        let mut own = vec![0.0; n];
        for p in &data.published {
            if p.key.is_some() {
                own[p.node] += 1.0;
            }
        }
        data.gossip_received = i1
            .iter()
            .zip(&ids0)
            .zip(&own)
            .map(|((a, b), o)| (a - b - o).max(0.0))
            .collect();
    }
    let expected = crate::expected(plan, &data.published).len();
    progress.phase("gossipsub: settle", expected as u64);
    // Plain gossipsub has no repair: what is not delivered shortly after the last
    // publish (and after faults heal) never will be.
    let settle = Duration::from_secs(s.settle_timeout_secs.min(10))
        + last_fault
            .unwrap_or_default()
            .saturating_sub(start.elapsed());
    wait_until(settle, Duration::from_millis(100), async || {
        progress.set(collector.count() as u64);
        collector.count() >= expected
    })
    .await;
    data.end = Some(Instant::now());
    data.deliveries = collector.snapshot().await;
    data.redelivered = collector.redelivered() as u64;
    nodes.clear();
    data.peak_memory_mib = measure::peak_memory_mib();
    data.notes.push(
        "plain gossipsub: same transport and gossipsub parameters, no envelope, encryption, validation, storage, admission, identify, Kademlia or sync; hostile nodes absent".into(),
    );
    Ok(data)
}

/// A node's traffic counters on one link.
type CountedLink = (Traffic, Arc<AtomicU64>);
