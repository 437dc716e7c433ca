//! Framing: split reads, batches, bad magic, oversized lengths, and the
//! WebSocket rules (binary only, exactly one frame per message).

use jim_protocol::{Command, Frame, Header};

use jim_e2e::*;
use jim_test_util::*;

both_transports!(
    wrong_magic_gets_a999_1002_then_close,
    oversized_length_is_refused_from_the_header_alone,
    body_of_exactly_the_maximum_is_accepted,
    a_protocol_violation_does_not_disturb_other_sessions,
);

async fn wrong_magic_gets_a999_1002_then_close(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.user(kind, "alice").await;
    raw.send_bytes(b"jim2B101\0\0\0\x01\0\0\0\0").await;
    let reason = raw.expect_close(1002).await;
    assert_eq!(reason, r#"bad magic: expected "jim1", got "jim2""#);
}

async fn oversized_length_is_refused_from_the_header_alone(kind: Kind) {
    let gw = Gw::with(|c| c.limits.max_body = 1024).await;
    let mut raw = gw.user(kind, "alice").await;
    // Only the header: the server must not wait for the 1025 bytes it announces.
    let header = Header {
        cmd: Command::C2C,
        seq: 2,
        len: 1025,
    }
    .to_bytes();
    raw.send_bytes(&header).await;
    let reason = raw.expect_close(1009).await;
    assert_eq!(
        reason,
        "frame body of 1025 bytes exceeds the maximum of 1024 bytes"
    );
}

async fn body_of_exactly_the_maximum_is_accepted(kind: Kind) {
    let gw = Gw::with(|c| c.limits.max_body = 1024).await;
    let mut raw = gw.user(kind, "alice").await;
    let reply = raw.request(Command::Ping, 3, &"p".repeat(1024)).await;
    assert_eq!((reply.cmd, reply.body.len()), (Command::Pong, 1024));
}

async fn a_protocol_violation_does_not_disturb_other_sessions(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let mut mallory = gw.user(kind, "mallory").await;
    mallory.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    mallory.expect_close(1002).await;
    let ack = alice.request(Command::C2C, 1, &text("bob", "still here?")).await;
    assert_ack(&ack, Command::C2C, 1, "bob");
    let delivered = bob.recv().await;
    assert_eq!(json(&delivered)["data"]["content"], "still here?");
}

#[tokio::test]
async fn tcp_frame_split_into_single_bytes_is_read_whole() {
    let gw = Gw::start().await;
    let mut bob = gw.user(Kind::Tcp, "bob").await;
    let mut raw = gw.user(Kind::Tcp, "alice").await;
    let frame = Frame::new(Command::C2C, 7, text("bob", "one byte at a time"))
        .to_bytes()
        .unwrap();
    for byte in frame.iter() {
        raw.send_bytes(&[*byte]).await;
    }
    assert_ack(&raw.reply().await, Command::C2C, 7, "bob");
    assert_eq!(json(&bob.recv().await)["data"]["content"], "one byte at a time");
}

#[tokio::test]
async fn tcp_several_frames_in_one_write_are_all_answered_in_order() {
    let gw = Gw::start().await;
    let mut raw = gw.user(Kind::Tcp, "alice").await;
    let mut wire = Vec::new();
    for seq in 10..20 {
        wire.extend_from_slice(
            &Frame::new(Command::Ping, seq, format!("{seq}"))
                .to_bytes()
                .unwrap(),
        );
    }
    wire.extend_from_slice(
        &Frame::new(Command::C2C, 20, text("alice", "to myself"))
            .to_bytes()
            .unwrap(),
    );
    raw.send_bytes(&wire).await;
    for seq in 10..20 {
        let pong = raw.recv().await;
        assert_eq!(
            (pong.cmd, pong.seq, body_str(&pong)),
            (Command::Pong, seq, seq.to_string())
        );
    }
    // The message to oneself is acked with its offset; this session is not
    // sent its own copy (contract v1.2, sender copies).
    let ack = raw.recv().await;
    assert_ack(&ack, Command::C2C, 20, "alice");
    assert_eq!(json(&ack)["data"]["offset"], 1);
    raw.expect_silence().await;
}

#[tokio::test]
async fn tcp_bad_magic_before_auth_is_refused_at_once() {
    let gw = Gw::start().await;
    let mut raw = gw.raw(Kind::Tcp).await;
    raw.send_bytes(b"HELO").await;
    raw.expect_close(1002).await;
}

#[tokio::test]
async fn ws_text_message_gets_a999_1002_and_ws_close_1002() {
    let gw = Gw::start().await;
    let mut raw = gw.user(Kind::Ws, "alice").await;
    raw.send_text(r#"{"type":"text"}"#).await;
    let reason = raw.expect_close(1002).await;
    assert_eq!(
        reason,
        "text WebSocket message: jim1 frames travel in binary messages"
    );
}

#[tokio::test]
async fn ws_message_with_two_frames_gets_a999_1002() {
    let gw = Gw::start().await;
    let mut raw = gw.user(Kind::Ws, "alice").await;
    let one = Frame::new(Command::Ping, 1, "").to_bytes().unwrap();
    raw.send_bytes(&[&one[..], &one[..]].concat()).await;
    let reason = raw.expect_close(1002).await;
    assert_eq!(
        reason,
        "message of 32 bytes is not exactly one frame (its header declares 16 bytes)"
    );
}

#[tokio::test]
async fn ws_message_shorter_than_its_frame_gets_a999_1002() {
    let gw = Gw::start().await;
    let mut raw = gw.user(Kind::Ws, "alice").await;
    let frame = Frame::new(Command::Ping, 1, "abc").to_bytes().unwrap();
    raw.send_bytes(&frame[..frame.len() - 1]).await;
    raw.expect_close(1002).await;
    let mut raw = gw.user(Kind::Ws, "alice").await;
    raw.send_bytes(b"jim1").await;
    raw.expect_close(1002).await;
}

#[tokio::test]
async fn ws_message_above_the_maximum_gets_a999_1009() {
    let gw = Gw::with(|c| c.limits.max_body = 1024).await;
    let mut raw = gw.user(Kind::Ws, "alice").await;
    let frame = Frame::new(Command::Ping, 1, vec![b'x'; 1025]).to_bytes().unwrap();
    raw.send_bytes(&frame).await;
    raw.expect_close(1009).await;
}

#[tokio::test]
async fn ws_upgrade_is_only_on_the_configured_path() {
    let gw = Gw::start().await;
    let (status, _) = http(gw.ws, "GET", "/not-ws", None, None).await;
    assert_eq!(status, 404);
}
