//! The session life: what is accepted before auth, B001/B002/B003, timers,
//! A998, server-only and unknown commands.

use jim_protocol::Command;
use serde_json::json;

use jim_e2e::*;
use jim_router::Router as _;
use jim_test_util::*;

both_transports!(
    ping_is_answered_with_the_same_seq_and_body_even_before_auth,
    traffic_before_auth_gets_4001_and_the_connection_stays,
    auth_replies_b002_with_user_session_and_heartbeat,
    the_seeds_client_id_is_read_as_the_device,
    malformed_auth_body_gets_b003_then_a999_1008,
    empty_token_gets_b003,
    auth_timeout_sends_a999_1008,
    idle_timeout_sends_a999_1008_and_heartbeats_prevent_it,
    a998_is_answered_with_a999_1000_then_close,
    a998_before_auth_closes_too,
    a_second_b001_refreshes_the_same_users_session_and_ends_another_users,
    server_only_and_unknown_commands_get_errors,
    jwt_tokens_are_verified_and_bad_ones_refused,
    every_session_gets_its_own_id,
    a_parked_session_wakes_for_its_client_a_delivery_a_kick_and_a_shutdown,
    a_parked_session_is_still_closed_at_its_idle_timeout,
    parked_sessions_hold_no_task,
);

async fn ping_is_answered_with_the_same_seq_and_body_even_before_auth(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.raw(kind).await;
    let pong = raw.request(Command::Ping, 77, "t=123").await;
    assert_eq!(
        (pong.cmd, pong.seq, body_str(&pong).as_str()),
        (Command::Pong, 77, "t=123")
    );
    raw.auth("alice").await;
    let pong = raw.request(Command::Ping, 78, "").await;
    assert_eq!((pong.cmd, pong.seq, pong.body.len()), (Command::Pong, 78, 0));
    // A pong from the client is activity only: no reply.
    raw.send_body(Command::Pong, 5, "").await;
    raw.expect_silence().await;
}

async fn traffic_before_auth_gets_4001_and_the_connection_stays(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.raw(kind).await;
    let cases = [
        (Command::C2C, text("bob", "hi")),
        (Command::C2G, text("g", "hi")),
        (Command::S2C, text("bob", "hi")),
        (Command::Pong, String::new()),
        (Command::Unknown(*b"Z001"), String::new()),
        (Command::AuthOk, "{}".to_owned()),
    ];
    for (seq, (cmd, body)) in cases.into_iter().enumerate() {
        let reply = raw.request(cmd, seq as u32 + 10, &body).await;
        let reason = assert_error(&reply, cmd, seq as u32 + 10, 4001);
        assert_eq!(reason, "not authenticated: send B001 first");
    }
    raw.auth("alice").await;
}

async fn auth_replies_b002_with_user_session_and_heartbeat(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.raw(kind).await;
    let reply = raw
        .request(Command::Auth, 42, r#"{"token":"alice","device":"ios"}"#)
        .await;
    assert_eq!((reply.cmd, reply.seq), (Command::AuthOk, 42));
    let body = json(&reply);
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["heartbeat_secs"], 30);
    let session = body["session_id"].as_str().unwrap();
    assert!(
        !session.is_empty() && session.bytes().all(|b| b.is_ascii_digit()),
        "{session}"
    );
    let presence = gw.router.hub().sessions_of("alice");
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[0].device.as_deref(), Some("ios"));
    assert_eq!(presence[0].id.to_string(), session);
}

