//! Conversations and the bodies that name one (contract v1.2): typing
//! (`B104`).

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// A conversation, named from the viewer's side: `{"user":"bob"}` (one to
/// one) or `{"group":"team"}`.
///
/// ```
/// use jim_model::Conversation;
///
/// let with_bob: Conversation = serde_json::from_str(r#"{"user":"bob"}"#)?;
/// assert_eq!(with_bob, Conversation::User("bob".into()));
/// assert_eq!(serde_json::to_string(&Conversation::Group("team".into()))?, r#"{"group":"team"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Conversation {
    /// One to one, with this user.
    User(String),
    /// In this group.
    Group(String),
}

/// A body the server writes (typing, receipts), its fields in the order
/// the contract shows them.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: Relayed<'a>,
}

#[derive(Serialize)]
struct Relayed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    receiver_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    sender_id: &'a str,
}

impl Conversation {
    /// The conversation a body names with `data.receiver_id` (a user) or
    /// `data.group_id` (a group): exactly one, a non-empty string.
    fn named(
        receiver_id: Option<serde_json::Value>,
        group_id: Option<serde_json::Value>,
    ) -> Result<Conversation, ModelError> {
        let id = |value: Option<serde_json::Value>, field: &str| match value {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(id)) if !id.is_empty() => Ok(Some(id)),
            Some(_) => Err(ModelError::InvalidField {
                field: format!("data.{field}"),
                expected: "a non-empty string",
            }),
        };
        match (id(receiver_id, "receiver_id")?, id(group_id, "group_id")?) {
            (Some(user), None) => Ok(Conversation::User(user)),
            (None, Some(group)) => Ok(Conversation::Group(group)),
            (None, None) => Err(ModelError::MissingField {
                field: "data.receiver_id".into(),
            }),
            (Some(_), Some(_)) => Err(ModelError::InvalidField {
                field: "data.group_id".into(),
                expected: "absent when `data.receiver_id` is given",
            }),
        }
    }

    /// The user, for a one-to-one conversation.
    pub fn user(&self) -> Option<&str> {
        match self {
            Conversation::User(id) => Some(id),
            Conversation::Group(_) => None,
        }
    }

    /// The group, for a group conversation.
    pub fn group(&self) -> Option<&str> {
        match self {
            Conversation::Group(id) => Some(id),
            Conversation::User(_) => None,
        }
    }

    /// The user or group id.
    pub fn id(&self) -> &str {
        match self {
            Conversation::User(id) | Conversation::Group(id) => id,
        }
    }
}

/// A `B104` body: `{"type":"typing","data":{"receiver_id":"bob","state":"on"}}`
/// (or `"group_id"` for a group; `state` `"on"` or `"off"`).
///
/// ```
/// use jim_model::{Conversation, Typing};
///
/// let typing = Typing::parse(br#"{"type":"typing","data":{"group_id":"team","state":"on"}}"#)?;
/// assert_eq!(typing, Typing { conversation: Conversation::Group("team".into()), on: true });
/// let relayed = typing.relayed("alice");
/// assert_eq!(
///     std::str::from_utf8(&relayed).unwrap(),
///     r#"{"type":"typing","data":{"group_id":"team","state":"on","sender_id":"alice"}}"#
/// );
/// let err = Typing::parse(br#"{"type":"typing","data":{"receiver_id":"bob","state":"maybe"}}"#).unwrap_err();
/// assert_eq!(err.to_string(), r#"field `data.state` must be "on" or "off""#);
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typing {
    /// Where: the user written to, or the group.
    pub conversation: Conversation,
    /// `"on"` (typing) or `"off"` (stopped).
    pub on: bool,
}

#[derive(Deserialize)]
struct TypingBody {
    #[serde(rename = "type")]
    kind: String,
    data: TypingData,
}

#[derive(Deserialize)]
struct TypingData {
    #[serde(default)]
    receiver_id: Option<serde_json::Value>,
    #[serde(default)]
    group_id: Option<serde_json::Value>,
    #[serde(default)]
    state: Option<serde_json::Value>,
}

