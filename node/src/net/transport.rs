//! Transports: TCP (+ QUIC) with Noise and Yamux, byte counters, and the node key as a
//! libp2p identity.

use libp2p::{Multiaddr, PeerId, identity, noise, tcp, yamux};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a QUIC handshake may take before the dial falls back to TCP.
const QUIC_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Counts one gossip message id (the `message_id_fn` of [`super::gossipsub_settings`]).
    pub fn count_message_id(&self) {
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
pub(super) fn transport(
    key: &identity::Keypair,
    traffic: Traffic,
) -> Result<BoxedTransport, noise::Error> {
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
