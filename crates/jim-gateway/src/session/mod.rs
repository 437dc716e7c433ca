//! One client connection's session: the whole session life of the
//! contract. This module drives it (reading, handling each frame, writing,
//! parking, deadlines); [`sign_in`] holds `B001` (authentication, the
//! inbox position, token refresh), [`messages`] the messages (validation,
//! stamping, routing, acks, the fan-out budgets). Errors become wire codes
//! in `wire.rs`.

use std::sync::Arc;
use std::task::{Context, Poll};

use jim_model::{CloseCode, ErrorCode, write_error};
use jim_protocol::{Command, Frame};
use jim_router::{Close, Outbox, Router, RouterError, SessionInfo, Transport};
use jim_transport::{Connection, Incoming, Link, TransportError};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

use crate::auth::Identity;
use crate::clock::Moment;
use crate::cursor::Cursor;
use crate::limits::RateLimit;
use crate::metrics::CloseReason;
use crate::state::Shared;
use crate::wire;
use crate::writer::{Deadline, WriteSide};

/// How long a closing connection's late bytes are read and discarded, so
/// that closing with unread input does not reset the connection before the
/// client has read our `A999`.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Frames handled from the read buffer before the replies are written.
const MAX_BATCH: usize = 64;

mod history;
mod messages;
mod parked;
mod receipts;
mod sign_in;
mod typing;

use messages::InFlight;

/// Starts an admitted connection's session, on a task of its own; its
/// slot (the permit itself for TCP, shared with the HTTP connection for
/// WebSocket) is given back at the end.
pub(crate) fn serve<R: Router, S: Send + 'static>(shared: Arc<Shared<R>>, connection: Connection, slot: S) {
    if shared.shutdown.is_cancelled() {
        return;
    }
    shared.metrics.connections_accepted.increment(1);
    shared.metrics.connections.increment(1);
    shared.runtime.get_or_init(tokio::runtime::Handle::current);
    Live::new(&shared, connection, slot).spawn(false);
}

/// A connection's session between its turns: what its task drives, and
/// what a parked session's record keeps while it has no task.
struct Live<R, S> {
    session: Session<R>,
    link: Link,
    out: WriteSide,
    /// Its places under the connection limits, given back at the end.
    slot: S,
    /// Counts it among the gateway's tasks while it has none: shutdown
    /// waits for it.
    _tracked: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl<R: Router, S: Send + 'static> Live<R, S> {
    /// The session is set up here, before its task starts: a task is as
    /// large as its future, and the arguments and locals of a future that
    /// set it up would each take room.
    fn new(shared: &Arc<Shared<R>>, connection: Connection, slot: S) -> Self {
        let Connection { link, kind, peer } = connection;
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
        // Boxed, and only when enabled: 32 B less in every session.
        let span = (!span.is_disabled()).then(|| Box::new(span));
        let session = Session {
            rate: RateLimit::new(shared.config.limits.message_rate(), shared.clock.now()),
            shared: Arc::clone(shared),
            outbox: Arc::new(Outbox::new(shared.config.limits.outbox_frames)),
            transport: kind,
            auth: None,
            last_activity: shared.clock.now(),
            hook_turn: None,
            span,
        };
        Live {
            session,
            link,
            out: WriteSide::new(),
            slot,
            _tracked: shared.tasks.token(),
        }
    }

    /// Gives the session a task on the gateway's runtime (set by `serve`),
    /// to drive it from accept or, `woken`, from its record.
    fn spawn(self, woken: bool) {
        let shared = Arc::clone(&self.session.shared);
        if let Some(runtime) = shared.runtime.get() {
            // Boxed: tokio aligns a task to 128 B, and glibc's malloc carves
            // every such allocation anew (it cannot reuse a freed one for
            // it), so the tasks of sessions that parked would leave holes as
            // large as their records save. A boxed future is an ordinary
            // allocation, which the next session's reuses; its task is 128 B.
            runtime.spawn(Box::pin(turns(self, woken)));
        }
    }
}

impl<R: Router, S: Send + 'static> parked::Parkable for Live<R, S> {
    type Woken = Box<Read>;

    fn poll_parked(&mut self, cx: &mut Context<'_>) -> Poll<Option<Box<Read>>> {
        self.session.poll_parked(&mut self.link, cx)
    }

    /// A task of its own again: it looks first (see [`turns`]).
    fn resume(self) {
        self.spawn(true);
    }
}

