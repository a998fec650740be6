//! `ingest` and `catchup`: one daemon (org `sink`) flooded by a member peer of org `flood`
//! running in this process ([`crate::flooder`]); with `catchup`, a second sink node then
//! syncs everything from the first.

use crate::Opts;
use crate::common::{
    Daemon, alertmesh_binary, bench_dir, column, cpu_delta, free_port, metric, metrics_text,
    print_table, rss_kib, series, status, thread_cpu, wait_until, write_config, write_private,
};
use crate::flooder::{FloodCmd, FloodStats, Flooder};
use crate::verify::{RAW_VERIFY_CPU_RATE, verify_rates};
use alertmesh_node::client::Client;
use alertmesh_node::config::Config;
use alertmesh_node::files::write_key;
use alertmesh_node::net;
use alertmesh_protocol::alert::{Alert, Observable, Severity};
use alertmesh_protocol::bootstrap::{Network, NetworkPlan, OrgPlan, TopicPlan};
use alertmesh_protocol::keyfile::SecretKeyFile;
use alertmesh_protocol::{
    AgreementKey, Content, Draft, EnvelopeId, KeyPackage, Kind, Limits, NodeKey, OrgId, SenderKey,
    SignedEnvelope, Tlp, TopicId,
};
use anyhow::{Context, bail};
use libp2p::Multiaddr;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The org of the daemon under test.
const SINK: &str = "sink";
/// The org of the flooding peer.
const FLOOD: &str = "flood";
/// The one topic: `flood` publishes, both orgs read.
pub const BENCH_TOPIC: &str = "bench/flood";

/// Two governor orgs, one topic, no rate limit; the sink has a second node for `catchup`.
pub fn ingest_plan() -> NetworkPlan {
    let org = |s: &str| OrgId(s.to_string());
    NetworkPlan {
        network_name: "node-bench ingest (TEST-ONLY KEYS)".into(),
        orgs: [SINK, FLOOD]
            .iter()
            // The sink's second node starts only for `catchup`.
            .map(|o| OrgPlan::new(o, if *o == SINK { 2 } else { 1 }))
            .collect(),
        topics: vec![TopicPlan {
            name: BENCH_TOPIC.into(),
            readers: vec![org(SINK), org(FLOOD)],
            publishers: vec![org(FLOOD)],
            max_tlp: Tlp::Amber,
        }],
        threshold: 1,
        // The charter must not rate-limit the flood.
        limits: Limits {
            rate_per_org_per_minute: u32::MAX / 2,
            rate_burst: u32::MAX / 2,
            ..Default::default()
        },
        now_ms: alertmesh_node::clock::now_ms() - 60_000,
        cert_lifetime_ms: 24 * 3600 * 1000,
    }
}

/// The sink's API token.
const TOKEN: &str = "node-bench-token-0123456789abcdef";

/// Writes the files of the sink org's node `index`, dialling `bootstrap`; returns its
/// config path and p2p address.
pub fn write_sink(
    dir: &Path,
    network: &Network,
    index: usize,
    bootstrap: &[String],
) -> anyhow::Result<(PathBuf, Multiaddr)> {
    let node = &network.orgs[0].nodes[index];
    std::fs::create_dir_all(dir)?;
    let comment = "node-bench, test only";
    let key = SecretKeyFile::NodeSign(NodeKey::from_secret_bytes(&node.key.secret_bytes()));
    write_key(&key, &dir.join("node.key"), comment)?;
    let agreement = node.agreement.secret_bytes();
    let agreement = SecretKeyFile::NodeAgreement(AgreementKey::from_secret_bytes(&agreement));
    write_key(&agreement, &dir.join("agreement.key"), comment)?;
    std::fs::write(dir.join("node.cert"), node.cert.as_bytes())?;
    write_private(&dir.join("api.token"), TOKEN.as_bytes())?;
    std::fs::write(dir.join("charter-v1.bin"), network.genesis.as_bytes())?;
    let p2p = free_port()?;
    let path = write_config(
        dir,
        p2p,
        free_port()?,
        bootstrap,
        &network.genesis_hash().to_hex(),
        "charter-v1.bin",
    )?;
    let peer = net::peer_id_of(&node.key.public()).context("bad sink key")?;
    Ok((
        path,
        format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer}").parse()?,
    ))
}

