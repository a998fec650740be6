//! Link faults in-process: per-link latency (fixed or jittered), loss, bandwidth limits and
//! cuts, applied to the real libp2p connections of real nodes.
//!
//! # Where it sits
//!
//! [`transport`] builds a node's transport: a raw byte-stream transport (loopback TCP or
//! libp2p's memory transport), then this module's shaping, then Noise + Yamux exactly as
//! the daemon runs them ([`alertmesh_node::net::secure_transport`]). Every connection a
//! node *dials* to an address registered in its [`Links`] table (see
//! [`Links::set_address`]) is routed through a pump task that delays both directions of
//! that connection by the model of the link between the two nodes. The listening side does
//! nothing, so each link is shaped once. Dials to addresses the table does not know are
//! left as they are (the harness registers every node's listen addresses).
//!
//! # The model (per direction of a connection)
//!
//! Bytes are shaped in the chunks the sender writes (one read of at most
//! [`CHUNK`] bytes), in order:
//!
//! - **bandwidth**: a chunk occupies the wire for `len × 8 / bits_per_second`, after the
//!   previous chunk;
//! - **latency**: it then arrives after `latency + U(0, jitter)`; arrival times never go
//!   backwards (a byte stream is not reordered; jitter shows up as bursts);
//! - **loss**: TCP and Yamux streams are reliable, so dropping bytes would corrupt the
//!   stream instead of emulating the network. Loss is modelled as it shows above TCP: the
//!   chunk is split into segments of [`SEGMENT`] bytes, each lost with probability `loss`,
//!   and a chunk with a lost segment arrives one extra round trip (`2 × latency`) later,
//!   as after a fast retransmit. Everything behind it waits too (head-of-line blocking).
//!   Not modelled: retransmission timeouts (≥ 200 ms on Linux) after a tail loss,
//!   congestion-window shrinking, and loss of the handshake's SYN.
//! - **cut**: connections on a cut link are closed at once (both ends see the stream end)
//!   and new dials across it fail, until the link is healed.
//!
//! Randomness comes from a per-connection ChaCha RNG seeded from the table's seed, the two
//! node indices and a connection counter, so a run is repeatable up to task scheduling.

use futures::future::BoxFuture;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::MemoryTransport;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, Transport};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

/// Largest chunk shaped as one unit.
pub const CHUNK: usize = 16 * 1024;
/// Segment size for the loss model (a TCP MSS on Ethernet).
pub const SEGMENT: usize = 1448;
/// Chunks in flight per direction of a shaped connection (bounds its memory to
/// `QUEUE × CHUNK` bytes).
const QUEUE: usize = 64;
/// Buffer between the application side and the pump.
const PIPE: usize = 64 * 1024;

/// The model of one link (both directions alike).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// One-way base latency.
    #[serde(default, with = "millis")]
    pub latency: Duration,
    /// Extra one-way latency drawn uniformly from `0..=jitter` per chunk.
    #[serde(default, with = "millis")]
    pub jitter: Duration,
    /// Probability that one segment is lost (0.005 = 0.5 %).
    #[serde(default)]
    pub loss: f64,
    /// Bandwidth limit per direction in bits per second (`None`: unlimited).
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        if !(0.0..=3_600_000.0).contains(&ms) {
            return Err(serde::de::Error::custom(format!(
                "{ms} ms is not a latency (0 to 3600000 ms)"
            )));
        }
        Ok(Duration::from_secs_f64(ms / 1000.0))
    }
}

impl LinkSpec {
    /// A link with no delay, loss or limit (the default).
    pub fn ideal() -> Self {
        Self::default()
    }
    /// A link with a fixed one-way latency.
    pub fn latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }
    /// Adds jitter: `0..=jitter` on top of the latency, per chunk.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }
    /// Sets the segment loss probability (`0.0..=1.0`).
    pub fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }
    /// Limits the bandwidth per direction.
    pub fn with_bandwidth(mut self, bits_per_second: u64) -> Self {
        self.bandwidth_bps = Some(bits_per_second);
        self
    }
    /// Whether this link changes nothing (its connections are not pumped).
    pub fn is_ideal(&self) -> bool {
        self.latency.is_zero()
            && self.jitter.is_zero()
            && self.loss <= 0.0
            && self.bandwidth_bps.is_none()
    }
    /// Checks the numbers; returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!("loss {} is not a probability (0 to 1)", self.loss));
        }
        if self.bandwidth_bps == Some(0) {
            return Err("bandwidth_bps 0 would never deliver a byte".into());
        }
        Ok(())
    }
}

