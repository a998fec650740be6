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

use crate::alert::{Content, check_amendment};
use crate::cert::SignedNodeCert;
use crate::charter::{
    CharterChain, CharterError, CharterUpdate, MAX_ENVELOPE_BYTES, SignedCharter,
};
use crate::codec::{self, DecodeError};
use crate::envelope::{Kind, SignedEnvelope, decode_content};
use crate::evidence::{Evidence, Misbehaviour};
use crate::ids::{
    CharterHash, EnvelopeId, NetworkId, NodePublicKey, OrgId, OrgPublicKey, TopicId, sha256,
    tagged_hash,
};
use crate::keys::NodeKey;
use crate::sender_key::{KeyPackage, SenderKey};
use crate::topic::CONTROL_TOPIC_NAME;
use bincode::{Decode, Encode};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// The first 16 bytes of every export file.
pub const MAGIC: &[u8; 16] = b"alertmesh-audit\0";
/// The export format version written in [`ExportMeta::format_version`].
pub const FORMAT_VERSION: u32 = 1;
/// Largest record body accepted (an evidence record holds two envelopes of at most
/// 1 MiB each).
pub const MAX_RECORD_BODY: usize = 4 * 1024 * 1024;
/// Bytes a record adds around its body: type (1), length (4), digest (32).
pub const RECORD_OVERHEAD: usize = 1 + 4 + 32;
/// Domain-separation tag of the record digests.
pub const RECORD_TAG: &[u8] = b"alertmesh/v1/audit-record";
/// Domain-separation tag of the exporter's signature in the end record.
pub const EXPORT_TAG: &[u8] = b"alertmesh/v1/audit-export";
/// Most findings kept in detail; the rest are only counted per code.
pub const MAX_FINDINGS: usize = 10_000;

/// Record types, in the order the sections appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordType {
    /// `encode(ExportMeta)`; exactly once, first.
    Meta = 1,
    /// A signed charter's exact bytes.
    Charter = 2,
    /// A signed node certificate's exact bytes.
    Cert = 3,
    /// `encode(ExportedKey)`: a sender key (only in exports with plaintext).
    SenderKey = 4,
    /// `received_ms (u64 LE) ‖ a signed envelope's exact bytes`.
    Envelope = 5,
    /// `envelope id (32) ‖ plaintext`: the decrypted payload of the envelope record just
    /// before it (only in exports with plaintext).
    Plaintext = 6,
    /// `received_ms (u64 LE) ‖ encode(Evidence)`.
    Evidence = 7,
    /// `encode(ExportEnd)`; exactly once, last.
    End = 8,
}

impl RecordType {
    /// The type of a type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Meta,
            2 => Self::Charter,
            3 => Self::Cert,
            4 => Self::SenderKey,
            5 => Self::Envelope,
            6 => Self::Plaintext,
            7 => Self::Evidence,
            8 => Self::End,
            _ => return None,
        })
    }

    /// Name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::Charter => "charter",
            Self::Cert => "cert",
            Self::SenderKey => "sender_key",
            Self::Envelope => "envelope",
            Self::Plaintext => "plaintext",
            Self::Evidence => "evidence",
            Self::End => "end",
        }
    }
}

/// What an export contains and how it was selected (the meta record).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ExportMeta {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The network.
    pub network_id: NetworkId,
    /// The genesis hash the exporting node pins.
    pub genesis_hash: CharterHash,
    /// The exporting node's key (all zero if the export is not signed).
    pub exporter: NodePublicKey,
    /// When the export was written (exporter's clock).
    pub exported_ms: u64,
    /// The data topics selected (empty: all). The control topic is always included.
    pub topics: Vec<TopicId>,
    /// Only envelopes with `timestamp_ms ≥ since_ms`.
    pub since_ms: Option<u64>,
    /// Only envelopes with `timestamp_ms ≤ until_ms`.
    pub until_ms: Option<u64>,
    /// Sender keys and plaintexts are included.
    pub with_plaintext: bool,
}

/// A sender key in an export with plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ExportedKey {
    /// The publishing node.
    pub author: NodePublicKey,
    /// The topic.
    pub topic: TopicId,
    /// The key's epoch.
    pub epoch: u64,
    /// The 32-byte XChaCha20-Poly1305 key.
    pub key: [u8; 32],
}

/// The end record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ExportEnd {
    /// Number of records before this one (the meta record included).
    pub records: u64,
    /// The signing node (all zero: unsigned).
    pub exporter: NodePublicKey,
    /// Ed25519 by `exporter` over `"alertmesh/v1/audit-export" ‖ 00 ‖ digest of the last
    /// record before this one ‖ records (u64 LE)` (all zero: unsigned).
    pub signature: [u8; 64],
}

/// Why a record could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The body is larger than [`MAX_RECORD_BODY`].
    #[error("{what} of {len} bytes is larger than a record may be")]
    TooLarge {
        /// What the record holds.
        what: &'static str,
        /// Its size.
        len: usize,
    },
}

fn record_digest(prev: &[u8; 32], ty: u8, body: &[u8]) -> [u8; 32] {
    // len fits: bodies are at most MAX_RECORD_BODY < 2^32.
    let len = (body.len() as u32).to_le_bytes();
    tagged_hash(RECORD_TAG, &[prev, &[ty], &len, body])
}

fn export_message(last_digest: &[u8; 32], records: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(40);
    msg.extend_from_slice(last_digest);
    msg.extend_from_slice(&records.to_le_bytes());
    msg
}

/// Produces records one at a time (sans-IO: the caller writes [`MAGIC`] and then the
/// returned bytes, in order).
#[derive(Debug, Clone, Default)]
pub struct RecordWriter {
    prev: [u8; 32],
    count: u64,
}

impl RecordWriter {
    /// A writer for a new file (the caller writes [`MAGIC`] first).
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes of the next record.
    pub fn record(&mut self, ty: RecordType, body: &[u8]) -> Result<Vec<u8>, ExportError> {
        if body.len() > MAX_RECORD_BODY {
            return Err(ExportError::TooLarge {
                what: ty.as_str(),
                len: body.len(),
            });
        }
        let digest = record_digest(&self.prev, ty as u8, body);
        let mut out = Vec::with_capacity(body.len() + RECORD_OVERHEAD);
        out.push(ty as u8);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&digest);
        self.prev = digest;
        self.count += 1;
        Ok(out)
    }

    /// An envelope record: `received_ms ‖ bytes`.
    pub fn envelope(&mut self, received_ms: u64, bytes: &[u8]) -> Result<Vec<u8>, ExportError> {
        let mut body = Vec::with_capacity(8 + bytes.len());
        body.extend_from_slice(&received_ms.to_le_bytes());
        body.extend_from_slice(bytes);
        self.record(RecordType::Envelope, &body)
    }

    /// A plaintext record: `id ‖ plaintext`.
    pub fn plaintext(&mut self, id: &EnvelopeId, plaintext: &[u8]) -> Result<Vec<u8>, ExportError> {
        let mut body = Vec::with_capacity(32 + plaintext.len());
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(plaintext);
        self.record(RecordType::Plaintext, &body)
    }

    /// An evidence record: `received_ms ‖ encode(Evidence)`.
    pub fn evidence(&mut self, received_ms: u64, encoded: &[u8]) -> Result<Vec<u8>, ExportError> {
        let mut body = Vec::with_capacity(8 + encoded.len());
        body.extend_from_slice(&received_ms.to_le_bytes());
        body.extend_from_slice(encoded);
        self.record(RecordType::Evidence, &body)
    }

    /// The end record, signed by `signer` if given. Consumes the writer.
    pub fn end(mut self, signer: Option<&NodeKey>) -> Vec<u8> {
        let records = self.count;
        let (exporter, signature) = match signer {
            Some(key) => (
                key.public(),
                key.sign(EXPORT_TAG, &export_message(&self.prev, records)),
            ),
            None => (NodePublicKey::default(), [0u8; 64]),
        };
        let body = codec::encode(&ExportEnd {
            records,
            exporter,
            signature,
        });
        // An end record is 8 + 32 + 64 bytes: always within the limit.
        self.record(RecordType::End, &body).unwrap_or_default()
    }
}

/// Builds a whole export in memory (tests, benchmarks, small logs).
#[derive(Debug, Clone)]
pub struct ExportBuilder {
    out: Vec<u8>,
    writer: RecordWriter,
}

impl ExportBuilder {
    /// Starts a file with its meta record.
    pub fn new(meta: &ExportMeta) -> Self {
        let mut writer = RecordWriter::new();
        let mut out = MAGIC.to_vec();
        // A meta record is small: within the limit unless it lists millions of topics.
        out.extend(
            writer
                .record(RecordType::Meta, &codec::encode(meta))
                .unwrap_or_default(),
        );
        Self { out, writer }
    }

    /// Appends a record of `ty` with `body`.
    pub fn record(&mut self, ty: RecordType, body: &[u8]) -> Result<(), ExportError> {
        self.out.extend(self.writer.record(ty, body)?);
        Ok(())
    }

    /// Appends an envelope record.
    pub fn envelope(&mut self, received_ms: u64, bytes: &[u8]) -> Result<(), ExportError> {
        self.out.extend(self.writer.envelope(received_ms, bytes)?);
        Ok(())
    }

    /// Appends a plaintext record.
    pub fn plaintext(&mut self, id: &EnvelopeId, plaintext: &[u8]) -> Result<(), ExportError> {
        self.out.extend(self.writer.plaintext(id, plaintext)?);
        Ok(())
    }

    /// Appends an evidence record.
    pub fn evidence(&mut self, received_ms: u64, encoded: &[u8]) -> Result<(), ExportError> {
        self.out.extend(self.writer.evidence(received_ms, encoded)?);
        Ok(())
    }

    /// Appends the end record and returns the file.
    pub fn finish(mut self, signer: Option<&NodeKey>) -> Vec<u8> {
        self.out.extend(self.writer.end(signer));
        self.out
    }
}

/// One framed record as read from a file.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Position among the records (the meta record is 0).
    pub index: u64,
    /// Byte offset of its type byte in the file.
    pub offset: u64,
    /// The type byte.
    pub ty: u8,
    /// The body.
    pub body: &'a [u8],
    /// The stored digest equals the recomputed one.
    pub digest_ok: bool,
    /// The stored digest (what the next record chains on).
    pub digest: [u8; 32],
}

