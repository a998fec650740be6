//! alertmesh-protocol: the sans-IO core of alertmesh.
//!
//! Everything that must hold for an alert on the wire lives here, shared by the node,
//! the simulator, the tests and auditors. The crate does no networking and reads neither
//! the clock nor an RNG of its own: callers pass `now` and an RNG in.
//!
//! - [`keys`], [`keyfile`]: org root, node signing and node agreement keys; key files.
//! - [`cert`], [`certs`]: node certificates co-signed by the node (proof of possession)
//!   and signed by org roots; a verified directory.
//! - [`charter`]: membership, governors, topics and ACLs; threshold-signed versions.
//! - [`alert`]: the alert model (maps onto STIX 2.1).
//! - [`envelope`]: `Header ‖ payload ‖ signature`, sealing and strict decoding.
//! - [`sender_key`]: per-topic sender keys, sealed to readers with HPKE in key packages.
//! - [`chain`], [`evidence`]: per-author hash chains, equivocation evidence.
//! - [`validate`]: the ordered validation rules with typed verdicts.
//! - [`audit`]: the audit export format and a pure verifier of a whole signed log.
//! - [`codec`]: the one module that uses bincode.
//!
//! `PROTOCOL.md` at the repository root specifies every byte.

pub mod alert;
pub mod audit;
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
