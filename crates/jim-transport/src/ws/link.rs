//! The two halves of an upgraded WebSocket: the frames of `jim1` in binary
//! messages, on the socket the HTTP connection upgraded.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use jim_protocol::{Frame, FrameCodec, HEADER_LEN, ProtocolError};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::frames::{self, DataKind, Violation, WsFrame};
use crate::{Incoming, TransportError};

/// Any stream a WebSocket can run on (TLS, or whatever the HTTP server
/// upgraded).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// What the WebSocket layer owes the client besides the frames the session
/// writes: the pong to its latest ping (a newer ping replaces it, so a
/// client that does not read cannot make it grow), or the echo of its close.
///
/// Boxed: it is rarely there, and every connection carries the slot.
#[derive(Debug, Default)]
pub(crate) struct Owed(Mutex<Option<Box<Control>>>);

#[derive(Debug)]
enum Control {
    Pong(Bytes),
    CloseEcho(Bytes),
}

impl Owed {
    fn pong(&self, frame: Bytes) {
        let mut owed = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Once the client closed, only the echo of its close is owed.
        if !matches!(owed.as_deref(), Some(Control::CloseEcho(_))) {
            *owed = Some(Box::new(Control::Pong(frame)));
        }
    }

    fn close_echo(&self, frame: Bytes) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(Control::CloseEcho(frame)));
    }

    fn take_pong(&self) -> Option<Bytes> {
        let mut owed = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A close's echo stays for `take_close_echo`.
        if !matches!(owed.as_deref(), Some(Control::Pong(_))) {
            return None;
        }
        match owed.take().map(|control| *control) {
            Some(Control::Pong(frame)) => Some(frame),
            _ => None,
        }
    }

    fn take_close_echo(&self) -> Option<Bytes> {
        match self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|control| *control)
        {
            Some(Control::CloseEcho(frame)) => Some(frame),
            _ => None,
        }
    }
}

/// A plain TCP socket shared by both halves, with what they owe the
/// client and the reader's limits: one allocation, as tokio's own split
/// halves make, and a reader no larger than a TCP one.
#[derive(Debug)]
pub(crate) struct TcpLink {
    stream: TcpStream,
    owed: Owed,
    codec: FrameCodec,
}

impl TcpLink {
    pub(crate) fn new(stream: TcpStream, max_body: usize) -> Arc<TcpLink> {
        Arc::new(TcpLink {
            stream,
            owed: Owed::default(),
            codec: FrameCodec::with_max_body(max_body),
        })
    }
}

/// Where a reader's bytes come from.
pub(crate) enum ReadLink {
    /// Read through readiness, so that a quiet connection holds no buffer.
    Tcp(Arc<TcpLink>),
    /// Boxed, so that the common case (TCP) decides the size.
    Stream(Box<StreamReader>),
}

/// The reading half of a stream other than plain TCP.
pub(crate) struct StreamReader {
    half: ReadHalf<Box<dyn Stream>>,
    owed: Arc<Owed>,
    codec: FrameCodec,
}

/// The writing half of a stream other than plain TCP.
pub(crate) struct StreamWriter {
    half: WriteHalf<Box<dyn Stream>>,
    owed: Arc<Owed>,
}

/// Where a writer's bytes go.
pub(crate) enum WriteLink {
    Tcp(Arc<TcpLink>),
    Stream(Box<StreamWriter>),
}

/// The two halves of `stream`, whose reader refuses bodies above `max_body`.
pub(crate) fn split_stream(stream: Box<dyn Stream>, max_body: usize) -> (ReadLink, WriteLink) {
    let owed = Arc::new(Owed::default());
    let (read, write) = tokio::io::split(stream);
    (
        ReadLink::Stream(Box::new(StreamReader {
            half: read,
            owed: Arc::clone(&owed),
            codec: FrameCodec::with_max_body(max_body),
        })),
        WriteLink::Stream(Box::new(StreamWriter { half: write, owed })),
    )
}

impl ReadLink {
    fn owed(&self) -> &Owed {
        match self {
            ReadLink::Tcp(link) => &link.owed,
            ReadLink::Stream(stream) => &stream.owed,
        }
    }

