//! Raw `jim1` connections for load: no SDK, frames straight on the socket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use jim_protocol::{Command, Frame, FrameCodec};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::BenchError;
use crate::peers::{Event, Peer};

/// Connections per loopback source address: well under the ~28,000
/// ephemeral ports Linux gives one (source, destination) pair.
const PER_SOURCE: usize = 25_000;

/// Which transport to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// WebSocket.
    Ws,
    /// `jim1` over TLS, on the TCP listeners (trusting `--ca`).
    Tls,
    /// MQTT 3.1.1 on the TCP address: a broker such as mosquitto (see [`crate::peers`]).
    Mqtt,
    /// NATS on the TCP address: nats-server (see [`crate::peers`]).
    Nats,
}

impl Transport {
    /// The peer protocol, if this is not `jim1`.
    pub fn peer(self) -> Option<Peer> {
        match self {
            Transport::Mqtt => Some(Peer::Mqtt),
            Transport::Nats => Some(Peer::Nats),
            Transport::Tcp | Transport::Ws | Transport::Tls => None,
        }
    }
}

/// Where the gateways listen. With several gateways, client `i` connects
/// to gateway `i mod n`.
#[derive(Debug, Clone)]
pub struct Target {
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// WebSocket listeners.
    pub ws: Vec<SocketAddr>,
    /// WebSocket path.
    pub ws_path: String,
    /// What a TLS connection trusts (the gateway's CA).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// One gateway.
    pub fn single(tcp: SocketAddr, ws: SocketAddr) -> Target {
        Target {
            tcp: vec![tcp],
            ws: vec![ws],
            ws_path: "/ws".to_owned(),
            tls: None,
        }
    }
}

