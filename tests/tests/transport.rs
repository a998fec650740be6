//! Transports (issue 21): QUIC next to TCP. Real in-process nodes on loopback.

use alertmesh_node::config::Config;
use alertmesh_node::node::Node;
use alertmesh_protocol::Tlp;
use alertmesh_protocol::bootstrap::simple_plan;
use alertmesh_sim::files::write_node_files;
use alertmesh_sim::samples::sample_alert;
use alertmesh_tests::wait_for;
use anyhow::{Context, ensure};
use libp2p::Multiaddr;
use std::path::PathBuf;

/// A port free on both TCP and UDP, so a node's QUIC twin can take the same number.
fn free_tcp_and_udp_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no port free on both TCP and UDP")
}

/// Writes node `i`'s files listening on `port` (TCP, and QUIC on the same port if `quic`).
fn node_files(
    dir: &std::path::Path,
    network: &alertmesh_protocol::bootstrap::Network,
    i: usize,
    port: u16,
    quic: bool,
) -> anyhow::Result<PathBuf> {
    let (_, m) = network.nodes().nth(i).context("no such node")?;
    let path = write_node_files(
        &dir.join(i.to_string()),
        network,
        &m.key,
        &m.agreement,
        m.cert.as_bytes(),
    )?;
    let text = std::fs::read_to_string(&path)?
        .replace(
            "/ip4/127.0.0.1/tcp/0",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
        )
        .replace("quic = false", &format!("quic = {quic}"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The address a node's connection to `peer` uses, as the node reports it.
async fn address_of(node: &Node, peer: &libp2p::PeerId) -> anyhow::Result<Option<String>> {
    Ok(node
        .net
        .peers()
        .await?
        .into_iter()
        .find(|p| p.peer_id == peer.to_string() && p.admitted)
        .map(|p| p.address))
}

/// Nodes listen on QUIC next to TCP by default. A node dialling another's TCP bootstrap
/// address connects over QUIC when the other listens on QUIC too; a node with
/// `quic = false` (no QUIC listener) is still reached over TCP; alerts flow over both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_is_preferred_where_both_speak_it_and_tcp_still_works() -> anyhow::Result<()> {
    use rand_chacha03::rand_core::SeedableRng;
    let plan = simple_plan(3, alertmesh_node::clock::now_ms() - 60_000);
    let network = plan.build(&mut rand_chacha03::ChaCha20Rng::seed_from_u64(161));
    let dir = tempfile::tempdir()?;
    // Node 0 listens on TCP only; nodes 1 and 2 on both.
    let quic = [false, true, true];
    let mut nodes = Vec::new();
    let mut tcp_addrs: Vec<Multiaddr> = Vec::new();
    for (i, q) in quic.iter().enumerate() {
        let port = free_tcp_and_udp_port()?;
        let config = Config::load(&node_files(dir.path(), &network, i, port, *q)?)?;
        let node = Node::start(&config).await?;
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", node.peer_id).parse()?;
        for earlier in &tcp_addrs {
            node.dial(earlier.clone()).await?;
        }
        tcp_addrs.push(addr);
        nodes.push(node);
    }
    for n in &nodes {
        wait_for("every node to admit both others", || async {
            n.core
                .status()
                .await
                .is_ok_and(|s| s.admitted_peers == 2 && s.sender_keys.get("all") == Some(&3))
        })
        .await?;
    }
    // Node 2 dialled node 1's TCP address; both listen on QUIC: QUIC it is.
    let a21 = address_of(&nodes[2], &nodes[1].peer_id)
        .await?
        .context("2 lost 1")?;
    ensure!(
        a21.contains("/quic-v1"),
        "node 2 reaches node 1 over {a21}, not QUIC"
    );
    // Node 1 dialled node 0, which has no QUIC listener: the QUIC attempt fails, TCP holds.
    let a10 = address_of(&nodes[1], &nodes[0].peer_id)
        .await?
        .context("1 lost 0")?;
    ensure!(
        a10.contains("/tcp/"),
        "node 1 reaches node 0 over {a10}, not TCP"
    );
    eprintln!("node 2 -> node 1: {a21}; node 1 -> node 0: {a10}");

    // Alerts flow in every direction.
    let mut ids = Vec::new();
    for n in &nodes {
        ids.push(
            n.core
                .publish("all".into(), Tlp::Green, sample_alert("over QUIC and TCP"))
                .await??
                .id,
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        for (k, id) in ids.iter().enumerate() {
            wait_for(&format!("node {i} to hold node {k}'s alert"), || async {
                holds(n, id).await
            })
            .await?;
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

/// Whether the node's API lists the alert.
async fn holds(node: &Node, id: &alertmesh_protocol::EnvelopeId) -> bool {
    let client = alertmesh_node::client::Client::new(
        node.api_addr,
        zeroize::Zeroizing::new(alertmesh_sim::files::TOKEN.to_string()),
    );
    let id = id.to_hex();
    tokio::task::spawn_blocking(move || {
        client
            .get::<serde_json::Value>("/v1/alerts?limit=1000")
            .is_ok_and(|page| {
                page["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r["id"] == id.as_str()))
            })
    })
    .await
    .unwrap_or(false)
}

/// A relay node (`relay = true`) serves admitted members only: a stranger (no member
/// certificate) that connects and asks for a reservation is never granted one; the relay
/// server's handler stays closed behind the admission gate, and the node cuts the
/// stranger off for showing no certificate. (Members reserving: `tests/tests/nat.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_grants_no_reservation_to_a_stranger() -> anyhow::Result<()> {
    use futures::StreamExt;
    use libp2p::multiaddr::Protocol;
    use libp2p::swarm::SwarmEvent;
    use libp2p::{noise, relay, tcp, yamux};
    use rand_chacha03::rand_core::SeedableRng;

    let plan = simple_plan(2, alertmesh_node::clock::now_ms() - 60_000);
    let network = plan.build(&mut rand_chacha03::ChaCha20Rng::seed_from_u64(162));
    let dir = tempfile::tempdir()?;
    let port = free_tcp_and_udp_port()?;
    let path = node_files(dir.path(), &network, 0, port, false)?;
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, format!("relay = true\n{text}"))?;
    let relay_node = Node::start(&Config::load(&path)?).await?;
    ensure!(relay_node.net.reach().await?.relay_server, "not a relay");
    let relay_addr: Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", relay_node.peer_id).parse()?;

    let mut stranger = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_, client| client)?
        .build();
    stranger.listen_on(relay_addr.with(Protocol::P2pCircuit))?;
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match stranger.select_next_some().await {
                SwarmEvent::Behaviour(relay::client::Event::ReservationReqAccepted { .. }) => {
                    return Err(anyhow::anyhow!(
                        "the relay granted a stranger a reservation"
                    ));
                }
                SwarmEvent::ListenerClosed { reason, .. } => return Ok(format!("{reason:?}")),
                _ => {}
            }
        }
    })
    .await
    .context("the stranger's reservation neither ended nor was granted within 30 s")??;
    eprintln!("stranger's relay listener closed: {outcome}");
    relay_node.shutdown().await;
    Ok(())
}
