//! A gateway on ephemeral loopback ports, and raw clients that speak
//! frames over real TCP and WebSocket sockets.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use jim_model::{AuthOk, Message, Status};
use jim_protocol::{Command, Frame, FrameCodec};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

pub const JWT_SECRET: &str = "test secret that is long enough!!";
pub const ADMIN_KEY: &str = "admin-key-for-tests";

/// Runs a test body once per transport: `both_transports!(name, ...)`
/// makes `tcp::name` and `ws::name`, each calling `name(Kind)`.
#[macro_export]
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod tcp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Kind::Tcp).await;
                }
            )*
        }
        mod ws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Kind::Ws).await;
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Ws,
}

impl Kind {
    pub fn other(self) -> Kind {
        match self {
            Kind::Tcp => Kind::Ws,
            Kind::Ws => Kind::Tcp,
        }
    }
}

/// Reads the gateway binary's start-up banner from its stdout until every
/// row named in `names` has shown up (`| tcp       | 127.0.0.1:9001 |`).
/// Returns those rows' values, and every line read so far.
pub async fn banner_rows<R>(
    lines: &mut tokio::io::Lines<R>,
    names: &[&str],
    within: Duration,
) -> (std::collections::HashMap<String, String>, String)
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let mut rows = std::collections::HashMap::new();
    let mut text = String::new();
    while rows.len() < names.len() {
        let line = tokio::time::timeout(within, lines.next_line())
            .await
            .expect("gateway banner")
            .unwrap()
            .expect("the gateway exited before its banner");
        text.push_str(&line);
        text.push('\n');
        let mut cells = line.split('|').map(str::trim);
        if let (Some(""), Some(name), Some(value)) = (cells.next(), cells.next(), cells.next())
            && names.contains(&name)
        {
            rows.insert(name.to_owned(), value.to_owned());
        }
    }
    (rows, text)
}

