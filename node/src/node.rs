//! Starting a node: load keys and charter, open the database, start the swarm, the core
//! and the API. [`Node::start`] is what `alertmesh run` and the tests call.

use crate::api;
use crate::config::Config;
use crate::core::{Core, CoreHandle, CoreParts, Identity};
use crate::files;
use crate::metrics::Metrics;
use crate::net::{self, NetHandle};
use crate::store;
use alertmesh_protocol::CharterChain;
use anyhow::Context;
use libp2p::{Multiaddr, PeerId};
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How long each part of a node may take to stop before it is aborted.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A running node.
pub struct Node {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Core handle (publish, status, live alerts).
    pub core: CoreHandle,
    /// Network handle.
    pub net: NetHandle,
    /// The API's bound address.
    pub api_addr: SocketAddr,
    /// Metrics.
    pub metrics: Metrics,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    writer: store::Writer,
}

/// The first and the longest wait before a bootstrap peer that is not connected is
/// dialled again; the wait doubles after each dial that leaves it unconnected. The longest
/// stays below Kademlia's 30 s refresh, so a restarted seed is found by its redial first.
pub const REDIAL_BACKOFF: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(20),
);

/// The bootstrap addresses grouped by the peer they name (through a relay, the last id
/// of the address), in config order.
fn bootstrap_targets(bootstrap: &[Multiaddr]) -> Vec<(String, Vec<Multiaddr>)> {
    let mut targets: Vec<(String, Vec<Multiaddr>)> = Vec::new();
    for a in bootstrap {
        let Some(id) = net::reach::target_peer(a).map(|p| p.to_string()) else {
            continue;
        };
        match targets.iter_mut().find(|(t, _)| *t == id) {
            Some((_, addrs)) => addrs.push(a.clone()),
            None => targets.push((id, vec![a.clone()])),
        }
    }
    targets
}

/// Dials every bootstrap peer that is not connected (down at start, restarted, cut off)
/// again, with a wait of [`REDIAL_BACKOFF`] per peer that doubles while the peer stays
/// away and starts over once it is connected, so a peer that lists nobody itself is found
/// again and a dead address is not hammered. A peer's absence is logged once. A peer
/// listed at several addresses (say, through two relays) is dialled at all of them in one
/// attempt, so a dead first address does not hide the others.
async fn redial_bootstrap(
    net: NetHandle,
    bootstrap: Vec<Multiaddr>,
    mut shutdown: watch::Receiver<bool>,
) {
    use tokio::time::Instant;
    struct Target {
        id: String,
        addrs: Vec<Multiaddr>,
        wait: std::time::Duration,
        due: Instant,
        away: bool,
    }
    let (first, longest) = REDIAL_BACKOFF;
    // The start dialled them already.
    let mut targets: Vec<Target> = bootstrap_targets(&bootstrap)
        .into_iter()
        .map(|(id, addrs)| Target {
            id,
            addrs,
            wait: first,
            due: Instant::now() + first,
            away: false,
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(first);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let Ok(peers) = net.peers().await else {
            return;
        };
        let connected: std::collections::HashSet<String> =
            peers.into_iter().map(|p| p.peer_id).collect();
        let now = Instant::now();
        for t in &mut targets {
            if connected.contains(&t.id) {
                if t.away {
                    tracing::info!(peer = %t.id, "bootstrap peer connected again");
                }
                (t.wait, t.due, t.away) = (first, now + first, false);
                continue;
            }
            if now < t.due {
                continue;
            }
            if !t.away {
                tracing::warn!(peer = %t.id, "bootstrap peer not connected: redialling with backoff");
                t.away = true;
            }
            if net
                .send(net::NetCommand::Dial(t.addrs.clone()))
                .await
                .is_err()
            {
                return;
            }
            t.due = now + t.wait;
            t.wait = (t.wait * 2).min(longest);
        }
    }
}

/// How to start a node beyond its config: hooks for simulators and tests.
#[derive(Default)]
pub struct StartOptions {
    /// The transport to run instead of the node's own TCP + QUIC (for example libp2p's
    /// memory transport, or TCP with emulated link faults); the config's `listen`
    /// addresses must suit it.
    pub transport: Option<net::TransportFactory>,
    /// Benchmarks only: store alerts without the observable index, to measure what the
    /// index costs ingest. Lookup, search and correlations then miss every alert.
    #[doc(hidden)]
    pub without_observable_index: bool,
}

impl std::fmt::Debug for StartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartOptions")
            .field("transport", &self.transport.as_ref().map(|_| "custom"))
            .field("without_observable_index", &self.without_observable_index)
            .finish()
    }
}

