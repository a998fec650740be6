//! A hostile test peer: a libp2p node built from the same crates as the daemon (TCP,
//! Noise, Yamux, gossipsub, request-response with the node's frame codec), that can
//! introduce itself with any certificate (or none) and send any bytes on any protocol:
//!
//! - gossip: any bytes on any topic ([`HostilePeer::publish`]), with a gossipsub that
//!   accepts messages of up to [`MAX_HOSTILE_TRANSMIT`] bytes (the node's limit is lower);
//! - the node's request-response protocol: well-framed requests
//!   ([`HostilePeer::request`]) and answers chosen by a [`Responder`] (wrong, partial or
//!   endless sync pages, or no answer at all);
//! - raw streams ([`HostilePeer::raw`]): bytes written verbatim, with no framing of ours,
//!   on the node's request protocol, gossipsub, Kademlia or identify-push, so truncated
//!   frames and length fields claiming gigabytes reach the node's decoders.

use super::watch::{InboundStreams, Watched};
use alertmesh_node::net::REQ_PROTOCOL;
use alertmesh_protocol::bootstrap::NodeMaterial;
use alertmesh_protocol::wire::{Hello, Request, Response};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageId, TopicHash};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identity, noise, tcp, yamux};
use std::io;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The largest gossip message the hostile peer will send (the node accepts less).
pub const MAX_HOSTILE_TRANSMIT: usize = 8 * 1024 * 1024;
/// Most bytes of a raw stream's answer kept.
const MAX_RAW_ANSWER: u64 = 1024 * 1024;
/// How long the peer's own waits (publish when heard, subscriptions, events) may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// What the hostile peer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A connection to this peer came up.
    Connected(PeerId),
    /// All connections to this peer closed.
    Disconnected(PeerId),
    /// A gossip message arrived.
    Gossip(TopicHash, Vec<u8>),
    /// A response to one of our requests arrived.
    Response(PeerId, Vec<u8>),
    /// A peer sent us a request (the raw frame).
    Request(PeerId, Vec<u8>),
    /// A raw stream ([`HostilePeer::raw`]) ended: how many bytes the peer answered
    /// before closing it, or why the stream failed (reset, timeout, refused protocol).
    Raw(PeerId, RawProtocol, Result<usize, String>),
}

/// A protocol on which [`HostilePeer::raw`] writes bytes verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawProtocol {
    /// The node's request-response protocol (`/alertmesh/req/1`), without the length
    /// prefix the node's codec would add.
    Req,
    /// gossipsub (`/meshsub/1.1.0`): varint-length-prefixed protobuf frames.
    Gossip,
    /// Kademlia (`/alertmesh/kad/1`): varint-length-prefixed protobuf frames.
    Kad,
    /// identify push (`/ipfs/id/push/1.0.0`): a varint-length-prefixed protobuf frame.
    IdentifyPush,
}

/// How the hostile peer answers a request.
pub enum Answer {
    /// Send these bytes as the response frame.
    Respond(Vec<u8>),
    /// Drop the request without an answer (the requester sees a failure).
    Drop,
}

/// Decides the answer to each incoming request (the raw request frame is given).
pub type Responder = Box<dyn FnMut(PeerId, &[u8]) -> Answer + Send>;

/// The default responder: answers every hello with `hello` (or refuses), and refuses
/// everything else.
pub fn hello_responder(hello: Option<Hello>) -> Responder {
    Box::new(move |_, _| match &hello {
        Some(h) => Answer::Respond(Response::Hello(h.clone()).encode()),
        None => Answer::Respond(Response::Refused("no".into()).encode()),
    })
}

enum Cmd {
    Dial(Multiaddr),
    Publish(TopicHash, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Subscribe(String),
    Request(PeerId, Vec<u8>),
    Raw(PeerId, RawProtocol, Vec<u8>),
    SetResponder(Responder),
    Subscribers(TopicHash, oneshot::Sender<Vec<PeerId>>),
}

/// Handle to a running hostile peer.
pub struct HostilePeer {
    /// Its peer id.
    pub peer_id: PeerId,
    /// gossipsub streams each peer opened to it (a peer opens one only to send frames).
    gossip_streams: InboundStreams,
    cmds: mpsc::Sender<Cmd>,
    /// What it saw, in order.
    pub seen: mpsc::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

/// Writes the request bytes verbatim and reads whatever comes back (bounded).
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<Vec<u8>> {
        Err(io::Error::other("outbound only"))
    }
    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        io.take(MAX_RAW_ANSWER).read_to_end(&mut buf).await?;
        Ok(buf)
    }
    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }
    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()> {
        Err(io::Error::other("outbound only"))
    }
}

