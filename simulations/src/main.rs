//! `alertmesh-sim`: runs a scenario on many real alertmesh nodes in this process, then the
//! same plan on signed gossipsub over the node's protocol stack (the fair baseline) and on
//! anonymous gossipsub alone (for reference), and writes a JSON report and SVG plots.
//!
//! ```text
//! cargo run --release -p alertmesh-sim -- simulations/scenarios/baseline-50.toml
//! ```
//!
//! Exit status: 0 when every invariant holds, 1 when one does not, 2 on error.

use alertmesh_sim::plan::Plan;
use alertmesh_sim::progress::Progress;
use alertmesh_sim::scenario::Scenario;
use alertmesh_sim::{alertmesh, baseline, plot, report};
use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs alertmesh simulation scenarios.
#[derive(Parser, Debug)]
#[command(
    name = "alertmesh-sim",
    about = "Runs N real alertmesh nodes in one process on a scenario, compares with signed and anonymous gossipsub",
    after_help = "Example: alertmesh-sim simulations/scenarios/baseline-50.toml --out simulations/results"
)]
struct Args {
    /// Scenario files (TOML).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Output directory for `<name>.json` and the SVGs (default: `results/` beside the
    /// scenario's directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Skip the gossipsub baselines.
    #[arg(long)]
    no_baseline: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alertmesh-sim: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    for path in &args.scenarios {
        match runtime.block_on(run_one(&args, path)) {
            Ok(passed) => failed |= !passed,
            Err(e) => {
                eprintln!("alertmesh-sim: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_one(args: &Args, path: &std::path::Path) -> anyhow::Result<bool> {
    let mut s = Scenario::load(path)?;
    if let Some(seed) = args.seed {
        s.seed = seed;
    }
    if args.no_baseline {
        s.baseline = false;
    }
    let out = match &args.out {
        Some(o) => o.clone(),
        None => path
            .parent()
            .and_then(|p| p.parent())
            .map_or_else(|| PathBuf::from("results"), |p| p.join("results")),
    };
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let progress = Progress::new(args.quiet);
    let plan = Plan::build(&s, alertmesh_node::clock::now_ms());
    progress.println(&format!(
        "{}: {} nodes, {} edges, {} publishes over {} s",
        s.name,
        plan.len(),
        plan.edges.len(),
        plan.publishes.len(),
        s.workload.duration_secs
    ));
    let am = alertmesh::run(&s, &plan, &progress)
        .await
        .with_context(|| format!("alertmesh run of {}", s.name))?;
    let links = am.ready_links.clone();
    let am = report::summarize(&s, &plan, &am);
    let baseline = async |kind: baseline::Kind| -> anyhow::Result<report::RunSummary> {
        let b = baseline::run_baseline(&s, &plan, &links, kind, &progress)
            .await
            .with_context(|| format!("{} baseline run of {}", kind.system(), s.name))?;
        Ok(report::summarize(&s, &plan, &b))
    };
    let (base, anonymous) = if s.baseline {
        (
            Some(baseline(baseline::Kind::Signed).await?),
            Some(baseline(baseline::Kind::Anonymous).await?),
        )
    } else {
        (None, None)
    };
    progress.finish();
    let mut command = format!("cargo run --release -p alertmesh-sim -- {}", path.display());
    if let Some(seed) = args.seed {
        command.push_str(&format!(" --seed {seed}"));
    }
    let r = report::build(&s, &plan, command, am, base, anonymous);
    let json = out.join(format!("{}.json", s.name));
    std::fs::write(&json, serde_json::to_string_pretty(&r)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let mut files = vec![json, plot::latency_cdf(&r, &out)?];
    if s.has_delivery_faults() {
        let mut faults = Vec::new();
        if let Some(p) = &s.faults.partition {
            faults.push((p.start_secs, p.heal_secs, "partitioned"));
        }
        if let Some(c) = &s.faults.churn {
            faults.push((c.start_secs, c.end_secs + c.down_secs, "restarts"));
        }
        files.push(plot::delivery_over_time(&r, &out, &faults)?);
    }
    print!("{}", report::text(&r));
    for f in files {
        println!("  wrote {}", f.display());
    }
    Ok(r.passed)
}
