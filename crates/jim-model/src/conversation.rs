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

impl Conversation {
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
        let id = |value: Option<serde_json::Value>, field: &str| match value {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(id)) if !id.is_empty() => Ok(Some(id)),
            Some(_) => Err(ModelError::InvalidField {
                field: format!("data.{field}"),
                expected: "a non-empty string",
            }),
        };
        let conversation = match (
            id(body.data.receiver_id, "receiver_id")?,
            id(body.data.group_id, "group_id")?,
        ) {
            (Some(user), None) => Conversation::User(user),
            (None, Some(group)) => Conversation::Group(group),
            (None, None) => {
                return Err(ModelError::MissingField {
                    field: "data.receiver_id".into(),
                });
            }
            (Some(_), Some(_)) => {
                return Err(ModelError::InvalidField {
                    field: "data.group_id".into(),
                    expected: "absent when `data.receiver_id` is given",
                });
            }
        };
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
        let (field, id) = match &self.conversation {
            Conversation::User(id) => ("receiver_id", id),
            Conversation::Group(id) => ("group_id", id),
        };
        let mut data = serde_json::Map::new();
        data.insert(field.into(), id.as_str().into());
        data.insert("state".into(), if self.on { "on" } else { "off" }.into());
        data.insert("sender_id".into(), sender_id.into());
        serde_json::to_vec(&serde_json::json!({"type": "typing", "data": data})).unwrap_or_default()
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
    fn a_conversation_reads_and_writes_its_one_field() {
        let group: Conversation = serde_json::from_str(r#"{"group":"g"}"#).unwrap();
        assert_eq!(group.id(), "g");
        assert!(serde_json::from_str::<Conversation>(r#"{"user":"a","group":"g"}"#).is_err());
        assert!(serde_json::from_str::<Conversation>(r#"{"channel":"a"}"#).is_err());
    }
}