impl Typing {
    /// Parses a `B104` body, rejecting JSON that parsers read differently
    /// ([`strict`](crate::strict)).
    ///
    /// # Errors
    /// A [`ModelError`] naming the field: a `type` other than `typing`,
    /// neither or both of `receiver_id` and `group_id` (or an empty one), a
    /// `state` other than `"on"` or `"off"`.
    pub fn parse(body: &[u8]) -> Result<Typing, ModelError> {
        crate::strict::check(body)?;
        let body: TypingBody = serde_json::from_slice(body).map_err(ModelError::Json)?;
        if body.kind != "typing" {
            return Err(ModelError::InvalidField {
                field: "type".into(),
                expected: r#""typing" in B104"#,
            });
        }
        let conversation = Conversation::named(body.data.receiver_id, body.data.group_id)?;
        let on = match body.data.state.as_ref().and_then(serde_json::Value::as_str) {
            Some("on") => true,
            Some("off") => false,
            _ => {
                return Err(ModelError::InvalidField {
                    field: "data.state".into(),
                    expected: r#""on" or "off""#,
                });
            }
        };
        Ok(Typing { conversation, on })
    }

    /// The body its recipients get: the same, with the server's
    /// `sender_id`.
    pub fn relayed(&self, sender_id: &str) -> Vec<u8> {
        let data = Relayed {
            receiver_id: self.conversation.user(),
            group_id: self.conversation.group(),
            message_id: None,
            state: Some(if self.on { "on" } else { "off" }),
            status: None,
            sender_id,
        };
        serde_json::to_vec(&Envelope { kind: "typing", data }).unwrap_or_default()
    }
}

/// What a receipt says: the reader has read, or had delivered, everything
/// up to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkStatus {
    /// `"read"`.
    Read,
    /// `"delivered"`.
    Delivered,
}

impl MarkStatus {
    /// As written in a receipt.
    pub const fn as_str(self) -> &'static str {
        match self {
            MarkStatus::Read => "read",
            MarkStatus::Delivered => "delivered",
        }
    }
}

/// A receipt (the contract's section 8): a B101 `ack` with a `status`,
/// `{"type":"ack","data":{"receiver_id":"bob","message_id":"X","status":"read"}}`
/// (`"group_id"` in place of `receiver_id` for a group): "I have read (or
/// had delivered) everything up to message X in this conversation".
///
/// ```
/// use jim_model::{Conversation, Mark, MarkStatus, MessageId};
///
/// let body = br#"{"type":"ack","data":{"group_id":"team","message_id":"42","status":"read"}}"#;
/// let mark = Mark::parse(body)?.expect("a receipt");
/// assert_eq!(mark, Mark {
///     conversation: Conversation::Group("team".into()),
///     status: MarkStatus::Read,
///     message_id: MessageId(42),
/// });
/// assert_eq!(Mark::from_key(&mark.key()), Some((MarkStatus::Read, mark.conversation.clone())));
/// // A v1 ack (no status) is not a receipt.
/// assert_eq!(Mark::parse(br#"{"type":"ack","data":{"receiver_id":"bob","message_id":"42"}}"#)?, None);
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The conversation, from the reader's side.
    pub conversation: Conversation,
    /// Read or delivered.
    pub status: MarkStatus,
    /// Up to this message.
    pub message_id: crate::MessageId,
}

#[derive(Deserialize)]
struct MarkBody {
    #[serde(rename = "type")]
    kind: String,
    data: MarkData,
}

#[derive(Deserialize)]
struct MarkData {
    #[serde(default)]
    receiver_id: Option<serde_json::Value>,
    #[serde(default)]
    group_id: Option<serde_json::Value>,
    #[serde(default)]
    message_id: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<serde_json::Value>,
}

impl Mark {
    /// Reads a B101 `ack`: `None` for a v1 ack (no `status`).
    ///
    /// # Errors
    /// A [`ModelError`] naming the field: a `status` other than `"read"`
    /// or `"delivered"`, a `message_id` that is not a message id, neither
    /// or both of `receiver_id` and `group_id`.
    pub fn parse(body: &[u8]) -> Result<Option<Mark>, ModelError> {
        crate::strict::check(body)?;
        let body: MarkBody = serde_json::from_slice(body).map_err(ModelError::Json)?;
        let Some(status) = body.data.status else {
            return Ok(None);
        };
        if body.kind != "ack" {
            return Err(ModelError::InvalidField {
                field: "type".into(),
                expected: r#""ack" in a receipt"#,
            });
        }
        let status = match status.as_str() {
            Some("read") => MarkStatus::Read,
            Some("delivered") => MarkStatus::Delivered,
            _ => {
                return Err(ModelError::InvalidField {
                    field: "data.status".into(),
                    expected: r#""read" or "delivered""#,
                });
            }
        };
        let message_id = body
            .data
            .message_id
            .and_then(|id| serde_json::from_value::<crate::MessageId>(id).ok())
            .ok_or_else(|| ModelError::InvalidField {
                field: "data.message_id".into(),
                expected: crate::MessageId::EXPECTED,
            })?;
        let conversation = Conversation::named(body.data.receiver_id, body.data.group_id)?;
        Ok(Some(Mark {
            conversation,
            status,
            message_id,
        }))
    }

