//! One `jim1` frame per binary WebSocket message, behind an HTTP upgrade.
//!
//! The common upgrade request is read and answered straight off the TCP
//! socket ([`read_head`], [`upgrade_request`], [`accept`]); axum routes and
//! answers any other request (and the upgrades over TLS). Either way,
//! frames are read straight off the TCP socket with
//! the same read buffer as [`tcp`](crate::tcp) (none while the client is
//! quiet) and written with one write per batch: a WebSocket connection
//! costs about what a TCP one does. Other streams (TLS) run through
//! hyper's upgraded stream.
//!
//! Serve the router returned by [`route`] with
//! `into_make_service_with_connect_info::<SocketAddr>()` and upgrades
//! enabled, so that each connection knows its peer address.

mod frames;
mod handshake;
mod link;

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use self::handshake::{Head, MAX_HEAD, Replay, Upgrade, accept, read_head, upgrade_request};
use self::link::Io;
pub use self::link::WsLink;
use crate::{Connection, Link};

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
    /// and returns. The second is lighter for long connections: the
    /// upgrade's task, which runs this future, then ends.
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
/// connection writes is bounded too: the batch it is given and one pong;
/// pongs the client does not read are replaced, not queued.
pub fn route<A: Accept>(path: &str, max_body: usize, acceptor: A) -> axum::Router {
    axum::Router::new()
        .route(path, get(upgrade::<A>))
        .with_state(WsState { acceptor, max_body })
}

async fn upgrade<A: Accept>(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<WsState<A>>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| state.acceptor.allows_origin(origin));
        if !allowed {
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    let key = match handshake_key(headers) {
        Ok(key) => key,
        Err(refusal) => return (StatusCode::BAD_REQUEST, refusal).into_response(),
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket request couldn't be upgraded since no upgrade state was present",
        )
            .into_response();
    };
    let admission = request.extensions().get::<A::Admission>().cloned();
    // The response goes out first; the connection is ours once hyper has
    // written it.
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let connection = connection(upgraded, peer, state.max_body);
            state.acceptor.accept(connection, admission).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, key)
        .body(Body::empty())
        .unwrap_or_default()
}

/// The `Sec-WebSocket-Accept` answering a well-formed upgrade request
/// (RFC 6455 4.2.1), or why the request is not one.
fn handshake_key(headers: &HeaderMap) -> Result<String, &'static str> {
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err("Connection header did not include 'upgrade'");
    }
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err("`Upgrade` header did not include 'websocket'");
    }
    if !header_has_token(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err("`Sec-WebSocket-Version` header did not include '13'");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("`Sec-WebSocket-Key` header missing")?;
    Ok(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// Whether a comma-separated header lists `token` (in any case).
fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    lists_token(
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok()),
        token,
    )
}

/// Whether one of a header's comma-separated `values` is `token` (in any case).
fn lists_token<'a>(values: impl IntoIterator<Item = &'a str>, token: &str) -> bool {
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Turns an upgraded HTTP connection into a [`Connection`] that refuses
/// bodies above `max_body`.
///
/// On plain TCP (whose head may have been read first: [`Replay`]), frames
/// are read straight off the socket (hyper's upgraded stream is set aside,
/// with what it had read ahead); any other stream is read through it.
pub fn connection(upgraded: Upgraded, peer: SocketAddr, max_body: usize) -> Connection {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            return on_tcp(
                parts.io.into_inner(),
                peer,
                max_body,
                BytesMut::from(parts.read_buf),
            );
        }
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<Replay<TcpStream>>>() {
        Ok(parts) => {
            let (unread, stream) = parts.io.into_inner().into_parts();
            let mut read_ahead = BytesMut::from(parts.read_buf);
            read_ahead.extend_from_slice(&unread);
            on_tcp(stream, peer, max_body, read_ahead)
        }
        Err(upgraded) => ws_connection(
            Io::Stream(Box::new(TokioIo::new(upgraded))),
            peer,
            max_body,
            BytesMut::new(),
        ),
    }
}

/// A WebSocket connection on a TCP socket, whose client sent `read_ahead`
/// after its upgrade request.
fn on_tcp(stream: TcpStream, peer: SocketAddr, max_body: usize, read_ahead: BytesMut) -> Connection {
    ws_connection(Io::Tcp(stream), peer, max_body, read_ahead)
}

fn ws_connection(io: Io, peer: SocketAddr, max_body: usize, read_ahead: BytesMut) -> Connection {
    Connection {
        link: Link::Ws(WsLink::new(io, max_body, read_ahead)),
        peer,
        kind: jim_protocol::Transport::WebSocket,
    }
}
