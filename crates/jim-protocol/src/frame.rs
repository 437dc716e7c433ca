//! The frame and its 16-byte header.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Command, ProtocolError};

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"jim1";
/// Length of the fixed header: magic, command, sequence number, body length.
pub const HEADER_LEN: usize = 16;
/// Byte offset of the command code in the header.
pub const CMD_OFFSET: usize = 4;
/// Byte offset of the big-endian `u32` sequence number in the header.
pub const SEQ_OFFSET: usize = 8;
/// Byte offset of the big-endian `u32` body length in the header.
pub const LEN_OFFSET: usize = 12;
/// The default maximum body length a receiver accepts: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// One `jim1` frame: a command, the sender's sequence number and a body.
///
/// The body is [`Bytes`], so a decoded frame shares the read buffer and a
/// frame delivered to many sessions shares one allocation.
///
/// ```
/// use jim_protocol::{Command, Frame};
///
/// let ping = Frame::new(Command::Ping, 7, "hi");
/// assert_eq!(ping.encoded_len(), 16 + 2);
/// let pong = ping.reply(Command::Pong, "");
/// assert_eq!((pong.cmd, pong.seq), (Command::Pong, 7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame asks or says.
    pub cmd: Command,
    /// Chosen by the sender of a request; a reply echoes it.
    pub seq: u32,
    /// UTF-8 JSON, or empty, or a short text for ping and pong.
    pub body: Bytes,
}

impl Frame {
    /// A frame with the given body.
    pub fn new(cmd: Command, seq: u32, body: impl Into<Bytes>) -> Frame {
        Frame {
            cmd,
            seq,
            body: body.into(),
        }
    }

    /// A frame with an empty body.
    pub const fn empty(cmd: Command, seq: u32) -> Frame {
        Frame {
            cmd,
            seq,
            body: Bytes::new(),
        }
    }

    /// A reply to this frame: same `seq`, the given command and body.
    pub fn reply(&self, cmd: Command, body: impl Into<Bytes>) -> Frame {
        Frame::new(cmd, self.seq, body)
    }

    /// The header this frame is written with.
    ///
    /// # Errors
    /// [`ProtocolError::BodyTooLarge`] if the body does not fit the `u32`
    /// length field.
    pub fn header(&self) -> Result<Header, ProtocolError> {
        let len = u32::try_from(self.body.len()).map_err(|_| ProtocolError::BodyTooLarge {
            len: self.body.len() as u64,
            max: u32::MAX as usize,
        })?;
        Ok(Header {
            cmd: self.cmd,
            seq: self.seq,
            len,
        })
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Appends the frame to `dst`, with no length limit but the `u32` field.
    ///
    /// Prefer [`FrameCodec::encode_into`](crate::FrameCodec::encode_into),
    /// which also refuses bodies the peer would reject.
    ///
    /// # Errors
    /// [`ProtocolError::BodyTooLarge`] if the body does not fit in `u32`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let header = self.header()?;
        dst.reserve(self.encoded_len());
        dst.put_slice(&header.to_bytes());
        dst.put_slice(&self.body);
        Ok(())
    }

    /// The frame as one contiguous buffer, e.g. for one WebSocket message.
    ///
    /// # Errors
    /// [`ProtocolError::BodyTooLarge`] if the body does not fit in `u32`.
    pub fn to_bytes(&self) -> Result<Bytes, ProtocolError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }
}

/// The fixed 16-byte header of a frame.
///
/// ```text
/// 0        4        8        12       16
/// +--------+--------+--------+--------+----------------+
/// | "jim1" |  cmd   |  seq   |  len   |  body (len)    |
/// +--------+--------+--------+--------+----------------+
/// ```
///
/// Reading a header alone lets a receiver refuse an oversized body before
/// buffering any of it:
///
/// ```
/// use jim_protocol::{Command, Header};
///
/// let bytes = Header { cmd: Command::Ping, seq: 1, len: 0 }.to_bytes();
/// let header = Header::parse(&bytes).unwrap().unwrap();
/// assert_eq!(header.cmd, Command::Ping);
/// assert!(Header::parse(&bytes[..10]).unwrap().is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The command code.
    pub cmd: Command,
    /// The sequence number.
    pub seq: u32,
    /// The declared body length.
    pub len: u32,
}

impl Header {
    /// Parses the header at the start of `buf`.
    ///
    /// Returns `Ok(None)` while fewer than [`HEADER_LEN`] bytes are there.
    /// The magic is checked as soon as its four bytes are present, so a
    /// stream that is not `jim1` fails early.
    ///
    /// # Errors
    /// [`ProtocolError::BadMagic`] if the first four bytes are not `jim1`.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
        if let Some(magic) = buf.first_chunk::<4>()
            && *magic != MAGIC
        {
            return Err(ProtocolError::BadMagic { found: *magic });
        }
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let field = |offset: usize| [head[offset], head[offset + 1], head[offset + 2], head[offset + 3]];
        Ok(Some(Header {
            cmd: Command::from_code(field(CMD_OFFSET)),
            seq: u32::from_be_bytes(field(SEQ_OFFSET)),
            len: u32::from_be_bytes(field(LEN_OFFSET)),
        }))
    }

    /// The header's 16 bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..CMD_OFFSET].copy_from_slice(&MAGIC);
        out[CMD_OFFSET..SEQ_OFFSET].copy_from_slice(&self.cmd.code());
        out[SEQ_OFFSET..LEN_OFFSET].copy_from_slice(&self.seq.to_be_bytes());
        out[LEN_OFFSET..].copy_from_slice(&self.len.to_be_bytes());
        out
    }
}
