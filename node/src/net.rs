//! The libp2p swarm: one task owns it; the rest of the node talks to it through a
//! [`NetHandle`] (bounded command channel) and hears from it through two channels: gossip
//! messages ([`Gossip`]) and everything else ([`NetEvent`]).
//!
//! - **Admission.** Gossipsub and Kademlia sit behind a [`gate::Gate`]: nothing of them is
//!   sent to or read from a peer until the core has checked its certificate and sent
//!   [`NetCommand::Admit`].
//! - **Nothing but gossip is shed.** A gossip message that cannot be queued is reported
//!   `Ignore` and counted. Any other event waits in one slot while the swarm stops being
//!   polled, so connection and request events always reach the core; commands are still
//!   served meanwhile, so the core never waits on a swarm that waits on it.
//! - **Bans** live here alone ([`NetCommand::Refuse`], [`NetCommand::Ban`]): a refused peer
//!   is told why, then disconnected and blocked for [`BAN_TIME`].
//! - **Limits**: libp2p connection limits ([`ConnectionLimits`]) come first in the behaviour.

use alertmesh_protocol::wire::MAX_FRAME_BYTES;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
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
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How long a QUIC handshake may take before the dial falls back to TCP.
const QUIC_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Listen addresses of one peer's identify kept at most.
const MAX_IDENTIFY_ADDRS: usize = 16;
/// Commands queued to the swarm task.
const COMMAND_QUEUE: usize = 1024;
/// Gossip messages queued from the swarm task to the node core; beyond it they are shed.
pub const GOSSIP_QUEUE: usize = 4096;
/// Other events queued from the swarm task to the node core; beyond it the swarm waits.
pub const EVENT_QUEUE: usize = 1024;
/// How long a refused peer may still read its refusal before it is disconnected.
pub const REFUSAL_GRACE: Duration = Duration::from_secs(1);
/// How long a refused peer stays connected once its refusal is written (for the muxer to
/// flush it to the socket).
const REFUSAL_FLUSH: Duration = Duration::from_millis(100);
/// How long a refused peer stays banned.
pub const BAN_TIME: Duration = Duration::from_secs(60);
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

pub mod gate;

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive generates `BehaviourEvent`, whose variants cannot carry doc comments.
    #![allow(missing_docs)]
    use super::FrameCodec;
    use super::gate::Gate;
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::{
        allow_block_list, connection_limits, gossipsub, identify, kad, ping, request_response,
    };

    /// The node's composed network behaviour. Fields are polled in this order, so the
    /// limits and the block list deny a connection before any other behaviour sees it.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Pending, per-peer and total connection limits (config keys `max_connections`,
        /// `max_pending_incoming`, `max_connections_per_peer`).
        pub limits: connection_limits::Behaviour,
        /// Refused and banned peers: their connections are closed and new ones denied.
        pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
        /// Alert and control gossip, validated by the node before forwarding; closed to a
        /// peer until it is admitted.
        pub gossipsub: Gate<gossipsub::Behaviour>,
        /// Exchange of listen addresses and agent versions.
        pub identify: identify::Behaviour,
        /// Liveness.
        pub ping: ping::Behaviour,
        /// Peer discovery beyond the bootstrap list; closed to a peer until it is admitted.
        pub kad: Gate<kad::Behaviour<kad::store::MemoryStore>>,
        /// Hello (certificate exchange), directory and history sync.
        pub req: request_response::Behaviour<FrameCodec>,
    }
}

pub use libp2p::connection_limits::ConnectionLimits;

/// A gossip message awaiting validation.
#[derive(Debug)]
pub struct Gossip {
    /// The peer that sent it to us.
    pub source: PeerId,
    /// gossipsub's id (SHA-256 of the data).
    pub id: MessageId,
    /// The topic.
    pub topic: TopicHash,
    /// The raw data.
    pub data: Vec<u8>,
}

/// The core's own number for an outbound request, echoed in its answer or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestTag(pub u64);

