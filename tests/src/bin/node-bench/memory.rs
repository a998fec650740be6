//! `memory`: resident memory and start-up time of a daemon holding many alerts (issue 20,
//! item 3).
//!
//! For each size of `--sizes`, fills the database of `ingest`'s sink node with that many
//! real sealed alerts of the `flood` org (its certificate, its key package sealed to the
//! sink, then each alert's envelope row and decrypted alert row, observables indexed),
//! through the real writer: the rows a sink holds after an `ingest` flood, written without
//! the network for speed. Then starts `alertmesh run` on it `--runs` times: start-up is the
//! time from the spawn until `/v1/status` answers holding every envelope with none
//! undecryptable; the resident set (VmRSS, and its peak VmHWM) is read after 5 s idle.
//! The database is removed afterwards unless `--keep DIR`.

use crate::Opts;
use crate::common::{
    Daemon, alertmesh_binary, bench_dir, print_table, rss_kib, status, wait_until,
};
use crate::ingest::{BENCH_TOPIC, ingest_plan, write_sink};
use alertmesh_node::client::Client;
use alertmesh_node::config::Config;
use alertmesh_node::store::{self, AlertRow, EnvelopeRow, Write};
use alertmesh_protocol::alert::{Alert, Observable, Severity};
use alertmesh_protocol::bootstrap::Network;
use alertmesh_protocol::{
    Content, Draft, EnvelopeId, KeyPackage, Kind, SenderKey, SignedEnvelope, Tlp, TopicId,
};
use anyhow::{Context, bail};
use std::path::Path;
use std::time::{Duration, Instant};

/// Alerts per queued write (one job of the writer).
const CHUNK: usize = 1000;
/// Jobs queued and not yet committed at most while filling.
const IN_FLIGHT: usize = 8;

/// One start of the daemon on a filled database.
struct Start {
    ready_s: f64,
    /// Seconds until the writer logged its check of every page (writes wait for it).
    checked_s: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

pub fn run(opts: &Opts) -> anyhow::Result<()> {
    let exe = alertmesh_binary(&opts.alertmesh)?;
    println!(
        "node-bench memory: a sink holding N alerts of ~{} B, started {} times per size",
        opts.size, opts.runs
    );
    println!("machine: {}", crate::common::machine_note());
    let mut rows = Vec::new();
    for &n in &opts.sizes {
        let (_temp, dir) = bench_dir(&opts.keep, &format!("memory-{n}"), 0)?;
        let mut rng = rand::rngs::OsRng;
        let network = ingest_plan().build(&mut rng);
        let (config_path, _) = write_sink(&dir.join("sink"), &network, 0, &[])?;
        let config = Config::load(&config_path)?;
        let client = Client::from_config(&config)?;
        print!("{n} alerts: filling the database ... ");
        let t = Instant::now();
        fill(&network, &config.data_dir, n, opts.size)?;
        let db_bytes = dir_bytes(&config.data_dir);
        println!(
            "{:.0} s, {:.0} MiB",
            t.elapsed().as_secs_f64(),
            db_bytes as f64 / 1048576.0
        );
        let mut starts = Vec::new();
        for run in 1..=opts.runs {
            let s = start(&exe, &config_path, &client, n as u64 + 1)?;
            println!(
                "  run {run}/{}: ready in {:.2} s, whole file checked after {:.2} s, idle RSS {:.1} MiB (peak {:.1} MiB)",
                opts.runs,
                s.ready_s,
                s.checked_s,
                s.rss_kib as f64 / 1024.0,
                s.hwm_kib as f64 / 1024.0
            );
            starts.push(s);
        }
        rows.push((n, db_bytes, starts));
    }
    for (n, db_bytes, starts) in &rows {
        let col = |f: &dyn Fn(&Start) -> f64| starts.iter().map(f).collect::<Vec<f64>>();
        print_table(
            &format!(
                "{n} alerts (database {:.0} MiB)",
                *db_bytes as f64 / 1048576.0
            ),
            starts.len(),
            vec![
                ("start-up until ready (s)", col(&|s| s.ready_s)),
                (
                    "until the writer checked the whole file (s)",
                    col(&|s| s.checked_s),
                ),
                ("idle RSS (MiB)", col(&|s| s.rss_kib as f64 / 1024.0)),
                ("peak RSS (MiB)", col(&|s| s.hwm_kib as f64 / 1024.0)),
            ],
        );
    }
    Ok(())
}

/// Starts the daemon, waits until it holds `envelopes`, lets it idle, reads its memory
/// and stops it.
fn start(exe: &Path, config: &Path, client: &Client, envelopes: u64) -> anyhow::Result<Start> {
    // The daemon appends to `node.log`; what this start logs begins at `logged`.
    let log = config.with_file_name("node.log");
    let logged = std::fs::read_to_string(&log).map_or(0, |l| l.len());
    let t = Instant::now();
    let mut daemon = Daemon::spawn(exe, "sink", config)?;
    let ready = wait_until(
        "the sink to load its database",
        Duration::from_secs(600),
        || {
            daemon.check_alive()?;
            Ok(status(client).is_ok_and(|s| {
                s["envelopes"].as_u64() == Some(envelopes) && s["undecryptable"].as_u64() == Some(0)
            }))
        },
    );
    if let Err(e) = ready {
        daemon.print_log_tail("the sink", 30);
        return Err(e);
    }
    let ready_s = t.elapsed().as_secs_f64();
    // Writes wait for the writer's check of every page, which it logs when done.
    wait_until(
        "the writer to check the whole file",
        Duration::from_secs(600),
        || {
            daemon.check_alive()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text
                .get(logged..)
                .is_some_and(|new| new.contains("database checked")))
        },
    )?;
    let checked_s = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5));
    let (rss_kib, hwm_kib) = rss_kib(daemon.pid())?;
    if !daemon.stop() {
        bail!("the sink did not stop on SIGTERM");
    }
    Ok(Start {
        ready_s,
        checked_s,
        rss_kib,
        hwm_kib,
    })
}

