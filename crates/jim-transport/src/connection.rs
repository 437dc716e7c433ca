//! One connection type for every transport.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use jim_protocol::{Frame, Transport};

use crate::TransportError;

/// What a connection's reader yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A `jim1` frame.
    Frame(Frame),
    /// The WebSocket layer answered a ping of the client's by itself: its
    /// pong waits in the link. Write soon (an empty batch will do); a
    /// client that does not read its pongs is a slow consumer like any
    /// other.
    ControlReply,
    /// The client closed the connection cleanly, between frames.
    Closed,
}

/// An accepted connection: its link and where it comes from.
#[derive(Debug)]
pub struct Connection {
    /// Reads the client's frames and writes frames to it.
    pub link: Link,
    /// The client's address.
    pub peer: SocketAddr,
    /// The transport.
    pub kind: Transport,
}

/// A connection's socket, read and written by one owner.
///
/// Not split into halves: a session reads and writes in turn, never at
/// once, and halves would share the socket through one more allocation in
/// every connection.
#[derive(Debug)]
pub enum Link {
    /// TCP.
    #[cfg(feature = "tcp")]
    Tcp(crate::tcp::TcpLink),
    /// TCP with TLS.
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsLink),
    /// WebSocket.
    #[cfg(feature = "ws")]
    Ws(crate::ws::WsLink),
}

impl Link {
    /// What the client sent next: a frame, a WebSocket control frame that
    /// was answered, or the end of the connection.
    ///
    /// # Errors
    /// Every error is final for the connection. Protocol violations
    /// ([`TransportError::is_protocol_violation`]) deserve an `A999`.
    pub async fn read(&mut self) -> Result<Incoming, TransportError> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// [`read`](Self::read) as a poll: a session waiting for its client
    /// holds no future of the read's own.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, TransportError>> {
        match self {
            #[cfg(feature = "tcp")]
            Link::Tcp(link) => link.poll_read(cx),
            #[cfg(feature = "tls")]
            Link::Tls(link) => link.poll_read(cx),
            #[cfg(feature = "ws")]
            Link::Ws(link) => link.poll_read(cx),
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
            Link::Tcp(link) => link.try_read(),
            #[cfg(feature = "tls")]
            Link::Tls(link) => link.try_read(),
            #[cfg(feature = "ws")]
            Link::Ws(link) => link.try_read(),
        }
    }

    /// Writes frames, as few system calls as the transport allows (one for
    /// TCP), and flushes: also what the transport queued by itself (a
    /// WebSocket pong), even when `frames` is empty.
    ///
    /// # Errors
    /// The link failed; the connection is gone.
    pub async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), TransportError> {
        match self {
            #[cfg(feature = "tcp")]
            Link::Tcp(link) => link.write_frames(frames).await,
            #[cfg(feature = "tls")]
            Link::Tls(link) => link.write_frames(frames).await,
            #[cfg(feature = "ws")]
            Link::Ws(link) => link.write_frames(frames).await,
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
            Link::Tcp(link) => {
                let _ = (code, reason);
                link.shutdown().await
            }
            #[cfg(feature = "tls")]
            Link::Tls(link) => {
                let _ = (code, reason);
                link.shutdown().await
            }
            #[cfg(feature = "ws")]
            Link::Ws(link) => link.close(code, reason).await,
        }
    }

    /// Reads and throws away whatever the client still sends, until it
    /// closes. Used briefly after a fatal error, so that closing with unread
    /// input does not reset the connection before the client read our
    /// goodbye. Bound it with a timeout.
    pub async fn discard(&mut self) {
        match self {
            #[cfg(feature = "tcp")]
            Link::Tcp(link) => link.discard().await,
            #[cfg(feature = "tls")]
            Link::Tls(link) => link.discard().await,
            #[cfg(feature = "ws")]
            Link::Ws(link) => link.discard().await,
        }
    }
}
