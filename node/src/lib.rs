//! alertmesh-node: the daemon each organization runs.
//!
//! - [`config`]: the TOML config file.
//! - [`node`]: starts everything ([`node::Node::start`]).
//! - [`net`]: the libp2p swarm task and its handle.
//! - [`core`]: validation, storage, decryption, publishing: the node's state owner.
//! - [`store`]: SQLite schema, writer thread, queries.
//! - [`api`]: the local HTTP API.
//! - [`audit`]: `alertmesh audit export|verify` (format and verifier in the protocol crate).
//! - [`lifecycle`]: each alert's current state with its updates, retraction and sightings.
//! - [`stix`]: STIX 2.1 bundles of the alerts a node holds.
//! - [`taxii`]: the TAXII 2.1 server under `/taxii2/` (collections = topics).
//! - [`misp`]: MISP event export/import and the MISP feed under `/misp/`.
//! - [`metrics`]: Prometheus metrics.
//! - [`example`]: the example network of `keys-example/`.
//! - [`client`]: a small client of the local API for the CLI and the demo.

pub mod api;
pub mod audit;
pub mod charter_spec;
pub mod client;
pub mod clock;
pub mod config;
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
