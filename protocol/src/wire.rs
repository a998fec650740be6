//! Messages of the node's request-response protocol (`/alertmesh/req/1`).
//!
//! Each message on a stream is `u32 LE length ‖ encode(message)`; one request and one
//! response per stream. A `Hello` (the sender's own certificate, nothing else) is
//! exchanged in both directions when peers connect; a peer that has not shown a valid
//! certificate of a member org soon after connecting is refused and disconnected. What a
//! node knows of the network (charters, certificates) it tells only an admitted peer,
//! in a `Directory`.

use crate::codec::{self, DecodeError};
use crate::ids::{EnvelopeId, NodePublicKey, TopicId};
use bincode::{Decode, Encode};

/// Largest request or response frame.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Most certificates a directory carries.
pub const MAX_DIRECTORY_CERTS: usize = 1024;
/// Most charters a directory carries.
pub const MAX_DIRECTORY_CHARTERS: usize = 64;

/// Introduces a node to a peer that has not been admitted: its own certificate only.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    /// The sender's own signed certificate (its node key must be its libp2p identity).
    pub cert: Vec<u8>,
}

/// What a node knows of the network, for an admitted peer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Directory {
    /// Signed charters after genesis, oldest first (at most [`MAX_DIRECTORY_CHARTERS`]:
    /// the newest ones).
    pub charters: Vec<Vec<u8>>,
    /// Certificates the sender holds (at most [`MAX_DIRECTORY_CERTS`]).
    pub certs: Vec<Vec<u8>>,
}

/// Most authors one sync request may describe.
pub const MAX_SYNC_AUTHORS: usize = 4096;
/// Most held ranges per author in a sync request.
pub const MAX_SYNC_RANGES: usize = 64;
/// Most envelopes in one sync page.
pub const MAX_PAGE_ENVELOPES: usize = 256;
/// Most envelope bytes in one sync page.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// The seqs a node holds of one author's chain on a topic, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ChainSummary {
    /// The author.
    pub author: NodePublicKey,
    /// Held seqs as inclusive `(first, last)` ranges, ascending (at most
    /// [`MAX_SYNC_RANGES`]; anything beyond is treated as not held).
    pub ranges: Vec<(u64, u64)>,
}

/// "Here is what I hold on this topic; send me what I lack."
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SyncRequest {
    /// The topic.
    pub topic: TopicId,
    /// What the requester holds, per author.
    pub have: Vec<ChainSummary>,
}

/// One bounded page of envelopes the requester lacks, in (author, seq) order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SyncPage {
    /// The topic.
    pub topic: TopicId,
    /// Certificates of the page's authors.
    pub certs: Vec<Vec<u8>>,
    /// Signed envelopes (exact bytes).
    pub envelopes: Vec<Vec<u8>>,
    /// Whether more pages are available (ask again with an updated summary).
    pub more: bool,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Introduce ourselves; the answer is the peer's hello.
    Hello(Hello),
    /// Ask for envelopes of a topic we lack.
    Sync(SyncRequest),
    /// Ask for the peer's [`Directory`]; answered only once the asker is admitted.
    Directory,
    /// tlog-witness add-checkpoint: cosign this checkpoint of the asker's log.
    AddCheckpoint(crate::tlog::AddCheckpoint),
    /// Ask for the newest witnessed checkpoint the peer holds of each log.
    Checkpoints,
    /// Ask the author of a log for the inclusion proofs of these envelope ids (at most
    /// [`crate::tlog::MAX_INCLUSION_ASK`]) in its checkpoint of `size` leaves.
    Inclusions {
        /// The checkpoint's tree size.
        size: u64,
        /// Envelope ids of the asked log's author.
        ids: Vec<EnvelopeId>,
    },
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    /// The peer's hello.
    Hello(Hello),
    /// The request was refused.
    Refused(String),
    /// A page of envelopes.
    Sync(SyncPage),
    /// The peer's directory.
    Directory(Directory),
    /// Too many requests: ask again after this many milliseconds.
    Busy {
        /// How long to wait before asking again.
        retry_after_ms: u32,
    },
    /// A cosignature/v1 line over the checkpoint of an add-checkpoint.
    Cosigned(Vec<u8>),
    /// tlog-witness "409 Conflict": the witness last cosigned this size, not `old_size`.
    WitnessConflict {
        /// The size the witness last cosigned.
        size: u64,
    },
    /// Signed checkpoint notes (at most [`MAX_CHECKPOINTS`]).
    Checkpoints(Vec<Vec<u8>>),
    /// Inclusion proofs of the asked ids the log holds below the asked size (the others
    /// are left out).
    Inclusions(Vec<crate::tlog::Inclusion>),
}

/// Most checkpoints in a [`Response::Checkpoints`].
pub const MAX_CHECKPOINTS: usize = 4096;

impl ChainSummary {
    /// Summarizes ascending held seqs into ranges.
    pub fn from_seqs(author: NodePublicKey, seqs: impl IntoIterator<Item = u64>) -> Self {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for s in seqs {
            match ranges.last_mut() {
                Some((_, last)) if s == *last + 1 => *last = s,
                Some((_, last)) if s <= *last => {}
                _ => ranges.push((s, s)),
            }
        }
        ranges.truncate(MAX_SYNC_RANGES);
        Self { author, ranges }
    }

    /// Whether `seq` is covered.
    pub fn holds(&self, seq: u64) -> bool {
        self.ranges
            .iter()
            .take(MAX_SYNC_RANGES)
            .any(|(a, b)| *a <= seq && seq <= *b)
    }
}

impl Request {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Strictly decodes a request.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_exact(bytes, MAX_FRAME_BYTES)
    }
}

impl Response {
    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Strictly decodes a response.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_exact(bytes, MAX_FRAME_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_ranges() {
        let s = ChainSummary::from_seqs(NodePublicKey([1; 32]), [1, 2, 3, 5, 7, 8]);
        assert_eq!(s.ranges, vec![(1, 3), (5, 5), (7, 8)]);
        assert!(s.holds(2) && !s.holds(4) && s.holds(8) && !s.holds(9));
    }
}
