//! What a gateway asks its router to route.

use std::sync::Arc;

use bytes::Bytes;
use jim_model::{MessageId, MessageIdGenerator, MessageKind, ModelError, RawMessage, Stamp, unix_ms_now};
use jim_protocol::Command;

use crate::{GroupId, SessionId, UserId};

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every session of one user.
    User(UserId),
    /// Every session of every member of a group (for C2G, except the
    /// sending session).
    Group(GroupId),
    /// Every session on every gateway.
    Everyone,
}

impl Target {
    /// Whether this is a group.
    pub fn is_group(&self) -> bool {
        matches!(self, Target::Group(_))
    }
}

/// The sending session of a client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The authenticated user.
    pub user: UserId,
    /// The session it was sent on (excluded from its own group's fan-out).
    pub session: SessionId,
}

/// An accepted, stamped message on its way to its recipients.
///
/// The body is shared: every recipient session gets the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// `B101` (C2C), `B102` (C2G) or `B103` (S2C).
    pub cmd: Command,
    /// The body's `type`.
    pub kind: MessageKind,
    /// The recipients.
    pub target: Target,
    /// The client that sent it; `None` for a server push.
    pub sender: Option<Sender>,
    /// The id stamped into the body.
    pub message_id: MessageId,
    /// The stamped JSON body.
    pub body: Bytes,
    /// The client's `data.client_msg_id`: a retry with the same sender and
    /// id within the inbox's window is acked as the original, not sent
    /// again.
    pub client_msg_id: Option<Arc<str>>,
}

impl Outgoing {
    /// What an inbox stores of this message, for recipients other than
    /// `except` (the sending session of a group message).
    pub fn stored(&self, except: Option<SessionId>) -> jim_inbox::Append<'_> {
        jim_inbox::Append {
            cmd: self.cmd,
            body: &self.body,
            except: except.map(|session| session.0),
            sender: self.sender.as_ref().map(|s| &*s.user),
            client_msg_id: self.client_msg_id.as_deref(),
            message_id: self.message_id.0,
        }
    }

    /// A server push (`B103`) of a message body to `target`, validated and
    /// stamped with `sender_id`, a fresh `message_id` and the time.
    ///
    /// The body's `receiver_id` is kept as given.
    ///
    /// ```
    /// use jim_model::{Message, MessageIdGenerator, Text};
    /// use jim_router::{Outgoing, Target};
    ///
    /// let ids = MessageIdGenerator::new(0)?;
    /// let body = Message::Text(Text::new("alice", "Your order shipped")).to_vec();
    /// let push = Outgoing::push(Target::User("alice".into()), &body, "system", &ids)?;
    /// assert!(std::str::from_utf8(&push.body).unwrap().contains(r#""sender_id":"system""#));
    /// # Ok::<(), jim_model::ModelError>(())
    /// ```
    ///
    /// # Errors
    /// A [`ModelError`] for an invalid body, or a body that is not a chat
    /// message (`ack` and `error` cannot be pushed).
    pub fn push(
        target: Target,
        body: &[u8],
        sender_id: &str,
        ids: &MessageIdGenerator,
    ) -> Result<Outgoing, ModelError> {
        let message = RawMessage::parse(body)?;
        if !message.kind().is_chat() {
            return Err(ModelError::NotAllowed {
                reason: "only chat messages can be pushed, not ack or error",
            });
        }
        let message_id = ids.next_id();
        let mut stamped = Vec::with_capacity(body.len() + 96);
        message.stamp(&Stamp::new(sender_id, message_id, unix_ms_now()), &mut stamped);
        Ok(Outgoing {
            cmd: Command::S2C,
            kind: message.kind(),
            target,
            sender: None,
            message_id,
            body: Bytes::from(stamped),
            client_msg_id: None,
        })
    }
}

/// What the router did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Receipt {
    /// Sessions the message was queued to, when the backend knows (the
    /// local backend does; remote backends may not).
    pub sessions: Option<usize>,
    /// The message's offset in the sender's own inbox (a group message to
    /// a group the sender is in), which the sending session is not sent.
    pub offset: Option<u32>,
    /// Set when the message was a retry (same sender and `client_msg_id`)
    /// of one accepted earlier: that message's id. Nothing was sent.
    pub original: Option<MessageId>,
    /// The users the message went to (a group's members: what it cost to
    /// store and deliver; 0 for a retry, or a push to everyone, which no
    /// inbox keeps).
    pub recipients: usize,
}

/// A client's `ack` of a message it received: observed, never routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAck {
    /// The acknowledging user.
    pub user: UserId,
    /// The session it came on.
    pub session: SessionId,
    /// The id of the acknowledged message.
    pub message_id: MessageId,
    /// The ack's whole body, as the client sent it.
    pub body: Bytes,
}
