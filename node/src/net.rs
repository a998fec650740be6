//! The libp2p swarm: one task owns it; the rest of the node talks to it through a
//! [`NetHandle`] (bounded command channel) and hears from it through [`NetEvent`]s.
//!
//! The swarm task never blocks on the rest of the node: events are handed over with
//! `try_send`, and a gossip message that cannot be queued is reported `Ignore`.

use alertmesh_protocol::wire::MAX_FRAME_BYTES;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, identify, identity, kad, noise, ping, tcp, yamux,
};
use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commands queued to the swarm task.
const COMMAND_QUEUE: usize = 1024;
/// Events queued from the swarm task to the node core.
pub const EVENT_QUEUE: usize = 4096;
/// The request-response protocol name.
pub const REQ_PROTOCOL: &str = "/alertmesh/req/1";
/// gossipsub's largest message: the hard envelope cap plus control framing.
pub const MAX_TRANSMIT_SIZE: usize = 1024 * 1024 + 1024;
/// Application score given to a peer that must be pruned (below the graylist threshold).
pub const BAD_PEER_SCORE: f64 = -1000.0;
/// A connection is not pruned before it is this old: its hello, sync and grafts are done,
/// and the Kademlia walks of the peers around it (which dial it again) are over.
pub const PRUNE_GRACE: Duration = Duration::from_secs(60);
/// Entries per Kademlia k-bucket (kad's default is 20).
const KAD_BUCKET_SIZE: std::num::NonZeroUsize = std::num::NonZeroUsize::new(256).unwrap();
/// How often a Kademlia walk towards our own id refreshes the routing table (the first
/// runs at start). Every peer a walk queries is dialled, and each connection costs a
/// Noise handshake, a hello and a sync; peers beyond `max_peers` are pruned again.
const KAD_BOOTSTRAP_PERIOD: Duration = Duration::from_secs(300);
/// How often each connection is probed for liveness. libp2p's 15 s made the probes
/// most of an idle network's CPU (a round trip on every connection); a dead link is
/// still found within 80 s (interval plus the 20 s timeout), while gossip reaches readers
/// over other mesh links and anti-entropy repairs what was missed.
const PING_INTERVAL: Duration = Duration::from_secs(60);

/// Length-prefixed raw frames for the request-response protocol; decoding happens in the
/// node core, off the swarm task.
#[derive(Debug, Clone, Default)]
pub struct FrameCodec;

async fn read_frame<T: futures::AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame over the size limit",
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: futures::AsyncWrite + Unpin + Send>(
    io: &mut T,
    data: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|l| *l as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame over the size limit"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(data).await?;
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &req).await
    }
    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &res).await
    }
}

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive generates `BehaviourEvent`, whose variants cannot carry doc comments.
    #![allow(missing_docs)]
    use super::FrameCodec;
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::{gossipsub, identify, kad, ping, request_response};

    /// The node's composed network behaviour.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Alert and control gossip, validated by the node before forwarding.
        pub gossipsub: gossipsub::Behaviour,
        /// Exchange of listen addresses and agent versions.
        pub identify: identify::Behaviour,
        /// Liveness.
        pub ping: ping::Behaviour,
        /// Peer discovery beyond the bootstrap list.
        pub kad: kad::Behaviour<kad::store::MemoryStore>,
        /// Hello (certificate exchange) and other requests.
        pub req: request_response::Behaviour<FrameCodec>,
    }
}

