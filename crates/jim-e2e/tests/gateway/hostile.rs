//! Hostile and faulty clients against an in-process gateway: pipelined
//! bursts, floods, clients that never read. Every frame is answered exactly
//! once, and nobody else notices.

use std::collections::HashMap;

use jim_protocol::{Command, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use jim_e2e::*;
use jim_test_util::*;

both_transports!(
    a_pipelined_burst_of_pings_gets_every_pong,
    random_bursts_get_exactly_one_reply_per_frame,
    json_that_parsers_read_differently_gets_4000_and_is_not_relayed,
);

/// Sends `frames` back to back in one write (TCP) or without waiting
/// between messages (WebSocket), and collects `expected` replies.
async fn burst(raw: &mut Raw, frames: &[Frame], expected: usize) -> Vec<Frame> {
    let mut wire = Vec::new();
    for frame in frames {
        wire.extend_from_slice(&frame.to_bytes().unwrap());
    }
    match raw.kind() {
        Kind::Tcp => raw.send_bytes(&wire).await,
        Kind::Ws => {
            for frame in frames {
                raw.send(frame.clone()).await;
            }
        }
    }
    let mut replies = Vec::with_capacity(expected);
    while replies.len() < expected {
        replies.push(raw.recv().await);
    }
    replies
}

/// How many replies each `seq` got.
fn answers(replies: &[Frame]) -> HashMap<u32, usize> {
    let mut count = HashMap::new();
    for reply in replies {
        *count.entry(reply.seq).or_default() += 1;
    }
    count
}

async fn a_pipelined_burst_of_pings_gets_every_pong(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.user(kind, "alice").await;
    // More than two read batches of the session (64 frames each).
    let pings: Vec<Frame> = (100..400).map(|seq| Frame::new(Command::Ping, seq, "")).collect();
    let pongs = burst(&mut raw, &pings, pings.len()).await;
    assert!(pongs.iter().all(|p| p.cmd == Command::Pong));
    let count = answers(&pongs);
    assert!((100..400).all(|seq| count.get(&seq) == Some(&1)), "{count:?}");
    raw.expect_silence().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_ping_flood_whose_pongs_are_never_read_is_closed() {
    // Long timers: only the unread pongs may close it.
    let gw = Gw::with(|c| {
        c.session.auth_timeout_ms = 60_000;
        c.limits.write_timeout_ms = 500;
    })
    .await;
    let mut bystander = gw.user(Kind::Ws, "bob").await;
    for authenticated in [false, true] {
        let mut flood = HandWs::connect(gw.ws, "/ws").await;
        if authenticated {
            let auth = Frame::new(Command::Auth, 1, r#"{"token":"mallory"}"#)
                .to_bytes()
                .unwrap();
            flood
                .stream
                .write_all(&HandWs::frame(0x2, &auth, true, false))
                .await
                .unwrap();
        }
        let ping = HandWs::frame(0x9, &[b'p'; 125], true, false);
        let burst: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 64).collect();
        write_until_closed(&mut flood.stream, &burst, WAIT * 2).await;
        // Nobody else noticed.
        let pong = bystander.request(Command::Ping, 7, "").await;
        assert_eq!((pong.cmd, pong.seq), (Command::Pong, 7));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_do_not_hold_their_slots_past_the_auth_timeout() {
    let gw = Gw::with(|c| {
        c.limits.max_connections = 3;
        c.session.auth_timeout_ms = 1_000;
        // Longer than the auth timeout: the auth timer must not wait for it.
        c.limits.write_timeout_ms = 60_000;
    })
    .await;
    let ping = Frame::new(Command::Ping, 1, vec![b'p'; 60_000])
        .to_bytes()
        .unwrap();
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let ping = ping.clone();
            let addr = gw.tcp;
            tokio::spawn(async move {
                let mut hog = tight_tcp(addr).await;
                write_until_closed(&mut hog, &ping, WAIT * 2).await;
            })
        })
        .collect();
    for hog in hogs {
        hog.await.unwrap();
    }
    // Their slots are free again.
    let mut next = gw.raw(Kind::Tcp).await;
    next.auth("alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_breaches_close_with_1002() {
    let gw = Gw::start().await;
    let ping = Frame::new(Command::Ping, 1, "").to_bytes().unwrap();
    for (masked, rsv1, what) in [(false, false, "unmasked"), (true, true, "reserved bit")] {
        let mut ws = HandWs::connect(gw.ws, "/ws").await;
        ws.stream
            .write_all(&HandWs::frame(0x2, &ping, masked, rsv1))
            .await
            .unwrap();
        let reason = ws.expect_close(1002).await;
        assert!(reason.starts_with("websocket protocol error"), "{what}: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_http_requests_count_as_connections_and_time_out() {
    let gw = Gw::with(|c| {
        c.limits.max_connections = 3;
        c.session.handshake_timeout_ms = 1_000;
    })
    .await;
    let mut loris = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(gw.ws).await.unwrap();
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websock")
            .await
            .unwrap();
        loris.push(stream);
    }
    // They hold every slot: a fourth upgrade is refused...
    let (status, _) = ws_refusal(&gw.ws_url()).await;
    assert_eq!(status, 503);
    // ...until the gateway drops them for taking too long.
    for mut stream in loris {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "a half-sent request was never dropped");
    }
    let mut raw = gw.raw(Kind::Ws).await;
    raw.auth("alice").await;

    // The admin API bounds a request's body in time too.
    let mut slow = TcpStream::connect(gw.admin).await.unwrap();
    slow.write_all(b"POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"users\"")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, slow.read_to_end(&mut reply))
        .await
        .expect("a slow admin request was never answered")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
}

async fn json_that_parsers_read_differently_gets_4000_and_is_not_relayed(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let deep = format!(
        r#"{{"type":"text","data":{{"receiver_id":"bob","content":"x","x":{}1{}}}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    let cases = [
        (deep, "arrays and objects nested deeper than 64"),
        (
            r#"{"type":"text","data":{"receiver_id":"bob","content":"x","n":1e400}}"#.to_owned(),
            "a number too large for a double",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"bob","content":"\ud800"}}"#.to_owned(),
            "lone surrogate",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"bob","content":"x","k":1,"k":2}}"#.to_owned(),
            r#"the key "k" twice in one object"#,
        ),
    ];
    for (seq, (body, expected)) in cases.iter().enumerate() {
        let seq = seq as u32 + 1;
        let reply = alice.request(Command::C2C, seq, body).await;
        let reason = assert_error(&reply, Command::C2C, seq, 4000);
        assert!(
            reason.starts_with("JSON that parsers read differently: "),
            "{reason}"
        );
        assert!(reason.contains(expected), "{reason}");
    }
    bob.expect_silence().await;
    // The session goes on.
    alice.send_message(Command::C2C, 10, "bob", "plain").await;
    assert_eq!(json(&bob.recv().await)["data"]["content"], "plain");
}

