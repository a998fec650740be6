//! The one place that knows about bincode.
//!
//! Every wire object is encoded with bincode 2.0.1 in a fixed configuration:
//! little-endian, fixed-width integers (`u32` = 4 bytes, `u64` = 8 bytes), lengths of
//! strings and sequences as `u64`, enum variants as `u32`, `Option` as a `0`/`1` byte,
//! fixed-size arrays as their raw bytes. `PROTOCOL.md` spells this out byte by byte.
//!
//! Decoding is strict: the input size is checked before anything is parsed, the decoder
//! may not allocate more than [`MAX_DECODE_BYTES`], trailing bytes are an error, and
//! re-encoding the decoded value must reproduce the input exactly (one encoding per value).

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

/// Upper bound on any single decoded object; no length field can make us allocate more.
pub const MAX_DECODE_BYTES: usize = 4 * 1024 * 1024;

type Config = Configuration<LittleEndian, Fixint, Limit<MAX_DECODE_BYTES>>;

const fn config() -> Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<MAX_DECODE_BYTES>()
}

/// Why bytes could not be decoded into a wire object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is larger than the limit for this object.
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// The input ended before the object was complete.
    #[error("input is truncated")]
    Truncated,
    /// Bytes remain after the object.
    #[error("{0} trailing bytes after the object")]
    TrailingBytes(usize),
    /// The bytes do not form a valid object (bad tag, bad UTF-8, length too large ...).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The object decodes but its canonical encoding differs from the input.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// A field holds a value this version does not accept.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Encodes a wire object into its canonical bytes.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding();
    // Writing into a Vec cannot fail: our types hold only integers, arrays, strings,
    // byte vectors and enums, none of which has a fallible encoder.
    bincode::encode_to_vec(value, config).unwrap_or_default()
}

/// Decodes exactly one object occupying all of `bytes`, strictly (see module docs).
pub fn decode_exact<T: Decode<()> + Encode>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    let (value, used) = decode_prefix::<T>(bytes, max_len)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes one object from the start of `bytes` and returns it with the number of bytes
/// it occupies; the caller decides what may follow. The prefix must be canonical.
pub fn decode_prefix<T: Decode<()> + Encode>(
    bytes: &[u8],
    max_len: usize,
) -> Result<(T, usize), DecodeError> {
    let max = max_len.min(MAX_DECODE_BYTES);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (value, used): (T, usize) =
        bincode::decode_from_slice(bytes, config()).map_err(map_error)?;
    if encode(&value) != bytes[..used] {
        return Err(DecodeError::NonCanonical);
    }
    Ok((value, used))
}

fn map_error(err: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as E;
    match err {
        E::UnexpectedEnd { .. } => DecodeError::Truncated,
        E::LimitExceeded => DecodeError::TooLarge {
            len: usize::MAX,
            max: MAX_DECODE_BYTES,
        },
        other => DecodeError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Encode, Decode)]
    struct Sample {
        a: u32,
        b: Vec<u8>,
        c: Option<bool>,
    }

    #[test]
    fn round_trip_and_layout() {
        let s = Sample {
            a: 1,
            b: vec![7, 8],
            c: Some(true),
        };
        let bytes = encode(&s);
        assert_eq!(
            bytes,
            [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 8, 1, 1],
            "fixint little-endian layout"
        );
        assert_eq!(decode_exact::<Sample>(&bytes, 100), Ok(s));
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = encode(&Sample {
            a: 1,
            b: vec![],
            c: None,
        });
        bytes.push(0);
        assert_eq!(
            decode_exact::<Sample>(&bytes, 100),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn size_checked_first() {
        let bytes = vec![0u8; 101];
        assert!(matches!(
            decode_exact::<Sample>(&bytes, 100),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn huge_length_field_does_not_allocate() {
        // a = 0, then a Vec length of 2^62.
        let mut bytes = vec![0, 0, 0, 0];
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        let err = decode_exact::<Sample>(&bytes, 100).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge { .. } | DecodeError::Truncated),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_bool_and_option_tags_rejected() {
        let mut bytes = encode(&Sample {
            a: 1,
            b: vec![],
            c: Some(true),
        });
        let last = bytes.len() - 1;
        bytes[last] = 2;
        assert!(decode_exact::<Sample>(&bytes, 100).is_err());
        bytes[last - 1] = 9;
        assert!(decode_exact::<Sample>(&bytes, 100).is_err());
    }

    #[test]
    fn truncated_rejected() {
        let bytes = encode(&Sample {
            a: 1,
            b: vec![1, 2, 3],
            c: None,
        });
        for cut in 0..bytes.len() {
            assert!(decode_exact::<Sample>(&bytes[..cut], 100).is_err());
        }
    }
}