/// What the swarm reports to the node core.
#[derive(Debug)]
pub enum NetEvent {
    /// A gossip message awaiting validation.
    Gossip {
        /// The peer that sent it to us.
        source: PeerId,
        /// gossipsub's id (SHA-256 of the data).
        id: MessageId,
        /// The topic.
        topic: TopicHash,
        /// The raw data.
        data: Vec<u8>,
    },
    /// A connection to a new peer is up.
    Connected(PeerId),
    /// The last connection to a peer closed.
    Disconnected(PeerId),
    /// A peer subscribed to a topic.
    Subscribed(PeerId, TopicHash),
    /// A peer sent a request.
    Request {
        /// The peer.
        peer: PeerId,
        /// The raw request frame.
        data: Vec<u8>,
        /// Where to send the answer.
        channel: ResponseChannel<Vec<u8>>,
    },
    /// A peer answered our request.
    Response {
        /// The peer.
        peer: PeerId,
        /// The raw response frame.
        data: Vec<u8>,
    },
}

/// Commands to the swarm task.
#[derive(Debug)]
pub enum NetCommand {
    /// Report a validation verdict to gossipsub.
    Report(MessageId, PeerId, MessageAcceptance),
    /// Publish data on a topic.
    Publish(TopicHash, Vec<u8>),
    /// Subscribe to a topic.
    Subscribe(String),
    /// Unsubscribe from a topic.
    Unsubscribe(String),
    /// Send a request to a peer.
    Request(PeerId, Vec<u8>),
    /// Answer a request.
    Respond(ResponseChannel<Vec<u8>>, Vec<u8>),
    /// Close all connections to a peer and refuse it from now on.
    Ban(PeerId),
    /// Allow a previously banned peer again.
    Unban(PeerId),
    /// Set a peer's application score.
    Score(PeerId, f64),
    /// Dial an address.
    Dial(Multiaddr),
    /// Dial a peer at the addresses Kademlia knows; look it up if it knows none.
    DialPeer(PeerId),
    /// Close connections beyond this many, taking only peers in none of gossipsub's
    /// meshes that have been connected for [`PRUNE_GRACE`].
    Prune(usize),
    /// Report connected peers.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Report our listen addresses.
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    /// Report how many Kademlia queries are running.
    KadQueries(oneshot::Sender<usize>),
}

/// A connected peer as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerInfo {
    /// Its peer id.
    pub peer_id: String,
    /// Its remote address.
    pub address: String,
    /// Its gossipsub score, if known.
    pub score: Option<f64>,
    /// Gossip topics it is in our mesh for.
    pub mesh_topics: usize,
}

/// Cloneable handle to the swarm task.
#[derive(Debug, Clone)]
pub struct NetHandle {
    tx: mpsc::Sender<NetCommand>,
    traffic: Traffic,
}

/// Traffic counters of one swarm, shared by its transport and gossipsub: bytes on its TCP
/// sockets (Noise and Yamux framing included) and gossip message ids computed (messages
/// received, duplicates included, plus own publishes). Cheap to clone; read by the simulator.
#[derive(Debug, Clone, Default)]
pub struct Traffic(Arc<TrafficInner>);

#[derive(Debug, Default)]
struct TrafficInner {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    gossip_ids: AtomicU64,
}

impl Traffic {
    /// Bytes written to TCP sockets.
    pub fn bytes_sent(&self) -> u64 {
        self.0.bytes_sent.load(Ordering::Relaxed)
    }
    /// Bytes read from TCP sockets.
    pub fn bytes_received(&self) -> u64 {
        self.0.bytes_received.load(Ordering::Relaxed)
    }
    /// Gossip message ids computed: gossipsub computes one per message received from a
    /// peer (duplicates included) and one per local publish.
    pub fn gossip_message_ids(&self) -> u64 {
        self.0.gossip_ids.load(Ordering::Relaxed)
    }
    fn count_message_id(&self) {
        self.0.gossip_ids.fetch_add(1, Ordering::Relaxed);
    }
}

/// A TCP stream that adds the bytes it moves to a [`Traffic`].
#[derive(Debug)]
pub struct CountingStream<S> {
    inner: S,
    traffic: Traffic,
}

