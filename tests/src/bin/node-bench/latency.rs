//! `latency`: the seven-org example network of `keys-example/` as seven daemons, alerts
//! published through their APIs, publish-to-delivery latency measured at every reader.

use crate::Opts;
use crate::common::{
    Daemon, alertmesh_binary, bench_dir, column, free_port, median, metric, metrics_text,
    percentile, print_table, rss_kib, series, status, wait_until,
};
use alertmesh_node::client::Client;
use alertmesh_node::config::Config;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `--example-dir`, or `keys-example/` here or at the repository root.
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
    let ports = (0..alertmesh_node::example::ORGS.len())
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(alertmesh_node::example::materialize(example, dir, &ports)?
        .into_iter()
        .map(|n| (n.org, n.config))
        .collect())
}
/// One run's figures.
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

/// The API body of a benchmark alert.
fn alert_json(title: &str, description: &str) -> Value {
    json!({
        "kind": "indicator", "title": title, "description": description, "severity": "medium",
        "confidence": 80, "observables": [{"type": "domain", "value": "vote-example.com"}],
        "labels": ["bench"], "references": [], "valid_from_ms": 0, "valid_until_ms": null, "related": []
    })
}

/// One run: the daemons start, [`latency_exercise`] measures, the daemons stop.
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
            d.print_log_tail(&d.name, 10);
        }
    }
    for d in &mut daemons {
        d.stop();
    }
    result
}

/// Waits for the mesh, publishes on schedule and collects every delivery.
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
    wait_until(
        "every daemon to admit its 6 peers",
        Duration::from_secs(90),
        || {
            for d in daemons.iter_mut() {
                d.check_alive()?;
            }
            Ok(clients.values().all(|c| {
                status(c).is_ok_and(|s| s["admitted_peers"].as_u64() == Some(n as u64 - 1))
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
    wait_until(
        "every reader to hold every publisher's sender key",
        Duration::from_secs(60),
        || {
            Ok(clients.values().all(|c| {
                status(c).is_ok_and(|s| {
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
    wait_until(
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

/// `node-bench latency`.
pub fn run(opts: &Opts) -> anyhow::Result<()> {
    let exe = alertmesh_binary(&opts.alertmesh)?;
    let heading = format!(
        "node-bench latency: {} alerts at {}/s from the 7 example orgs, {} run(s); daemon {}",
        opts.alerts,
        opts.rate,
        opts.runs,
        exe.display()
    );
    let runs = series(heading, opts.runs, |run| {
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
        Ok(r)
    })?;
    let col = |f: &dyn Fn(&LatencyRun) -> f64| column(&runs, f);
    let idle = col(&|r| {
        median(
            &r.idle_rss_kib
                .iter()
                .map(|k| *k as f64 / 1024.0)
                .collect::<Vec<_>>(),
        )
    });
    print_table(
        "publish-to-delivery latency, 7 daemons",
        runs.len(),
        vec![
            ("p50 (ms)", col(&|r| r.p50 as f64)),
            ("p99 (ms)", col(&|r| r.p99 as f64)),
            ("max (ms)", col(&|r| r.max as f64)),
            ("mean (ms)", col(&|r| r.mean)),
            ("deliveries per run", col(&|r| r.deliveries as f64)),
            ("achieved publish rate (/s)", col(&|r| r.achieved_rate)),
            ("API publish call p50 (ms)", col(&|r| r.publish_p50 as f64)),
            ("idle RSS per daemon in the 7-node mesh, median (MiB)", idle),
        ],
    );
    Ok(())
}