/// How every link of a network is shaped unless set one by one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkProfile {
    /// Every link the same.
    Uniform(LinkSpec),
    /// The `wan` preset: each link's latency drawn once (per seed and node pair)
    /// uniformly from `min..=max`, with `loss` on every link.
    Range {
        /// Smallest one-way latency.
        min: Duration,
        /// Largest one-way latency.
        max: Duration,
        /// Segment loss.
        loss: f64,
    },
}

impl LinkProfile {
    /// The `wan` preset: 30–150 ms one-way links with 0.5 % loss.
    pub const WAN: Self = Self::Range {
        min: Duration::from_millis(30),
        max: Duration::from_millis(150),
        loss: 0.005,
    };

    fn spec(&self, seed: u64, a: usize, b: usize) -> LinkSpec {
        match *self {
            Self::Uniform(spec) => spec,
            Self::Range { min, max, loss } => {
                let mut rng = rng_for(seed, a, b, u64::MAX);
                let span = max.saturating_sub(min);
                LinkSpec {
                    latency: min + span.mul_f64(rng.r#gen::<f64>()),
                    jitter: Duration::ZERO,
                    loss,
                    bandwidth_bps: None,
                }
            }
        }
    }
}

impl Default for LinkProfile {
    fn default() -> Self {
        Self::Uniform(LinkSpec::ideal())
    }
}

fn rng_for(seed: u64, a: usize, b: usize, n: u64) -> rand_chacha03::ChaCha8Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(a as u64).to_le_bytes());
    s[16..24].copy_from_slice(&(b as u64).to_le_bytes());
    s[24..].copy_from_slice(&n.to_le_bytes());
    rand_chacha03::ChaCha8Rng::from_seed(s)
}

/// A link between nodes `a` and `b` (in either order).
fn key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

#[derive(Debug, Default)]
struct State {
    seed: u64,
    profile: LinkProfile,
    addrs: HashMap<Multiaddr, usize>,
    specs: HashMap<(usize, usize), LinkSpec>,
    /// Per link, `true` while it is cut; shaped connections watch it.
    cuts: HashMap<(usize, usize), watch::Sender<bool>>,
    connections: u64,
}

/// The link table of one simulated network, shared by every node's transport: which
/// address belongs to which node, how each link is shaped, which links are cut. Cheap to
/// clone. Nodes are numbered `0..n` by the caller.
#[derive(Debug, Clone, Default)]
pub struct Links(Arc<Mutex<State>>);