/// The flooder's key package (seq 1) and `count` alerts (seq 2..) of about `size` bytes.
pub fn presign(
    network: &Network,
    count: usize,
    size: usize,
) -> anyhow::Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut rng = rand::rngs::OsRng;
    let charter = network.genesis.charter();
    let net_id = charter.network_id;
    let topic = TopicId::derive(&net_id, BENCH_TOPIC);
    let flood = &network.orgs[1].nodes[0];
    let sink = &network.orgs[0].nodes[0];
    // The sink org's second node (started by `catchup`) reads too.
    let late = &network.orgs[0].nodes[1];
    let key = SenderKey::generate(1, &mut rng);
    let (pkg, refused) = KeyPackage::seal(
        &net_id,
        &topic,
        &flood.key.public(),
        &key,
        &[
            sink.agreement.public(),
            late.agreement.public(),
            flood.agreement.public(),
        ],
        &mut rng,
    );
    if !refused.is_empty() {
        bail!("HPKE refused a reader key");
    }
    let now = alertmesh_node::clock::now_ms();
    let draft = |seq: u64, prev: EnvelopeId, kind: Kind| Draft {
        network_id: net_id,
        topic_id: topic,
        seq,
        prev,
        charter_version: charter.version,
        timestamp_ms: now,
        kind,
        key_epoch: 1,
        tlp: Tlp::Green,
    };
    let kp = SignedEnvelope::seal_clear(
        &flood.key,
        &draft(1, EnvelopeId::default(), Kind::KeyPackage),
        &pkg.encode(),
    )?;
    let content = |i: usize, pad: usize| {
        Content::Alert(Alert {
            title: format!("flood alert {i}"),
            description: "x".repeat(pad),
            severity: Severity::Medium,
            confidence: 50,
            observables: vec![Observable::Domain("bench.example.com".into())],
            labels: vec![],
            ..Alert::example(0)
        })
    };
    let probe = SignedEnvelope::seal_encrypted(
        &flood.key,
        &draft(2, kp.id(), Kind::Alert),
        &key,
        &content(0, 0).encode(),
        &mut rng,
    )?;
    let pad = size.saturating_sub(probe.as_bytes().len());
    let mut prev = kp.id();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let env = SignedEnvelope::seal_encrypted(
            &flood.key,
            &draft(i as u64 + 2, prev, Kind::Alert),
            &key,
            &content(i, pad).encode(),
            &mut rng,
        )?;
        prev = env.id();
        out.push(env.into_bytes());
    }
    Ok((kp.into_bytes(), out))
}

/// Single-thread verify rates on envelopes of about `size` bytes: raw ed25519-dalek
/// One run's figures.
struct IngestRun {
    count: usize,
    envelope_bytes: usize,
    verify_raw: f64,
    verify_raw_cpu: f64,
    verify_env: f64,
    /// What the flood did to the sink.
    sink: SinkFigures,
    db_bytes: u64,
    /// `catchup`: (seconds syncing, envelopes/s, seconds from the late node's start).
    catchup: Option<(f64, f64, f64)>,
}

/// What [`ingest_exercise`] measures on the sink.
struct SinkFigures {
    held_rate: f64,
    durable_rate: f64,
    publish_rate: f64,
    idle_rss: (u64, u64),
    loaded_rss: (u64, u64),
    /// With `--restart`: (seconds until ready, RSS KiB, peak RSS KiB).
    restart: Option<(f64, u64, u64)>,
    sink_cpu: BTreeMap<String, f64>,
    bench_cpu: f64,
    flood: FloodStats,
    slow_peer: u64,
    dropped_events: f64,
    accepted: f64,
}

/// The sink's `alertmesh_dropped_events` and accepted-envelope counters.
fn sink_counters(api: &str) -> (f64, f64) {
    let m = metrics_text(api, TOKEN);
    (
        metric(&m, "alertmesh_dropped_events", ""),
        metric(
            &m,
            "alertmesh_envelopes",
            "verdict=\"accept\",reason=\"ok\"",
        ),
    )
}

