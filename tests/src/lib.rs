//! Integration tests across crates and processes.
//!
//! In-process networks of real nodes come from the public harness
//! ([`alertmesh_sim::harness`]), the hostile peer from [`alertmesh_sim::hostile`], node
//! files and sample alerts from [`alertmesh_sim::files`] and [`alertmesh_sim::samples`].
//! This crate adds what tests of separate daemon processes need ([`process`]), network
//! namespaces with a real NAT for them ([`netns`]), and a
//! bounded [`wait_for`] for `anyhow` tests.

pub mod netns;
pub mod process;

use std::time::Duration;

/// How long any wait in an in-process test may take before the test fails.
pub const WAIT: Duration = alertmesh_sim::harness::DEFAULT_TIMEOUT;

/// Polls `condition` until it holds; fails after [`WAIT`] with an error naming `what`.
pub async fn wait_for(what: &str, condition: impl AsyncFnMut() -> bool) -> anyhow::Result<()> {
    Ok(alertmesh_sim::harness::wait_for(what, WAIT, condition).await?)
}
