//! One `jim1` frame per binary WebSocket message, upgraded by axum.
//!
//! Serve the router returned by [`route`] with
//! `into_make_service_with_connect_info::<SocketAddr>()`, so that each
//! connection knows its peer address.

use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt, ready};
use jim_protocol::{Frame, FrameCodec, HEADER_LEN, ProtocolError};
use tokio_tungstenite::tungstenite;

use crate::{Connection, FrameReader, FrameWriter, Incoming, TransportError};

/// The WebSocket layer's read buffer. It is allocated for the life of the
/// connection, so it is kept small: chat messages are small, and idle
/// connections should cost little.
const READ_BUFFER: usize = 1024;
/// Outgoing messages are gathered up to this size before a write (a batch
/// is flushed at its end regardless).
const WRITE_BUFFER: usize = 16 * 1024;
/// Room in the write buffer beyond one whole frame: the pong the WebSocket
/// layer queues by itself (at most 125 bytes of payload) and its header.
const CONTROL_ROOM: usize = 256;

/// What to do with each upgraded WebSocket connection.
pub trait Accept: Clone + Send + Sync + 'static {
    /// What admitted the connection before its upgrade (a slot under a
    /// connection limit, say), found in the request's extensions where the
    /// server that accepted the TCP connection put it. It is handed to
    /// [`accept`](Self::accept) with the connection, to be held as long as
    /// the connection lives.
    type Admission: Clone + Send + Sync + 'static;

    /// Whether a browser page from `origin` (the `Origin` header) may open
    /// a connection. Requests without an `Origin` (not from a browser) are
    /// not asked about. Refused upgrades get 403.
    fn allows_origin(&self, origin: &str) -> bool {
        let _ = origin;
        true
    }

    /// Runs the connection to its end, or hands it to a task of its own
    /// and returns. The second is lighter for long connections: axum's
    /// upgrade task, which runs this future, then ends, and the upgrade
    /// machinery its state carries is freed.
    fn accept(
        &self,
        connection: Connection,
        admission: Option<Self::Admission>,
    ) -> impl Future<Output = ()> + Send;
}

#[derive(Clone)]
struct WsState<A> {
    acceptor: A,
    max_body: usize,
}

/// An axum router that upgrades `GET path` to WebSocket and hands every
/// connection to `acceptor`.
///
/// A WebSocket message longer than a frame with `max_body` bytes of body is
/// refused from its WebSocket header, before it is buffered. What the
/// connection writes is bounded too: one frame, the batch buffer and one
/// pong; pongs the client does not read are replaced, not queued.
pub fn route<A: Accept>(path: &str, max_body: usize, acceptor: A) -> axum::Router {
    axum::Router::new()
        .route(path, get(upgrade::<A>))
        .with_state(WsState { acceptor, max_body })
}

async fn upgrade<A: Accept>(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<WsState<A>>,
    admission: Option<Extension<A::Admission>>,
    headers: HeaderMap,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| state.acceptor.allows_origin(origin));
        if !allowed {
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    let admission = admission.map(|Extension(admission)| admission);
    let max_message = HEADER_LEN + state.max_body;
    ws.max_message_size(max_message)
        .max_frame_size(max_message)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + max_message + CONTROL_ROOM)
        .on_upgrade(move |socket| async move {
            let connection = connection(socket, peer, state.max_body);
            state.acceptor.accept(connection, admission).await;
        })
}

/// Turns an upgraded WebSocket into a [`Connection`].
pub fn connection(socket: WebSocket, peer: SocketAddr, max_body: usize) -> Connection {
    let (sink, stream) = socket.split();
    Connection {
        reader: FrameReader::Ws(WsFrameReader {
            stream,
            codec: FrameCodec::with_max_body(max_body),
        }),
        writer: FrameWriter::Ws(WsFrameWriter { sink }),
        peer,
        kind: jim_protocol::Transport::WebSocket,
    }
}

/// Reads frames from a WebSocket.
#[derive(Debug)]
pub struct WsFrameReader {
    stream: SplitStream<WebSocket>,
    codec: FrameCodec,
}

