//! Business messages and control bodies of the Jim IM gateway.
//!
//! The bodies of `jim1` frames (see the `jim-protocol` crate) are JSON. This
//! crate holds:
//!
//! - [`Message`] and its kinds ([`Text`], [`Location`], [`Face`], [`Sound`],
//!   [`Image`], [`File`], [`Video`], [`Ack`], [`ErrorData`]): typed serde
//!   structs for clients and services, keeping unknown fields in `extra`.
//! - [`RawMessage`]: what the gateway uses. One pass over the body, each
//!   contract field type-checked ([`ModelError`] names the field), and
//!   [`RawMessage::stamp`] writing the server's fields around the client's
//!   JSON without re-serialising it. [`Addressing::peek`] reads only `type` and
//!   `receiver_id`.
//! - The control bodies: [`AuthRequest`], [`AuthOk`], [`Status`].
//! - [`MessageId`] and [`MessageIdGenerator`]: ids unique across gateways,
//!   increasing with time, written as strings so browsers read them exactly.
//! - [`ErrorCode`] and [`CloseCode`]: the numbers of error replies and `A999`.
//!
//! ```
//! use jim_model::{Message, MessageKind, RawMessage};
//!
//! let body = br#"{"type":"face","data":{"sender_id":"1","receiver_id":"2","symbol":"[:smile]"}}"#;
//! // A client reads it typed...
//! let Message::Face(face) = Message::from_slice(body)? else { unreachable!() };
//! assert_eq!(face.symbol, "[:smile]");
//! // ...the gateway reads it raw.
//! let raw = RawMessage::parse(body)?;
//! assert_eq!((raw.kind(), raw.receiver_id()), (MessageKind::Face, "2"));
//!
//! // Bad bodies name the offending field.
//! let err = RawMessage::parse(br#"{"type":"face","data":{"receiver_id":"2","symbol":7}}"#).unwrap_err();
//! assert_eq!(err.to_string(), "field `data.symbol` must be a string");
//! # Ok::<(), jim_model::ModelError>(())
//! ```

#![warn(missing_docs)]

mod codes;
mod control;
mod conversation;
mod error;
mod format;
mod id;
mod kind;
mod message;
pub mod position;
mod raw;
pub mod schema;
pub mod strict;

pub use codes::{CloseCode, ErrorCode};

/// The longest `data.client_msg_id` a message may carry, in bytes (the
/// contract's section 7: a string of 1 to 64 bytes).
pub const MAX_CLIENT_MSG_ID: usize = 64;
pub use control::{AuthOk, AuthRequest, InboxHead, Position, Status};
pub use conversation::{Conversation, EntryView, HistoryRequest, Mark, MarkStatus, Typing};
pub use error::ModelError;
pub use format::{FileFormat, ImageFormat, VideoFormat};
pub use id::{EPOCH_MS, MAX_NODE, MessageId, MessageIdGenerator, NODE_BITS, SEQUENCE_BITS, unix_ms_now};
pub use kind::MessageKind;
pub use message::{Ack, Common, ErrorData, Extra, Face, File, Image, Location, Message, Sound, Text, Video};
pub use raw::{Addressing, RawMessage, Stamp, addressed, write_ack, write_error, write_error_code};