/// Drives a session from accept (or from a parked wait) until it parks or
/// closes.
///
/// A busy session is driven; a quiet one parks (right after logging in,
/// and after `session.park_after_ms` with nothing to do: most connections
/// of a chat service are idle most of the time, and a busy one never
/// parks). Checking costs a wake-up per period, which is why the default
/// is long: at 100 ms, 1,000 sessions sending 2 messages a second each
/// cost 50% more CPU per message. The driving state (timers, the messages
/// in flight, a read, a write) is boxed while it lives.
///
/// A parked session has no task: its record (`parked.rs`) is woken by
/// its socket or its outbox, and starts this again with `woken` set. It
/// looks before it drives, and parks again if nothing is there: a wake can
/// be for nothing (the readiness of bytes it already read, most often
/// right after it logged in), and a session driven for nothing would keep
/// a task for `session.park_after_ms`.
async fn turns<R: Router, S: Send + 'static>(mut live: Live<R, S>, woken: bool) {
    let mut woken_by = None;
    let mut parked = woken;
    let mut look_first = woken;
    let reason = loop {
        if parked {
            // Woken from its record, it looks with this task's waker first:
            // most wakes are for something, and then no record is made to
            // find it.
            let parking = if std::mem::take(&mut look_first) {
                let looked =
                    std::future::poll_fn(|cx| Poll::Ready(live.session.poll_parked(&mut live.link, cx)))
                        .await;
                match looked {
                    Poll::Ready(read) => parked::Parking::Resumed(live, read),
                    Poll::Pending => parked::park(live),
                }
            } else {
                parked::park(live)
            };
            match parking {
                parked::Parking::Parked => return,
                parked::Parking::Resumed(resumed, read) => {
                    live = resumed;
                    woken_by = read;
                    live.session.unpark();
                }
            }
        }
        match Box::pin(live.session.drive(&mut live.link, &mut live.out, woken_by.take())).await {
            Driven::Closed(reason) => break reason,
            Driven::Quiet => {}
        }
        live.out.shrink();
        parked = live.session.park();
    };
    let Live {
        session,
        link,
        out,
        slot,
        _tracked,
    } = live;
    let shared = Arc::clone(&session.shared);
    // Once per connection, and boxed: the close's state is large.
    Box::pin(end(session, link, out, reason)).await;
    shared.metrics.connections.decrement(1);
    drop(slot);
}

/// Closes a session that has stopped: says goodbye, leaves the backend,
/// and writes what is left.
async fn end<R: Router>(mut session: Session<R>, mut link: Link, mut out: WriteSide, reason: CloseReason) {
    let shared = Arc::clone(&session.shared);
    let outbox = Arc::clone(&session.outbox);
    shared.metrics.closed(reason);
    session.span().in_scope(|| tracing::debug!(?reason, "closing"));
    // Every way out of `drive` has closed the outbox, but for a lost link.
    let close = outbox.close_reason().unwrap_or_else(|| {
        let lost = Close::new(CloseCode::Internal, "connection lost");
        outbox.close(lost.clone());
        lost
    });

    if let Some(auth) = session.auth.take() {
        shared.router.hub().detach(&auth.info.user, auth.info.id);
        let withdrawn = shared
            .router
            .withdraw(&auth.info)
            .instrument(session.span().clone())
            .await;
        if let Err(e) = withdrawn {
            session
                .span()
                .in_scope(|| tracing::warn!(error = %e, "withdrawing the session failed"));
        }
        shared.metrics.sessions.decrement(1);
    }
    out.finish(
        &mut link,
        &outbox,
        &close,
        &shared.metrics,
        shared.config.session.shutdown_grace(),
    )
    .await;
    if reason == CloseReason::Protocol {
        let _ = timeout(LINGER, link.discard()).await;
    }
}

/// The token's profile, as stamped on a session's messages: one pointer
/// in every session, and none when the token has no profile (most).
#[derive(Clone, Default)]
struct Profile(Option<Arc<ProfileClaims>>);

struct ProfileClaims {
    name: Option<Arc<str>>,
    avatar: Option<Arc<str>>,
}

impl Profile {
    fn name(&self) -> Option<&str> {
        self.0.as_ref()?.name.as_deref()
    }

    fn avatar(&self) -> Option<&str> {
        self.0.as_ref()?.avatar.as_deref()
    }
}

impl From<Identity> for Profile {
    fn from(identity: Identity) -> Profile {
        let Identity { name, avatar, .. } = identity;
        Profile((name.is_some() || avatar.is_some()).then(|| Arc::new(ProfileClaims { name, avatar })))
    }
}

/// An authenticated session.
struct Authenticated {
    info: SessionInfo,
    /// What its messages are stamped with besides `info.user`.
    profile: Profile,
    /// The user's fan-out budget on this gateway, if users have one.
    fanout: Option<Arc<crate::fanout::Budget>>,
    /// When its token expires: the session ends then unless refreshed.
    expires: Option<Moment>,
}

