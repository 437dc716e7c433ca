//! The records of each topic: keys, values, and their encoding.

use std::sync::Arc;

use bytes::Bytes;
use jim_protocol::Command;
use jim_router::{Addressees, Delivery, SessionId, SessionInfo, Transport, UserList};
use serde::{Deserialize, Serialize};

/// `{prefix}gateways`, key = node id (decimal): a gateway is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) node: u16,
    /// Tells this run of the gateway apart from its earlier ones.
    pub(crate) epoch: u64,
    pub(crate) lease_ms: u64,
}

/// `{prefix}presence`, key = `["user", node]`: that gateway's sessions of
/// that user (a tombstone when it has none left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Presence {
    pub(crate) epoch: u64,
    /// Increases with each record a gateway writes: the latest wins.
    pub(crate) version: u64,
    pub(crate) sessions: Vec<SessionRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) device: Option<String>,
    pub(crate) transport: String,
    pub(crate) since_ms: u64,
}

impl SessionRecord {
    pub(crate) fn of(info: &SessionInfo) -> SessionRecord {
        SessionRecord {
            id: info.id.0,
            device: info.device.as_deref().map(str::to_owned),
            transport: info.transport.as_str().to_owned(),
            since_ms: info.since_ms,
        }
    }

    pub(crate) fn info(&self, user: &Arc<str>, node: u16) -> SessionInfo {
        SessionInfo {
            id: SessionId(self.id),
            user: Arc::clone(user),
            device: self.device.as_deref().map(Into::into),
            transport: if self.transport == "ws" {
                Transport::WebSocket
            } else {
                Transport::Tcp
            },
            node,
            since_ms: self.since_ms,
        }
    }
}

/// The key of a presence record.
pub(crate) fn presence_key(user: &str, node: u16) -> Vec<u8> {
    serde_json::to_vec(&(user, node)).unwrap_or_default()
}

/// The key of a membership record of `{prefix}groups` (value `1`, or a
/// tombstone for a member removed).
pub(crate) fn member_key(group: &str, user: &str) -> Vec<u8> {
    serde_json::to_vec(&(group, user)).unwrap_or_default()
}

/// `{prefix}deliver`, key = target node: what that gateway delivers. The
/// value is this head as one line of JSON, a newline, then the message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeliveryHead {
    /// The gateway the record is for (several may share a partition).
    pub(crate) node: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cmd: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) users: Vec<String>,
    /// Each user's inbox offset, in the order of `users` (none: not inbox
    /// entries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) offsets: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) except: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) everyone: bool,
    /// A kick instead of a message: the user, and the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kick: Option<(String, String)>,
    /// Neither: a gateway's probe of its own delivery partition, proving
    /// that it reads what is written there now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) probe: Option<u64>,
}

impl DeliveryHead {
    /// The head of a gateway's part of a planned delivery.
    pub(crate) fn of(node: u16, delivery: &Delivery<'_>) -> DeliveryHead {
        let mut head = DeliveryHead {
            node,
            cmd: Some(delivery.cmd.to_string()),
            users: Vec::new(),
            offsets: Vec::new(),
            except: None,
            everyone: false,
            kick: None,
            probe: None,
        };
        match &delivery.to {
            Addressees::Everyone => head.everyone = true,
            Addressees::Users {
                users,
                offsets,
                except,
            } => {
                head.users = users.iter().map(|u| u.to_string()).collect();
                head.offsets.clone_from(offsets);
                head.except = except.map(|s| s.0);
            }
        }
        head
    }