    fn codec(&self) -> &FrameCodec {
        match self {
            ReadLink::Tcp(link) => &link.codec,
            ReadLink::Stream(stream) => &stream.codec,
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match self {
            ReadLink::Tcp(link) => crate::fill::tcp(&link.stream, cx, buf),
            ReadLink::Stream(stream) => crate::fill::stream(Pin::new(&mut stream.half), cx, buf),
        }
    }
}

impl WriteLink {
    fn owed(&self) -> &Owed {
        match self {
            WriteLink::Tcp(link) => &link.owed,
            WriteLink::Stream(stream) => &stream.owed,
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
            WriteLink::Tcp(link) => crate::tcp::poll_write_all(&link.stream, cx, bytes, written),
            WriteLink::Stream(stream) => poll_write_all(Pin::new(&mut stream.half), cx, bytes, written),
        }
    }
}

fn poll_write_all(
    mut stream: Pin<&mut WriteHalf<Box<dyn Stream>>>,
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

/// Reads frames from a WebSocket.
pub struct WsFrameReader {
    link: ReadLink,
    buf: BytesMut,
    /// A binary message arriving in fragments, so far (boxed: rare, and
    /// every connection carries the slot).
    partial: Option<Box<BytesMut>>,
}

impl fmt::Debug for WsFrameReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsFrameReader")
            .field("buffered", &self.buf.len())
            .field("partial", &self.partial.as_ref().map(|partial| partial.len()))
            .finish_non_exhaustive()
    }
}

impl WsFrameReader {
    /// A reader of `link`; `buf` holds what was read before the upgrade
    /// completed.
    pub(crate) fn new(link: ReadLink, buf: BytesMut) -> WsFrameReader {
        WsFrameReader {
            link,
            buf,
            partial: None,
        }
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
            if ready!(self.link.poll_fill(cx, &mut self.buf))? == 0 {
                return Poll::Ready(Err(if self.buf.is_empty() && self.partial.is_none() {
                    TransportError::WebSocket("the connection ended without a close frame".into())
                } else {
                    TransportError::Truncated {
                        buffered: self.buf.len() + self.partial.as_ref().map_or(0, |partial| partial.len()),
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
        self.partial = None;
        loop {
            loop {
                match frames::decode(&mut self.buf, usize::MAX) {
                    Ok(Some(WsFrame::Close(_))) | Err(_) => return,
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                }
            }
            let filled = std::future::poll_fn(|cx| self.link.poll_fill(cx, &mut self.buf)).await;
            if !matches!(filled, Ok(n) if n > 0) {
                return;
            }
        }
    }

    /// The next whole message among the buffered frames, answering control
    /// frames on the way.
    fn decode(&mut self) -> Result<Option<Incoming>, TransportError> {
        let max_message = HEADER_LEN + self.link.codec().max_body();
        loop {
            let so_far = self.partial.as_ref().map_or(0, |partial| partial.len());
            let frame = match frames::decode(&mut self.buf, max_message - so_far) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(Violation::TooLong(len)) => {
                    let message = so_far as u64 + len;
                    return Err(TransportError::Protocol(ProtocolError::BodyTooLarge {
                        len: message.saturating_sub(HEADER_LEN as u64),
                        max: self.link.codec().max_body(),
                    }));
                }
                Err(Violation::Protocol(why)) => return Err(TransportError::WebSocketProtocol(why.into())),
            };
            match frame {
                WsFrame::Data { kind, fin, payload } => {
                    let message = match (kind, self.partial.take()) {
                        (DataKind::Text, None) => return Err(TransportError::TextMessage),
                        (DataKind::Binary, None) => payload,
                        (DataKind::Continuation, Some(mut partial)) => {
                            partial.unsplit(payload);
                            *partial
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
                        self.partial = Some(Box::new(message));
                        continue;
                    }
                    let frame = self.link.codec().decode_message(message.freeze())?;
                    return Ok(Some(Incoming::Frame(frame)));
                }
                WsFrame::Ping(payload) => {
                    self.link.owed().pong(frames::pong(&payload));
                    return Ok(Some(Incoming::ControlReply));
                }
                WsFrame::Pong => {}
                WsFrame::Close(reply) => {
                    self.link.owed().close_echo(reply);
                    return Ok(Some(Incoming::Closed));
                }
            }
        }
    }
}

/// Writes frames to a WebSocket.
pub struct WsFrameWriter {
    link: WriteLink,
}

impl fmt::Debug for WsFrameWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsFrameWriter").finish_non_exhaustive()
    }
}

impl WsFrameWriter {
    pub(crate) fn new(link: WriteLink) -> WsFrameWriter {
        WsFrameWriter { link }
    }

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
        self.link.write_all(&batch).await?;
        Ok(())
    }

    /// The owed pong and `frames`, in one buffer; `None` when there is
    /// nothing to write. (Apart from the write, so that the write's future
    /// carries none of this.)
    fn batch(&self, frames: &[Frame]) -> Result<Option<BytesMut>, TransportError> {
        let pong = self.link.owed().take_pong();
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
        let frame = match self.link.owed().take_close_echo() {
            Some(echo) => echo,
            None => frames::close(Some((code, reason))),
        };
        self.link.write_all(&frame).await?;
        Ok(())
    }
}
