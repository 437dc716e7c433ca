//! The WebSocket layer itself, spoken by hand: messages in fragments with
//! control frames between them, bursts of pings, the close handshake, frames sent with the
//! upgrade request, and upgrade requests that are not ones.

use bytes::Bytes;
use jim_protocol::{Command, Frame, FrameCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use jim_e2e::*;
use jim_test_util::*;

const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn masked(frame: &Frame) -> Vec<u8> {
    HandWs::frame(BINARY, &frame.to_bytes().unwrap(), true, false)
}

/// The next `jim1` frame, skipping WebSocket control frames.
async fn next_jim(ws: &mut HandWs) -> Frame {
    loop {
        match ws.read_frame().await {
            Some((BINARY, payload)) => {
                return FrameCodec::with_max_body(1 << 20)
                    .decode_message(Bytes::from(payload))
                    .unwrap();
            }
            Some(_) => {}
            None => panic!("the connection ended"),
        }
    }
}

#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_read() {
    let gw = Gw::start().await;
    let auth = Frame::new(Command::Auth, 1, r#"{"token":"alice"}"#);
    let mut ws = HandWs::connect_sending(gw.ws, "/ws", &masked(&auth)).await;
    let reply = next_jim(&mut ws).await;
    assert_eq!((reply.cmd, reply.seq), (Command::AuthOk, 1));
}

/// The gateway reads the common upgrade request itself, a piece at a time
/// if that is how it comes; what follows it in the same write is the
/// session's.
#[tokio::test]
async fn an_upgrade_request_sent_in_pieces_is_answered() {
    let gw = Gw::start().await;
    let request = HandWs::upgrade_request(gw.ws, "/ws", "Origin: http://localhost\r\n");
    let auth = masked(&Frame::new(Command::Auth, 1, r#"{"token":"alice"}"#));
    let mut pieces: Vec<Vec<u8>> = request.as_bytes().chunks(7).map(<[u8]>::to_vec).collect();
    if let Some(last) = pieces.last_mut() {
        last.extend_from_slice(&auth[..3]);
    }
    pieces.push(auth[3..].to_vec());
    let mut ws = HandWs::connect_in_pieces(gw.ws, &pieces).await;
    let reply = next_jim(&mut ws).await;
    assert_eq!((reply.cmd, reply.seq), (Command::AuthOk, 1));
}

/// A head longer than the gateway reads itself (8 KiB) goes to the HTTP
/// server with what was read, and is upgraded there: nothing is lost,
/// frames sent with it included.
#[tokio::test]
async fn an_upgrade_request_with_a_long_head_is_answered_too() {
    let gw = Gw::start().await;
    let cookie = format!("Cookie: c={}\r\n", "x".repeat(12 * 1024));
    let request = HandWs::upgrade_request(gw.ws, "/ws", &cookie);
    let auth = masked(&Frame::new(Command::Auth, 1, r#"{"token":"alice"}"#));
    let ping = masked(&Frame::new(Command::Ping, 2, ""));
    let mut ws = HandWs::connect_in_pieces(gw.ws, &[[request.as_bytes(), &auth].concat(), ping]).await;
    let reply = next_jim(&mut ws).await;
    assert_eq!((reply.cmd, reply.seq), (Command::AuthOk, 1));
    let reply = next_jim(&mut ws).await;
    assert_eq!((reply.cmd, reply.seq), (Command::Pong, 2));
}

/// A head that never ends is not buffered without end: past what the
/// gateway reads itself the HTTP server takes it, and answers 431 at its
/// limit.
#[tokio::test]
async fn an_upgrade_request_whose_head_never_ends_gets_431() {
    let gw = Gw::start().await;
    let stream = TcpStream::connect(gw.ws).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        let start = HandWs::upgrade_request(gw.ws, "/ws", "");
        let start = start.trim_end_matches("\r\n");
        let _ = writer.write_all(format!("{start}\r\nX-Long: ").as_bytes()).await;
        for _ in 0..2_048 {
            if writer.write_all(&[b'a'; 1024]).await.is_err() {
                break;
            }
        }
    });
    // Until the end, or a reset (the server closes with our bytes unread):
    // what it wrote before is read first.
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut chunk).await {
            answer.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("an answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    sending.await.unwrap();
}

#[tokio::test]
async fn a_message_in_fragments_is_one_frame_and_a_ping_between_them_is_answered() {
    let gw = Gw::start().await;
    let mut ws = HandWs::connect(gw.ws, "/ws").await;
    let ping = Frame::new(Command::Ping, 2, "in three pieces")
        .to_bytes()
        .unwrap();
    let (first, rest) = ping.split_at(5);
    let (second, third) = rest.split_at(9);
    let pieces = [
        HandWs::fragment(BINARY, first, false),
        HandWs::frame(PING, b"between", true, false),
        HandWs::fragment(CONTINUATION, second, false),
        HandWs::fragment(CONTINUATION, third, true),
    ]
    .concat();
    ws.stream.write_all(&pieces).await.unwrap();
    assert_eq!(ws.read_frame().await, Some((PONG, b"between".to_vec())));
    let pong = next_jim(&mut ws).await;
    assert_eq!(
        (pong.cmd, pong.seq, &pong.body[..]),
        (Command::Pong, 2, &b"in three pieces"[..])
    );
}

/// Each ping of a burst gets its own pong, before what follows it is read:
/// with one pong per batch, a client flooding pings and never reading would
/// fill no buffer, and its connection would outlive the write timeout.
#[tokio::test]
async fn every_ping_of_a_burst_gets_its_pong_before_what_follows() {
    let gw = Gw::start().await;
    let mut ws = HandWs::connect(gw.ws, "/ws").await;
    let mut burst: Vec<u8> = (0..200u32)
        .flat_map(|n| HandWs::frame(PING, n.to_string().as_bytes(), true, false))
        .collect();
    burst.extend(masked(&Frame::new(Command::Ping, 9, "after")));
    ws.stream.write_all(&burst).await.unwrap();
    for n in 0..200u32 {
        assert_eq!(ws.read_frame().await, Some((PONG, n.to_string().into_bytes())));
    }
    let pong = next_jim(&mut ws).await;
    assert_eq!(
        (pong.cmd, pong.seq, &pong.body[..]),
        (Command::Pong, 9, &b"after"[..])
    );
}

#[tokio::test]
async fn a_client_close_is_answered_with_its_own_code_and_the_connection_ends() {
    let gw = Gw::start().await;
    let mut ws = HandWs::connect(gw.ws, "/ws").await;
    ws.stream
        .write_all(&HandWs::frame(CLOSE, b"\x0f\xa0see you", true, false))
        .await
        .unwrap();
    loop {
        match ws.read_frame().await {
            Some((CLOSE, payload)) => {
                assert_eq!(payload, b"\x0f\xa0see you");
                break;
            }
            Some(_) => {}
            None => panic!("no close frame"),
        }
    }
    assert_eq!(ws.read_frame().await, None, "the server ends the TCP connection");
}

#[tokio::test]
async fn fragments_out_of_order_get_a999_1002() {
    let gw = Gw::start().await;
    let ping = Frame::new(Command::Ping, 1, "").to_bytes().unwrap();
    let cases = [
        (
            HandWs::fragment(CONTINUATION, &ping, true),
            "websocket protocol error: continuation frame outside a message",
        ),
        (
            [
                HandWs::fragment(BINARY, &ping[..4], false),
                HandWs::fragment(BINARY, &ping[4..], true),
            ]
            .concat(),
            "websocket protocol error: new message before the fragmented one ended",
        ),
    ];
    for (bytes, expected) in cases {
        let mut ws = HandWs::connect(gw.ws, "/ws").await;
        ws.stream.write_all(&bytes).await.unwrap();
        assert_eq!(ws.expect_close(1002).await, expected);
    }
    // Nobody else noticed.
    let mut bob = gw.user(Kind::Ws, "bob").await;
    assert_eq!(bob.request(Command::Ping, 3, "").await.cmd, Command::Pong);
}

#[tokio::test]
async fn a_message_whose_fragments_add_up_to_more_than_the_maximum_gets_a999_1009() {
    let gw = Gw::with(|c| c.limits.max_body = 1024).await;
    let mut ws = HandWs::connect(gw.ws, "/ws").await;
    // Each piece fits; together they are 16 + 1,100 bytes. The second is
    // refused from its header: its payload is never sent.
    let frame = Frame::new(Command::Ping, 1, vec![b'x'; 1100]).to_bytes().unwrap();
    let second = HandWs::fragment(CONTINUATION, &frame[1000..], true);
    let pieces = [
        HandWs::fragment(BINARY, &frame[..1000], false),
        second[..8].to_vec(),
    ]
    .concat();
    ws.stream.write_all(&pieces).await.unwrap();
    assert_eq!(
        ws.expect_close(1009).await,
        "frame body of 1100 bytes exceeds the maximum of 1024 bytes"
    );
}

/// The status line and body of the answer to an upgrade request with
/// `headers` (besides Host, Upgrade and Connection).
async fn upgrade_answer(gw: &Gw, headers: &str) -> (String, String) {
    let mut stream = TcpStream::connect(gw.ws).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{headers}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn upgrade_requests_without_a_key_or_of_another_version_get_400() {
    let gw = Gw::start().await;
    let (status, body) = upgrade_answer(&gw, "Sec-WebSocket-Version: 13\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(body, "`Sec-WebSocket-Key` header missing");
    let (status, body) = upgrade_answer(
        &gw,
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(body, "`Sec-WebSocket-Version` header did not include '13'");
}
