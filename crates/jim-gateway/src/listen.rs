//! Accepting connections: riding out a lack of file descriptors, and
//! serving HTTP (WebSocket upgrades, the admin API) with a bounded time to
//! send a request.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// A place under the connection limit, held for a connection's life: from
/// the TCP accept, through a WebSocket upgrade, to the session's end.
pub(crate) type Slot = Arc<OwnedSemaphorePermit>;

/// Pause after an accept that failed for want of file descriptors.
const STARVED_PAUSE: Duration = Duration::from_millis(100);

/// One listener's accept loop.
pub(crate) struct Acceptor {
    listener: TcpListener,
    name: &'static str,
    /// Accepting fails for want of file descriptors (logged once per episode).
    starved: bool,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            name,
            starved: false,
        }
    }

    /// The next connection, or `None` once `shutdown` is cancelled (the
    /// listener is then dropped by the caller: the port is free at once).
    ///
    /// Out of file descriptors, the kernel keeps the connection in its
    /// backlog: this says so once, pauses, and tries again, instead of
    /// spinning and logging every attempt.
    pub(crate) async fn next(&mut self, shutdown: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return None,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok(accepted) => {
                    if self.starved {
                        self.starved = false;
                        tracing::info!(listener = self.name, "accepting connections again");
                    }
                    return Some(accepted);
                }
                Err(error) if out_of_descriptors(&error) => {
                    if !self.starved {
                        self.starved = true;
                        tracing::warn!(
                            listener = self.name,
                            error = %error,
                            "out of file descriptors: new connections wait until some close \
                             (raise the open-file limit, `ulimit -n`, or lower limits.max_connections)"
                        );
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(STARVED_PAUSE) => {}
                    }
                }
                // The client gave up before we took it (ECONNABORTED and the like).
                Err(error) => tracing::debug!(listener = self.name, error = %error, "accept failed"),
            }
        }
    }
}

fn out_of_descriptors(error: &io::Error) -> bool {
    // EMFILE (the process's limit) and ENFILE (the system's).
    matches!(error.raw_os_error(), Some(24 | 23))
}

/// How one HTTP connection is served.
#[derive(Clone)]
pub(crate) struct HttpServing {
    /// The routes.
    pub(crate) app: axum::Router,
    /// How long a client may take to send a request's head (from the
    /// connection, or from the end of its previous request).
    pub(crate) header_timeout: Duration,
    /// How long connections get to finish their request at shutdown.
    pub(crate) grace: Duration,
}

impl HttpServing {
    /// Serves one accepted connection until it closes, is upgraded, or the
    /// gateway shuts down. `slot`, when given, is put in each request's
    /// extensions (a WebSocket upgrade takes it into the session).
    pub(crate) async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Option<Slot>,
        shutdown: CancellationToken,
    ) {
        let app = self.app;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            if let Some(slot) = &slot {
                request.extensions_mut().insert(Arc::clone(slot));
            }
            // A router is always ready: no `poll_ready` needed.
            let mut app = app.clone();
            async move {
                let response = app.call(request.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            () = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(self.grace, connection).await;
            }
        }
    }
}
