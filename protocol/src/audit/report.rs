//! What an audit reports: findings, where they are, summaries and counts.

use crate::ids::{CharterHash, EnvelopeId, NetworkId, NodePublicKey, TopicId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Most findings kept in detail; the rest are only counted per code.
pub const MAX_FINDINGS: usize = 10_000;

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
    /// Envelopes whose place in a checkpoint of their author's log the export proves.
    pub envelopes_in_log: u64,
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
    pub(super) fn push(&mut self, finding: Finding) {
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
