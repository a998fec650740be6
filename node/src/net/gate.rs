//! Admission in the network layer: [`Gate`] wraps a behaviour (gossipsub, Kademlia, the
//! relay server and client, DCUtR, AutoNAT) so that nothing of it reaches or leaves a peer
//! until the node has verified the peer's certificate. It looks at peers, never at
//! addresses: a connection through a relay (`/p2p-circuit`) starts closed like any other.
//!
//! Every connection gets the inner behaviour's own handler, but the gate does not poll it
//! until [`Gate::admit`] opens the peer. An unpolled handler opens no stream, writes
//! nothing and reads nothing: what the inner behaviour queues for the peer meanwhile (for
//! gossipsub, our subscription list) waits in its queue, and whatever the peer writes on
//! a stream it opened stays unread in the muxer's bounded window. When the gate opens, the
//! handler runs as if the connection had just come up, so the peer sees our subscriptions
//! at once; nothing scores the peer down, so no PRUNE backoff is left behind. A peer that
//! is never admitted is disconnected with every frame it sent unprocessed.
//!
//! Admission lasts while the peer is connected: a new connection after the last one
//! closed starts closed again.

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    FromSwarm, NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll};

/// A behaviour whose handlers stay closed until the peer is admitted.
pub struct Gate<B> {
    inner: B,
    admitted: HashSet<PeerId>,
    connections: HashMap<PeerId, HashSet<ConnectionId>>,
    opening: VecDeque<(PeerId, ConnectionId)>,
}

impl<B> Gate<B> {
    /// Wraps `inner`; every peer starts closed.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            admitted: HashSet::new(),
            connections: HashMap::new(),
            opening: VecDeque::new(),
        }
    }

    /// Opens the gate for `peer` on every connection it has and will have while connected.
    pub fn admit(&mut self, peer: PeerId) {
        if !self.admitted.insert(peer) {
            return;
        }
        for conn in self.connections.get(&peer).into_iter().flatten() {
            self.opening.push_back((peer, *conn));
        }
    }

    /// Whether `peer` is admitted.
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.admitted.contains(peer)
    }

    fn handler<H>(&mut self, peer: PeerId, conn: ConnectionId, inner: H) -> GateHandler<H> {
        self.connections.entry(peer).or_default().insert(conn);
        GateHandler {
            inner,
            open: self.admitted.contains(&peer),
        }
    }
}

impl<B> std::ops::Deref for Gate<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::ops::DerefMut for Gate<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

/// What the gate tells a connection's handler.
#[derive(Debug)]
pub enum GateIn<T> {
    /// An event of the inner behaviour for its handler.
    Inner(T),
    /// The peer is admitted: start running the inner handler.
    Open,
}

impl<B: NetworkBehaviour> NetworkBehaviour for Gate<B> {
    type ConnectionHandler = GateHandler<THandler<B>>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(self.handler(peer, connection_id, inner))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(self.handler(peer, connection_id, inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id,
            connection_id,
            remaining_established,
            ..
        }) = &event
        {
            if let Some(conns) = self.connections.get_mut(peer_id) {
                conns.remove(connection_id);
                if conns.is_empty() {
                    self.connections.remove(peer_id);
                }
            }
            if *remaining_established == 0 {
                self.admitted.remove(peer_id);
            }
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<B::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, conn)) = self.opening.pop_front() {
            return Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(conn),
                event: GateIn::Open,
            });
        }
        self.inner.poll(cx).map(|ev| ev.map_in(GateIn::Inner))
    }
}

/// A connection handler that runs its inner handler only once opened.
pub struct GateHandler<H> {
    inner: H,
    open: bool,
}

impl<H: ConnectionHandler> ConnectionHandler for GateHandler<H> {
    type FromBehaviour = GateIn<H::FromBehaviour>;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        // Closed: the inner handler neither reads, nor writes, nor opens a stream. The
        // connection task polls again after delivering `Open`.
        if !self.open {
            return Poll::Pending;
        }
        self.inner.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        if !self.open {
            return Poll::Ready(None);
        }
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {
            GateIn::Inner(ev) => self.inner.on_behaviour_event(ev),
            GateIn::Open => self.open = true,
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        self.inner.on_connection_event(event);
    }
}
