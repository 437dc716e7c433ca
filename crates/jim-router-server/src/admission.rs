//! Which connections the gRPC listener serves. A client may hold one only
//! by speaking HTTP/2: the preface within the handshake timeout (hyper
//! waits for it forever), answers to keep-alive pings after that (tonic's
//! keep-alive), and at most `max_connections` at once; the listener stops
//! the moment the router does, so that its port is free.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use jim_service::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`: what an HTTP/2 client sends first.
const PREFACE_LEN: usize = 24;

/// The gRPC listener's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once; more are closed at accept.
    pub(crate) max_connections: usize,
    /// How long a new connection has to send the HTTP/2 preface.
    pub(crate) handshake_timeout: Duration,
}

/// The connections to serve, until `stop`; over TLS first when `tls` is
/// given (the handshake within the handshake timeout too).
pub(crate) fn admitted(
    listener: TcpListener,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) -> ReceiverStream<io::Result<Admitted>> {
    let (connections, admitted) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut acceptor = Acceptor::new(listener, "grpc");
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut full = false;
        while let Some((stream, peer)) = acceptor.next(&stop).await {
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                if !full {
                    full = true;
                    tracing::warn!(
                        %peer,
                        max_connections = limits.max_connections,
                        "at max_connections: new gRPC connections are closed until some end"
                    );
                }
                continue;
            };
            if full {
                full = false;
                tracing::info!("under max_connections again");
            }
            // Deliveries are small frames that should leave at once.
            let _ = stream.set_nodelay(true);
            let admitted = move |stream| Admitted {
                stream,
                handshake: Some(Box::pin(tokio::time::sleep(limits.handshake_timeout))),
                received: 0,
                _slot: slot,
            };
            match &tls {
                None => {
                    if connections.send(Ok(admitted(Link::Plain(stream)))).await.is_err() {
                        break;
                    }
                }
                Some(tls) => {
                    let (tls, connections) = (tls.clone(), connections.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(limits.handshake_timeout, tls.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let _ = connections.send(Ok(admitted(Link::Tls(Box::new(stream))))).await;
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            }
        }
        // Dropping the acceptor here closes the listener: the port is free.
    });
    ReceiverStream::new(admitted)
}

/// A connection holding a slot under `max_connections`, with a deadline
/// for its HTTP/2 preface.
pub(crate) struct Admitted {
    stream: Link,
    /// Until the preface is in: when it must be.
    handshake: Option<Pin<Box<Sleep>>>,
    received: usize,
    _slot: OwnedSemaphorePermit,
}

/// A gateway's connection: plain, or TLS over TCP.
pub(crate) enum Link {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Link {
    fn io(&mut self) -> Pin<&mut dyn AsyncReadWrite> {
        match self {
            Link::Plain(stream) => Pin::new(stream),
            Link::Tls(stream) => Pin::new(&mut **stream),
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Link::Plain(stream) => stream,
            Link::Tls(stream) => stream.get_ref().0,
        }
    }
}

/// What a link is read and written through.
trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for S {}

impl AsyncRead for Admitted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = &mut this.handshake
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        let polled = this.stream.io().poll_read(cx, buf);
        if this.handshake.is_some() && matches!(polled, Poll::Ready(Ok(()))) {
            this.received += buf.filled().len() - before;
            if this.received >= PREFACE_LEN {
                this.handshake = None;
            }
        }
        polled
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().stream.io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream.io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Link::Plain(stream) => stream.is_write_vectored(),
            Link::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream.io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream.io().poll_shutdown(cx)
    }
}

impl Connected for Admitted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.tcp().connect_info()
    }
}
