//! The one error type of this crate.

use std::fmt;

/// Why a frame could not be read or written.
///
/// Every variant but [`Io`](ProtocolError::Io) describes the bytes seen.
/// All decoding errors are fatal for a stream: after a bad magic or an
/// oversized length the next frame boundary is unknown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first four bytes were not `jim1`.
    #[error("bad magic: expected \"jim1\", got \"{}\"", Escaped(found))]
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// The declared (or, when writing, actual) body length is above the limit.
    #[error("frame body of {len} bytes exceeds the maximum of {max} bytes")]
    BodyTooLarge {
        /// The body length declared by the header, or the body to be written.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// A buffer meant to hold exactly one frame (a WebSocket message) holds
    /// a different number of bytes than its header declares.
    #[error("message of {actual} bytes is not exactly one frame ({})", Declared(*declared))]
    LengthMismatch {
        /// Header plus body length from the header; `None` if the message is
        /// shorter than a header.
        declared: Option<usize>,
        /// Bytes in the message.
        actual: usize,
    },
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

struct Escaped<'a>(&'a [u8; 4]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            write!(f, "{}", std::ascii::escape_default(byte))?;
        }
        Ok(())
    }
}

struct Declared(Option<usize>);

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(len) => write!(f, "its header declares {len} bytes"),
            None => write!(f, "shorter than the 16-byte header"),
        }
    }
}
