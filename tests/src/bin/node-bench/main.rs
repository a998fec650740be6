//! `node-bench`: measures the node figures of issue 3 against real `alertmesh run` daemons
//! (child processes) on loopback.
//!
//! ```text
//! node-bench latency [--alerts 350] [--rate 20] [--runs 3]
//! node-bench ingest  [--count 20000] [--size 1024] [--window 2000] [--runs 3] [--restart]
//! node-bench verify  [--size 1024]
//! node-bench guard   [--count 20000] [--runs 1]
//! node-bench index-cost [--count 20000] [--runs 3]
//! node-bench run     --config FILE [--without-index]
//! node-bench lookup  [--alerts 1000000] [--queries 1000] [--ingest 50000] [--runs 3] [--keep DIR]
//! node-bench memory  [--sizes 100000,1000000] [--size 1024] [--runs 3] [--keep DIR]
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
//! - `catchup`: `ingest`, then a second node of the sink's org that missed everything
//!   starts and catches up through history sync.
//! - `verify`: the single-thread signature-check rates that `ingest` is compared with.
//! - `guard`: the regression guard, under two minutes: open / verify, ingest / verify and
//!   catch-up / batch-verify ratios ([`guard`]).
//! - `index-cost`: `ingest` into a node with and into one without the observable index
//!   (issue 23), alternating; both are this binary's `run`.
//! - `run`: a node as `alertmesh run` starts it, optionally without the observable index.
//! - `lookup`: the observable index (issue 23): ingest with and without it, then
//!   lookup and search latencies over a store of `--alerts` alerts ([`lookup`]).
//! - `memory`: start-up time and idle resident memory of a daemon holding each of
//!   `--sizes` alerts (issue 20, [`memory`]).
//!
//! The daemon binary is looked up next to this one (`target/release/alertmesh`), or given
//! with `--alertmesh PATH`. Every wait is bounded; the process exits non-zero on failure.
//!
//! Layout: this file holds the command line; [`common`] the daemons, the `/proc`
//! readings and the tables every benchmark shares; one module per benchmark
//! ([`latency`], [`ingest`] with its in-process peer [`flooder`], [`verify`]).

mod common;
mod flooder;
mod guard;
mod ingest;
mod latency;
mod lookup;
mod memory;
mod serve;
mod verify;

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|c| c == "run") {
        return match serve::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("node-bench run FAILED: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("node-bench: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    common::start_watchdog(opts.timeout);
    let result = match opts.cmd.as_str() {
        "latency" => latency::run(&opts),
        "ingest" | "catchup" => ingest::run(&opts),
        "index-cost" => ingest::index_cost(&opts),
        "verify" => verify::run(&opts),
        "guard" => guard::run(&opts),
        "lookup" => lookup::run(&opts),
        "memory" => memory::run(&opts),
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
  node-bench guard   [--count 20000] [--runs 1]
                     regression guard (< 2 min): open/verify, ingest/verify and
                     catch-up/batch-verify ratios
  node-bench index-cost [--count 20000] [--runs 3]
                     ingest's durable rate into a node with and without the observable
                     index, alternating (both nodes are this binary's `run`)
  node-bench run     --config FILE [--without-index]
                     a node as `alertmesh run` starts it (used by index-cost)
  node-bench lookup  [--alerts 1000000] [--queries 1000] [--ingest 50000] [--runs 3]
                     ingest with/without the observable index, then lookup/search latencies
                     over a store of --alerts alerts (in --keep DIR, else a temporary dir)
  node-bench memory  [--sizes 100000,1000000] [--size 1024] [--runs 3]
                     start-up time and idle RSS of a daemon holding each number of alerts
common: [--alertmesh PATH] [--timeout SECONDS (whole process, default 1800)] [--keep DIR]
  --window 0 floods open-loop (no flow control); otherwise at most WINDOW envelopes are
  in flight (published but not yet held by the node, as its /v1/status reports).";

/// The parsed command line (see [`USAGE`]).
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
    queries: usize,
    ingest: usize,
    sizes: Vec<usize>,
}

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut o = Opts {
            cmd: args.first().cloned().context("no command")?,
            alerts: if args.first().is_some_and(|c| c == "lookup") {
                1_000_000
            } else {
                350
            },
            rate: 20.0,
            runs: if args.first().is_some_and(|c| c == "guard") {
                1
            } else {
                3
            },
            count: 20_000,
            size: 1024,
            window: 2000,
            restart: false,
            catchup: args.first().is_some_and(|c| c == "catchup" || c == "guard"),
            alertmesh: None,
            example_dir: None,
            timeout: 1800,
            keep: None,
            queries: 1000,
            ingest: 50_000,
            sizes: vec![100_000, 1_000_000],
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
                "--queries" => o.queries = value()?.parse()?,
                "--ingest" => o.ingest = value()?.parse()?,
                "--sizes" => {
                    o.sizes = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                other => bail!("unknown flag {other}"),
            }
        }
        if o.sizes.contains(&0) {
            bail!("--sizes must be positive");
        }
        if o.runs == 0 || o.alerts == 0 || o.count == 0 || o.rate <= 0.0 || o.queries == 0 {
            bail!("--runs, --alerts, --count, --queries and --rate must be positive");
        }
        Ok(o)
    }
}