#[tokio::test]
async fn browser_origins_are_refused_unless_allowed() {
    let evil = |request: &mut tokio_tungstenite::tungstenite::handshake::client::Request| {
        request
            .headers_mut()
            .insert("origin", "https://evil.example".parse().unwrap());
    };
    let production = |allowed: &[&str]| {
        let allowed: Vec<String> = allowed.iter().map(|o| (*o).to_owned()).collect();
        move |c: &mut jim_gateway::Config| {
            c.auth.dev = false;
            c.auth.jwt_secret = Some(JWT_SECRET.into());
            c.admin.key = Some(ADMIN_KEY.into());
            c.listen.allowed_origins = allowed;
        }
    };
    // Production, nothing listed: a page from anywhere is refused...
    let gw = Gw::with(production(&[])).await;
    let (status, body) = ws_refusal_with(&gw.ws_url(), evil).await;
    assert_eq!((status, body.as_str()), (403, "origin not allowed\n"));
    // ...a client that is not a browser sends no Origin and gets in.
    Raw::ws(&gw.ws_url()).await.request(Command::Ping, 1, "").await;

    // Listed origins only.
    let gw = Gw::with(production(&["https://chat.example"])).await;
    assert_eq!(ws_refusal_with(&gw.ws_url(), evil).await.0, 403);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(gw.ws_url()).unwrap();
    request
        .headers_mut()
        .insert("origin", "https://CHAT.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    futures_util::SinkExt::close(&mut ws).await.unwrap();

    // Development mode, nothing listed: any origin (a page on a dev server).
    let gw = Gw::start().await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(gw.ws_url()).unwrap();
    evil(&mut request);
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn a_clients_own_display_name_is_not_relayed_in_production() {
    use jim_gateway::auth::{claims_for, mint};
    let spoof = r#"{"type":"text","data":{"receiver_id":"bob","content":"hi","sender_name":"CEO","sender_avatar":"https://evil/ceo.png"}}"#;
    for (client_profiles, relayed) in [(None, false), (Some(true), true)] {
        let gw = Gw::with(|c| {
            c.auth.dev = false;
            c.auth.jwt_secret = Some(JWT_SECRET.into());
            c.admin.key = Some(ADMIN_KEY.into());
            c.auth.client_profiles = client_profiles;
        })
        .await;
        let token = |user: &str, name: Option<&str>| {
            mint(JWT_SECRET.as_bytes(), &claims_for(user, 60, name, None)).unwrap()
        };
        let mut mallory = gw.raw(Kind::Tcp).await;
        mallory.auth(&token("mallory", None)).await;
        let mut bob = gw.raw(Kind::Ws).await;
        bob.auth(&token("bob", None)).await;
        assert_ack(
            &mallory.request(Command::C2C, 2, spoof).await,
            Command::C2C,
            2,
            "bob",
        );
        let data = json(&bob.recv().await)["data"].clone();
        assert_eq!(data["sender_id"], "mallory");
        assert_eq!(
            data.get("sender_name").is_some(),
            relayed,
            "{client_profiles:?}: {data}"
        );
        assert_eq!(
            data.get("sender_avatar").is_some(),
            relayed,
            "{client_profiles:?}: {data}"
        );

        // The token's own name is always what recipients see.
        let mut alice = gw.raw(Kind::Tcp).await;
        alice.auth(&token("alice", Some("Alice"))).await;
        assert_ack(
            &alice.request(Command::C2C, 3, spoof).await,
            Command::C2C,
            3,
            "bob",
        );
        let data = json(&bob.recv().await)["data"].clone();
        assert_eq!(data["sender_name"], "Alice");
    }
}

/// A local router whose routing waits while its gate is closed: a
/// backend that stalls.
#[derive(Clone)]
struct Stalling {
    inner: jim_router::LocalRouter,
    open: tokio::sync::watch::Receiver<bool>,
}

impl jim_router::Directory for Stalling {
    async fn add_members(
        &self,
        group: &str,
        users: &[jim_router::UserId],
    ) -> Result<(), jim_router::RouterError> {
        self.inner.add_members(group, users).await
    }
    async fn remove_members(
        &self,
        group: &str,
        users: &[jim_router::UserId],
    ) -> Result<(), jim_router::RouterError> {
        self.inner.remove_members(group, users).await
    }
    async fn members(&self, group: &str) -> Result<Vec<jim_router::UserId>, jim_router::RouterError> {
        self.inner.members(group).await
    }
    async fn presence(&self, user: &str) -> Result<Vec<jim_router::SessionInfo>, jim_router::RouterError> {
        self.inner.presence(user).await
    }
    async fn kick(&self, user: &str, reason: &str) -> Result<usize, jim_router::RouterError> {
        self.inner.kick(user, reason).await
    }
}

impl jim_router::Router for Stalling {
    fn hub(&self) -> &std::sync::Arc<jim_router::Hub> {
        self.inner.hub()
    }
    async fn announce(&self, info: &jim_router::SessionInfo) -> Result<(), jim_router::RouterError> {
        self.inner.announce(info).await
    }
    async fn withdraw(&self, info: &jim_router::SessionInfo) -> Result<(), jim_router::RouterError> {
        self.inner.withdraw(info).await
    }
    async fn route(
        &self,
        message: jim_router::Outgoing,
    ) -> Result<jim_router::Receipt, jim_router::RouterError> {
        let _ = self.open.clone().wait_for(|open| *open).await;
        self.inner.route(message).await
    }
    async fn acknowledge(&self, ack: jim_router::ClientAck) -> Result<(), jim_router::RouterError> {
        self.inner.acknowledge(ack).await
    }
    async fn inbox_state(
        &self,
        user: &str,
    ) -> Result<Option<jim_router::InboxState>, jim_router::RouterError> {
        self.inner.inbox_state(user).await
    }
    async fn read_inbox(
        &self,
        user: &str,
        after: u32,
        max: usize,
    ) -> Result<jim_router::InboxRead, jim_router::RouterError> {
        self.inner.read_inbox(user, after, max).await
    }
    async fn marks(&self, user: &str) -> Result<Vec<(String, u64)>, jim_router::RouterError> {
        self.inner.marks(user).await
    }
    fn is_ready(&self) -> bool {
        true
    }
}

/// How long the stalling backend stalls.
const STALL: std::time::Duration = std::time::Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_within_the_rate_during_a_backend_stall_are_not_rate_limited() {
    let (gate, open) = tokio::sync::watch::channel(true);
    let router = Stalling {
        inner: jim_router::LocalRouter::new(),
        open,
    };
    let mut config = jim_gateway::Config::ephemeral_dev();
    config.limits.messages_per_sec = 10;
    config.limits.message_burst = 5;
    let running = jim_gateway::Gateway::new(config, router)
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut alice = Raw::tcp(running.tcp_addr().unwrap()).await;
    alice.auth("alice").await;
    let mut bob = Raw::tcp(running.tcp_addr().unwrap()).await;
    bob.auth("bob").await;

    // The backend stalls; alice goes on sending at 8 a second, under the limit.
    gate.send_replace(false);
    let sent = 24u32;
    let sending = async {
        let mut ticks = tokio::time::interval(std::time::Duration::from_millis(125));
        for seq in 1..=sent {
            ticks.tick().await;
            alice
                .send_body(Command::C2C, seq, &text("bob", &format!("m{seq}")))
                .await;
            if seq == 8 {
                // A second into it the stall ends; the frames it held back are read at once.
                let gate = gate.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(STALL).await;
                    gate.send_replace(true);
                });
            }
        }
    };
    sending.await;
    for seq in 1..=sent {
        let reply = alice.reply().await;
        assert_ack(&reply, Command::C2C, reply.seq, "bob");
        assert!(reply.seq <= sent, "{seq}");
    }
    let _ = running.shutdown().await;
}