struct Session<R> {
    shared: Arc<Shared<R>>,
    /// The connection's span (see `run`), when its level is enabled.
    span: Option<Box<tracing::Span>>,
    outbox: Arc<Outbox>,
    transport: Transport,
    auth: Option<Authenticated>,
    rate: RateLimit,
    /// When the client last sent a frame, once authenticated; before, when
    /// it connected (the auth timeout counts from then).
    last_activity: Moment,
    /// Ends when the last message shown to the before-send hook was
    /// handed to the backend: the next waits for it.
    /// (Boxed: only sessions under a before-send hook have one.)
    hook_turn: Option<Box<tokio::sync::oneshot::Receiver<()>>>,
}

/// Whether to go on reading.
enum Flow {
    Continue,
    /// Go on, the writer following the session's inbox from this position
    /// (a `B001` just set it).
    Follow(Box<Cursor>),
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
    /// Parks the session: it waits, holding nothing it does not need,
    /// until the client sends something, frames are queued, the session
    /// closes, or its outbox is nudged: the gateway's sweeper does that at
    /// the session's deadline and at shutdown (`alarms.rs`), so that an
    /// idle session keeps no timer of its own. `false` when it must not
    /// wait: the server is stopping (the sweeper's last nudge may have
    /// been taken while driving).
    fn park(&self) -> bool {
        self.outbox.shrink();
        if self.shared.shutdown.is_cancelled() {
            return false;
        }
        self.shared.metrics.parked.increment(1);
        self.outbox.set_alarm(self.shared.alarms.at(self.deadline()));
        true
    }

    /// The parked wait, as a poll: outbox first, then the client. What the
    /// client sent is boxed for the driver, which handles it first.
    fn poll_parked(&self, link: &mut Link, cx: &mut Context<'_>) -> Poll<Option<Box<Read>>> {
        if self.outbox.poll_ready(cx).is_ready() {
            return Poll::Ready(None);
        }
        link.poll_read(cx).map(|read| Some(Box::new(read)))
    }

    /// Shutdown, once the session's own messages are answered: what other
    /// sessions still route to it goes out until every session has
    /// answered its own (`Shared::goodbye`), then its `A999`.
    async fn say_goodbye(&mut self, link: &mut Link, out: &mut WriteSide) -> Driven {
        let outbox = Arc::clone(&self.outbox);
        let shared = Arc::clone(&self.shared);
        loop {
            tokio::select! {
                biased;
                () = outbox.closed() => return Driven::Closed(closed_from_outside(&outbox)),
                () = shared.goodbye.cancelled() => break,
                () = outbox.ready() => {
                    if !out.flush(link, &outbox, &shared.metrics, self.write_deadline(), false, self.inbox()).await {
                        return Driven::Closed(closed_from_outside(&outbox));
                    }
                }
            }
        }
        self.close(CloseCode::GoingAway, "server shutting down");
        Driven::Closed(CloseReason::Shutdown)
    }

    /// The parked wait is over.
    fn unpark(&self) {
        self.outbox.stop_waiting();
        self.outbox.set_alarm(0);
        self.shared.metrics.parked.decrement(1);
    }

