//! Decoding and encoding frames with a body-length limit.

use bytes::{Buf, Bytes, BytesMut};

use crate::{DEFAULT_MAX_BODY, Frame, HEADER_LEN, Header, ProtocolError};

/// Reads and writes frames, refusing bodies above a maximum length.
///
/// The runtime-free methods [`decode_from`](Self::decode_from),
/// [`encode_into`](Self::encode_into) and [`decode_message`](Self::decode_message)
/// work with any I/O; with the `codec` feature (on by default) the type is
/// also a `tokio_util::codec::{Decoder, Encoder}` for `Framed` streams.
///
/// ```
/// use bytes::BytesMut;
/// use jim_protocol::{Command, Frame, FrameCodec};
///
/// let codec = FrameCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode_into(&Frame::new(Command::C2C, 1, r#"{"type":"text"}"#), &mut wire)?;
///
/// // A partial frame is not an error: wait for more bytes.
/// let mut partial = wire.split_to(10);
/// assert!(codec.decode_from(&mut partial)?.is_none());
/// partial.unsplit(wire);
/// let frame = codec.decode_from(&mut partial)?.expect("a whole frame");
/// assert_eq!(frame.cmd, Command::C2C);
/// # Ok::<(), jim_protocol::ProtocolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_body: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new()
    }
}

impl FrameCodec {
    /// A codec with the default maximum body, [`DEFAULT_MAX_BODY`] (64 KiB).
    pub const fn new() -> FrameCodec {
        FrameCodec::with_max_body(DEFAULT_MAX_BODY)
    }

    /// A codec with the given maximum body length in bytes.
    pub const fn with_max_body(max_body: usize) -> FrameCodec {
        FrameCodec { max_body }
    }

    /// The maximum body length this codec accepts and writes.
    pub const fn max_body(&self) -> usize {
        self.max_body
    }

    /// Checks a header against the limit.
    fn check(&self, header: &Header) -> Result<usize, ProtocolError> {
        let len = header.len as usize;
        if len > self.max_body {
            return Err(ProtocolError::BodyTooLarge {
                len: u64::from(header.len),
                max: self.max_body,
            });
        }
        Ok(len)
    }

    /// Takes the next whole frame off the front of `src`.
    ///
    /// Returns `Ok(None)` when `src` holds less than a frame (after reserving
    /// room for the rest of it). The body is split off `src` without copying.
    ///
    /// # Errors
    /// [`ProtocolError::BadMagic`] or [`ProtocolError::BodyTooLarge`], both
    /// fatal: the stream cannot be resynchronised. The length is checked
    /// from the header alone, before any of the body is buffered.
    #[inline]
    pub fn decode_from(&self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let Some(header) = Header::parse(src)? else {
            return Ok(None);
        };
        let len = self.check(&header)?;
        let frame_len = HEADER_LEN + len;
        if src.len() < frame_len {
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(frame_len);
        frame.advance(HEADER_LEN);
        Ok(Some(Frame {
            cmd: header.cmd,
            seq: header.seq,
            body: frame.freeze(),
        }))
    }

    /// Decodes a buffer that must hold exactly one frame, such as one binary
    /// WebSocket message. The body shares `message`'s allocation.
    ///
    /// # Errors
    /// The fatal errors of [`decode_from`](Self::decode_from), and
    /// [`ProtocolError::LengthMismatch`] when the buffer holds less or more
    /// than the frame its header declares.
    pub fn decode_message(&self, mut message: Bytes) -> Result<Frame, ProtocolError> {
        let header = Header::parse(&message)?.ok_or(ProtocolError::LengthMismatch {
            declared: None,
            actual: message.len(),
        })?;
        let len = self.check(&header)?;
        if message.len() != HEADER_LEN + len {
            return Err(ProtocolError::LengthMismatch {
                declared: Some(HEADER_LEN + len),
                actual: message.len(),
            });
        }
        message.advance(HEADER_LEN);
        Ok(Frame {
            cmd: header.cmd,
            seq: header.seq,
            body: message,
        })
    }

    /// Appends `frame` to `dst`.
    ///
    /// # Errors
    /// [`ProtocolError::BodyTooLarge`] if the body exceeds the maximum, so a
    /// sender never writes a frame its peer would have to reject.
    #[inline]
    pub fn encode_into(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        if frame.body.len() > self.max_body {
            return Err(ProtocolError::BodyTooLarge {
                len: frame.body.len() as u64,
                max: self.max_body,
            });
        }
        frame.encode(dst)
    }
}

#[cfg(feature = "codec")]
mod tokio_codec {
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use super::FrameCodec;
    use crate::{Frame, ProtocolError};

    impl Decoder for FrameCodec {
        type Item = Frame;
        type Error = ProtocolError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
            self.decode_from(src)
        }
    }

    impl Encoder<Frame> for FrameCodec {
        type Error = ProtocolError;

        fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
            self.encode_into(&frame, dst)
        }
    }

    impl Encoder<&Frame> for FrameCodec {
        type Error = ProtocolError;

        fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
            self.encode_into(frame, dst)
        }
    }
}