impl Node {
    /// Starts every part of a node from its config.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        Self::start_with(config, StartOptions::default()).await
    }

    /// [`Node::start`] with `options` (a custom transport).
    pub async fn start_with(config: &Config, options: StartOptions) -> anyhow::Result<Self> {
        let key = crate::files::load_node_key(&config.keys.node_key)?;
        let agreement = crate::files::load_agreement_key(&config.keys.agreement_key)?;
        let cert = files::load_cert(&config.keys.cert)?;
        if cert.cert().node_sign_pub != key.public() {
            anyhow::bail!(
                "certificate {} is for node key {}, but {} holds {}; check [keys] in {}",
                config.keys.cert.display(),
                cert.cert().node_sign_pub.short(),
                config.keys.node_key.display(),
                key.public().short(),
                config.source.display()
            );
        }
        if cert.cert().node_agree_pub != agreement.public() {
            anyhow::bail!(
                "certificate {} does not match the agreement key {}",
                config.keys.cert.display(),
                config.keys.agreement_key.display()
            );
        }
        let genesis = files::load_charter(&config.genesis)?;
        let charters =
            CharterChain::from_genesis(genesis, &config.genesis_hash).with_context(|| {
                format!(
                    "genesis charter {} is not acceptable",
                    config.genesis.display()
                )
            })?;
        let token = files::load_token(&config.api.token_file)?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let network = charters.current().charter().network_id;
        let conn = store::open(&config.data_dir, &network)?;
        let loaded = store::load(&conn, &config.data_dir)?;
        let writer = if options.without_observable_index {
            store::spawn_writer_unindexed(conn)
        } else {
            store::spawn_writer(conn)
        };
        // Keep the genesis and this node's certificate in the database, so that the data
        // directory can be audited on its own (`alertmesh audit verify <data_dir>`).
        if let Some(genesis) = charters.history().first() {
            let identity = vec![
                store::Write::Charter {
                    version: 1,
                    hash: *genesis.hash().as_bytes(),
                    bytes: genesis.as_bytes().to_vec(),
                },
                store::Write::Cert {
                    node: cert.cert().node_sign_pub,
                    bytes: cert.as_bytes().to_vec(),
                },
            ];
            drop(writer.write_all(identity).await?);
        }
        let reader = store::open_reader(&config.data_dir)?;

        let metrics = Metrics::new();
        let keypair = net::keypair(&key)?;
        let peer_id = keypair.public().to_peer_id();
        let (net, commands) = net::channel();
        let mut swarm = net::build_swarm_with(
            keypair,
            &config.listen,
            net.traffic(),
            config.limits.clone(),
            options.transport,
            config.relay,
        )?;
        // Addresses others can reach us on, as configured; AutoNAT v2 adds the ones it
        // confirms. A relay hands them to the members it holds reservations for.
        for addr in config.external_addrs() {
            swarm.add_external_address(addr);
        }
        // QUIC twins of the TCP addresses are a bonus: a port taken on UDP only is logged.
        for addr in config.listen_addrs().into_iter().skip(config.listen.len()) {
            if let Err(e) = swarm.listen_on(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot listen on QUIC; TCP only");
            }
        }
        let (events_tx, events_rx) = net::event_channels();
        let (shutdown, shutdown_rx) = watch::channel(false);

        let org = cert.cert().org_id.to_string();
        let me = Identity {
            key,
            agreement,
            cert,
        };
        let (core, core_handle, requests) = Core::new(CoreParts {
            me,
            charters,
            writer: writer.clone(),
            reader,
            data_dir: config.data_dir.clone(),
            loaded,
            net: net.clone(),
            metrics: metrics.clone(),
            sync_period: config.sync_interval,
            max_peers: config.max_peers,
            request_limits: config.request_limits,
        })?;

        let listener = tokio::net::TcpListener::bind(config.api.bind)
            .await
            .with_context(|| {
                format!(
                    "cannot bind the API to {} (config {})",
                    config.api.bind,
                    config.source.display()
                )
            })?;
        let api_addr = listener.local_addr()?;
        let router = api::router(
            core_handle.clone(),
            net.clone(),
            metrics.clone(),
            token,
            config,
        );

        let mut tasks = Vec::new();
        // Every task of this node logs inside one span, so that the interleaved logs of
        // many nodes in one process (tests, the simulator) can be told apart.
        let id = peer_id.to_base58();
        let span = tracing::info_span!("node", %org, peer = &id[id.len().saturating_sub(6)..]);
        tasks.push(tokio::spawn(
            net::run(
                swarm,
                commands,
                events_tx,
                shutdown_rx.clone(),
                metrics.clone(),
                config.relays.clone(),
            )
            .instrument(span.clone()),
        ));
        tasks.push(tokio::spawn(
            core.run(events_rx, requests, shutdown_rx.clone())
                .instrument(span.clone()),
        ));
        let mut api_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(
            async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                    let _ = api_shutdown.changed().await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "API server failed");
                }
            }
            .instrument(span.clone()),
        ));
        // Peers listed through a relay wait for the first redial, by when the relays may be
        // connected and admitted.
        for (_, addrs) in bootstrap_targets(&config.bootstrap) {
            let direct: Vec<Multiaddr> = addrs
                .into_iter()
                .filter(|a| !net::reach::is_relayed(a))
                .collect();
            if !direct.is_empty() {
                net.send(net::NetCommand::Dial(direct)).await?;
            }
        }
        tasks.push(tokio::spawn(
            redial_bootstrap(net.clone(), config.bootstrap.clone(), shutdown_rx.clone())
                .instrument(span.clone()),
        ));
        span.in_scope(|| tracing::info!(%peer_id, api = %api_addr, "node started"));
        Ok(Self {
            peer_id,
            core: core_handle,
            net,
            api_addr,
            metrics,
            shutdown,
            tasks,
            writer,
        })
    }

    /// Resolves only when the node cannot go on: its database failed the whole-file check
    /// the writer runs after start, before writing anything. The error names the file.
    pub async fn failed(&self) -> anyhow::Error {
        match self.writer.checked().await {
            Err(reason) => anyhow::anyhow!(reason),
            Ok(()) => std::future::pending().await,
        }
    }

    /// The swarm's listen addresses (with `/p2p/<peer id>` appended).
    pub async fn listen_addrs(&self) -> anyhow::Result<Vec<Multiaddr>> {
        Ok(self
            .net
            .listen_addrs()
            .await?
            .into_iter()
            .map(|a| a.with(libp2p::multiaddr::Protocol::P2p(self.peer_id)))
            .collect())
    }

    /// Dials another node.
    pub async fn dial(&self, addr: Multiaddr) -> anyhow::Result<()> {
        self.net.send(net::NetCommand::Dial(vec![addr])).await
    }

    /// Stops every task and waits for them (pending writes are flushed).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for mut t in self.tasks {
            // Open live streams (SSE) would keep the API's graceful shutdown waiting.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}
