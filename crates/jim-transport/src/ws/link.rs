//! An upgraded WebSocket's link: the frames of `jim1` in binary messages,
//! on the socket the HTTP connection upgraded.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use jim_protocol::{Frame, FrameCodec, HEADER_LEN, ProtocolError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::frames::{self, DataKind, Violation, WsFrame};
use crate::{Incoming, TransportError};

/// Any stream a WebSocket can run on (TLS, or whatever the HTTP server
/// upgraded).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// What a WebSocket connection rarely holds, in one box: every connection
/// carries the slot.
#[derive(Debug, Default)]
struct Rare {
    /// A binary message arriving in fragments, so far.
    partial: Option<BytesMut>,
    /// What the WebSocket layer owes the client besides the frames the
    /// session writes: the pong to its latest ping (a newer ping replaces
    /// it, so a client that does not read cannot make it grow), or the
    /// echo of its close.
    owed: Option<Control>,
}

#[derive(Debug)]
enum Control {
    Pong(Bytes),
    CloseEcho(Bytes),
}

/// Where a WebSocket's bytes come from and go.
pub(crate) enum Io {
    /// Read through readiness, so that a quiet connection holds no buffer.
    Tcp(TcpStream),
    /// Any other stream (TLS): boxed, so that TCP decides the size.
    Stream(Box<dyn Stream>),
}

impl Io {
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match self {
            Io::Tcp(stream) => crate::fill::tcp(stream, cx, buf),
            Io::Stream(stream) => crate::fill::stream(Pin::new(&mut **stream), cx, buf),
        }
    }

    /// Writes all of `bytes` and flushes. Polled by hand: the future is
    /// part of every session's task, so it holds no more than a position.
    fn write_all<'a>(&'a mut self, bytes: &'a [u8]) -> impl Future<Output = io::Result<()>> + 'a {
        let mut written = 0;
        std::future::poll_fn(move |cx| self.poll_write_all(cx, bytes, &mut written))
    }

    fn poll_write_all(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
        written: &mut usize,
    ) -> Poll<io::Result<()>> {
        match self {
            Io::Tcp(stream) => crate::tcp::poll_write_all(stream, cx, bytes, written),
            Io::Stream(stream) => poll_write_all(Pin::new(&mut **stream), cx, bytes, written),
        }
    }
}

fn poll_write_all(
    mut stream: Pin<&mut dyn Stream>,
    cx: &mut Context<'_>,
    bytes: &[u8],
    written: &mut usize,
) -> Poll<io::Result<()>> {
    while *written < bytes.len() {
        match ready!(stream.as_mut().poll_write(cx, &bytes[*written..]))? {
            0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            n => *written += n,
        }
    }
    stream.poll_flush(cx)
}

/// Frames in binary WebSocket messages.
pub struct WsLink {
    io: Io,
    buf: BytesMut,
    codec: FrameCodec,
    rare: Option<Box<Rare>>,
}

impl fmt::Debug for WsLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsLink")
            .field("buffered", &self.buf.len())
            .field("partial", &self.partial_len())
            .finish_non_exhaustive()
    }
}

impl WsLink {
    /// A link on `io` that refuses bodies above `max_body`; `buf` holds
    /// what was read before the upgrade completed.
    pub(crate) fn new(io: Io, max_body: usize, buf: BytesMut) -> WsLink {
        WsLink {
            io,
            buf,
            codec: FrameCodec::with_max_body(max_body),
            rare: None,
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Gives the box back once it holds nothing.
    fn tidy(&mut self) {
        if self
            .rare
            .as_ref()
            .is_some_and(|rare| rare.partial.is_none() && rare.owed.is_none())
        {
            self.rare = None;
        }
    }

    fn partial_len(&self) -> usize {
        self.rare
            .as_ref()
            .and_then(|rare| rare.partial.as_ref())
            .map_or(0, BytesMut::len)
    }

    fn take_partial(&mut self) -> Option<BytesMut> {
        let partial = self.rare.as_mut()?.partial.take();
        self.tidy();
        partial
    }

    fn owe_pong(&mut self, frame: Bytes) {
        let owed = &mut self.rare().owed;
        // Once the client closed, only the echo of its close is owed.
        if !matches!(owed, Some(Control::CloseEcho(_))) {
            *owed = Some(Control::Pong(frame));
        }
    }

    fn owe_close_echo(&mut self, frame: Bytes) {
        self.rare().owed = Some(Control::CloseEcho(frame));
    }

    fn take_pong(&mut self) -> Option<Bytes> {
        let owed = &mut self.rare.as_mut()?.owed;
        // A close's echo stays for `take_close_echo`.
        let pong = match owed.take() {
            Some(Control::Pong(frame)) => Some(frame),
            other => {
                *owed = other;
                None
            }
        };
        self.tidy();
        pong
    }

    fn take_close_echo(&mut self) -> Option<Bytes> {
        let echo = match self.rare.as_mut()?.owed.take() {
            Some(Control::CloseEcho(frame)) => Some(frame),
            _ => None,
        };
        self.tidy();
        echo
    }

    /// The next frame, [`Incoming::ControlReply`] when the client's ping
    /// was answered, or [`Incoming::Closed`] when the client closed the
    /// WebSocket.
    ///
    /// # Errors
    /// [`TransportError::TextMessage`], a binary message that is not exactly
    /// one frame or is too large ([`TransportError::Protocol`]), a breach of
    /// the WebSocket protocol ([`TransportError::WebSocketProtocol`]), or a
    /// failure of the link (an end without a close is
    /// [`TransportError::WebSocket`]).
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
            if let Some(incoming) = self.decode()? {
                return Poll::Ready(Ok(incoming));
            }
            if ready!(self.io.poll_fill(cx, &mut self.buf))? == 0 {
                let partial = self.rare.as_ref().is_some_and(|rare| rare.partial.is_some());
                return Poll::Ready(Err(if self.buf.is_empty() && !partial {
                    TransportError::WebSocket("the connection ended without a close frame".into())
                } else {
                    TransportError::Truncated {
                        buffered: self.buf.len() + self.partial_len(),
                    }
                }));
            }
        }
    }