/// A TLS client configuration trusting the CA certificates in `ca` (PEM).
///
/// # Errors
/// [`BenchError::Usage`] if the file cannot be read or holds none.
pub fn trusting(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, BenchError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let usage = |e: String| BenchError::Usage(format!("--ca {}: {e}", ca.display()));
    let pem = std::fs::read(ca).map_err(|e| usage(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| usage(e.to_string()))?)
            .map_err(|e| usage(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(usage("no certificate in it".into()));
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| usage(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The loopback source address for the `index`-th connection.
pub fn source_for(index: usize) -> IpAddr {
    let n = u8::try_from(1 + index / PER_SOURCE).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// One connection, split.
#[derive(Debug)]
pub struct Conn {
    /// Frames from the gateway.
    pub reader: Reader,
    /// Frames to the gateway.
    pub writer: Writer,
    /// A second handle for writing from a plain thread, if asked for.
    pub direct: Option<DirectWriter>,
}

type Ws = WebSocketStream<TcpStream>;
type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// The reading half.
#[derive(Debug)]
pub enum Reader {
    /// TCP.
    Tcp(OwnedReadHalf, BytesMut, FrameCodec),
    /// WebSocket.
    Ws(SplitStream<Ws>, FrameCodec),
    /// TLS.
    Tls(ReadHalf<Tls>, BytesMut, FrameCodec),
    /// A peer's protocol over TCP.
    Peer(OwnedReadHalf, BytesMut, Peer),
}

/// The writing half.
#[derive(Debug)]
pub enum Writer {
    /// TCP.
    Tcp(OwnedWriteHalf),
    /// WebSocket.
    Ws(SplitSink<Ws, WsMessage>),
    /// TLS.
    Tls(WriteHalf<Tls>),
    /// A peer's protocol over TCP, with MQTT's next packet id.
    Peer(OwnedWriteHalf, Peer, u16),
}

/// Connects the `index`-th connection (its source address depends on it).
/// With `direct`, the connection also gets a [`DirectWriter`], which costs
/// one more file descriptor.
///
/// # Errors
/// [`BenchError::Connect`] with the reason.
pub async fn connect(
    target: &Target,
    transport: Transport,
    index: usize,
    direct: bool,
) -> Result<Conn, BenchError> {
    let addrs = match transport {
        Transport::Tcp | Transport::Tls | Transport::Mqtt | Transport::Nats => &target.tcp,
        Transport::Ws => &target.ws,
    };
    let addr = *addrs
        .get(index % addrs.len().max(1))
        .ok_or_else(|| BenchError::Usage("no gateway address".into()))?;
    let socket = TcpSocket::new_v4().map_err(|e| BenchError::Connect(e.to_string()))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| BenchError::Connect(e.to_string()))?;
    // The first source address is left to `connect`, which shares ports
    // between destinations; binding first would pick a port blind.
    if addr.ip().is_loopback() && index >= PER_SOURCE {
        socket
            .bind(SocketAddr::new(source_for(index), 0))
            .map_err(|e| BenchError::Connect(format!("bind {}: {e}", source_for(index))))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| BenchError::Connect(format!("{addr}: {e}")))?;
    stream
        .set_nodelay(true)
        .map_err(|e| BenchError::Connect(e.to_string()))?;
    let direct = match (direct, transport) {
        (true, Transport::Tls) => {
            return Err(BenchError::Usage(
                "the open loop (--rate) writes from its own threads: not over TLS".into(),
            ));
        }
        (true, _) => Some(DirectWriter::new(&stream, transport)?),
        (false, _) => None,
    };
    let codec = FrameCodec::with_max_body(1 << 20);
    match transport {
        Transport::Mqtt | Transport::Nats => {
            let peer = transport.peer().unwrap_or(Peer::Mqtt);
            let (read, write) = stream.into_split();
            Ok(Conn {
                reader: Reader::Peer(read, BytesMut::new(), peer),
                writer: Writer::Peer(write, peer, 1),
                direct,
            })
        }
        Transport::Tcp => {
            let (read, write) = stream.into_split();
            Ok(Conn {
                reader: Reader::Tcp(read, BytesMut::new(), codec),
                writer: Writer::Tcp(write),
                direct,
            })
        }
        Transport::Tls => {
            let config = target
                .tls
                .clone()
                .ok_or_else(|| BenchError::Usage("--transport tls needs --ca".into()))?;
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| BenchError::Connect(format!("TLS: {e}")))?;
            let (read, write) = tokio::io::split(stream);
            Ok(Conn {
                reader: Reader::Tls(read, BytesMut::new(), codec),
                writer: Writer::Tls(write),
                direct,
            })
        }
        Transport::Ws => {
            let url = format!("ws://{addr}{}", target.ws_path);
            // tungstenite zeroes its whole read buffer (128 KiB by default)
            // on reads; a small one keeps the generator's CPU for the gateway.
            let config = WebSocketConfig::default().read_buffer_size(4096);
            let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .map_err(|e| BenchError::Connect(format!("websocket: {e}")))?;
            let (sink, stream) = ws.split();
            Ok(Conn {
                reader: Reader::Ws(stream, codec),
                writer: Writer::Ws(sink),
                direct,
            })
        }
    }
}

impl Reader {
    /// The next frame, `None` when the connection ended.
    pub async fn next(&mut self) -> Option<Frame> {
        match self {
            Reader::Tcp(stream, buf, codec) => read_frame(stream, buf, codec).await,
            Reader::Tls(stream, buf, codec) => read_frame(stream, buf, codec).await,
            Reader::Peer(stream, buf, peer) => read_peer(stream, buf, *peer).await,
            Reader::Ws(stream, codec) => loop {
                match stream.next().await? {
                    Ok(WsMessage::Binary(bytes)) => return codec.decode_message(bytes).ok(),
                    Ok(WsMessage::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            },
        }
    }
}

/// Reads what the stream has into `buf`; false once it ended or failed.
async fn read_more(stream: &mut (impl tokio::io::AsyncRead + Unpin), buf: &mut BytesMut) -> bool {
    buf.reserve(16 * 1024);
    matches!(tokio::io::AsyncReadExt::read_buf(stream, buf).await, Ok(n) if n > 0)
}

/// The next frame of a byte stream, `None` when it ended.
async fn read_frame(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut BytesMut,
    codec: &mut FrameCodec,
) -> Option<Frame> {
    loop {
        match codec.decode_from(buf) {
            Ok(Some(frame)) => return Some(frame),
            Ok(None) => {}
            Err(_) => return None,
        }
        if !read_more(stream, buf).await {
            return None;
        }
    }
}

/// The next event of a peer's protocol, as the `jim1` frame a client of
/// Jim would get for it; `None` when the connection ended.
async fn read_peer(stream: &mut OwnedReadHalf, buf: &mut BytesMut, peer: Peer) -> Option<Frame> {
    const ACK: &[u8] = br#"{"type":"ack"}"#;
    loop {
        match peer.decode(buf) {
            Ok(Some(Event::SignedIn)) => return Some(Frame::new(Command::AuthOk, 0, Bytes::new())),
            Ok(Some(Event::Ack)) => return Some(Frame::new(Command::C2C, 0, Bytes::from_static(ACK))),
            Ok(Some(Event::Delivery(body))) => return Some(Frame::new(Command::C2C, 0, body)),
            Ok(Some(Event::Refused(reason))) => {
                let body = serde_json::json!({ "type": "error", "data": { "reason": reason } });
                return Some(Frame::new(Command::AuthFailed, 0, Bytes::from(body.to_string())));
            }
            Ok(Some(Event::Other)) => continue,
            Ok(None) => {}
            Err(_) => return None,
        }
        if !read_more(stream, buf).await {
            return None;
        }
    }
}

/// Appends what a `jim1` frame is in a peer's protocol: a sign-in for
/// `B001` (its token is the user), a publish to the receiver otherwise.
fn peer_encoded(peer: Peer, frame: &Frame, packet_id: &mut u16, dst: &mut BytesMut) -> Result<(), String> {
    if frame.cmd == Command::Auth {
        let token = crate::peers::token(&frame.body).ok_or("a sign-in without a token")?;
        peer.sign_in(&token, dst);
        return Ok(());
    }
    let receiver = crate::peers::receiver(&frame.body).ok_or("a message without receiver_id")?;
    *packet_id = packet_id.checked_add(1).unwrap_or(1);
    peer.publish(receiver, &frame.body, *packet_id, dst);
    Ok(())
}

/// Frames in one buffer, for one write.
fn encoded(frames: &[Frame]) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(frames.iter().map(Frame::encoded_len).sum());
    for frame in frames {
        frame.encode(&mut buf).map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

impl Writer {
    /// Writes frames in one write (TCP, TLS) or one flush (WebSocket).
    ///
    /// # Errors
    /// [`BenchError::Connect`] if the connection failed.
    pub async fn send(&mut self, frames: &[Frame]) -> Result<(), BenchError> {
        let failed = |e: String| BenchError::Connect(format!("write: {e}"));
        match self {
            Writer::Tcp(stream) => {
                let buf = encoded(frames).map_err(failed)?;
                stream.write_all(&buf).await.map_err(|e| failed(e.to_string()))
            }
            Writer::Tls(stream) => {
                let buf = encoded(frames).map_err(failed)?;
                stream.write_all(&buf).await.map_err(|e| failed(e.to_string()))?;
                stream.flush().await.map_err(|e| failed(e.to_string()))
            }
            Writer::Peer(stream, peer, packet_id) => {
                let mut buf = BytesMut::new();
                for frame in frames {
                    peer_encoded(*peer, frame, packet_id, &mut buf).map_err(failed)?;
                }
                stream.write_all(&buf).await.map_err(|e| failed(e.to_string()))
            }
            Writer::Ws(sink) => {
                for frame in frames {
                    let bytes = frame.to_bytes().map_err(|e| failed(e.to_string()))?;
                    sink.feed(WsMessage::Binary(bytes))
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                }
                sink.flush().await.map_err(|e| failed(e.to_string()))
            }
        }
    }
}

/// Writes frames from a plain thread, on a duplicate of the connection's
/// socket: the open-loop clock sends each message at its slot itself,
/// without a wake-up of a task in between. WebSocket frames are framed and
/// masked here as a client must. The connection's async [`Writer`] must
/// stay unused meanwhile.
#[derive(Debug)]
pub struct DirectWriter {
    socket: socket2::Socket,
    transport: Transport,
    scratch: BytesMut,
    packet_id: u16,
}

impl DirectWriter {
    /// A second handle on the same socket.
    pub fn try_clone(&self) -> Option<DirectWriter> {
        Some(DirectWriter {
            socket: self.socket.try_clone().ok()?,
            transport: self.transport,
            scratch: BytesMut::with_capacity(1024),
            packet_id: self.packet_id.wrapping_add(u16::MAX / 2),
        })
    }

    fn new(stream: &TcpStream, transport: Transport) -> Result<DirectWriter, BenchError> {
        let socket = socket2::SockRef::from(stream)
            .try_clone()
            .map_err(|e| BenchError::Connect(format!("duplicate socket: {e}")))?;
        Ok(DirectWriter {
            socket,
            transport,
            scratch: BytesMut::with_capacity(1024),
            packet_id: 1,
        })
    }

    /// Writes one frame completely. The socket is non-blocking (it is the
    /// runtime's): a full send buffer, the gateway not reading, is waited
    /// out here, holding up the caller.
    ///
    /// # Errors
    /// [`BenchError::Connect`] if the connection failed.
    pub fn send(&mut self, frame: &Frame) -> Result<(), BenchError> {
        let failed = |e: String| BenchError::Connect(format!("write: {e}"));
        self.scratch.clear();
        match self.transport {
            Transport::Tcp | Transport::Tls => frame
                .encode(&mut self.scratch)
                .map_err(|e| failed(e.to_string()))?,
            Transport::Mqtt | Transport::Nats => {
                let peer = self.transport.peer().unwrap_or(Peer::Mqtt);
                peer_encoded(peer, frame, &mut self.packet_id, &mut self.scratch).map_err(failed)?;
            }
            Transport::Ws => {
                let payload = frame.to_bytes().map_err(|e| failed(e.to_string()))?;
                let mut ws = WsFrame::message(payload, OpCode::Data(Data::Binary), true);
                ws.header_mut().mask = Some(fastrand::u32(..).to_ne_bytes());
                ws.format(&mut (&mut self.scratch).writer())
                    .map_err(|e| failed(e.to_string()))?;
            }
        }
        let mut rest = &self.scratch[..];
        while !rest.is_empty() {
            match self.socket.send(rest) {
                Ok(0) => return Err(failed("connection closed".into())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        Ok(())
    }
}

/// Authenticates a fresh connection as `user` (development-mode token, or
/// a real token as given) and waits for `B002`.
///
/// # Errors
/// [`BenchError::Gateway`] if the gateway refuses.
pub async fn authenticate(conn: &mut Conn, token: &str) -> Result<(), BenchError> {
    let body = serde_json::json!({ "token": token, "device": "bench" }).to_string();
    conn.writer
        .send(&[Frame::new(Command::Auth, 1, Bytes::from(body))])
        .await?;
    loop {
        let frame = conn
            .reader
            .next()
            .await
            .ok_or_else(|| BenchError::Gateway("closed during auth".into()))?;
        match frame.cmd {
            Command::AuthOk => return Ok(()),
            Command::AuthFailed | Command::ServerClose => {
                return Err(BenchError::Gateway(format!(
                    "authentication refused: {}",
                    String::from_utf8_lossy(&frame.body)
                )));
            }
            _ => {}
        }
    }
}
