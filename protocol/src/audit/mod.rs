//! Auditing a node's signed log: the export file format (PROTOCOL.md §18) and a pure,
//! streaming verifier that an auditor can run on an exported file or on any other
//! in-memory log.
//!
//! # The export file
//!
//! `MAGIC (16 bytes) ‖ record*`, each record `type (u8) ‖ len (u32 LE) ‖ body ‖ digest (32)`
//! with `digest_i = SHA-256("alertmesh/v1/audit-record" ‖ 00 ‖ digest_{i-1} ‖ type ‖ len ‖
//! body)` and `digest_{-1}` = 32 zero bytes. The stored digest of record *i* is what
//! record *i+1* chains on, so a changed bit in a record's type, length or body fails that
//! record's own digest, and a removed, inserted or reordered record fails the digest of
//! the record after it: every change is located to a record. The digests are not a
//! signature: whoever rewrites the file can recompute them. What makes a log
//! trustworthy without trusting the node that hands it over is the content: every
//! envelope, certificate and charter is signed, and every author's stream is a hash
//! chain, so a removed envelope shows as a gap and a rewritten one as a bad signature.
//! The optional exporter signature in the end record only says which node vouches for
//! the file; it must be by the exporter the meta record names (both all zero: unsigned).
//!
//! A framing error (bad magic, a length over [`MAX_RECORD_BODY`], a record cut short)
//! stops the audit; everything else is reported and the audit goes on.
//!
//! # The verifier
//!
//! [`Auditor`] is a state machine fed in this order (the order of the file's sections):
//! charters, then certificates, then sender keys, then envelopes (each encrypted one
//! optionally followed by its plaintext), then evidence; [`Auditor::finish`] returns the
//! [`Report`]. It checks every signature with `verify_strict` over the exact bytes, every
//! charter transition, every certificate and its validity at each envelope's timestamp,
//! each author's right to publish under the charter version it named, every
//! per-(author, topic) chain, evidence, and (given sender keys) that plaintexts match
//! the ciphertexts. [`verify_export`] parses a file and drives an [`Auditor`]. It reads
//! no clock, no RNG and no files.
//!
//! # Layout
//!
//! - [`format`](mod@format): records, digests, [`RecordWriter`], [`ExportBuilder`], [`RecordReader`].
//! - [`report`]: [`Finding`], [`Severity`], [`Location`], [`Report`] and its summaries.
//! - [`auditor`]: the [`Auditor`] state machine driving the checks; the rights it checks
//!   are [`crate::policy`]'s, against the certificates the log holds (`certs`).
//! - [`verify`]: [`verify_export`], the file reader that drives an [`Auditor`].

pub mod auditor;
mod certs;
pub mod format;
pub mod report;
pub mod verify;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub use auditor::{AuditOptions, Auditor};
pub use format::{
    EXPORT_TAG, ExportBuilder, ExportEnd, ExportError, ExportMeta, ExportedKey, FORMAT_VERSION,
    FrameError, MAGIC, MAX_RECORD_BODY, RECORD_OVERHEAD, RECORD_TAG, RawRecord, RecordReader,
    RecordType, RecordWriter,
};
pub use report::{
    ChainSummary, EnvelopeRef, EvidenceSummary, ExportInfo, Finding, Location, MAX_FINDINGS,
    Report, Severity, Stats,
};
pub use verify::verify_export;