/// Why the framing of a file broke (reading stops there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The file does not start with [`MAGIC`].
    BadMagic,
    /// The file ends inside a record.
    Truncated {
        /// The record's index.
        index: u64,
        /// Its offset.
        offset: u64,
    },
    /// A length field exceeds [`MAX_RECORD_BODY`].
    TooLong {
        /// The record's index.
        index: u64,
        /// Its offset.
        offset: u64,
        /// The length read.
        len: u32,
    },
}

/// Iterates over the records of a file, checking each digest; stops at the first
/// framing error.
#[derive(Debug, Clone)]
pub struct RecordReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    index: u64,
    prev: [u8; 32],
    failed: bool,
}

impl<'a> RecordReader<'a> {
    /// A reader over a whole file.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            index: 0,
            prev: [0u8; 32],
            failed: false,
        }
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for RecordReader<'a> {
    type Item = Result<RawRecord<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.pos == 0 {
            if self.bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
                self.failed = true;
                return Some(Err(FrameError::BadMagic));
            }
            self.pos = MAGIC.len();
        }
        if self.pos >= self.bytes.len() {
            return None;
        }
        let offset = self.pos as u64;
        let index = self.index;
        let rest = &self.bytes[self.pos..];
        let truncated = FrameError::Truncated { index, offset };
        let Some(head) = rest.get(..5) else {
            self.failed = true;
            return Some(Err(truncated));
        };
        let ty = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len as usize > MAX_RECORD_BODY {
            self.failed = true;
            return Some(Err(FrameError::TooLong { index, offset, len }));
        }
        let end = 5 + len as usize;
        let (Some(body), Some(stored)) = (rest.get(5..end), rest.get(end..end + 32)) else {
            self.failed = true;
            return Some(Err(truncated));
        };
        let mut digest = [0u8; 32];
        digest.copy_from_slice(stored);
        let digest_ok = record_digest(&self.prev, ty, body) == digest;
        self.prev = digest;
        self.pos += end + 32;
        self.index += 1;
        Some(Ok(RawRecord {
            index,
            offset,
            ty,
            body,
            digest_ok,
            digest,
        }))
    }
}

/// Whether a finding means the log (or the network) has a problem, or is informational.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Note,
    /// A problem: `audit verify` exits non-zero.
    Problem,
}

/// Where a finding is: a record of an export file, or a row of a node's database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Record index in an export file (the meta record is 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Byte offset of the record in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Table of a node database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<&'static str>,
    /// Row key in that table (`cursor`, `version`, `rowid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<i64>,
}

impl Location {
    /// A record of an export file.
    pub fn record(index: u64, offset: u64) -> Self {
        Self {
            record: Some(index),
            offset: Some(offset),
            ..Self::default()
        }
    }

    /// A row of a database table.
    pub fn row(table: &'static str, row: i64) -> Self {
        Self {
            table: Some(table),
            row: Some(row),
            ..Self::default()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.record, self.offset, self.table, self.row) {
            (Some(r), Some(o), _, _) => write!(f, "record {r} (byte {o})"),
            (Some(r), None, _, _) => write!(f, "record {r}"),
            (None, Some(o), _, _) => write!(f, "byte {o}"),
            (None, None, Some(t), Some(row)) => write!(f, "{t} row {row}"),
            (None, None, Some(t), None) => write!(f, "{t}"),
            _ => f.write_str("(whole log)"),
        }
    }
}

/// The envelope a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvelopeRef {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Author's node key.
    pub author: NodePublicKey,
    /// Author's org, if the certificates attribute one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Topic id.
    pub topic: TopicId,
    /// Topic name, if a charter names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Sequence number.
    pub seq: u64,
}

/// One thing the audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Problem or note.
    pub severity: Severity,
    /// A stable label, e.g. `bad_signature`, `chain_gap` (PROTOCOL.md §18.6).
    pub code: &'static str,
    /// Where.
    pub location: Location,
    /// The envelope concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<EnvelopeRef>,
    /// What, in words.
    pub message: String,
}

/// One author's stream on one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// The author.
    pub author: NodePublicKey,
    /// Its org.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The topic.
    pub topic: TopicId,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Lowest seq held.
    pub first_seq: u64,
    /// Highest seq held.
    pub last_seq: u64,
    /// Envelopes held.
    pub envelopes: u64,
    /// Seqs missing between 1 (or the first held, for a time-filtered export) and the last.
    pub missing: u64,
}

/// Proven misbehaviour found in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceSummary {
    /// `equivocation` or `chain_conflict`.
    pub misbehaviour: &'static str,
    /// The author.
    pub author: NodePublicKey,
    /// Its org.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The topic.
    pub topic: TopicId,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// The (lower) seq.
    pub seq: u64,
    /// The two envelope ids.
    pub ids: [EnvelopeId; 2],
    /// Where it was found.
    pub location: Location,
}

/// Facts about the export file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportInfo {
    /// Records read (the end record included).
    pub records: u64,
    /// File size.
    pub bytes: u64,
    /// The exporting node, if the export is signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exporter: Option<NodePublicKey>,
    /// Its org, if a certificate attributes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exporter_org: Option<String>,
    /// The exporter's signature verified.
    pub signature_valid: bool,
    /// When it was exported (exporter's clock).
    pub exported_ms: u64,
    /// Data topics selected (empty: all).
    pub topics: Vec<TopicId>,
    /// Time filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Time filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Plaintexts included.
    pub with_plaintext: bool,
}

/// Counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Charter versions adopted (1 … this).
    pub charter_version: u64,
    /// Charter records read.
    pub charters: u64,
    /// Certificates that verified.
    pub certs: u64,
    /// Envelopes read.
    pub envelopes: u64,
    /// Envelopes whose signature verified.
    pub signatures_verified: u64,
    /// Envelopes by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Envelopes by topic name (topic id hex when no charter names it).
    pub by_topic: BTreeMap<String, u64>,
    /// Distinct authors.
    pub authors: u64,
    /// Distinct (author, topic) chains.
    pub chains: u64,
    /// Earliest claimed timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_timestamp_ms: Option<u64>,
    /// Latest claimed timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_timestamp_ms: Option<u64>,
    /// Evidence objects (records and evidence envelopes, deduplicated).
    pub evidence: u64,
    /// Sender keys given.
    pub sender_keys: u64,
    /// Plaintexts checked against their ciphertexts.
    pub plaintexts_checked: u64,
    /// Encrypted envelopes whose plaintext was not checked (no key: a topic the exporter
    /// cannot read, or no plaintext requested).
    pub plaintexts_unchecked: u64,
}

/// The result of an audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether no problem was found.
    pub ok: bool,
    /// Problems found (all, including those beyond [`MAX_FINDINGS`]).
    pub problems: u64,
    /// Notes.
    pub notes: u64,
    /// Findings by code (all of them).
    pub by_code: BTreeMap<&'static str, u64>,
    /// The first [`MAX_FINDINGS`] findings, in log order.
    pub findings: Vec<Finding>,
    /// Counts.
    pub stats: Stats,
    /// The network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_id: Option<NetworkId>,
    /// The genesis hash the audit pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genesis_hash: Option<CharterHash>,
    /// Every chain.
    pub chains: Vec<ChainSummary>,
    /// Every proven misbehaviour.
    pub evidence: Vec<EvidenceSummary>,
    /// About the export file (when auditing one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportInfo>,
}

impl Report {
    fn push(&mut self, finding: Finding) {
        *self.by_code.entry(finding.code).or_default() += 1;
        match finding.severity {
            Severity::Problem => self.problems += 1,
            Severity::Note => self.notes += 1,
        }
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(finding);
        }
    }

    /// Whether any finding has `code`.
    pub fn has(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }

    /// The findings with `code`.
    pub fn with_code<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.code == code)
    }
}

/// How to audit.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// The genesis hash to pin. `None`: the log's only version-1 charter (or the hash an
    /// export's meta record names), with a note saying so.
    pub pinned_genesis: Option<CharterHash>,
    /// Check plaintexts against ciphertexts (needs sender keys).
    pub check_plaintext: bool,
    /// Every encrypted envelope whose sender key is known must come with its plaintext
    /// (an export with plaintext).
    pub require_plaintext: bool,
    /// Chains may start above seq 1 (a time-filtered export).
    pub allow_leading_gaps: bool,
}

/// Per adopted charter version: topic id → index in `topics`.
struct Setup {
    chain: CharterChain,
    topic_index: Vec<HashMap<TopicId, usize>>,
    control: TopicId,
}

struct HeldCert {
    cert: SignedNodeCert,
    root: OrgPublicKey,
}

struct Pos {
    id: EnvelopeId,
    prev: EnvelopeId,
    loc: Location,
}

struct Amendment {
    env: EnvelopeRef,
    org: Option<OrgId>,
    original: EnvelopeId,
    loc: Location,
}

/// The streaming verifier; see the module docs for the call order.
pub struct Auditor {
    opts: AuditOptions,
    charters: Vec<(SignedCharter, Location)>,
    setup: Option<Option<Setup>>,
    network: Option<NetworkId>,
    genesis_hash: Option<CharterHash>,
    topic_names: HashMap<TopicId, String>,
    certs: HashMap<NodePublicKey, Vec<HeldCert>>,
    cert_bytes: HashSet<[u8; 32]>,
    chains: HashMap<(NodePublicKey, TopicId), BTreeMap<u64, Pos>>,
    keys: HashMap<(NodePublicKey, TopicId, u64), SenderKey>,
    awaiting: Option<(SignedEnvelope, Location)>,
    origins: HashMap<EnvelopeId, (Option<OrgId>, TopicId)>,
    amendments: Vec<Amendment>,
    evidence_seen: HashSet<[u8; 32]>,
    authors: HashSet<NodePublicKey>,
    report: Report,
}

fn charter_code(e: &CharterError) -> &'static str {
    match e {
        CharterError::Decode(_) | CharterError::Malformed(_) => "charter_malformed",
        CharterError::TooFewSignatures { .. } => "charter_threshold",
        CharterError::NotGovernor(_)
        | CharterError::DuplicateSignature(_)
        | CharterError::BadSignature(..) => "charter_bad_signature",
        CharterError::GenesisMismatch { .. } => "genesis_mismatch",
        CharterError::WrongNetwork => "charter_wrong_network",
        CharterError::WrongPrevHash(_) => "charter_prev_hash",
        CharterError::VersionNotIncreasing { .. } => "charter_version",
        CharterError::MissingPredecessor { .. } => "charter_missing_predecessor",
        CharterError::Halted(_) => "charter_after_fork",
    }
}