/// A minimal HTTP/1.1 client for the admin API (a request, the whole reply).
pub async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> (u16, Value) {
    let (status, text) = http(addr, method, path, body, key).await;
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> (u16, String) {
    http_with(addr, method, path, body, key, Some("application/json")).await
}

/// An HTTP/1.1 request with the given `Content-Type` (or none).
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
    content_type: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let content_type = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let (head, rest) = reply.split_once("\r\n\r\n").unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

/// A WebSocket upgrade the gateway refuses: its HTTP status and body.
pub async fn ws_refusal(url: &str) -> (u16, String) {
    ws_refusal_with(url, |_| {}).await
}

/// As [`ws_refusal`], with the request adjusted (headers, say).
pub async fn ws_refusal_with(
    url: &str,
    adjust: impl FnOnce(&mut tokio_tungstenite::tungstenite::handshake::client::Request),
) -> (u16, String) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    adjust(&mut request);
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("an answer to the upgrade")
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(other) => panic!("upgrade failed otherwise: {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client that speaks raw frames, to test exactly what goes on the wire.
pub struct Raw {
    link: Link,
    codec: FrameCodec,
    buf: BytesMut,
}

enum Link {
    Tcp(TcpStream),
    /// `jim1` over TLS.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Ws(Box<Ws>),
}

/// A stream of bytes: TCP, or TLS over it.
trait ByteStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ByteStream for S {}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// TCP end of stream (or reset).
    Eof,
    /// A WebSocket close with this code.
    WsClose(u16),
}

impl Raw {
    pub async fn tcp(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            link: Link::Tcp(stream),
            codec: FrameCodec::with_max_body(1 << 20),
            buf: BytesMut::new(),
        }
    }

    /// A raw client on a TCP stream already connected (and written to).
    pub fn from_tcp(stream: TcpStream) -> Raw {
        let _ = stream.set_nodelay(true);
        Raw {
            link: Link::Tcp(stream),
            codec: FrameCodec::with_max_body(1 << 20),
            buf: BytesMut::new(),
        }
    }

    /// `jim1` over TLS to `addr`, trusting `ca` only, checking the
    /// certificate is for `name`.
    pub async fn tls(ca: &crate::tls::TestCa, addr: SocketAddr, name: &str) -> Raw {
        let stream = ca.connect(addr, name, &[]).await.unwrap();
        Raw {
            link: Link::Tls(Box::new(stream)),
            codec: FrameCodec::with_max_body(1 << 20),
            buf: BytesMut::new(),
        }
    }

    /// WebSocket over TLS (`wss://`), trusting `ca` only.
    pub async fn wss(ca: &crate::tls::TestCa, url: &str) -> Raw {
        let connector = tokio_tungstenite::Connector::Rustls(ca.client_config(&[b"http/1.1"]));
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector))
            .await
            .unwrap();
        Raw {
            link: Link::Ws(Box::new(ws)),
            codec: FrameCodec::with_max_body(1 << 20),
            buf: BytesMut::new(),
        }
    }

    /// The byte stream under a TCP or TLS client.
    fn bytes(&mut self) -> Option<&mut dyn ByteStream> {
        match &mut self.link {
            Link::Tcp(stream) => Some(stream),
            Link::Tls(stream) => Some(&mut **stream),
            Link::Ws(_) => None,
        }
    }

    pub async fn ws(url: &str) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Raw {
            link: Link::Ws(Box::new(ws)),
            codec: FrameCodec::with_max_body(1 << 20),
            buf: BytesMut::new(),
        }
    }

    /// The WebSocket under a WebSocket client, for tests that split it.
    pub fn into_ws(self) -> Ws {
        match self.link {
            Link::Ws(ws) => *ws,
            Link::Tcp(_) | Link::Tls(_) => panic!("not a WebSocket client"),
        }
    }

    /// The TCP stream under a TCP client, for tests that split it.
    pub fn into_tcp(self) -> TcpStream {
        match self.link {
            Link::Tcp(stream) => stream,
            Link::Tls(_) | Link::Ws(_) => panic!("not a plain TCP client"),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.link {
            Link::Tcp(_) | Link::Tls(_) => Kind::Tcp,
            Link::Ws(_) => Kind::Ws,
        }
    }

    /// Sends bytes: on TCP as they are, on WebSocket as one binary message.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        if let Some(stream) = self.bytes() {
            stream.write_all(bytes).await.unwrap();
            stream.flush().await.unwrap();
            return;
        }
        if let Link::Ws(ws) = &mut self.link {
            ws.send(WsMessage::Binary(Bytes::copy_from_slice(bytes)))
                .await
                .unwrap();
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        let Link::Ws(ws) = &mut self.link else {
            panic!("text messages are WebSocket only")
        };
        ws.send(WsMessage::Text(text.into())).await.unwrap();
    }

    pub async fn send(&mut self, frame: Frame) {
        let bytes = frame.to_bytes().unwrap();
        self.send_bytes(&bytes).await;
    }

    /// Writes every frame at once, reading nothing in between: what a
    /// client pipelining its requests does.
    pub async fn send_all(&mut self, frames: &[Frame]) {
        for frame in frames {
            self.send(frame.clone()).await;
        }
    }

    pub async fn send_body(&mut self, cmd: Command, seq: u32, body: &str) {
        self.send(Frame::new(cmd, seq, body.to_owned())).await;
    }

    /// The next frame, or how the connection ended.
    pub async fn next(&mut self) -> Result<Frame, End> {
        tokio::time::timeout(WAIT, self.next_inner())
            .await
            .expect("no frame within 5 s")
    }

    pub async fn next_inner(&mut self) -> Result<Frame, End> {
        loop {
            match &mut self.link {
                Link::Tcp(_) | Link::Tls(_) => {
                    if let Some(frame) = self.codec.decode_from(&mut self.buf).unwrap() {
                        return Ok(frame);
                    }
                    let mut buf = std::mem::take(&mut self.buf);
                    buf.reserve(4096);
                    let read = self.bytes().expect("a byte stream").read_buf(&mut buf).await;
                    self.buf = buf;
                    match read {
                        Ok(0) | Err(_) => return Err(End::Eof),
                        Ok(_) => {}
                    }
                }
                Link::Ws(ws) => match ws.next().await {
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        return Ok(self.codec.decode_message(bytes).unwrap());
                    }
                    Some(Ok(WsMessage::Close(frame))) => {
                        return Err(End::WsClose(frame.map_or(1005, |f| u16::from(f.code))));
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => return Err(End::Eof),
                },
            }
        }
    }

    /// The next frame; panics if the connection ended.
    pub async fn recv(&mut self) -> Frame {
        match self.next().await {
            Ok(frame) => frame,
            Err(end) => panic!("connection ended ({end:?}) while a frame was expected"),
        }
    }

    /// The next frame that is not a delivery (B1xx with a chat body).
    pub async fn reply(&mut self) -> Frame {
        loop {
            let frame = self.recv().await;
            if !is_delivery(&frame) {
                return frame;
            }
        }
    }

    /// Asserts that no frame arrives for a short while.
    pub async fn expect_silence(&mut self) {
        if let Ok(result) = tokio::time::timeout(QUIET, self.next_inner()).await {
            panic!("expected silence, got {result:?}");
        }
    }

    pub async fn request(&mut self, cmd: Command, seq: u32, body: &str) -> Frame {
        self.send_body(cmd, seq, body).await;
        self.reply().await
    }

    /// Receives a server push (`S2C`) to `user` from `sender`; returns its
    /// `data`.
    pub async fn recv_push(&mut self, user: &str, sender: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame.cmd, Command::S2C);
        let data = json(&frame)["data"].clone();
        assert_eq!(
            (data["receiver_id"].clone(), data["sender_id"].clone()),
            (serde_json::json!(user), serde_json::json!(sender))
        );
        data
    }

    /// Sends a text message (`C2C` to a user, `C2G` to a group), asserts
    /// its ack, and returns the message id.
    pub async fn send_message(&mut self, cmd: Command, seq: u32, to: &str, content: &str) -> String {
        let reply = self.request(cmd, seq, &text(to, content)).await;
        assert_ack(&reply, cmd, seq, to)
    }

    pub async fn auth(&mut self, token: &str) -> AuthOk {
        let reply = self
            .request(
                Command::Auth,
                1,
                &format!(r#"{{"token":"{token}","device":"raw"}}"#),
            )
            .await;
        assert_eq!(reply.cmd, Command::AuthOk, "auth failed: {}", body_str(&reply));
        assert_eq!(reply.seq, 1);
        serde_json::from_slice(&reply.body).unwrap()
    }

    /// Expects `A999` with `code`, then the end of the connection (over
    /// WebSocket, a close with the same code). Returns the A999 reason.
    pub async fn expect_close(&mut self, code: u16) -> String {
        let frame = loop {
            let frame = self.recv().await;
            if frame.cmd == Command::ServerClose {
                break frame;
            }
        };
        assert_eq!(frame.seq, 0);
        let status = Status::from_slice(&frame.body).unwrap();
        assert_eq!(status.code, code, "A999 reason: {}", status.reason);
        let end = self.next().await.expect_err("nothing after A999");
        match self.kind() {
            Kind::Tcp => assert_eq!(end, End::Eof),
            Kind::Ws => assert_eq!(end, End::WsClose(code)),
        }
        status.reason
    }
}

