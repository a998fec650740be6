//! The command line as a user meets it (issue 14): the demo refuses to run on a taken
//! port instead of reporting another network's answers, and `publish --json` publishes a
//! request body from a file. Real processes of the `alertmesh` binary.

use alertmesh_tests::process::{Cluster, TestGuard, alertmesh_bin};
use anyhow::{Context, ensure};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The API port of the demo's fourth org with `--keep` (8101 + 3).
const DEMO_API_PORT: u16 = 8104;

/// Runs `cmd` to completion within `limit`, killing it on overrun; returns (status,
/// stdout, stderr).
fn run_bounded(
    mut cmd: Command,
    limit: Duration,
) -> anyhow::Result<(std::process::ExitStatus, String, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            return Ok((
                out.status,
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            anyhow::bail!(
                "still running after {limit:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With one of its fixed ports held by someone else, `demo --keep` fails at once, names
/// the port and the fix, and starts no daemon that could talk to the other network.
#[test]
fn demo_keep_fails_clearly_when_a_port_is_taken() -> anyhow::Result<()> {
    let _guard = TestGuard::new(
        "demo_keep_fails_clearly_when_a_port_is_taken",
        Duration::from_secs(120),
    );
    let held = std::net::TcpListener::bind(("127.0.0.1", DEMO_API_PORT))
        .with_context(|| format!("the test needs port {DEMO_API_PORT} free"))?;
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::new(alertmesh_bin()?);
    cmd.args(["demo", "--keep", "--dir"])
        .arg(dir.path().join("net"));
    let (status, stdout, stderr) = run_bounded(cmd, Duration::from_secs(60))?;
    drop(held);
    ensure!(
        !status.success(),
        "demo succeeded with its port taken:\n{stdout}"
    );
    ensure!(
        stderr.contains(&format!("port {DEMO_API_PORT}")) && stderr.contains("already in use"),
        "unclear error:\n{stderr}"
    );
    ensure!(
        !stdout.contains("mesh ready"),
        "demo claimed a mesh:\n{stdout}"
    );
    Ok(())
}

/// `alertmesh publish --json FILE` publishes the request body in the file, with no
/// `--title` or `--topic`.
#[test]
fn publish_json_file_needs_no_title() -> anyhow::Result<()> {
    let _guard = TestGuard::new("publish_json_file_needs_no_title", Duration::from_secs(120));
    let mut cluster = Cluster::new(1, 151)?;
    cluster.start(0)?;
    let mut body = serde_json::to_value(alertmesh_sim::samples::sample_alert("from a JSON file"))?;
    body["topic"] = "all".into();
    body["tlp"] = "GREEN".into();
    let file = cluster.dir.path().join("alert.json");
    std::fs::write(&file, serde_json::to_vec(&body)?)?;
    let mut cmd = Command::new(alertmesh_bin()?);
    cmd.arg("publish")
        .arg("--config")
        .arg(&cluster.daemons[0].config_path)
        .arg("--json")
        .arg(&file);
    let (status, stdout, stderr) = run_bounded(cmd, Duration::from_secs(30))?;
    ensure!(status.success(), "publish --json failed:\n{stderr}");
    ensure!(stdout.contains("published"), "{stdout}");
    let ids = cluster.stored_alert_ids(0)?;
    ensure!(ids.len() == 1, "stored {ids:?}");
    Ok(())
}