impl Links {
    /// A table where every link follows `profile`; `seed` fixes the random draws.
    pub fn new(profile: LinkProfile, seed: u64) -> Self {
        Self(Arc::new(Mutex::new(State {
            seed,
            profile,
            ..State::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps half-updated.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `addr` (a listen address, `/p2p/..` ignored) belongs to node `node`.
    pub fn set_address(&self, node: usize, addr: &Multiaddr) {
        self.state().addrs.insert(transport_part(addr), node);
    }

    /// Forgets every address of `node` (it stopped; a restart registers new ones).
    pub fn forget_addresses(&self, node: usize) {
        self.state().addrs.retain(|_, n| *n != node);
    }

    /// Shapes the link between `a` and `b` by `spec` from now on (connections already open
    /// keep the model they started with).
    pub fn set(&self, a: usize, b: usize, spec: LinkSpec) {
        self.state().specs.insert(key(a, b), spec);
    }

    /// The model of the link between `a` and `b`.
    pub fn spec(&self, a: usize, b: usize) -> LinkSpec {
        let st = self.state();
        let k = key(a, b);
        st.specs
            .get(&k)
            .copied()
            .unwrap_or_else(|| st.profile.spec(st.seed, k.0, k.1))
    }

    /// Cuts the link between `a` and `b`: its shaped connections close, new dials fail.
    pub fn cut(&self, a: usize, b: usize) {
        self.set_cut(a, b, true);
    }

    /// Heals the link between `a` and `b` (the nodes must dial again).
    pub fn heal(&self, a: usize, b: usize) {
        self.set_cut(a, b, false);
    }

    /// Whether the link between `a` and `b` is cut.
    pub fn is_cut(&self, a: usize, b: usize) -> bool {
        self.state()
            .cuts
            .get(&key(a, b))
            .is_some_and(|c| *c.borrow())
    }

    fn set_cut(&self, a: usize, b: usize, cut: bool) {
        let mut st = self.state();
        let sender = st
            .cuts
            .entry(key(a, b))
            .or_insert_with(|| watch::channel(false).0);
        sender.send_replace(cut);
    }

    fn node_of(&self, addr: &Multiaddr) -> Option<usize> {
        self.state().addrs.get(&transport_part(addr)).copied()
    }

    /// What a dial from `me` to `remote` gets: `Err` if the link is cut, else the model,
    /// the cut watch and an RNG.
    fn open(&self, me: usize, remote: usize) -> Result<Shaping, LinkError> {
        let k = key(me, remote);
        let spec = self.spec(me, remote);
        let mut st = self.state();
        let cut = st
            .cuts
            .entry(k)
            .or_insert_with(|| watch::channel(false).0)
            .subscribe();
        if *cut.borrow() {
            return Err(LinkError::Cut(me, remote));
        }
        st.connections += 1;
        let rng = rng_for(st.seed, me, remote, st.connections);
        Ok(Shaping { spec, cut, rng })
    }
}

/// The IP/port or memory part of an address (what a dial names).
fn transport_part(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| {
            matches!(
                p,
                Protocol::Ip4(_) | Protocol::Ip6(_) | Protocol::Tcp(_) | Protocol::Memory(_)
            )
        })
        .collect()
}

/// Why a shaped dial failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The link between the two nodes is cut.
    #[error("link between node {0} and node {1} is cut")]
    Cut(usize, usize),
}

struct Shaping {
    spec: LinkSpec,
    cut: watch::Receiver<bool>,
    rng: rand_chacha03::ChaCha8Rng,
}

/// Which raw transport the nodes run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RawTransport {
    /// Loopback TCP (what the daemon runs).
    #[default]
    Tcp,
    /// libp2p's in-process memory transport (`/memory/<port>` addresses).
    Memory,
}

/// The stream a shaped transport hands to Noise: the raw stream itself, or the application
/// end of a pump.
pub type LinkStream<S> =
    futures::future::Either<S, tokio_util::compat::Compat<tokio::io::DuplexStream>>;

/// `raw`, with node `me`'s dials shaped by `links` (see the module docs), under Noise +
/// Yamux with its bytes counted in `traffic`.
fn shaped<T>(
    raw: T,
    links: Links,
    me: usize,
    key: &libp2p::identity::Keypair,
    traffic: alertmesh_node::net::Traffic,
) -> anyhow::Result<alertmesh_node::net::BoxedTransport>
where
    T: Transport + Send + Unpin + 'static,
    T::Output: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    let t = raw.and_then(
        move |stream,
              point: ConnectedPoint|
              -> BoxFuture<'static, Result<LinkStream<T::Output>, LinkError>> {
            let shaping = match &point {
                ConnectedPoint::Dialer { address, .. } => links
                    .node_of(address)
                    .filter(|&r| r != me)
                    .map(|r| links.open(me, r)),
                ConnectedPoint::Listener { .. } => None,
            };
            Box::pin(async move {
                match shaping {
                    None => Ok(futures::future::Either::Left(stream)),
                    Some(Err(e)) => Err(e),
                    // Ideal links are pumped too, so that a cut closes them.
                    Some(Ok(s)) => Ok(futures::future::Either::Right(pump(stream, s))),
                }
            })
        },
    );
    Ok(alertmesh_node::net::secure_transport(t, key, traffic)?)
}

/// Builds node `me`'s transport: `raw`, shaped by `links`, under Noise + Yamux with its
/// bytes counted, for [`alertmesh_node::node::StartOptions::transport`].
pub fn transport(
    raw: RawTransport,
    links: Links,
    me: usize,
) -> alertmesh_node::net::TransportFactory {
    Box::new(move |key, traffic| match raw {
        RawTransport::Tcp => shaped(
            libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true)),
            links,
            me,
            key,
            traffic,
        ),
        RawTransport::Memory => shaped(MemoryTransport::default(), links, me, key, traffic),
    })
}