async fn the_seeds_client_id_is_read_as_the_device(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.raw(kind).await;
    let reply = raw
        .request(Command::Auth, 1, r#"{"client_id":"web-7","token":"bob"}"#)
        .await;
    assert_eq!(reply.cmd, Command::AuthOk, "{}", body_str(&reply));
    assert_eq!(
        gw.router.hub().sessions_of("bob")[0].device.as_deref(),
        Some("web-7")
    );
}

async fn malformed_auth_body_gets_b003_then_a999_1008(kind: Kind) {
    let gw = Gw::start().await;
    let bystander = gw.user(kind.other(), "carol").await;
    for body in ["not json", r#"{"device":"ios"}"#, r#"{"token":7}"#] {
        let mut raw = gw.raw(kind).await;
        let reply = raw.request(Command::Auth, 9, body).await;
        assert_eq!((reply.cmd, reply.seq), (Command::AuthFailed, 9));
        let status = json(&reply);
        assert_eq!(status["code"], 4001);
        assert!(
            status["reason"].as_str().unwrap().starts_with("bad B001 body: "),
            "{status}"
        );
        assert_eq!(raw.expect_close(1008).await, "authentication failed");
    }
    drop(bystander);
}

async fn empty_token_gets_b003(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.raw(kind).await;
    let reply = raw.request(Command::Auth, 3, r#"{"token":""}"#).await;
    assert_eq!(reply.cmd, Command::AuthFailed);
    assert_eq!(json(&reply), json!({"code": 4001, "reason": "empty token"}));
    raw.expect_close(1008).await;
}

async fn auth_timeout_sends_a999_1008(kind: Kind) {
    let gw = Gw::with(|c| c.session.auth_timeout_ms = 200).await;
    let mut raw = gw.raw(kind).await;
    // Pings do not stop the auth clock.
    let _ = raw.request(Command::Ping, 1, "").await;
    assert_eq!(raw.expect_close(1008).await, "authentication timeout");
}

async fn idle_timeout_sends_a999_1008_and_heartbeats_prevent_it(kind: Kind) {
    let gw = Gw::with(|c| c.session.idle_timeout_ms = 400).await;
    let mut live = gw.user(kind, "alice").await;
    let mut quiet = gw.user(kind, "bob").await;
    // Alice pings well within the idle timeout, four times over its length.
    for seq in 0..16 {
        let pong = live.request(Command::Ping, seq, "").await;
        assert_eq!(pong.cmd, Command::Pong);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(quiet.expect_close(1008).await, "idle timeout");
    let pong = live.request(Command::Ping, 99, "").await;
    assert_eq!(pong.cmd, Command::Pong, "the active session is still open");
}

async fn a998_is_answered_with_a999_1000_then_close(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.user(kind, "alice").await;
    raw.send_body(Command::ClientClose, 5, r#"{"code":1000,"reason":"bye"}"#)
        .await;
    assert_eq!(raw.expect_close(1000).await, "client closed");
    wait_until(|| gw.router.hub().sessions_of("alice").is_empty()).await;
}

async fn a998_before_auth_closes_too(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.raw(kind).await;
    raw.send_body(Command::ClientClose, 1, "").await;
    raw.expect_close(1000).await;
}

async fn a_second_b001_refreshes_the_same_users_session_and_ends_another_users(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.raw(kind).await;
    let first = raw.auth("alice").await;
    // The same user: B002 again, the same session.
    let again = raw.request(Command::Auth, 2, r#"{"token":"alice"}"#).await;
    assert_eq!((again.cmd, again.seq), (Command::AuthOk, 2));
    assert_eq!(json(&again)["session_id"], first.session_id.as_str());
    assert_eq!(gw.router.hub().sessions_of("alice").len(), 1);
    // Another user's token: B003, and the session ends.
    let reply = raw.request(Command::Auth, 3, r#"{"token":"mallory"}"#).await;
    assert_eq!((reply.cmd, reply.seq), (Command::AuthFailed, 3));
    assert_eq!(
        json(&reply),
        json!({"code": 4001, "reason": "the token is for another user than this session's"})
    );
    raw.expect_close(1008).await;
    assert!(gw.router.hub().sessions_of("mallory").is_empty());
}

async fn server_only_and_unknown_commands_get_errors(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.user(kind, "alice").await;
    let reply = raw.request(Command::S2C, 1, &text("bob", "hi")).await;
    assert_eq!(
        assert_error(&reply, Command::S2C, 1, 4003),
        "B103 is sent by the server only"
    );
    for (seq, cmd) in [Command::AuthOk, Command::AuthFailed, Command::ServerClose]
        .into_iter()
        .enumerate()
    {
        let reply = raw.request(cmd, seq as u32 + 2, "{}").await;
        let reason = assert_error(&reply, cmd, seq as u32 + 2, 4000);
        assert_eq!(reason, format!("{cmd} is sent by the server only"));
    }
    let unknown = Command::Unknown(*b"C777");
    let reply = raw.request(unknown, 9, "whatever").await;
    assert_eq!(assert_error(&reply, unknown, 9, 4004), "unknown command \"C777\"");
    // Still usable.
    assert_eq!(raw.request(Command::Ping, 10, "").await.cmd, Command::Pong);
}

async fn jwt_tokens_are_verified_and_bad_ones_refused(kind: Kind) {
    use jim_gateway::auth::{claims_for, mint};
    let gw = Gw::with(|c| {
        c.auth.dev = false;
        c.auth.jwt_secret = Some(JWT_SECRET.into());
        c.admin.key = Some(ADMIN_KEY.into());
    })
    .await;

    let good = mint(
        JWT_SECRET.as_bytes(),
        &claims_for("alice", 60, Some("Alice"), None),
    )
    .unwrap();
    let mut raw = gw.raw(kind).await;
    assert_eq!(raw.auth(&good).await.user_id, "alice");

    let mut expired = claims_for("bob", 0, None, None);
    expired.exp -= 600;
    let mut early = claims_for("bob", 600, None, None);
    early.nbf = Some(early.exp - 60);
    let mut forever = claims_for("bob", 0, None, None);
    forever.exp = u64::MAX;
    let cases = [
        (mint(JWT_SECRET.as_bytes(), &expired).unwrap(), "token expired"),
        (
            mint(JWT_SECRET.as_bytes(), &early).unwrap(),
            "token not valid yet (nbf)",
        ),
        (
            mint(JWT_SECRET.as_bytes(), &forever).unwrap(),
            "token lifetime too long: it expires in 1844674407",
        ),
        (
            mint(
                b"some other secret, 32 bytes long!",
                &claims_for("bob", 60, None, None),
            )
            .unwrap(),
            "invalid token: bad signature (signed with another key than the gateway's?)",
        ),
        (
            "bob".to_owned(),
            "invalid token: not a JWT (three base64url parts separated by dots)",
        ),
    ];
    for (token, reason) in cases {
        let mut raw = gw.raw(kind).await;
        let reply = raw
            .request(Command::Auth, 4, &format!(r#"{{"token":"{token}"}}"#))
            .await;
        assert_eq!(reply.cmd, Command::AuthFailed);
        assert_eq!(json(&reply)["code"], 4001);
        let got = json(&reply)["reason"].as_str().unwrap().to_owned();
        assert!(got.starts_with(reason), "{got}");
        raw.expect_close(1008).await;
    }
}

/// A JWT-authenticated gateway.
async fn jwt_gateway() -> Gw {
    Gw::with(|c| {
        c.auth.dev = false;
        c.auth.jwt_secret = Some(JWT_SECRET.into());
        c.admin.key = Some(ADMIN_KEY.into());
    })
    .await
}

fn token(user: &str, ttl_secs: u64) -> String {
    use jim_gateway::auth::{claims_for, mint};
    mint(JWT_SECRET.as_bytes(), &claims_for(user, ttl_secs, None, None)).unwrap()
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let gw = jwt_gateway().await;
    let mut raw = gw.raw(Kind::Tcp).await;
    raw.auth(&token("alice", 1)).await;
    // Activity does not keep it alive past the token.
    raw.request(Command::Ping, 2, "").await;
    let started = std::time::Instant::now();
    assert_eq!(raw.expect_close(1008).await, "token expired");
    assert!(started.elapsed() <= std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn a_fresh_token_of_the_same_user_keeps_the_session_past_the_old_ones_expiry() {
    let gw = jwt_gateway().await;
    let mut raw = gw.raw(Kind::Ws).await;
    let first = raw.auth(&token("alice", 1)).await;
    let reply = raw
        .request(
            Command::Auth,
            2,
            &format!(r#"{{"token":"{}"}}"#, token("alice", 600)),
        )
        .await;
    assert_eq!(reply.cmd, Command::AuthOk);
    assert_eq!(json(&reply)["session_id"], first.session_id.as_str());
    // Past the first token's expiry (and its second of rounding), still there.
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(2_500), raw.next_inner()).await;
    assert!(quiet.is_err(), "the session ended: {quiet:?}");
    let pong = raw.request(Command::Ping, 3, "").await;
    assert_eq!(pong.cmd, Command::Pong);
}

async fn every_session_gets_its_own_id(kind: Kind) {
    let gw = Gw::start().await;
    let mut ids = std::collections::HashSet::new();
    let mut conns = Vec::new();
    for _ in 0..5 {
        let mut raw = gw.raw(kind).await;
        assert!(ids.insert(raw.auth("alice").await.session_id));
        conns.push(raw);
    }
    assert_eq!(gw.router.hub().sessions_of("alice").len(), 5);
}

/// Waits for a condition that other tasks make true.
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Sessions park once logged in and after `park_after_ms` with nothing to
/// do (see `jim_connections_parked`); each thing that can happen to a
/// session still reaches a parked one.
async fn a_parked_session_wakes_for_its_client_a_delivery_a_kick_and_a_shutdown(kind: Kind) {
    let gw = Gw::with(|c| c.session.park_after_ms = 100).await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let mut carol = gw.user(kind, "carol").await;
    gw.wait_metric("jim_connections_parked 3").await;
    // Its client.
    let pong = bob.request(Command::Ping, 7, "x").await;
    assert_eq!(
        (pong.cmd, pong.seq, body_str(&pong).as_str()),
        (Command::Pong, 7, "x")
    );
    gw.wait_metric("jim_connections_parked 3").await;
    // A delivery, to a recipient parked again.
    alice.send_message(Command::C2C, 1, "bob", "hi").await;
    assert_eq!(deliveries(&mut bob, 1).await, vec![(1, "hi".to_owned())]);
    gw.wait_metric("jim_connections_parked 3").await;
    // A kick.
    let (status, _) = gw.admin("POST", "/v1/users/carol/kick", Some("{}")).await;
    assert_eq!(status, 200);
    assert_eq!(carol.expect_close(1008).await, "kicked");
    gw.wait_metric("jim_connections_parked 2").await;
    // A shutdown.
    assert!(gw.shutdown().await);
    for raw in [&mut alice, &mut bob] {
        assert_eq!(raw.expect_close(1001).await, "server shutting down");
    }
}

async fn a_parked_session_is_still_closed_at_its_idle_timeout(kind: Kind) {
    let gw = Gw::with(|c| c.session.idle_timeout_ms = 1_000).await;
    let mut raw = gw.user(kind, "alice").await;
    gw.wait_metric("jim_connections_parked 1").await;
    assert_eq!(raw.expect_close(1008).await, "idle timeout");
    gw.wait_metric("jim_connections_parked 0").await;
}

/// A parked session waits in a record woken by its socket and its outbox,
/// not in a task of its own (an idle connection's task was 512 B): the
/// runtime's live tasks do not grow with parked sessions, and each still
/// answers.
async fn parked_sessions_hold_no_task(kind: Kind) {
    const SESSIONS: usize = 50;
    let gw = Gw::start().await;
    let mut sessions = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        sessions.push(gw.user(kind, &format!("u{i}")).await);
    }
    gw.wait_metric(&format!("jim_connections_parked {SESSIONS}"))
        .await;
    let (_, text) = http(gw.admin, "GET", "/metrics", None, None).await;
    assert!(
        text.contains("\njim_runtime_tasks "),
        "no jim_runtime_tasks in:\n{text}"
    );
    let tasks = metric(&text, "jim_runtime_tasks");
    assert!(
        tasks < SESSIONS as f64,
        "{tasks} live tasks for {SESSIONS} parked sessions"
    );
    for (seq, session) in sessions.iter_mut().enumerate() {
        let pong = session.request(Command::Ping, seq as u32, "p").await;
        assert_eq!((pong.cmd, pong.seq), (Command::Pong, seq as u32));
    }
}