    /// The key the store keeps this mark under, one per status and
    /// conversation: `read u:bob`, `delivered g:team`.
    pub fn key(&self) -> String {
        let (kind, id) = match &self.conversation {
            Conversation::User(id) => ('u', id),
            Conversation::Group(id) => ('g', id),
        };
        format!("{} {kind}:{id}", self.status.as_str())
    }

    /// The status and conversation of a mark's [`key`](Self::key).
    pub fn from_key(key: &str) -> Option<(MarkStatus, Conversation)> {
        let (status, rest) = key.split_once(' ')?;
        let status = match status {
            "read" => MarkStatus::Read,
            "delivered" => MarkStatus::Delivered,
            _ => return None,
        };
        let conversation = match rest.split_once(':')? {
            ("u", id) => Conversation::User(id.to_owned()),
            ("g", id) => Conversation::Group(id.to_owned()),
            _ => return None,
        };
        Some((status, conversation))
    }

    /// The receipt as delivered and stored: the B101 `ack` body with the
    /// reader's `sender_id`.
    pub fn body(&self, reader: &str) -> Vec<u8> {
        let data = Relayed {
            receiver_id: self.conversation.user(),
            group_id: self.conversation.group(),
            message_id: Some(self.message_id.to_string()),
            state: None,
            status: Some(self.status.as_str()),
            sender_id: reader,
        };
        serde_json::to_vec(&Envelope { kind: "ack", data }).unwrap_or_default()
    }
}