/// Spawns the pump of one connection; returns the application's end.
fn pump<S>(stream: S, shaping: Shaping) -> tokio_util::compat::Compat<tokio::io::DuplexStream>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    let (app, mine) = tokio::io::duplex(PIPE);
    let Shaping {
        spec,
        mut cut,
        mut rng,
    } = shaping;
    let rng2 = rand_chacha03::ChaCha8Rng::seed_from_u64(rng.r#gen());
    tokio::spawn(async move {
        let (net_r, net_w) = tokio::io::split(stream.compat());
        let (app_r, app_w) = tokio::io::split(mine);
        let both = async {
            tokio::join!(
                direction(app_r, net_w, spec, rng),
                direction(net_r, app_w, spec, rng2)
            )
        };
        tokio::select! {
            _ = both => {}
            // A cut (or the table dropped): dropping both ends closes the connection.
            _ = cut.wait_for(|c| *c) => {}
        }
    });
    app.compat()
}

/// One direction: read chunks, stamp each with its arrival time, write them out then.
async fn direction<R, W>(mut from: R, mut to: W, spec: LinkSpec, mut rng: rand_chacha03::ChaCha8Rng)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let reader = async move {
        let mut wire_free = Instant::now();
        let mut last = Instant::now();
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.truncate(n);
            let now = Instant::now();
            let start = wire_free.max(now);
            wire_free = start
                + spec.bandwidth_bps.map_or(Duration::ZERO, |bps| {
                    Duration::from_secs_f64(n as f64 * 8.0 / bps as f64)
                });
            let mut delay = spec.latency;
            if !spec.jitter.is_zero() {
                delay += spec.jitter.mul_f64(rng.r#gen::<f64>());
            }
            if spec.loss > 0.0 {
                let segments = n.div_ceil(SEGMENT) as i32;
                let lost = 1.0 - (1.0 - spec.loss).powi(segments);
                if rng.r#gen::<f64>() < lost {
                    delay += 2 * spec.latency;
                }
            }
            last = last.max(wire_free + delay);
            if tx.send((last, buf)).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() || to.flush().await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wan_links_are_in_range_and_stable() {
        let links = Links::new(LinkProfile::WAN, 7);
        for a in 0..10 {
            for b in 0..10 {
                let s = links.spec(a, b);
                assert!(s.latency >= Duration::from_millis(30));
                assert!(s.latency <= Duration::from_millis(150));
                assert_eq!(s.loss, 0.005);
                assert_eq!(s, links.spec(b, a));
            }
        }
    }

    #[test]
    fn cut_refuses_and_heal_allows() {
        let links = Links::default();
        links.cut(1, 2);
        assert!(links.is_cut(2, 1));
        assert!(matches!(links.open(2, 1), Err(LinkError::Cut(2, 1))));
        links.heal(2, 1);
        assert!(links.open(1, 2).is_ok());
    }

    #[test]
    fn spec_toml_in_milliseconds() {
        let s: LinkSpec =
            toml::from_str("latency = 40\njitter = 10\nloss = 0.01").unwrap_or_default();
        assert_eq!(s.latency, Duration::from_millis(40));
        assert_eq!(s.jitter, Duration::from_millis(10));
        assert!(LinkSpec::ideal().with_loss(2.0).check().is_err());
    }

    /// Bytes through a shaped pipe arrive in order and no earlier than the latency.
    #[tokio::test]
    async fn pump_delays_and_keeps_order() -> anyhow::Result<()> {
        use futures::{AsyncReadExt as _, AsyncWriteExt as _};
        let (a, b) = tokio::io::duplex(1024);
        let links = Links::new(
            LinkProfile::Uniform(LinkSpec::latency(Duration::from_millis(30)).with_loss(0.5)),
            1,
        );
        let shaping = links.open(0, 1)?;
        let mut app = pump(a.compat(), shaping);
        let mut far = b.compat();
        let t0 = Instant::now();
        for i in 0..20u8 {
            app.write_all(&[i; 100]).await?;
            app.flush().await?;
        }
        let mut got = vec![0u8; 2000];
        far.read_exact(&mut got).await?;
        assert!(t0.elapsed() >= Duration::from_millis(30));
        for (i, c) in got.chunks(100).enumerate() {
            assert!(c.iter().all(|&x| x as usize == i));
        }
        links.cut(0, 1);
        let mut rest = Vec::new();
        let n = far.read_to_end(&mut rest).await?;
        assert_eq!(n, 0);
        Ok(())
    }
}