/// Bytes of the files in a directory.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Writes the flood node's certificate, its key package sealed to the sink and `n`
/// alerts of about `size` bytes (envelope and alert rows) into the sink's database.
fn fill(network: &Network, data_dir: &Path, n: usize, size: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let mut rng = rand::rngs::OsRng;
    let charter = network.genesis.charter();
    let net_id = charter.network_id;
    let topic = TopicId::derive(&net_id, BENCH_TOPIC);
    let flood = &network.orgs[1].nodes[0];
    let sink = &network.orgs[0].nodes[0];
    let writer = store::spawn_writer(store::open(data_dir, &net_id)?);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let key = SenderKey::generate(1, &mut rng);
    let readers = [sink.agreement.public(), flood.agreement.public()];
    let (pkg, refused) = KeyPackage::seal(
        &net_id,
        &topic,
        &flood.key.public(),
        &key,
        &readers,
        &mut rng,
    );
    if !refused.is_empty() {
        bail!("HPKE refused a reader key");
    }
    let now = alertmesh_node::clock::now_ms() - n as u64;
    let draft = |seq: u64, prev: EnvelopeId, kind: Kind| Draft {
        network_id: net_id,
        topic_id: topic,
        seq,
        prev,
        charter_version: charter.version,
        timestamp_ms: now + seq,
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
            title: format!("stored alert {i}"),
            description: "x".repeat(pad),
            severity: Severity::Medium,
            confidence: 50,
            observables: vec![Observable::Domain(format!("host{}.example", i % 50_000))],
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
    let received_ms = alertmesh_node::clock::now_ms();
    let mut batch = vec![
        Write::Cert {
            node: flood.key.public(),
            bytes: flood.cert.as_bytes().to_vec(),
        },
        Write::Envelope(EnvelopeRow {
            envelope: kp.clone(),
            received_ms,
        }),
    ];
    let mut prev = kp.id();
    let mut queued = std::collections::VecDeque::new();
    for i in 0..n {
        let content = content(i, pad);
        let env = SignedEnvelope::seal_encrypted(
            &flood.key,
            &draft(i as u64 + 2, prev, Kind::Alert),
            &key,
            &content.encode(),
            &mut rng,
        )?;
        prev = env.id();
        let row = AlertRow {
            envelope_id: env.id(),
            topic_name: BENCH_TOPIC.into(),
            org: "flood".into(),
            tlp: Tlp::Green,
            timestamp_ms: env.header().timestamp_ms,
            content,
        };
        batch.push(Write::Envelope(EnvelopeRow {
            envelope: env,
            received_ms,
        }));
        batch.push(Write::Alert(row));
        if batch.len() >= 2 * CHUNK || i + 1 == n {
            let writes = std::mem::take(&mut batch);
            queued.push_back(runtime.block_on(writer.write_all(writes))?);
            if queued.len() >= IN_FLIGHT {
                let done = queued.pop_front().context("queued")?;
                runtime
                    .block_on(done)?
                    .map_err(|e| anyhow::anyhow!("write failed: {e}"))?;
            }
        }
    }
    for done in queued {
        runtime
            .block_on(done)?
            .map_err(|e| anyhow::anyhow!("write failed: {e}"))?;
    }
    runtime.block_on(writer.flush())?;
    Ok(())
}
