//! What every benchmark shares: the daemons it starts, the `/proc` and `/metrics`
//! readings, bounded waits, and the summary tables.

use alertmesh_node::client::Client;
use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pids of every daemon started, so the watchdog can kill them before exiting.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every daemon and exits the process once `secs` have passed (`--timeout`).
pub fn start_watchdog(secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!(
            "node-bench FAILED: the whole run took over {secs} s (--timeout); killing the daemons"
        );
        kill_all_children();
        std::process::exit(3);
    });
}

/// SIGKILL to every daemon still running.
pub fn kill_all_children() {
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

/// The daemon binary: `--alertmesh PATH`, or `alertmesh` next to this executable.
pub fn alertmesh_binary(opt: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
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
pub struct Daemon {
    /// Whose node it is (the org, or `late`).
    pub name: String,
    /// Its `node.toml`; `node.log` lies next to it.
    pub config: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `exe run --config config`, its output appended to `node.log` beside it.
    pub fn spawn(exe: &Path, name: &str, config: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(exe, &[], name, config)
    }

    /// [`Daemon::spawn`] with `extra` arguments after `run --config config`.
    pub fn spawn_with(
        exe: &Path,
        extra: &[&str],
        name: &str,
        config: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.with_file_name("node.log"))?;
        let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let child = alertmesh_tests::process::spawn_run(exe, config, extra, log, &level, None)
            .with_context(|| format!("the node of {name}"))?;
        if let Ok(mut pids) = CHILDREN.lock() {
            pids.push(child.id());
        }
        Ok(Self {
            name: name.to_string(),
            config: config.to_owned(),
            child,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, naming its log, if the daemon has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
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
    pub fn stop(&mut self) -> bool {
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

    /// Prints the last `lines` lines of its log to stderr, headed with `whose` log it is.
    pub fn print_log_tail(&self, whose: &str, lines: usize) {
        let text =
            std::fs::read_to_string(self.config.with_file_name("node.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        eprintln!(
            "--- last lines of {whose}'s log ---\n{}",
            all[all.len().saturating_sub(lines)..].join("\n")
        );
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
pub fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
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

/// CPU seconds (user + system) in the text of a `/proc/.../stat` file.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // fields after the name start at `state` (field 3): utime is field 14, stime 15.
    // USER_HZ is 100 on every Linux this runs on.
    Some((ticks(11) + ticks(12)) / 100.0)
}

/// CPU seconds (user + system) per thread name of a process.
pub fn thread_cpu(pid: u32) -> BTreeMap<String, f64> {
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
        let cpu = stat_cpu_seconds(&stat).unwrap_or(0.0);
        // Keyed by name and thread id, so the busiest single thread shows.
        out.insert(format!("{name}#{}", t.file_name().to_string_lossy()), cpu);
    }
    out
}

/// Per-thread CPU seconds spent between two [`thread_cpu`] readings (idle threads left out).
pub fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.005)
        .collect()
}

pub use alertmesh_tests::process::{free_port, wait_until_ok as wait_until};

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A counter from the Prometheus text (sum over all label sets whose line contains `filter`).
pub fn metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name) && l.contains(filter))
        .filter_map(|l| {
            l.split_whitespace()
                .last()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .sum()
}

/// The daemon's Prometheus text (empty on failure).
pub fn metrics_text(addr: &str, token: &str) -> String {
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

/// The nearest-rank percentile `p` (0..=1) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // nearest rank
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median (0 for none).
pub fn median(values: &[f64]) -> f64 {
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

/// `min–max (each run)` of a table row.
pub fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let fmt = |x: f64| fmt_decimals(x, 2);
    let runs: Vec<String> = values.iter().map(|x| fmt(*x)).collect();
    format!("{}–{} ({})", fmt(min), fmt(max), runs.join(", "))
}

/// CPUs, model and load average, printed under each benchmark's heading.
pub fn machine_note() -> String {
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

/// The directory of one run: `--keep DIR/{prefix}-{run}`, or a temporary directory
/// (removed when the returned guard drops).
pub fn bench_dir(
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

/// A table's median cell: whole numbers from 100 up, one decimal from 10, else two.
pub fn fmt_num(x: f64) -> String {
    fmt_decimals(x, if x.abs() < 10.0 { 2 } else { 1 })
}

/// `x` as a whole number from 100 up, else with `decimals` decimals.
fn fmt_decimals(x: f64, decimals: usize) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.decimals$}")
    }
}

/// Writes `dir/node.toml` for a node on loopback ports `p2p` and `api` (data in
/// `dir/data`) and returns its path.
pub fn write_config(
    dir: &Path,
    p2p: u16,
    api: u16,
    bootstrap: &[String],
    genesis_hash: &str,
    charter: &str,
) -> anyhow::Result<PathBuf> {
    let text = alertmesh_node::config::render(
        "data",
        &[format!("/ip4/127.0.0.1/tcp/{p2p}")],
        bootstrap,
        genesis_hash,
        &format!("127.0.0.1:{api}"),
        ".",
        charter,
    );
    let path = dir.join("node.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The daemon's `/v1/status`.
pub fn status(client: &Client) -> anyhow::Result<Value> {
    client.get::<Value>("/v1/status")
}

/// Prints a benchmark's heading and the machine, then runs it `runs` times, each under
/// a `run i/n:` line.
pub fn series<R>(
    heading: String,
    runs: usize,
    mut one: impl FnMut(usize) -> anyhow::Result<R>,
) -> anyhow::Result<Vec<R>> {
    println!("{heading}");
    println!("machine: {}", machine_note());
    let mut out = Vec::new();
    for run in 1..=runs {
        println!("run {run}/{runs}:");
        out.push(one(run)?);
    }
    Ok(out)
}

/// One value per run.
pub fn column<R>(runs: &[R], f: impl Fn(&R) -> f64) -> Vec<f64> {
    runs.iter().map(f).collect()
}

/// The Markdown summary: per row the median over the runs and each run's value.
pub fn print_table(title: &str, runs: usize, rows: Vec<(&str, Vec<f64>)>) {
    println!("\n| {title} | median of {runs} runs | min–max (each run) |");
    println!("|---|---|---|");
    for (name, v) in rows {
        println!("| {name} | {} | {} |", fmt_num(median(&v)), spread(&v));
    }
}

/// CPU seconds used by the calling thread.
pub fn thread_self_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| stat_cpu_seconds(&stat))
        .unwrap_or(0.0)
}
