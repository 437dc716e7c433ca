//! Typed business messages: the bodies of `B101`, `B102` and `B103`.
//!
//! These types are for clients, bots and embedding services that build or
//! read messages. The gateway itself routes with [`RawMessage`](crate::RawMessage),
//! which never builds them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{FileFormat, ImageFormat, MessageId, MessageKind, ModelError, VideoFormat};

/// Fields a message body may carry that this crate does not know; kept and
/// written back as they were, so applications can extend messages.
pub type Extra = Map<String, Value>;

/// A business message: the envelope `{"type": T, "data": {...}}`.
///
/// ```
/// use jim_model::{Message, Text};
///
/// let body = r#"{"type":"text","data":{"receiver_id":"2","content":"hi","mood":"happy"}}"#;
/// let message = Message::from_slice(body.as_bytes())?;
/// let Message::Text(text) = &message else { panic!("a text") };
/// assert_eq!(text.content, "hi");
/// assert_eq!(text.extra["mood"], "happy"); // unknown fields are kept
///
/// let reply = Message::Text(Text::new("1", "hello back"));
/// assert_eq!(reply.to_vec(), br#"{"type":"text","data":{"receiver_id":"1","content":"hello back"}}"#);
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum Message {
    /// `text`
    Text(Text),
    /// `location`
    Location(Location),
    /// `face`
    Face(Face),
    /// `sound`
    Sound(Sound),
    /// `image`
    Image(Image),
    /// `file`
    File(File),
    /// `video`
    Video(Video),
    /// `ack`
    Ack(Ack),
    /// `error` (server to client only)
    Error(ErrorData),
}

impl Message {
    /// Parses a message body.
    ///
    /// # Errors
    /// [`ModelError::Json`] naming what is malformed, missing or ill-typed.
    pub fn from_slice(body: &[u8]) -> Result<Message, ModelError> {
        serde_json::from_slice(body).map_err(ModelError::Json)
    }

    /// The body as JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising these types cannot fail: keys are strings, numbers finite.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The message's `type`.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Location(_) => MessageKind::Location,
            Message::Face(_) => MessageKind::Face,
            Message::Sound(_) => MessageKind::Sound,
            Message::Image(_) => MessageKind::Image,
            Message::File(_) => MessageKind::File,
            Message::Video(_) => MessageKind::Video,
            Message::Ack(_) => MessageKind::Ack,
            Message::Error(_) => MessageKind::Error,
        }
    }

    /// The common fields, for every kind but `ack` and `error`.
    pub fn common(&self) -> Option<&Common> {
        match self {
            Message::Text(m) => Some(&m.common),
            Message::Location(m) => Some(&m.common),
            Message::Face(m) => Some(&m.common),
            Message::Sound(m) => Some(&m.common),
            Message::Image(m) => Some(&m.common),
            Message::File(m) => Some(&m.common),
            Message::Video(m) => Some(&m.common),
            Message::Ack(_) | Message::Error(_) => None,
        }
    }
}

fn is_none<T>(value: &Option<T>) -> bool {
    value.is_none()
}

/// Fields every chat message carries. The server overwrites `sender_id`
/// (and `sender_name` / `sender_avatar` when the sender's token has them),
/// and stamps `message_id` and `timestamp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// The sending user; set by the server on delivery.
    #[serde(default, skip_serializing_if = "is_none")]
    pub sender_id: Option<String>,
    /// The sender's display name.
    #[serde(default, skip_serializing_if = "is_none")]
    pub sender_name: Option<String>,
    /// The sender's avatar URL.
    #[serde(default, skip_serializing_if = "is_none")]
    pub sender_avatar: Option<String>,
    /// A user id (C2C, S2C) or a group id (C2G).
    pub receiver_id: String,
    /// Stamped by the server on acceptance.
    #[serde(default, skip_serializing_if = "is_none")]
    pub message_id: Option<MessageId>,
    /// Stamped by the server on acceptance: milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "is_none")]
    pub timestamp: Option<u64>,
}

impl Common {
    /// Common fields addressed to `receiver_id`, everything else unset.
    pub fn to(receiver_id: impl Into<String>) -> Common {
        Common {
            receiver_id: receiver_id.into(),
            ..Common::default()
        }
    }
}

/// `text`: a line of chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    /// Sender, receiver and server stamps.
    #[serde(flatten)]
    pub common: Common,
    /// The text.
    pub content: String,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Text {
    /// A text to `receiver_id`.
    pub fn new(receiver_id: impl Into<String>, content: impl Into<String>) -> Text {
        Text {
            common: Common::to(receiver_id),
            content: content.into(),
            extra: Extra::new(),
        }
    }
}

