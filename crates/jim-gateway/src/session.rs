//! One client connection's session: the whole session life of the
//! contract, and the one place where errors become wire codes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use jim_model::{
    AuthOk, AuthRequest, CloseCode, ErrorCode, InboxHead, MessageId, MessageKind, Position, RawMessage,
    Stamp, Status, unix_ms_now, write_ack, write_error,
};
use jim_protocol::{Command, Frame};
use jim_router::{
    ClientAck, Close, Outbox, Outgoing, Receipt, Router, RouterError, Sender, SessionId, SessionInfo, Target,
    Transport, TryRoute,
};
use jim_transport::{Connection, FrameReader, Incoming, TransportError};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

use crate::auth::Identity;
use crate::config::SessionsOverLimit;
use crate::cursor::Cursor;
use crate::limits::RateLimit;
use crate::metrics::CloseReason;
use crate::ready::at_once;
use crate::state::Shared;
use crate::wire;
use crate::writer::{Deadline, Out};

/// How long a closing connection's late bytes are read and discarded, so
/// that closing with unread input does not reset the connection before the
/// client has read our `A999`.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Frames handled from the read buffer before the replies are written.
const MAX_BATCH: usize = 64;

/// Runs a connection from accept to close, in one task: it reads and
/// handles frames, and writes its outbox (replies and deliveries).
pub(crate) async fn run<R: Router>(shared: Arc<Shared<R>>, connection: Connection) {
    let Connection {
        mut reader,
        writer,
        kind,
        peer,
    } = connection;
    // One span per connection: whatever the session logs names the peer,
    // and the session and user once authenticated. Entered only to log (and
    // around attach and detach): entering it at every poll of the session
    // would cost every message (~150 instructions, by callgrind).
    let span = tracing::info_span!(
        "session",
        %peer,
        transport = kind.as_str(),
        id = tracing::field::Empty,
        user = tracing::field::Empty,
        device = tracing::field::Empty,
    );
    let outbox = Arc::new(Outbox::new(shared.config.limits.outbox_frames));
    let mut out = Out::new(writer);

    let mut session = Session {
        rate: RateLimit::new(
            shared.config.limits.messages_per_sec,
            shared.config.limits.message_burst,
            Instant::now(),
        ),
        shared: Arc::clone(&shared),
        outbox: Arc::clone(&outbox),
        transport: kind,
        auth: None,
        follow: None,
        connected: Instant::now(),
        last_activity: Instant::now(),
        span,
    };
    let reason = session.serve(&mut reader, &mut out).await;
    shared.metrics.closed(reason);
    session.span.in_scope(|| tracing::debug!(?reason, "closing"));
    // Every way out of `drive` has closed the outbox, but for a lost link.
    let close = outbox.close_reason().unwrap_or_else(|| {
        let lost = Close::new(CloseCode::Internal, "connection lost");
        outbox.close(lost.clone());
        lost
    });

    if let Some(auth) = session.auth.take() {
        let detached = shared
            .router
            .detach(&auth.info)
            .instrument(session.span.clone())
            .await;
        if let Err(e) = detached {
            session
                .span
                .in_scope(|| tracing::warn!(error = %e, "detach failed"));
        }
        shared.metrics.sessions.decrement(1);
    }
    out.finish(
        &outbox,
        &close,
        &shared.metrics,
        shared.config.session.shutdown_grace(),
    )
    .await;
    if reason == CloseReason::Protocol {
        let _ = timeout(LINGER, reader.discard()).await;
    }
}

/// An authenticated session.
struct Authenticated {
    info: SessionInfo,
    identity: Identity,
    /// The user's fan-out budget on this gateway, if users have one.
    fanout: Option<Arc<crate::fanout::Budget>>,
    /// When its token expires: the session ends then unless refreshed.
    expires: Option<Instant>,
}

/// When a token that expires at `exp` (Unix seconds) does, on this clock.
fn expiry(identity: &Identity) -> Option<Instant> {
    let exp = std::time::UNIX_EPOCH + std::time::Duration::from_secs(identity.expires_at?);
    let left = exp
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(Instant::now() + left)
}

struct Session<R> {
    shared: Arc<Shared<R>>,
    /// The connection's span (see `run`).
    span: tracing::Span,
    outbox: Arc<Outbox>,
    transport: Transport,
    auth: Option<Authenticated>,
    /// The inbox position a `B001` just set, for the writer to take up.
    follow: Option<Cursor>,
    rate: RateLimit,
    connected: Instant,
    last_activity: Instant,
}

