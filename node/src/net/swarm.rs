//! The swarm task: it owns the swarm, runs commands, forwards events, enforces refusals
//! and bans, and listens through relays when the node is unreachable ([`Reach`]).

use super::behaviour::{Behaviour, BehaviourEvent, KAD_BOOTSTRAP_PERIOD, topic_score_params};
use super::handle::{
    EventSenders, Gossip, NetCommand, NetEvent, PathInfo, PeerInfo, ReachInfo, RequestError,
    RequestTag,
};
use super::reach::{Reach, is_relayed, relay_id, target_peer};
use super::transport::quic_twin;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, dcutr, identify, relay};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Listen addresses of one peer's identify kept at most.
const MAX_IDENTIFY_ADDRS: usize = 16;
/// How long a refused peer may still read its refusal before it is disconnected.
pub const REFUSAL_GRACE: Duration = Duration::from_secs(1);
/// How long a refused peer stays connected once its refusal is written (for the muxer to
/// flush it to the socket).
const REFUSAL_FLUSH: Duration = Duration::from_millis(100);
/// How long a refused peer stays banned.
pub const BAN_TIME: Duration = Duration::from_secs(60);
/// A connection is not pruned before it is this old: its hello, sync and grafts are done,
/// and the Kademlia walks of the peers around it (which dial it again) are over.
pub const PRUNE_GRACE: Duration = Duration::from_secs(60);

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
    /// Every open connection's remote address, per peer (direct or relayed).
    conns: HashMap<PeerId, HashMap<ConnectionId, Multiaddr>>,
    /// Reachability and the relay listeners.
    reach: Reach,
    /// Hole punches that succeeded and failed.
    hole_punches: (u64, u64),
    /// Peers whose relay requests were denied (limits) and logged; each is logged once.
    relay_denied: HashSet<PeerId>,
}

/// Peers remembered in [`Driver::relay_denied`] at most; beyond, the set starts over.
const MAX_DENIED_LOGGED: usize = 1024;

