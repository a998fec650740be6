//! Runs the small scenarios of `simulations/scenarios/ci/` (≤ 20 nodes, bounded in time)
//! with the `alertmesh-sim` binary and checks their invariants from its JSON report:
//! every reader receives every alert (after healing, where there are faults), no
//! non-reader decrypts anything, hostile members are contained, and both gossipsub
//! baselines (signed on the node's stack, and anonymous) ran beside it.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// One scenario at a time: each already loads both cores, and measured latencies and CPU
/// times should not depend on which other test runs beside it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `ci/<file>`; returns its JSON report once the binary exited 0 and wrote a plot.
fn run(file: &str) -> anyhow::Result<Value> {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/ci")
        .join(file);
    let out = tempfile::tempdir()?;
    let status = Command::new(env!("CARGO_BIN_EXE_alertmesh-sim"))
        .arg(&scenario)
        .arg("--out")
        .arg(out.path())
        .arg("--quiet")
        .status()?;
    let name = format!("ci-{}", file.trim_end_matches(".toml"));
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join(format!("{name}.json")))?)?;
    anyhow::ensure!(
        status.success(),
        "{file}: alertmesh-sim exited with {status}; invariants: {:#}",
        report["invariants"]
    );
    let svg = out.path().join(format!("{name}-latency.svg"));
    anyhow::ensure!(
        svg.is_file(),
        "{file}: no latency plot at {}",
        svg.display()
    );
    Ok(report)
}

/// The check named `name` is among the report's invariants and holds.
fn holds(report: &Value, name: &str) -> bool {
    report["invariants"].as_array().is_some_and(|checks| {
        checks
            .iter()
            .any(|c| c["name"] == name && c["holds"] == true)
    })
}

/// Every (alert, honest reader) pair was delivered, on every topic.
fn assert_full_delivery(report: &Value) {
    let am = &report["alertmesh"];
    assert!(
        am["expected_deliveries"].as_u64().is_some_and(|n| n > 0),
        "{am:#}"
    );
    assert_eq!(
        am["delivered"], am["expected_deliveries"],
        "{:#}",
        report["invariants"]
    );
    let topics = am["delivery_per_topic"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(!topics.is_empty());
    for (topic, ratio) in topics {
        assert_eq!(ratio.as_f64(), Some(1.0), "topic {topic}");
    }
    assert!(holds(report, "delivery"), "{:#}", report["invariants"]);
    assert!(
        holds(report, "no_foreign_reads"),
        "{:#}",
        report["invariants"]
    );
}

#[test]
fn smoke_12_every_reader_gets_every_alert_and_no_one_else_reads() -> anyhow::Result<()> {
    let r = run("smoke-12.toml")?;
    assert_full_delivery(&r);
    assert_eq!(
        r["baseline"]["system"], "signed-gossipsub",
        "fair baseline ran"
    );
    assert_eq!(
        r["baseline"]["delivery_ratio"].as_f64(),
        Some(1.0),
        "the fair baseline delivers everything on a fault-free run"
    );
    assert!(r["ratios"].is_object(), "ratios against the fair baseline");
    assert!(
        r["anonymous"]["delivered"].as_u64().is_some_and(|n| n > 0),
        "anonymous baseline ran"
    );
    assert!(r["anonymous_ratios"].is_object(), "ratios against it");
    Ok(())
}

#[test]
fn churn_12_loses_nothing_across_restarts() -> anyhow::Result<()> {
    let r = run("churn-12.toml")?;
    assert!(
        r["plan"]["restarts"].as_u64().is_some_and(|n| n >= 3),
        "{:#}",
        r["plan"]
    );
    assert_full_delivery(&r);
    Ok(())
}

#[test]
fn partition_12_converges_after_healing() -> anyhow::Result<()> {
    let r = run("partition-12.toml")?;
    assert_full_delivery(&r);
    let converged = &r["alertmesh"]["heal_to_convergence_s"];
    assert!(converged.as_f64().is_some_and(|s| s >= 0.0), "{converged}");
    Ok(())
}

#[test]
fn hostile_12_attacks_fail_and_honest_alerts_flow() -> anyhow::Result<()> {
    let r = run("hostile-12.toml")?;
    assert!(
        r["plan"]["hostile"].as_u64().is_some_and(|n| n >= 1),
        "{:#}",
        r["plan"]
    );
    assert_full_delivery(&r);
    for check in ["forged_never_stored", "equivocation_detected_everywhere"] {
        assert!(holds(&r, check), "{check}: {:#}", r["invariants"]);
    }
    Ok(())
}