/// A message the backend is routing, with what its ack needs.
struct Routed {
    /// The request's command and `seq` (an empty body).
    request: Frame,
    kind: MessageKind,
    receiver: Arc<str>,
    message_id: MessageId,
    /// Recipients charged to the fan-out budgets before routing (a group
    /// message's advance), settled against the receipt's.
    advance: usize,
    result: Result<Receipt, RouterError>,
}

/// A message being routed.
type Route<'r> = Pin<Box<dyn Future<Output = Routed> + Send + 'r>>;

/// A session's messages in flight, answered in the order they were sent.
/// The queue is made for the first: a session whose messages all settle in
/// line (local mode) never needs one.
#[derive(Default)]
struct Routes<'r>(Option<FuturesOrdered<Route<'r>>>);

impl<'r> Routes<'r> {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_back(&mut self, route: Route<'r>) {
        self.0.get_or_insert_with(FuturesOrdered::new).push_back(route);
    }

    /// The next message answered, in order; `None` when none is in flight.
    async fn next(&mut self) -> Option<Routed> {
        match &mut self.0 {
            Some(routes) => routes.next().await,
            None => None,
        }
    }
}

/// Whether to go on reading.
enum Flow {
    Continue,
    Stop(CloseReason),
}

/// How a turn of driving a session ended.
enum Driven {
    /// The session must close, for this reason; the close is in the outbox.
    Closed(CloseReason),
    /// Nothing happened for `session.park_after_ms`, and nothing is in flight.
    Quiet,
}

/// What the client sent: a frame, a control reply, its end, or an error.
type Read = Result<Incoming, TransportError>;

impl<R: Router> Session<R> {
    /// Runs the session until it must close; returns why. The close itself
    /// (with its `A999`) is then in the outbox.
    ///
    /// A busy session is driven; a quiet one parks (right after logging in,
    /// and after `session.park_after_ms` with nothing to do: most
    /// connections of a chat service are idle most of the time, and a busy
    /// one never parks). Checking costs a wake-up per period, which is why
    /// the default is long: at 100 ms, 1,000 sessions sending 2 messages a
    /// second each cost 50% more CPU per message. The driving state
    /// (timers, the messages in flight, a read, a write) is boxed while it
    /// lives, so that an idle session's task holds only what waits.
    async fn serve(&mut self, reader: &mut FrameReader, out: &mut Out) -> CloseReason {
        let mut woken_by = None;
        loop {
            match Box::pin(self.drive(reader, out, woken_by.take())).await {
                Driven::Closed(reason) => return reason,
                Driven::Quiet => {}
            }
            out.shrink();
            self.outbox.shrink();
            self.shared.metrics.parked.increment(1);
            woken_by = self.park(reader).await;
            self.shared.metrics.parked.decrement(1);
        }
    }

    /// Waits, holding nothing it does not need, until the client sends
    /// something (returned, for the driver to handle), frames are queued,
    /// the session closes, its deadline comes or the gateway shuts down.
    async fn park(&self, reader: &mut FrameReader) -> Option<Read> {
        tokio::select! {
            biased;
            () = self.shared.shutdown.cancelled() => None,
            () = self.outbox.ready() => None,
            () = sleep_until(self.deadline()) => None,
            read = reader.read() => Some(read),
        }
    }

