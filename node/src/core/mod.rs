//! The node core: the node's protocol state (charters, certificates, chains, sender
//! keys, peers) and what turns network events and local requests into verdicts, stored
//! rows, decrypted alerts and outgoing messages.
//!
//! - [`state`]: [`CoreState`], a pure state machine (inputs in, outputs out; no I/O, no
//!   clock, no OS randomness). Its module docs give the contract.
//! - [`driver`]: [`Core`], the task that runs the state: it feeds it events and executes
//!   its outputs against the swarm, the database writer and the API's requests.
//! - [`handle`]: [`CoreHandle`], how the API talks to the task.
//! - `verify_pool`: worker threads that decode received envelopes and check their
//!   signatures on every core before the state judges them.
//! - The state's jobs, one module each: `admission` (who may talk to us), `requests`
//!   (the request-response protocol), `ingest` (judging and storing envelopes), `publish`
//!   (our envelopes and sender keys), `sync` (history sync), `evidence` (equivocation),
//!   `governance` (charters), `peers` (the connection set), `penalty` (gossip scores),
//!   `status` (what the API shows).
//!
//! The core runs beside the swarm task, so signature checks never stall the event loop.

mod admission;
mod answers;
mod chains;
pub mod driver;
mod evidence;
mod governance;
pub mod handle;
mod inclusions;
mod ingest;
mod peers;
mod penalty;
mod publish;
mod requests;
mod start;
pub mod state;
mod status;
mod sync;
#[cfg(test)]
mod tests;
mod throttle;
mod transparency;
mod verify_pool;

pub use admission::ADMISSION_TIMEOUT;
pub use answers::{PublishError, Receipt, SubmitError};
pub use driver::{Core, CoreParts};
pub use handle::{CoreHandle, Request};
pub use state::{CheckedGossip, CheckedPage, CoreState, Identity, Input, Now, Output};
pub use status::{Status, TopicInfo};
pub use sync::SYNC_PERIOD;
pub use throttle::RequestLimits;
