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
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::addresses::{AddressSlot, Addresses, Refusal};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// Behind a trusted proxy, the connection's place under its client's
/// address limits, taken at its first request.
fn admit_forwarded(addresses: &Arc<Addresses>, slot: &Slot, client: SocketAddr) -> Result<(), Refusal> {
    let mut address = slot
        .address
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if address.is_none() {
        *address = addresses.admit(client.ip())?;
    }
    Ok(())
}

/// A refused connection is told why within this (handshake included), or
/// dropped.
pub(crate) const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// A connection's places under the limits, held for its life: from the
/// TCP accept, through a WebSocket upgrade, to the session's end.
pub(crate) type Slot = Arc<ConnectionSlot>;

/// Under the connection limit, and under its address's limits.
pub(crate) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    /// Taken at accept; behind a trusted proxy, at the first request (its
    /// `X-Forwarded-For` names the client).
    address: std::sync::Mutex<Option<AddressSlot>>,
}

impl ConnectionSlot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, address: Option<AddressSlot>) -> Slot {
        Arc::new(ConnectionSlot {
            _permit: permit,
            address: std::sync::Mutex::new(address),
        })
    }
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
    /// The listener's TLS, if it is encrypted.
    pub(crate) tls: Option<Arc<Handshake>>,
    /// Where clients' addresses are judged (the WebSocket listener): their
    /// limits, and the proxies whose `X-Forwarded-For` is believed.
    pub(crate) addresses: Option<Arc<Addresses>>,
}

/// A listener's TLS handshake: its acceptor, and how long a client gets.
#[derive(Clone)]
pub(crate) struct Handshake {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) timeout: Duration,
    pub(crate) failures: metrics::Counter,
}

impl Handshake {
    /// The encrypted stream, or `None` (counted, logged at debug) when the
    /// client failed the handshake or took too long.
    pub(crate) async fn accept(&self, stream: TcpStream, peer: SocketAddr) -> Option<TlsStream<TcpStream>> {
        let _ = stream.set_nodelay(true);
        let failed = match tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        self.failures.increment(1);
        tracing::debug!(%peer, error = failed, "TLS handshake failed");
        None
    }
}

impl HttpServing {
    /// The same, over TLS when `tls` is given.
    pub(crate) fn encrypted(mut self, tls: Option<Handshake>) -> HttpServing {
        self.tls = tls.map(Arc::new);
        self
    }

    /// Serves one accepted connection (its TLS handshake first, if the
    /// listener is encrypted) until it closes, is upgraded, or the gateway
    /// shuts down. `slot`, when given, is put in each request's extensions
    /// (a WebSocket upgrade takes it into the session).
    pub(crate) async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Option<Slot>,
        shutdown: CancellationToken,
    ) {
        match self.tls.clone() {
            None => self.serve_on(stream, peer, slot, shutdown).await,
            // Boxed: a plaintext connection's task does not carry the
            // (larger) state of one over TLS.
            Some(tls) => {
                Box::pin(async move {
                    if let Some(stream) = tls.accept(stream, peer).await {
                        self.serve_on(stream, peer, slot, shutdown).await;
                    }
                })
                .await;
            }
        }
    }

    /// Serves a plaintext connection whose first bytes were read already
    /// (they are given back first), as [`serve`](Self::serve) does.
    pub(crate) async fn serve_replaying(
        self,
        stream: jim_transport::ws::Replay<TcpStream>,
        peer: SocketAddr,
        slot: Option<Slot>,
        shutdown: CancellationToken,
    ) {
        self.serve_on(stream, peer, slot, shutdown).await;
    }

    /// Judges clients' addresses (see [`HttpServing::addresses`]).
    pub(crate) fn judging(mut self, addresses: Arc<Addresses>) -> HttpServing {
        self.addresses = Some(addresses);
        self
    }

    /// Tells a connection over a limit to come back later: 503 at the
    /// connection limit, 429 at its address's.
    pub(crate) async fn refuse(self, stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
        let status = match refusal {
            Refusal::MaxConnections => "503 Service Unavailable",
            Refusal::AddressConnections | Refusal::AddressRate => "429 Too Many Requests",
        };
        let body = format!("{}\n", refusal.reason());
        let refusal = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_WRITE, async {
            match &self.tls {
                None => {
                    let mut stream = stream;
                    let _ = stream.write_all(refusal.as_bytes()).await;
                }
                Some(tls) => {
                    if let Some(mut stream) = tls.accept(stream, peer).await {
                        let _ = stream.write_all(refusal.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                }
            }
        })
        .await;
    }

    async fn serve_on<S>(self, stream: S, peer: SocketAddr, slot: Option<Slot>, shutdown: CancellationToken)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (app, addresses) = (self.app, self.addresses.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let client = match &addresses {
                Some(addresses) => {
                    let forwarded = request
                        .headers()
                        .get("x-forwarded-for")
                        .and_then(|v| v.to_str().ok());
                    addresses.forwarded_for(peer, forwarded)
                }
                None => peer,
            };
            let refused = match (&addresses, &slot) {
                (Some(addresses), Some(slot)) if addresses.is_trusted(peer.ip()) => {
                    admit_forwarded(addresses, slot, client).err()
                }
                _ => None,
            };
            request.extensions_mut().insert(ConnectInfo(client));
            if let Some(slot) = &slot {
                request.extensions_mut().insert(Arc::clone(slot));
            }
            // A router is always ready: no `poll_ready` needed.
            let mut app = app.clone();
            async move {
                if let Some(refusal) = refused {
                    let response = axum::response::Response::builder()
                        .status(axum::http::StatusCode::TOO_MANY_REQUESTS)
                        .header("retry-after", "5")
                        .body(axum::body::Body::from(format!("{}\n", refusal.reason())))
                        .unwrap_or_default();
                    return Ok::<_, Infallible>(response);
                }
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
