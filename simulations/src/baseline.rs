//! The gossipsub baselines: the same plan, over the same links (the alertmesh run's
//! connections once it was settled, on the same shaped transport), on nodes without
//! envelope, encryption, validation, storage, admission or sync. A message is the 8-byte
//! publish index followed by the same encoded alert the alertmesh run encrypts. Hostile
//! nodes are left out.
//!
//! - [`Kind::Signed`], the fair baseline (issue 20): stock rust-libp2p gossipsub with
//!   libp2p's own signatures (`MessageAuthenticity::Signed`, `ValidationMode::Strict`),
//!   on the node's own network stack ([`net::build_swarm_mode`]): identify, Kademlia,
//!   ping, request-response, the relay client, DCUtR and AutoNAT, the same gossipsub
//!   settings and peer scoring, the same connection limits. Every peer is admitted on
//!   connection; identify feeds Kademlia as in the node. What a user would build instead
//!   on the same stack.
//! - [`Kind::Anonymous`], for reference: anonymous, unsigned gossipsub alone, the same
//!   gossipsub settings, no scoring and no other protocol.

use crate::measure::{self, Collector, Msg};
use crate::plan::{Event, Plan, neighbours};
use crate::progress::Progress;
use crate::scenario::Scenario;
use crate::{Published, RunData, WINDOW_TAIL, sleep_until, wait_until};
use alertmesh_node::net::{self, GossipMode, Traffic, TransportFactory};
use alertmesh_protocol::TopicId;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, TopicHash};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, identity};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Which baseline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Signed gossipsub on the node's protocol stack: the fair baseline.
    Signed,
    /// Anonymous gossipsub alone: informational.
    Anonymous,
}

impl Kind {
    /// The run's name in reports.
    pub fn system(self) -> &'static str {
        match self {
            Kind::Signed => "signed-gossipsub",
            Kind::Anonymous => "plain-gossipsub",
        }
    }

    fn note(self) -> &'static str {
        match self {
            Kind::Signed => {
                "signed gossipsub (MessageAuthenticity::Signed, ValidationMode::Strict) on the node's stack: identify, Kademlia, ping, request-response, relay client, DCUtR, AutoNAT, the node's gossipsub settings, scoring and connection limits; every peer admitted on connection; no envelope, encryption, application validation, storage, hello or sync; hostile nodes absent"
            }
            Kind::Anonymous => {
                "anonymous gossipsub alone: same transport and gossipsub settings, no signatures, scoring, validation, storage, identify, Kademlia or sync; hostile nodes absent"
            }
        }
    }
}

enum Cmd {
    Publish(TopicHash, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Dial(Multiaddr),
    Ban(PeerId),
    Unban(PeerId),
    Peers(oneshot::Sender<usize>),
    Addr(oneshot::Sender<Option<Multiaddr>>),
    KadQueries(oneshot::Sender<usize>),
}

/// What the node loop needs of a baseline's behaviour.
trait Stack: NetworkBehaviour<ToSwarm: Send> + Send + 'static {
    fn gossipsub(&mut self) -> &mut gossipsub::Behaviour;
    /// Joins a topic (with the node's topic scoring where scoring is on).
    fn join(&mut self, topic: &IdentTopic) -> anyhow::Result<()>;
    /// A connection to `peer` came up.
    fn connected(&mut self, peer: PeerId);
    /// Denies every connection to `peer`, so that Kademlia walks leave the link layout as
    /// it is.
    fn deny(&mut self, peer: PeerId);
    /// Kademlia queries running.
    fn kad_queries(&self) -> usize;
    /// Handles a behaviour event; returns a gossip message's data.
    fn event(&mut self, ev: Self::ToSwarm) -> Option<Vec<u8>>;
}

