//! `node-bench`: measures the node figures of issue 3 against real `alertmesh run` daemons
//! (child processes) on loopback.
//!
//! ```text
//! node-bench latency [--alerts 350] [--rate 20] [--runs 3]
//! node-bench ingest  [--count 20000] [--size 1024] [--window 2000] [--runs 3] [--restart]
//! node-bench verify  [--size 1024]
//! ```
//!
//! - `latency`: the seven-org example network of `keys-example/` as seven daemons; alerts
//!   published through each org's API at a fixed total rate, round-robin over the orgs and
//!   the topics each may publish on; latency = the reader's `received_ms` minus the author's
//!   `timestamp_ms`, for every (alert, reader org other than the author).
//! - `ingest`: one daemon (org `sink`) and, in this process, a member node of org `flood`
//!   with a valid certificate that introduces itself (hello), publishes a key package
//!   sealed to the sink, then floods pre-signed ~`--size`-byte alerts over gossipsub. The
//!   charter does not rate-limit. Done when `/v1/status` holds every envelope with
//!   `undecryptable == 0` and the SQLite `envelopes`/`alerts` tables hold all of them.
//!   Reported against 2 × the single-thread `verify_strict` rate measured in the same run.
//!   Also reports the daemon's resident memory idle and holding the alerts (and, with
//!   `--restart`, after a restart on that database).
//!
//! The daemon binary is looked up next to this one (`target/release/alertmesh`), or given
//! with `--alertmesh PATH`. Every wait is bounded; the process exits non-zero on failure.

use alertmesh_node::client::Client;
use alertmesh_node::config::Config;
use alertmesh_node::net::{self, Behaviour, BehaviourEvent};
use alertmesh_protocol::alert::{Alert, AlertKind, Observable, Severity};
use alertmesh_protocol::bootstrap::{Network, NetworkPlan, OrgPlan, TopicPlan};
use alertmesh_protocol::keyfile::{self, SecretKeyFile};
use alertmesh_protocol::wire::{self, Hello};
use alertmesh_protocol::{
    AgreementKey, Content, Draft, EnvelopeId, KeyPackage, Kind, Limits, NodeKey, OrgId, SenderKey,
    SignedEnvelope, Tlp, TopicId,
};
use alertmesh_tests::process::{free_port, wait_until_ok};
use anyhow::{Context, bail};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, TopicHash};
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pids of every daemon started, so the watchdog can kill them before exiting.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("node-bench: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    start_watchdog(opts.timeout);
    let result = match opts.cmd.as_str() {
        "latency" => latency(&opts),
        "ingest" | "catchup" => ingest(&opts),
        "verify" => {
            let (raw, env) = verify_rates(opts.size, Duration::from_secs(3));
            println!(
                "verify_strict, single thread, ~{} B envelopes: raw ed25519-dalek {raw:.0}/s ({:.0} per CPU second), SignedEnvelope::verify_signature {env:.0}/s",
                opts.size,
                RAW_VERIFY_CPU_RATE.load(Ordering::Relaxed)
            );
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown command {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node-bench FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage:
  node-bench latency [--alerts 350] [--rate 20] [--runs 3] [--example-dir keys-example]
  node-bench ingest  [--count 20000] [--size 1024] [--window 2000] [--runs 3] [--restart]
  node-bench catchup [ingest's flags]: ingest, then a second node of the sink's org that
                     missed everything starts and catches up through history sync
  node-bench verify  [--size 1024]
common: [--alertmesh PATH] [--timeout SECONDS (whole process, default 1800)] [--keep DIR]
  --window 0 floods open-loop (no flow control); otherwise at most WINDOW envelopes are
  in flight (published but not yet held by the node, as its /v1/status reports).";

struct Opts {
    cmd: String,
    alerts: usize,
    rate: f64,
    runs: usize,
    count: usize,
    size: usize,
    window: u64,
    restart: bool,
    catchup: bool,
    alertmesh: Option<PathBuf>,
    example_dir: Option<PathBuf>,
    timeout: u64,
    keep: Option<PathBuf>,
}

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut o = Opts {
            cmd: args.first().cloned().context("no command")?,
            alerts: 350,
            rate: 20.0,
            runs: 3,
            count: 20_000,
            size: 1024,
            window: 2000,
            restart: false,
            catchup: args.first().is_some_and(|c| c == "catchup"),
            alertmesh: None,
            example_dir: None,
            timeout: 1800,
            keep: None,
        };
        let mut it = args.iter().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--alerts" => o.alerts = value()?.parse()?,
                "--rate" => o.rate = value()?.parse()?,
                "--runs" => o.runs = value()?.parse()?,
                "--count" => o.count = value()?.parse()?,
                "--size" => o.size = value()?.parse()?,
                "--window" => o.window = value()?.parse()?,
                "--restart" => o.restart = true,
                "--alertmesh" => o.alertmesh = Some(value()?.into()),
                "--example-dir" => o.example_dir = Some(value()?.into()),
                "--timeout" => o.timeout = value()?.parse()?,
                "--keep" => o.keep = Some(value()?.into()),
                other => bail!("unknown flag {other}"),
            }
        }
        if o.runs == 0 || o.alerts == 0 || o.count == 0 || o.rate <= 0.0 {
            bail!("--runs, --alerts, --count and --rate must be positive");
        }
        Ok(o)
    }
}

fn start_watchdog(secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!(
            "node-bench FAILED: the whole run took over {secs} s (--timeout); killing the daemons"
        );
        kill_all_children();
        std::process::exit(3);
    });
}