/// A `B105` request: `{"op":"history","conversation":{..},"before":N,"limit":L}`
/// or `{"op":"conversations","limit":L}`.
///
/// ```
/// use jim_model::{Conversation, HistoryRequest};
///
/// let page = HistoryRequest::parse(br#"{"op":"history","conversation":{"user":"bob"},"before":40}"#)?;
/// assert_eq!(page, HistoryRequest::History {
///     conversation: Conversation::User("bob".into()),
///     before: Some(40),
///     limit: 50, // the default
/// });
/// let list = HistoryRequest::parse(br#"{"op":"conversations","limit":500}"#)?;
/// assert_eq!(list, HistoryRequest::Conversations { limit: 100 }); // at most 100
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryRequest {
    /// A page of one conversation, newest first.
    History {
        /// The conversation.
        conversation: Conversation,
        /// Entries with offsets below this; `None`: from the head.
        before: Option<u32>,
        /// At most this many entries (1 to [`HistoryRequest::MAX_LIMIT`]).
        limit: usize,
    },
    /// The user's conversations, most recent first.
    Conversations {
        /// At most this many (1 to [`HistoryRequest::MAX_LIMIT`]).
        limit: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    op: String,
    #[serde(default)]
    conversation: Option<serde_json::Value>,
    #[serde(default)]
    before: Option<serde_json::Value>,
    #[serde(default)]
    limit: Option<serde_json::Value>,
}

impl HistoryRequest {
    /// The default `limit`.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest `limit`: a larger one is served as this.
    pub const MAX_LIMIT: usize = 100;

    /// Parses a `B105` body, rejecting JSON that parsers read differently.
    ///
    /// # Errors
    /// A [`ModelError`] naming the field: an unknown `op`, a missing or
    /// malformed `conversation` (history), a `before` or `limit` that is
    /// not a positive integer, an unknown field.
    pub fn parse(body: &[u8]) -> Result<HistoryRequest, ModelError> {
        crate::strict::check(body)?;
        let body: RequestBody = serde_json::from_slice(body).map_err(ModelError::Json)?;
        let positive = |value: Option<serde_json::Value>, field: &str| match value {
            None => Ok(None),
            Some(value) => {
                value
                    .as_u64()
                    .filter(|n| *n >= 1)
                    .map(Some)
                    .ok_or_else(|| ModelError::InvalidField {
                        field: field.into(),
                        expected: "a positive integer",
                    })
            }
        };
        let limit = positive(body.limit, "limit")?.map_or(HistoryRequest::DEFAULT_LIMIT, |l| {
            usize::try_from(l)
                .unwrap_or(usize::MAX)
                .min(HistoryRequest::MAX_LIMIT)
        });
        match body.op.as_str() {
            "history" => {
                let conversation = body.conversation.ok_or_else(|| ModelError::MissingField {
                    field: "conversation".into(),
                })?;
                let conversation = serde_json::from_value::<Conversation>(conversation)
                    .ok()
                    .filter(|c| !c.id().is_empty())
                    .ok_or_else(|| ModelError::InvalidField {
                        field: "conversation".into(),
                        expected: r#"{"user":"<id>"} or {"group":"<id>"}"#,
                    })?;
                let before = positive(body.before, "before")?.map(|b| u32::try_from(b).unwrap_or(u32::MAX));
                Ok(HistoryRequest::History {
                    conversation,
                    before,
                    limit,
                })
            }
            "conversations" => {
                if body.conversation.is_some() || body.before.is_some() {
                    return Err(ModelError::NotAllowed {
                        reason: "op \"conversations\" takes only `limit`",
                    });
                }
                Ok(HistoryRequest::Conversations { limit })
            }
            _ => Err(ModelError::InvalidField {
                field: "op".into(),
                expected: r#""history" or "conversations""#,
            }),
        }
    }
}

/// What an inbox entry is to the user whose inbox holds it: which
/// conversation, whether they sent it, whether it is a receipt.
///
/// ```
/// use jim_model::{Conversation, EntryView};
///
/// let body = br#"{"type":"text","data":{"receiver_id":"bob","sender_id":"alice","content":"hi"}}"#;
/// let mine = EntryView::of("alice", false, body).unwrap();
/// assert_eq!((mine.conversation, mine.own), (Conversation::User("bob".into()), true));
/// let theirs = EntryView::of("bob", false, body).unwrap();
/// assert_eq!((theirs.conversation, theirs.own), (Conversation::User("alice".into()), false));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// The conversation, from the viewer's side.
    pub conversation: Conversation,
    /// The viewer sent it (from any device).
    pub own: bool,
    /// A receipt (an `ack` with a `status`), not a message.
    pub receipt: bool,
    /// Its `message_id` (a receipt's: the message it marks).
    pub message_id: Option<crate::MessageId>,
}

#[derive(Deserialize)]
struct EntryBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: EntryData<'a>,
}

#[derive(Deserialize)]
struct EntryData<'a> {
    #[serde(default, borrow)]
    sender_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    receiver_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    group_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    message_id: Option<std::borrow::Cow<'a, str>>,
}