impl Stack for gossipsub::Behaviour {
    fn gossipsub(&mut self) -> &mut gossipsub::Behaviour {
        self
    }
    fn join(&mut self, topic: &IdentTopic) -> anyhow::Result<()> {
        self.subscribe(topic)?;
        Ok(())
    }
    fn connected(&mut self, _: PeerId) {}
    /// Only the links are dialled: nothing to deny.
    fn deny(&mut self, _: PeerId) {}
    fn kad_queries(&self) -> usize {
        0
    }
    fn event(&mut self, ev: gossipsub::Event) -> Option<Vec<u8>> {
        match ev {
            gossipsub::Event::Message { message, .. } => Some(message.data),
            _ => None,
        }
    }
}

impl Stack for net::Behaviour {
    fn gossipsub(&mut self) -> &mut gossipsub::Behaviour {
        &mut self.gossipsub
    }
    fn join(&mut self, topic: &IdentTopic) -> anyhow::Result<()> {
        self.gossipsub
            .set_topic_params(topic.clone(), net::topic_score_params())
            .map_err(|e| anyhow::anyhow!("topic scoring: {e}"))?;
        self.gossipsub.subscribe(topic)?;
        Ok(())
    }
    /// No certificates here: every peer is admitted at once, as the node admits a peer
    /// whose certificate verified.
    fn connected(&mut self, peer: PeerId) {
        self.admit(peer);
    }
    fn deny(&mut self, peer: PeerId) {
        self.blocked.block_peer(peer);
    }
    fn kad_queries(&self) -> usize {
        self.kad.iter_queries().count()
    }
    fn event(&mut self, ev: net::BehaviourEvent) -> Option<Vec<u8>> {
        match ev {
            net::BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. }) => {
                Some(message.data)
            }
            // As the node's swarm task does for an admitted peer.
            net::BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| !a.to_string().contains("/ip4/0.0.0.0"))
                    .take(16)
                {
                    self.kad.add_address(&peer_id, addr);
                }
                None
            }
            _ => None,
        }
    }
}

