//! A session's messages: validation, stamping, routing (several in
//! flight, answered in order), acks and error replies, the fan-out budgets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use jim_hooks::{BeforeSend, Proposed, Verdict};
use jim_model::{
    Conversation, ErrorCode, MessageId, MessageKind, RawMessage, Stamp, unix_ms_now, write_ack,
    write_error_code,
};
use jim_protocol::{Command, Frame};
use jim_router::{ClientAck, Outgoing, Receipt, Router, RouterError, Sender, Target, TryRoute};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Authenticated, Flow, Profile, Session};
use crate::Config;
use crate::ready::at_once;
use crate::wire;

/// What a message's ack (or error reply) needs, kept while it is routed.
pub(super) struct Acking {
    /// The request's command and `seq` (an empty body).
    request: Frame,
    kind: MessageKind,
    receiver: Arc<str>,
    message_id: MessageId,
    /// Recipients charged to the fan-out budgets before routing (a group
    /// message's advance), settled against the receipt's.
    advance: usize,
}

impl Acking {
    fn outcome(self, result: Result<Receipt, Refused>) -> RouteOutcome {
        RouteOutcome { acking: self, result }
    }
}

/// A message the backend routed (or refused), with what its ack needs.
pub(super) struct RouteOutcome {
    acking: Acking,
    result: Result<Receipt, Refused>,
}

/// Why a message was not routed.
pub(super) enum Refused {
    /// The backend's refusal.
    Router(RouterError),
    /// The application's: its before-send hook denied it (or could not
    /// answer and `hooks.before_send_on_error` is `deny`).
    Application { code: u16, reason: String },
    /// It is too large once stamped (a hook's replacement made it so).
    TooLarge(String),
}

impl From<RouterError> for Refused {
    fn from(e: RouterError) -> Refused {
        Refused::Router(e)
    }
}

/// A message being routed.
pub(super) type InFlightRoute<'r> = Pin<Box<dyn Future<Output = RouteOutcome> + Send + 'r>>;

/// A session's messages in flight, answered in the order they were sent.
/// The queue is made for the first: a session whose messages all settle in
/// line (local mode) never needs one.
#[derive(Default)]
pub(super) struct InFlight<'r>(Option<FuturesOrdered<InFlightRoute<'r>>>);

impl<'r> InFlight<'r> {
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn push_back(&mut self, route: InFlightRoute<'r>) {
        self.0.get_or_insert_with(FuturesOrdered::new).push_back(route);
    }

    /// The next message answered, in order; `None` when none is in flight.
    pub(super) async fn next(&mut self) -> Option<RouteOutcome> {
        match &mut self.0 {
            Some(routes) => routes.next().await,
            None => None,
        }
    }
}