/// Bytes in the files directly under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// One run: pre-sign, measure verify rates, start the sink (`exe run --config …` with
/// `extra` arguments), flood it, maybe catch up.
fn ingest_run(opts: &Opts, exe: &Path, extra: &[&str], run: usize) -> anyhow::Result<IngestRun> {
    let (_temp, dir) = bench_dir(&opts.keep, "ingest", run)?;
    let mut rng = rand::rngs::OsRng;
    let network = ingest_plan().build(&mut rng);
    let (config_path, sink_addr) = write_sink(&dir.join(SINK), &network, 0, &[])?;
    let config = Config::load(&config_path)?;
    let data_dir = config.data_dir.clone();
    let client = Client::from_config(&config)?;
    let api = config.api.bind.to_string();

    print!("  pre-signing {} alerts ... ", opts.count);
    let t = Instant::now();
    let (kp, envs) = presign(&network, opts.count, opts.size)?;
    let envelope_bytes = envs.first().map_or(0, Vec::len);
    println!(
        "{:.1} s ({envelope_bytes} B each)",
        t.elapsed().as_secs_f64()
    );

    let (verify_raw, verify_env) = verify_rates(opts.size, Duration::from_secs(2));
    let verify_raw_cpu = RAW_VERIFY_CPU_RATE.load(Ordering::Relaxed) as f64;
    println!(
        "  verify_strict, this process, one thread: raw {verify_raw:.0}/s ({verify_raw_cpu:.0} per CPU second), envelope {verify_env:.0}/s"
    );

    let mut daemon = Daemon::spawn_with(exe, extra, SINK, &config_path)?;
    let result = ingest_exercise(
        opts,
        exe,
        &mut daemon,
        &client,
        &api,
        &data_dir,
        &network,
        sink_addr.clone(),
        kp,
        envs,
    );
    if result.is_err() {
        daemon.print_log_tail("the sink", 15);
    }
    let catchup = match (&result, opts.catchup) {
        (Ok(_), true) => Some(catch_up(
            exe,
            &dir,
            &network,
            &sink_addr,
            opts.count as u64 + 1,
        )?),
        _ => None,
    };
    daemon.stop();
    Ok(IngestRun {
        count: opts.count,
        envelope_bytes,
        verify_raw,
        verify_raw_cpu,
        verify_env,
        sink: result?,
        db_bytes: dir_bytes(&data_dir),
        catchup,
    })
}

/// Starts the sink org's second node, which missed everything, with the first as its
/// only bootstrap peer; waits until history sync gave it all `target` envelopes, every
/// one decrypted and in its database. Returns (seconds from its first envelope to the
/// last, envelopes per second over that time, seconds from process start to the last).
fn catch_up(
    exe: &Path,
    dir: &Path,
    network: &Network,
    seed: &Multiaddr,
    target: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let (config_path, _) = write_sink(&dir.join("late"), network, 1, &[seed.to_string()])?;
    let config = Config::load(&config_path)?;
    let client = Client::from_config(&config)?;
    print!("  catch-up: a second node starts and syncs {target} envelopes ... ");
    let started = Instant::now();
    let mut late = Daemon::spawn(exe, "late", &config_path)?;
    let mut first: Option<Instant> = None;
    let mut db = None;
    let result = wait_until(
        "the late node to hold every envelope in its database",
        Duration::from_secs(120 + target / 1000),
        || {
            late.check_alive()?;
            let s = status(&client)?;
            let held = s["envelopes"].as_u64().unwrap_or(0);
            if held > 0 && first.is_none() {
                first = Some(Instant::now());
            }
            if held < target || s["undecryptable"].as_u64() != Some(0) {
                return Ok(false);
            }
            // Held per status; durable once the writer committed the last batch.
            let conn = match &db {
                Some(conn) => conn,
                None => db.insert(alertmesh_node::store::open_reader(&config.data_dir)?),
            };
            let c = alertmesh_node::store::counts(conn)?;
            Ok(c.envelopes as u64 == target && c.alerts as u64 == target - 1)
        },
    )
    .map(|()| {
        let done = Instant::now();
        let syncing = done.duration_since(first.unwrap_or(started)).as_secs_f64();
        (
            syncing,
            (target - 1) as f64 / syncing.max(1e-9),
            done.duration_since(started).as_secs_f64(),
        )
    });
    if result.is_err() {
        late.print_log_tail("the late node", 15);
    }
    let late_cpu = thread_cpu(late.pid());
    late.stop();
    let r = result?;
    println!("{:.1} s ({:.0} envelopes/s)", r.0, r.1);
    println!(
        "  late node CPU from its start, by thread: {}",
        cpu_by_thread(&late_cpu, r.2)
    );
    Ok(r)
}

