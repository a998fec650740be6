//! Multi-process harness: a network of real `alertmesh run` daemons on loopback, each a
//! child process with its own config, keys, SQLite file and log, driven through the local
//! HTTP API and inspected through read-only connections to the database files.
//!
//! The daemon binary is `target/<profile>/alertmesh`, found next to the test executable
//! (`target/<profile>/deps/<test>`). `cargo test --workspace` builds it; when it is older
//! than the sources (say, `cargo test -p alertmesh-tests` after an edit), the harness runs
//! `cargo build -p alertmesh-node --bin alertmesh` for that target dir and profile before
//! the first daemon starts, so the daemon is never older than the sources; set
//! `ALERTMESH_BIN` to use another binary (no build then).
//!
//! Every wait polls a condition against a deadline; a [`TestGuard`] serializes the
//! multi-process tests of one test binary and kills every daemon and aborts the test
//! process if a test overruns its hard limit. Daemons are killed when the [`Cluster`] is
//! dropped.

use alertmesh_node::client::Client;
use alertmesh_protocol::bootstrap::{Network, simple_plan};
use alertmesh_protocol::{NodePublicKey, TopicId};
use alertmesh_sim::files::{TOKEN, write_node_files};
use alertmesh_sim::samples::sample_alert;
use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long one wait (a daemon starting, a mesh forming, a set converging) may take.
pub const WAIT: Duration = Duration::from_secs(45);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);
/// The topic of [`simple_plan`]: every org reads and publishes it.
pub const TOPIC: &str = "all";
/// Anti-entropy period of test daemons (the default, 15 s, would make tests slow).
pub const SYNC_INTERVAL_MS: u64 = 500;

/// Process ids of running daemons, for the watchdog.
static DAEMONS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// Ports handed out by this process.
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
/// One multi-process test at a time per test binary (two cores are shared).
static SERIAL: Mutex<()> = Mutex::new(());
/// The daemon binary, built once per test process.
static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held for the duration of a multi-process test: serializes such tests and enforces a
/// hard time limit (on overrun every daemon is killed and the test process exits).
pub struct TestGuard {
    _serial: MutexGuard<'static, ()>,
    done: Option<mpsc::Sender<()>>,
}

impl TestGuard {
    /// Waits for the other multi-process tests of this binary, then starts the watchdog.
    pub fn new(name: &str, limit: Duration) -> Self {
        let serial = lock(&SERIAL);
        // Building the daemon (first test only) does not count against the limit; an
        // error is reported where the binary is needed.
        let _ = alertmesh_bin();
        let (done, rx) = mpsc::channel::<()>();
        let name = name.to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("test {name} exceeded its hard limit of {limit:?}: killing daemons");
                kill_all_daemons();
                std::process::exit(101);
            }
        });
        Self {
            _serial: serial,
            done: Some(done),
        }
    }
}

impl Drop for TestGuard {
    fn drop(&mut self) {
        drop(self.done.take());
    }
}