impl Auditor {
    /// A verifier with `opts`.
    pub fn new(opts: AuditOptions) -> Self {
        Self {
            opts,
            charters: Vec::new(),
            setup: None,
            network: None,
            genesis_hash: None,
            topic_names: HashMap::new(),
            certs: HashMap::new(),
            cert_bytes: HashSet::new(),
            chains: HashMap::new(),
            keys: HashMap::new(),
            awaiting: None,
            origins: HashMap::new(),
            amendments: Vec::new(),
            evidence_seen: HashSet::new(),
            authors: HashSet::new(),
            report: Report::default(),
        }
    }

    /// Sets the genesis hash to pin (before the first certificate or envelope).
    pub fn pin_genesis(&mut self, hash: CharterHash) {
        if self.opts.pinned_genesis.is_none() {
            self.opts.pinned_genesis = Some(hash);
        }
    }

    /// Allows chains that start above seq 1 (a time-filtered export).
    pub fn allow_leading_gaps(&mut self) {
        self.opts.allow_leading_gaps = true;
    }

    /// Requires a plaintext after every envelope whose sender key is known.
    pub fn require_plaintext(&mut self) {
        self.opts.require_plaintext = true;
        self.opts.check_plaintext = true;
    }

    /// Records a finding.
    pub fn finding(
        &mut self,
        severity: Severity,
        code: &'static str,
        location: Location,
        message: impl Into<String>,
    ) {
        self.report.push(Finding {
            severity,
            code,
            location,
            envelope: None,
            message: message.into(),
        });
    }

    fn env_finding(
        &mut self,
        severity: Severity,
        code: &'static str,
        location: &Location,
        env: &EnvelopeRef,
        message: impl Into<String>,
    ) {
        self.report.push(Finding {
            severity,
            code,
            location: location.clone(),
            envelope: Some(env.clone()),
            message: message.into(),
        });
    }

    /// A signed charter's exact bytes. All charters come before anything else.
    pub fn charter(&mut self, bytes: &[u8], loc: Location) {
        self.report.stats.charters += 1;
        if self.setup.is_some() {
            self.finding(
                Severity::Problem,
                "out_of_order",
                loc,
                "a charter after certificates or envelopes; ignored",
            );
            return;
        }
        match SignedCharter::decode(bytes) {
            Ok(c) => self.charters.push((c, loc)),
            Err(e) => self.finding(
                Severity::Problem,
                "charter_malformed",
                loc,
                format!("charter does not decode: {e}"),
            ),
        }
    }

    fn setup(&mut self) -> Option<&Setup> {
        if self.setup.is_none() {
            let s = self.build_setup();
            self.setup = Some(s);
        }
        self.setup.as_ref().and_then(Option::as_ref)
    }