pub use behaviour::{HostileBehaviour, HostileBehaviourEvent};

mod behaviour {
    // The derive generates an event enum whose variants cannot carry doc comments.
    #![allow(missing_docs)]
    use super::RawCodec;
    use alertmesh_node::net::FrameCodec;
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::{gossipsub, request_response};

    /// The hostile peer's behaviour: the node's gossip and request protocols plus raw
    /// streams on every protocol the node speaks.
    #[derive(NetworkBehaviour)]
    pub struct HostileBehaviour {
        /// gossipsub, configured to send oversized messages; the streams peers open to it
        /// are counted.
        pub gossipsub: super::Watched<gossipsub::Behaviour>,
        /// The node's request-response protocol with its frame codec.
        pub req: request_response::Behaviour<FrameCodec>,
        /// Raw bytes on the node's request protocol.
        pub raw_req: request_response::Behaviour<RawCodec>,
        /// Raw bytes on gossipsub.
        pub raw_gossip: request_response::Behaviour<RawCodec>,
        /// Raw bytes on Kademlia.
        pub raw_kad: request_response::Behaviour<RawCodec>,
        /// Raw bytes on identify push.
        pub raw_identify: request_response::Behaviour<RawCodec>,
    }
}

fn raw_behaviour(protocol: &'static str) -> request_response::Behaviour<RawCodec> {
    request_response::Behaviour::new(
        [(StreamProtocol::new(protocol), ProtocolSupport::Outbound)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(3)),
    )
}