/// Why an outbound request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The peer was not connected when the request was to be sent.
    #[error("not connected")]
    NotConnected,
    /// The peer does not speak the request protocol.
    #[error("the peer does not speak {REQ_PROTOCOL}")]
    UnsupportedProtocol,
    /// No answer within the request timeout.
    #[error("timed out")]
    Timeout,
    /// The connection closed before the answer came.
    #[error("connection closed")]
    ConnectionClosed,
    /// The stream failed (including an answer over the frame limit).
    #[error("stream failed: {0}")]
    Io(String),
}

impl From<&request_response::OutboundFailure> for RequestError {
    fn from(f: &request_response::OutboundFailure) -> Self {
        use request_response::OutboundFailure as F;
        match f {
            F::DialFailure => Self::NotConnected,
            F::Timeout => Self::Timeout,
            F::ConnectionClosed => Self::ConnectionClosed,
            F::UnsupportedProtocols => Self::UnsupportedProtocol,
            F::Io(e) => Self::Io(e.to_string()),
        }
    }
}

/// What the swarm reports to the node core, besides gossip. None of these is ever dropped.
#[derive(Debug)]
pub enum NetEvent {
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
        /// The request's tag.
        tag: RequestTag,
        /// The raw response frame.
        data: Vec<u8>,
    },
    /// Our request got no answer.
    RequestFailed {
        /// The peer.
        peer: PeerId,
        /// The request's tag.
        tag: RequestTag,
        /// Why.
        error: RequestError,
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
    /// Open gossipsub and Kademlia to a peer whose certificate the core verified.
    Admit(PeerId),
    /// Send a request to a connected peer; the answer or failure comes back with `tag`.
    Request {
        /// The peer.
        peer: PeerId,
        /// The request frame.
        data: Vec<u8>,
        /// The core's number for it.
        tag: RequestTag,
    },
    /// Answer a request.
    Respond(ResponseChannel<Vec<u8>>, Vec<u8>),
    /// Refuse a peer: send it `refusal` (an encoded `Refused` response) on `channel`, and on
    /// any request it sends within [`REFUSAL_GRACE`]; then disconnect and ban it for
    /// [`BAN_TIME`]. A peer that does not speak the request protocol is banned at once.
    Refuse {
        /// The peer.
        peer: PeerId,
        /// The encoded refusal.
        refusal: Vec<u8>,
        /// The request being answered with the refusal, if any.
        channel: Option<ResponseChannel<Vec<u8>>>,
        /// Whether the peer can hear a refusal at all.
        speaks_protocol: bool,
    },
    /// Answer a request of a peer the core no longer tracks: with its refusal if it is
    /// being refused, else with `fallback`.
    RespondRefused {
        /// The peer.
        peer: PeerId,
        /// The request being answered.
        channel: ResponseChannel<Vec<u8>>,
        /// The answer when no refusal is pending.
        fallback: Vec<u8>,
    },
    /// Close all connections to a peer and refuse it until [`NetCommand::Unban`].
    Ban(PeerId),
    /// Allow a banned peer again.
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
    /// Whether its certificate was verified (gossip flows only then).
    pub admitted: bool,
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

/// A transport as the swarm takes it: authenticated, multiplexed connections.
pub type BoxedTransport =
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>;

/// TCP (nodelay) + Noise + Yamux, as `SwarmBuilder::with_tcp` builds it, with the raw
/// socket bytes counted in `traffic`. Also used by the simulator's plain-gossipsub baseline.
pub fn counted_tcp_transport(
    key: &identity::Keypair,
    traffic: Traffic,
) -> Result<BoxedTransport, noise::Error> {
    secure_transport(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
        key,
        traffic,
    )
}

/// Any raw byte-stream transport (TCP, libp2p's memory transport, a wrapper adding link
/// faults) with Noise + Yamux on top, exactly as the node runs TCP, and its raw bytes
/// counted in `traffic`.
pub fn secure_transport<T>(
    raw: T,
    key: &identity::Keypair,
    traffic: Traffic,
) -> Result<BoxedTransport, noise::Error>
where
    T: libp2p::Transport + Send + Unpin + 'static,
    T::Output: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    use libp2p::Transport;
    Ok(raw
        .map(move |stream, _| CountingStream {
            inner: stream,
            traffic: traffic.clone(),
        })
        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)))
        .boxed())
}