fn kill_all_children() {
    if let Ok(pids) = CHILDREN.lock() {
        for pid in pids.iter() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------
// daemons

fn alertmesh_binary(opt: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = opt {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let candidate = exe.parent().context("no exe dir")?.join("alertmesh");
    if candidate.exists() {
        return Ok(candidate);
    }
    bail!(
        "cannot find the daemon at {}; build it (`cargo build --release -p alertmesh-node -p alertmesh-tests`) or pass --alertmesh PATH",
        candidate.display()
    )
}

/// A running `alertmesh run` child; SIGTERM (then SIGKILL) on drop.
struct Daemon {
    name: String,
    config: PathBuf,
    child: Child,
}

impl Daemon {
    fn spawn(exe: &Path, name: &str, config: &Path) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.with_file_name("node.log"))?;
        let child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} for {name}", exe.display()))?;
        if let Ok(mut pids) = CHILDREN.lock() {
            pids.push(child.id());
        }
        Ok(Self {
            name: name.to_string(),
            config: config.to_owned(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "the daemon of {} exited ({status}); see {}",
                self.name,
                self.config.with_file_name("node.log").display()
            );
        }
        Ok(())
    }

    /// SIGTERM, wait up to 15 s, then SIGKILL. Returns whether it exited on its own.
    fn stop(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut clean = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                clean = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut pids) = CHILDREN.lock() {
            pids.retain(|p| *p != self.child.id());
        }
        clean
    }

    fn tail_log(&self, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.config.with_file_name("node.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// VmRSS and VmHWM of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("bad line")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux this runs on.
    100.0
}

/// CPU seconds (user + system) per thread name of a process.
fn thread_cpu(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // fields after the name start at `state` (field 3): utime is field 14, stime 15.
        let cpu = (ticks(11) + ticks(12)) / clock_ticks();
        // Keyed by name and thread id, so the busiest single thread shows.
        out.insert(format!("{name}#{}", t.file_name().to_string_lossy()), cpu);
    }
    out
}

fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.005)
        .collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A counter from the Prometheus text (sum over all label sets whose line contains `filter`).
