//! A hostile test peer: a libp2p node built from the same crates as the daemon, that can
//! introduce itself with any certificate (or none) and send any bytes on any protocol.

use alertmesh_node::net::{self, Behaviour, BehaviourEvent};
use alertmesh_protocol::wire::{Hello, Request};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, TopicHash};
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identity};
use tokio::sync::{mpsc, oneshot};

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
}

enum Cmd {
    Dial(Multiaddr),
    Publish(TopicHash, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Subscribe(String),
    Request(PeerId, Vec<u8>),
}

/// Handle to a running hostile peer.
pub struct HostilePeer {
    /// Its peer id.
    pub peer_id: PeerId,
    cmds: mpsc::Sender<Cmd>,
    /// What it saw, in order.
    pub seen: mpsc::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl HostilePeer {
    /// Starts a peer with `key`; it answers every hello with `hello` (if any) and sends
    /// it on every new connection.
    pub fn start(key: identity::Keypair, hello: Option<Hello>) -> anyhow::Result<Self> {
        let peer_id = key.public().to_peer_id();
        let swarm = net::build_swarm(key, &["/ip4/127.0.0.1/tcp/0".parse()?])?;
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (seen_tx, seen_rx) = mpsc::channel(4096);
        let task = tokio::spawn(run(swarm, cmd_rx, seen_tx, hello));
        Ok(Self {
            peer_id,
            cmds: cmd_tx,
            seen: seen_rx,
            task,
        })
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> anyhow::Result<()> {
        self.cmds
            .send(Cmd::Dial(addr))
            .await
            .map_err(|_| anyhow::anyhow!("hostile peer stopped"))
    }

    /// Subscribes to a gossip topic by its full name.
    pub async fn subscribe(&self, topic: String) -> anyhow::Result<()> {
        self.cmds
            .send(Cmd::Subscribe(topic))
            .await
            .map_err(|_| anyhow::anyhow!("hostile peer stopped"))
    }

    /// Publishes raw bytes on a gossip topic.
    pub async fn publish(&self, topic: TopicHash, data: Vec<u8>) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Publish(topic, data, tx))
            .await
            .map_err(|_| anyhow::anyhow!("hostile peer stopped"))?;
        rx.await?
            .map_err(|e| anyhow::anyhow!("publish failed: {e}"))
    }

    /// Sends a raw request frame.
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> anyhow::Result<()> {
        self.cmds
            .send(Cmd::Request(peer, data))
            .await
            .map_err(|_| anyhow::anyhow!("hostile peer stopped"))
    }

    /// Waits (bounded by [`crate::WAIT`]) for an event matching `pred`.
    pub async fn wait_seen(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Seen) -> bool,
    ) -> anyhow::Result<Seen> {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return Ok(ev),
                Ok(Some(_)) => continue,
                Ok(None) => anyhow::bail!("hostile peer stopped while waiting for {what}"),
                Err(_) => anyhow::bail!("timed out waiting for {what}"),
            }
        }
    }
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    mut cmds: mpsc::Receiver<Cmd>,
    seen: mpsc::Sender<Seen>,
    hello: Option<Hello>,
) {
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Cmd::Dial(addr)) => { let _ = swarm.dial(addr); }
                Some(Cmd::Subscribe(t)) => { let _ = swarm.behaviour_mut().gossipsub.subscribe(&IdentTopic::new(t)); }
                Some(Cmd::Publish(topic, data, reply)) => {
                    let r = swarm.behaviour_mut().gossipsub.publish(topic, data).map(|_| ()).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Some(Cmd::Request(peer, data)) => { swarm.behaviour_mut().req.send_request(&peer, data); }
            },
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                    if num_established.get() == 1 {
                        if let Some(h) = &hello {
                            swarm.behaviour_mut().req.send_request(&peer_id, Request::Hello(h.clone()).encode());
                        }
                        let _ = seen.try_send(Seen::Connected(peer_id));
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    let _ = seen.try_send(Seen::Disconnected(peer_id));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, message_id, propagation_source })) => {
                    // Accept everything: this peer is not honest, it just listens.
                    swarm.behaviour_mut().gossipsub.report_message_validation_result(&message_id, &propagation_source, gossipsub::MessageAcceptance::Accept);
                    let _ = seen.try_send(Seen::Gossip(message.topic, message.data));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::Message { peer, message, .. })) => match message {
                    request_response::Message::Request { channel, .. } => {
                        let answer = match &hello {
                            Some(h) => alertmesh_protocol::wire::Response::Hello(h.clone()).encode(),
                            None => alertmesh_protocol::wire::Response::Refused("no".into()).encode(),
                        };
                        let _ = swarm.behaviour_mut().req.send_response(channel, answer);
                    }
                    request_response::Message::Response { response, .. } => {
                        let _ = seen.try_send(Seen::Response(peer, response));
                    }
                },
                _ => {}
            }
        }
    }
}