/// `location`: a place on a map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Sender, receiver and server stamps.
    #[serde(flatten)]
    pub common: Common,
    /// Latitude. Not range-checked: the seed's sample has it swapped with `lng`.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
    /// A picture of the map.
    #[serde(default, skip_serializing_if = "is_none")]
    pub cover_image: Option<String>,
    /// A link that opens the place in a map.
    #[serde(default, skip_serializing_if = "is_none")]
    pub map_link: Option<String>,
    /// A description of the place.
    #[serde(default, skip_serializing_if = "is_none")]
    pub desc: Option<String>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `face`: an emoticon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Sender, receiver and server stamps.
    #[serde(flatten)]
    pub common: Common,
    /// The emoticon's symbol, such as `[:smile]`.
    pub symbol: String,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `sound`: a voice clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sound {
    /// Sender, receiver and server stamps.
    #[serde(flatten)]
    pub common: Common,
    /// Where the clip is.
    pub url: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "is_none")]
    pub size: Option<u64>,
    /// Duration in seconds.
    #[serde(default, skip_serializing_if = "is_none")]
    pub seconds: Option<u32>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `image`: a picture. Keys with a trailing space (`"size "`, as in the
/// seed's sample) are read as the clean keys; output uses the clean keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Sender, receiver and server stamps.
    #[serde(flatten)]
    pub common: Common,
    /// The picture's format.
    #[serde(default, skip_serializing_if = "is_none")]
    pub format: Option<ImageFormat>,
    /// Size in bytes.
    #[serde(default, alias = "size ", skip_serializing_if = "is_none")]
    pub size: Option<u64>,
    /// Width in pixels.
    #[serde(default, alias = "width ", skip_serializing_if = "is_none")]
    pub width: Option<u32>,
    /// Height in pixels.
    #[serde(default, alias = "height ", skip_serializing_if = "is_none")]
    pub height: Option<u32>,
    /// A thumbnail.
    #[serde(default, alias = "icon_url ", skip_serializing_if = "is_none")]
    pub icon_url: Option<String>,
    /// The full picture.
    #[serde(alias = "big_url ")]
    pub big_url: String,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `file`: a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Sender, receiver and server stamps.
    #[serde(flatten)]
    pub common: Common,
    /// Where the file is.
    pub url: String,
    /// The file name.
    pub name: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "is_none")]
    pub size: Option<u64>,
    /// The document format.
    #[serde(default, skip_serializing_if = "is_none")]
    pub format: Option<FileFormat>,
    /// A preview picture.
    #[serde(default, skip_serializing_if = "is_none")]
    pub thumb_url: Option<String>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `video`: a clip with a thumbnail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    /// Sender, receiver and server stamps.
    #[serde(flatten)]
    pub common: Common,
    /// Where the video is.
    pub url: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "is_none")]
    pub size: Option<u64>,
    /// Duration in seconds.
    #[serde(default, skip_serializing_if = "is_none")]
    pub seconds: Option<u32>,
    /// The container format.
    #[serde(default, skip_serializing_if = "is_none")]
    pub format: Option<VideoFormat>,
    /// A preview picture.
    #[serde(default, skip_serializing_if = "is_none")]
    pub thumb_url: Option<String>,
    /// The preview's size in bytes.
    #[serde(default, skip_serializing_if = "is_none")]
    pub thumb_size: Option<u64>,
    /// The preview's width in pixels.
    #[serde(default, skip_serializing_if = "is_none")]
    pub thumb_width: Option<u32>,
    /// The preview's height in pixels.
    #[serde(default, skip_serializing_if = "is_none")]
    pub thumb_height: Option<u32>,
    /// The preview's image format.
    #[serde(default, skip_serializing_if = "is_none")]
    pub thumb_format: Option<ImageFormat>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ack`: the server's acceptance of a request, or a client's receipt of a
/// message it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The receiver of the acknowledged message (empty in a group's
    /// receipt, which names `group_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub receiver_id: String,
    /// A receipt's group (v1.2), in place of `receiver_id`.
    #[serde(default, skip_serializing_if = "is_none")]
    pub group_id: Option<String>,
    /// The `seq` of the acknowledged request (server acks always carry it).
    #[serde(default, skip_serializing_if = "is_none")]
    pub request_id: Option<u32>,
    /// The id the server gave the message (a receipt's: the message read
    /// or delivered up to).
    pub message_id: MessageId,
    /// A receipt's `"read"` or `"delivered"` (v1.2); none in a v1 ack.
    #[serde(default, skip_serializing_if = "is_none")]
    pub status: Option<String>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `error`: why a request was refused. The connection stays open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorData {
    /// One of the [`ErrorCode`](crate::ErrorCode)s.
    pub code: u16,
    /// A human-readable explanation.
    pub reason: String,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}