    /// The delivery this head (of a message) carries, to apply to this
    /// gateway's hub; `None` for a head that is no message's.
    pub(crate) fn into_delivery(self, body: Bytes) -> Option<Delivery<'static>> {
        let code: [u8; 4] = self.cmd.as_deref()?.as_bytes().try_into().ok()?;
        let cmd = match Command::from_code(code) {
            cmd @ (Command::C2C | Command::C2G | Command::S2C | Command::Typing) => cmd,
            _ => return None,
        };
        if self.everyone {
            return Some(Delivery::to_everyone(cmd, body));
        }
        Some(Delivery::to_users(
            cmd,
            body,
            UserList::Listed(self.users.into_iter().map(Into::into).collect()),
            self.offsets,
            self.except.map(SessionId),
        ))
    }

    pub(crate) fn encode(&self, body: &[u8]) -> Vec<u8> {
        // serde_json escapes newlines inside strings: the first one ends the head.
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    }

    pub(crate) fn decode(value: &[u8]) -> Option<(DeliveryHead, Bytes)> {
        let split = value.iter().position(|b| *b == b'\n')?;
        let head = serde_json::from_slice(&value[..split]).ok()?;
        Some((head, Bytes::copy_from_slice(&value[split + 1..])))
    }
}

/// The key of an event: one conversation, one key, one partition, one order.
pub(crate) fn conversation_key(message: &jim_router::Outgoing) -> String {
    match (&message.target, &message.sender) {
        (jim_router::Target::User(to), Some(from)) => {
            let (a, b) = if **to <= *from.user {
                (&**to, &*from.user)
            } else {
                (&*from.user, &**to)
            };
            format!("c2c:{a}\u{0}{b}")
        }
        (jim_router::Target::User(to), None) => format!("s2c:{to}"),
        (jim_router::Target::Group(group), _) => format!("group:{group}"),
        (jim_router::Target::Everyone, _) => "everyone".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_survives_encoding_with_any_body() {
        let head = DeliveryHead {
            node: 3,
            cmd: Some("B102".into()),
            users: vec!["a\nb".into(), "c".into()],
            offsets: vec![4, 9],
            except: Some(9),
            everyone: false,
            kick: None,
            probe: None,
        };
        let body = b"{\"type\":\"text\",\"data\":{\"content\":\"line\\nbreak\"}}\n";
        let (back, bytes) = DeliveryHead::decode(&head.encode(body)).unwrap();
        assert_eq!(back, head);
        assert_eq!(&bytes[..], body);
    }

    #[test]
    fn a_planned_delivery_is_carried_whole() {
        let delivery = Delivery::to_users(
            Command::C2G,
            Bytes::from_static(b"{}"),
            UserList::Listed(vec!["a".into(), "b".into()]),
            vec![3, 8],
            Some(SessionId(5)),
        );
        let head = DeliveryHead::of(2, &delivery);
        let (head, body) = DeliveryHead::decode(&head.encode(b"{}")).unwrap();
        let back = head.into_delivery(body).unwrap();
        let Addressees::Users {
            users,
            offsets,
            except,
        } = back.to
        else {
            panic!("to users")
        };
        assert_eq!(back.cmd, Command::C2G);
        assert_eq!(users.iter().map(|u| &**u).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((offsets, except), (vec![3, 8], Some(SessionId(5))));

        let everyone = DeliveryHead::of(1, &Delivery::to_everyone(Command::S2C, Bytes::new()));
        let back = everyone.into_delivery(Bytes::new()).unwrap();
        assert!(matches!(back.to, Addressees::Everyone));
        let kick = DeliveryHead {
            cmd: None,
            kick: Some(("a".into(), String::new())),
            ..DeliveryHead::of(1, &delivery)
        };
        assert!(kick.into_delivery(Bytes::new()).is_none(), "a kick is no message");
    }

    #[test]
    fn a_conversation_has_one_key_whoever_writes() {
        let message = |from: &str, to: &str| jim_router::Outgoing {
            cmd: jim_protocol::Command::C2C,
            kind: jim_model::MessageKind::Text,
            target: jim_router::Target::User(to.into()),
            sender: Some(jim_router::Sender {
                user: from.into(),
                session: SessionId(1),
            }),
            message_id: jim_model::MessageId(1),
            body: Bytes::new(),
            client_msg_id: None,
        };
        assert_eq!(
            conversation_key(&message("a", "b")),
            conversation_key(&message("b", "a"))
        );
        assert_ne!(
            conversation_key(&message("a", "b")),
            conversation_key(&message("a", "c"))
        );
    }
}
