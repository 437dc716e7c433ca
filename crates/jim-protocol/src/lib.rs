//! The `jim1` frame protocol of the Jim instant-messaging gateway.
//!
//! Every message between a Jim client and server, over TCP or WebSocket, is
//! one frame: a fixed 16-byte header and a body. Integers are big-endian.
//!
//! ```text
//! offset  0        4        8        12       16
//!         +--------+--------+--------+--------+------------------+
//!         | "jim1" |  cmd   |  seq   |  len   |  body: len bytes |
//!         +--------+--------+--------+--------+------------------+
//!           magic    ASCII    u32      u32      UTF-8 JSON, or
//!                    "B101"   request  body     empty, or short
//!                             number   length   ping/pong text
//! ```
//!
//! This crate holds the frame ([`Frame`], [`Header`]), the command codes
//! ([`Command`]) and a codec ([`FrameCodec`]) that enforces a maximum body
//! length from the header alone and splits bodies off the read buffer
//! without copying. It starts no runtime and depends only on `bytes`,
//! `thiserror` and (optionally) `tokio-util`. Message bodies live in the
//! `jim-model` crate.
//!
//! # Features
//! - `codec` (default): `tokio_util::codec::{Decoder, Encoder}` for
//!   [`FrameCodec`], to use with `tokio_util::codec::Framed`. Without it the
//!   runtime-free [`FrameCodec::decode_from`] and [`FrameCodec::encode_into`]
//!   remain, for blocking clients or other runtimes.
//!
//! # Example
//! ```
//! use bytes::BytesMut;
//! use jim_protocol::{Command, Frame, FrameCodec, ProtocolError};
//!
//! let codec = FrameCodec::new(); // 64 KiB maximum body
//! let mut wire = BytesMut::new();
//! codec.encode_into(&Frame::new(Command::Ping, 1, ""), &mut wire)?;
//! codec.encode_into(&Frame::new(Command::C2C, 2, r#"{"type":"text","data":{}}"#), &mut wire)?;
//!
//! let ping = codec.decode_from(&mut wire)?.unwrap();
//! assert_eq!((ping.cmd, ping.seq), (Command::Ping, 1));
//! let msg = codec.decode_from(&mut wire)?.unwrap();
//! assert_eq!(msg.cmd, Command::C2C);
//! assert!(codec.decode_from(&mut wire)?.is_none()); // nothing left
//!
//! // A stream that does not start with "jim1" is refused at once.
//! let mut junk = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
//! assert!(matches!(codec.decode_from(&mut junk), Err(ProtocolError::BadMagic { .. })));
//! # Ok::<(), ProtocolError>(())
//! ```

#![warn(missing_docs)]

mod codec;
mod command;
mod error;
mod frame;
mod transport;

pub use codec::FrameCodec;
pub use command::Command;
pub use error::ProtocolError;
pub use frame::{CMD_OFFSET, DEFAULT_MAX_BODY, Frame, HEADER_LEN, Header, LEN_OFFSET, MAGIC, SEQ_OFFSET};
pub use transport::Transport;
