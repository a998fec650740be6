//! The composed network behaviour and how a swarm is built: gossipsub with its scores,
//! Kademlia, identify, ping, request-response, connection limits and the block list, and
//! for NAT traversal the circuit-relay v2 client (and server on relay nodes), DCUtR hole
//! punching and AutoNAT v2, all behind the admission gate.

use super::codec::REQ_PROTOCOL;
use super::gate;
use super::transport::{Traffic, TransportFactory, transport};
use libp2p::gossipsub::{self, MessageId};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{
    Multiaddr, StreamProtocol, Swarm, autonat, dcutr, identify, identity, kad, noise, ping, relay,
    yamux,
};
use std::time::Duration;

/// gossipsub's largest message: the hard envelope cap plus control framing.
pub const MAX_TRANSMIT_SIZE: usize = 1024 * 1024 + 1024;
/// Application score given to a peer that must be pruned (below the graylist threshold).
pub const BAD_PEER_SCORE: f64 = -1000.0;
/// Entries per Kademlia k-bucket (kad's default is 20).
const KAD_BUCKET_SIZE: std::num::NonZeroUsize = std::num::NonZeroUsize::new(256).unwrap();
/// How often a Kademlia walk towards our own id refreshes the routing table (the first
/// runs at start). Every peer a walk queries is dialled, and each connection costs a
/// Noise handshake, a hello and a sync; peers beyond `max_peers` are pruned again.
pub(super) const KAD_BOOTSTRAP_PERIOD: Duration = Duration::from_secs(300);
/// How often each connection is probed for liveness. libp2p's 15 s made the probes
/// most of an idle network's CPU (a round trip on every connection); a dead link is
/// still found within 80 s (interval plus the 20 s timeout), while gossip reaches readers
/// over other mesh links and anti-entropy repairs what was missed.
const PING_INTERVAL: Duration = Duration::from_secs(60);

pub use composed::{Behaviour, BehaviourEvent};

mod composed {
    // The derive generates `BehaviourEvent`, whose variants cannot carry doc comments.
    #![allow(missing_docs)]
    use super::super::codec::FrameCodec;
    use super::super::gate::Gate;
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::swarm::behaviour::toggle::Toggle;
    use libp2p::{
        allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify, kad, ping, relay,
        request_response,
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
        /// Circuit-relay v2 server, on relay nodes only (config `relay = true`); closed to
        /// a peer until it is admitted, so only members reserve slots or open circuits.
        pub relay: Toggle<Gate<relay::Behaviour>>,
        /// Circuit-relay v2 client: reservations on, and circuits through, admitted relays.
        pub relay_client: Gate<relay::client::Behaviour>,
        /// Hole punching over a relayed connection, once its peer is admitted.
        pub dcutr: Gate<dcutr::Behaviour>,
        /// AutoNAT v2 client: asks admitted peers to dial our address candidates back.
        pub autonat: Gate<autonat::v2::client::Behaviour>,
        /// AutoNAT v2 server: dials back admitted peers only.
        pub autonat_server: Gate<autonat::v2::server::Behaviour>,
    }
}

pub use libp2p::connection_limits::ConnectionLimits;

impl Behaviour {
    /// Opens every gated behaviour to `peer` (its certificate verified).
    pub fn admit(&mut self, peer: libp2p::PeerId) {
        self.gossipsub.admit(peer);
        self.kad.admit(peer);
        if let Some(relay) = self.relay.as_mut() {
            relay.admit(peer);
        }
        self.relay_client.admit(peer);
        self.dcutr.admit(peer);
        self.autonat.admit(peer);
        self.autonat_server.admit(peer);
    }
}

/// Relay slots (reservations) held at most, over all members.
pub const RELAY_MAX_RESERVATIONS: usize = 128;
/// Reservations one member may hold at most (one per connection to the relay).
pub const RELAY_MAX_RESERVATIONS_PER_PEER: usize = 2;
/// How long a reservation lasts before the client renews it.
pub const RELAY_RESERVATION_DURATION: Duration = Duration::from_secs(3600);
/// Circuits relayed at once, over all members.
pub const RELAY_MAX_CIRCUITS: usize = 64;
/// Circuits one member may have open at once (as source).
pub const RELAY_MAX_CIRCUITS_PER_PEER: usize = 8;
/// A circuit is closed after this long; the peers dial again (or are direct by then).
pub const RELAY_MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(30 * 60);
/// A circuit is closed after relaying this many bytes (each direction): sixteen
/// maximal envelopes, thousands of typical alerts.
pub const RELAY_MAX_CIRCUIT_BYTES: u64 = 16 * 1024 * 1024;

/// The relay server's limits: the constants above, with libp2p's default rate limits on
/// new reservations and circuits (per peer and per IP address).
pub fn relay_config() -> relay::Config {
    relay::Config {
        max_reservations: RELAY_MAX_RESERVATIONS,
        max_reservations_per_peer: RELAY_MAX_RESERVATIONS_PER_PEER,
        reservation_duration: RELAY_RESERVATION_DURATION,
        max_circuits: RELAY_MAX_CIRCUITS,
        max_circuits_per_peer: RELAY_MAX_CIRCUITS_PER_PEER,
        max_circuit_duration: RELAY_MAX_CIRCUIT_DURATION,
        max_circuit_bytes: RELAY_MAX_CIRCUIT_BYTES,
        ..Default::default()
    }
}