impl<S: futures::AsyncRead + Unpin> futures::AsyncRead for CountingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.traffic
                .0
                .bytes_received
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: futures::AsyncWrite + Unpin> futures::AsyncWrite for CountingStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.traffic
                .0
                .bytes_sent
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        poll
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// TCP (nodelay) + Noise + Yamux, as `SwarmBuilder::with_tcp` builds it, with the raw
/// socket bytes counted in `traffic`. Also used by the simulator's plain-gossipsub baseline.
pub fn counted_tcp_transport(
    key: &identity::Keypair,
    traffic: Traffic,
) -> Result<
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    noise::Error,
> {
    use libp2p::Transport;
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .map(move |stream, _| CountingStream {
                inner: stream,
                traffic: traffic.clone(),
            })
            .upgrade(libp2p::core::upgrade::Version::V1Lazy)
            .authenticate(noise::Config::new(key)?)
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)))
            .boxed(),
    )
}

impl NetHandle {
    /// Sends a command; fails only when the swarm task has stopped.
    pub async fn send(&self, cmd: NetCommand) -> anyhow::Result<()> {
        self.tx
            .send(cmd)
            .await
            .map_err(|_| anyhow::anyhow!("the network task has stopped"))
    }

    /// [`NetHandle::send`] from a thread outside the runtime (the database writer):
    /// blocks while the command queue is full.
    pub fn send_blocking(&self, cmd: NetCommand) -> anyhow::Result<()> {
        self.tx
            .blocking_send(cmd)
            .map_err(|_| anyhow::anyhow!("the network task has stopped"))
    }

    /// Connected peers.
    pub async fn peers(&self) -> anyhow::Result<Vec<PeerInfo>> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Peers(tx)).await?;
        Ok(rx.await?)
    }

    /// How many Kademlia queries (walks, lookups) are running.
    pub async fn kad_queries(&self) -> anyhow::Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::KadQueries(tx)).await?;
        Ok(rx.await?)
    }

    /// Our listen addresses.
    pub async fn listen_addrs(&self) -> anyhow::Result<Vec<Multiaddr>> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::ListenAddrs(tx)).await?;
        Ok(rx.await?)
    }

    /// The swarm's traffic counters.
    pub fn traffic(&self) -> Traffic {
        self.traffic.clone()
    }
}

/// Gossipsub settings for networks of 3–200 nodes, without message validation: the node
/// adds `validate_messages` ([`gossipsub_config`]); the simulator's plain-gossipsub
/// baseline uses them as they are, so both run the same mesh. Message ids are the SHA-256
/// of the data (the envelope id: content addressing); `on_message_id` runs for each.
pub fn gossipsub_settings(
    on_message_id: impl Fn() + Send + Sync + 'static,
) -> gossipsub::ConfigBuilder {
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(move |m| {
            on_message_id();
            MessageId::from(alertmesh_protocol::ids::sha256(&m.data).to_vec())
        })
        .max_transmit_size(MAX_TRANSMIT_SIZE)
        .mesh_n(5)
        .mesh_n_low(2)
        .mesh_n_high(10)
        .mesh_outbound_min(1)
        .gossip_lazy(5)
        .heartbeat_interval(Duration::from_millis(700))
        .duplicate_cache_time(Duration::from_secs(120))
        .history_length(6)
        .history_gossip(4)
        .flood_publish(true);
    builder
}

/// The node's gossipsub configuration: [`gossipsub_settings`] with every message held
/// back until the node has validated it.
fn gossipsub_config(traffic: Traffic) -> anyhow::Result<gossipsub::Config> {
    gossipsub_settings(move || traffic.count_message_id())
        .validate_messages()
        .build()
        .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))
}