/// Floods the running sink through the in-process peer and waits until every envelope is
/// held and durable; then reads RSS, CPU and counters, and with `--restart` restarts it.
#[allow(clippy::too_many_arguments)]
fn ingest_exercise(
    opts: &Opts,
    exe: &Path,
    daemon: &mut Daemon,
    client: &Client,
    api: &str,
    data_dir: &Path,
    network: &Network,
    sink_addr: Multiaddr,
    kp: Vec<u8>,
    envs: Vec<Vec<u8>>,
) -> anyhow::Result<SinkFigures> {
    let n = envs.len() as u64;
    wait_until("the sink's API", Duration::from_secs(30), || {
        daemon.check_alive()?;
        Ok(status(client).is_ok())
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(daemon.pid())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let flooder = Flooder::start(&rt, network)?;
    rt.block_on(flooder.cmds.send(FloodCmd::Dial(sink_addr)))
        .map_err(|_| anyhow::anyhow!("flooder stopped"))?;
    wait_until(
        "the sink to admit the flooder",
        Duration::from_secs(30),
        || {
            daemon.check_alive()?;
            Ok(status(client)?["admitted_peers"].as_u64() == Some(1))
        },
    )?;
    // The key package, retried until gossipsub knows the sink is subscribed.
    wait_until("the key package to go out", Duration::from_secs(30), || {
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.block_on(flooder.cmds.send(FloodCmd::Publish(kp.clone(), tx)))
            .map_err(|_| anyhow::anyhow!("flooder stopped"))?;
        match rt.block_on(rx)? {
            Ok(()) => Ok(true),
            Err(e)
                if e.contains("NoPeersSubscribed")
                    || e.contains("no peers")
                    || e.contains("InsufficientPeers") =>
            {
                Ok(false)
            }
            Err(e) => bail!("key package publish failed: {e}"),
        }
    })?;
    wait_until(
        "the sink to hold the flooder's sender key",
        Duration::from_secs(30),
        || {
            let s = status(client)?;
            Ok(s["sender_keys"][BENCH_TOPIC].as_u64() == Some(1)
                && s["envelopes"].as_u64() == Some(1))
        },
    )?;

    let held = Arc::new(AtomicU64::new(1));
    let cpu_before = thread_cpu(daemon.pid());
    let bench_cpu_before = thread_cpu(std::process::id()).values().sum::<f64>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    rt.block_on(flooder.cmds.send(FloodCmd::Flood {
        envs,
        window: opts.window,
        held: held.clone(),
        base: 1,
        done: done_tx,
    }))
    .map_err(|_| anyhow::anyhow!("flooder stopped"))?;
    let target = n + 1;
    let mut flood: Option<FloodStats> = None;
    let mut last_progress = (1u64, Instant::now());
    let mut held_at: Option<Instant> = None;
    let mut durable_at: Option<Instant> = None;
    let db = alertmesh_node::store::open_reader(data_dir)?;
    let hard_deadline = Instant::now() + Duration::from_secs(60 + n / 100);
    let mut last_db_check = Instant::now();
    while durable_at.is_none() {
        daemon.check_alive()?;
        if flood.is_none() {
            if let Ok(stats) = done_rx.try_recv() {
                flood = Some(stats);
            }
        }
        let s = status(client)?;
        let env = s["envelopes"].as_u64().unwrap_or(0);
        held.store(env, Ordering::Relaxed);
        if env != last_progress.0 {
            last_progress = (env, Instant::now());
        }
        if held_at.is_none() && env >= target && s["undecryptable"].as_u64() == Some(0) {
            held_at = Some(Instant::now());
        }
        if held_at.is_some() && last_db_check.elapsed() >= Duration::from_millis(20) {
            last_db_check = Instant::now();
            let c = alertmesh_node::store::counts(&db)?;
            if c.envelopes as u64 >= target && c.alerts as u64 >= n {
                durable_at = Some(Instant::now());
            }
        }
        if last_progress.1.elapsed() > Duration::from_secs(20) || Instant::now() > hard_deadline {
            let (dropped_events, accepted) = sink_counters(api);
            bail!(
                "stalled: the sink holds {env} of {target} envelopes (undecryptable {}); flooder published {} (queue full {}, other errors {}), gossipsub slow-peer failures {}; sink dropped_events {}, accepted {}",
                s["undecryptable"],
                flood.as_ref().map_or(0, |f| f.published),
                flood.as_ref().map_or(0, |f| f.queue_full),
                flood.as_ref().map_or(0, |f| f.other_errors),
                flooder.slow_peer_failures.load(Ordering::Relaxed),
                dropped_events,
                accepted,
            );
        }
        std::thread::sleep(Duration::from_millis(if held_at.is_some() {
            5
        } else {
            25
        }));
    }
    let flood = match flood {
        Some(f) => f,
        None => {
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), done_rx).await })??
        }
    };
    let cpu_after = thread_cpu(daemon.pid());
    let bench_cpu = thread_cpu(std::process::id()).values().sum::<f64>() - bench_cpu_before;
    let start = flood.first_publish.context("nothing published")?;
    let held_rate = n as f64
        / held_at
            .context("never held")?
            .duration_since(start)
            .as_secs_f64();
    let durable_rate = n as f64
        / durable_at
            .context("never durable")?
            .duration_since(start)
            .as_secs_f64();
    let publish_rate = n as f64
        / flood
            .last_publish
            .unwrap_or(start)
            .duration_since(start)
            .as_secs_f64()
            .max(1e-9);
    let counts = alertmesh_node::store::counts(&db)?;
    if counts.envelopes as u64 != target || counts.alerts as u64 != n {
        bail!(
            "SQLite holds {} envelopes and {} alerts, expected {target} and {n}",
            counts.envelopes,
            counts.alerts
        );
    }
    let s = status(client)?;
    if s["undecryptable"].as_u64() != Some(0) {
        bail!("undecryptable = {}", s["undecryptable"]);
    }
    let (dropped_events, accepted) = sink_counters(api);
    let slow_peer = flooder.slow_peer_failures.load(Ordering::Relaxed);
    drop(flooder);
    drop(rt);
    // Let gossipsub's message cache and the duplicate window settle before reading RSS.
    std::thread::sleep(Duration::from_secs(5));
    let loaded_rss = rss_kib(daemon.pid())?;
    drop(db);

    let restart = if opts.restart {
        daemon.stop();
        let t = Instant::now();
        *daemon = Daemon::spawn(exe, SINK, &daemon.config.clone())?;
        wait_until(
            "the restarted sink to load its database",
            Duration::from_secs(120),
            || {
                daemon.check_alive()?;
                Ok(status(client).is_ok_and(|s| s["envelopes"].as_u64() == Some(target)))
            },
        )?;
        let ready = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(3));
        let (rss, hwm) = rss_kib(daemon.pid())?;
        Some((ready, rss, hwm))
    } else {
        None
    };
    Ok(SinkFigures {
        held_rate,
        durable_rate,
        publish_rate,
        idle_rss,
        loaded_rss,
        restart,
        sink_cpu: cpu_delta(&cpu_before, &cpu_after),
        bench_cpu,
        flood,
        slow_peer,
        dropped_events,
        accepted,
    })
}