fn kill_all_daemons() {
    for pid in lock(&DAEMONS).iter() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// The `alertmesh` binary for this test executable's target dir and profile, built (or
/// brought up to date) on first use.
pub fn alertmesh_bin() -> anyhow::Result<PathBuf> {
    BINARY
        .get_or_init(|| locate_and_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn locate_and_build() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ALERTMESH_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("ALERTMESH_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let exe = std::env::current_exe().context("cannot locate the test executable")?;
    // target/<profile>/deps/<test executable>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable is not inside target/<profile>/deps")?;
    let target_dir = profile_dir
        .parent()
        .context("the test executable is not inside a target dir")?;
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .context("unreadable profile directory name")?;
    let bin = profile_dir.join("alertmesh");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no workspace root")?;
    // `cargo test --workspace` builds the daemon beside the tests: use it when it is newer
    // than every source it is built from. (A nested `cargo build -p alertmesh-node`
    // resolves features differently and would rebuild much of the tree.)
    if is_newer_than_sources(&bin, workspace) {
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    // Variables cargo sets for the test process would change build-script fingerprints
    // (e.g. ring's) and make every nested build a rebuild.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_MANIFEST",
            "CARGO_PKG_",
            "CARGO_CRATE",
            "CARGO_PRIMARY",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || key == "CARGO_TARGET_TMPDIR"
            || key == "OUT_DIR"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "alertmesh-node",
            "--bin",
            "alertmesh",
        ])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status();
    match status {
        Ok(s) if s.success() && bin.is_file() => Ok(bin),
        Ok(s) if bin.is_file() => {
            eprintln!(
                "warning: `cargo build -p alertmesh-node --bin alertmesh` failed ({s}); using the existing {}",
                bin.display()
            );
            Ok(bin)
        }
        result => bail!(
            "the daemon binary {} is missing and building it failed ({result:?}); run `cargo build -p alertmesh-node --bin alertmesh` (same profile and CARGO_TARGET_DIR as the tests) or set ALERTMESH_BIN",
            bin.display()
        ),
    }
}

/// Whether `bin` exists and was written after every file of the crates it is built from
/// (`node/`, `protocol/`) and after `Cargo.lock`.
fn is_newer_than_sources(bin: &Path, workspace: &Path) -> bool {
    fn newest(path: &Path) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        std::fs::read_dir(path)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| newest(&e.path()))
            .max()
    }
    let Some(built) = std::fs::metadata(bin).and_then(|m| m.modified()).ok() else {
        return false;
    };
    [
        "node/src",
        "node/Cargo.toml",
        "protocol/src",
        "protocol/Cargo.toml",
        "Cargo.lock",
    ]
    .iter()
    .all(|p| newest(&workspace.join(p)).is_some_and(|t| t < built))
}

/// A loopback TCP port below the ephemeral range (so outgoing connections never take it
/// while its daemon is down), free now and not handed out before by this process.
pub fn free_port() -> anyhow::Result<u16> {
    use rand::Rng;
    let mut ports = lock(&PORTS);
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(20_000..32_000);
        if ports.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.insert(port);
            return Ok(port);
        }
    }
    bail!("no free loopback port found in 20000-32000")
}

/// A publish acknowledged with HTTP 201.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Envelope id (hex).
    pub id: String,
    /// Topic name.
    pub topic: String,
    /// Position in the publisher's chain.
    pub seq: u64,
}

/// One stored envelope of a chain, as a node's database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    /// Sequence number.
    pub seq: u64,
    /// Envelope id (hex).
    pub id: String,
    /// `alert`, `key_package`, ...
    pub kind: String,
    /// Sender-key epoch.
    pub key_epoch: u64,
}

/// One daemon of a [`Cluster`].
pub struct Daemon {
    /// Its org.
    pub org: String,
    /// Its directory (config, keys, `data/`, `node.log`).
    pub dir: PathBuf,
    /// Its config file.
    pub config_path: PathBuf,
    /// libp2p port.
    pub p2p_port: u16,
    /// API port.
    pub api_port: u16,
    /// libp2p peer id.
    pub peer_id: String,
    /// Node signing key (envelope author).
    pub node_key: NodePublicKey,
    /// The network namespace it runs in (`None`: the test's own, on loopback); its API is
    /// then reached from a thread inside that namespace ([`Daemon::call`]).
    pub netns: Option<String>,
    /// The IPv4 address it listens on for libp2p.
    pub host: String,
    child: Option<Child>,
    starts: u32,
}

impl Daemon {
    /// Its bootstrap multiaddr.
    pub fn multiaddr(&self) -> String {
        format!(
            "/ip4/{}/tcp/{}/p2p/{}",
            self.host, self.p2p_port, self.peer_id
        )
    }

    /// Runs `f` with a fresh API client, inside the daemon's namespace if it has one.
    pub fn call<T: Send>(
        &self,
        f: impl FnOnce(&Client) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let client = self.client();
        match &self.netns {
            None => f(&client),
            Some(ns) => crate::netns::Lab::within(ns, || f(&client))?,
        }
    }

