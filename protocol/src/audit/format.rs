//! The export file format (PROTOCOL.md §18): records, their digests, writing and reading.

use crate::codec;
use crate::ids::{CharterHash, EnvelopeId, NetworkId, NodePublicKey, TopicId, tagged_hash};
use crate::keys::NodeKey;
use bincode::{Decode, Encode};

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
    /// A log checkpoint (a signed note with its cosignatures): the newest witnessed
    /// checkpoint the exporter holds of each log, and its own newest (PROTOCOL.md §19).
    /// Before the end record.
    Checkpoint = 9,
    /// `encode(tlog::SplitView)`: proof that a log showed two histories. Before the end
    /// record.
    SplitView = 10,
    /// `encode(tlog::ProvenInclusion)`: an exported envelope's place in a checkpoint of
    /// its author's log carried by the same export. Before the end record.
    Inclusion = 11,
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
            9 => Self::Checkpoint,
            10 => Self::SplitView,
            11 => Self::Inclusion,
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
            Self::Checkpoint => "checkpoint",
            Self::SplitView => "split_view",
            Self::Inclusion => "inclusion",
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

pub(super) fn record_digest(prev: &[u8; 32], ty: u8, body: &[u8]) -> [u8; 32] {
    // len fits: bodies are at most MAX_RECORD_BODY < 2^32.
    let len = (body.len() as u32).to_le_bytes();
    tagged_hash(RECORD_TAG, &[prev, &[ty], &len, body])
}

pub(super) fn export_message(last_digest: &[u8; 32], records: u64) -> Vec<u8> {
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
