//! The `type` of a business message.

use std::fmt;

/// The `type` of a business message envelope.
///
/// ```
/// use jim_model::MessageKind;
///
/// assert_eq!(MessageKind::parse("video"), Some(MessageKind::Video));
/// assert_eq!(MessageKind::Video.as_str(), "video");
/// assert_eq!(MessageKind::parse("Video"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `text`
    Text,
    /// `location`
    Location,
    /// `face`
    Face,
    /// `sound`
    Sound,
    /// `image`
    Image,
    /// `file`
    File,
    /// `video`
    Video,
    /// `ack`
    Ack,
    /// `error` (server to client only)
    Error,
    /// `typing`: the body of a `B104` (v1.2), never of a B101 or B102:
    /// not among [`MessageKind::ALL`], so a message of this type is an
    /// unknown type there.
    Typing,
}

impl MessageKind {
    /// Every kind, in the contract's order.
    pub const ALL: [MessageKind; 9] = [
        MessageKind::Text,
        MessageKind::Location,
        MessageKind::Face,
        MessageKind::Sound,
        MessageKind::Image,
        MessageKind::File,
        MessageKind::Video,
        MessageKind::Ack,
        MessageKind::Error,
    ];

    /// The kind named by a `type` value (case-sensitive).
    pub fn parse(name: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The `type` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Location => "location",
            MessageKind::Face => "face",
            MessageKind::Sound => "sound",
            MessageKind::Image => "image",
            MessageKind::File => "file",
            MessageKind::Video => "video",
            MessageKind::Ack => "ack",
            MessageKind::Error => "error",
            MessageKind::Typing => "typing",
        }
    }

    /// Whether this kind is a chat message that is routed to recipients
    /// (everything but `ack` and `error`).
    pub const fn is_chat(self) -> bool {
        !matches!(self, MessageKind::Ack | MessageKind::Error | MessageKind::Typing)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
