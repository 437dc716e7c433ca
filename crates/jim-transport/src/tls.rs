//! `jim1` frames on a TLS stream (TCP with TLS): the same framing as
//! [`tcp`](crate::tcp), through rustls.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use jim_protocol::{Frame, FrameCodec};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::{Connection, Incoming, Link, TransportError};

/// Turns a TLS stream (its handshake done) into a [`Connection`] that
/// refuses bodies above `max_body`.
pub fn connection(stream: TlsStream<TcpStream>, peer: SocketAddr, max_body: usize) -> Connection {
    let _ = stream.get_ref().0.set_nodelay(true);
    Connection {
        link: Link::Tls(TlsLink {
            stream: Box::new(stream),
            buf: BytesMut::new(),
            codec: FrameCodec::with_max_body(max_body),
        }),
        peer,
        kind: jim_protocol::Transport::Tcp,
    }
}

/// Frames on a TLS stream.
#[derive(Debug)]
pub struct TlsLink {
    /// Boxed: the TLS state is large, and a link is as large as its
    /// largest kind.
    stream: Box<TlsStream<TcpStream>>,
    buf: BytesMut,
    codec: FrameCodec,
}

impl TlsLink {
    /// The next frame, or [`Incoming::Closed`] at a clean end of stream;
    /// as a poll.
    ///
    /// # Errors
    /// A fatal protocol error, a stream cut mid-frame, TLS or I/O.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, TransportError>> {
        loop {
            if let Some(frame) = self.codec.decode_from(&mut self.buf)? {
                return Poll::Ready(Ok(Incoming::Frame(frame)));
            }
            let n = ready!(crate::fill::stream(
                Pin::new(&mut *self.stream),
                cx,
                &mut self.buf
            ))?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Poll::Ready(Ok(Incoming::Closed));
                }
                return Poll::Ready(Err(TransportError::Truncated {
                    buffered: self.buf.len(),
                }));
            }
        }
    }

    /// The next frame if the buffer already holds it.
    ///
    /// # Errors
    /// A fatal protocol error.
    pub fn try_read(&mut self) -> Result<Option<Incoming>, TransportError> {
        Ok(self.codec.decode_from(&mut self.buf)?.map(Incoming::Frame))
    }

    /// Reads and drops input until end of stream or an error.
    pub async fn discard(&mut self) {
        self.buf = BytesMut::new();
        let mut scratch = vec![0u8; 4096];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut *self.stream, &mut scratch).await {
            if n == 0 {
                return;
            }
        }
    }

    /// Writes every frame as one buffer, and flushes (one TLS record
    /// batch, one system call when it fits).
    ///
    /// # Errors
    /// I/O or TLS, or a frame above the maximum body (a bug of the caller).
    pub async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), TransportError> {
        if frames.is_empty() {
            return Ok(());
        }
        let buf = crate::tcp::encode_batch(&mut self.codec, frames)?;
        self.stream.write_all(&buf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends TLS's close_notify and shuts the write side down.
    ///
    /// # Errors
    /// I/O.
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}