/// A running baseline node.
struct PlainNode {
    peer_id: PeerId,
    tx: mpsc::Sender<Cmd>,
    traffic: Traffic,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PlainNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The anonymous baseline's swarm: gossipsub alone with the node's settings.
fn anonymous_swarm(
    key: identity::Keypair,
    traffic: Traffic,
    transport: TransportFactory,
) -> anyhow::Result<Swarm<gossipsub::Behaviour>> {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let counted = traffic.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| transport(key, traffic).map_err(BoxError::from))?
        .with_behaviour(|_| {
            let config = net::gossipsub_settings(move || counted.count_message_id())
                .build()
                .map_err(|e| BoxError::from(e.to_string()))?;
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
                .map_err(BoxError::from)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    Ok(swarm)
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

    /// Starts a node subscribed to `topics` that never connects to `denied`.
    fn start(
        kind: Kind,
        index: usize,
        key: identity::Keypair,
        topics: &[String],
        denied: &[PeerId],
        deliveries: mpsc::Sender<Msg>,
        transport: TransportFactory,
    ) -> anyhow::Result<Self> {
        let traffic = Traffic::default();
        let peer_id = key.public().to_peer_id();
        let (tx, rx) = mpsc::channel(1024);
        let task = match kind {
            Kind::Signed => {
                let swarm = net::build_swarm_mode(
                    key,
                    &["/ip4/127.0.0.1/tcp/0".parse()?],
                    traffic.clone(),
                    net::default_limits(net::DEFAULT_MAX_PEERS),
                    Some(transport),
                    false,
                    GossipMode::Signed,
                )?;
                let swarm = prepared(swarm, topics, denied)?;
                tokio::spawn(run(index, swarm, rx, deliveries))
            }
            Kind::Anonymous => {
                let swarm = anonymous_swarm(key, traffic.clone(), transport)?;
                let swarm = prepared(swarm, topics, denied)?;
                tokio::spawn(run(index, swarm, rx, deliveries))
            }
        };
        Ok(Self {
            peer_id,
            tx,
            traffic,
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

/// `swarm`, subscribed to `topics`, denying `denied`.
fn prepared<B: Stack>(
    mut swarm: Swarm<B>,
    topics: &[String],
    denied: &[PeerId],
) -> anyhow::Result<Swarm<B>> {
    for t in topics {
        swarm.behaviour_mut().join(&IdentTopic::new(t.clone()))?;
    }
    for peer in denied {
        swarm.behaviour_mut().deny(*peer);
    }
    Ok(swarm)
}

async fn run<B: Stack>(
    index: usize,
    mut swarm: Swarm<B>,
    mut rx: mpsc::Receiver<Cmd>,
    deliveries: mpsc::Sender<Msg>,
) {
    let mut banned: HashSet<PeerId> = HashSet::new();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => break,
                Some(Cmd::Publish(topic, data, reply)) => {
                    let r = swarm.behaviour_mut().gossipsub().publish(topic, data).map(|_| ()).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Some(Cmd::Dial(addr)) => { let _ = swarm.dial(addr); }
                Some(Cmd::Ban(peer)) => {
                    banned.insert(peer);
                    swarm.behaviour_mut().gossipsub().blacklist_peer(&peer);
                    let _ = swarm.disconnect_peer_id(peer);
                }
                Some(Cmd::Unban(peer)) => {
                    banned.remove(&peer);
                    swarm.behaviour_mut().gossipsub().remove_blacklisted_peer(&peer);
                }
                Some(Cmd::Peers(reply)) => { let _ = reply.send(swarm.connected_peers().count()); }
                Some(Cmd::Addr(reply)) => { let _ = reply.send(swarm.listeners().next().cloned()); }
                Some(Cmd::KadQueries(reply)) => { let _ = reply.send(swarm.behaviour().kad_queries()); }
            },
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(ev) => {
                    let at = Instant::now();
                    let Some(data) = swarm.behaviour_mut().event(ev) else { continue };
                    if let Some(key) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                        let key = u64::from_le_bytes(key).to_string();
                        let _ = deliveries.send(Msg::Delivery { node: index, key, at }).await;
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } if banned.contains(&peer_id) => {
                    let _ = swarm.disconnect_peer_id(peer_id);
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm.behaviour_mut().connected(peer_id);
                }
                _ => {}
            }
        }
    }
}

/// Runs the plan on baseline nodes of `kind`.
///
/// `links`: the connections to open (the alertmesh run's links once it was settled, so
/// both runs have the same topology); empty means the plan's dial graph. Links are shaped
/// as the scenario's are for the alertmesh run ([`crate::link`]).
pub async fn run_baseline(
    s: &Scenario,
    plan: &Plan,
    links: &[(usize, usize)],
    kind: Kind,
    progress: &Progress,
) -> anyhow::Result<RunData> {
    let n = plan.len();
    let name = kind.system();
    let mut data = RunData {
        system: name.into(),
        ..Default::default()
    };
    let link_table = crate::link::Links::new(s.link_profile()?, s.seed);
    let transport =
        |i: usize| crate::link::transport(crate::link::RawTransport::Tcp, link_table.clone(), i);
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
    // Everyone but its neighbours, for each node.
    let denied: Vec<Vec<PeerId>> = (0..n)
        .map(|i| {
            let mine = neighbours_of(i);
            (0..n)
                .filter(|j| *j != i && !mine.contains(j))
                .map(|j| keys[j].public().to_peer_id())
                .collect()
        })
        .collect();
    progress.phase(&format!("{name}: start"), n as u64);
    let mut nodes: Vec<Option<PlainNode>> = Vec::new();
    let mut traffic: Vec<Vec<Traffic>> = vec![Vec::new(); n];
    for i in 0..n {
        progress.set(i as u64);
        if plan.hostile[i] {
            nodes.push(None);
            continue;
        }
        let node = PlainNode::start(
            kind,
            i,
            keys[i].clone(),
            &subscriptions[i],
            &denied[i],
            collector.sender(),
            transport(i),
        )?;
        traffic[i].push(node.traffic.clone());
        nodes.push(Some(node));
    }
    let mut addrs: Vec<Option<Multiaddr>> = vec![None; n];
    for i in 0..n {
        if let Some(node) = &nodes[i] {
            addrs[i] = node.listen_addr().await;
            if let Some(addr) = &addrs[i] {
                link_table.set_address(i, addr);
            }
        }
    }
    for &(a, b) in &links {
        // Each link is dialled from one end, alternating, so that every node takes about
        // half of its handshakes inbound: with every dial from the lower index, the
        // highest nodes had more at once than `max_pending_incoming` (32) lets in, and
        // the links refused then were never opened.
        let (from, to) = if (a + b) % 2 == 0 { (a, b) } else { (b, a) };
        if let (Some(node), Some(addr)) = (&nodes[from], &addrs[to]) {
            node.send(Cmd::Dial(addr.clone())).await;
        }
    }
    let neighbours: Vec<usize> = (0..n).map(|i| neighbours_of(i).len()).collect();
    data.notes.push(format!(
        "{} links opened: the alertmesh run's connections once it was ready",
        links.len()
    ));
    progress.phase(&format!("{name}: connect"), n as u64);
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
        let mut short = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if let Some(node) = node {
                let peers = node.ask(Cmd::Peers).await;
                if peers < neighbours[i] {
                    short.push(format!("node {i}: {peers} of {} links", neighbours[i]));
                }
            }
        }
        anyhow::bail!(
            "baseline setup timed out; nodes short of their links: {}",
            short.join(", ")
        );
    }
    data.ready = t0.elapsed();
    // Settled as the alertmesh run is: no Kademlia query running (their dials to
    // non-neighbours are denied, so the links stay as they are), then the same quiet time
    // for the meshes to form.
    let settled = wait_until(
        Duration::from_secs(s.setup_timeout_secs),
        Duration::from_millis(250),
        async || {
            let mut running = 0;
            for node in nodes.iter().flatten() {
                running += node.ask(Cmd::KadQueries).await;
            }
            running == 0
        },
    )
    .await;
    if !settled {
        anyhow::bail!("baseline setup timed out: Kademlia queries still running");
    }
    tokio::time::sleep(crate::SETTLE_QUIET).await;
    data.setup = t0.elapsed();
    data.cpu_setup = measure::cpu_time() - cpu0;
    data.ready_memory_mib = measure::memory_mib();
    let sum = |traffic: &[Vec<Traffic>], f: &dyn Fn(&Traffic) -> u64| -> Vec<f64> {
        traffic
            .iter()
            .map(|v| v.iter().map(f).sum::<u64>() as f64)
            .collect()
    };
    let bytes_of = |t: &Traffic| t.bytes_sent();
    let ids_of = |t: &Traffic| t.gossip_message_ids();
    let bytes0 = sum(&traffic, &bytes_of);
    let ids0 = sum(&traffic, &ids_of);
    data.bytes_setup = bytes0.clone();

    progress.phase(&format!("{name}: publish"), plan.publishes.len() as u64);
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
                let node = PlainNode::start(
                    kind,
                    i,
                    keys[i].clone(),
                    &subscriptions[i],
                    &denied[i],
                    collector.sender(),
                    transport(i),
                )?;
                traffic[i].push(node.traffic.clone());
                addrs[i] = node.listen_addr().await;
                link_table.forget_addresses(i);
                if let Some(addr) = &addrs[i] {
                    link_table.set_address(i, addr);
                }
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
    progress.phase(&format!("{name}: settle"), expected as u64);
    // Gossipsub alone has no repair: what is not delivered shortly after the last
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
    data.notes.push(kind.note().into());
    Ok(data)
}