impl EntryView {
    /// Reads an entry's body (stamped by the server) as `viewer` sees it;
    /// `group` for a `B102`. A `B103` is from its sender, or in the group
    /// it was pushed to (its `receiver_id` is not the viewer). `None` for
    /// a body that names no conversation.
    pub fn of(viewer: &str, group: bool, body: &[u8]) -> Option<EntryView> {
        let body: EntryBody<'_> = serde_json::from_slice(body).ok()?;
        let data = body.data;
        let sender = data.sender_id.unwrap_or_default();
        let own = sender == viewer;
        let receipt = body.kind == "ack";
        let conversation = if let Some(group) = data.group_id {
            Conversation::Group(group.into_owned())
        } else {
            let receiver = data.receiver_id?;
            if group {
                Conversation::Group(receiver.into_owned())
            } else if own {
                Conversation::User(receiver.into_owned())
            } else if receiver == viewer {
                Conversation::User(sender.into_owned())
            } else {
                // A push to a group the viewer is in.
                Conversation::Group(receiver.into_owned())
            }
        };
        let message_id = data
            .message_id
            .and_then(|id| id.parse::<u64>().ok())
            .map(crate::MessageId);
        Some(EntryView {
            conversation,
            own,
            receipt,
            message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        Typing::parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn malformed_typing_names_the_field() {
        assert_eq!(
            err(r#"{"type":"typing","data":{"state":"on"}}"#),
            "missing field `data.receiver_id`"
        );
        assert_eq!(
            err(r#"{"type":"typing","data":{"receiver_id":"","state":"on"}}"#),
            "field `data.receiver_id` must be a non-empty string"
        );
        assert_eq!(
            err(r#"{"type":"typing","data":{"receiver_id":"a","group_id":"g","state":"on"}}"#),
            "field `data.group_id` must be absent when `data.receiver_id` is given"
        );
        assert_eq!(
            err(r#"{"type":"text","data":{"receiver_id":"a","state":"on"}}"#),
            r#"field `type` must be "typing" in B104"#
        );
        assert!(err("{").contains("the body ends early"), "{}", err("{"));
        assert!(err("[1]").starts_with("malformed JSON"), "{}", err("[1]"));
        let twice = err(r#"{"type":"typing","type":"typing","data":{}}"#);
        assert!(twice.contains("twice in one object"), "{twice}");
    }

    #[test]
    fn malformed_history_requests_name_the_field() {
        let err = |body: &str| HistoryRequest::parse(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"op":"search"}"#),
            r#"field `op` must be "history" or "conversations""#
        );
        assert_eq!(err(r#"{"op":"history"}"#), "missing field `conversation`");
        assert_eq!(
            err(r#"{"op":"history","conversation":{"user":""}}"#),
            r#"field `conversation` must be {"user":"<id>"} or {"group":"<id>"}"#
        );
        assert_eq!(
            err(r#"{"op":"history","conversation":{"user":"b"},"limit":0}"#),
            "field `limit` must be a positive integer"
        );
        assert_eq!(
            err(r#"{"op":"history","conversation":{"user":"b"},"before":-1}"#),
            "field `before` must be a positive integer"
        );
        assert!(err(r#"{"op":"history","conversation":{"user":"b"},"page":2}"#).contains("unknown field"));
        assert_eq!(
            err(r#"{"op":"conversations","before":3}"#),
            r#"op "conversations" takes only `limit`"#
        );
    }

    #[test]
    fn malformed_receipts_name_the_field() {
        let err = |body: &str| Mark::parse(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"type":"ack","data":{"receiver_id":"b","message_id":"1","status":"seen"}}"#),
            r#"field `data.status` must be "read" or "delivered""#
        );
        assert_eq!(
            err(r#"{"type":"ack","data":{"receiver_id":"b","message_id":"x1","status":"read"}}"#),
            "field `data.message_id` must be a message id (a string of decimal digits)"
        );
        assert_eq!(
            err(r#"{"type":"ack","data":{"message_id":"1","status":"read"}}"#),
            "missing field `data.receiver_id`"
        );
        let body = Mark {
            conversation: Conversation::User("bob".into()),
            status: MarkStatus::Delivered,
            message_id: crate::MessageId(7),
        }
        .body("alice");
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"type":"ack","data":{"receiver_id":"bob","message_id":"7","status":"delivered","sender_id":"alice"}}"#
        );
    }

    #[test]
    fn entries_are_seen_from_their_viewers_side() {
        let group = br#"{"type":"text","data":{"receiver_id":"team","sender_id":"alice"}}"#;
        let seen = EntryView::of("bob", true, group).unwrap();
        assert_eq!(
            (seen.conversation, seen.own),
            (Conversation::Group("team".into()), false)
        );
        let push = br#"{"type":"text","data":{"receiver_id":"bob","sender_id":"system"}}"#;
        assert_eq!(
            EntryView::of("bob", false, push).unwrap().conversation,
            Conversation::User("system".into())
        );
        let group_push = br#"{"type":"text","data":{"receiver_id":"team","sender_id":"ops"}}"#;
        assert_eq!(
            EntryView::of("bob", false, group_push).unwrap().conversation,
            Conversation::Group("team".into())
        );
        let receipt = br#"{"type":"ack","data":{"group_id":"team","sender_id":"bob","message_id":"1","status":"read"}}"#;
        let seen = EntryView::of("bob", false, receipt).unwrap();
        assert!(seen.receipt && seen.own);
        assert_eq!(seen.conversation, Conversation::Group("team".into()));
        assert!(EntryView::of("bob", false, b"{}").is_none());
    }

    #[test]
    fn a_conversation_reads_and_writes_its_one_field() {
        let group: Conversation = serde_json::from_str(r#"{"group":"g"}"#).unwrap();
        assert_eq!(group.id(), "g");
        assert!(serde_json::from_str::<Conversation>(r#"{"user":"a","group":"g"}"#).is_err());
        assert!(serde_json::from_str::<Conversation>(r#"{"channel":"a"}"#).is_err());
    }
}