fn score_params() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let params = gossipsub::PeerScoreParams {
        app_specific_weight: 1.0,
        // Every test network lives on one loopback address.
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

/// Scoring for one topic: only invalid messages (P4) count. Time in mesh and first
/// deliveries (P1, P2) are off so that a member cannot bank positive score with valid
/// traffic and then flood; mesh delivery deficits (P3) are off because alert traffic is
/// bursty and rare. Messages that an honest relay could have forwarded (charter or clock
/// lag, equivocation) are reported as `Ignore`, so P4 only hits peers that sent bytes no
/// honest node forwards (see `core`).
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -50.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

/// Builds the swarm for a node key, listening on `listen`.
pub fn build_swarm(
    key: identity::Keypair,
    listen: &[Multiaddr],
) -> anyhow::Result<Swarm<Behaviour>> {
    build_swarm_counted(key, listen, Traffic::default())
}

/// [`build_swarm`], counting its traffic in `traffic` (see [`NetHandle::traffic`]).
pub fn build_swarm_counted(
    key: identity::Keypair,
    listen: &[Multiaddr],
    traffic: Traffic,
) -> anyhow::Result<Swarm<Behaviour>> {
    let gossip_traffic = traffic.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            counted_tcp_transport(key, traffic)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossipsub_config(gossip_traffic)?,
            )?;
            let (params, thresholds) = score_params();
            gossipsub.with_peer_score(params, thresholds)?;
            let identify = identify::Behaviour::new(identify::Config::new(
                "/alertmesh/id/1".into(),
                key.public(),
            ));
            let mut kad_cfg = kad::Config::new(StreamProtocol::new("/alertmesh/kad/1"));
            kad_cfg.set_query_timeout(Duration::from_secs(30));
            // Our own walk below replaces kad's periodic bootstrap, whose bucket refreshes
            // dial far more peers than a few dozen organizations need.
            kad_cfg.set_periodic_bootstrap_interval(None);
            // A full k-bucket makes kad dial its least recently seen (often pruned) entry
            // whenever a new peer appears, and each such dial is a new connection that
            // fills the bucket again. Buckets this large never fill in a mesh of a few
            // hundred organizations.
            kad_cfg.set_kbucket_size(KAD_BUCKET_SIZE);
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_cfg,
            );
            kad.set_mode(Some(kad::Mode::Server));
            let req = request_response::Behaviour::new(
                [(StreamProtocol::new(REQ_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
            );
            Ok(Behaviour {
                gossipsub,
                identify,
                ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
                kad,
                req,
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for addr in listen {
        swarm.listen_on(addr.clone())?;
    }
    Ok(swarm)
}

/// Creates the command channel; returns the handle and the receiver for [`run`].
pub fn channel() -> (NetHandle, mpsc::Receiver<NetCommand>) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    (
        NetHandle {
            tx,
            traffic: Traffic::default(),
        },
        rx,
    )
}

/// Runs the swarm until `commands` closes or `shutdown` fires.
pub async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<NetCommand>,
    events: mpsc::Sender<NetEvent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: crate::metrics::Metrics,
) {
    let mut banned: HashSet<PeerId> = HashSet::new();
    // Each connected peer's remote address and when it connected.
    let mut addrs: HashMap<PeerId, (Multiaddr, std::time::Instant)> = HashMap::new();
    let mut kad_tick = tokio::time::interval(KAD_BOOTSTRAP_PERIOD);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = kad_tick.tick() => {
                let me = *swarm.local_peer_id();
                swarm.behaviour_mut().kad.get_closest_peers(me);
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                handle_command(&mut swarm, cmd, &mut banned, &addrs);
            }
            event = swarm.select_next_some() => {
                handle_event(&mut swarm, event, &events, &banned, &mut addrs, &metrics);
            }
        }
    }
    tracing::debug!("network task stopped");
}

