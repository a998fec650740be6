//! `alertmesh demo`: the seven example organizations as real daemons (child processes
//! of this binary) on loopback, exchanging realistic alerts; prints what each org
//! received and could read, checks access control and reports end-to-end latency.

use alertmesh_node::client::Client;
use alertmesh_node::config::Config;
use alertmesh_node::example::{self, ORGS, RunnableNode};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the demo waits for the mesh and for deliveries.
const WAIT: Duration = Duration::from_secs(60);

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Leave the network running (fixed ports) until Ctrl-C.
    pub keep: bool,
    /// Where to put the network's files (default: a temporary directory, or
    /// `target/alertmesh-demo` with `--keep`).
    pub dir: Option<PathBuf>,
    /// The example network directory.
    pub example_dir: Option<PathBuf>,
}

struct Daemons {
    children: Vec<(String, Child)>,
}

impl Daemons {
    /// Fails if a daemon the demo started has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        for (org, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("the node of {org} exited ({status}); its log is below");
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        for (_, child) in &mut self.children {
            // SIGTERM: the node flushes and exits; SIGKILL if it does not.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, child) in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        self.stop();
    }
}

fn find_example_dir(opt: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let candidates = opt.into_iter().chain([
        PathBuf::from("keys-example"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys-example"),
    ]);
    for c in candidates {
        if c.join("charter-v1.bin").exists() {
            return Ok(c);
        }
    }
    bail!("cannot find the example network (keys-example/); run the demo from the repository root")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Fails with the fix if a fixed port is taken (by another network, say).
fn check_port_free(port: u16, what: &str) -> anyhow::Result<()> {
    std::net::TcpListener::bind(("127.0.0.1", port)).map(drop).with_context(|| {
        format!(
            "port {port} ({what}) is already in use, perhaps by another `alertmesh demo --keep`; \
             stop that network (Ctrl-C in its terminal), or run the demo without --keep (free ports)"
        )
    })
}

/// Lays out a runnable copy of the example network in `dir`: on the fixed ports of
/// [`example::BASE_P2P_PORT`] and [`example::BASE_API_PORT`] (checked free) for `--keep`,
/// else on free ports.
fn materialize(example: &Path, dir: &Path, fixed_ports: bool) -> anyhow::Result<Vec<RunnableNode>> {
    let mut ports = Vec::new();
    for (i, (org, _, _)) in ORGS.iter().enumerate() {
        ports.push(if fixed_ports {
            let ports = (
                example::BASE_P2P_PORT + i as u16,
                example::BASE_API_PORT + i as u16,
            );
            check_port_free(ports.0, &format!("libp2p of {org}"))?;
            check_port_free(ports.1, &format!("API of {org}"))?;
            ports
        } else {
            (free_port()?, free_port()?)
        });
    }
    example::materialize(example, dir, &ports)
}

/// Polls `ready` until it holds; fails at once if a daemon exits or `ready` fails.
fn wait_until(
    daemons: &mut Daemons,
    what: &str,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        daemons.check()?;
        if ready()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {}s waiting for {what}", WAIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The alerts the demo publishes: (publishing org, topic, TLP, content).
fn scenario() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let now = alertmesh_node::clock::now_ms();
    let alert = |kind: &str,
                 title: &str,
                 description: &str,
                 severity: &str,
                 confidence: u8,
                 observables: Value,
                 labels: Value| {
        json!({ "alert": {
            "kind": kind, "title": title, "description": description, "severity": severity,
            "confidence": confidence, "observables": observables, "labels": labels,
            "references": [], "valid_from_ms": now, "valid_until_ms": null, "related": []
        }})
    };
    vec![
        (
            "fbi",
            "election-2020/disinfo",
            "AMBER",
            alert(
                "campaign",
                "Foreign influence operation spreading false polling-place closures",
                "A state-linked operation is posting fabricated notices that polling places in three swing counties are closed on election day.",
                "high",
                85,
                json!([{"type": "hashtag", "value": "PollsClosed2020"}, {"type": "social-account", "value": {"platform": "chirper", "handle": "@county_vote_alerts"}}]),
                json!(["election-2020", "voter-suppression"]),
            ),
        ),
        (
            "chirper",
            "election-2020/disinfo",
            "GREEN",
            alert(
                "account-network",
                "Takedown: 312 coordinated inauthentic accounts amplifying #PollsClosed2020",
                "Accounts created in the last 30 days, shared infrastructure, scheduled posting. Removed; handles attached.",
                "medium",
                90,
                json!([{"type": "social-account", "value": {"platform": "chirper", "handle": "@county_vote_alerts"}}, {"type": "ipv4", "value": [203, 0, 113, 45]}]),
                json!(["election-2020", "takedown"]),
            ),
        ),
        (
            "dhs",
            "phishing/domains",
            "GREEN",
            alert(
                "indicator",
                "Phishing domains impersonating county election offices",
                "Credential-phishing pages targeting poll workers' webmail.",
                "high",
                80,
                json!([{"type": "domain", "value": "vote-county-example.com"}, {"type": "url", "value": "https://elections-login.example.net/owa"}, {"type": "ipv4", "value": [198, 51, 100, 23]}]),
                json!(["phishing", "election-2020"]),
            ),
        ),
        (
            "odni",
            "agency/leads",
            "RED",
            alert(
                "advisory",
                "State-sponsored actor preparing a hack-and-leak against a campaign",
                "Reporting indicates staging of stolen documents for release in the final week.",
                "critical",
                70,
                json!([]),
                json!(["apt", "hack-and-leak"]),
            ),
        ),
        (
            "facespace",
            "platform/takedowns",
            "AMBER+STRICT",
            alert(
                "account-network",
                "Notice to agencies: removed page network posing as local news outlets",
                "47 pages with shared admins; content mirrored from the polling-place operation.",
                "medium",
                75,
                json!([{"type": "social-account", "value": {"platform": "facespace", "handle": "TriCountyDailyNews"}}]),
                json!(["takedown"]),
            ),
        ),
        (
            "searchly",
            "phishing/domains",
            "CLEAR",
            alert(
                "indicator",
                "Ads directing voters to a fake registration-check site",
                "Ad accounts suspended; landing domain shared with the phishing set.",
                "medium",
                65,
                json!([{"type": "ad-id", "value": {"network": "searchly-ads", "id": "AD-99812"}}, {"type": "domain", "value": "check-my-registration.example.org"}]),
                json!(["ads", "election-2020"]),
            ),
        ),
        (
            "vidtube",
            "election-2020/disinfo",
            "GREEN",
            alert(
                "sighting",
                "Sighting: same #PollsClosed2020 narrative in uploaded videos",
                "Confirms the campaign reported by the FBI; 58 videos removed.",
                "medium",
                80,
                json!([{"type": "hashtag", "value": "PollsClosed2020"}]),
                json!(["election-2020"]),
            ),
        ),
    ]
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs the demo.
pub fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let example = find_example_dir(opts.example_dir.clone())?;
    let temp;
    let dir = match (&opts.dir, opts.keep) {
        (Some(d), _) => d.clone(),
        (None, true) => PathBuf::from("target/alertmesh-demo"),
        (None, false) => {
            temp = tempfile::Builder::new()
                .prefix("alertmesh-demo-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    if opts.keep && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let nodes = materialize(&example, &dir, opts.keep)?;
    let configs: Vec<(String, PathBuf)> = nodes
        .iter()
        .map(|n| (n.org.clone(), n.config.clone()))
        .collect();
    let exe = std::env::current_exe()?;
    println!(
        "alertmesh demo: starting {} organizations as separate daemons in {}",
        configs.len(),
        dir.display()
    );
    let mut daemons = Daemons {
        children: Vec::new(),
    };
    for (org, path) in &configs {
        let log = std::fs::File::create(path.with_file_name("node.log"))?;
        let child = Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start the node of {org}"))?;
        daemons.children.push((org.clone(), child));
    }
    let mut clients = BTreeMap::new();
    for (org, path) in &configs {
        clients.insert(org.clone(), Client::from_config(&Config::load(path)?)?);
    }
    let started = Instant::now();
    let result = exercise(&clients, &nodes, &mut daemons, started);
    if let Err(e) = &result {
        eprintln!("demo failed: {e:#}");
        print_logs(&configs);
        return result;
    }
    if opts.keep {
        let fbi = dir.join("fbi/node.toml");
        let dhs = dir.join("dhs/node.toml");
        println!(
            "\nThe network keeps running (ports 4101-4107, API 8101-8107). From another terminal:"
        );
        println!("  cargo run --release -- tail --config {}", dhs.display());
        println!(
            "  cargo run --release -- publish --config {} --topic election-2020/disinfo --tlp AMBER --title \"Test alert\"",
            fbi.display()
        );
        println!("  cargo run --release -- status --config {}", fbi.display());
        print_consoles(&configs)?;
        println!("Press Ctrl-C to stop the network.");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let exited = rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            let mut check = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = term.recv() => return Ok(()),
                    _ = check.tick() => daemons.check()?,
                }
            }
        });
        if let Err(e) = exited {
            eprintln!("demo failed: {e:#}");
            print_logs(&configs);
            return Err(e);
        }
    }
    print!("\nstopping the network ... ");
    daemons.stop();
    println!("done.");
    Ok(())
}

/// Prints each node's console address and the token to log in with (a demo network's
/// own throwaway tokens, for the person at the terminal).
fn print_consoles(configs: &[(String, PathBuf)]) -> anyhow::Result<()> {
    println!("\nThe operator console of each node, in a browser (log in with the token):");
    for (org, path) in configs {
        let config = Config::load(path)?;
        let token = alertmesh_node::files::load_token(&config.api.token_file)?;
        println!(
            "  {org:<10} http://{}/   token {}",
            config.api.bind,
            token.as_str()
        );
    }
    Ok(())
}

fn print_logs(configs: &[(String, PathBuf)]) {
    for (org, path) in configs {
        let log = std::fs::read_to_string(path.with_file_name("node.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        eprintln!("--- last lines of {org}'s log ---");
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }
}

fn exercise(
    clients: &BTreeMap<String, Client>,
    nodes: &[RunnableNode],
    daemons: &mut Daemons,
    started: Instant,
) -> anyhow::Result<()> {
    // 1. Each API answering is the node the demo started (not another network's), and
    //    the mesh forms: every node admits every other.
    let n = nodes.len();
    wait_until(daemons, "every node to admit its peers", || {
        let mut all = true;
        for node in nodes {
            let Ok(status) = clients[&node.org].get::<Value>("/v1/status") else {
                all = false; // not listening yet
                continue;
            };
            let answered = status["peer_id"].as_str().unwrap_or("");
            if answered != node.peer_id {
                bail!(
                    "the API configured for {} answers as peer {answered}, not as the node the demo started ({}): another network holds its port",
                    node.org,
                    node.peer_id
                );
            }
            all &= status["admitted_peers"].as_u64() == Some(n as u64 - 1);
        }
        Ok(all)
    })?;
    // 2. Sender keys: every reader holds every publisher's key for each topic it reads.
    let topics: Vec<Value> = clients
        .values()
        .next()
        .context("no nodes")?
        .get("/v1/topics")?;
    let readers_of = |topic: &str| -> BTreeSet<String> {
        topics
            .iter()
            .find(|t| t["name"] == topic)
            .map(|t| {
                t["readers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let publishers_count = |topic: &str| -> u64 {
        topics
            .iter()
            .find(|t| t["name"] == topic)
            .and_then(|t| t["publishers"].as_array())
            .map_or(0, |a| a.len() as u64)
    };
    wait_until(daemons, "sender keys to reach every reader", || {
        Ok(clients.values().all(|c| {
            c.get::<Value>("/v1/status").is_ok_and(|s| {
                s["sender_keys"].as_object().is_some_and(|m| {
                    m.iter()
                        .all(|(topic, v)| v.as_u64() == Some(publishers_count(topic)))
                })
            })
        }))
    })?;
    println!(
        "mesh ready in {:.1}s: {n} nodes, each admitted {} peers and holds every sender key it may read\n",
        started.elapsed().as_secs_f64(),
        n - 1
    );

    // 3. Access control at the source.
    println!("access control at the publisher:");
    let forbidden = [
        (
            "vidtube",
            "agency/leads",
            "GREEN",
            "a platform publishing on the agency-only topic",
        ),
        (
            "chirper",
            "election-2020/disinfo",
            "RED",
            "TLP:RED on a topic whose maximum is AMBER",
        ),
    ];
    for (org, topic, tlp, what) in forbidden {
        let body = json!({"topic": topic, "tlp": tlp, "alert": {"kind": "advisory", "title": "should be refused", "description": "", "severity": "low", "confidence": 1, "observables": [], "labels": [], "references": [], "valid_from_ms": 0, "valid_until_ms": null, "related": []}});
        match clients[org].post::<Value>("/v1/alerts", &body) {
            Ok(_) => bail!("{what} was accepted"),
            Err(e) => println!("  refused, as it must be — {what}:\n    {e:#}"),
        }
    }

    // 4. Publish the scenario.
    println!("\npublishing {} alerts:", scenario().len());
    let mut published = Vec::new();
    for (org, topic, tlp, content) in scenario() {
        let mut body = content.clone();
        body["topic"] = json!(topic);
        body["tlp"] = json!(tlp);
        let receipt: Value = clients[org].post("/v1/alerts", &body)?;
        let title = content["alert"]["title"].as_str().unwrap_or("").to_string();
        println!("  {org:>9} -> {topic:<22} TLP:{tlp:<12} {title}");
        published.push((
            org.to_string(),
            topic.to_string(),
            receipt["id"].as_str().unwrap_or("").to_string(),
            title,
        ));
    }

    // 5. Wait for delivery to every reader.
    let expected = |org: &str| -> BTreeSet<String> {
        published
            .iter()
            .filter(|(author, topic, _, _)| author != org && readers_of(topic).contains(org))
            .map(|p| p.2.clone())
            .collect()
    };
    let received = |c: &Client| -> anyhow::Result<Vec<Value>> {
        let page: Value = c.get("/v1/alerts?limit=1000")?;
        Ok(page["alerts"].as_array().cloned().unwrap_or_default())
    };
    wait_until(daemons, "every alert to reach every reader", || {
        Ok(clients.iter().all(|(org, c)| {
            received(c).is_ok_and(|rows| {
                let ids: BTreeSet<String> = rows
                    .iter()
                    .filter_map(|r| r["id"].as_str().map(String::from))
                    .collect();
                expected(org).is_subset(&ids)
            })
        }))
    })?;

    // 6. Report per org and check access control at the receivers.
    println!("\nwhat each organization received and could read:");
    let mut latencies = Vec::new();
    let mut violations = Vec::new();
    for (org, c) in clients {
        let rows = received(c)?;
        let foreign: Vec<&Value> = rows.iter().filter(|r| r["org"] != org.as_str()).collect();
        let status: Value = c.get("/v1/status")?;
        println!(
            "  {org} ({} received, {} stored envelopes it cannot read)",
            foreign.len(),
            status["undecryptable"]
        );
        for r in &foreign {
            let topic = r["topic"].as_str().unwrap_or("");
            if !readers_of(topic).contains(org) {
                violations.push(format!("{org} read an alert on {topic}"));
            }
            let latency = r["received_ms"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(r["timestamp_ms"].as_u64().unwrap_or(0));
            latencies.push(latency);
            println!(
                "    from {:>9} on {:<22} {} ({} ms)",
                r["org"].as_str().unwrap_or(""),
                topic,
                r["content"]["alert"]["title"].as_str().unwrap_or(""),
                latency
            );
        }
        let unreadable: Vec<&str> = topics
            .iter()
            .filter_map(|t| t["name"].as_str())
            .filter(|t| !readers_of(t).contains(org))
            .collect();
        if !unreadable.is_empty() {
            println!("    (may not read: {})", unreadable.join(", "));
        }
    }
    if !violations.is_empty() {
        bail!("access control violated: {}", violations.join("; "));
    }
    latencies.sort_unstable();
    println!(
        "\naccess control holds: every reader org received every alert on its topics, and no other org could read them.\n\
         end-to-end latency (publish to decrypted at the reader) over {} deliveries: p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    // Everything above came from the daemons the demo started, and they are still up.
    daemons.check()
}