/// Authenticates `user` on `raw` with an inbox position `since` (raw JSON,
/// or none); returns the `B002` body.
pub async fn resume(raw: &mut Raw, user: &str, since: Option<&str>) -> Value {
    let body = match since {
        Some(since) => format!(r#"{{"token":"{user}","since":{since}}}"#),
        None => format!(r#"{{"token":"{user}"}}"#),
    };
    let reply = raw.request(Command::Auth, 1, &body).await;
    assert_eq!(reply.cmd, Command::AuthOk, "{}", body_str(&reply));
    json(&reply)
}

/// Reads `n` deliveries (nothing else may come); returns their (seq,
/// `data.content`).
pub async fn deliveries(raw: &mut Raw, n: usize) -> Vec<(u32, String)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let frame = raw.recv().await;
        assert!(
            is_delivery(&frame),
            "expected a delivery, got {}",
            body_str(&frame)
        );
        let content = json(&frame)["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        got.push((frame.seq, content));
    }
    got
}

/// Reads deliveries until `n` (other replies skipped); returns their (seq,
/// `data.message_id`).
pub async fn delivered_ids(raw: &mut Raw, n: usize) -> Vec<(u32, String)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let frame = raw.recv().await;
        if is_delivery(&frame) {
            let id = json(&frame)["data"]["message_id"].as_str().unwrap().to_owned();
            got.push((frame.seq, id));
        }
    }
    got
}

pub fn body_str(frame: &Frame) -> String {
    String::from_utf8_lossy(&frame.body).into_owned()
}

