//! How the node talks to the swarm task: commands in ([`NetHandle`]), gossip and events
//! out, over bounded channels.

use super::codec::REQ_PROTOCOL;
use super::transport::Traffic;
use libp2p::gossipsub::{MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::{self, ResponseChannel};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

/// Commands queued to the swarm task.
const COMMAND_QUEUE: usize = 1024;
/// Gossip messages queued from the swarm task to the node core; beyond it they are shed.
pub const GOSSIP_QUEUE: usize = 4096;
/// Other events queued from the swarm task to the node core; beyond it the swarm waits.
pub const EVENT_QUEUE: usize = 1024;

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
    /// Dial one peer at any of these addresses (all naming it with `/p2p/<id>`, directly
    /// or through a relay), tried one after the other; a single address without a peer id
    /// is dialled as it is.
    Dial(Vec<Multiaddr>),
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
    /// Report reachability and relay use.
    Reach(oneshot::Sender<ReachInfo>),
}

/// One connection to a peer: its remote address and whether it goes through a relay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathInfo {
    /// The remote address (`…/p2p-circuit` when relayed).
    pub address: String,
    /// Whether the connection is a relay circuit rather than a direct link.
    pub relayed: bool,
}

/// How reachable the node is and which relays it uses (`GET /v1/status`, `network`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReachInfo {
    /// AutoNAT v2's verdict: `unknown`, `public` or `private`.
    pub reachability: super::reach::Reachability,
    /// External addresses confirmed (by AutoNAT or the config's `external`).
    pub external_addrs: Vec<String>,
    /// Relay circuit addresses we hold a reservation on (others reach us through them).
    pub relay_reservations: Vec<String>,
    /// Whether this node is a relay (config `relay = true`).
    pub relay_server: bool,
    /// Hole punches that made a direct connection out of a relayed one.
    pub hole_punches_succeeded: u64,
    /// Hole punches that failed (the peers stay relayed).
    pub hole_punches_failed: u64,
}

/// A connected peer as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerInfo {
    /// Its peer id.
    pub peer_id: String,
    /// The remote address of its first connection still open.
    pub address: String,
    /// Every open connection to it, direct or relayed.
    pub connections: Vec<PathInfo>,
    /// Whether every connection to it goes through a relay (no direct path).
    pub relayed: bool,
    /// Its gossipsub score, if known.
    pub score: Option<f64>,
    /// Gossip topics it is in our mesh for.
    pub mesh_topics: usize,
    /// Those gossip topics, by their gossip names.
    pub mesh: Vec<String>,
    /// Seconds since the connection was established.
    pub connected_secs: u64,
    /// Whether its certificate was verified (gossip flows only then).
    pub admitted: bool,
}

/// Cloneable handle to the swarm task.
#[derive(Debug, Clone)]
pub struct NetHandle {
    tx: mpsc::Sender<NetCommand>,
    traffic: Traffic,
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

    /// Reachability and relay use.
    pub async fn reach(&self) -> anyhow::Result<ReachInfo> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Reach(tx)).await?;
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
    pub(super) gossip: mpsc::Sender<Gossip>,
    pub(super) events: mpsc::Sender<NetEvent>,
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