/// One ingest run with catch-up for `node-bench guard`: (durable ingest rate, catch-up
/// rate), envelopes/s.
pub fn guard_run(opts: &Opts, run: usize) -> anyhow::Result<(f64, f64)> {
    let exe = alertmesh_binary(&opts.alertmesh)?;
    let r = ingest_run(opts, &exe, &[], run)?;
    print_run(&r);
    let catchup = r.catchup.context("no catch-up")?.1;
    Ok((r.sink.durable_rate, catchup))
}

/// `node-bench ingest` and `node-bench catchup`.
pub fn run(opts: &Opts) -> anyhow::Result<()> {
    let exe = alertmesh_binary(&opts.alertmesh)?;
    let heading = format!(
        "node-bench ingest: {} alerts of ~{} B flooded by a member peer into one daemon, window {}, {} run(s); daemon {}",
        opts.count,
        opts.size,
        if opts.window == 0 {
            "none (open loop)".to_string()
        } else {
            opts.window.to_string()
        },
        opts.runs,
        exe.display()
    );
    let runs = series(heading, opts.runs, |run| {
        let r = ingest_run(opts, &exe, &[], run)?;
        print_run(&r);
        Ok(r)
    })?;
    let col = |f: &dyn Fn(&IngestRun) -> f64| column(&runs, f);
    let mib = |k: u64| k as f64 / 1024.0;
    let sink_cpu = |r: &IngestRun| r.sink.sink_cpu.values().sum::<f64>();
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        (
            "validated + decrypted + durably stored (envelopes/s)",
            col(&|r| r.sink.durable_rate),
        ),
        (
            "held per /v1/status (envelopes/s)",
            col(&|r| r.sink.held_rate),
        ),
        ("raw verify_strict, 1 thread (/s)", col(&|r| r.verify_raw)),
        (
            "ratio: durable rate / (2 × raw verify_strict)",
            col(&|r| r.sink.durable_rate / (2.0 * r.verify_raw)),
        ),
        (
            "sink CPU, all threads (cores busy)",
            col(&|r| sink_cpu(r) * r.sink.durable_rate / r.count as f64),
        ),
        (
            "sink CPU, busiest thread (share of wall time)",
            col(&|r| {
                r.sink.sink_cpu.values().copied().fold(0.0, f64::max) * r.sink.durable_rate
                    / r.count as f64
            }),
        ),
        (
            "sink CPU per envelope, all threads (µs)",
            col(&|r| 1e6 * sink_cpu(r) / r.count as f64),
        ),
        (
            "envelope verify_signature, 1 thread (/s)",
            col(&|r| r.verify_env),
        ),
        (
            "raw verify_strict per CPU second (/s)",
            col(&|r| r.verify_raw_cpu),
        ),
        (
            "share of the sink's CPU per envelope that one verify_strict costs",
            col(&|r| r.count as f64 / (r.verify_raw_cpu * sink_cpu(r))),
        ),
        ("sink dropped_events", col(&|r| r.sink.dropped_events)),
        ("idle daemon RSS (MiB)", col(&|r| mib(r.sink.idle_rss.0))),
        (
            "daemon RSS holding the alerts (MiB)",
            col(&|r| mib(r.sink.loaded_rss.0)),
        ),
        (
            "daemon peak RSS during the flood (MiB)",
            col(&|r| mib(r.sink.loaded_rss.1)),
        ),
        (
            "database size (MiB)",
            col(&|r| r.db_bytes as f64 / 1048576.0),
        ),
    ];
    if runs.iter().all(|r| r.catchup.is_some()) {
        let c = |i: usize| move |r: &IngestRun| r.catchup.map_or(0.0, |x| [x.0, x.1, x.2][i]);
        rows.push((
            "catch-up of a late node through sync (envelopes/s)",
            col(&c(1)),
        ));
        rows.push((
            "catch-up: ratio to raw verify_strict, 1 thread",
            col(&|r| r.catchup.map_or(0.0, |x| x.1) / r.verify_raw),
        ));
        rows.push(("catch-up: first to last envelope (s)", col(&c(0))));
        rows.push(("catch-up: process start to last envelope (s)", col(&c(2))));
    }
    if runs.iter().all(|r| r.sink.restart.is_some()) {
        let restart = |i: usize| {
            move |r: &IngestRun| r.sink.restart.map_or(0.0, |x| [x.0, mib(x.1), mib(x.2)][i])
        };
        rows.push(("restart on that database: ready (s)", col(&restart(0))));
        rows.push(("restart on that database: RSS (MiB)", col(&restart(1))));
        rows.push(("restart on that database: peak RSS (MiB)", col(&restart(2))));
    }
    print_table(
        &format!(
            "ingest, one daemon, {} alerts of {} B",
            opts.count, runs[0].envelope_bytes
        ),
        runs.len(),
        rows,
    );
    Ok(())
}

