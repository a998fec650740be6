//! Integration tests across crates and processes.
//!
//! In-process networks of real nodes come from the public harness
//! ([`alertmesh_sim::harness`]), the hostile peer from [`alertmesh_sim::hostile`], node
//! files and sample alerts from [`alertmesh_sim::files`] and [`alertmesh_sim::samples`].
//! This crate adds what tests of separate daemon processes need ([`process`]), network
//! namespaces with a real NAT for them ([`netns`]), running the Python scripts of real
//! clients ([`python`]) and a bounded [`wait_for`] for `anyhow` tests.

pub mod netns;
pub mod process;
pub mod python;

use std::time::Duration;

/// How long any wait in an in-process test may take before the test fails.
pub const WAIT: Duration = alertmesh_sim::harness::DEFAULT_TIMEOUT;

/// Polls `condition` until it holds; fails after [`WAIT`] with an error naming `what`.
pub async fn wait_for(what: &str, condition: impl AsyncFnMut() -> bool) -> anyhow::Result<()> {
    Ok(alertmesh_sim::harness::wait_for(what, WAIT, condition).await?)
}

/// `GET`s `path` from the local API at `api` with the harness token (blocking; call it
/// from `spawn_blocking` in async tests): the status and the JSON body (`null` if none).
pub fn api_get(api: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let resp = agent
        .get(format!("http://{api}{path}"))
        .header(
            "Authorization",
            format!("Bearer {}", alertmesh_sim::files::TOKEN),
        )
        .call()?;
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    ))
}
