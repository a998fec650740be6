//! `admission-bench`: how long a peer that will not be admitted stays connected to a node.
//!
//! ```text
//! cargo run --release -p alertmesh-tests --bin admission-bench -- [--runs 10]
//! ```
//!
//! A two-node network of real nodes (in this process: TCP, Noise, Yamux, SQLite) and, per
//! run, three peers that dial node 0:
//!
//! - **bad certificate**: speaks the request protocol and sends a hello whose certificate
//!   names a member org but is signed by a stranger's root; timed from the connection to
//!   the `Refused` answer and to the disconnection;
//! - **no request protocol**: TCP + Noise + Yamux + ping only; timed from the connection
//!   to the disconnection;
//! - **silent**: speaks the request protocol but sends no hello and never answers the
//!   node's; timed from the connection to the disconnection (the 5 s admission timeout).
//!
//! Prints the median and range of each in milliseconds. Every wait is bounded.

use alertmesh_protocol::OrgRootKey;
use alertmesh_protocol::bootstrap::{new_node, simple_plan};
use alertmesh_protocol::wire::{self, Hello};
use alertmesh_sim::harness::Builder;
use alertmesh_sim::hostile::{Answer, HostilePeer, Seen};
use anyhow::{Context, bail};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, ping, tcp, yamux};
use rand::rngs::OsRng;
use std::time::{Duration, Instant};

/// Longest any one peer may take to be disconnected.
const LIMIT: Duration = Duration::from_secs(20);

fn main() -> anyhow::Result<()> {
    let mut runs = 10usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().context("--runs needs a value")?.parse()?,
            other => bail!("unknown argument {other:?}; usage: admission-bench [--runs N]"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(runs))
}

async fn bench(runs: usize) -> anyhow::Result<()> {
    let now = alertmesh_node::clock::now_ms();
    let net = Builder::from_plan(simple_plan(2, now - 60_000))
        .seed(7)
        .start()
        .await?;
    let addr = net.addr(&net.node_names()[0]).await?;
    let network_id = net.network().genesis.charter().network_id;
    let member = net.network().orgs[1].member.org_id.clone();
    let (mut refused, mut bad_cert, mut no_protocol, mut silent) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        // Bad certificate.
        let stranger = OrgRootKey::generate(&mut OsRng);
        let me = new_node(
            &network_id,
            &member,
            &stranger,
            1000 + run as u64,
            now - 1000,
            now + 3_600_000,
            &mut OsRng,
        );
        let hello = Hello {
            cert: me.cert.as_bytes().to_vec(),
        };
        let mut peer = HostilePeer::start(alertmesh_node::net::keypair(&me.key)?, Some(hello))?;
        peer.dial(addr.clone()).await?;
        let connected = wait(&mut peer, |s| matches!(s, Seen::Connected(_))).await?;
        let answered = wait(&mut peer, |s| {
            matches!(s, Seen::Response(_, b) if matches!(wire::Response::decode(b), Ok(wire::Response::Refused(_))))
        })
        .await?;
        let closed = wait(&mut peer, |s| matches!(s, Seen::Disconnected(_))).await?;
        refused.push(ms(answered - connected));
        bad_cert.push(ms(closed - connected));

        // No request protocol at all.
        no_protocol.push(ms(ping_only_peer(addr.clone()).await?));

        // Silent: speaks the protocol, never says hello, never answers.
        let key = libp2p::identity::Keypair::generate_ed25519();
        let mut peer = HostilePeer::start_with(key, None, Box::new(|_, _| Answer::Drop))?;
        peer.dial(addr.clone()).await?;
        let connected = wait(&mut peer, |s| matches!(s, Seen::Connected(_))).await?;
        let closed = wait(&mut peer, |s| matches!(s, Seen::Disconnected(_))).await?;
        silent.push(ms(closed - connected));
        eprintln!(
            "run {}: refused after {:.0} ms, bad certificate closed after {:.0} ms, no protocol {:.0} ms, silent {:.0} ms",
            run + 1,
            refused[run],
            bad_cert[run],
            no_protocol[run],
            silent[run]
        );
    }
    println!("connect to disconnect, {runs} runs (median, min–max, ms):");
    for (what, v) in [
        ("bad certificate: Refused answer", &mut refused),
        ("bad certificate: disconnected", &mut bad_cert),
        ("no request protocol: disconnected", &mut no_protocol),
        ("silent (no hello): disconnected", &mut silent),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "  {what:<36} {:>7.0}   {:.0}–{:.0}",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
    net.shutdown().await;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Waits for an event of the peer and returns when it was seen.
async fn wait(
    peer: &mut HostilePeer,
    mut pred: impl FnMut(&Seen) -> bool,
) -> anyhow::Result<Instant> {
    tokio::time::timeout(LIMIT, async {
        loop {
            match peer.seen.recv().await {
                Some(s) if pred(&s) => return Ok(Instant::now()),
                Some(_) => {}
                None => bail!("the peer stopped"),
            }
        }
    })
    .await
    .context("timed out")?
}

/// Dials with a peer that speaks only ping; returns how long the connection lasted.
async fn ping_only_peer(addr: libp2p::Multiaddr) -> anyhow::Result<Duration> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| ping::Behaviour::default())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.dial(addr)?;
    tokio::time::timeout(LIMIT, async {
        let mut since = None;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => since = Some(Instant::now()),
                SwarmEvent::ConnectionClosed { .. } => {
                    return since
                        .map(|s| s.elapsed())
                        .context("closed before established");
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial failed: {error}"),
                _ => {}
            }
        }
    })
    .await
    .context("timed out")?
}