/// `node-bench index-cost` (issue 23): the node's durable ingest rate with and without
/// the observable index, both nodes started from this binary (`node-bench run`, the
/// daemon's start-up with the index switched off for the second), in the same run, the
/// order alternating from run to run.
pub fn index_cost(opts: &Opts) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let heading = format!(
        "node-bench index-cost: {} alerts of ~{} B flooded into one node with and without the observable index, {} run(s)",
        opts.count, opts.size, opts.runs
    );
    let runs = series(heading, opts.runs, |run| {
        let mut rates = [0.0; 2];
        let order = if run % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for indexed in order {
            println!(
                "  {}",
                if indexed {
                    "with the index"
                } else {
                    "without the index"
                }
            );
            let extra: &[&str] = if indexed { &[] } else { &["--without-index"] };
            let r = ingest_run(opts, &exe, extra, 2 * run - usize::from(indexed))?;
            print_run(&r);
            rates[usize::from(!indexed)] = r.sink.durable_rate;
        }
        Ok(rates)
    })?;
    print_table(
        &format!(
            "node ingest, {} alerts, with and without the index",
            opts.count
        ),
        runs.len(),
        vec![
            ("with the index (envelopes/s)", column(&runs, |r| r[0])),
            ("without the index (envelopes/s)", column(&runs, |r| r[1])),
            ("ratio with / without", column(&runs, |r| r[0] / r[1])),
        ],
    );
    Ok(())
}