    fn build_setup(&mut self) -> Option<Setup> {
        let mut charters = std::mem::take(&mut self.charters);
        charters.sort_by_key(|(c, _)| c.charter().version);
        let pinned = self.opts.pinned_genesis;
        let geneses: Vec<usize> = (0..charters.len())
            .filter(|i| charters[*i].0.charter().version == 1)
            .collect();
        let genesis = match pinned {
            Some(p) => geneses.iter().copied().find(|i| charters[*i].0.hash() == p),
            None if geneses.len() == 1 => {
                let hash = charters[geneses[0]].0.hash();
                self.finding(
                    Severity::Note,
                    "genesis_not_pinned",
                    Location::default(),
                    format!(
                        "no genesis hash was pinned; the log's only genesis {hash} is used (pass --genesis-hash to pin it independently)"
                    ),
                );
                Some(geneses[0])
            }
            None => None,
        };
        for i in &geneses {
            if Some(*i) != genesis {
                let (c, loc) = &charters[*i];
                let msg = match pinned {
                    Some(p) => format!("a genesis charter {} other than the pinned {p}", c.hash()),
                    None => format!("one of several genesis charters ({})", c.hash()),
                };
                let loc = loc.clone();
                self.finding(Severity::Problem, "genesis_mismatch", loc, msg);
            }
        }
        let Some(g) = genesis else {
            let msg = match pinned {
                Some(p) => format!("the log holds no genesis charter with the pinned hash {p}"),
                None if geneses.is_empty() => "the log holds no genesis charter".to_string(),
                None => "the log holds several genesis charters; pin one with --genesis-hash"
                    .to_string(),
            };
            self.finding(Severity::Problem, "no_genesis", Location::default(), msg);
            self.report_skipped_authorization();
            return None;
        };
        let (genesis_charter, genesis_loc) = charters[g].clone();
        let hash = genesis_charter.hash();
        let mut chain = match CharterChain::from_genesis(genesis_charter, &hash) {
            Ok(chain) => chain,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    charter_code(&e),
                    genesis_loc,
                    format!("genesis charter is not valid: {e}"),
                );
                self.report_skipped_authorization();
                return None;
            }
        };
        self.genesis_hash = Some(hash);
        self.network = Some(chain.current().charter().network_id);
        for (i, (c, loc)) in charters.into_iter().enumerate() {
            if i == g || c.charter().version == 1 {
                continue;
            }
            let version = c.charter().version;
            let hash = c.hash();
            match chain.offer(c) {
                Ok(CharterUpdate::Adopted(_)) => {}
                Ok(CharterUpdate::AlreadyKnown) => self.finding(
                    Severity::Note,
                    "charter_duplicate",
                    loc,
                    format!("charter version {version} ({hash}) appears twice"),
                ),
                Ok(CharterUpdate::Fork(fork)) => self.finding(
                    Severity::Problem,
                    "charter_fork",
                    loc,
                    format!(
                        "governance fork: two valid charters of version {} ({} and {}); versions from {} on are not adopted",
                        fork.version,
                        fork.first.hash(),
                        fork.second.hash(),
                        fork.version
                    ),
                ),
                Err(e) => self.finding(
                    Severity::Problem,
                    charter_code(&e),
                    loc,
                    format!("charter version {version} ({hash}) is not a valid transition: {e}"),
                ),
            }
        }
        let network = chain.current().charter().network_id;
        let mut topic_index = Vec::new();
        for signed in chain.history() {
            let mut map = HashMap::new();
            for (i, t) in signed.charter().topics.iter().enumerate() {
                let id = TopicId::derive(&network, &t.name);
                self.topic_names.insert(id, t.name.clone());
                map.insert(id, i);
            }
            topic_index.push(map);
        }
        let control = TopicId::control(&network);
        self.topic_names
            .insert(control, CONTROL_TOPIC_NAME.to_string());
        self.report.stats.charter_version = chain.current().charter().version;
        Some(Setup {
            chain,
            topic_index,
            control,
        })
    }

    fn report_skipped_authorization(&mut self) {
        self.finding(
            Severity::Problem,
            "authorization_unchecked",
            Location::default(),
            "without a valid genesis charter no certificate or publishing right can be checked; signatures and chains still are",
        );
    }

    /// A signed node certificate's exact bytes.
    pub fn cert(&mut self, bytes: &[u8], loc: Location) {
        self.setup();
        let cert = match SignedNodeCert::decode(bytes) {
            Ok(c) => c,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    "cert_malformed",
                    loc,
                    format!("certificate does not decode: {e}"),
                );
                return;
            }
        };
        if !self.cert_bytes.insert(sha256(bytes)) {
            return;
        }
        let Some(Some(setup)) = &self.setup else {
            return;
        };
        let network = setup.chain.current().charter().network_id;
        let mut last_err = None;
        let mut verified = None;
        for signed in setup.chain.history() {
            let Some(member) = signed.charter().member(&cert.cert().org_id) else {
                continue;
            };
            match cert.verify(&network, &member.root_pub) {
                Ok(()) => {
                    verified = Some(member.root_pub);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let c = cert.cert();
        match verified {
            Some(root) => {
                self.report.stats.certs += 1;
                self.certs
                    .entry(c.node_sign_pub)
                    .or_default()
                    .push(HeldCert { cert, root });
            }
            None => {
                let why = match last_err {
                    Some(e) => format!("{} ({e})", e.label()),
                    None => format!("org {} is not a member of any charter version", c.org_id),
                };
                let msg = format!(
                    "certificate of node {} for org {} (serial {}) does not verify: {why}",
                    c.node_sign_pub.short(),
                    c.org_id,
                    c.serial
                );
                self.finding(Severity::Problem, "cert_invalid", loc, msg);
            }
        }
    }

    /// A sender key (exports with plaintext).
    pub fn sender_key(&mut self, key: &ExportedKey, _loc: Location) {
        self.report.stats.sender_keys += 1;
        self.keys.insert(
            (key.author, key.topic, key.epoch),
            SenderKey::from_bytes(key.epoch, &key.key),
        );
    }

    /// The org the held certificates attribute `author` to: `Err(true)` if ambiguous,
    /// `Err(false)` if unknown.
    fn org_of(&self, author: &NodePublicKey) -> Result<&OrgId, bool> {
        let list = self.certs.get(author).ok_or(false)?;
        let first = &list.first().ok_or(false)?.cert.cert().org_id;
        if list.iter().any(|h| &h.cert.cert().org_id != first) {
            return Err(true);
        }
        Ok(first)
    }

    fn env_ref(&self, env: &SignedEnvelope) -> EnvelopeRef {
        let h = env.header();
        EnvelopeRef {
            id: env.id(),
            author: h.author,
            org: self.org_of(&h.author).ok().map(|o| o.to_string()),
            topic: h.topic_id,
            topic_name: self.topic_names.get(&h.topic_id).cloned(),
            seq: h.seq,
        }
    }

    /// A signed envelope's exact bytes, with the time the node received it if known.
    pub fn envelope(&mut self, bytes: &[u8], received_ms: Option<u64>, loc: Location) {
        self.setup();
        self.close_awaiting();
        self.report.stats.envelopes += 1;
        let env = match SignedEnvelope::decode(bytes, MAX_ENVELOPE_BYTES as usize) {
            Ok(env) => env,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    "envelope_malformed",
                    loc,
                    format!("envelope does not decode: {e}"),
                );
                return;
            }
        };
        let r = self.env_ref(&env);
        let h = env.header().clone();
        let stats = &mut self.report.stats;
        *stats.by_kind.entry(h.kind.as_str()).or_default() += 1;
        let topic_label = r.topic_name.clone().unwrap_or_else(|| h.topic_id.to_hex());
        *stats.by_topic.entry(topic_label).or_default() += 1;
        stats.first_timestamp_ms = Some(
            stats
                .first_timestamp_ms
                .map_or(h.timestamp_ms, |t| t.min(h.timestamp_ms)),
        );
        stats.last_timestamp_ms = Some(
            stats
                .last_timestamp_ms
                .map_or(h.timestamp_ms, |t| t.max(h.timestamp_ms)),
        );
        self.authors.insert(h.author);

        // Signature over the exact bytes.
        match env.verify_signature() {
            Ok(()) => self.report.stats.signatures_verified += 1,
            Err(e) => self.env_finding(
                Severity::Problem,
                "bad_signature",
                &loc,
                &r,
                format!("the author's signature does not verify ({e})"),
            ),
        }
        self.authorize(&env, &r, received_ms, &loc);
        self.check_clear_payload(&env, &r, &loc);

        // Chain position.
        let chain = self.chains.entry((h.author, h.topic_id)).or_default();
        match chain.get(&h.seq) {
            Some(held) if held.id == env.id() => {
                let msg = format!("the same envelope appears twice (first at {})", held.loc);
                self.env_finding(Severity::Note, "duplicate_envelope", &loc, &r, msg);
            }
            Some(held) => {
                let msg = format!(
                    "two different envelopes at seq {}: {} (at {}) and this one: equivocation",
                    h.seq, held.id, held.loc
                );
                self.env_finding(Severity::Problem, "equivocation_in_log", &loc, &r, msg);
            }
            None => {
                chain.insert(
                    h.seq,
                    Pos {
                        id: env.id(),
                        prev: h.prev,
                        loc: loc.clone(),
                    },
                );
            }
        }
        if h.kind.is_encrypted() {
            if self.opts.check_plaintext
                && self.keys.contains_key(&(h.author, h.topic_id, h.key_epoch))
            {
                self.awaiting = Some((env, loc));
            } else {
                self.report.stats.plaintexts_unchecked += 1;
            }
        }
    }

    /// Rules of PROTOCOL.md §18.5 (validation rules 3–6 and 9, for the named version).
    fn authorize(
        &mut self,
        env: &SignedEnvelope,
        r: &EnvelopeRef,
        received_ms: Option<u64>,
        loc: &Location,
    ) {
        let h = env.header();
        let Some(Some(setup)) = &self.setup else {
            return;
        };
        let latest = setup.chain.current().charter();
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        let mut notes: Vec<(&'static str, String)> = Vec::new();
        if h.network_id != latest.network_id {
            problems.push(("wrong_network", "the envelope names another network".into()));
        }
        let Some(named) = setup.chain.version(h.charter_version) else {
            problems.push((
                "unknown_charter_version",
                format!(
                    "names charter version {}, which the log does not establish (adopted: 1..{})",
                    h.charter_version, latest.version
                ),
            ));
            for (code, msg) in problems {
                self.env_finding(Severity::Problem, code, loc, r, msg);
            }
            return;
        };
        let named = named.charter();
        let named_index = (named.version - 1) as usize;
        let is_control = h.topic_id == setup.control;
        if env.as_bytes().len() > named.limits.max_envelope_bytes as usize {
            problems.push((
                "too_large",
                format!(
                    "{} bytes, over the {}-byte limit of charter version {}",
                    env.as_bytes().len(),
                    named.limits.max_envelope_bytes,
                    named.version
                ),
            ));
        }
        let org = match self.org_of(&h.author) {
            Ok(org) => Some(org.clone()),
            Err(true) => {
                problems.push((
                    "ambiguous_author",
                    "the author's node key is certified by more than one org".into(),
                ));
                None
            }
            Err(false) => {
                problems.push((
                    "unknown_author",
                    "no valid certificate in the log names the author's node key".into(),
                ));
                None
            }
        };
        if let Some(org) = &org {
            let member = named.member(org);
            let valid = member.is_some_and(|m| {
                self.certs.get(&h.author).is_some_and(|list| {
                    list.iter()
                        .any(|c| c.root == m.root_pub && c.cert.valid_at(h.timestamp_ms))
                })
            });
            if !valid {
                let why = if member.is_none() {
                    format!(
                        "org {org} is not a member of charter version {}",
                        named.version
                    )
                } else {
                    format!(
                        "no certificate of the author under org {org}'s root in version {} covers the timestamp {}",
                        named.version, h.timestamp_ms
                    )
                };
                problems.push(("cert_not_valid", why));
            }
        }
        let cutoff = latest.cutoff(&h.author, &h.topic_id);
        if let Some(last_seq) = cutoff {
            if h.seq > last_seq {
                problems.push((
                    "beyond_cutoff",
                    format!(
                        "seq {} is beyond the cut-off {last_seq} that charter version {} records",
                        h.seq, latest.version
                    ),
                ));
            }
        }
        let historical = cutoff.is_some();
        // Publishing rights and TLP under the named version.
        fn rule_of<'c>(
            setup: &Setup,
            topic: &TopicId,
            index: usize,
            charter: &'c crate::charter::Charter,
        ) -> Option<&'c crate::charter::TopicRule> {
            setup
                .topic_index
                .get(index)
                .and_then(|m| m.get(topic))
                .and_then(|i| charter.topics.get(*i))
        }
        if is_control {
            if h.kind != Kind::Evidence {
                problems.push((
                    "control_not_evidence",
                    format!("a {} envelope on the control topic", h.kind.as_str()),
                ));
            }
        } else {
            match rule_of(setup, &h.topic_id, named_index, named) {
                None => problems.push((
                    "unknown_topic",
                    format!("the topic is not in charter version {}", named.version),
                )),
                Some(rule) => {
                    if h.kind == Kind::Evidence {
                        problems.push((
                            "evidence_on_data_topic",
                            "an evidence envelope on a data topic".into(),
                        ));
                    }
                    if let Some(org) = &org {
                        if !rule.publishers.contains(org) {
                            problems.push((
                                "not_publisher",
                                format!(
                                    "org {org} may not publish on {:?} under charter version {}",
                                    rule.name, named.version
                                ),
                            ));
                        }
                    }
                    if h.tlp > rule.max_tlp {
                        problems.push((
                            "tlp_too_high",
                            format!(
                                "{} is above the maximum {} of {:?} in charter version {}",
                                h.tlp, rule.max_tlp, rule.name, named.version
                            ),
                        ));
                    }
                }
            }
            // Rights withdrawn since, without a cut-off (a governance lapse, §13.3).
            if !historical && latest.version != named.version {
                if let Some(org) = &org {
                    let now_ok = latest.member(org).is_some()
                        && !latest.is_revoked(&h.author)
                        && rule_of(setup, &h.topic_id, setup.topic_index.len() - 1, latest)
                            .is_some_and(|rule| {
                                rule.publishers.contains(org) && h.tlp <= rule.max_tlp
                            });
                    if !now_ok {
                        notes.push((
                            "rights_withdrawn_without_cutoff",
                            format!(
                                "charter version {} withdrew this author's right without a cut-off; nodes now refuse this envelope in history sync",
                                latest.version
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(received) = received_ms {
            if h.timestamp_ms > received.saturating_add(latest.limits.max_clock_skew_ms) {
                problems.push((
                    "from_future",
                    format!(
                        "timestamp {} is more than {} ms after the node received it ({received})",
                        h.timestamp_ms, latest.limits.max_clock_skew_ms
                    ),
                ));
            }
        }
        for (code, msg) in problems {
            self.env_finding(Severity::Problem, code, loc, r, msg);
        }
        for (code, msg) in notes {
            self.env_finding(Severity::Note, code, loc, r, msg);
        }
    }

    fn max_envelope(&self) -> usize {
        match &self.setup {
            Some(Some(s)) => s.chain.current().charter().limits.max_envelope_bytes as usize,
            _ => MAX_ENVELOPE_BYTES as usize,
        }
    }

    fn check_clear_payload(&mut self, env: &SignedEnvelope, r: &EnvelopeRef, loc: &Location) {
        let h = env.header();
        match h.kind {
            Kind::KeyPackage => match KeyPackage::decode(env.payload()) {
                Ok(pkg) if pkg.topic_id == h.topic_id && pkg.epoch == h.key_epoch => {}
                Ok(_) => self.env_finding(
                    Severity::Problem,
                    "bad_payload",
                    loc,
                    r,
                    "key package topic or epoch differs from the header",
                ),
                Err(e) => self.env_finding(
                    Severity::Problem,
                    "bad_payload",
                    loc,
                    r,
                    format!("key package does not decode: {e}"),
                ),
            },
            Kind::Evidence => {
                let max = self.max_envelope();
                match Evidence::decode(env.payload(), max) {
                    Ok(ev) => self.evidence_object(&ev, env.payload(), loc),
                    Err(e) => self.env_finding(
                        Severity::Problem,
                        "bad_payload",
                        loc,
                        r,
                        format!("evidence does not decode: {e}"),
                    ),
                }
            }
            Kind::Alert | Kind::Update | Kind::Retraction => {}
        }
    }

    fn evidence_object(&mut self, ev: &Evidence, encoded: &[u8], loc: &Location) {
        let max = self.max_envelope();
        let proven = match ev.verify(max) {
            Ok(p) => p,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    "bad_evidence",
                    loc.clone(),
                    format!("evidence does not prove misbehaviour: {e}"),
                );
                return;
            }
        };
        if !self.evidence_seen.insert(sha256(encoded)) {
            return;
        }
        self.report.stats.evidence += 1;
        let org = self.org_of(&proven.author).ok().map(|o| o.to_string());
        let topic_name = self.topic_names.get(&proven.topic).cloned();
        let (misbehaviour, code, what) = match proven.misbehaviour {
            Misbehaviour::Equivocation => (
                "equivocation",
                "equivocation",
                "signed two different envelopes with the same seq",
            ),
            Misbehaviour::ChainConflict => (
                "chain_conflict",
                "chain_conflict_evidence",
                "signed an envelope whose prev is not its envelope of the seq before",
            ),
        };
        let msg = format!(
            "node {} ({}) {what} on {} at seq {}: {} and {}",
            proven.author.short(),
            org.as_deref().unwrap_or("unknown org"),
            topic_name.as_deref().unwrap_or("an unknown topic"),
            proven.seq,
            proven.ids.0,
            proven.ids.1
        );
        self.report.push(Finding {
            severity: Severity::Problem,
            code,
            location: loc.clone(),
            envelope: None,
            message: msg,
        });
        self.report.evidence.push(EvidenceSummary {
            misbehaviour,
            author: proven.author,
            org,
            topic: proven.topic,
            topic_name,
            seq: proven.seq,
            ids: [proven.ids.0, proven.ids.1],
            location: loc.clone(),
        });
    }

    /// An encrypted envelope whose sender key is known got no plaintext: it is reported
    /// (exports with plaintext) and decrypted anyway, so that a tampered ciphertext or
    /// invalid content is still found (PROTOCOL.md §18.5.5).
    fn close_awaiting(&mut self) {
        if let Some((env, loc)) = self.awaiting.take() {
            let r = self.env_ref(&env);
            if self.opts.require_plaintext {
                self.env_finding(
                    Severity::Problem,
                    "plaintext_missing",
                    &loc,
                    &r,
                    "the sender key is in the export but the envelope's plaintext is not",
                );
            }
            let h = env.header();
            let Some(key) = self.keys.get(&(h.author, h.topic_id, h.key_epoch)) else {
                return;
            };
            match env.decrypt(key) {
                Err(e) => self.env_finding(
                    Severity::Problem,
                    "plaintext_undecryptable",
                    &loc,
                    &r,
                    format!("the sender key does not open the ciphertext ({e})"),
                ),
                Ok(p) => {
                    self.report.stats.plaintexts_checked += 1;
                    self.check_content(&env, r, &p, loc);
                }
            }
        }
    }

    /// The plaintext of the envelope given just before.
    pub fn plaintext(&mut self, id: &EnvelopeId, plaintext: &[u8], loc: Location) {
        let Some((env, env_loc)) = self.awaiting.take() else {
            self.finding(
                Severity::Problem,
                "plaintext_misplaced",
                loc,
                format!(
                    "a plaintext for {id} does not follow an encrypted envelope whose key is known"
                ),
            );
            return;
        };
        if env.id() != *id {
            self.awaiting = Some((env, env_loc));
            self.finding(
                Severity::Problem,
                "plaintext_misplaced",
                loc,
                format!("a plaintext for {id} follows another envelope"),
            );
            return;
        }
        let r = self.env_ref(&env);
        let h = env.header();
        let Some(key) = self.keys.get(&(h.author, h.topic_id, h.key_epoch)) else {
            return;
        };
        self.report.stats.plaintexts_checked += 1;
        match env.decrypt(key) {
            Err(e) => {
                self.env_finding(
                    Severity::Problem,
                    "plaintext_undecryptable",
                    &loc,
                    &r,
                    format!("the sender key does not open the ciphertext ({e})"),
                );
                return;
            }
            Ok(p) if p != plaintext => {
                self.env_finding(
                    Severity::Problem,
                    "plaintext_mismatch",
                    &loc,
                    &r,
                    "the plaintext differs from the decrypted ciphertext",
                );
                return;
            }
            Ok(_) => {}
        }
        self.check_content(&env, r, plaintext, loc);
    }

    /// Content rules of a decrypted (and matching) plaintext.
    fn check_content(
        &mut self,
        env: &SignedEnvelope,
        r: EnvelopeRef,
        plaintext: &[u8],
        loc: Location,
    ) {
        let h = env.header();
        let org = self.org_of(&h.author).ok().cloned();
        match decode_content(h.kind, plaintext) {
            Err(e) => self.env_finding(
                Severity::Problem,
                "content_invalid",
                &loc,
                &r,
                format!("the decrypted content is not valid: {e}"),
            ),
            Ok(Content::Alert(_)) => {
                self.origins.insert(env.id(), (org, h.topic_id));
            }
            Ok(Content::Update(u)) => self.amendments.push(Amendment {
                env: r,
                org,
                original: u.original,
                loc,
            }),
            Ok(Content::Retraction(x)) => self.amendments.push(Amendment {
                env: r,
                org,
                original: x.original,
                loc,
            }),
        }
    }

    /// An encoded [`Evidence`] object as stored by the node.
    pub fn evidence(&mut self, encoded: &[u8], loc: Location) {
        self.setup();
        self.close_awaiting();
        let max = self.max_envelope();
        match Evidence::decode(encoded, max) {
            Ok(ev) => self.evidence_object(&ev, encoded, &loc),
            Err(e) => self.finding(
                Severity::Problem,
                "bad_evidence",
                loc,
                format!("evidence does not decode: {e}"),
            ),
        }
    }

    /// The network of the adopted genesis (settles the charters first: call it only once
    /// every charter has been given). `None` without a valid genesis.
    pub fn network(&mut self) -> Option<NetworkId> {
        self.setup();
        self.network
    }

    /// Stops the audit at a framing error: the report holds the findings made so far and
    /// none of the end-of-log checks (genesis, chains, amendments).
    pub fn abort(mut self) -> Report {
        self.report.stats.authors = self.authors.len() as u64;
        self.report.ok = self.report.problems == 0;
        self.report.network_id = self.network;
        self.report.genesis_hash = self.genesis_hash;
        self.report
    }

    /// Checks chains and amendments and returns the report.
    pub fn finish(mut self) -> Report {
        self.setup();
        self.close_awaiting();
        // Without a valid genesis no org is known (authorization_unchecked): amendments
        // cannot be attributed and are not checked.
        if !matches!(self.setup, Some(Some(_))) {
            self.amendments.clear();
        }
        for a in std::mem::take(&mut self.amendments) {
            match self.origins.get(&a.original) {
                None => self.env_finding(
                    Severity::Note,
                    "amendment_original_missing",
                    &a.loc,
                    &a.env,
                    format!(
                        "an update or retraction of {}, which is not a readable alert of this log",
                        a.original
                    ),
                ),
                Some((orig_org, orig_topic)) => {
                    let ok = match (orig_org, &a.org) {
                        (Some(o), Some(n)) => {
                            check_amendment(o, orig_topic, n, &a.env.topic).is_ok()
                        }
                        _ => false,
                    };
                    if !ok {
                        let msg = format!(
                            "an update or retraction of {} by {} on {}, but the alert is by {} on {}: only its author may amend it",
                            a.original,
                            a.org.as_ref().map_or("an unknown org", |o| o.as_str()),
                            a.env.topic_name.as_deref().unwrap_or("?"),
                            orig_org.as_ref().map_or("an unknown org", |o| o.as_str()),
                            self.topic_names.get(orig_topic).map_or("?", String::as_str),
                        );
                        self.env_finding(
                            Severity::Problem,
                            "amendment_not_by_author",
                            &a.loc,
                            &a.env,
                            msg,
                        );
                    }
                }
            }
        }
        let mut chains: Vec<_> = std::mem::take(&mut self.chains).into_iter().collect();
        chains.sort_by_key(|c| c.0);
        for ((author, topic), chain) in chains {
            self.check_chain(author, topic, &chain);
        }
        self.report.stats.authors = self.authors.len() as u64;
        self.report.ok = self.report.problems == 0;
        self.report.network_id = self.network;
        self.report.genesis_hash = self.genesis_hash;
        self.report
    }

    fn check_chain(&mut self, author: NodePublicKey, topic: TopicId, chain: &BTreeMap<u64, Pos>) {
        let (Some((&first, _)), Some((&last, _))) =
            (chain.first_key_value(), chain.last_key_value())
        else {
            return;
        };
        self.report.stats.chains += 1;
        let org = self.org_of(&author).ok().map(|o| o.to_string());
        let topic_name = self.topic_names.get(&topic).cloned();
        let mk_ref = |seq: u64, id: EnvelopeId| EnvelopeRef {
            id,
            author,
            org: org.clone(),
            topic,
            topic_name: topic_name.clone(),
            seq,
        };
        let mut missing = 0u64;
        let mut expected = if self.opts.allow_leading_gaps {
            first
        } else {
            1
        };
        let mut prev: Option<(u64, &Pos)> = None;
        for (&seq, pos) in chain {
            if seq > expected {
                missing += seq - expected;
                let range = if seq - expected == 1 {
                    format!("seq {expected} is")
                } else {
                    format!("seqs {expected}–{} are", seq - 1)
                };
                let msg = format!(
                    "gap in the chain of node {} on {}: {range} missing before this envelope",
                    author.short(),
                    topic_name.as_deref().unwrap_or("?")
                );
                let r = mk_ref(seq, pos.id);
                self.env_finding(Severity::Problem, "chain_gap", &pos.loc, &r, msg);
            }
            if let Some((pseq, p)) = prev {
                if pseq + 1 == seq && pos.prev != p.id {
                    let msg = format!(
                        "seq {seq} names prev {}, but the log's seq {pseq} is {} (at {}): the author signed two histories",
                        pos.prev, p.id, p.loc
                    );
                    let r = mk_ref(seq, pos.id);
                    self.env_finding(Severity::Problem, "chain_fork", &pos.loc, &r, msg);
                }
            }
            prev = Some((seq, pos));
            expected = seq.saturating_add(1);
        }
        self.report.chains.push(ChainSummary {
            author,
            org,
            topic,
            topic_name,
            first_seq: first,
            last_seq: last,
            envelopes: chain.len() as u64,
            missing,
        });
    }

    /// The org the log's certificates attribute a node key to (for reports).
    pub fn org_name(&self, node: &NodePublicKey) -> Option<String> {
        self.org_of(node).ok().map(|o| o.to_string())
    }
}

fn export_info(m: &ExportMeta, records: u64, bytes: usize) -> ExportInfo {
    ExportInfo {
        records,
        bytes: bytes as u64,
        exporter: None,
        exporter_org: None,
        signature_valid: false,
        exported_ms: m.exported_ms,
        topics: m.topics.clone(),
        since_ms: m.since_ms,
        until_ms: m.until_ms,
        with_plaintext: m.with_plaintext,
    }
}

/// `network_mismatch` when the meta record names another network than the genesis.
fn check_network(auditor: &mut Auditor, meta: Option<&ExportMeta>) {
    let Some(m) = meta else { return };
    if let Some(network) = auditor.network() {
        if network != m.network_id {
            auditor.finding(
                Severity::Problem,
                "network_mismatch",
                Location::record(0, MAGIC.len() as u64),
                format!(
                    "the meta record names network {}, the genesis charter's is {}",
                    m.network_id.to_hex(),
                    network.to_hex()
                ),
            );
        }
    }
}

/// Why a record's body is not what its type requires.
fn body_error(ty: RecordType, e: impl fmt::Display) -> String {
    format!("{} record does not decode: {e}", ty.as_str())
}

/// Reads an export file and audits it. `opts.pinned_genesis` overrides the genesis hash
/// the file's meta record names.
pub fn verify_export(bytes: &[u8], opts: AuditOptions) -> Report {
    let explicitly_pinned = opts.pinned_genesis;
    let mut auditor = Auditor::new(opts);
    let mut reader = RecordReader::new(bytes);
    let mut last: Option<RecordType> = None;
    let mut end: Option<(ExportEnd, [u8; 32], Location, u64)> = None;
    let mut prev_digest = [0u8; 32];
    let mut meta: Option<ExportMeta> = None;
    let mut records = 0u64;
    let mut broken = false;
    let mut network_checked = false;
    for item in reader.by_ref() {
        let rec = match item {
            Ok(rec) => rec,
            Err(e) => {
                broken = true;
                let (code, loc, msg) = match e {
                    FrameError::BadMagic => (
                        "bad_magic",
                        Location {
                            offset: Some(0),
                            ..Location::default()
                        },
                        "the file does not start with the alertmesh audit magic".to_string(),
                    ),
                    FrameError::Truncated { index, offset } => (
                        "truncated",
                        Location::record(index, offset),
                        format!(
                            "the file ends inside record {index} ({} bytes in all)",
                            bytes.len()
                        ),
                    ),
                    FrameError::TooLong { index, offset, len } => (
                        "bad_framing",
                        Location::record(index, offset),
                        format!(
                            "record length {len} exceeds the limit; the file cannot be read further"
                        ),
                    ),
                };
                auditor.finding(Severity::Problem, code, loc, msg);
                break;
            }
        };
        // The meta record's network must be the genesis' (checked once the charter
        // section is over).
        if !network_checked && RecordType::from_u8(rec.ty).is_some_and(|t| t > RecordType::Charter)
        {
            network_checked = true;
            check_network(&mut auditor, meta.as_ref());
        }
        records += 1;
        let loc = Location::record(rec.index, rec.offset);
        if !rec.digest_ok {
            auditor.finding(
                Severity::Problem,
                "record_digest_mismatch",
                loc.clone(),
                format!(
                    "record {} ({}, {} bytes) does not match its digest: it, its digest or the record before it was changed, removed or moved",
                    rec.index,
                    RecordType::from_u8(rec.ty).map_or("unknown type", RecordType::as_str),
                    rec.body.len()
                ),
            );
        }
        if end.is_some() {
            auditor.finding(
                Severity::Problem,
                "after_end",
                loc,
                "a record after the end record",
            );
            prev_digest = rec.digest;
            continue;
        }
        let Some(ty) = RecordType::from_u8(rec.ty) else {
            auditor.finding(
                Severity::Problem,
                "unknown_record",
                loc,
                format!("unknown record type {}", rec.ty),
            );
            prev_digest = rec.digest;
            continue;
        };
        // Section order: meta first; types never go back, except a plaintext after its
        // envelope and the envelope after it.
        let in_order = match (last, ty) {
            (None, RecordType::Meta) => true,
            // No meta record: reported once, here; the rest is ordered as if it were there.
            (None, _) => {
                auditor.finding(
                    Severity::Problem,
                    "missing_meta",
                    loc.clone(),
                    "the file does not start with a meta record",
                );
                true
            }
            (Some(_), RecordType::Meta) => false,
            (Some(RecordType::Plaintext), RecordType::Envelope) => true,
            (Some(RecordType::Envelope), RecordType::Plaintext) => true,
            (Some(_), RecordType::Plaintext) => false,
            (Some(prev), ty) => ty >= prev,
        };
        if !in_order {
            auditor.finding(
                Severity::Problem,
                "out_of_order",
                loc.clone(),
                format!(
                    "a {} record after a {} record: sections are out of order",
                    ty.as_str(),
                    last.map_or("(start of file)", RecordType::as_str)
                ),
            );
        }
        let after_charters = last.is_some_and(|l| l > RecordType::Charter);
        last = Some(ty);
        match ty {
            RecordType::Meta => {
                match codec::decode_exact::<ExportMeta>(rec.body, MAX_RECORD_BODY) {
                    // A meta record elsewhere than first is out of order and ignored.
                    Ok(_) if rec.index != 0 => {}
                    Ok(m) => {
                        if m.format_version != FORMAT_VERSION {
                            auditor.finding(
                                Severity::Problem,
                                "unsupported_format",
                                loc.clone(),
                                format!(
                                    "format version {} (this verifier reads {FORMAT_VERSION})",
                                    m.format_version
                                ),
                            );
                        }
                        if rec.index == 0 {
                            match explicitly_pinned {
                                Some(p) if p != m.genesis_hash => auditor.finding(
                                    Severity::Problem,
                                    "genesis_mismatch",
                                    loc.clone(),
                                    format!(
                                        "the export names genesis {}, not the pinned {p}",
                                        m.genesis_hash
                                    ),
                                ),
                                Some(_) => {}
                                None => {
                                    auditor.pin_genesis(m.genesis_hash);
                                    auditor.finding(
                                    Severity::Note,
                                    "genesis_pinned_by_export",
                                    loc,
                                    format!(
                                        "the genesis hash {} is the one the export names; pass --genesis-hash to pin it independently",
                                        m.genesis_hash
                                    ),
                                );
                                }
                            }
                            if m.since_ms.is_some() {
                                auditor.allow_leading_gaps();
                            }
                            if m.with_plaintext {
                                auditor.require_plaintext();
                            }
                            meta = Some(m);
                        }
                    }
                    Err(e) => {
                        auditor.finding(Severity::Problem, "bad_record", loc, body_error(ty, e))
                    }
                }
            }
            // A charter after the charter section can no longer be adopted: reported
            // (out_of_order) and otherwise ignored.
            RecordType::Charter if after_charters => {}
            RecordType::Charter => auditor.charter(rec.body, loc),
            RecordType::Cert => auditor.cert(rec.body, loc),
            RecordType::SenderKey | RecordType::Plaintext
                if !meta.as_ref().is_some_and(|m| m.with_plaintext) =>
            {
                auditor.finding(
                    Severity::Problem,
                    "plaintext_undeclared",
                    loc,
                    format!(
                        "a {} record in an export whose meta record does not declare plaintexts; ignored",
                        ty.as_str()
                    ),
                )
            }
            RecordType::SenderKey => match codec::decode_exact::<ExportedKey>(rec.body, 1024) {
                Ok(k) => auditor.sender_key(&k, loc),
                Err(e) => auditor.finding(Severity::Problem, "bad_record", loc, body_error(ty, e)),
            },
            RecordType::Envelope => match rec.body.split_first_chunk::<8>() {
                Some((received, env)) => {
                    auditor.envelope(env, Some(u64::from_le_bytes(*received)), loc)
                }
                None => auditor.finding(
                    Severity::Problem,
                    "bad_record",
                    loc,
                    body_error(ty, DecodeError::Truncated),
                ),
            },
            RecordType::Plaintext => match rec.body.split_first_chunk::<32>() {
                Some((id, pt)) => auditor.plaintext(&EnvelopeId(*id), pt, loc),
                None => auditor.finding(
                    Severity::Problem,
                    "bad_record",
                    loc,
                    body_error(ty, DecodeError::Truncated),
                ),
            },
            RecordType::Evidence => match rec.body.split_first_chunk::<8>() {
                Some((_received, ev)) => auditor.evidence(ev, loc),
                None => auditor.finding(
                    Severity::Problem,
                    "bad_record",
                    loc,
                    body_error(ty, DecodeError::Truncated),
                ),
            },
            RecordType::End => match codec::decode_exact::<ExportEnd>(rec.body, 1024) {
                Ok(e) => end = Some((e, prev_digest, loc, rec.index)),
                Err(e) => {
                    auditor.finding(
                        Severity::Problem,
                        "bad_record",
                        loc.clone(),
                        body_error(ty, e),
                    );
                    end = Some((
                        ExportEnd {
                            records: u64::MAX,
                            exporter: NodePublicKey::default(),
                            signature: [0; 64],
                        },
                        prev_digest,
                        loc,
                        rec.index,
                    ))
                }
            },
        }
        prev_digest = rec.digest;
    }
    if broken {
        let mut report = auditor.abort();
        report.export = meta.as_ref().map(|m| export_info(m, records, bytes.len()));
        return report;
    }
    if !network_checked {
        check_network(&mut auditor, meta.as_ref());
    }
    if last.is_none() {
        auditor.finding(
            Severity::Problem,
            "missing_meta",
            Location::default(),
            "the file has no records",
        );
    }
    let mut info = meta.as_ref().map(|m| export_info(m, records, bytes.len()));
    match end {
        None => auditor.finding(
            Severity::Problem,
            "truncated",
            Location::record(records, reader.position() as u64),
            format!(
                "the file ends after {records} records without an end record: it was cut short"
            ),
        ),
        Some((e, last_digest, loc, index)) => {
            // The exporter the meta record names and the key that signs the end record
            // must be the same node (all zero in both: an unsigned export).
            let named = meta
                .as_ref()
                .map_or(NodePublicKey::default(), |m| m.exporter);
            if named != e.exporter {
                let who = |k: &NodePublicKey| {
                    if *k == NodePublicKey::default() {
                        "nobody (unsigned)".to_string()
                    } else {
                        format!("node {}", k.short())
                    }
                };
                auditor.finding(
                    Severity::Problem,
                    "exporter_mismatch",
                    loc.clone(),
                    format!(
                        "the meta record names {} as the exporter, the end record is signed by {}",
                        who(&named),
                        who(&e.exporter)
                    ),
                );
            }
            if e.records != index {
                auditor.finding(
                    Severity::Problem,
                    "record_count_mismatch",
                    loc.clone(),
                    format!(
                        "the end record counts {} records, the file has {index} before it",
                        e.records
                    ),
                );
            }
            if e.exporter == NodePublicKey::default() {
                auditor.finding(
                    Severity::Note,
                    "unsigned_export",
                    loc,
                    "the export is not signed by a node (exported from a data directory without its keys)",
                );
            } else {
                let ok = e
                    .exporter
                    .verify(
                        EXPORT_TAG,
                        &export_message(&last_digest, e.records),
                        &e.signature,
                    )
                    .is_ok();
                if let Some(info) = &mut info {
                    info.exporter = Some(e.exporter);
                    info.exporter_org = auditor.org_name(&e.exporter);
                    info.signature_valid = ok;
                }
                if !ok {
                    auditor.finding(
                        Severity::Problem,
                        "bad_export_signature",
                        loc,
                        format!(
                            "the exporter signature by node {} does not verify",
                            e.exporter.short()
                        ),
                    );
                }
            }
        }
    }
    let mut report = auditor.finish();
    report.export = info;
    report
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::alert::{AlertUpdate, Tlp};
    use crate::bootstrap::{Network, simple_plan};
    use crate::envelope::Draft;
    use rand_chacha08::ChaCha20Rng;
    use rand_chacha08::rand_core::SeedableRng;

    const NOW: u64 = 1_600_000_000_000;

    struct Log {
        net: Network,
        envelopes: Vec<SignedEnvelope>,
        keys: Vec<ExportedKey>,
        plaintexts: HashMap<EnvelopeId, Vec<u8>>,
    }

    /// Two orgs; org-0's node publishes a key package and three alerts on `all`, org-1's
    /// node one key package and one alert.
    fn log() -> Log {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let net = simple_plan(2, NOW).build(&mut rng);
        let network = net.genesis.charter().network_id;
        let topic = TopicId::derive(&network, "all");
        let readers: Vec<_> = net.nodes().map(|(_, n)| n.agreement.public()).collect();
        let mut envelopes = Vec::new();
        let mut keys = Vec::new();
        let mut plaintexts = HashMap::new();
        for (i, (_, node)) in net.nodes().enumerate() {
            let key = SenderKey::generate(1, &mut rng);
            let (pkg, _) = KeyPackage::seal(
                &network,
                &topic,
                &node.key.public(),
                &key,
                &readers,
                &mut rng,
            );
            let mut draft = Draft {
                network_id: network,
                topic_id: topic,
                seq: 1,
                prev: EnvelopeId::default(),
                charter_version: 1,
                timestamp_ms: NOW + 1000,
                kind: Kind::KeyPackage,
                key_epoch: 1,
                tlp: Tlp::Clear,
            };
            let kp = SignedEnvelope::seal_clear(&node.key, &draft, &pkg.encode()).unwrap();
            let mut prev = kp.id();
            envelopes.push(kp);
            keys.push(ExportedKey {
                author: node.key.public(),
                topic,
                epoch: 1,
                key: *key.secret_bytes(),
            });
            let count = if i == 0 { 3 } else { 1 };
            for n in 0..count {
                draft.seq += 1;
                draft.prev = prev;
                draft.kind = Kind::Alert;
                draft.tlp = Tlp::Amber;
                draft.timestamp_ms += 1000;
                let mut alert = crate::alert::tests::sample_alert();
                alert.title = format!("alert {i}-{n}");
                let content = if i == 0 && n == 2 {
                    draft.kind = Kind::Update;
                    Content::Update(AlertUpdate {
                        original: envelopes[1].id(),
                        alert,
                    })
                } else {
                    Content::Alert(alert)
                };
                let pt = content.encode();
                let env =
                    SignedEnvelope::seal_encrypted(&node.key, &draft, &key, &pt, &mut rng).unwrap();
                prev = env.id();
                plaintexts.insert(env.id(), pt);
                envelopes.push(env);
            }
        }
        Log {
            net,
            envelopes,
            keys,
            plaintexts,
        }
    }

    fn export(log: &Log, with_plaintext: bool, skip: Option<usize>) -> Vec<u8> {
        let meta = ExportMeta {
            format_version: FORMAT_VERSION,
            network_id: log.net.genesis.charter().network_id,
            genesis_hash: log.net.genesis_hash(),
            exporter: log.net.orgs[0].nodes[0].key.public(),
            exported_ms: NOW + 100_000,
            topics: vec![],
            since_ms: None,
            until_ms: None,
            with_plaintext,
        };
        let mut b = ExportBuilder::new(&meta);
        b.record(RecordType::Charter, log.net.genesis.as_bytes())
            .unwrap();
        for (_, n) in log.net.nodes() {
            b.record(RecordType::Cert, n.cert.as_bytes()).unwrap();
        }
        if with_plaintext {
            for k in &log.keys {
                b.record(RecordType::SenderKey, &codec::encode(k)).unwrap();
            }
        }
        for (i, env) in log.envelopes.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            b.envelope(NOW + 50_000, env.as_bytes()).unwrap();
            if with_plaintext {
                if let Some(pt) = log.plaintexts.get(&env.id()) {
                    b.plaintext(&env.id(), pt).unwrap();
                }
            }
        }
        b.finish(Some(&log.net.orgs[0].nodes[0].key))
    }

    fn opts(log: &Log) -> AuditOptions {
        AuditOptions {
            pinned_genesis: Some(log.net.genesis_hash()),
            ..AuditOptions::default()
        }
    }

    #[test]
    fn clean_export_verifies() {
        let log = log();
        for with_plaintext in [false, true] {
            let file = export(&log, with_plaintext, None);
            let report = verify_export(&file, opts(&log));
            assert!(report.ok, "{:#?}", report.findings);
            assert_eq!(report.stats.envelopes, 6);
            assert_eq!(report.stats.signatures_verified, 6);
            assert_eq!(report.stats.chains, 2);
            let export = report.export.as_ref().unwrap();
            assert!(export.signature_valid);
            assert_eq!(export.exporter_org.as_deref(), Some("org-0"));
            if with_plaintext {
                assert_eq!(report.stats.plaintexts_checked, 4);
            }
        }
    }

    #[test]
    fn every_flipped_bit_is_detected_and_located() {
        let log = log();
        let file = export(&log, true, None);
        // Record boundaries, to check the location.
        let bounds: Vec<(u64, usize)> = RecordReader::new(&file)
            .map(|r| r.unwrap())
            .map(|r| (r.index, r.offset as usize))
            .collect();
        let record_of = |pos: usize| {
            bounds
                .iter()
                .rev()
                .find(|(_, off)| *off <= pos)
                .map(|(i, _)| *i)
        };
        // Every byte in the file, one bit each (the file is a few KiB).
        for pos in 0..file.len() {
            let mut bad = file.clone();
            bad[pos] ^= 1 << (pos % 8);
            let report = verify_export(&bad, opts(&log));
            assert!(!report.ok, "flip at byte {pos} went unnoticed");
            if pos < MAGIC.len() {
                assert!(report.has("bad_magic"));
                continue;
            }
            let first = &report
                .findings
                .iter()
                .find(|f| f.severity == Severity::Problem)
                .unwrap();
            assert_eq!(
                first.location.record,
                record_of(pos),
                "flip at byte {pos}: first problem {first:?}"
            );
        }
    }

    #[test]
    fn truncation_removal_and_reordering() {
        let log = log();
        let file = export(&log, false, None);
        // Truncated anywhere after the magic: reported.
        for cut in [MAGIC.len() + 3, file.len() / 2, file.len() - 1] {
            let report = verify_export(&file[..cut], opts(&log));
            assert!(
                report.has("truncated"),
                "cut at {cut}: {:?}",
                report.by_code
            );
        }
        // The end record cut off exactly at a record boundary.
        let records: Vec<_> = RecordReader::new(&file).map(|r| r.unwrap()).collect();
        let end_offset = records.last().unwrap().offset as usize;
        let report = verify_export(&file[..end_offset], opts(&log));
        assert!(report.has("truncated"));

        // An envelope removed from the middle of org-0's chain, digests recomputed by
        // whoever removed it: the chain shows the gap.
        let removed = export(&log, false, Some(2));
        let report = verify_export(&removed, opts(&log));
        assert!(!report.has("record_digest_mismatch"));
        let gap: Vec<_> = report.with_code("chain_gap").collect();
        assert_eq!(gap.len(), 1, "{:?}", report.findings);
        // Reported at the envelope after the hole (seq 4), naming the missing seq 3.
        assert_eq!(gap[0].envelope.as_ref().unwrap().seq, 4);
        assert!(
            gap[0].message.contains("seq 3 is missing"),
            "{}",
            gap[0].message
        );

        // Two envelope records swapped in place: both digests break.
        let (a, b) = (&records[4], &records[5]);
        let a_len = b.offset as usize - a.offset as usize;
        let b_end = records[6].offset as usize;
        let mut swapped = file[..a.offset as usize].to_vec();
        swapped.extend_from_slice(&file[b.offset as usize..b_end]);
        swapped.extend_from_slice(&file[a.offset as usize..a.offset as usize + a_len]);
        swapped.extend_from_slice(&file[b_end..]);
        let report = verify_export(&swapped, opts(&log));
        let at: Vec<_> = report
            .with_code("record_digest_mismatch")
            .map(|f| f.location.record.unwrap())
            .collect();
        assert_eq!(at, vec![4, 5, 6]);
    }

    #[test]
    fn resigned_envelope_and_forged_charter() {
        let log = log();
        // org-1's node re-signs org-0's alert (author field unchanged): bad signature.
        let victim = &log.envelopes[2];
        let other = &log.net.orgs[1].nodes[0].key;
        let mut bytes = victim.signed_bytes().to_vec();
        let sig = other.sign(crate::ids::tags::ENVELOPE, &bytes);
        bytes.extend_from_slice(&sig);
        let mut forged = Log {
            net: log.net,
            envelopes: log.envelopes.clone(),
            keys: log.keys.clone(),
            plaintexts: log.plaintexts.clone(),
        };
        forged.envelopes[2] = SignedEnvelope::decode(&bytes, 1 << 20).unwrap();
        let report = verify_export(&export(&forged, false, None), opts(&forged));
        let bad: Vec<_> = report.with_code("bad_signature").collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(
            bad[0].envelope.as_ref().unwrap().id,
            forged.envelopes[2].id()
        );
        // Its successor no longer chains onto it.
        assert!(report.has("chain_fork"));

        // A version 2 signed by one governor only (threshold 1 of 2 here is 1, so use a
        // non-governor signature instead): refused as a bad charter transition.
        let mut c2 = forged.net.genesis.charter().clone();
        c2.version = 2;
        c2.prev_hash = forged.net.genesis_hash();
        c2.governors.retain(|g| g.as_str() == "org-0");
        c2.threshold = 1;
        let mut signed = SignedCharter::unsigned(c2.clone());
        signed.sign(&forged.net.orgs[0].member.org_id, &forged.net.orgs[0].root);
        let mut auditor = Auditor::new(opts(&forged));
        auditor.charter(forged.net.genesis.as_bytes(), Location::record(1, 0));
        auditor.charter(signed.as_bytes(), Location::record(2, 0));
        // Forged: signed by a key that is not org-1's root but claims to be org-1.
        let mut c2b = c2;
        c2b.network_name = "forged".into();
        let mut bad = SignedCharter::unsigned(c2b);
        bad.sign(
            &forged.net.orgs[1].member.org_id,
            &crate::keys::OrgRootKey::from_secret_bytes(&[9; 32]),
        );
        auditor.charter(bad.as_bytes(), Location::record(3, 0));
        let report = auditor.finish();
        assert_eq!(report.stats.charter_version, 2);
        let f: Vec<_> = report.with_code("charter_bad_signature").collect();
        assert_eq!(f.len(), 1, "{:?}", report.findings);
        assert_eq!(f[0].location.record, Some(3));
    }

    #[test]
    fn wrong_plaintext_and_equivocation_evidence() {
        let log = log();
        let mut tampered = Log {
            net: log.net,
            envelopes: log.envelopes.clone(),
            keys: log.keys.clone(),
            plaintexts: log.plaintexts.clone(),
        };
        let id = tampered.envelopes[1].id();
        let mut alert = crate::alert::tests::sample_alert();
        alert.title = "a different story".into();
        tampered
            .plaintexts
            .insert(id, Content::Alert(alert).encode());
        let report = verify_export(&export(&tampered, true, None), opts(&tampered));
        let f: Vec<_> = report.with_code("plaintext_mismatch").collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].envelope.as_ref().unwrap().id, id);

        // Equivocation: a second seq-2 envelope by org-0's node, given as evidence.
        let node = &tampered.net.orgs[0].nodes[0];
        let original = &tampered.envelopes[1];
        let h = original.header();
        let draft = Draft {
            network_id: h.network_id,
            topic_id: h.topic_id,
            seq: h.seq,
            prev: h.prev,
            charter_version: 1,
            timestamp_ms: h.timestamp_ms + 1,
            kind: Kind::KeyPackage,
            key_epoch: 1,
            tlp: Tlp::Clear,
        };
        let pkg = KeyPackage {
            topic_id: h.topic_id,
            epoch: 1,
            entries: vec![],
        };
        let twin = SignedEnvelope::seal_clear(&node.key, &draft, &pkg.encode()).unwrap();
        let ev = Evidence::new(original, &twin).unwrap();
        let mut auditor = Auditor::new(opts(&tampered));
        auditor.charter(tampered.net.genesis.as_bytes(), Location::default());
        for (_, n) in tampered.net.nodes() {
            auditor.cert(n.cert.as_bytes(), Location::default());
        }
        for e in &tampered.envelopes {
            auditor.envelope(e.as_bytes(), None, Location::default());
        }
        auditor.envelope(twin.as_bytes(), None, Location::row("envelopes", 99));
        auditor.evidence(&ev.encode(), Location::row("evidence", 1));
        let report = auditor.finish();
        assert!(report.has("equivocation_in_log"));
        assert_eq!(report.evidence.len(), 1);
        assert_eq!(report.evidence[0].org.as_deref(), Some("org-0"));
        assert_eq!(report.evidence[0].seq, 2);
    }

    fn export_signed_by(
        log: &Log,
        meta_exporter: NodePublicKey,
        signer: Option<&NodeKey>,
    ) -> Vec<u8> {
        let meta = ExportMeta {
            format_version: FORMAT_VERSION,
            network_id: log.net.genesis.charter().network_id,
            genesis_hash: log.net.genesis_hash(),
            exporter: meta_exporter,
            exported_ms: NOW + 100_000,
            topics: vec![],
            since_ms: None,
            until_ms: None,
            with_plaintext: false,
        };
        let mut b = ExportBuilder::new(&meta);
        b.record(RecordType::Charter, log.net.genesis.as_bytes())
            .unwrap();
        for (_, n) in log.net.nodes() {
            b.record(RecordType::Cert, n.cert.as_bytes()).unwrap();
        }
        for env in &log.envelopes {
            b.envelope(NOW + 50_000, env.as_bytes()).unwrap();
        }
        b.finish(signer)
    }

    #[test]
    fn exporter_in_meta_must_sign_the_end_record() {
        let log = log();
        let a = &log.net.orgs[0].nodes[0].key;
        let b = &log.net.orgs[1].nodes[0].key;
        let zero = NodePublicKey::default();
        let cases = [
            (a.public(), Some(a), None),
            (zero, None, Some("unsigned_export")),
            (a.public(), Some(b), Some("exporter_mismatch")),
            (a.public(), None, Some("exporter_mismatch")),
            (zero, Some(a), Some("exporter_mismatch")),
        ];
        for (named, signer, code) in cases {
            let file = export_signed_by(&log, named, signer);
            let report = verify_export(&file, opts(&log));
            match code {
                None => assert!(report.ok && report.notes == 0, "{:?}", report.by_code),
                Some(code) => {
                    let f: Vec<_> = report.with_code(code).collect();
                    assert_eq!(f.len(), 1, "{:?}", report.by_code);
                    // At the end record: meta, charter, 2 certs, 6 envelopes, end.
                    assert_eq!(f[0].location.record, Some(10));
                    assert_eq!(report.ok, code == "unsigned_export");
                }
            }
        }
    }

    #[test]
    fn framing_error_stops_the_audit() {
        let log = log();
        let mut file = export(&log, false, None);
        file[0] ^= 1;
        let report = verify_export(&file, AuditOptions::default());
        assert_eq!(
            report.by_code.keys().copied().collect::<Vec<_>>(),
            ["bad_magic"]
        );
        // A length field over the limit in the middle: findings before it stand, nothing
        // after it (no chain or genesis checks).
        let file = export(&log, false, None);
        let records: Vec<_> = RecordReader::new(&file).map(|r| r.unwrap()).collect();
        let mut bad = file.clone();
        let at = records[2].offset as usize;
        bad[at + 1..at + 5].copy_from_slice(&u32::MAX.to_le_bytes());
        let report = verify_export(&bad, opts(&log));
        assert_eq!(
            report.by_code.keys().copied().collect::<Vec<_>>(),
            ["bad_framing"]
        );
    }

    #[test]
    fn meta_network_must_be_the_genesis_network() {
        let log = log();
        let mut meta_net = log.net.genesis.charter().network_id;
        meta_net.0[0] ^= 1;
        let meta = ExportMeta {
            format_version: FORMAT_VERSION,
            network_id: meta_net,
            genesis_hash: log.net.genesis_hash(),
            exporter: NodePublicKey::default(),
            exported_ms: NOW,
            topics: vec![],
            since_ms: None,
            until_ms: None,
            with_plaintext: false,
        };
        let mut b = ExportBuilder::new(&meta);
        b.record(RecordType::Charter, log.net.genesis.as_bytes())
            .unwrap();
        let report = verify_export(&b.finish(None), opts(&log));
        let f: Vec<_> = report.with_code("network_mismatch").collect();
        assert_eq!(f.len(), 1, "{:?}", report.by_code);
        assert_eq!(f[0].location.record, Some(0));
    }

    #[test]
    fn plaintext_rules() {
        let log = log();
        // Sender keys and plaintexts in an export that does not declare them.
        let mut file = export(&log, true, None);
        let records: Vec<_> = RecordReader::new(&file).map(|r| r.unwrap()).collect();
        let meta: ExportMeta = codec::decode_exact(records[0].body, 4096).unwrap();
        let mut b = ExportBuilder::new(&ExportMeta {
            with_plaintext: false,
            ..meta
        });
        for r in &records[1..records.len() - 1] {
            b.record(RecordType::from_u8(r.ty).unwrap(), r.body)
                .unwrap();
        }
        let report = verify_export(&b.finish(Some(&log.net.orgs[0].nodes[0].key)), opts(&log));
        // 2 sender keys, 4 plaintexts.
        assert_eq!(
            report.by_code.get("plaintext_undeclared"),
            Some(&6),
            "{:?}",
            report.by_code
        );
        assert_eq!(report.problems, 6);

        // A ciphertext tampered with (and re-signed by its author) whose plaintext record
        // was dropped: still decrypted, so reported.
        let node = &log.net.orgs[0].nodes[0].key;
        let victim = &log.envelopes[1];
        let mut bytes = victim.signed_bytes().to_vec();
        bytes[200] ^= 1;
        let sig = node.sign(crate::ids::tags::ENVELOPE, &bytes);
        bytes.extend_from_slice(&sig);
        let tampered = SignedEnvelope::decode(&bytes, 1 << 20).unwrap();
        let mut log2 = Log {
            net: log.net,
            envelopes: log.envelopes.clone(),
            keys: log.keys.clone(),
            plaintexts: log.plaintexts.clone(),
        };
        log2.envelopes[1] = tampered;
        file = export(&log2, true, None);
        let report = verify_export(&file, opts(&log2));
        for code in ["plaintext_missing", "plaintext_undecryptable"] {
            let f: Vec<_> = report.with_code(code).collect();
            assert_eq!(f.len(), 1, "{code}: {:?}", report.by_code);
            // meta, charter, 2 certs, 2 sender keys, key package, the tampered envelope.
            assert_eq!(f[0].location.record, Some(7));
        }
    }
}
