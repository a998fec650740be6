//! alertmesh-node: the daemon each organization runs, as a library (the `alertmesh`
//! binary, its commands and the demo live in `src/main.rs` and `src/cli/`).
//!
//! # Layout
//!
//! Dependencies point one way, from the top of this list down:
//!
//! - [`node`]: starts and stops everything ([`node::Node::start`]).
//! - [`api`]: the local HTTP API, with [`taxii`] (TAXII 2.1 under `/taxii2/`) and
//!   [`misp`] (MISP events and feed under `/misp/`) mounted in it; [`http`] holds what
//!   they share; [`console`]: the operator console in the browser, served at `/`.
//! - [`audit`]: `alertmesh audit export|verify` over a data dir (format and verifier in
//!   the protocol crate); [`proposal`] and [`charter_spec`]: governance tooling.
//! - [`client`]: a small client of the local API (the CLI, the demo, tests).
//! - [`config`]: the TOML config file; [`example`]: the example network.
//! - [`core`]: the node's protocol state as a pure state machine
//!   ([`core::CoreState`]) and the driver task that runs it ([`core::Core`]).
//! - [`views`]: read models over the stored alerts (each alert's lifecycle, STIX
//!   bundles).
//! - [`net`]: the libp2p swarm task and its handle.
//! - [`store`]: the SQLite schema, the writer thread and every query, on the typed
//!   content of the protocol crate.
//! - [`stix`]: STIX 2.1 vocabulary and conversions, pure (ids, markings, patterns,
//!   checks, STIX objects → alerts); [`files`], [`clock`], [`metrics`]: operator files,
//!   the wall clock, Prometheus metrics.

pub mod api;
pub mod audit;
pub mod charter_spec;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod core;
pub mod example;
pub mod files;
pub mod http;
pub mod metrics;
pub mod misp;
pub mod net;
pub mod node;
pub mod proposal;
pub mod stix;
pub mod store;
pub mod taxii;
pub mod views;
