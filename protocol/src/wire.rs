//! Messages of the node's request-response protocol (`/alertmesh/req/1`).
//!
//! Each message on a stream is `u32 LE length ‖ encode(message)`; one request and one
//! response per stream. A `Hello` is exchanged in both directions when peers connect;
//! a peer that has not shown a valid certificate of a member org soon after connecting
//! is disconnected.

use crate::codec::{self, DecodeError};
use bincode::{Decode, Encode};

/// Largest request or response frame.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Most certificates a hello carries.
pub const MAX_HELLO_CERTS: usize = 1024;
/// Most charters a hello carries.
pub const MAX_HELLO_CHARTERS: usize = 64;

/// Introduces a node: its certificate plus what it knows of the network.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    /// The sender's own signed certificate (its node key must be its libp2p identity).
    pub cert: Vec<u8>,
    /// Signed charters after genesis, oldest first (at most [`MAX_HELLO_CHARTERS`]).
    pub charters: Vec<Vec<u8>>,
    /// Other certificates the sender knows (at most [`MAX_HELLO_CERTS`]).
    pub certs: Vec<Vec<u8>>,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Introduce ourselves; the answer is the peer's hello.
    Hello(Hello),
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    /// The peer's hello.
    Hello(Hello),
    /// The request was refused.
    Refused(String),
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