    /// Reads, handles and writes until the session must close, or has been
    /// quiet for `session.park_after_ms`. `woken_by` is what the client sent while
    /// the session was parked.
    async fn drive(&mut self, reader: &mut FrameReader, out: &mut Out, mut woken_by: Option<Read>) -> Driven {
        let outbox = Arc::clone(&self.outbox);
        let shared = Arc::clone(&self.shared);
        let closed = outbox.closed();
        let cancelled = shared.shutdown.cancelled();
        // Whether anything happened is checked every park_after, on the
        // session's one timer: no clock reading per event.
        let park_after = shared.config.session.park_after();
        let mut quiet_check = Instant::now() + park_after;
        let mut turns: u64 = 0;
        let mut turns_checked: u64 = 0;
        let timer = sleep_until(self.deadline().min(quiet_check));
        tokio::pin!(closed, cancelled, timer);
        let mut routes = Routes::default();
        let most = shared.config.limits.routes_in_flight;
        // Since when reading waits for a route to be answered.
        let mut full_since: Option<Instant> = None;
        loop {
            turns += 1;
            tokio::select! {
                biased;
                () = &mut closed => return Driven::Closed(closed_from_outside(&outbox)),
                () = &mut cancelled => {
                    // What the backend took is acked before the goodbye.
                    // Boxed, as every rare path: a task is as large as its largest state.
                    Box::pin(self.answer_all(&mut routes, shared.config.session.shutdown_grace())).await;
                    self.close(CloseCode::GoingAway, "server shutting down");
                    return Driven::Closed(CloseReason::Shutdown);
                }
                () = &mut timer => {
                    // The deadline moves with activity; only act once it has really passed.
                    let now = Instant::now();
                    let deadline = self.deadline();
                    if now >= deadline {
                        return Driven::Closed(self.expire(now));
                    }
                    if now >= quiet_check {
                        // Only this timer woke it since the last check.
                        if turns == turns_checked + 1 && routes.is_empty() && woken_by.is_none() {
                            return Driven::Quiet;
                        }
                        turns_checked = turns;
                        quiet_check = now + park_after;
                    }
                    timer.as_mut().reset(deadline.min(quiet_check));
                }
                Some(routed) = routes.next(), if !routes.is_empty() => {
                    self.answer(routed);
                    // Reading waited: what the client sent meanwhile is
                    // charged as when it arrived.
                    if let Some(since) = full_since.take() {
                        self.rate.credit(since.elapsed());
                    }
                    if !out.flush(&outbox, &shared.metrics, self.write_deadline(), false, &shared.router).await {
                        return Driven::Closed(closed_from_outside(&outbox));
                    }
                }
                // Deliveries (or our own replies) are waiting.
                () = outbox.ready() => {
                    if !out.flush(&outbox, &shared.metrics, self.write_deadline(), false, &shared.router).await {
                        return Driven::Closed(closed_from_outside(&outbox));
                    }
                }
                read = next_read(&mut woken_by, reader), if routes.len() < most => {
                    let was_authenticated = self.auth.is_some();
                    let mut next = Some(read);
                    let mut taken = 0;
                    // A pong the WebSocket layer queued by itself must be flushed too.
                    let mut control_reply = false;
                    // Counted per batch: shared counters are costly per frame.
                    let (mut frames_in, mut bytes_in) = (0u64, 0u64);
                    // Handle what is already buffered, up to a batch, then write
                    // all the replies at once. What is left stays buffered in
                    // the reader for the next turn.
                    while let Some(read) = next.take() {
                        match read {
                            Ok(Incoming::Frame(frame)) => {
                                self.last_activity = Instant::now();
                                frames_in += 1;
                                bytes_in += frame.encoded_len() as u64;
                                let flow = self.handle(frame, &mut routes, &shared.router).await;
                                if let Some(cursor) = self.follow.take() {
                                    out.follow(cursor);
                                }
                                if let Flow::Stop(reason) = flow {
                                    return Driven::Closed(reason);
                                }
                            }
                            Ok(Incoming::ControlReply) => control_reply = true,
                            Ok(Incoming::Closed) => {
                                self.close(CloseCode::Normal, "client disconnected");
                                return Driven::Closed(CloseReason::Client);
                            }
                            Err(error) => return Driven::Closed(self.transport_failed(&error)),
                        }
                        taken += 1;
                        if taken < MAX_BATCH && routes.len() < most {
                            next = reader.try_read().transpose();
                        }
                    }
                    if routes.len() >= most {
                        full_since.get_or_insert_with(Instant::now);
                    }
                    shared.metrics.frames_in.increment(frames_in);
                    shared.metrics.bytes_in.increment(bytes_in);
                    if !out.flush(&outbox, &shared.metrics, self.write_deadline(), control_reply, &shared.router).await {
                        return Driven::Closed(closed_from_outside(&outbox));
                    }
                    if !was_authenticated && self.auth.is_some() && routes.is_empty() {
                        // Just logged in, greeted: most clients now wait.
                        return Driven::Quiet;
                    }
                    // Authenticating can bring the deadline forward (a short
                    // idle timeout, a token about to expire); activity only
                    // pushes it back, which the timer notices when it fires.
                    if self.deadline() < timer.deadline() {
                        timer.as_mut().reset(self.deadline());
                    }
                }
            }
        }
    }