/// Closes connections beyond `max` to peers in none of our gossipsub meshes, oldest
/// connections last (they have proved useful for longest).
fn prune(
    swarm: &mut Swarm<Behaviour>,
    max: usize,
    addrs: &HashMap<PeerId, (Multiaddr, std::time::Instant)>,
) {
    let excess = swarm.connected_peers().count().saturating_sub(max);
    // A Kademlia walk dials every peer it queries; pruning during one only makes the next
    // step dial the pruned peers again.
    if excess == 0 || swarm.behaviour().kad.iter_queries().next().is_some() {
        return;
    }
    let in_mesh: HashSet<PeerId> = swarm
        .behaviour()
        .gossipsub
        .all_mesh_peers()
        .copied()
        .collect();
    let mut idle: Vec<(PeerId, std::time::Instant)> = addrs
        .iter()
        .filter(|(p, (_, since))| !in_mesh.contains(p) && since.elapsed() >= PRUNE_GRACE)
        .map(|(p, (_, since))| (*p, *since))
        .collect();
    idle.sort_by_key(|(_, since)| std::cmp::Reverse(*since));
    for (peer, _) in idle.into_iter().take(excess) {
        tracing::debug!(%peer, "above max_peers: closing a connection outside every mesh");
        let _ = swarm.disconnect_peer_id(peer);
    }
}

fn handle_command(
    swarm: &mut Swarm<Behaviour>,
    cmd: NetCommand,
    banned: &mut HashSet<PeerId>,
    addrs: &HashMap<PeerId, (Multiaddr, std::time::Instant)>,
) {
    let b = swarm.behaviour_mut();
    match cmd {
        NetCommand::Report(id, source, acceptance) => {
            b.gossipsub
                .report_message_validation_result(&id, &source, acceptance);
        }
        NetCommand::Publish(topic, data) => {
            if let Err(e) = b.gossipsub.publish(topic, data) {
                // Stored already; sync or later gossip will carry it.
                tracing::debug!(error = %e, "gossip publish did not go out");
            }
        }
        NetCommand::Subscribe(name) => {
            let topic = IdentTopic::new(name);
            if let Err(e) = b
                .gossipsub
                .set_topic_params(topic.clone(), topic_score_params())
            {
                tracing::warn!(error = %e, "topic scoring not set");
            }
            if let Err(e) = b.gossipsub.subscribe(&topic) {
                tracing::warn!(error = %e, "subscribe failed");
            }
        }
        NetCommand::Unsubscribe(name) => {
            b.gossipsub.unsubscribe(&IdentTopic::new(name));
        }
        NetCommand::Request(peer, data) => {
            // Requests go to connected peers only: request-response would otherwise dial a
            // peer that was just pruned or refused.
            if swarm.is_connected(&peer) {
                swarm.behaviour_mut().req.send_request(&peer, data);
            } else {
                tracing::debug!(%peer, "request not sent: peer no longer connected");
            }
        }
        NetCommand::Respond(channel, data) => {
            let _ = b.req.send_response(channel, data);
        }
        NetCommand::Ban(peer) => {
            banned.insert(peer);
            b.gossipsub.blacklist_peer(&peer);
            b.kad.remove_peer(&peer);
            let _ = swarm.disconnect_peer_id(peer);
        }
        NetCommand::Unban(peer) => {
            banned.remove(&peer);
            b.gossipsub.remove_blacklisted_peer(&peer);
        }
        NetCommand::Score(peer, score) => {
            b.gossipsub.set_application_score(&peer, score);
        }
        NetCommand::Dial(addr) => {
            // With a peer id: no second dial while connected to it or dialling it.
            let peer = addr.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            });
            let opts = match peer {
                Some(peer) => libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => addr.clone().into(),
            };
            if let Err(e) = swarm.dial(opts) {
                tracing::debug!(%addr, error = %e, "dial failed");
            }
        }
        NetCommand::DialPeer(peer) => {
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "no address known; asking the DHT");
                swarm.behaviour_mut().kad.get_closest_peers(peer);
            }
        }
        NetCommand::Prune(max) => prune(swarm, max, addrs),
        NetCommand::Peers(reply) => {
            let peers = swarm
                .connected_peers()
                .map(|p| PeerInfo {
                    peer_id: p.to_string(),
                    address: addrs.get(p).map(|(a, _)| a.to_string()).unwrap_or_default(),
                    score: swarm.behaviour().gossipsub.peer_score(p),
                    mesh_topics: swarm
                        .behaviour()
                        .gossipsub
                        .topics()
                        .filter(|t| swarm.behaviour().gossipsub.mesh_peers(t).any(|m| m == p))
                        .count(),
                })
                .collect();
            let _ = reply.send(peers);
        }
        NetCommand::ListenAddrs(reply) => {
            let _ = reply.send(swarm.listeners().cloned().collect());
        }
        NetCommand::KadQueries(reply) => {
            let _ = reply.send(swarm.behaviour().kad.iter_queries().count());
        }
    }
}