impl<R: Router> Session<R> {
    /// A B101 or B102 from an authenticated client.
    pub(super) async fn message<'r>(
        &mut self,
        frame: &Frame,
        routes: &mut InFlight<'r>,
        router: &'r R,
    ) -> Flow {
        let Some(auth) = &self.auth else {
            return self.error(frame, ErrorCode::NotAuthenticated, "not authenticated");
        };
        if !self
            .rate
            .try_take(self.shared.config.limits.message_rate(), self.last_activity)
        {
            let reason = format!(
                "rate limited: at most {} messages per second",
                self.shared.config.limits.messages_per_sec
            );
            return self.error(frame, ErrorCode::RateLimited, &reason);
        }
        let message = match RawMessage::parse(&frame.body) {
            Ok(message) => message,
            Err(e) => return self.error(frame, wire::model_error(&e), &e.to_string()),
        };
        match (message.kind(), frame.cmd) {
            (MessageKind::Ack, Command::C2C) => {
                // A receipt (v1.2) has a `status`; a v1 ack does not.
                match jim_model::Mark::parse(&frame.body) {
                    Ok(Some(mark)) => return self.mark(frame, mark),
                    Ok(None) => {}
                    Err(e) => return self.error(frame, wire::model_error(&e), &e.to_string()),
                }
                if message.receiver_id().is_empty() {
                    return self.error(frame, ErrorCode::BadRequest, "missing field `data.receiver_id`");
                }
                let ack = client_ack(auth, &message, &frame.body);
                return match ack {
                    // Boxed: a remote backend's write would otherwise sit
                    // in every session's task, idle or not.
                    Some(ack) => match Box::pin(self.shared.router.acknowledge(ack)).await {
                        Ok(()) => Flow::Continue,
                        Err(e) => self.router_error(frame, &e),
                    },
                    None => self.error(
                        frame,
                        ErrorCode::BadRequest,
                        "field `data.message_id` must be a message id",
                    ),
                };
            }
            (MessageKind::Ack, _) => {
                return self.error(frame, ErrorCode::BadRequest, "acks are sent in B101");
            }
            (MessageKind::Error, _) => {
                return self.error(
                    frame,
                    ErrorCode::BadRequest,
                    "type \"error\" is sent by the server only",
                );
            }
            _ => {}
        }

        if let Some(refused) = self.over_fanout(frame) {
            return refused;
        }
        let client_msg_id = match message
            .field("client_msg_id")
            .map(|raw| serde_json::from_str::<String>(raw.get()))
        {
            None => None,
            Some(Ok(id)) if (1..=jim_model::MAX_CLIENT_MSG_ID).contains(&id.len()) => Some(Arc::from(id)),
            Some(_) => {
                let reason = format!(
                    "field `data.client_msg_id` must be a string of 1 to {} bytes",
                    jim_model::MAX_CLIENT_MSG_ID
                );
                return self.error(frame, ErrorCode::BadRequest, &reason);
            }
        };
        if let Some(hook) = self.shared.hooks.before_send() {
            let hook = Arc::clone(hook);
            return self.through_hook(frame, &message, hook, client_msg_id, routes, router);
        }
        let message_id = self.shared.ids.next_id();
        let stamped = match stamp(
            &message,
            frame.body.len(),
            (&auth.info.user, &auth.profile),
            &self.shared.config,
            message_id,
        ) {
            Ok(stamped) => stamped,
            Err(reason) => return self.error(frame, ErrorCode::BadRequest, &reason),
        };
        let receiver: Arc<str> = message.receiver_id().into();
        let outgoing = Outgoing {
            cmd: frame.cmd,
            kind: message.kind(),
            target: target_of(frame.cmd, &receiver),
            sender: Some(Sender {
                user: Arc::clone(&auth.info.user),
                session: auth.info.id,
            }),
            message_id,
            body: stamped,
            client_msg_id,
        };
        let acking = Acking {
            request: Frame::new(frame.cmd, frame.seq, Bytes::new()),
            kind: outgoing.kind,
            receiver,
            message_id,
            advance: self.charge_advance(frame.cmd),
        };
        let outgoing = match router.try_route(outgoing) {
            TryRoute::Routed(result) => {
                let routed = acking.outcome(result.map_err(Refused::Router));
                if routes.is_empty() {
                    return self.answer(routed);
                }
                // Acked after those still in flight.
                routes.push_back(Box::pin(std::future::ready(routed)));
                return Flow::Continue;
            }
            TryRoute::Later(outgoing) => outgoing,
        };
        let mut route: InFlightRoute<'r> = Box::pin(async move {
            let result = router.route(outgoing).await.map_err(Refused::Router);
            acking.outcome(result)
        });
        // Started now: one session's messages reach the backend in the
        // order they were sent. Acks go out in that order too.
        match at_once(route.as_mut()).await {
            Some(routed) if routes.is_empty() => self.answer(routed),
            Some(routed) => {
                routes.push_back(Box::pin(std::future::ready(routed)));
                Flow::Continue
            }
            None => {
                routes.push_back(route);
                Flow::Continue
            }
        }
    }

    /// The ack (or error) of a routed message.
    pub(super) fn answer(&mut self, routed: RouteOutcome) -> Flow {
        let RouteOutcome {
            acking:
                Acking {
                    request,
                    kind,
                    receiver,
                    message_id,
                    advance,
                },
            result,
        } = routed;
        let recipients = result.as_ref().map_or(0, |receipt| receipt.recipients);
        self.settle_fanout(request.cmd, advance, recipients);
        match result {
            Ok(receipt) => {
                if receipt.original.is_none() {
                    self.shared.metrics.routed(request.cmd, kind);
                }
                // The entry in the sender's own inbox (a group message, or
                // a one-to-one message's sender copy), which this session
                // is not sent.
                let offset = receipt.offset;
                self.ack(
                    &request,
                    &receiver,
                    receipt.original.unwrap_or(message_id),
                    offset,
                )
            }
            Err(Refused::Router(e)) => self.router_error(&request, &e),
            Err(Refused::Application { code, reason }) => {
                let mut body = Vec::with_capacity(48 + reason.len());
                write_error_code(&mut body, code, &reason);
                self.reply(request.reply(request.cmd, body))
            }
            Err(Refused::TooLarge(reason)) => self.error(&request, ErrorCode::BadRequest, &reason),
        }
    }

    /// A B101 or B102 shown to the application's before-send hook first:
    /// routed in a task of the session's in-flight queue, so the session
    /// goes on reading while the hook thinks; the session's messages
    /// still reach the backend in the order they were sent (each waits for
    /// the one before it to be handed over) and are acked in that order.
    fn through_hook<'r>(
        &mut self,
        frame: &Frame,
        message: &RawMessage<'_>,
        hook: Arc<BeforeSend>,
        client_msg_id: Option<Arc<str>>,
        routes: &mut InFlight<'r>,
        router: &'r R,
    ) -> Flow {
        let Some(auth) = &self.auth else {
            return self.error(frame, ErrorCode::NotAuthenticated, "not authenticated");
        };
        let shared = Arc::clone(&self.shared);
        let sender = Sender {
            user: Arc::clone(&auth.info.user),
            session: auth.info.id,
        };
        let profile = auth.profile.clone();
        let device = auth.info.device.clone();
        let (cmd, body) = (frame.cmd, frame.body.clone());
        let receiver: Arc<str> = message.receiver_id().into();
        let acking = Acking {
            request: Frame::new(frame.cmd, frame.seq, Bytes::new()),
            kind: message.kind(),
            receiver: Arc::clone(&receiver),
            message_id: shared.ids.next_id(),
            advance: self.charge_advance(frame.cmd),
        };
        let (kind, message_id) = (acking.kind, acking.message_id);
        // This message's turn ends when it is handed to the backend (or
        // refused): the session's next hooked message waits for it.
        let (turn_over, next_waits) = oneshot::channel::<()>();
        let previous = self.hook_turn.replace(Box::new(next_waits));
        let route: InFlightRoute<'r> = Box::pin(async move {
            let conversation = if cmd == Command::C2C {
                Conversation::User(receiver.to_string())
            } else {
                Conversation::Group(receiver.to_string())
            };
            let remembered = client_msg_id
                .as_ref()
                .and_then(|id| shared.verdicts.recall(&sender.user, id));
            let verdict = match remembered {
                Some(verdict) => verdict,
                None => {
                    let proposed = Proposed {
                        sender: &sender.user,
                        device: device.as_deref(),
                        cmd,
                        conversation: &conversation,
                        message: &body,
                    };
                    let verdict = hook.check(&proposed).await;
                    if let Some(id) = &client_msg_id {
                        shared.verdicts.remember(&sender.user, id, &verdict);
                    }
                    verdict
                }
            };
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let result = async {
                let body = match verdict {
                    Verdict::Allow => body,
                    Verdict::Deny { code, reason } => return Err(Refused::Application { code, reason }),
                    Verdict::Replace { data } => {
                        match jim_hooks::replaced(&body, &data).map(Bytes::from) {
                            Ok(replaced) if RawMessage::parse(&replaced).is_ok() => replaced,
                            // The hook's replacement is no valid message:
                            // the hook failed, and `on_error` decides.
                            _ => match hook.fallback("its replacement is not a valid message") {
                                Verdict::Deny { code, reason } => {
                                    return Err(Refused::Application { code, reason });
                                }
                                _ => body,
                            },
                        }
                    }
                };
                let parsed = RawMessage::parse(&body).map_err(|e| Refused::TooLarge(e.to_string()))?;
                let stamped = stamp(
                    &parsed,
                    body.len(),
                    (&sender.user, &profile),
                    &shared.config,
                    message_id,
                )
                .map_err(Refused::TooLarge)?;
                let outgoing = Outgoing {
                    cmd,
                    kind,
                    target: target_of(cmd, &receiver),
                    sender: Some(sender),
                    message_id,
                    body: stamped,
                    client_msg_id,
                };
                let outgoing = match router.try_route(outgoing) {
                    TryRoute::Routed(result) => return result.map_err(Refused::Router),
                    TryRoute::Later(outgoing) => outgoing,
                };
                let mut route = std::pin::pin!(router.route(outgoing));
                if let Some(result) = at_once(route.as_mut()).await {
                    return result.map_err(Refused::Router);
                }
                drop(turn_over); // handed over: the next may go
                route.await.map_err(Refused::Router)
            }
            .await;
            acking.outcome(result)
        });
        routes.push_back(route);
        Flow::Continue
    }

    /// A message refused at a fan-out budget (4029): the user's, or, for a
    /// group message, the gateway's.
    pub(super) fn over_fanout(&self, frame: &Frame) -> Option<Flow> {
        // When the frame was read: no clock read of its own per message.
        let now = self.shared.clock.instant(self.last_activity);
        let limits = &self.shared.config.limits;
        let user = self.auth.as_ref()?.fanout.as_ref();
        if user.is_some_and(|budget| !budget.admits(now)) {
            self.shared.metrics.fanout_refused[0].increment(1);
            let reason = format!(
                "fan-out limit: your messages may reach at most {} recipients a second (a group message counts its members); slow down",
                limits.fanout_per_sec
            );
            return Some(self.error(frame, ErrorCode::RateLimited, &reason));
        }
        let gateway = self.shared.fanout.gateway();
        if frame.cmd == Command::C2G && gateway.is_some_and(|budget| !budget.admits(now)) {
            self.shared.metrics.fanout_refused[1].increment(1);
            let reason = format!(
                "fan-out limit: this gateway's messages may reach at most {} recipients a second; retry in a moment",
                limits.gateway_fanout_per_sec
            );
            return Some(self.error(frame, ErrorCode::RateLimited, &reason));
        }
        None
    }

    /// Charges a group message's advance (what the user's last one cost)
    /// before it is routed; returns it.
    pub(super) fn charge_advance(&self, cmd: Command) -> usize {
        let Some(user) = self.auth.as_ref().and_then(|auth| auth.fanout.as_ref()) else {
            return 0;
        };
        if cmd != Command::C2G {
            return 0;
        }
        let advance = user.group_advance();
        let now = Instant::now();
        user.charge(advance as i64, now);
        if let Some(gateway) = self.shared.fanout.gateway() {
            gateway.charge(advance as i64, now);
        }
        advance
    }

    /// Settles a routed message's cost: what it reached, less its advance.
    pub(super) fn settle_fanout(&self, cmd: Command, advance: usize, recipients: usize) {
        self.shared.metrics.fanout_recipients.increment(recipients as u64);
        let user = self.auth.as_ref().and_then(|auth| auth.fanout.as_ref());
        let gateway = self.shared.fanout.gateway();
        if user.is_none() && gateway.is_none() {
            // No budgets: no clock to read, on every message.
            return;
        }
        let now = Instant::now();
        let owed = recipients as i64 - advance as i64;
        if let Some(user) = user {
            user.charge(owed, now);
            if cmd == Command::C2G && recipients > 0 {
                user.remember_group(recipients);
            }
        }
        if let Some(gateway) = gateway {
            gateway.charge(owed, now);
        }
    }

    /// Answers every message still being routed, waiting at most `grace`.
    pub(super) async fn answer_all(&mut self, routes: &mut InFlight<'_>, grace: std::time::Duration) {
        let deadline = Instant::now() + grace;
        while !routes.is_empty() {
            match tokio::time::timeout_at(deadline, routes.next()).await {
                Ok(Some(routed)) => {
                    self.answer(routed);
                }
                Ok(None) | Err(_) => return,
            }
        }
    }

    pub(super) fn ack(
        &self,
        frame: &Frame,
        receiver: &str,
        message_id: MessageId,
        offset: Option<u32>,
    ) -> Flow {
        let mut body = Vec::with_capacity(112 + receiver.len());
        write_ack(&mut body, receiver, frame.seq, message_id, offset);
        self.reply(frame.reply(frame.cmd, body))
    }
}

