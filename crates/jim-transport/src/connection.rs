//! One connection type for every transport.

use std::net::SocketAddr;

use jim_protocol::{Frame, Transport};

use crate::TransportError;

/// What a connection's reader yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A `jim1` frame.
    Frame(Frame),
    /// The WebSocket layer answered a ping of the client's by itself: its
    /// pong waits in the writer. Flush the writer soon; a client that does
    /// not read its pongs is a slow consumer like any other.
    ControlReply,
    /// The client closed the connection cleanly, between frames.
    Closed,
}

/// An accepted connection: its two halves and where it comes from.
#[derive(Debug)]
pub struct Connection {
    /// Yields the client's frames.
    pub reader: FrameReader,
    /// Writes frames to the client.
    pub writer: FrameWriter,
    /// The client's address.
    pub peer: SocketAddr,
    /// The transport.
    pub kind: Transport,
}

/// The reading half of a connection.
#[derive(Debug)]
pub enum FrameReader {
    /// TCP.
    #[cfg(feature = "tcp")]
    Tcp(crate::tcp::TcpFrameReader),
    /// TCP with TLS.
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsFrameReader),
    /// WebSocket.
    #[cfg(feature = "ws")]
    Ws(crate::ws::WsFrameReader),
}

impl FrameReader {
    /// What the client sent next: a frame, a WebSocket control frame that
    /// was answered, or the end of the connection.
    ///
    /// # Errors
    /// Every error is final for the connection. Protocol violations
    /// ([`TransportError::is_protocol_violation`]) deserve an `A999`.
    pub async fn read(&mut self) -> Result<Incoming, TransportError> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// [`read`](Self::read) as a poll.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Incoming, TransportError>> {
        match self {
            #[cfg(feature = "tcp")]
            FrameReader::Tcp(reader) => reader.poll_read(cx),
            #[cfg(feature = "tls")]
            FrameReader::Tls(reader) => reader.poll_read(cx),
            #[cfg(feature = "ws")]
            FrameReader::Ws(reader) => reader.poll_read(cx),
        }
    }

    /// What the client sent next if it is already buffered, without
    /// waiting for the network (so a session can answer a whole batch of
    /// frames with one write); `None` when nothing is.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn try_read(&mut self) -> Result<Option<Incoming>, TransportError> {
        match self {
            #[cfg(feature = "tcp")]
            FrameReader::Tcp(reader) => reader.try_read(),
            #[cfg(feature = "tls")]
            FrameReader::Tls(reader) => reader.try_read(),
            #[cfg(feature = "ws")]
            FrameReader::Ws(reader) => reader.try_read(),
        }
    }
}

/// The writing half of a connection.
#[derive(Debug)]
pub enum FrameWriter {
    /// TCP.
    #[cfg(feature = "tcp")]
    Tcp(crate::tcp::TcpFrameWriter),
    /// TCP with TLS.
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsFrameWriter),
    /// WebSocket.
    #[cfg(feature = "ws")]
    Ws(crate::ws::WsFrameWriter),
}

impl FrameWriter {
    /// Writes frames, as few system calls as the transport allows (one for
    /// TCP), and flushes: also what the transport queued by itself (a
    /// WebSocket pong), even when `frames` is empty.
    ///
    /// # Errors
    /// The link failed; the connection is gone.
    pub async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), TransportError> {
        match self {
            #[cfg(feature = "tcp")]
            FrameWriter::Tcp(writer) => writer.write_frames(frames).await,
            #[cfg(feature = "tls")]
            FrameWriter::Tls(writer) => writer.write_frames(frames).await,
            #[cfg(feature = "ws")]
            FrameWriter::Ws(writer) => writer.write_frames(frames).await,
        }
    }

    /// Ends the connection: a WebSocket close with `code` and `reason`, or
    /// a TCP shutdown (the `A999` before it is the caller's to write).
    ///
    /// # Errors
    /// The link failed; the connection is gone anyway.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        match self {
            #[cfg(feature = "tcp")]
            FrameWriter::Tcp(writer) => {
                let _ = (code, reason);
                writer.shutdown().await
            }
            #[cfg(feature = "tls")]
            FrameWriter::Tls(writer) => {
                let _ = (code, reason);
                writer.shutdown().await
            }
            #[cfg(feature = "ws")]
            FrameWriter::Ws(writer) => writer.close(code, reason).await,
        }
    }
}

impl FrameReader {
    /// Reads and throws away whatever the client still sends, until it
    /// closes. Used briefly after a fatal error, so that closing with unread
    /// input does not reset the connection before the client read our
    /// goodbye. Bound it with a timeout.
    pub async fn discard(&mut self) {
        match self {
            #[cfg(feature = "tcp")]
            FrameReader::Tcp(reader) => reader.discard().await,
            #[cfg(feature = "tls")]
            FrameReader::Tls(reader) => reader.discard().await,
            #[cfg(feature = "ws")]
            FrameReader::Ws(reader) => reader.discard().await,
        }
    }
}