    /// The API address.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// A fresh API client.
    pub fn client(&self) -> Client {
        Client::new(self.api_addr(), zeroize::Zeroizing::new(TOKEN.to_string()))
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        alertmesh_node::store::db_path(&self.data_dir())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            lock(&DAEMONS).remove(&c.id());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.reap();
    }
}

/// A network of daemons built from [`simple_plan`]: orgs `org-0..`, one node each, one
/// topic [`TOPIC`] that all read and publish.
pub struct Cluster {
    /// Keys and charter.
    pub network: Network,
    /// Daemons, in org order.
    pub daemons: Vec<Daemon>,
    bin: PathBuf,
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Writes keys and configs for `n` daemons (none started); every config lists every
    /// other daemon as bootstrap peer.
    pub fn new(n: usize, seed: u64) -> anyhow::Result<Self> {
        Self::with_plan(
            &simple_plan(n, alertmesh_node::clock::now_ms() - 60_000),
            seed,
        )
    }

    /// Like [`Cluster::new`] for any plan (one daemon per node of the plan).
    pub fn with_plan(
        plan: &alertmesh_protocol::bootstrap::NetworkPlan,
        seed: u64,
    ) -> anyhow::Result<Self> {
        use rand_chacha03::rand_core::SeedableRng;
        let bin = alertmesh_bin()?;
        let mut rng = rand_chacha03::ChaCha20Rng::seed_from_u64(seed);
        let network = plan.build(&mut rng);
        let n = network.nodes().count();
        let dir = tempfile::Builder::new()
            .prefix("alertmesh-faults-")
            .tempdir()?;
        let mut daemons = Vec::new();
        for (i, (org, material)) in network.nodes().enumerate() {
            let node_dir = dir.path().join(format!("{i}-{org}"));
            let config_path = write_node_files(
                &node_dir,
                &network,
                &material.key,
                &material.agreement,
                material.cert.as_bytes(),
            )?;
            let peer_id = alertmesh_node::net::peer_id_of(&material.key.public())
                .context("node key is not a libp2p key")?
                .to_string();
            daemons.push(Daemon {
                org: org.to_string(),
                dir: node_dir,
                config_path,
                p2p_port: free_port()?,
                api_port: free_port()?,
                peer_id,
                node_key: material.key.public(),
                netns: None,
                host: "127.0.0.1".into(),
                child: None,
                starts: 0,
            });
        }
        let cluster = Self {
            network,
            daemons,
            bin,
            dir,
        };
        let all: Vec<usize> = (0..n).collect();
        for i in 0..n {
            cluster.set_bootstrap(i, &all)?;
        }
        Ok(cluster)
    }

    /// Rewrites daemon `i`'s config so it dials exactly `peers` (itself excluded) at its
    /// next start.
    pub fn set_bootstrap(&self, i: usize, peers: &[usize]) -> anyhow::Result<()> {
        let bootstrap: Vec<String> = peers
            .iter()
            .filter(|j| **j != i)
            .map(|j| self.daemons[*j].multiaddr())
            .collect();
        self.write_config(i, &bootstrap, "quic = false\n")
    }

    /// Rewrites daemon `i`'s config: listening on its host and port, dialling
    /// `bootstrap`, with the top-level keys `extra` (TOML lines) added.
    pub fn write_config(&self, i: usize, bootstrap: &[String], extra: &str) -> anyhow::Result<()> {
        let d = &self.daemons[i];
        let text = alertmesh_node::config::render(
            "data",
            &[format!("/ip4/{}/tcp/{}", d.host, d.p2p_port)],
            bootstrap,
            &self.network.genesis_hash().to_hex(),
            &d.api_addr().to_string(),
            ".",
            "charter-v1.bin",
        );
        let text = text.replacen(
            "\n[keys]",
            &format!("sync_interval_ms = {SYNC_INTERVAL_MS}\n{extra}\n[keys]"),
            1,
        );
        std::fs::write(&d.config_path, text)?;
        Ok(())
    }