/// Gossipsub settings for networks of 3–200 nodes, without message validation: the node
/// adds `validate_messages` ([`GossipMode::Node`]); the simulator's plain-gossipsub
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

/// How gossipsub frames and checks messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipMode {
    /// The node's: anonymous frames (the envelope inside carries the signature), every
    /// message held back until the node has validated it.
    Node,
    /// Stock rust-libp2p signed gossip: each message signed with the peer key
    /// (`MessageAuthenticity::Signed`), every hop verifying it (`ValidationMode::Strict`)
    /// and forwarding it without application validation. The simulator's fair baseline:
    /// what one would build instead on the same stack.
    Signed,
}

/// The gossipsub behaviour of `mode`: [`gossipsub_settings`] with the node's validation,
/// or with libp2p's own signatures; each message id counted in `traffic`.
fn gossipsub_behaviour(
    mode: GossipMode,
    key: &identity::Keypair,
    traffic: Traffic,
) -> anyhow::Result<gossipsub::Behaviour> {
    let mut settings = gossipsub_settings(move || traffic.count_message_id());
    let authenticity = match mode {
        GossipMode::Node => {
            settings.validate_messages();
            gossipsub::MessageAuthenticity::Anonymous
        }
        GossipMode::Signed => {
            settings.validation_mode(gossipsub::ValidationMode::Strict);
            gossipsub::MessageAuthenticity::Signed(key.clone())
        }
    };
    let config = settings
        .build()
        .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
    gossipsub::Behaviour::new(authenticity, config).map_err(|e| anyhow::anyhow!("gossipsub: {e}"))
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
    build_swarm_with(key, listen, traffic, limits, None, false)
}

/// [`build_swarm_counted`] on the transport `custom` builds, if given, instead of the
/// node's own TCP + QUIC, with the relay server if `relay_server`. Connections through a
/// relay (`/p2p-circuit`) come in over the relay client's transport, with Noise and Yamux
/// end to end, and pass the same behaviours and admission gate as direct ones.
pub fn build_swarm_with(
    key: identity::Keypair,
    listen: &[Multiaddr],
    traffic: Traffic,
    limits: ConnectionLimits,
    custom: Option<TransportFactory>,
    relay_server: bool,
) -> anyhow::Result<Swarm<Behaviour>> {
    build_swarm_mode(
        key,
        listen,
        traffic,
        limits,
        custom,
        relay_server,
        GossipMode::Node,
    )
}

/// [`build_swarm_with`] with gossipsub in `mode`: every other behaviour, the scoring, the
/// limits and the transport are the node's, so [`GossipMode::Signed`] is the node's
/// network stack with libp2p's signed gossip in place of the node's validation.
pub fn build_swarm_mode(
    key: identity::Keypair,
    listen: &[Multiaddr],
    traffic: Traffic,
    limits: ConnectionLimits,
    custom: Option<TransportFactory>,
    relay_server: bool,
    mode: GossipMode,
) -> anyhow::Result<Swarm<Behaviour>> {
    let gossip_traffic = traffic.clone();
    let (relay_transport, relay_client) = relay::client::new(key.public().to_peer_id());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let base = match custom {
                Some(build) => build(key, traffic).map_err(BoxError::from)?,
                None => transport(key, traffic)?,
            };
            Ok::<_, BoxError>(with_relay_client(relay_transport, key, base)?)
        })?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut gossipsub = gossipsub_behaviour(mode, key, gossip_traffic)?;
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
                relay: relay_server
                    .then(|| {
                        let mut server = relay::Behaviour::new(peer_id, relay_config());
                        // A relay node is public by configuration: it serves without
                        // waiting for AutoNAT to confirm an address.
                        server.set_status(Some(relay::Status::Enable));
                        gate::Gate::new(server)
                    })
                    .into(),
                relay_client: gate::Gate::new(relay_client),
                dcutr: gate::Gate::new(dcutr::Behaviour::new(peer_id)),
                // Probes every 5 s, up to 10 address candidates.
                autonat: gate::Gate::new(autonat::v2::client::Behaviour::default()),
                autonat_server: gate::Gate::new(autonat::v2::server::Behaviour::default()),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for addr in listen {
        swarm.listen_on(addr.clone())?;
    }
    Ok(swarm)
}

/// How long a connection through a relay may take to come up (reaching the relay, the
/// circuit, Noise and Yamux) before it is given up: a dial stuck on a relay that does not
/// answer would otherwise block every later dial of that peer.
const RELAYED_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `base` with the relay client's transport next to it: a relayed connection is upgraded
/// with Noise and Yamux over its circuit, as a direct TCP connection is.
fn with_relay_client(
    relayed: relay::client::Transport,
    key: &identity::Keypair,
    base: super::transport::BoxedTransport,
) -> Result<super::transport::BoxedTransport, noise::Error> {
    use libp2p::Transport;
    use libp2p::core::muxing::StreamMuxerBox;
    Ok(relayed
        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .timeout(RELAYED_CONNECT_TIMEOUT)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .or_transport(base)
        .map(|either, _| match either {
            futures::future::Either::Left(out) | futures::future::Either::Right(out) => out,
        })
        .boxed())
}