    /// Closes a session whose deadline has passed; returns why.
    fn expire(&self, now: Instant) -> CloseReason {
        match &self.auth {
            None => {
                self.close(CloseCode::Policy, "authentication timeout");
                CloseReason::Auth
            }
            Some(auth) if auth.expires.is_some_and(|expires| expires <= now) => {
                self.close(CloseCode::Policy, "token expired");
                CloseReason::Auth
            }
            Some(_) => {
                self.close(CloseCode::Policy, "idle timeout");
                CloseReason::Idle
            }
        }
    }

    /// How long a write may take: until the write timeout, and never past
    /// the session's own deadline, so that a client that does not read
    /// cannot hold its timers off.
    fn write_deadline(&self) -> Deadline {
        Deadline {
            write_timeout: self.shared.config.limits.write_timeout(),
            at_most: self.deadline(),
        }
    }

    /// When the connection must be closed: for not authenticating, for
    /// silence, or because its token expires.
    fn deadline(&self) -> Instant {
        match &self.auth {
            None => self.connected + self.shared.config.session.auth_timeout(),
            Some(auth) => {
                let idle = self.last_activity + self.shared.config.session.idle_timeout();
                auth.expires.map_or(idle, |expires| idle.min(expires))
            }
        }
    }

    fn close(&self, code: CloseCode, reason: &'static str) {
        self.outbox.close(Close::new(code, reason));
    }

    fn transport_failed(&self, error: &TransportError) -> CloseReason {
        self.span
            .in_scope(|| tracing::debug!(error = %error, "connection ended"));
        match wire::transport_close(error) {
            Some(code) => {
                self.outbox.close(Close::new(code, error.to_string()));
                CloseReason::Protocol
            }
            None => {
                self.outbox
                    .close(Close::new(CloseCode::Internal, "connection failed"));
                CloseReason::Error
            }
        }
    }

