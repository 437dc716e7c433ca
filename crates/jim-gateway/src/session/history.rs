//! A session's `B105`: a page of a conversation's history, or the
//! conversation list (the contract's section 8), answered from the inbox
//! store in every mode.

use std::collections::HashMap;

use jim_model::{ErrorCode, HistoryRequest, Mark, MarkStatus, MessageId};
use jim_protocol::Frame;
use jim_router::Router;

use super::{Flow, Session};
use crate::wire;

impl<R: Router> Session<R> {
    /// A B105 from an authenticated client: one B105 reply with the same
    /// `seq`, or an error reply.
    pub(super) async fn history(&mut self, frame: &Frame) -> Flow {
        let Some(auth) = &self.auth else {
            return self.error(frame, ErrorCode::NotAuthenticated, "not authenticated");
        };
        let request = match HistoryRequest::parse(&frame.body) {
            Ok(request) => request,
            Err(e) => return self.error(frame, wire::model_error(&e), &e.to_string()),
        };
        let user = auth.info.user.clone();
        let router = &self.shared.router;
        let answer = match &request {
            HistoryRequest::History {
                conversation,
                before,
                limit,
            } => jim_router::history(router, &user, conversation, *before, *limit)
                .await
                .map(|page| page.map(|page| page.to_json())),
            HistoryRequest::Conversations { limit } => match router.marks(&user).await {
                Ok(marks) => {
                    let reads: HashMap<_, _> = marks
                        .into_iter()
                        .filter_map(|(key, id)| match Mark::from_key(&key)? {
                            (MarkStatus::Read, conversation) => Some((conversation, MessageId(id))),
                            (MarkStatus::Delivered, _) => None,
                        })
                        .collect();
                    jim_router::conversations(router, &user, *limit, &reads)
                        .await
                        .map(|list| list.map(|list| list.to_json()))
                }
                Err(e) => Err(e),
            },
        };
        match answer {
            Ok(Some(body)) => self.reply(frame.reply(frame.cmd, body)),
            Ok(None) => self.error(
                frame,
                ErrorCode::NotFound,
                "no history: this deployment keeps no inbox (inbox.store = \"off\")",
            ),
            Err(e) => self.router_error(frame, &e),
        }
    }
}