/// What a frame of a random burst must be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pong,
    AuthOk,
    /// An ack, or 4029 once the burst outruns the rate limit.
    AckOrRateLimited,
    Error(u16),
    /// A refused B101/B102: its error, or 4029 (the rate is checked first).
    ErrorOrRateLimited(u16),
}

/// A random frame of a burst, and its one expected answer. Frames without
/// an answer (A002, A998, a valid client ack) are left out.
fn random_frame(rng: &mut fastrand::Rng, seq: u32, authenticated: bool) -> (Frame, Expect) {
    let pick = rng.u8(0..10);
    if !authenticated {
        return match pick {
            0..=4 => {
                let len = rng.usize(0..100);
                let body: String = std::iter::repeat_with(|| rng.alphanumeric()).take(len).collect();
                (Frame::new(Command::Ping, seq, body), Expect::Pong)
            }
            5 => (
                Frame::new(Command::C2C, seq, text("bob", "x")),
                Expect::Error(4001),
            ),
            6 => (
                Frame::new(Command::S2C, seq, text("bob", "x")),
                Expect::Error(4001),
            ),
            7 => (
                Frame::new(Command::Unknown(*b"Z999"), seq, ""),
                Expect::Error(4001),
            ),
            8 => (Frame::new(Command::AuthOk, seq, "{}"), Expect::Error(4001)),
            _ => (Frame::new(Command::Pong, seq, ""), Expect::Error(4001)),
        };
    }
    match pick {
        0 | 1 => (Frame::new(Command::Ping, seq, "p"), Expect::Pong),
        2 | 3 => (
            Frame::new(Command::C2C, seq, text("sink", &format!("m{seq}"))),
            Expect::AckOrRateLimited,
        ),
        4 => (
            Frame::new(Command::C2G, seq, text("no-such-group", "x")),
            Expect::ErrorOrRateLimited(4004),
        ),
        5 => (
            Frame::new(Command::S2C, seq, text("bob", "x")),
            Expect::Error(4003),
        ),
        6 => (
            Frame::new(Command::Unknown(*b"Z999"), seq, ""),
            Expect::Error(4004),
        ),
        7 => (
            Frame::new(Command::C2C, seq, r#"{"type":"text","data":{"receiver_id":1}}"#),
            Expect::ErrorOrRateLimited(4000),
        ),
        8 => (
            Frame::new(Command::Auth, seq, r#"{"token":"alice"}"#),
            Expect::AuthOk,
        ),
        _ => (Frame::new(Command::ServerClose, seq, "{}"), Expect::Error(4000)),
    }
}

fn answered_as(reply: &Frame, expect: Expect) -> bool {
    let error_code = || json(reply)["data"]["code"].as_u64();
    match expect {
        Expect::Pong => reply.cmd == Command::Pong,
        Expect::AuthOk => reply.cmd == Command::AuthOk,
        Expect::AckOrRateLimited => json(reply)["type"] == "ack" || error_code() == Some(4029),
        Expect::Error(code) => error_code() == Some(u64::from(code)),
        Expect::ErrorOrRateLimited(code) => {
            matches!(error_code(), Some(c) if c == u64::from(code) || c == 4029)
        }
    }
}

/// Sends `frames` as fast as the link takes them while reading the
/// replies, until `frames.len()` replies came (or none for a while).
async fn pipelined_exchange(raw: Raw, frames: &[Frame]) -> Vec<Frame> {
    use futures_util::{SinkExt, StreamExt};
    let expected = frames.len();
    let mut replies = Vec::with_capacity(expected);
    let codec = jim_protocol::FrameCodec::new();
    match raw.kind() {
        Kind::Tcp => {
            let (mut reader, mut writer) = raw.into_tcp().into_split();
            let mut wire = Vec::new();
            for frame in frames {
                wire.extend_from_slice(&frame.to_bytes().unwrap());
            }
            let write = async move {
                writer.write_all(&wire).await.unwrap();
                writer
            };
            let read = async {
                let mut buf = bytes::BytesMut::new();
                while replies.len() < expected {
                    while let Some(frame) = codec.decode_from(&mut buf).unwrap() {
                        replies.push(frame);
                    }
                    if replies.len() == expected {
                        break;
                    }
                    buf.reserve(64 * 1024);
                    match tokio::time::timeout(WAIT, reader.read_buf(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => break,
                    }
                }
            };
            let (_writer, ()) = tokio::join!(write, read);
        }
        Kind::Ws => {
            let (mut sink, mut stream) = raw.into_ws().split();
            let write = async move {
                for frame in frames {
                    let message = tokio_tungstenite::tungstenite::Message::Binary(frame.to_bytes().unwrap());
                    sink.feed(message).await.unwrap();
                }
                sink.flush().await.unwrap();
                sink
            };
            let read = async {
                while replies.len() < expected {
                    match tokio::time::timeout(WAIT, stream.next()).await {
                        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(bytes)))) => {
                            replies.push(codec.decode_message(bytes).unwrap());
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
            };
            let (_sink, ()) = tokio::join!(write, read);
        }
    }
    replies
}

/// Bursts of 1 to 10,000 random frames, before and after authentication,
/// over both transports: every frame answered exactly once, with the reply
/// its command calls for, and nothing else on the wire.
async fn random_bursts_get_exactly_one_reply_per_frame(kind: Kind) {
    let gw = Gw::start().await;
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    for (size, authenticated) in [
        (1, false),
        (7, false),
        (65, false),
        (300, false),
        (1, true),
        (64, true),
        (65, true),
        (129, true),
        (1_000, true),
        (10_000, true),
    ] {
        let mut raw = gw.raw(kind).await;
        if authenticated {
            raw.auth("alice").await;
        }
        let burst: Vec<(Frame, Expect)> = (1..=size)
            .map(|seq| random_frame(&mut rng, seq, authenticated))
            .collect();
        let frames: Vec<Frame> = burst.iter().map(|(frame, _)| frame.clone()).collect();
        let replies = pipelined_exchange(raw, &frames).await;
        let what = format!("{kind:?}, {size} frames, authenticated: {authenticated}, seed {seed}");
        assert_eq!(replies.len(), frames.len(), "{what}: every frame answered");
        let mut seen = std::collections::HashSet::new();
        for reply in &replies {
            assert!(seen.insert(reply.seq), "{what}: seq {} answered twice", reply.seq);
            let (frame, expect) = &burst[reply.seq as usize - 1];
            assert!(
                answered_as(reply, *expect),
                "{what}: {} {} answered {} {}",
                frame.cmd,
                body_str(frame),
                reply.cmd,
                body_str(reply)
            );
        }
    }
}

/// How often a slowloris client sends its next byte.
const TRICKLE: std::time::Duration = std::time::Duration::from_millis(100);

/// A client that sends a frame a byte at a time, forever, holds nothing:
/// before authentication the auth timeout counts from the connection,
/// after it only whole frames are activity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_trickling_a_frame_is_closed_at_its_deadline() {
    let gw = Gw::with(|c| {
        c.session.auth_timeout_ms = 1_000;
        c.session.idle_timeout_ms = 1_000;
    })
    .await;
    for (authenticated, reason) in [(false, "authentication timeout"), (true, "idle timeout")] {
        let mut raw = gw.raw(Kind::Tcp).await;
        if authenticated {
            raw.auth("alice").await;
        }
        let frame = Frame::new(Command::Ping, 9, "x".repeat(1_000))
            .to_bytes()
            .unwrap();
        let mut trickle = frame.iter().copied();
        let close = loop {
            tokio::select! {
                next = raw.next() => break next,
                () = tokio::time::sleep(TRICKLE) => {
                    let byte = trickle.next().expect("closed before the frame was whole");
                    raw.send_bytes(&[byte]).await;
                }
            }
        };
        let close = close.expect("an A999");
        assert_eq!(close.cmd, Command::ServerClose);
        let status = jim_model::Status::from_slice(&close.body).unwrap();
        assert_eq!((status.code, status.reason.as_str()), (1008, reason));
    }
}