/// Runs the swarm until `commands` closes or `shutdown` fires; listens through `relays`
/// (each `…/p2p/<relay id>`) when the node turns out unreachable.
pub async fn run(
    swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<NetCommand>,
    events: EventSenders,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: crate::metrics::Metrics,
    relays: Vec<Multiaddr>,
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
        conns: HashMap::new(),
        reach: Reach::new(&relays, Instant::now()),
        hole_punches: (0, 0),
        relay_denied: HashSet::new(),
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
            _ = housekeeping.tick() => {
                let now = Instant::now();
                d.expire(now);
                d.listen_through_relays(now);
            }
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

    /// Listens on each relay circuit that is due (see [`Reach::due`]).
    fn listen_through_relays(&mut self, now: Instant) {
        for circuit in self.reach.due(now) {
            let id = self
                .swarm
                .listen_on(circuit.clone())
                .map_err(|e| e.to_string());
            if id.is_ok() {
                tracing::info!(relay = %circuit, "listening through relay");
            }
            self.reach.listening(&circuit, id, now);
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
                b.admit(peer);
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
            NetCommand::Dial(addrs) => {
                // Through relays we are connected to, if any: a circuit through a relay
                // being dialled, or down, would hold up the addresses after it.
                let through_connected: Vec<Multiaddr> = addrs
                    .iter()
                    .filter(|a| {
                        !is_relayed(a) || relay_id(a).is_some_and(|r| self.swarm.is_connected(&r))
                    })
                    .cloned()
                    .collect();
                let addrs = if through_connected.is_empty() {
                    addrs
                } else {
                    through_connected
                };
                let Some(addr) = addrs.first().cloned() else {
                    return;
                };
                // With a peer id: no second dial while connected to it or dialling it. A
                // TCP address is tried as QUIC on the same port first (QUIC is preferred
                // where both ends speak it), then as given. Through a relay
                // (`…/p2p/<relay>/p2p-circuit/p2p/<peer>`) the peer is the last id.
                let peer = target_peer(&addr);
                let opts = match peer {
                    Some(peer) => libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                        .addresses(
                            addrs
                                .iter()
                                .flat_map(|a| quic_twin(a).into_iter().chain([a.clone()]))
                                .collect(),
                        )
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
                    .map(|p| {
                        let connections: Vec<PathInfo> = self
                            .conns
                            .get(p)
                            .into_iter()
                            .flat_map(|c| c.values())
                            .map(|a| PathInfo {
                                address: a.to_string(),
                                relayed: is_relayed(a),
                            })
                            .collect();
                        PeerInfo {
                            peer_id: p.to_string(),
                            address: self
                                .addrs
                                .get(p)
                                .map(|(a, _)| a.to_string())
                                .unwrap_or_default(),
                            relayed: !connections.is_empty()
                                && connections.iter().all(|c| c.relayed),
                            connections,
                            score: g.peer_score(p),
                            mesh_topics: g
                                .topics()
                                .filter(|t| g.mesh_peers(t).any(|m| m == p))
                                .count(),
                            mesh: g
                                .topics()
                                .filter(|t| g.mesh_peers(t).any(|m| m == p))
                                .map(|t| t.as_str().to_string())
                                .collect(),
                            connected_secs: self
                                .addrs
                                .get(p)
                                .map_or(0, |(_, since)| since.elapsed().as_secs()),
                            admitted: g.is_admitted(p),
                        }
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
            NetCommand::Reach(reply) => {
                let _ = reply.send(ReachInfo {
                    reachability: self.reach.reachability(),
                    external_addrs: self
                        .swarm
                        .external_addresses()
                        .map(ToString::to_string)
                        .collect(),
                    relay_reservations: self
                        .reach
                        .reserved_circuits()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    relay_server: self.swarm.behaviour().relay.is_enabled(),
                    hole_punches_succeeded: self.hole_punches.0,
                    hole_punches_failed: self.hole_punches.1,
                });
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
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(ev)) => self.relay_client_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(ev)) => self.relay_server_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => {
                    self.hole_punches.0 += 1;
                    tracing::info!(peer = %remote_peer_id, "hole punch succeeded: direct connection");
                }
                Err(e) => {
                    self.hole_punches.1 += 1;
                    tracing::info!(peer = %remote_peer_id, error = %e, "hole punch failed: staying relayed");
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            })) => {
                tracing::debug!(%tested_addr, %server, ok = result.is_ok(), "AutoNAT v2 probe");
                // Our relayed addresses are confirmed too; they say nothing of our own.
                let confirmed = self.swarm.external_addresses().any(|a| !is_relayed(a));
                self.reach.autonat(result.is_ok(), confirmed);
                self.listen_through_relays(Instant::now());
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let reason = match reason {
                    Ok(()) => "closed".to_string(),
                    Err(e) => e.to_string(),
                };
                self.reach.closed(listener_id, &reason, Instant::now());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                self.conns
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id, endpoint.get_remote_address().clone());
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
                connection_id,
                num_established,
                ..
            } => {
                if let Some(conns) = self.conns.get_mut(&peer_id) {
                    conns.remove(&connection_id);
                    if conns.is_empty() {
                        self.conns.remove(&peer_id);
                    }
                }
                if num_established > 0 {
                    return;
                }
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

    fn relay_client_event(&mut self, ev: relay::client::Event) {
        match ev {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                if !renewal {
                    tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                }
                self.reach.reserved(relay_peer_id);
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                tracing::debug!(relay = %relay_peer_id, "outbound relay circuit");
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                tracing::debug!(peer = %src_peer_id, "inbound relay circuit");
            }
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

impl Driver {
    /// Logs what the relay server does: reservations and circuits at debug level; a
    /// member's first denial (a limit reached) at info, its further ones at debug.
    fn relay_server_event(&mut self, ev: relay::Event) {
        let (peer, what, status) = match ev {
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => (src_peer_id, "relay reservation denied", status),
            relay::Event::CircuitReqDenied {
                src_peer_id,
                status,
                ..
            } => (src_peer_id, "relay circuit denied", status),
            other => {
                tracing::debug!(event = ?other, "relay server");
                return;
            }
        };
        if self.relay_denied.len() >= MAX_DENIED_LOGGED {
            self.relay_denied.clear();
        }
        if self.relay_denied.insert(peer) {
            tracing::info!(%peer, ?status, "{what} (limit reached; further denials of this peer at debug level)");
        } else {
            tracing::debug!(%peer, ?status, "{what}");
        }
    }
}
