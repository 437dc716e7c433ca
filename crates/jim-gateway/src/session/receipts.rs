//! A session's receipts: a B101 `ack` with a `status` (the contract's
//! section 8). A valid one gets no reply; the store keeps the reader's
//! mark and, if it moved, the receipt goes to the reader's other devices
//! and, one to one, to the other user.

use bytes::Bytes;
use jim_model::{Conversation, ErrorCode, Mark, MessageId, MessageKind};
use jim_protocol::{Command, Frame};
use jim_router::{Outgoing, Router, Sender, Target};

use super::{Flow, Session};

impl<R: Router> Session<R> {
    /// A receipt from an authenticated client: routed without a reply, or
    /// an error reply (4003 for a group the reader is not in).
    pub(super) fn mark(&mut self, frame: &Frame, mark: Mark) -> Flow {
        let Some(auth) = &self.auth else {
            return self.error(frame, ErrorCode::NotAuthenticated, "not authenticated");
        };
        let user = &auth.info.user;
        let outgoing = Outgoing {
            cmd: Command::C2C,
            kind: MessageKind::Ack,
            target: match &mark.conversation {
                Conversation::User(id) => Target::User(id.as_str().into()),
                Conversation::Group(id) => Target::Group(id.as_str().into()),
            },
            sender: Some(Sender {
                user: user.clone(),
                session: auth.info.id,
            }),
            // Its own id is the marked message's, in the body.
            message_id: MessageId(0),
            body: Bytes::from(mark.body(user)),
            client_msg_id: None,
        };
        self.shared.metrics.receipts.increment(1);
        match self.route_unanswered(frame, outgoing, |_| {}) {
            Ok(flow) | Err(flow) => flow,
        }
    }
}