    /// The next message if one is already buffered, without waiting.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn try_read(&mut self) -> Result<Option<Incoming>, TransportError> {
        self.decode()
    }

    /// Reads and drops what the client sends until it closes: its close
    /// frame, the end of the stream or an error.
    pub async fn discard(&mut self) {
        self.take_partial();
        loop {
            loop {
                match frames::decode(&mut self.buf, usize::MAX) {
                    Ok(Some(WsFrame::Close(_))) | Err(_) => return,
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                }
            }
            let filled = std::future::poll_fn(|cx| self.io.poll_fill(cx, &mut self.buf)).await;
            if !matches!(filled, Ok(n) if n > 0) {
                return;
            }
        }
    }

    /// The next whole message among the buffered frames, answering control
    /// frames on the way.
    fn decode(&mut self) -> Result<Option<Incoming>, TransportError> {
        let max_message = HEADER_LEN + self.codec.max_body();
        loop {
            let so_far = self.partial_len();
            let frame = match frames::decode(&mut self.buf, max_message - so_far) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(Violation::TooLong(len)) => {
                    let message = so_far as u64 + len;
                    return Err(TransportError::Protocol(ProtocolError::BodyTooLarge {
                        len: message.saturating_sub(HEADER_LEN as u64),
                        max: self.codec.max_body(),
                    }));
                }
                Err(Violation::Protocol(why)) => return Err(TransportError::WebSocketProtocol(why.into())),
            };
            match frame {
                WsFrame::Data { kind, fin, payload } => {
                    let message = match (kind, self.take_partial()) {
                        (DataKind::Text, None) => return Err(TransportError::TextMessage),
                        (DataKind::Binary, None) => payload,
                        (DataKind::Continuation, Some(mut partial)) => {
                            partial.unsplit(payload);
                            partial
                        }
                        (DataKind::Continuation, None) => {
                            return Err(TransportError::WebSocketProtocol(
                                "continuation frame outside a message".into(),
                            ));
                        }
                        (DataKind::Binary | DataKind::Text, Some(_)) => {
                            return Err(TransportError::WebSocketProtocol(
                                "new message before the fragmented one ended".into(),
                            ));
                        }
                    };
                    if !fin {
                        self.rare().partial = Some(message);
                        continue;
                    }
                    let frame = self.codec.decode_message(message.freeze())?;
                    return Ok(Some(Incoming::Frame(frame)));
                }
                WsFrame::Ping(payload) => {
                    self.owe_pong(frames::pong(&payload));
                    return Ok(Some(Incoming::ControlReply));
                }
                WsFrame::Pong => {}
                WsFrame::Close(reply) => {
                    self.owe_close_echo(reply);
                    return Ok(Some(Incoming::Closed));
                }
            }
        }
    }
}

impl WsLink {
    /// Writes each frame as one binary message, and the pong owed to the
    /// client if any, with one write.
    ///
    /// # Errors
    /// The link failed, or a frame above the maximum body (a bug of the
    /// caller).
    pub async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), TransportError> {
        // Bound by `let else`: a temporary in an `if let` would live across
        // the write, and this future is part of every session's task.
        let Some(batch) = self.batch(frames)? else {
            return Ok(());
        };
        self.io.write_all(&batch).await?;
        Ok(())
    }

    /// The owed pong and `frames`, in one buffer; `None` when there is
    /// nothing to write. (Apart from the write, so that the write's future
    /// carries none of this.)
    fn batch(&mut self, frames: &[Frame]) -> Result<Option<BytesMut>, TransportError> {
        let pong = self.take_pong();
        if frames.is_empty() && pong.is_none() {
            return Ok(None);
        }
        let len = frames
            .iter()
            .map(|frame| {
                let len = frame.encoded_len();
                frames::binary_header_len(len) + len
            })
            .sum::<usize>();
        let mut buf = BytesMut::with_capacity(len + pong.as_ref().map_or(0, Bytes::len));
        if let Some(pong) = pong {
            buf.extend_from_slice(&pong);
        }
        for frame in frames {
            frames::put_binary_header(&mut buf, frame.encoded_len());
            frame.encode(&mut buf)?;
        }
        Ok(Some(buf))
    }

    /// Sends a WebSocket close with `code` and `reason`; if the client
    /// closed first, the echo of its close instead.
    ///
    /// # Errors
    /// The link failed.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        let frame = match self.take_close_echo() {
            Some(echo) => echo,
            None => frames::close(Some((code, reason))),
        };
        self.io.write_all(&frame).await?;
        Ok(())
    }
}