    async fn handle<'r>(&mut self, frame: Frame, routes: &mut Routes<'r>, router: &'r R) -> Flow {
        match (frame.cmd, self.auth.is_some()) {
            (Command::Ping, _) => {
                let pong = frame.reply(Command::Pong, frame.body.clone());
                self.reply(pong)
            }
            (Command::ClientClose, _) => {
                // What the backend took is acked before the goodbye.
                let grace = self.shared.config.session.shutdown_grace();
                Box::pin(self.answer_all(routes, grace)).await;
                self.close(CloseCode::Normal, "client closed");
                Flow::Stop(CloseReason::Client)
            }
            // Boxed: once per session, and big (the backend's attach).
            (Command::Auth, false) => Box::pin(self.authenticate(&frame)).await,
            (_, false) => self.error(
                &frame,
                ErrorCode::NotAuthenticated,
                "not authenticated: send B001 first",
            ),
            (Command::Pong, true) => Flow::Continue,
            (Command::Auth, true) => Box::pin(self.refresh(&frame)).await,
            (Command::C2C | Command::C2G, true) => self.message(&frame, routes, router).await,
            (Command::S2C, true) => {
                self.error(&frame, ErrorCode::Forbidden, "B103 is sent by the server only")
            }
            (Command::AuthOk | Command::AuthFailed | Command::ServerClose, true) => {
                let reason = format!("{} is sent by the server only", frame.cmd);
                self.error(&frame, ErrorCode::BadRequest, &reason)
            }
            (Command::Unknown(_), true) => {
                let reason = format!("unknown command \"{}\"", frame.cmd);
                self.error(&frame, ErrorCode::NotFound, &reason)
            }
        }
    }

    /// The request and identity of a `B001`, or the flow of its failure
    /// (`B003`, and the session ends).
    async fn verify(&self, frame: &Frame) -> Result<(AuthRequest, Identity), Flow> {
        let request = AuthRequest::from_slice(&frame.body)
            .map_err(|e| self.auth_failed(frame, &format!("bad B001 body: {e}")))?;
        match self.shared.auth.verify_fetching_keys(&request.token).await {
            Ok(identity) => Ok((request, identity)),
            Err(e) => {
                // The client is told the kind; the log, the particulars.
                self.span
                    .in_scope(|| tracing::info!(reason = %e.detail(), "token refused"));
                Err(self.auth_failed(frame, &e.to_string()))
            }
        }
    }

    async fn authenticate(&mut self, frame: &Frame) -> Flow {
        let (request, identity) = match self.verify(frame).await {
            Ok(verified) => verified,
            Err(failed) => return failed,
        };
        let since = match request.since() {
            Ok(since) => since,
            Err(e) => return self.auth_refused(frame, ErrorCode::BadRequest, &format!("bad B001 body: {e}")),
        };
        let info = SessionInfo {
            id: SessionId(self.shared.ids.next_id().0),
            user: Arc::clone(&identity.user_id),
            device: request.device.map(Into::into),
            transport: self.transport,
            node: self.shared.config.node_id,
            since_ms: unix_ms_now(),
        };
        self.span.record("id", tracing::field::display(info.id));
        self.span.record("user", &*info.user);
        if let Some(device) = &info.device {
            self.span.record("device", &**device);
        }
        if let Some(refused) = self.make_room(frame, &info.user) {
            return refused;
        }
        let attached = self
            .shared
            .router
            .attach(info.clone(), Arc::clone(&self.outbox))
            .instrument(self.span.clone())
            .await;
        if let Err(e) = attached {
            return self.router_error(frame, &e);
        }
        // Attached first, then the head read: a message stored in between
        // is both live and replayed, and the cursor sends it once.
        let inbox = match self.shared.router.inbox_state(&info.user).await {
            Ok(state) => state.map(|state| self.resume(&info, &state, since.as_ref())),
            Err(e) => {
                let _ = self.shared.router.detach(&info).await;
                return self.router_error(frame, &e);
            }
        };
        self.span.in_scope(|| tracing::debug!("authenticated"));
        self.shared.metrics.sessions.increment(1);
        let expires = expiry(&identity);
        let ok = self.auth_ok(frame, &info, inbox);
        let fanout = self.shared.fanout.for_user(&info.user);
        self.auth = Some(Authenticated {
            info,
            identity,
            expires,
            fanout,
        });
        self.last_activity = Instant::now();
        ok
    }

    /// At `limits.sessions_per_user` sessions of `user` on this gateway:
    /// closes the oldest (`kick_oldest`), or refuses this one with `B003`
    /// 4029 (`refuse_new`, the flow returned).
    fn make_room(&self, frame: &Frame, user: &str) -> Option<Flow> {
        let limits = &self.shared.config.limits;
        let most = limits.sessions_per_user;
        let hub = self.shared.router.local_hub().filter(|_| most > 0)?;
        let mut sessions = hub.sessions_of(user);
        if sessions.len() < most {
            return None;
        }
        match limits.sessions_over_limit {
            SessionsOverLimit::RefuseNew => {
                self.shared.metrics.sessions_refused.increment(1);
                let reason = format!("too many sessions of this user: at most {most}");
                Some(self.auth_refused(frame, ErrorCode::RateLimited, &reason))
            }
            SessionsOverLimit::KickOldest => {
                sessions.sort_by_key(|s| (s.since_ms, s.id.0));
                for oldest in &sessions[..=sessions.len() - most] {
                    if hub.kick_session(user, oldest.id, "a newer session of this user") {
                        self.shared.metrics.sessions_kicked.increment(1);
                    }
                }
                None
            }
        }
    }

    /// Where a new session starts in its inbox, told in its `B002`: after
    /// the client's position if the inbox still holds everything after it
    /// (`recovered`), else before every retained entry (with `since`) or at
    /// the head (without: nothing is replayed).
    fn resume(
        &mut self,
        info: &SessionInfo,
        state: &jim_router::InboxState,
        since: Option<&Position>,
    ) -> InboxHead {
        // The contract's rule, as every client reads it (jim_model::position).
        let (start, recovered) = jim_model::position::start(since, &state.epoch, state.oldest, state.head);
        if since.is_some() {
            self.shared.metrics.inbox_replays.increment(1);
        }
        self.follow = Some(Cursor::new(
            Arc::clone(&info.user),
            info.id.0,
            Arc::clone(&state.epoch),
            start,
            state.head,
            recovered,
        ));
        InboxHead {
            epoch: state.epoch.to_string(),
            offset: u64::from(state.head),
            recovered,
        }
    }

    fn auth_ok(&self, frame: &Frame, info: &SessionInfo, inbox: Option<InboxHead>) -> Flow {
        let ok = AuthOk {
            user_id: info.user.to_string(),
            session_id: info.id.to_string(),
            heartbeat_secs: self.shared.config.session.heartbeat_secs,
            inbox,
        };
        self.reply(frame.reply(Command::AuthOk, serde_json::to_vec(&ok).unwrap_or_default()))
    }

    /// A `B001` on an authenticated session: a fresh token of the same user
    /// extends the session (and updates the name and avatar it carries);
    /// anything else ends it, as a failed authentication does.
    async fn refresh(&mut self, frame: &Frame) -> Flow {
        let identity = match self.verify(frame).await {
            Ok((_, identity)) => identity,
            Err(failed) => return failed,
        };
        let Some(auth) = &mut self.auth else {
            return Flow::Continue;
        };
        if identity.user_id != auth.identity.user_id {
            return self.auth_failed(frame, "the token is for another user than this session's");
        }
        auth.expires = expiry(&identity);
        auth.identity = identity;
        let info = auth.info.clone();
        // The session's place in its inbox goes on: nothing to tell.
        self.auth_ok(frame, &info, None)
    }

    fn auth_failed(&self, frame: &Frame, reason: &str) -> Flow {
        self.auth_refused(frame, ErrorCode::NotAuthenticated, reason)
    }

    /// A `B003` with `code`; the session ends.
    fn auth_refused(&self, frame: &Frame, code: ErrorCode, reason: &str) -> Flow {
        self.shared.metrics.auth_failures.increment(1);
        let body = Status::new(code.as_u16(), reason).to_vec();
        let _ = self.outbox.reply(frame.reply(Command::AuthFailed, body));
        self.close(CloseCode::Policy, "authentication failed");
        Flow::Stop(CloseReason::Auth)
    }

    /// A B101 or B102 from an authenticated client.
    async fn message<'r>(&mut self, frame: &Frame, routes: &mut Routes<'r>, router: &'r R) -> Flow {
        let Some(auth) = &self.auth else {
            return self.error(frame, ErrorCode::NotAuthenticated, "not authenticated");
        };
        if !self.rate.try_take(self.last_activity) {
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
        let Some(auth) = &self.auth else {
            return self.error(frame, ErrorCode::NotAuthenticated, "not authenticated");
        };
        let message_id = self.shared.ids.next_id();
        let stamp = Stamp {
            sender_id: &auth.identity.user_id,
            sender_name: auth.identity.name.as_deref(),
            sender_avatar: auth.identity.avatar.as_deref(),
            client_profile: self.shared.config.auth.client_profiles(),
            message_id,
            // The wall clock, not the id's: the id's clock is anchored at
            // start-up and would not follow a corrected system clock.
            timestamp: unix_ms_now(),
        };
        let mut body = Vec::with_capacity(frame.body.len() + 128);
        message.stamp(&stamp, &mut body);
        let max = self.shared.config.limits.max_body;
        if body.len() > max {
            let reason = format!(
                "message too large once stamped ({} bytes, maximum {max})",
                body.len()
            );
            return self.error(frame, ErrorCode::BadRequest, &reason);
        }
        let client_msg_id = match message
            .field("client_msg_id")
            .map(|raw| serde_json::from_str::<String>(raw.get()))
        {
            None => None,
            Some(Ok(id)) if (1..=64).contains(&id.len()) => Some(Arc::from(id)),
            Some(_) => {
                return self.error(
                    frame,
                    ErrorCode::BadRequest,
                    "field `data.client_msg_id` must be a string of 1 to 64 bytes",
                );
            }
        };
        let receiver: Arc<str> = message.receiver_id().into();
        let outgoing = Outgoing {
            cmd: frame.cmd,
            kind: message.kind(),
            target: if frame.cmd == Command::C2C {
                Target::User(Arc::clone(&receiver))
            } else {
                Target::Group(Arc::clone(&receiver))
            },
            sender: Some(Sender {
                user: Arc::clone(&auth.info.user),
                session: auth.info.id,
            }),
            message_id,
            body: Bytes::from(body),
            client_msg_id,
        };
        let kind = outgoing.kind;
        let request = Frame::new(frame.cmd, frame.seq, Bytes::new());
        let advance = self.charge_advance(frame.cmd);
        let outgoing = match router.try_route(outgoing) {
            TryRoute::Routed(result) => {
                let routed = Routed {
                    request,
                    kind,
                    receiver,
                    message_id,
                    advance,
                    result,
                };
                if routes.is_empty() {
                    return self.answer(routed);
                }
                // Acked after those still in flight.
                routes.push_back(Box::pin(std::future::ready(routed)));
                return Flow::Continue;
            }
            TryRoute::Later(outgoing) => outgoing,
        };
        let mut route: Route<'r> = Box::pin(async move {
            let result = router.route(outgoing).await;
            Routed {
                request,
                kind,
                receiver,
                message_id,
                advance,
                result,
            }
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
    fn answer(&mut self, routed: Routed) -> Flow {
        let Routed {
            request,
            kind,
            receiver,
            message_id,
            advance,
            result,
        } = routed;
        let recipients = result.as_ref().map_or(0, |receipt| receipt.recipients);
        self.settle_fanout(request.cmd, advance, recipients);
        match result {
            Ok(receipt) => {
                if receipt.original.is_none() {
                    self.shared.metrics.routed(request.cmd, kind);
                }
                let offset = receipt.offset.filter(|_| request.cmd == Command::C2G);
                self.ack(
                    &request,
                    &receiver,
                    receipt.original.unwrap_or(message_id),
                    offset,
                )
            }
            Err(e) => self.router_error(&request, &e),
        }
    }

    /// A message refused at a fan-out budget (4029): the user's, or, for a
    /// group message, the gateway's.
    fn over_fanout(&self, frame: &Frame) -> Option<Flow> {
        let now = Instant::now();
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
    fn charge_advance(&self, cmd: Command) -> usize {
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
    fn settle_fanout(&self, cmd: Command, advance: usize, recipients: usize) {
        self.shared.metrics.fanout_recipients.increment(recipients as u64);
        let now = Instant::now();
        let owed = recipients as i64 - advance as i64;
        if let Some(user) = self.auth.as_ref().and_then(|auth| auth.fanout.as_ref()) {
            user.charge(owed, now);
            if cmd == Command::C2G && recipients > 0 {
                user.remember_group(recipients);
            }
        }
        if let Some(gateway) = self.shared.fanout.gateway() {
            gateway.charge(owed, now);
        }
    }

    /// Answers every message still being routed, waiting at most `grace`.
    async fn answer_all(&mut self, routes: &mut Routes<'_>, grace: std::time::Duration) {
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

    fn ack(&self, frame: &Frame, receiver: &str, message_id: MessageId, offset: Option<u32>) -> Flow {
        let mut body = Vec::with_capacity(112 + receiver.len());
        write_ack(&mut body, receiver, frame.seq, message_id, offset);
        self.reply(frame.reply(frame.cmd, body))
    }

    fn router_error(&self, frame: &Frame, error: &RouterError) -> Flow {
        self.error(frame, wire::router_error(error), &error.to_string())
    }

    fn error(&self, frame: &Frame, code: ErrorCode, reason: &str) -> Flow {
        self.shared.metrics.error(code);
        let mut body = Vec::with_capacity(48 + reason.len());
        write_error(&mut body, code, reason);
        self.reply(frame.reply(frame.cmd, body))
    }

    fn reply(&self, frame: Frame) -> Flow {
        match self.outbox.reply(frame) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop(closed_from_outside(&self.outbox)),
        }
    }
}

/// What the client sent while the session was parked, else the next read.
async fn next_read(woken_by: &mut Option<Read>, reader: &mut FrameReader) -> Read {
    match woken_by.take() {
        Some(read) => read,
        None => reader.read().await,
    }
}

/// Why a session closed by someone else's decision (the router, the admin
/// API, its own writer) ended.
fn closed_from_outside(outbox: &Outbox) -> CloseReason {
    match outbox.close_reason() {
        Some(close) if close.is_slow_consumer() => CloseReason::SlowConsumer,
        Some(close) if close.code == CloseCode::Policy => CloseReason::Kicked,
        Some(close) if close.code == CloseCode::GoingAway => CloseReason::Shutdown,
        _ => CloseReason::Error,
    }
}

fn client_ack(auth: &Authenticated, message: &RawMessage<'_>, body: &Bytes) -> Option<ClientAck> {
    let id = serde_json::from_str::<MessageId>(message.field("message_id")?.get()).ok()?;
    Some(ClientAck {
        user: Arc::clone(&auth.info.user),
        session: auth.info.id,
        message_id: id,
        body: body.clone(),
    })
}
