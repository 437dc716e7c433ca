//! The events a backend's routing gives (an [`Observer`]): a message
//! stored (`message.accepted`, and `push.needed` for each recipient with
//! no session), and users coming and going (`user.online`,
//! `user.offline`).

use std::sync::Arc;

use jim_model::{Conversation, MessageKind, RawMessage};
use jim_protocol::Command;
use jim_router::{Addressees, Delivery, Observer, Outgoing, SessionChange, Target};

use crate::presence::Presence;
use crate::{Events, PushPreview};

/// Characters of a text message `push.needed` shows.
const PREVIEW_CHARS: usize = 100;

/// Turns what routing observes into events.
#[derive(Debug)]
pub struct Notifier {
    events: Events,
    presence: Arc<Presence>,
    preview: PushPreview,
}

impl Notifier {
    pub(crate) fn new(events: Events, presence: Arc<Presence>, preview: PushPreview) -> Notifier {
        Notifier {
            events,
            presence,
            preview,
        }
    }
}

/// The stamped sender of a message: its sending user, or a push's
/// `sender_id`.
fn sender_of(message: &Outgoing, body: Option<&RawMessage<'_>>) -> String {
    if let Some(sender) = &message.sender {
        return sender.user.to_string();
    }
    body.and_then(|b| b.field("sender_id"))
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .unwrap_or_default()
}

/// The conversation as the sender sees it (`to_sender`) or as a
/// recipient does.
fn conversation(message: &Outgoing, sender: &str, to_sender: bool) -> Option<Conversation> {
    Some(match &message.target {
        Target::Group(group) => Conversation::Group(group.to_string()),
        Target::User(user) if to_sender => Conversation::User(user.to_string()),
        Target::User(_) => Conversation::User(sender.to_owned()),
        Target::Everyone => return None,
    })
}

impl Notifier {
    fn preview(&self, kind: MessageKind, body: Option<&RawMessage<'_>>) -> Option<String> {
        if self.preview == PushPreview::None {
            return None;
        }
        if kind != MessageKind::Text {
            return Some(format!("[{}]", kind.as_str()));
        }
        let content: String = serde_json::from_str(body?.field("content")?.get()).ok()?;
        Some(content.chars().take(PREVIEW_CHARS).collect())
    }
}

impl Observer for Notifier {
    fn wants_stored(&self) -> bool {
        true
    }

    fn on_stored(&self, message: &Outgoing, delivery: &Delivery<'_>, offline: &[&str]) {
        let Addressees::Users { users, offsets, .. } = &delivery.to else {
            return;
        };
        let parsed = RawMessage::parse(&message.body).ok();
        let sender = sender_of(message, parsed.as_ref());
        let Some(theirs) = conversation(message, &sender, true) else {
            return;
        };
        let message_id = message.message_id.to_string();
        let mut placed = Vec::with_capacity(16 + offsets.len() * 16);
        placed.push(b'{');
        for (i, (user, offset)) in users.iter().zip(offsets.iter()).enumerate() {
            if i > 0 {
                placed.push(b',');
            }
            let _ = serde_json::to_writer(&mut placed, &**user);
            placed.push(b':');
            placed.extend_from_slice(offset.to_string().as_bytes());
        }
        placed.push(b'}');
        let cmd = message.cmd.code();
        let cmd = std::str::from_utf8(&cmd).unwrap_or("B101");
        self.events.send(
            self.events
                .event("message.accepted")
                .str("sender", &sender)
                .str("cmd", cmd)
                .value("conversation", &theirs)
                .str("message_id", &message_id)
                .value("client_msg_id", &message.client_msg_id.as_deref())
                .raw("offsets", &placed)
                .raw("message", &message.body),
        );
        if offline.is_empty() || message.cmd == Command::Typing {
            return;
        }
        let Some(recipients) = conversation(message, &sender, false) else {
            return;
        };
        let preview = self.preview(message.kind, parsed.as_ref());
        for user in offline {
            self.events.send(
                self.events
                    .event("push.needed")
                    .str("user", user)
                    .value("conversation", &recipients)
                    .str("message_id", &message_id)
                    .str("sender", &sender)
                    .value("preview", &preview),
            );
        }
    }

    fn on_session(&self, user: &str, change: SessionChange) {
        self.presence.change(user, change);
    }
}
