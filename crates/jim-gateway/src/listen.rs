//! Serving HTTP (WebSocket upgrades, the admin API) with a bounded time to
//! send a request. (Accepting is `jim_service::Acceptor`.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// A place under the connection limit, held for a connection's life: from
/// the TCP accept, through a WebSocket upgrade, to the session's end.
pub(crate) type Slot = Arc<OwnedSemaphorePermit>;

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