/// CPU seconds per thread name (threads of one name summed), with the share of `secs`.
fn cpu_by_thread(cpu: &BTreeMap<String, f64>, secs: f64) -> String {
    let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
    for (k, v) in cpu {
        *by_name.entry(k.split('#').next().unwrap_or(k)).or_default() += v;
    }
    let parts: Vec<String> = by_name
        .iter()
        .map(|(k, v)| format!("{k} {v:.1}s ({:.0}%)", 100.0 * v / secs))
        .collect();
    parts.join(", ")
}

/// The lines printed after each run.
fn print_run(r: &IngestRun) {
    let sink = &r.sink;
    let secs = r.count as f64 / sink.durable_rate;
    println!(
        "  held {:.0}/s, durable {:.0}/s (flooder published at {:.0}/s; queue-full {}, slow-peer failures {}, window waits {}); sink dropped_events {}, accepted {}",
        sink.held_rate,
        sink.durable_rate,
        sink.publish_rate,
        sink.flood.queue_full,
        sink.slow_peer,
        sink.flood.window_waits,
        sink.dropped_events,
        sink.accepted
    );
    let cpu = cpu_by_thread(&sink.sink_cpu, secs);
    let (busiest, top) = sink
        .sink_cpu
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(("-", 0.0), |(k, v)| (k.as_str(), *v));
    println!(
        "  sink CPU over the flood ({secs:.1} s): {}; busiest thread {busiest} {top:.1}s ({:.0}% of the wall time); bench process {:.1}s; load average now {}",
        cpu,
        100.0 * top / secs,
        sink.bench_cpu,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    println!(
        "  ratio to 2 × raw verify_strict ({:.0}/s): {:.2}; RSS idle {} KiB, holding {} alerts {} KiB (peak {} KiB); database {:.1} MiB",
        2.0 * r.verify_raw,
        sink.durable_rate / (2.0 * r.verify_raw),
        sink.idle_rss.0,
        r.count,
        sink.loaded_rss.0,
        sink.loaded_rss.1,
        r.db_bytes as f64 / 1048576.0
    );
    if let Some((ready, rss, hwm)) = sink.restart {
        println!(
            "  restart on that database: ready in {ready:.1} s, RSS {rss} KiB (peak {hwm} KiB)"
        );
    }
}