/// Builds the transport a node runs instead of its own (TCP + QUIC): given the node's
/// keypair and its traffic counters, for example [`secure_transport`] over a memory
/// transport or over a wrapper that adds link faults (the simulator's harness).
pub type TransportFactory =
    Box<dyn FnOnce(&identity::Keypair, Traffic) -> anyhow::Result<BoxedTransport> + Send>;

/// QUIC (v1) next to [`counted_tcp_transport`]; only TCP bytes are counted.
fn transport(key: &identity::Keypair, traffic: Traffic) -> Result<BoxedTransport, noise::Error> {
    use libp2p::Transport;
    use libp2p::core::muxing::StreamMuxerBox;
    let mut config = libp2p::quic::Config::new(key);
    // A bootstrap dial tries QUIC first and falls back to TCP after this (UDP blocked, or
    // no QUIC listener: QUIC sees no refusal, only silence).
    config.handshake_timeout = QUIC_HANDSHAKE_TIMEOUT;
    let quic = libp2p::quic::tokio::Transport::new(config)
        .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
    Ok(quic
        .or_transport(counted_tcp_transport(key, traffic)?)
        .map(|either, _| match either {
            futures::future::Either::Left(out) | futures::future::Either::Right(out) => out,
        })
        .boxed())
}

/// The QUIC address on the same port number as a TCP listen address
/// (`/ip4/A/tcp/P` → `/ip4/A/udp/P/quic-v1`), if it is one.
pub fn quic_twin(addr: &Multiaddr) -> Option<Multiaddr> {
    use libp2p::multiaddr::Protocol;
    let mut out = Multiaddr::empty();
    let mut swapped = false;
    for p in addr.iter() {
        match p {
            Protocol::Tcp(port) if !swapped => {
                out.push(Protocol::Udp(port));
                out.push(Protocol::QuicV1);
                swapped = true;
            }
            Protocol::Udp(_) | Protocol::QuicV1 | Protocol::Quic => return None,
            other => out.push(other),
        }
    }
    swapped.then_some(out)
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
/// adds `validate_messages` (`gossipsub_config`); the simulator's plain-gossipsub
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

/// Admitted peers kept unless the config's `max_peers` says otherwise.
pub const DEFAULT_MAX_PEERS: usize = 32;

/// Connection limits unless the config says otherwise: a few handshakes in flight from
/// strangers, two connections per peer (a simultaneous dial), and room for `max_peers`
/// admitted peers plus the strangers and walks around them.
pub fn default_limits(max_peers: usize) -> ConnectionLimits {
    ConnectionLimits::default()
        .with_max_pending_incoming(Some(DEFAULT_MAX_PENDING_INCOMING))
        .with_max_established_per_peer(Some(DEFAULT_MAX_CONNECTIONS_PER_PEER))
        .with_max_established(Some(default_max_connections(max_peers)))
}

/// Incoming connections still in their handshake, at most (config `max_pending_incoming`).
pub const DEFAULT_MAX_PENDING_INCOMING: u32 = 32;
/// Connections to one peer, at most (config `max_connections_per_peer`).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: u32 = 2;

/// Established connections at most (config `max_connections`): twice `max_peers`, and
/// never fewer than 64.
pub fn default_max_connections(max_peers: usize) -> u32 {
    u32::try_from(max_peers.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(64)
}

/// Builds the swarm for a node key, listening on `listen`, with [`default_limits`].
pub fn build_swarm(
    key: identity::Keypair,
    listen: &[Multiaddr],
) -> anyhow::Result<Swarm<Behaviour>> {
    build_swarm_counted(
        key,
        listen,
        Traffic::default(),
        default_limits(DEFAULT_MAX_PEERS),
    )
}

/// [`build_swarm`] with `limits`, counting its traffic in `traffic` (see
/// [`NetHandle::traffic`]).
pub fn build_swarm_counted(
    key: identity::Keypair,
    listen: &[Multiaddr],
    traffic: Traffic,
    limits: ConnectionLimits,
) -> anyhow::Result<Swarm<Behaviour>> {
    build_swarm_with(key, listen, traffic, limits, None)
}

/// [`build_swarm_counted`] on the transport `custom` builds, if given, instead of the
/// node's own TCP + QUIC.
pub fn build_swarm_with(
    key: identity::Keypair,
    listen: &[Multiaddr],
    traffic: Traffic,
    limits: ConnectionLimits,
    custom: Option<TransportFactory>,
) -> anyhow::Result<Swarm<Behaviour>> {
    let gossip_traffic = traffic.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| match custom {
            Some(build) => build(key, traffic).map_err(Into::into),
            None => transport(key, traffic)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
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
                limits: libp2p::connection_limits::Behaviour::new(limits),
                blocked: Default::default(),
                gossipsub: gate::Gate::new(gossipsub),
                identify,
                ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
                kad: gate::Gate::new(kad),
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

/// The core's ends of the swarm task's two event channels.
pub struct EventReceivers {
    /// Gossip messages (shed when full).
    pub gossip: mpsc::Receiver<Gossip>,
    /// Everything else (never dropped).
    pub events: mpsc::Receiver<NetEvent>,
}

/// The swarm task's ends of [`EventReceivers`].
pub struct EventSenders {
    gossip: mpsc::Sender<Gossip>,
    events: mpsc::Sender<NetEvent>,
}

/// Creates the two event channels between the swarm task and the core.
pub fn event_channels() -> (EventSenders, EventReceivers) {
    let (gossip_tx, gossip) = mpsc::channel(GOSSIP_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    (
        EventSenders {
            gossip: gossip_tx,
            events: events_tx,
        },
        EventReceivers { gossip, events },
    )
}

/// A peer being refused: what it is told and when it is cut off at the latest.
struct Refusal {
    refusal: Vec<u8>,
    deadline: Instant,
}

/// The swarm task's state besides the swarm.
struct Driver {
    swarm: Swarm<Behaviour>,
    gossip: mpsc::Sender<Gossip>,
    events: mpsc::Sender<NetEvent>,
    /// An event the core's queue had no room for; the swarm is not polled until it is
    /// delivered.
    stalled: Option<NetEvent>,
    metrics: crate::metrics::Metrics,
    /// Banned peers and when their ban ends (`None`: until unbanned).
    banned: HashMap<PeerId, Option<Instant>>,
    /// Peers told they are refused, still connected for at most [`REFUSAL_GRACE`].
    refusing: HashMap<PeerId, Refusal>,
    /// Each connected peer's remote address and when it connected.
    addrs: HashMap<PeerId, (Multiaddr, Instant)>,
    /// Listen addresses a connected peer reported, given to Kademlia once it is admitted.
    identified: HashMap<PeerId, Vec<Multiaddr>>,
    /// Tags of our outbound requests awaiting an answer.
    requests: HashMap<OutboundRequestId, RequestTag>,
}

/// Runs the swarm until `commands` closes or `shutdown` fires.
pub async fn run(
    swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<NetCommand>,
    events: EventSenders,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: crate::metrics::Metrics,
) {
    let mut d = Driver {
        swarm,
        gossip: events.gossip,
        events: events.events,
        stalled: None,
        metrics,
        banned: HashMap::new(),
        refusing: HashMap::new(),
        addrs: HashMap::new(),
        identified: HashMap::new(),
        requests: HashMap::new(),
    };
    let mut kad_tick = tokio::time::interval(KAD_BOOTSTRAP_PERIOD);
    let mut housekeeping = tokio::time::interval(Duration::from_millis(50));
    let events = d.events.clone();
    loop {
        let stalled = d.stalled.is_some();
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = kad_tick.tick() => {
                let me = *d.swarm.local_peer_id();
                d.swarm.behaviour_mut().kad.get_closest_peers(me);
            }
            _ = housekeeping.tick() => d.expire(Instant::now()),
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                d.command(cmd);
            }
            permit = events.reserve(), if stalled => match (permit, d.stalled.take()) {
                (Ok(permit), Some(ev)) => permit.send(ev),
                _ => break, // the core is gone
            },
            event = d.swarm.select_next_some(), if !stalled => d.event(event),
        }
    }
    tracing::debug!("network task stopped");
}

impl Driver {
    /// Hands an event to the core; if its queue is full, holds it and stops polling the
    /// swarm until it is delivered.
    fn forward(&mut self, ev: NetEvent) {
        match self.events.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => self.stalled = Some(ev),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Hands a gossip message to the core, or sheds it (`Ignore`, counted).
    fn forward_gossip(&mut self, msg: Gossip) {
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.gossip.try_send(msg) {
            self.metrics.dropped_events.inc();
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&msg.id, &msg.source, MessageAcceptance::Ignore);
        }
    }

    fn ban(&mut self, peer: PeerId, until: Option<Instant>) {
        self.refusing.remove(&peer);
        self.banned.insert(peer, until);
        let b = self.swarm.behaviour_mut();
        b.gossipsub.blacklist_peer(&peer);
        b.kad.remove_peer(&peer);
        // Closes every connection of the peer and denies new ones.
        b.blocked.block_peer(peer);
    }

    fn unban(&mut self, peer: PeerId) {
        self.banned.remove(&peer);
        let b = self.swarm.behaviour_mut();
        b.gossipsub.remove_blacklisted_peer(&peer);
        b.blocked.unblock_peer(peer);
    }

    /// Ends refusal graces and bans that are over.
    fn expire(&mut self, now: Instant) {
        let cut: Vec<PeerId> = self
            .refusing
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in cut {
            self.ban(peer, Some(now + BAN_TIME));
        }
        let over: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| until.is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in over {
            self.unban(peer);
        }
    }

    fn command(&mut self, cmd: NetCommand) {
        let b = self.swarm.behaviour_mut();
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
            NetCommand::Admit(peer) => {
                if !self.swarm.is_connected(&peer) || self.refusing.contains_key(&peer) {
                    return;
                }
                let b = self.swarm.behaviour_mut();
                b.gossipsub.admit(peer);
                b.kad.admit(peer);
                for addr in self.identified.remove(&peer).into_iter().flatten() {
                    b.kad.add_address(&peer, addr);
                }
            }
            NetCommand::Request { peer, data, tag } => {
                // Requests go to connected peers only: request-response would otherwise dial
                // a peer that was just pruned or refused.
                if self.swarm.is_connected(&peer) {
                    let id = self.swarm.behaviour_mut().req.send_request(&peer, data);
                    self.requests.insert(id, tag);
                } else {
                    self.forward(NetEvent::RequestFailed {
                        peer,
                        tag,
                        error: RequestError::NotConnected,
                    });
                }
            }
            NetCommand::Respond(channel, data) => {
                let _ = b.req.send_response(channel, data);
            }
            NetCommand::Refuse {
                peer,
                refusal,
                channel,
                speaks_protocol,
            } => {
                self.metrics.refused_peers.inc();
                if !speaks_protocol {
                    self.ban(peer, Some(Instant::now() + BAN_TIME));
                    return;
                }
                if let Some(channel) = channel {
                    if b.req.send_response(channel, refusal.clone()).is_err() {
                        tracing::debug!(%peer, "the refused request's stream is gone");
                    }
                }
                // Refused twice (say, for its hello and for its answer to ours): the first
                // refusal's deadline stands.
                self.refusing.entry(peer).or_insert(Refusal {
                    refusal,
                    deadline: Instant::now() + REFUSAL_GRACE,
                });
            }
            NetCommand::RespondRefused {
                peer,
                channel,
                fallback,
            } => {
                let answer = self
                    .refusing
                    .get(&peer)
                    .map_or(fallback, |r| r.refusal.clone());
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .req
                    .send_response(channel, answer);
            }
            NetCommand::Ban(peer) => self.ban(peer, None),
            NetCommand::Unban(peer) => self.unban(peer),
            NetCommand::Score(peer, score) => {
                b.gossipsub.set_application_score(&peer, score);
            }
            NetCommand::Dial(addr) => {
                // With a peer id: no second dial while connected to it or dialling it. A
                // TCP address is tried as QUIC on the same port first (QUIC is preferred
                // where both ends speak it), then as given.
                let peer = addr.iter().find_map(|p| match p {
                    libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                    _ => None,
                });
                let opts = match peer {
                    Some(peer) => libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                        .addresses(quic_twin(&addr).into_iter().chain([addr.clone()]).collect())
                        .override_dial_concurrency_factor(std::num::NonZeroU8::MIN)
                        .condition(
                            libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing,
                        )
                        .build(),
                    None => addr.clone().into(),
                };
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%addr, error = %e, "dial failed");
                }
            }
            NetCommand::DialPeer(peer) => {
                if self.banned.contains_key(&peer) {
                    return;
                }
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%peer, error = %e, "no address known; asking the DHT");
                    self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                }
            }
            NetCommand::Prune(max) => prune(&mut self.swarm, max, &self.addrs),
            NetCommand::Peers(reply) => {
                let g = &self.swarm.behaviour().gossipsub;
                let peers = self
                    .swarm
                    .connected_peers()
                    .map(|p| PeerInfo {
                        peer_id: p.to_string(),
                        address: self
                            .addrs
                            .get(p)
                            .map(|(a, _)| a.to_string())
                            .unwrap_or_default(),
                        score: g.peer_score(p),
                        mesh_topics: g
                            .topics()
                            .filter(|t| g.mesh_peers(t).any(|m| m == p))
                            .count(),
                        admitted: g.is_admitted(p),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            NetCommand::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            NetCommand::KadQueries(reply) => {
                let _ = reply.send(self.swarm.behaviour().kad.iter_queries().count());
            }
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.forward_gossip(Gossip {
                source: propagation_source,
                id: message_id,
                topic: message.topic,
                data: message.data,
            }),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
            })) => self.forward(NetEvent::Subscribed(peer_id, topic)),
            SwarmEvent::Behaviour(BehaviourEvent::Req(ev)) => self.request_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| !a.to_string().contains("/ip4/0.0.0.0"))
                    .take(MAX_IDENTIFY_ADDRS)
                    .collect();
                let kad = &mut self.swarm.behaviour_mut().kad;
                if kad.is_admitted(&peer_id) {
                    for addr in addrs {
                        kad.add_address(&peer_id, addr);
                    }
                } else if self.addrs.contains_key(&peer_id) {
                    self.identified.insert(peer_id, addrs);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.addrs.insert(
                    peer_id,
                    (endpoint.get_remote_address().clone(), Instant::now()),
                );
                if num_established.get() == 1 {
                    self.forward(NetEvent::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.addrs.remove(&peer_id);
                self.identified.remove(&peer_id);
                if self.refusing.remove(&peer_id).is_some() {
                    self.ban(peer_id, Some(Instant::now() + BAN_TIME));
                }
                self.forward(NetEvent::Disconnected(peer_id));
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            _ => {}
        }
    }

    fn request_event(&mut self, ev: request_response::Event<Vec<u8>, Vec<u8>>) {
        match ev {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => match self.refusing.get(&peer) {
                // A refused peer hears only its refusal, then it is cut off.
                Some(r) => {
                    let refusal = r.refusal.clone();
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .req
                        .send_response(channel, refusal);
                }
                None => self.forward(NetEvent::Request {
                    peer,
                    data: request,
                    channel,
                }),
            },
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tag) = self.requests.remove(&request_id) {
                    self.forward(NetEvent::Response {
                        peer,
                        tag,
                        data: response,
                    });
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "request failed");
                if let Some(tag) = self.requests.remove(&request_id) {
                    self.forward(NetEvent::RequestFailed {
                        peer,
                        tag,
                        error: RequestError::from(&error),
                    });
                }
            }
            request_response::Event::ResponseSent { peer, .. } => {
                // Its refusal is written: cut it off once the muxer has flushed it.
                if let Some(r) = self.refusing.get_mut(&peer) {
                    r.deadline = r.deadline.min(Instant::now() + REFUSAL_FLUSH);
                }
            }
            request_response::Event::InboundFailure { .. } => {}
        }
    }
}

/// Closes connections beyond `max` to peers in none of our gossipsub meshes, oldest
/// connections last (they have proved useful for longest).
fn prune(swarm: &mut Swarm<Behaviour>, max: usize, addrs: &HashMap<PeerId, (Multiaddr, Instant)>) {
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
    let mut idle: Vec<(PeerId, Instant)> = addrs
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