    /// Spawns daemon `i` (`alertmesh run --config`) and waits until its API answers.
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let bin = self.bin.clone();
        let d = &mut self.daemons[i];
        if d.is_running() {
            bail!("daemon {i} ({}) is already running", d.org);
        }
        d.reap();
        d.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.log_path())?;
        writeln!(log, "===== harness: start #{} =====", d.starts)?;
        let level = std::env::var("ALERTMESH_TEST_LOG").unwrap_or_else(|_| "info".into());
        let child = spawn_run(&bin, &d.config_path, &[], log, &level, d.netns.as_deref())?;
        lock(&DAEMONS).insert(child.id());
        d.child = Some(child);
        self.wait(&format!("the API of daemon {i}"), |c| {
            c.daemons[i]
                .call(|api| api.get::<serde_json::Value>("/v1/status"))
                .is_ok()
        })
    }

    /// Starts daemons one after the other (each listening before the next dials it).
    pub fn start_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        for &i in which {
            self.start(i)?;
        }
        Ok(())
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let d = &mut self.daemons[i];
        let Some(mut child) = d.child.take() else {
            bail!("daemon {i} is not running");
        };
        child.kill()?;
        child.wait()?;
        lock(&DAEMONS).remove(&child.id());
        Ok(())
    }

    /// SIGTERM and wait for a clean exit (SIGKILL after the deadline, which fails).
    pub fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        let d = &mut self.daemons[i];
        let Some(mut child) = d.child.take() else {
            bail!("daemon {i} is not running");
        };
        let pid = child.id();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        lock(&DAEMONS).remove(&pid);
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!("daemon {i} exited with {s} on SIGTERM:\n{}", d.log_tail(20)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("daemon {i} did not stop within 15 s of SIGTERM")
            }
        }
    }

    /// Polls `condition` until it holds; fails after [`WAIT`], or at once if a daemon that
    /// should run has died, with the tail of every log.
    pub fn wait(
        &mut self,
        what: &str,
        mut condition: impl FnMut(&mut Self) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            if condition(self) {
                return Ok(());
            }
            let dead = self.daemons.iter_mut().enumerate().find_map(|(i, d)| {
                let status = d.child.as_mut()?.try_wait().ok()??;
                Some(format!("daemon {i} ({}) died ({status})", d.org))
            });
            if let Some(dead) = dead {
                bail!("{dead} while waiting for {what}\n{}", self.logs());
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {WAIT:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The last lines of every daemon's log.
    pub fn logs(&self) -> String {
        self.daemons
            .iter()
            .enumerate()
            .map(|(i, d)| format!("--- daemon {i} ({}) ---\n{}\n", d.org, d.log_tail(15)))
            .collect()
    }

    /// `GET /v1/status` of daemon `i`.
    pub fn status(&self, i: usize) -> anyhow::Result<serde_json::Value> {
        self.daemons[i].call(|api| api.get("/v1/status"))
    }

    /// Waits until each daemon in `group` has admitted exactly the others of the group and
    /// holds the sender key of every member of the group.
    pub fn wait_mesh(&mut self, group: &[usize]) -> anyhow::Result<()> {
        let n = group.len() as u64;
        for &i in group {
            self.wait(&format!("daemon {i} to admit {} peers", n - 1), |c| {
                c.status(i).is_ok_and(|s| {
                    s["admitted_peers"].as_u64() == Some(n - 1)
                        && s["sender_keys"][TOPIC].as_u64() >= Some(n)
                })
            })?;
        }
        Ok(())
    }

    /// Publishes an alert through daemon `i`'s API; `Ok` only on HTTP 201.
    pub fn publish(&self, i: usize, title: &str) -> anyhow::Result<Receipt> {
        self.daemons[i].call(|api| publish_with(api, title))
    }

    fn reader(&self, i: usize) -> anyhow::Result<rusqlite::Connection> {
        Ok(alertmesh_node::store::open_reader(
            &self.daemons[i].data_dir(),
        )?)
    }

    fn topic_id(&self, name: Option<&str>) -> TopicId {
        let net = self.network.genesis.charter().network_id;
        match name {
            Some(name) => TopicId::derive(&net, name),
            None => TopicId::control(&net),
        }
    }

    /// Ids (hex) of the envelopes daemon `i`'s database holds on a topic (`None`: the
    /// control topic).
    pub fn envelope_ids(&self, i: usize, topic: Option<&str>) -> anyhow::Result<BTreeSet<String>> {
        let conn = self.reader(i)?;
        let mut q = conn.prepare("SELECT id FROM envelopes WHERE topic = ?1")?;
        let ids = q
            .query_map([self.topic_id(topic).as_bytes()], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
            .map(|r| r.map(hex::encode))
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Ids (hex) of the alerts daemon `i` decrypted and stored.
    pub fn stored_alert_ids(&self, i: usize) -> anyhow::Result<HashSet<String>> {
        let conn = self.reader(i)?;
        let mut q = conn.prepare("SELECT envelope_id FROM alerts")?;
        let ids = q
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .map(|r| r.map(hex::encode))
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Ids of every alert `GET /v1/alerts?topic=all` lists on daemon `i` (all pages).
    pub fn api_alert_ids(&self, i: usize) -> anyhow::Result<HashSet<String>> {
        self.daemons[i].call(api_alert_ids)
    }

    /// `GET /v1/peers` of daemon `i`.
    pub fn peers(&self, i: usize) -> anyhow::Result<Vec<serde_json::Value>> {
        self.daemons[i].call(|api| api.get("/v1/peers"))
    }

    /// The chain of daemon `author` on [`TOPIC`] as daemon `i`'s database holds it.
    pub fn chain(&self, i: usize, author: usize) -> anyhow::Result<Vec<ChainRow>> {
        let conn = self.reader(i)?;
        let mut q = conn.prepare(
            "SELECT seq, id, kind, key_epoch FROM envelopes WHERE author = ?1 AND topic = ?2 ORDER BY seq",
        )?;
        let rows = q
            .query_map(
                rusqlite::params![
                    self.daemons[author].node_key.as_bytes(),
                    self.topic_id(Some(TOPIC)).as_bytes()
                ],
                |r| {
                    Ok(ChainRow {
                        seq: r.get::<_, i64>(0)? as u64,
                        id: hex::encode(r.get::<_, Vec<u8>>(1)?),
                        kind: r.get(2)?,
                        key_epoch: r.get::<_, i64>(3)? as u64,
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Waits until every daemon in `group` has decrypted and stored every id in `ids`.
    pub fn wait_alerts_everywhere(
        &mut self,
        group: &[usize],
        ids: &HashSet<String>,
    ) -> anyhow::Result<()> {
        for &i in group {
            let mut missing = ids.len();
            let r = self.wait(
                &format!("daemon {i} to hold all {} acknowledged alerts", ids.len()),
                |c| {
                    missing = c
                        .stored_alert_ids(i)
                        .map_or(ids.len(), |have| ids.difference(&have).count());
                    missing == 0
                },
            );
            r.with_context(|| format!("daemon {i} still lacks {missing} of them"))?;
        }
        Ok(())
    }

    /// Waits until every daemon in `group` holds the identical set of envelope ids on
    /// [`TOPIC`] and on the control topic; returns the topic's set.
    pub fn wait_converged(&mut self, group: &[usize]) -> anyhow::Result<BTreeSet<String>> {
        let mut sizes = Vec::new();
        self.wait("identical envelope sets on every daemon", |c| {
            let mut sets = BTreeMap::new();
            sizes.clear();
            for &i in group {
                let (Ok(t), Ok(ctl)) = (c.envelope_ids(i, Some(TOPIC)), c.envelope_ids(i, None))
                else {
                    return false;
                };
                sizes.push((t.len(), ctl.len()));
                sets.insert(i, (t, ctl));
            }
            let first = sets.values().next().cloned();
            first.is_some_and(|f| sets.values().all(|s| *s == f))
        })
        .with_context(|| format!("(topic, control) sizes per daemon: {sizes:?}"))?;
        self.envelope_ids(group[0], Some(TOPIC))
    }

    /// Asserts that no daemon in `group` holds equivocation evidence or undecryptable
    /// envelopes and no chain has gaps.
    pub fn check_clean(&self, group: &[usize]) -> anyhow::Result<()> {
        for &i in group {
            let s = self.status(i)?;
            for key in ["evidence", "undecryptable", "chain_gaps"] {
                if s[key].as_u64() != Some(0) {
                    bail!("daemon {i}: {key} = {} (status {s})", s[key]);
                }
            }
        }
        Ok(())
    }
}

/// Ids of every alert `GET /v1/alerts?topic=all` lists through `client` (all pages).
fn api_alert_ids(client: &Client) -> anyhow::Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let mut after = 0i64;
    loop {
        let page: serde_json::Value = client.get(&format!(
            "/v1/alerts?topic={TOPIC}&after={after}&limit=1000"
        ))?;
        let alerts = page["alerts"].as_array().context("no alerts array")?;
        if alerts.is_empty() {
            return Ok(ids);
        }
        for a in alerts {
            ids.insert(a["id"].as_str().context("alert without id")?.to_string());
        }
        after = page["next"].as_i64().context("no cursor")?;
    }
}

/// Publishes an alert through a client; `Ok` only on HTTP 201.
pub fn publish_with(client: &Client, title: &str) -> anyhow::Result<Receipt> {
    let mut body = serde_json::to_value(sample_alert(title))?;
    body["topic"] = TOPIC.into();
    body["tlp"] = "GREEN".into();
    let r: serde_json::Value = client.post("/v1/alerts", &body)?;
    Ok(Receipt {
        id: r["id"].as_str().context("receipt without id")?.to_string(),
        topic: r["topic"]
            .as_str()
            .context("receipt without topic")?
            .to_string(),
        seq: r["seq"].as_u64().context("receipt without seq")?,
    })
}

/// A thread publishing alerts through one daemon's API as fast as it answers (after a
/// failure, e.g. while the daemon is down, it retries every 50 ms), recording every
/// acknowledged publish.
pub struct Publisher {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Receipt>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// Starts publishing through daemon `d`; titles start with `label`.
    pub fn start(d: &Daemon, label: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let addr = d.api_addr();
        let label = label.to_string();
        let thread = {
            let stop = stop.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut client = Client::new(addr, zeroize::Zeroizing::new(TOKEN.to_string()));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match publish_with(&client, &format!("{label} #{n}")) {
                        Ok(r) => lock(&acked).push(r),
                        Err(_) => {
                            // Pacing of retries against a daemon that is down.
                            std::thread::sleep(Duration::from_millis(50));
                            client = Client::new(addr, zeroize::Zeroizing::new(TOKEN.to_string()));
                        }
                    }
                }
            })
        };
        Self {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    /// Acknowledged publishes so far.
    pub fn acked(&self) -> Vec<Receipt> {
        lock(&self.acked).clone()
    }

    /// How many publishes were acknowledged so far.
    pub fn count(&self) -> usize {
        lock(&self.acked).len()
    }

    /// Stops the thread (after its request in flight) and returns every acknowledged
    /// publish.
    pub fn finish(mut self) -> Vec<Receipt> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.acked()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `condition` (no cluster) until it holds or [`WAIT`] passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> anyhow::Result<()> {
    wait_until_ok(what, WAIT, || Ok(condition()))
}

/// Polls `ready` until it is `Ok(true)` or `timeout` passes; the timeout's error names
/// `what` and the last error `ready` returned.
pub fn wait_until_ok(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match ready() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what} (last error: {e:#})")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Spawns `bin run --config config` and the `extra` arguments with `RUST_LOG=level`,
/// its stdout and stderr appended to `log`, no stdin,
/// inside network namespace `netns` if given (`ip netns exec`, which execs the daemon:
/// the child's pid is the daemon's).
pub fn spawn_run(
    bin: &Path,
    config: &Path,
    extra: &[&str],
    log: File,
    level: &str,
    netns: Option<&str>,
) -> anyhow::Result<Child> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("RUST_LOG", level)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} run --config {}",
                bin.display(),
                config.display()
            )
        })
}
