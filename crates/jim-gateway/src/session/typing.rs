//! A session's `B104`: typing, relayed to the conversation's other side
//! and nowhere else (the contract's section 8).

use bytes::Bytes;
use jim_model::{Conversation, ErrorCode, MessageId, MessageKind, Typing};
use jim_protocol::{Command, Frame};
use jim_router::{Outgoing, Router, Sender, Target};

use super::{Flow, Session};
use crate::wire;

impl<R: Router> Session<R> {
    /// A B104 from an authenticated client: no reply when it is relayed or
    /// dropped (one per conversation every 2 s); an error reply when it is
    /// malformed (4000) or for a group the user is not in (4003).
    pub(super) fn typing(&mut self, frame: &Frame) -> Flow {
        let Some(auth) = &self.auth else {
            return self.error(frame, ErrorCode::NotAuthenticated, "not authenticated");
        };
        let typing = match Typing::parse(&frame.body) {
            Ok(typing) => typing,
            Err(e) => return self.error(frame, wire::model_error(&e), &e.to_string()),
        };
        let user = &auth.info.user;
        let now = self.shared.clock.instant(self.last_activity).into_std();
        let gate = &self.shared.typing;
        if !gate.admit(user, &typing.conversation, now) {
            self.shared.metrics.typing_dropped.increment(1);
            return Flow::Continue;
        }
        let outgoing = Outgoing {
            cmd: Command::Typing,
            kind: MessageKind::Typing,
            target: match &typing.conversation {
                Conversation::User(id) => Target::User(id.as_str().into()),
                Conversation::Group(id) => Target::Group(id.as_str().into()),
            },
            sender: Some(Sender {
                user: user.clone(),
                session: auth.info.id,
            }),
            // Not a message: it has no id, no ack, no inbox entry.
            message_id: MessageId(0),
            body: Bytes::from(typing.relayed(user)),
            client_msg_id: None,
        };
        let (user, conversation) = (user.clone(), typing.conversation);
        let routed = self.route_unanswered(frame, outgoing, move |shared| {
            // Refused (a group the user is not in): the next one is answered too.
            shared.typing.refund(&user, &conversation, now);
        });
        match routed {
            Ok(flow) => {
                self.shared.metrics.typing_relayed.increment(1);
                flow
            }
            Err(refused) => refused,
        }
    }
}