fn handle_event(
    swarm: &mut Swarm<Behaviour>,
    event: SwarmEvent<BehaviourEvent>,
    events: &mpsc::Sender<NetEvent>,
    banned: &HashSet<PeerId>,
    addrs: &mut HashMap<PeerId, (Multiaddr, std::time::Instant)>,
    metrics: &crate::metrics::Metrics,
) {
    let mut forward = |ev: NetEvent| {
        if let Err(mpsc::error::TrySendError::Full(ev)) = events.try_send(ev) {
            metrics.dropped_events.inc();
            if let NetEvent::Gossip { id, source, .. } = ev {
                swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, MessageAcceptance::Ignore);
            }
        }
    };
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        })) => {
            forward(NetEvent::Gossip {
                source: propagation_source,
                id: message_id,
                topic: message.topic,
                data: message.data,
            });
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
            peer_id,
            topic,
        })) => {
            forward(NetEvent::Subscribed(peer_id, topic));
        }
        SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::Message {
            peer,
            message,
            ..
        })) => match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                forward(NetEvent::Request {
                    peer,
                    data: request,
                    channel,
                });
            }
            request_response::Message::Response { response, .. } => {
                forward(NetEvent::Response {
                    peer,
                    data: response,
                });
            }
        },
        SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::OutboundFailure {
            peer,
            error,
            ..
        })) => {
            tracing::debug!(%peer, %error, "request failed");
        }
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
            peer_id,
            info,
            ..
        })) => {
            for addr in info
                .listen_addrs
                .into_iter()
                .filter(|a| !a.to_string().contains("/ip4/0.0.0.0"))
            {
                swarm.behaviour_mut().kad.add_address(&peer_id, addr);
            }
        }
        SwarmEvent::ConnectionEstablished {
            peer_id,
            endpoint,
            num_established,
            ..
        } => {
            if banned.contains(&peer_id) {
                let _ = swarm.disconnect_peer_id(peer_id);
                return;
            }
            addrs.insert(
                peer_id,
                (
                    endpoint.get_remote_address().clone(),
                    std::time::Instant::now(),
                ),
            );
            if num_established.get() == 1 {
                forward(NetEvent::Connected(peer_id));
            }
        }
        SwarmEvent::ConnectionClosed {
            peer_id,
            num_established: 0,
            ..
        } => {
            addrs.remove(&peer_id);
            forward(NetEvent::Disconnected(peer_id));
        }
        SwarmEvent::NewListenAddr { address, .. } => {
            tracing::info!(%address, "listening");
        }
        _ => {}
    }
}

/// The libp2p identity of a node key.
pub fn keypair(key: &alertmesh_protocol::NodeKey) -> anyhow::Result<identity::Keypair> {
    let mut secret = key.libp2p_secret();
    Ok(identity::Keypair::ed25519_from_bytes(secret.as_mut())?)
}

/// The peer id a node public key corresponds to.
pub fn peer_id_of(node: &alertmesh_protocol::NodePublicKey) -> Option<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(node.as_bytes()).ok()?;
    Some(identity::PublicKey::from(pk).to_peer_id())
}