fn build_swarm(
    key: identity::Keypair,
    gossip_streams: InboundStreams,
) -> anyhow::Result<Swarm<HostileBehaviour>> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(|m| {
                    MessageId::from(alertmesh_protocol::ids::sha256(&m.data).to_vec())
                })
                .max_transmit_size(MAX_HOSTILE_TRANSMIT)
                .mesh_n(5)
                .mesh_n_low(2)
                .mesh_n_high(10)
                .mesh_outbound_min(1)
                .heartbeat_interval(Duration::from_millis(700))
                // Short, so that the peer can replay what it saw.
                .duplicate_cache_time(Duration::from_millis(500))
                .flood_publish(true)
                .build()
                .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
            let gossipsub =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
                    .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
            Ok(HostileBehaviour {
                gossipsub: Watched::new(gossipsub, gossip_streams),
                req: request_response::Behaviour::new(
                    [(StreamProtocol::new(REQ_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(20)),
                ),
                raw_req: raw_behaviour(REQ_PROTOCOL),
                raw_gossip: raw_behaviour("/meshsub/1.1.0"),
                raw_kad: raw_behaviour("/alertmesh/kad/1"),
                raw_identify: raw_behaviour("/ipfs/id/push/1.0.0"),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    Ok(swarm)
}

impl HostilePeer {
    /// Starts a peer with `key`; it answers every hello with `hello` (if any) and sends
    /// it on every new connection.
    pub fn start(key: identity::Keypair, hello: Option<Hello>) -> anyhow::Result<Self> {
        let responder = hello_responder(hello.clone());
        Self::start_with(key, hello, responder)
    }

    /// Starts a peer holding a member's `identity`, introduced by a hello with its
    /// certificate: a modified node of that org.
    pub fn member(identity: &NodeMaterial) -> anyhow::Result<Self> {
        let hello = Hello {
            cert: identity.cert.as_bytes().to_vec(),
        };
        Self::start(alertmesh_node::net::keypair(&identity.key)?, Some(hello))
    }

    /// Like [`HostilePeer::start`], with `responder` deciding every answer.
    pub fn start_with(
        key: identity::Keypair,
        hello: Option<Hello>,
        responder: Responder,
    ) -> anyhow::Result<Self> {
        let peer_id = key.public().to_peer_id();
        let gossip_streams = InboundStreams::default();
        let swarm = build_swarm(key, gossip_streams.clone())?;
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (seen_tx, seen_rx) = mpsc::channel(16 * 1024);
        let task = tokio::spawn(run(swarm, cmd_rx, seen_tx, hello, responder));
        Ok(Self {
            peer_id,
            gossip_streams,
            cmds: cmd_tx,
            seen: seen_rx,
            task,
        })
    }

    /// How many gossipsub streams `peer` opened to this peer: zero means it sent no
    /// gossip frame of any kind (subscriptions, control, messages).
    pub fn gossip_streams_from(&self, peer: &PeerId) -> u64 {
        self.gossip_streams
            .lock()
            .map(|c| c.get(peer).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    async fn cmd(&self, cmd: Cmd) -> anyhow::Result<()> {
        self.cmds
            .send(cmd)
            .await
            .map_err(|_| anyhow::anyhow!("hostile peer stopped"))
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> anyhow::Result<()> {
        self.cmd(Cmd::Dial(addr)).await
    }

    /// Subscribes to a gossip topic by its full name.
    pub async fn subscribe(&self, topic: String) -> anyhow::Result<()> {
        self.cmd(Cmd::Subscribe(topic)).await
    }

    /// Publishes raw bytes on a gossip topic.
    pub async fn publish(&self, topic: TopicHash, data: Vec<u8>) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd(Cmd::Publish(topic, data, tx)).await?;
        rx.await?
            .map_err(|e| anyhow::anyhow!("publish failed: {e}"))
    }

    /// Publishes, retrying (bounded by [`WAIT`]) until some peer subscribed to the
    /// topic takes it (right after connecting, the peers' subscriptions are not known).
    pub async fn publish_when_heard(&self, topic: TopicHash, data: Vec<u8>) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.publish(topic.clone(), data.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends a request frame (framed by the node's codec).
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> anyhow::Result<()> {
        self.cmd(Cmd::Request(peer, data)).await
    }

    /// Opens a stream of `protocol` to `peer` and writes `bytes` verbatim, then closes it.
    pub async fn raw(
        &self,
        peer: PeerId,
        protocol: RawProtocol,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        self.cmd(Cmd::Raw(peer, protocol, bytes)).await
    }

    /// Replaces the responder.
    pub async fn set_responder(&self, responder: Responder) -> anyhow::Result<()> {
        self.cmd(Cmd::SetResponder(responder)).await
    }

    /// The connected peers this peer's gossipsub knows to be subscribed to `topic`.
    pub async fn subscribers(&self, topic: &TopicHash) -> anyhow::Result<Vec<PeerId>> {
        let (tx, rx) = oneshot::channel();
        self.cmd(Cmd::Subscribers(topic.clone(), tx)).await?;
        Ok(rx.await?)
    }

    /// Waits (bounded by [`WAIT`]) until every one of `peers` is known to be
    /// subscribed to `topic`, so that a publish reaches all of them.
    pub async fn wait_subscribed(&self, topic: &TopicHash, peers: &[PeerId]) -> anyhow::Result<()> {
        let subscribed = crate::wait_until(WAIT, Duration::from_millis(20), async || {
            self.subscribers(topic)
                .await
                .is_ok_and(|subs| peers.iter().all(|p| subs.contains(p)))
        })
        .await;
        anyhow::ensure!(
            subscribed,
            "the peers' subscriptions did not reach the hostile peer within {WAIT:?}"
        );
        Ok(())
    }

    /// Waits (bounded by [`WAIT`]) for an event matching `pred`.
    pub async fn wait_seen(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Seen) -> bool,
    ) -> anyhow::Result<Seen> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return Ok(ev),
                Ok(Some(_)) => continue,
                Ok(None) => anyhow::bail!("hostile peer stopped while waiting for {what}"),
                Err(_) => anyhow::bail!("timed out waiting for {what}"),
            }
        }
    }

    /// Everything seen so far, without waiting.
    pub fn drain(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        while let Ok(s) = self.seen.try_recv() {
            out.push(s);
        }
        out
    }
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    mut swarm: Swarm<HostileBehaviour>,
    mut cmds: mpsc::Receiver<Cmd>,
    seen: mpsc::Sender<Seen>,
    hello: Option<Hello>,
    mut responder: Responder,
) {
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(cmd) => command(&mut swarm, cmd, &mut responder),
            },
            ev = swarm.select_next_some() => event(&mut swarm, ev, &seen, &hello, &mut responder),
        }
    }
}