/// Where a client's B101 (a user) or B102 (a group) goes.
fn target_of(cmd: Command, receiver: &Arc<str>) -> Target {
    if cmd == Command::C2C {
        Target::User(Arc::clone(receiver))
    } else {
        Target::Group(Arc::clone(receiver))
    }
}

/// A client's message (`sent` bytes long) stamped by the server: sender,
/// id, time (and the token's profile), checked against `limits.max_body`.
fn stamp(
    message: &RawMessage<'_>,
    sent: usize,
    (sender_id, profile): (&str, &Profile),
    config: &Config,
    message_id: MessageId,
) -> Result<Bytes, String> {
    let stamp = Stamp {
        sender_id,
        sender_name: profile.name(),
        sender_avatar: profile.avatar(),
        client_profile: config.auth.client_profiles(),
        message_id,
        // The wall clock, not the id's: the id's clock is anchored at
        // start-up and would not follow a corrected system clock.
        timestamp: unix_ms_now(),
    };
    let mut body = Vec::with_capacity(sent + 128);
    message.stamp(&stamp, &mut body);
    let max = config.limits.max_body;
    if body.len() > max {
        return Err(format!(
            "message too large once stamped ({} bytes, maximum {max})",
            body.len()
        ));
    }
    Ok(Bytes::from(body))
}

pub(super) fn client_ack(auth: &Authenticated, message: &RawMessage<'_>, body: &Bytes) -> Option<ClientAck> {
    let id = serde_json::from_str::<MessageId>(message.field("message_id")?.get()).ok()?;
    Some(ClientAck {
        user: Arc::clone(&auth.info.user),
        session: auth.info.id,
        message_id: id,
        body: body.clone(),
    })
}
