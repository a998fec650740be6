//! Python scripts of `tests/python/` driving real clients (TAXII, MISP, a browser)
//! against real daemons: whether their packages are installed, and running one.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Whether `check` (Python code importing what a script needs) runs; without it the test
/// is skipped with `hint`, except under `CI=true`, where it fails.
pub fn available(what: &str, check: &str, hint: &str) -> anyhow::Result<bool> {
    let ok = std::process::Command::new("python3")
        .args(["-c", check])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Ok(true);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("{what} missing (CI=true): {hint}");
    }
    eprintln!("SKIPPED: {what} missing ({hint})");
    Ok(false)
}

/// The path of a script in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// Runs `tests/python/<name>` with `cfg` written as JSON to a file in `dir`; fails with
/// its output unless it exits 0.
pub fn run(name: &str, cfg: &Value, dir: &Path) -> anyhow::Result<()> {
    let cfg_path = dir.join(format!("{name}.json"));
    std::fs::write(&cfg_path, cfg.to_string())?;
    let out = std::process::Command::new("python3")
        .arg(script(name))
        .arg(&cfg_path)
        .output()
        .with_context(|| format!("cannot run python3 {name}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{name}: {stdout}{stderr}");
    if !out.status.success() {
        bail!("{name} failed ({}):\n{stdout}\n{stderr}", out.status);
    }
    Ok(())
}
