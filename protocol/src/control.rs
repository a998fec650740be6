//! Messages on a network's control topic: charters, certificates and signed envelopes
//! (evidence reports). Charters and certificates are self-authenticating, so they travel
//! without an envelope.

use crate::codec::{self, DecodeError};
use bincode::{Decode, Encode};

/// Largest control message accepted.
pub const MAX_CONTROL_BYTES: usize = 1024 * 1024 + 64;

/// One message on the control topic: `encode(ControlMessage)`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ControlMessage {
    /// A signed charter's exact bytes.
    Charter(Vec<u8>),
    /// A signed node certificate's exact bytes.
    Cert(Vec<u8>),
    /// A signed envelope's exact bytes (kind `Evidence`).
    Envelope(Vec<u8>),
    /// A log checkpoint: a signed note (C2SP tlog-checkpoint), with any cosignatures.
    Checkpoint(Vec<u8>),
    /// Split-view evidence: `encode(tlog::SplitView)`.
    SplitView(Vec<u8>),
}

impl ControlMessage {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Strictly decodes a message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_exact(bytes, MAX_CONTROL_BYTES)
    }
}
