//! A session's `B001`: authentication, making room under the sessions per
//! user, where it starts in its inbox, and token refresh.

use std::sync::Arc;

use jim_model::{AuthOk, AuthRequest, CloseCode, ErrorCode, InboxHead, Position, Status, unix_ms_now};
use jim_protocol::{Command, Frame};
use jim_router::{Router, SessionId, SessionInfo};
use tracing::Instrument;

use super::{Authenticated, Flow, Session};
use crate::auth::Identity;
use crate::clock::{Clock, Moment};
use crate::config::SessionsOverLimit;
use crate::cursor::Cursor;
use crate::metrics::CloseReason;

/// When a token that expires at `exp` (Unix seconds) does, on `clock`.
fn expiry(identity: &Identity, clock: &Clock) -> Option<Moment> {
    let exp = std::time::UNIX_EPOCH + std::time::Duration::from_secs(identity.expires_at?);
    let left = exp
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(clock.now() + left)
}

impl<R: Router> Session<R> {
    /// The request and identity of a `B001`, or the flow of its failure
    /// (`B003`, and the session ends).
    pub(super) async fn verify(&self, frame: &Frame) -> Result<(AuthRequest, Identity), Flow> {
        let request = AuthRequest::from_slice(&frame.body)
            .map_err(|e| self.auth_failed(frame, &format!("bad B001 body: {e}")))?;
        match self.shared.auth.verify_fetching_keys(&request.token).await {
            Ok(identity) => Ok((request, identity)),
            Err(e) => {
                // The client is told the kind; the log, the particulars.
                self.span()
                    .in_scope(|| tracing::info!(reason = %e.detail(), "token refused"));
                Err(self.auth_failed(frame, &e.to_string()))
            }
        }
    }

    pub(super) async fn authenticate(&mut self, frame: &Frame) -> Flow {
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
            device: request.device.map(|device| self.shared.devices.label(&device)),
            transport: self.transport,
            node: self.shared.config.node_id,
            since_ms: unix_ms_now(),
        };
        self.span().record("id", tracing::field::display(info.id));
        self.span().record("user", &*info.user);
        if let Some(device) = &info.device {
            self.span().record("device", &**device);
        }
        if let Some(refused) = self.make_room(frame, &info.user) {
            return refused;
        }
        // In this process's hub first, then announced to the deployment:
        // from then on every message routed to the user reaches it.
        let router = &self.shared.router;
        router.hub().attach(info.clone(), Arc::clone(&self.outbox));
        if let Err(e) = router.announce(&info).instrument(self.span().clone()).await {
            router.hub().detach(&info.user, info.id);
            return self.router_error(frame, &e);
        }
        // Attached first, then the head read: a message stored in between
        // is both live and replayed, and the cursor sends it once.
        let (inbox, cursor) = match router.inbox_state(&info.user).await {
            Ok(state) => state.map(|state| self.resume(&state, since.as_ref())).unzip(),
            Err(e) => {
                router.hub().detach(&info.user, info.id);
                let _ = router.withdraw(&info).await;
                return self.router_error(frame, &e);
            }
        };
        self.span().in_scope(|| tracing::debug!("authenticated"));
        self.shared.metrics.sessions.increment(1);
        let expires = expiry(&identity, &self.shared.clock);
        let ok = self.auth_ok(frame, &info, inbox);
        let fanout = self.shared.fanout.for_user(&info.user);
        self.auth = Some(Authenticated {
            info,
            profile: identity.into(),
            expires,
            fanout,
        });
        self.last_activity = self.shared.clock.now();
        match (ok, cursor) {
            (Flow::Continue, Some(cursor)) => Flow::Follow(Box::new(cursor)),
            (flow, _) => flow,
        }
    }

    /// At `limits.sessions_per_user` sessions of `user` on this gateway:
    /// closes the oldest (`kick_oldest`), or refuses this one with `B003`
    /// 4029 (`refuse_new`, the flow returned).
    pub(super) fn make_room(&self, frame: &Frame, user: &str) -> Option<Flow> {
        let limits = &self.shared.config.limits;
        let most = limits.sessions_per_user;
        if most == 0 {
            return None;
        }
        let hub = self.shared.router.hub();
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
    /// the head (without: nothing is replayed); and the cursor the writer
    /// follows from there.
    pub(super) fn resume(
        &self,
        state: &jim_router::InboxState,
        since: Option<&Position>,
    ) -> (InboxHead, Cursor) {
        // The contract's rule, as every client reads it (jim_model::position).
        let (start, recovered) = jim_model::position::start(since, &state.epoch, state.oldest, state.head);
        if since.is_some() {
            self.shared.metrics.inbox_replays.increment(1);
        }
        let head = InboxHead {
            epoch: state.epoch.to_string(),
            offset: u64::from(state.head),
            recovered,
        };
        (
            head,
            Cursor::new(Arc::clone(&state.epoch), start, state.head, recovered),
        )
    }

    pub(super) fn auth_ok(&self, frame: &Frame, info: &SessionInfo, inbox: Option<InboxHead>) -> Flow {
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
    pub(super) async fn refresh(&mut self, frame: &Frame) -> Flow {
        let identity = match self.verify(frame).await {
            Ok((_, identity)) => identity,
            Err(failed) => return failed,
        };
        let Some(auth) = &mut self.auth else {
            return Flow::Continue;
        };
        if identity.user_id != auth.info.user {
            return self.auth_failed(frame, "the token is for another user than this session's");
        }
        auth.expires = expiry(&identity, &self.shared.clock);
        auth.profile = identity.into();
        let info = auth.info.clone();
        // The session's place in its inbox goes on: nothing to tell.
        self.auth_ok(frame, &info, None)
    }

    pub(super) fn auth_failed(&self, frame: &Frame, reason: &str) -> Flow {
        self.auth_refused(frame, ErrorCode::NotAuthenticated, reason)
    }

    /// A `B003` with `code`; the session ends.
    pub(super) fn auth_refused(&self, frame: &Frame, code: ErrorCode, reason: &str) -> Flow {
        self.shared.metrics.auth_failures.increment(1);
        let body = Status::new(code.as_u16(), reason).to_vec();
        let _ = self.outbox.reply(frame.reply(Command::AuthFailed, body));
        self.close(CloseCode::Policy, "authentication failed");
        Flow::Stop(CloseReason::Auth)
    }
}