impl WsFrameReader {
    /// The next frame, [`Incoming::ControlReply`] when the client's ping
    /// was answered, or [`Incoming::Closed`] when the client closed the
    /// WebSocket.
    ///
    /// # Errors
    /// [`TransportError::TextMessage`], a binary message that is not exactly
    /// one frame or is too large ([`TransportError::Protocol`]), a breach of
    /// the WebSocket protocol ([`TransportError::WebSocketProtocol`]), or a
    /// failure of the link.
    pub async fn read(&mut self) -> Result<Incoming, TransportError> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// [`read`](Self::read) as a poll: a session waiting for its client
    /// holds no future of the read's own.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, TransportError>> {
        loop {
            return Poll::Ready(match ready!(self.stream.poll_next_unpin(cx)) {
                None | Some(Ok(Message::Close(_))) => Ok(Incoming::Closed),
                Some(Ok(Message::Binary(message))) => self
                    .codec
                    .decode_message(message)
                    .map(Incoming::Frame)
                    .map_err(Into::into),
                Some(Ok(Message::Text(_))) => Err(TransportError::TextMessage),
                Some(Ok(Message::Ping(_))) => Ok(Incoming::ControlReply),
                // An unsolicited pong asks for nothing.
                Some(Ok(Message::Pong(_))) => continue,
                Some(Err(error)) => Err(self.classify(error)),
            });
        }
    }

    /// The next message if one is already there, without waiting.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn try_read(&mut self) -> Result<Option<Incoming>, TransportError> {
        self.read().now_or_never().transpose()
    }

    /// Reads and drops messages until the WebSocket ends.
    pub async fn discard(&mut self) {
        while let Some(Ok(_)) = self.stream.next().await {}
    }

    fn classify(&self, error: axum::Error) -> TransportError {
        use tungstenite::error::{CapacityError, ProtocolError as WsProtocol};
        let inner = error.into_inner();
        match inner.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, .. })) => {
                TransportError::Protocol(ProtocolError::BodyTooLarge {
                    len: size.saturating_sub(HEADER_LEN) as u64,
                    max: self.codec.max_body(),
                })
            }
            Some(tungstenite::Error::Io(e)) => {
                TransportError::Io(std::io::Error::new(e.kind(), e.to_string()))
            }
            // The link went away without a close: not the client's mistake to tell it about.
            Some(tungstenite::Error::Protocol(WsProtocol::ResetWithoutClosingHandshake)) => {
                TransportError::WebSocket(inner.to_string())
            }
            // Unmasked or reserved-bit frames, bad opcodes, bad close frames, bad UTF-8.
            Some(tungstenite::Error::Protocol(e)) => TransportError::WebSocketProtocol(e.to_string()),
            Some(tungstenite::Error::Utf8(e)) => TransportError::WebSocketProtocol(e.to_string()),
            _ => TransportError::WebSocket(inner.to_string()),
        }
    }
}

/// Writes frames to a WebSocket.
#[derive(Debug)]
pub struct WsFrameWriter {
    sink: SplitSink<WebSocket, Message>,
}

impl WsFrameWriter {
    /// Writes each frame as one binary message, then flushes once.
    ///
    /// # Errors
    /// The WebSocket failed.
    pub async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), TransportError> {
        // One allocation for the batch, split into one message per frame.
        // With no frame, the flush still writes a pending pong.
        let mut buf = BytesMut::with_capacity(frames.iter().map(Frame::encoded_len).sum());
        let mut fed = 0;
        // Polled by hand rather than with `feed`/`flush` futures: this
        // future is part of every session's task, idle or not, so it
        // holds no more than a count.
        std::future::poll_fn(|cx| {
            while let Some(frame) = frames.get(fed) {
                ready!(self.sink.poll_ready_unpin(cx)).map_err(ws_error)?;
                frame.encode(&mut buf)?;
                let message = buf.split().freeze();
                self.sink
                    .start_send_unpin(Message::Binary(message))
                    .map_err(ws_error)?;
                fed += 1;
            }
            self.sink.poll_flush_unpin(cx).map_err(ws_error)
        })
        .await
    }

    /// Sends a WebSocket close with `code` and `reason`.
    ///
    /// # Errors
    /// The WebSocket failed.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        self.sink
            .send(Message::Close(Some(frame)))
            .await
            .map_err(ws_error)
    }
}

fn ws_error(error: axum::Error) -> TransportError {
    TransportError::WebSocket(error.to_string())
}