    /// Reads, handles and writes until the session must close, or has been
    /// quiet for `session.park_after_ms`. `woken_by` is what the client sent while
    /// the session was parked.
    async fn drive(
        &mut self,
        link: &mut Link,
        out: &mut WriteSide,
        mut woken_by: Option<Box<Read>>,
    ) -> Driven {
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
        let mut routes = InFlight::default();
        // While it drives, the session may route: at shutdown, no session
        // says goodbye before it has answered what it routes.
        let routing = shared.routing.token();
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
                    drop(routing);
                    return Box::pin(self.say_goodbye(link, out)).await;
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
                        // Only a session in the hub parks: the sweeper finds it there.
                        if turns == turns_checked + 1 && routes.is_empty() && woken_by.is_none() && self.auth.is_some() {
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
                        self.rate.credit(shared.config.limits.message_rate(), since.elapsed());
                    }
                    if !out.flush(link, &outbox, &shared.metrics, self.write_deadline(), false, self.inbox()).await {
                        return Driven::Closed(closed_from_outside(&outbox));
                    }
                }
                // Deliveries (or our own replies) are waiting.
                () = outbox.ready() => {
                    if !out.flush(link, &outbox, &shared.metrics, self.write_deadline(), false, self.inbox()).await {
                        return Driven::Closed(closed_from_outside(&outbox));
                    }
                }
                read = next_read(&mut woken_by, link), if routes.len() < most => {
                    let was_authenticated = self.auth.is_some();
                    let mut next = Some(read);
                    let mut taken = 0;
                    // A pong the WebSocket layer queued by itself must be
                    // flushed too, before reading on: it holds one pong, so
                    // a batch of pings would get one, and a flood of pings
                    // whose pongs are never read would fill no buffer.
                    let mut control_reply = false;
                    // Counted per batch: shared counters are costly per frame.
                    let (mut frames_in, mut bytes_in) = (0u64, 0u64);
                    // Whether an authenticated session sent a frame: its
                    // last activity, read once per batch (a clock read).
                    let mut active = false;
                    // Handle what is already buffered, up to a batch, then write
                    // all the replies at once. What is left stays buffered in
                    // the reader for the next turn.
                    while let Some(read) = next.take() {
                        match read {
                            Ok(Incoming::Frame(frame)) => {
                                // Before authenticating, it stays the
                                // connection's start: the auth timeout counts from it.
                                active |= self.auth.is_some();
                                frames_in += 1;
                                bytes_in += frame.encoded_len() as u64;
                                match self.handle(frame, &mut routes, &shared.router).await {
                                    Flow::Continue => {}
                                    Flow::Follow(cursor) => out.follow(*cursor),
                                    Flow::Stop(reason) => return Driven::Closed(reason),
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
                        if taken < MAX_BATCH && routes.len() < most && !control_reply {
                            next = link.try_read().transpose();
                        }
                    }
                    if routes.len() >= most {
                        full_since.get_or_insert_with(Instant::now);
                    }
                    if active {
                        self.last_activity = shared.clock.now();
                    }
                    shared.metrics.frames_in.increment(frames_in);
                    shared.metrics.bytes_in.increment(bytes_in);
                    if !out.flush(link, &outbox, &shared.metrics, self.write_deadline(), control_reply, self.inbox()).await {
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

    /// Whose inbox the writer follows, and where it reads it: once
    /// authenticated.
    fn inbox(&self) -> Option<(&R, &SessionInfo)> {
        self.auth.as_ref().map(|auth| (&self.shared.router, &auth.info))
    }

    /// The connection's span, or none when its level is disabled.
    fn span(&self) -> &tracing::Span {
        static NONE: tracing::Span = tracing::Span::none();
        self.span.as_deref().unwrap_or(&NONE)
    }

    /// Closes a session whose deadline has passed; returns why.
    fn expire(&self, now: Instant) -> CloseReason {
        match &self.auth {
            None => {
                self.close(CloseCode::Policy, "authentication timeout");
                CloseReason::Auth
            }
            Some(auth)
                if auth
                    .expires
                    .is_some_and(|expires| self.shared.clock.instant(expires) <= now) =>
            {
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
        let timers = &self.shared.config.session;
        let at = match &self.auth {
            None => self.last_activity + timers.auth_timeout(),
            Some(auth) => {
                let idle = self.last_activity + timers.idle_timeout();
                auth.expires.map_or(idle, |expires| idle.min(expires))
            }
        };
        self.shared.clock.instant(at)
    }

    fn close(&self, code: CloseCode, reason: &'static str) {
        self.outbox.close(Close::new(code, reason));
    }

    fn transport_failed(&self, error: &TransportError) -> CloseReason {
        self.span()
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

    async fn handle<'r>(&mut self, frame: Frame, routes: &mut InFlight<'r>, router: &'r R) -> Flow {
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
            (Command::Typing, true) => self.typing(&frame),
            // Boxed: a store read, rare next to messages.
            (Command::History, true) => Box::pin(self.history(&frame)).await,
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

    /// Routes a frame that gets no answer when it goes (a receipt, a
    /// typing): at once if the backend can, else in a task of its own while
    /// the session reads on. A refusal is answered to `frame`, and
    /// `on_refusal` runs first. `Err` when it was refused at once.
    fn route_unanswered(
        &self,
        frame: &Frame,
        outgoing: jim_router::Outgoing,
        on_refusal: impl FnOnce(&Shared<R>) + Send + 'static,
    ) -> Result<Flow, Flow> {
        let outgoing = match self.shared.router.try_route(outgoing) {
            jim_router::TryRoute::Routed(Ok(_)) => return Ok(Flow::Continue),
            jim_router::TryRoute::Routed(Err(e)) => {
                on_refusal(&self.shared);
                return Err(self.router_error(frame, &e));
            }
            jim_router::TryRoute::Later(outgoing) => outgoing,
        };
        let shared = Arc::clone(&self.shared);
        let outbox = Arc::clone(&self.outbox);
        let request = frame.reply(frame.cmd, bytes::Bytes::new());
        tokio::spawn(async move {
            if let Err(e) = shared.router.route(outgoing).await {
                on_refusal(&shared);
                let code = wire::router_error(&e);
                shared.metrics.error(code);
                let mut body = Vec::new();
                write_error(&mut body, code, &e.to_string());
                let _ = outbox.reply(request.reply(request.cmd, body));
            }
        });
        Ok(Flow::Continue)
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
async fn next_read(woken_by: &mut Option<Box<Read>>, link: &mut Link) -> Read {
    match woken_by.take() {
        Some(read) => *read,
        None => link.read().await,
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