pub fn json(frame: &Frame) -> Value {
    serde_json::from_slice(&frame.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", body_str(frame)))
}

pub fn is_delivery(frame: &Frame) -> bool {
    matches!(frame.cmd, Command::C2C | Command::C2G | Command::S2C)
        && matches!(Message::from_slice(&frame.body), Ok(m) if m.kind().is_chat())
}

/// Asserts an error reply: same cmd and seq, the code; returns the reason.
pub fn assert_error(frame: &Frame, cmd: Command, seq: u32, code: u16) -> String {
    assert_eq!((frame.cmd, frame.seq), (cmd, seq), "reply: {}", body_str(frame));
    let body = json(frame);
    assert_eq!(body["type"], "error", "not an error: {body}");
    assert_eq!(body["data"]["code"], code, "wrong code: {body}");
    body["data"]["reason"].as_str().unwrap().to_owned()
}

/// Asserts an ack reply and returns the message id.
pub fn assert_ack(frame: &Frame, cmd: Command, seq: u32, receiver: &str) -> String {
    assert_eq!((frame.cmd, frame.seq), (cmd, seq), "reply: {}", body_str(frame));
    let body = json(frame);
    assert_eq!(body["type"], "ack", "not an ack: {body}");
    assert_eq!(body["data"]["receiver_id"], receiver);
    assert_eq!(body["data"]["request_id"], seq);
    body["data"]["message_id"]
        .as_str()
        .expect("message_id is a string")
        .to_owned()
}

pub fn text(receiver: &str, content: &str) -> String {
    format!(r#"{{"type":"text","data":{{"receiver_id":"{receiver}","content":"{content}"}}}}"#)
}

/// `from` sends `to_user` (connected as `to`) a text, with `seq` 2: it is
/// acked, and `to` receives it.
pub async fn text_goes_through(from: &mut Raw, to: &mut Raw, to_user: &str, content: &str) {
    let ack = from.request(Command::C2C, 2, &text(to_user, content)).await;
    assert_ack(&ack, Command::C2C, 2, to_user);
    assert_eq!(json(&to.recv().await)["data"]["content"], content);
}

/// A TCP connection whose receive buffer is small, so that a client that
/// never reads fills the path back to the gateway quickly.
pub async fn tight_tcp(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Writes `chunk` over and over until the peer is gone (a write fails);
/// panics if it is still there after `within`.
pub async fn write_until_closed(stream: &mut TcpStream, chunk: &[u8], within: Duration) {
    let flood = async {
        loop {
            if stream.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(within, flood)
        .await
        .expect("the gateway never closed the connection");
}

/// A WebSocket client written by hand, to send what a library would refuse
/// to (unmasked frames, reserved bits), and to never read.
pub struct HandWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl HandWs {
    /// Upgrades a fresh connection (with a small receive buffer).
    pub async fn connect(addr: SocketAddr, path: &str) -> HandWs {
        HandWs::connect_sending(addr, path, &[]).await
    }

    /// Upgrades a fresh connection, sending `early` (WebSocket frames) in
    /// the same write as the upgrade request, before the server's answer.
    pub async fn connect_sending(addr: SocketAddr, path: &str, early: &[u8]) -> HandWs {
        let request = HandWs::upgrade_request(addr, path, "");
        HandWs::connect_in_pieces(addr, &[[request.as_bytes(), early].concat()]).await
    }

    /// An upgrade request of `path` with `headers` (each ending in CRLF)
    /// besides the usual ones.
    pub fn upgrade_request(addr: SocketAddr, path: &str, headers: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
        )
    }

    /// Upgrades a fresh connection, sending `pieces` (an upgrade request,
    /// and maybe frames) one write each, before the server's answer.
    pub async fn connect_in_pieces(addr: SocketAddr, pieces: &[Vec<u8>]) -> HandWs {
        let mut stream = tight_tcp(addr).await;
        let _ = stream.set_nodelay(true);
        for piece in pieces {
            stream.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..head_end);
        HandWs { stream, buf }
    }

    /// One client frame: `opcode` (0x2 binary, 0x9 ping), FIN set,
    /// optionally masked and with RSV1 set.
    pub fn frame(opcode: u8, payload: &[u8], masked: bool, rsv1: bool) -> Vec<u8> {
        HandWs::frame_with(0x80 | opcode | if rsv1 { 0x40 } else { 0 }, payload, masked)
    }

    /// A masked piece of a fragmented message: `opcode` 0x2 for the first,
    /// 0x0 for the others; `fin` on the last.
    pub fn fragment(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
        HandWs::frame_with(if fin { 0x80 } else { 0 } | opcode, payload, true)
    }

    /// A client frame with `first` as its first byte (FIN, RSV, opcode).
    fn frame_with(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut out = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x12, 0x34, 0x56, 0x78];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    /// The server's next frame: (opcode, payload); `None` at end of stream.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0F;
                let (len, at) = match self.buf[1] & 0x7F {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    n @ 0..=125 => (n as usize, 2),
                    _ => (usize::MAX, 0),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("no WebSocket frame within 5 s"),
            }
        }
    }

    /// Expects the `A999` (in a binary message) and the WebSocket close,
    /// both with `code`; returns the A999's reason.
    pub async fn expect_close(&mut self, code: u16) -> String {
        let mut reason = None;
        while let Some((opcode, payload)) = self.read_frame().await {
            match opcode {
                0x2 => {
                    let frame = FrameCodec::with_max_body(1 << 20)
                        .decode_message(Bytes::from(payload))
                        .unwrap();
                    if frame.cmd == Command::ServerClose {
                        let status = Status::from_slice(&frame.body).unwrap();
                        assert_eq!(status.code, code, "A999: {}", status.reason);
                        reason = Some(status.reason);
                    }
                }
                0x8 => {
                    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
                    return reason.expect("an A999 before the close");
                }
                _ => {}
            }
        }
        panic!("the connection ended without a WebSocket close")
    }
}
