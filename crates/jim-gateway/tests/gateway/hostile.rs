//! Hostile and faulty clients against an in-process gateway: pipelined
//! bursts, floods, clients that never read. Every frame is answered exactly
//! once, and nobody else notices.

use std::collections::HashMap;

use jim_protocol::{Command, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

both_transports!(
    a_pipelined_burst_of_pings_gets_every_pong,
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
