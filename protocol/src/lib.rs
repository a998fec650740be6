//! alertmesh-protocol: the sans-IO core of alertmesh.
//!
//! Everything that must hold for an alert on the wire lives here, shared by the node,
//! the simulator, the tests and auditors. The crate does no networking and reads neither
//! the clock nor an RNG of its own: callers pass `now` and an RNG in.
//!
//! # Layout
//!
//! - [`ids`]: fixed-size ids and public keys, domain-separated hashing.
//! - [`keys`]: org root, node signing and node agreement keys.
//! - [`keyfile`]: key files on disk, checked before use.
//! - [`cert`]: node certificates co-signed by the node and signed by an org root.
//! - [`certs`]: the directory of verified certificates; which org a node key is.
//! - [`charter`]: membership, governors, topics and ACLs; threshold-signed versions.
//! - [`bootstrap`]: a new network (keys, certificates, genesis charter).
//! - [`topic`]: topic ids and their gossipsub names.
//! - [`alert`]: the alert model (maps onto STIX 2.1).
//! - [`envelope`]: `Header ‖ payload ‖ signature`, sealing and strict decoding.
//! - [`sender_key`]: per-topic sender keys, sealed to readers with HPKE in key packages.
//! - [`chain`]: per-author hash chains and where an envelope falls in one.
//! - [`evidence`]: proof of equivocation or a chain conflict.
//! - [`control`]: messages of the control topic.
//! - [`wire`]: messages of the node's request-response protocol.
//! - [`policy`]: the rights rules (who may publish what, where, under which charter
//!   version) with a typed [`policy::Refusal`], read by the validator and the auditor.
//! - [`validate`]: the ordered validation rules with typed verdicts.
//! - [`batch`]: decoding and batch signature checks of many envelopes, off the
//!   validator's thread, with `verify_strict`'s answers.
//! - [`ratelimit`]: per-org token buckets for gossip.
//! - [`audit`]: auditing a signed log:
//!   - [`audit::format`]: the export file's records, writer and reader;
//!   - [`audit::report`]: findings, locations, summaries;
//!   - [`audit::auditor`]: the streaming verifier;
//!   - [`audit::verify`]: reading an export file into the verifier.
//! - [`codec`]: the one module that uses bincode.
//!
//! `PROTOCOL.md` at the repository root specifies every byte.

pub mod alert;
pub mod audit;
pub mod batch;
pub mod bootstrap;
pub mod cert;
pub mod certs;
pub mod chain;
pub mod charter;
pub mod codec;
pub mod control;
pub mod envelope;
pub mod evidence;
pub mod ids;
pub mod keyfile;
pub mod keys;
pub mod policy;
pub mod ratelimit;
pub mod sender_key;
pub mod tlog;
pub mod topic;
pub mod validate;
pub mod wire;

pub use alert::{Alert, AlertKind, Content, Observable, Severity, Tlp};
pub use cert::{CertRequest, NodeCert, SignedNodeCert};
pub use certs::CertDirectory;
pub use chain::{ChainEntry, ChainView, MemoryChains};
pub use charter::{Charter, CharterChain, CharterUpdate, Limits, Member, SignedCharter, TopicRule};
pub use codec::DecodeError;
pub use control::ControlMessage;
pub use envelope::{Draft, Header, Kind, SignedEnvelope};
pub use evidence::Evidence;
pub use ids::{
    AgreementPublicKey, CharterHash, EnvelopeId, NetworkId, NodePublicKey, OrgId, OrgPublicKey,
    TopicId,
};
pub use keys::{AgreementKey, NodeKey, OrgRootKey};
pub use sender_key::{KeyPackage, SenderKey};
pub use validate::{Context, IgnoreReason, RejectReason, Source, Validator, Verdict};