fn metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name) && l.contains(filter))
        .filter_map(|l| {
            l.split_whitespace()
                .last()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .sum()
}

fn metrics_text(addr: &str, token: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .get(format!("http://{addr}/metrics"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .ok()
        .and_then(|r| r.into_body().read_to_string().ok())
        .unwrap_or_default()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // nearest rank
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let fmt = |x: f64| {
        if x.abs() >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    };
    let runs: Vec<String> = values.iter().map(|x| fmt(*x)).collect();
    format!("{}–{} ({})", fmt(min), fmt(max), runs.join(", "))
}

fn machine_note() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}); load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

// ---------------------------------------------------------------------------------------
// latency: the seven-org example network

fn find_example_dir(opt: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let candidates = opt.iter().cloned().chain([
        PathBuf::from("keys-example"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys-example"),
    ]);
    for c in candidates {
        if c.join("charter-v1.bin").exists() {
            return Ok(c);
        }
    }
    bail!(
        "cannot find the example network (keys-example/); run from the repository root or pass --example-dir"
    )
}

/// A runnable copy of the example network with free ports; returns (org, config path).
fn materialize_example(example: &Path, dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let orgs: Vec<&str> = alertmesh_node::example::ORGS.iter().map(|o| o.0).collect();
    std::fs::copy(example.join("charter-v1.bin"), dir.join("charter-v1.bin"))?;
    let hash = std::fs::read_to_string(example.join("genesis-hash.txt"))?
        .trim()
        .to_string();
    let mut ports = Vec::new();
    let mut peers = Vec::new();
    for org in &orgs {
        let src = example.join("nodes").join(org);
        let node_dir = dir.join(org);
        std::fs::create_dir_all(&node_dir)?;
        for f in ["node.key", "agreement.key", "api.token"] {
            write_private(
                &node_dir.join(f),
                &std::fs::read(src.join(f))
                    .with_context(|| format!("reading {}", src.join(f).display()))?,
            )?;
        }
        std::fs::copy(src.join("node.cert"), node_dir.join("node.cert"))?;
        let key = keyfile::load_node_key(&node_dir.join("node.key"))?;
        peers.push(
            net::peer_id_of(&key.public())
                .context("bad example node key")?
                .to_string(),
        );
        ports.push((free_port()?, free_port()?));
    }
    let mut out = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        let bootstrap: Vec<String> = (0..orgs.len())
            .filter(|j| *j != i)
            .map(|j| format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", ports[j].0, peers[j]))
            .collect();
        let text = alertmesh_node::config::render(
            "data",
            &[format!("/ip4/127.0.0.1/tcp/{}", ports[i].0)],
            &bootstrap,
            &hash,
            &format!("127.0.0.1:{}", ports[i].1),
            ".",
            "../charter-v1.bin",
        );
        let path = dir.join(org).join("node.toml");
        std::fs::write(&path, text)?;
        out.push(((*org).to_string(), path));
    }
    Ok(out)
}

fn bench_dir(
    keep: &Option<PathBuf>,
    prefix: &str,
    run: usize,
) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match keep {
        Some(base) => {
            let d = base.join(format!("{prefix}-{run}"));
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
            std::fs::create_dir_all(&d)?;
            Ok((None, d))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix(&format!("node-bench-{prefix}-"))
                .tempdir()?;
            let p = t.path().to_path_buf();
            Ok((Some(t), p))
        }
    }
}

struct LatencyRun {
    alerts: usize,
    deliveries: usize,
    p50: u64,
    p99: u64,
    max: u64,
    mean: f64,
    publish_p50: u64,
    achieved_rate: f64,
    idle_rss_kib: Vec<u64>,
    dropped_events: f64,
}

fn alert_json(title: &str, description: &str) -> Value {
    json!({
        "kind": "indicator", "title": title, "description": description, "severity": "medium",
        "confidence": 80, "observables": [{"type": "domain", "value": "vote-example.com"}],
        "labels": ["bench"], "references": [], "valid_from_ms": 0, "valid_until_ms": null, "related": []
    })
}

fn latency_run(opts: &Opts, exe: &Path, run: usize) -> anyhow::Result<LatencyRun> {
    let example = find_example_dir(&opts.example_dir)?;
    let (_temp, dir) = bench_dir(&opts.keep, "latency", run)?;
    let configs = materialize_example(&example, &dir)?;
    let mut daemons = Vec::new();
    for (org, path) in &configs {
        daemons.push(Daemon::spawn(exe, org, path)?);
    }
    let result = latency_exercise(opts, &configs, &mut daemons);
    if result.is_err() {
        for d in &daemons {
            eprintln!("--- last lines of {}'s log ---\n{}", d.name, d.tail_log(10));
        }
    }
    for d in &mut daemons {
        d.stop();
    }
    result
}

fn latency_exercise(
    opts: &Opts,
    configs: &[(String, PathBuf)],
    daemons: &mut [Daemon],
) -> anyhow::Result<LatencyRun> {
    let n = configs.len();
    let mut clients = BTreeMap::new();
    for (org, path) in configs {
        clients.insert(org.clone(), Client::from_config(&Config::load(path)?)?);
    }
    let started = Instant::now();
    wait_until_ok(
        "every daemon to admit its 6 peers",
        Duration::from_secs(90),
        || {
            for d in daemons.iter_mut() {
                d.check_alive()?;
            }
            Ok(clients.values().all(|c| {
                c.get::<Value>("/v1/status")
                    .is_ok_and(|s| s["admitted_peers"].as_u64() == Some(n as u64 - 1))
            }))
        },
    )?;
    let topics: Vec<Value> = clients
        .values()
        .next()
        .context("no nodes")?
        .get("/v1/topics")?;
    let names = |t: &Value, field: &str| -> BTreeSet<String> {
        t[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let readers: BTreeMap<String, BTreeSet<String>> = topics
        .iter()
        .filter_map(|t| Some((t["name"].as_str()?.to_string(), names(t, "readers"))))
        .collect();
    let publishers: BTreeMap<String, BTreeSet<String>> = topics
        .iter()
        .filter_map(|t| Some((t["name"].as_str()?.to_string(), names(t, "publishers"))))
        .collect();
    wait_until_ok(
        "every reader to hold every publisher's sender key",
        Duration::from_secs(60),
        || {
            Ok(clients.values().all(|c| {
                c.get::<Value>("/v1/status").is_ok_and(|s| {
                    s["sender_keys"].as_object().is_some_and(|m| {
                        m.iter().all(|(topic, v)| {
                            v.as_u64() == publishers.get(topic).map(|p| p.len() as u64)
                        })
                    })
                })
            }))
        },
    )?;
    println!("  mesh ready in {:.1} s", started.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss_kib: Vec<u64> = daemons
        .iter()
        .filter_map(|d| rss_kib(d.pid()).ok().map(|r| r.0))
        .collect();

    // Schedule: alert i at t0 + i/rate, from org i mod 7, on that org's next publishable topic.
    let orgs: Vec<String> = configs.iter().map(|(o, _)| o.clone()).collect();
    let mut plan: Vec<(usize, String, String)> = Vec::new(); // (index, org, topic)
    let mut next_topic: HashMap<String, usize> = HashMap::new();
    for i in 0..opts.alerts {
        let org = &orgs[i % orgs.len()];
        let mine: Vec<&String> = publishers
            .iter()
            .filter(|(_, p)| p.contains(org))
            .map(|(t, _)| t)
            .collect();
        let k = next_topic.entry(org.clone()).or_default();
        let topic = mine
            .get(*k % mine.len().max(1))
            .context("an org may publish nowhere")?
            .to_string();
        *k += 1;
        plan.push((i, org.clone(), topic));
    }
    let t0 = Instant::now() + Duration::from_millis(200);
    let interval = Duration::from_secs_f64(1.0 / opts.rate);
    let description = "Benchmark alert: coordinated accounts pushing a false polling-place closure narrative; see observables. ".repeat(3);
    let mut handles = Vec::new();
    for (k, (org, path)) in configs.iter().enumerate() {
        let mine: Vec<(usize, String)> = plan
            .iter()
            .filter(|(i, _, _)| i % orgs.len() == k)
            .map(|(i, _, t)| (*i, t.clone()))
            .collect();
        let client = Client::from_config(&Config::load(path)?)?;
        let org = org.clone();
        let description = description.clone();
        handles.push(std::thread::spawn(move || -> anyhow::Result<Vec<(String, String, String, u64)>> {
            let mut out = Vec::new();
            for (i, topic) in mine {
                let at = t0 + interval * i as u32;
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let body = json!({"topic": topic, "tlp": "GREEN", "alert": alert_json(&format!("bench alert {i} from {org}"), &description)});
                let sent = Instant::now();
                let receipt: Value = client.post("/v1/alerts", &body).with_context(|| format!("{org} publishing alert {i}"))?;
                let took = sent.elapsed().as_millis() as u64;
                out.push((receipt["id"].as_str().context("no id in receipt")?.to_string(), org.clone(), topic, took));
            }
            Ok(out)
        }));
    }
    let mut published = Vec::new();
    for h in handles {
        published.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("publisher thread panicked"))??,
        );
    }
    let publish_span = t0.elapsed().as_secs_f64();
    let achieved_rate = published.len() as f64 / publish_span;
    let mut publish_ms: Vec<u64> = published.iter().map(|p| p.3).collect();
    publish_ms.sort_unstable();

    // Every (alert, reader org other than its author).
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, author, topic, _) in &published {
        for r in readers
            .get(topic)
            .into_iter()
            .flatten()
            .filter(|r| *r != author)
        {
            expected.entry(r.clone()).or_default().insert(id.clone());
        }
    }
    let mut seen: BTreeMap<String, HashMap<String, (i64, i64)>> = BTreeMap::new();
    let mut cursors: BTreeMap<String, i64> = BTreeMap::new();
    wait_until_ok(
        "every alert to reach every reader",
        Duration::from_secs(60),
        || {
            let mut complete = true;
            for (org, c) in &clients {
                let want = expected.get(org).map_or(0, |e| e.len());
                let got = seen.entry(org.clone()).or_default();
                loop {
                    let after = cursors.get(org).copied().unwrap_or(0);
                    let page: Value = c.get(&format!("/v1/alerts?after={after}&limit=1000"))?;
                    let rows = page["alerts"].as_array().cloned().unwrap_or_default();
                    for r in &rows {
                        if let (Some(id), Some(ts), Some(rx)) = (
                            r["id"].as_str(),
                            r["timestamp_ms"].as_i64(),
                            r["received_ms"].as_i64(),
                        ) {
                            got.insert(id.to_string(), (ts, rx));
                        }
                    }
                    cursors.insert(org.clone(), page["next"].as_i64().unwrap_or(after));
                    if rows.len() < 1000 {
                        break;
                    }
                }
                let have = expected
                    .get(org)
                    .map_or(0, |e| e.iter().filter(|id| got.contains_key(*id)).count());
                complete &= have == want;
            }
            Ok(complete)
        },
    )?;
    let mut lat: Vec<u64> = Vec::new();
    for (org, ids) in &expected {
        for id in ids {
            let (ts, rx) = seen[org][id];
            lat.push((rx - ts).max(0) as u64);
        }
    }
    lat.sort_unstable();
    let mut dropped_events = 0.0;
    for (_, path) in configs {
        let cfg = Config::load(path)?;
        let token = std::fs::read_to_string(&cfg.api.token_file)?;
        dropped_events += metric(
            &metrics_text(&cfg.api.bind.to_string(), token.trim()),
            "alertmesh_dropped_events",
            "",
        );
    }
    Ok(LatencyRun {
        alerts: published.len(),
        deliveries: lat.len(),
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or(0),
        mean: lat.iter().sum::<u64>() as f64 / lat.len().max(1) as f64,
        publish_p50: percentile(&publish_ms, 0.5),
        achieved_rate,
        idle_rss_kib,
        dropped_events,
    })
}

fn latency(opts: &Opts) -> anyhow::Result<()> {
    let exe = alertmesh_binary(&opts.alertmesh)?;
    println!(
        "node-bench latency: {} alerts at {}/s from the 7 example orgs, {} run(s); daemon {}",
        opts.alerts,
        opts.rate,
        opts.runs,
        exe.display()
    );
    println!("machine: {}", machine_note());
    let mut runs = Vec::new();
    for run in 1..=opts.runs {
        println!("run {run}/{}:", opts.runs);
        let r = latency_run(opts, &exe, run)?;
        println!(
            "  {} alerts published at {:.1}/s (API publish p50 {} ms), {} deliveries: p50 {} ms, p99 {} ms, max {} ms, mean {:.1} ms; dropped events {}; idle RSS per daemon {:?} KiB",
            r.alerts,
            r.achieved_rate,
            r.publish_p50,
            r.deliveries,
            r.p50,
            r.p99,
            r.max,
            r.mean,
            r.dropped_events,
            r.idle_rss_kib
        );
        runs.push(r);
    }
    let col = |f: &dyn Fn(&LatencyRun) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let idle: Vec<f64> = runs
        .iter()
        .map(|r| {
            median(
                &r.idle_rss_kib
                    .iter()
                    .map(|k| *k as f64 / 1024.0)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    println!(
        "\n| publish-to-delivery latency, 7 daemons | median of {} runs | min–max (each run) |",
        runs.len()
    );
    println!("|---|---|---|");
    for (name, v) in [
        ("p50 (ms)", col(&|r| r.p50 as f64)),
        ("p99 (ms)", col(&|r| r.p99 as f64)),
        ("max (ms)", col(&|r| r.max as f64)),
        ("mean (ms)", col(&|r| r.mean)),
        ("deliveries per run", col(&|r| r.deliveries as f64)),
        ("achieved publish rate (/s)", col(&|r| r.achieved_rate)),
        ("API publish call p50 (ms)", col(&|r| r.publish_p50 as f64)),
        ("idle RSS per daemon in the 7-node mesh, median (MiB)", idle),
    ] {
        println!("| {name} | {} | {} |", fmt_num(median(&v)), spread(&v));
    }
    Ok(())
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

// ---------------------------------------------------------------------------------------
// ingest: one daemon flooded by a member peer

const SINK: &str = "sink";
const FLOOD: &str = "flood";
const BENCH_TOPIC: &str = "bench/flood";

fn ingest_plan() -> NetworkPlan {
    let org = |s: &str| OrgId(s.to_string());
    NetworkPlan {
        network_name: "node-bench ingest (TEST-ONLY KEYS)".into(),
        orgs: [SINK, FLOOD]
            .iter()
            .map(|o| OrgPlan {
                org_id: org(o),
                name: o.to_string(),
                roles: vec![],
                governor: true,
                // The sink's second node starts only for `catchup`.
                nodes: if *o == SINK { 2 } else { 1 },
            })
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

const TOKEN: &str = "node-bench-token-0123456789abcdef";

/// Writes the files of the sink org's node `index`, dialling `bootstrap`; returns its
/// config path and p2p address.
fn write_sink(
    dir: &Path,
    network: &Network,
    index: usize,
    bootstrap: &[String],
) -> anyhow::Result<(PathBuf, Multiaddr)> {
    let node = &network.orgs[0].nodes[index];
    std::fs::create_dir_all(dir)?;
    SecretKeyFile::NodeSign(NodeKey::from_secret_bytes(&node.key.secret_bytes()))
        .write_new(&dir.join("node.key"), "node-bench, test only")?;
    SecretKeyFile::NodeAgreement(AgreementKey::from_secret_bytes(
        &node.agreement.secret_bytes(),
    ))
    .write_new(&dir.join("agreement.key"), "node-bench, test only")?;
    std::fs::write(dir.join("node.cert"), node.cert.as_bytes())?;
    write_private(&dir.join("api.token"), TOKEN.as_bytes())?;
    std::fs::write(dir.join("charter-v1.bin"), network.genesis.as_bytes())?;
    let p2p = free_port()?;
    let api = free_port()?;
    let text = alertmesh_node::config::render(
        "data",
        &[format!("/ip4/127.0.0.1/tcp/{p2p}")],
        bootstrap,
        &network.genesis_hash().to_hex(),
        &format!("127.0.0.1:{api}"),
        ".",
        "charter-v1.bin",
    );
    let path = dir.join("node.toml");
    std::fs::write(&path, text)?;
    let peer = net::peer_id_of(&node.key.public()).context("bad sink key")?;
    Ok((
        path,
        format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer}").parse()?,
    ))
}

/// The flooder's key package (seq 1) and `count` alerts (seq 2..) of about `size` bytes.
fn presign(
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
            kind: AlertKind::Indicator,
            title: format!("flood alert {i}"),
            description: "x".repeat(pad),
            severity: Severity::Medium,
            confidence: 50,
            observables: vec![Observable::Domain("bench.example.com".into())],
            labels: vec![],
            references: vec![],
            valid_from_ms: 0,
            valid_until_ms: None,
            related: vec![],
            stix: None,
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
/// `verify_strict` over the exact signed message, and the protocol's envelope check.
fn verify_rates(size: usize, each: Duration) -> (f64, f64) {
    let Ok((_, envs)) = presign(&ingest_plan().build(&mut rand::rngs::OsRng), 64, size) else {
        return (0.0, 0.0);
    };
    let decoded: Vec<SignedEnvelope> = envs
        .iter()
        .filter_map(|b| SignedEnvelope::decode(b, 1 << 20).ok())
        .collect();
    let raw: Vec<(
        ed25519_dalek::VerifyingKey,
        Vec<u8>,
        ed25519_dalek::Signature,
    )> = decoded
        .iter()
        .filter_map(|e| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(e.header().author.as_bytes()).ok()?;
            let msg = alertmesh_protocol::ids::tagged(
                alertmesh_protocol::ids::tags::ENVELOPE,
                e.signed_bytes(),
            );
            Some((
                key,
                msg,
                ed25519_dalek::Signature::from_bytes(&e.signature()),
            ))
        })
        .collect();
    let time = |f: &mut dyn FnMut(usize) -> bool| -> f64 {
        let start = Instant::now();
        let cpu0 = thread_self_cpu();
        let mut n = 0usize;
        while start.elapsed() < each {
            for _ in 0..64 {
                if !f(n) {
                    return 0.0;
                }
                n += 1;
            }
        }
        let cpu = thread_self_cpu() - cpu0;
        VERIFY_CPU_RATE.store((n as f64 / cpu.max(1e-3)) as u64, Ordering::Relaxed);
        n as f64 / start.elapsed().as_secs_f64()
    };
    let raw_rate = time(&mut |i| {
        let (k, m, s) = &raw[i % raw.len()];
        k.verify_strict(std::hint::black_box(m), s).is_ok()
    });
    RAW_VERIFY_CPU_RATE.store(VERIFY_CPU_RATE.load(Ordering::Relaxed), Ordering::Relaxed);
    let env_rate = time(&mut |i| decoded[i % decoded.len()].verify_signature().is_ok());
    (raw_rate, env_rate)
}

/// The last verify rate per CPU second of the measuring thread (immune to the machine's
/// other load, unlike the wall-clock rate).
static VERIFY_CPU_RATE: AtomicU64 = AtomicU64::new(0);
/// The raw `verify_strict` rate per CPU second.
static RAW_VERIFY_CPU_RATE: AtomicU64 = AtomicU64::new(0);

/// CPU seconds used by the calling thread.
fn thread_self_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// What the flooder did.
#[derive(Debug, Default, Clone)]
struct FloodStats {
    published: usize,
    queue_full: u64,
    other_errors: u64,
    window_waits: u64,
    first_publish: Option<Instant>,
    last_publish: Option<Instant>,
}

enum FloodCmd {
    Dial(Multiaddr),
    Publish(Vec<u8>, tokio::sync::oneshot::Sender<Result<(), String>>),
    Flood {
        envs: Vec<Vec<u8>>,
        window: u64,
        held: Arc<AtomicU64>,
        base: u64,
        done: tokio::sync::oneshot::Sender<FloodStats>,
    },
}

struct Flooder {
    cmds: tokio::sync::mpsc::Sender<FloodCmd>,
    slow_peer_failures: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Flooder {
    fn start(rt: &tokio::runtime::Runtime, network: &Network) -> anyhow::Result<Self> {
        let flood = &network.orgs[1].nodes[0];
        let keypair = net::keypair(&flood.key)?;
        let hello = Hello {
            cert: flood.cert.as_bytes().to_vec(),
        };
        let net_id = network.genesis.charter().network_id;
        let topic_name = TopicId::derive(&net_id, BENCH_TOPIC).gossip_name(&net_id);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let slow = Arc::new(AtomicU64::new(0));
        let slow2 = slow.clone();
        let _guard = rt.enter();
        let swarm = net::build_swarm(keypair, &["/ip4/127.0.0.1/tcp/0".parse()?])?;
        let task = rt.spawn(flood_task(swarm, rx, hello, topic_name, slow2));
        Ok(Self {
            cmds: tx,
            slow_peer_failures: slow,
            task,
        })
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Job {
    envs: Vec<Vec<u8>>,
    next: usize,
    window: u64,
    held: Arc<AtomicU64>,
    base: u64,
    stats: FloodStats,
    done: Option<tokio::sync::oneshot::Sender<FloodStats>>,
}

async fn flood_task(
    mut swarm: Swarm<Behaviour>,
    mut cmds: tokio::sync::mpsc::Receiver<FloodCmd>,
    hello: Hello,
    topic_name: String,
    slow: Arc<AtomicU64>,
) {
    let topic = TopicHash::from_raw(topic_name.clone());
    let _ = swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(topic_name));
    let mut job: Option<Job> = None;
    loop {
        let mut burst = 0;
        if let Some(j) = job.as_mut() {
            while j.next < j.envs.len() && burst < 64 {
                let held = j
                    .held
                    .load(Ordering::Relaxed)
                    .saturating_sub(j.base)
                    .min(j.next as u64);
                if j.window > 0 && j.next as u64 - held >= j.window {
                    j.stats.window_waits += 1;
                    break;
                }
                let data = std::mem::take(&mut j.envs[j.next]);
                match swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
                    Ok(_) => {}
                    Err(gossipsub::PublishError::AllQueuesFull(_)) => j.stats.queue_full += 1,
                    Err(_) => j.stats.other_errors += 1,
                }
                let now = Instant::now();
                j.stats.first_publish.get_or_insert(now);
                j.stats.last_publish = Some(now);
                j.next += 1;
                j.stats.published += 1;
                burst += 1;
            }
            if j.next == j.envs.len() {
                if let Some(done) = j.done.take() {
                    let _ = done.send(j.stats.clone());
                }
                job = None;
            }
        }
        let pause = if burst > 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(2)
        };
        tokio::select! {
            biased;
            ev = swarm.select_next_some() => on_flood_event(&mut swarm, ev, &hello, &slow),
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(FloodCmd::Dial(a)) => { let _ = swarm.dial(a); }
                Some(FloodCmd::Publish(data, reply)) => {
                    let r = swarm.behaviour_mut().gossipsub.publish(topic.clone(), data).map(|_| ()).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Some(FloodCmd::Flood { envs, window, held, base, done }) => {
                    job = Some(Job { envs, next: 0, window, held, base, stats: FloodStats::default(), done: Some(done) });
                }
            },
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn on_flood_event(
    swarm: &mut Swarm<Behaviour>,
    ev: SwarmEvent<BehaviourEvent>,
    hello: &Hello,
    slow: &AtomicU64,
) {
    match ev {
        SwarmEvent::ConnectionEstablished {
            peer_id,
            num_established,
            ..
        } if num_established.get() == 1 => {
            // The flooder trusts the sink it dialled: its gossip opens at once.
            swarm.behaviour_mut().gossipsub.admit(peer_id);
            swarm
                .behaviour_mut()
                .req
                .send_request(&peer_id, wire::Request::Hello(hello.clone()).encode());
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            message_id,
            propagation_source,
            ..
        })) => {
            swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    gossipsub::MessageAcceptance::Accept,
                );
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
            failed_messages,
            ..
        })) => {
            slow.fetch_add(
                (failed_messages.priority + failed_messages.non_priority) as u64,
                Ordering::Relaxed,
            );
        }
        SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::Message {
            message: request_response::Message::Request { channel, .. },
            ..
        })) => {
            let _ = swarm
                .behaviour_mut()
                .req
                .send_response(channel, wire::Response::Hello(hello.clone()).encode());
        }
        _ => {}
    }
}

struct IngestRun {
    count: usize,
    envelope_bytes: usize,
    verify_raw: f64,
    verify_raw_cpu: f64,
    verify_env: f64,
    held_rate: f64,
    durable_rate: f64,
    publish_rate: f64,
    idle_rss: (u64, u64),
    loaded_rss: (u64, u64),
    restart: Option<(f64, u64, u64)>,
    db_bytes: u64,
    sink_cpu: BTreeMap<String, f64>,
    bench_cpu: f64,
    flood: FloodStats,
    slow_peer: u64,
    dropped_events: f64,
    accepted: f64,
    /// `catchup`: (seconds syncing, envelopes/s, seconds from the late node's start).
    catchup: Option<(f64, f64, f64)>,
}

fn status(client: &Client) -> anyhow::Result<Value> {
    client.get::<Value>("/v1/status")
}

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

fn ingest_run(opts: &Opts, exe: &Path, run: usize) -> anyhow::Result<IngestRun> {
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

    let mut daemon = Daemon::spawn(exe, SINK, &config_path)?;
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
        eprintln!(
            "--- last lines of the sink's log ---\n{}",
            daemon.tail_log(15)
        );
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
    let (
        held_rate,
        durable_rate,
        publish_rate,
        idle_rss,
        loaded_rss,
        restart,
        sink_cpu,
        bench_cpu,
        flood,
        slow_peer,
        dropped_events,
        accepted,
    ) = result?;
    Ok(IngestRun {
        count: opts.count,
        envelope_bytes,
        verify_raw,
        verify_raw_cpu,
        verify_env,
        held_rate,
        durable_rate,
        publish_rate,
        idle_rss,
        loaded_rss,
        restart,
        db_bytes: dir_bytes(&data_dir),
        sink_cpu,
        bench_cpu,
        flood,
        slow_peer,
        dropped_events,
        accepted,
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
    let result = wait_until_ok(
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
        eprintln!(
            "--- last lines of the late node's log ---\n{}",
            late.tail_log(15)
        );
    }
    late.stop();
    let r = result?;
    println!("{:.1} s ({:.0} envelopes/s)", r.0, r.1);
    Ok(r)
}

type IngestOutcome = (
    f64,
    f64,
    f64,
    (u64, u64),
    (u64, u64),
    Option<(f64, u64, u64)>,
    BTreeMap<String, f64>,
    f64,
    FloodStats,
    u64,
    f64,
    f64,
);

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
) -> anyhow::Result<IngestOutcome> {
    let n = envs.len() as u64;
    wait_until_ok("the sink's API", Duration::from_secs(30), || {
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
    wait_until_ok(
        "the sink to admit the flooder",
        Duration::from_secs(30),
        || {
            daemon.check_alive()?;
            Ok(status(client)?["admitted_peers"].as_u64() == Some(1))
        },
    )?;
    // The key package, retried until gossipsub knows the sink is subscribed.
    wait_until_ok("the key package to go out", Duration::from_secs(30), || {
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
    wait_until_ok(
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
            let m = metrics_text(api, TOKEN);
            bail!(
                "stalled: the sink holds {env} of {target} envelopes (undecryptable {}); flooder published {} (queue full {}, other errors {}), gossipsub slow-peer failures {}; sink dropped_events {}, accepted {}",
                s["undecryptable"],
                flood.as_ref().map_or(0, |f| f.published),
                flood.as_ref().map_or(0, |f| f.queue_full),
                flood.as_ref().map_or(0, |f| f.other_errors),
                flooder.slow_peer_failures.load(Ordering::Relaxed),
                metric(&m, "alertmesh_dropped_events", ""),
                metric(
                    &m,
                    "alertmesh_envelopes",
                    "verdict=\"accept\",reason=\"ok\""
                ),
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
    let m = metrics_text(api, TOKEN);
    let dropped_events = metric(&m, "alertmesh_dropped_events", "");
    let accepted = metric(
        &m,
        "alertmesh_envelopes",
        "verdict=\"accept\",reason=\"ok\"",
    );
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
        wait_until_ok(
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
    Ok((
        held_rate,
        durable_rate,
        publish_rate,
        idle_rss,
        loaded_rss,
        restart,
        cpu_delta(&cpu_before, &cpu_after),
        bench_cpu,
        flood,
        slow_peer,
        dropped_events,
        accepted,
    ))
}

fn ingest(opts: &Opts) -> anyhow::Result<()> {
    let exe = alertmesh_binary(&opts.alertmesh)?;
    println!(
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
    println!("machine: {}", machine_note());
    let mut runs = Vec::new();
    for run in 1..=opts.runs {
        println!("run {run}/{}:", opts.runs);
        let r = ingest_run(opts, &exe, run)?;
        let secs = r.count as f64 / r.durable_rate;
        println!(
            "  held {:.0}/s, durable {:.0}/s (flooder published at {:.0}/s; queue-full {}, slow-peer failures {}, window waits {}); sink dropped_events {}, accepted {}",
            r.held_rate,
            r.durable_rate,
            r.publish_rate,
            r.flood.queue_full,
            r.slow_peer,
            r.flood.window_waits,
            r.dropped_events,
            r.accepted
        );
        let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
        for (k, v) in &r.sink_cpu {
            *by_name.entry(k.split('#').next().unwrap_or(k)).or_default() += v;
        }
        let cpu: Vec<String> = by_name
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}s ({:.0}%)", 100.0 * v / secs))
            .collect();
        let (busiest, top) = r
            .sink_cpu
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(("-", 0.0), |(k, v)| (k.as_str(), *v));
        println!(
            "  sink CPU over the flood ({secs:.1} s): {}; busiest thread {busiest} {top:.1}s ({:.0}% of the wall time); bench process {:.1}s; load average now {}",
            cpu.join(", "),
            100.0 * top / secs,
            r.bench_cpu,
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or("?")
        );
        println!(
            "  ratio to 2 × raw verify_strict ({:.0}/s): {:.2}; RSS idle {} KiB, holding {} alerts {} KiB (peak {} KiB); database {:.1} MiB",
            2.0 * r.verify_raw,
            r.durable_rate / (2.0 * r.verify_raw),
            r.idle_rss.0,
            r.count,
            r.loaded_rss.0,
            r.loaded_rss.1,
            r.db_bytes as f64 / 1048576.0
        );
        if let Some((ready, rss, hwm)) = r.restart {
            println!(
                "  restart on that database: ready in {ready:.1} s, RSS {rss} KiB (peak {hwm} KiB)"
            );
        }
        runs.push(r);
    }
    let col = |f: &dyn Fn(&IngestRun) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "\n| ingest, one daemon, {} alerts of {} B | median of {} runs | min–max (each run) |",
        opts.count,
        runs[0].envelope_bytes,
        runs.len()
    );
    println!("|---|---|---|");
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        (
            "validated + decrypted + durably stored (envelopes/s)",
            col(&|r| r.durable_rate),
        ),
        ("held per /v1/status (envelopes/s)", col(&|r| r.held_rate)),
        ("raw verify_strict, 1 thread (/s)", col(&|r| r.verify_raw)),
        (
            "ratio: durable rate / (2 × raw verify_strict)",
            col(&|r| r.durable_rate / (2.0 * r.verify_raw)),
        ),
        (
            "sink CPU, all threads (cores busy)",
            col(&|r| r.sink_cpu.values().sum::<f64>() * r.durable_rate / r.count as f64),
        ),
        (
            "sink CPU, busiest thread (share of wall time)",
            col(&|r| {
                r.sink_cpu.values().copied().fold(0.0, f64::max) * r.durable_rate / r.count as f64
            }),
        ),
        (
            "sink CPU per envelope, all threads (µs)",
            col(&|r| 1e6 * r.sink_cpu.values().sum::<f64>() / r.count as f64),
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
            col(&|r| r.count as f64 / (r.verify_raw_cpu * r.sink_cpu.values().sum::<f64>())),
        ),
        ("sink dropped_events", col(&|r| r.dropped_events)),
        ("idle daemon RSS (MiB)", col(&|r| mib(r.idle_rss.0))),
        (
            "daemon RSS holding the alerts (MiB)",
            col(&|r| mib(r.loaded_rss.0)),
        ),
        (
            "daemon peak RSS during the flood (MiB)",
            col(&|r| mib(r.loaded_rss.1)),
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
    if runs.iter().all(|r| r.restart.is_some()) {
        rows.push((
            "restart on that database: ready (s)",
            col(&|r| r.restart.map_or(0.0, |x| x.0)),
        ));
        rows.push((
            "restart on that database: RSS (MiB)",
            col(&|r| r.restart.map_or(0.0, |x| mib(x.1))),
        ));
        rows.push((
            "restart on that database: peak RSS (MiB)",
            col(&|r| r.restart.map_or(0.0, |x| mib(x.2))),
        ));
    }
    for (name, v) in rows {
        println!("| {name} | {} | {} |", fmt_num(median(&v)), spread(&v));
    }
    Ok(())
}