fn command(swarm: &mut Swarm<HostileBehaviour>, cmd: Cmd, responder: &mut Responder) {
    let b = swarm.behaviour_mut();
    match cmd {
        Cmd::Dial(addr) => {
            let _ = swarm.dial(addr);
        }
        Cmd::Subscribe(t) => {
            let _ = b.gossipsub.subscribe(&IdentTopic::new(t));
        }
        Cmd::Publish(topic, data, reply) => {
            let r = b
                .gossipsub
                .publish(topic, data)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = reply.send(r);
        }
        Cmd::Request(peer, data) => {
            b.req.send_request(&peer, data);
        }
        Cmd::Raw(peer, protocol, data) => {
            let target = match protocol {
                RawProtocol::Req => &mut b.raw_req,
                RawProtocol::Gossip => &mut b.raw_gossip,
                RawProtocol::Kad => &mut b.raw_kad,
                RawProtocol::IdentifyPush => &mut b.raw_identify,
            };
            target.send_request(&peer, data);
        }
        Cmd::SetResponder(r) => *responder = r,
        Cmd::Subscribers(topic, reply) => {
            let peers = b
                .gossipsub
                .all_peers()
                .filter(|(_, topics)| topics.contains(&&topic))
                .map(|(p, _)| *p)
                .collect();
            let _ = reply.send(peers);
        }
    }
}

/// How a raw stream ended, if `ev` says so.
fn raw_outcome(
    ev: request_response::Event<Vec<u8>, Vec<u8>>,
) -> Option<(PeerId, Result<usize, String>)> {
    match ev {
        request_response::Event::Message {
            peer,
            message: request_response::Message::Response { response, .. },
            ..
        } => Some((peer, Ok(response.len()))),
        request_response::Event::OutboundFailure { peer, error, .. } => {
            Some((peer, Err(error.to_string())))
        }
        _ => None,
    }
}

fn event(
    swarm: &mut Swarm<HostileBehaviour>,
    ev: SwarmEvent<HostileBehaviourEvent>,
    seen: &mpsc::Sender<Seen>,
    hello: &Option<Hello>,
    responder: &mut Responder,
) {
    match ev {
        SwarmEvent::ConnectionEstablished {
            peer_id,
            num_established,
            ..
        } if num_established.get() == 1 => {
            if let Some(h) = hello {
                swarm
                    .behaviour_mut()
                    .req
                    .send_request(&peer_id, Request::Hello(h.clone()).encode());
            }
            let _ = seen.try_send(Seen::Connected(peer_id));
        }
        SwarmEvent::ConnectionClosed {
            peer_id,
            num_established: 0,
            ..
        } => {
            let _ = seen.try_send(Seen::Disconnected(peer_id));
        }
        SwarmEvent::Behaviour(HostileBehaviourEvent::Gossipsub(gossipsub::Event::Message {
            message,
            message_id,
            propagation_source,
        })) => {
            // Accept everything: this peer is not honest, it just listens.
            swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    gossipsub::MessageAcceptance::Accept,
                );
            let _ = seen.try_send(Seen::Gossip(message.topic, message.data));
        }
        SwarmEvent::Behaviour(HostileBehaviourEvent::Req(request_response::Event::Message {
            peer,
            message,
            ..
        })) => match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                let answer = responder(peer, &request);
                let _ = seen.try_send(Seen::Request(peer, request));
                match answer {
                    Answer::Respond(bytes) => {
                        let _ = swarm.behaviour_mut().req.send_response(channel, bytes);
                    }
                    Answer::Drop => drop(channel),
                }
            }
            request_response::Message::Response { response, .. } => {
                let _ = seen.try_send(Seen::Response(peer, response));
            }
        },
        SwarmEvent::Behaviour(HostileBehaviourEvent::RawReq(ev)) => {
            if let Some((peer, outcome)) = raw_outcome(ev) {
                let _ = seen.try_send(Seen::Raw(peer, RawProtocol::Req, outcome));
            }
        }
        SwarmEvent::Behaviour(HostileBehaviourEvent::RawGossip(ev)) => {
            if let Some((peer, outcome)) = raw_outcome(ev) {
                let _ = seen.try_send(Seen::Raw(peer, RawProtocol::Gossip, outcome));
            }
        }
        SwarmEvent::Behaviour(HostileBehaviourEvent::RawKad(ev)) => {
            if let Some((peer, outcome)) = raw_outcome(ev) {
                let _ = seen.try_send(Seen::Raw(peer, RawProtocol::Kad, outcome));
            }
        }
        SwarmEvent::Behaviour(HostileBehaviourEvent::RawIdentify(ev)) => {
            if let Some((peer, outcome)) = raw_outcome(ev) {
                let _ = seen.try_send(Seen::Raw(peer, RawProtocol::IdentifyPush, outcome));
            }
        }
        _ => {}
    }
}
