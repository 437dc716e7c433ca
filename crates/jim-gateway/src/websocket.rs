//! The WebSocket listener: admission, the upgrade, and its sessions.
//!
//! A plaintext connection's request head is read here: the common case, a
//! well-formed upgrade of the WebSocket path, is answered without the HTTP
//! server (whose 8 KiB buffers each way would leave holes in the heap:
//! a few hundred bytes per idle connection). Any other request, and every
//! connection over TLS, is served by axum as before.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use jim_router::Router;
use jim_service::Acceptor;
use jim_transport::{Connection, ws};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::addresses::{AddressSlot, Refusal};
use crate::listen::{ConnectionSlot, HttpServing, REFUSAL_WRITE, Slot};
use crate::state::Shared;
use crate::{Config, session};

pub(crate) async fn accept_ws<R: Router>(
    shared: Arc<Shared<R>>,
    mut acceptor: Acceptor,
    serving: HttpServing,
) {
    while let Some((stream, peer)) = acceptor.next(&shared.shutdown).await {
        // Chat wants latency: no Nagle delay on WebSocket connections either.
        let _ = stream.set_nodelay(true);
        // Behind a trusted proxy, the client's address is known at its
        // first request.
        let trusted = shared.addresses.is_trusted(peer.ip());
        let admitted = match shared.slot() {
            None => Err(Refusal::MaxConnections),
            Some(permit) if trusted => Ok((permit, None)),
            Some(permit) => shared.addresses.admit(peer.ip()).map(|address| (permit, address)),
        };
        match admitted {
            Ok((permit, address)) if serving.tls.is_none() => {
                let (shared_too, serving) = (Arc::clone(&shared), serving.clone());
                shared.tasks.spawn(upgrade_here(
                    shared_too,
                    serving,
                    stream,
                    peer,
                    (permit, address),
                    trusted,
                ));
            }
            Ok((permit, address)) => {
                let (serving, shutdown) = (serving.clone(), shared.shutdown.clone());
                // Shared by the HTTP connection and, once upgraded, the session.
                let slot = ConnectionSlot::new(permit, address);
                shared
                    .tasks
                    .spawn(serving.serve(stream, peer, Some(slot), shutdown));
            }
            Err(refusal) => {
                shared.tasks.spawn(serving.clone().refuse(stream, peer, refusal));
            }
        }
    }
}

/// Reads a plaintext connection's request head and answers it if it is a
/// well-formed upgrade of the WebSocket path: the session then starts on a
/// task of its own. Anything else goes to the HTTP server.
pub(crate) async fn upgrade_here<R: Router>(
    shared: Arc<Shared<R>>,
    serving: HttpServing,
    mut stream: TcpStream,
    peer: SocketAddr,
    (permit, address): (OwnedSemaphorePermit, Option<AddressSlot>),
    trusted: bool,
) {
    let mut read = BytesMut::with_capacity(1024);
    let head = tokio::select! {
        head = tokio::time::timeout(serving.header_timeout, ws::read_head(&mut stream, &mut read)) => head,
        () = shared.shutdown.cancelled() => return,
    };
    let len = match head {
        // A head late, cut or failed: closed, as the HTTP server does.
        Err(_) | Ok(Err(_) | Ok(ws::Head::Closed)) => return,
        Ok(Ok(ws::Head::Complete { len })) => len,
        Ok(Ok(ws::Head::Other)) => 0,
    };
    let upgrade = ws::upgrade_request(&read[..len], &shared.config.listen.ws_path).filter(|upgrade| {
        upgrade
            .origin
            .is_none_or(|origin| origin_allowed(&shared.config, origin))
    });
    let Some(upgrade) = upgrade else {
        // As before: the HTTP server answers, from the first byte. Boxed,
        // as the refusal: every upgrade's task would otherwise be as large
        // as an HTTP connection's state, and leave as large a hole.
        let slot = ConnectionSlot::new(permit, address);
        let stream = ws::Replay::new(read.freeze(), stream);
        Box::pin(serving.serve_replaying(stream, peer, Some(slot), shared.shutdown.clone())).await;
        return;
    };
    let (client, address) = if trusted {
        let client = shared.addresses.forwarded_for(peer, upgrade.forwarded_for);
        match shared.addresses.admit(client.ip()) {
            Ok(address) => (client, address),
            Err(refusal) => {
                Box::pin(serving.refuse(stream, peer, refusal)).await;
                return;
            }
        }
    } else {
        (peer, address)
    };
    let accept_key = upgrade.accept_key;
    let read_ahead = read.split_off(len);
    drop(read);
    let max_body = shared.config.limits.max_body;
    let accepted = tokio::time::timeout(
        REFUSAL_WRITE,
        ws::accept(stream, &accept_key, read_ahead, client, max_body),
    );
    if let Ok(Ok(connection)) = accepted.await {
        session::serve(Arc::clone(&shared), connection, (permit, address));
    }
}

/// Whether a browser page from `origin` may open sessions.
fn origin_allowed(config: &Config, origin: &str) -> bool {
    let allowed = &config.listen.allowed_origins;
    allowed.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        || (allowed.is_empty() && config.auth.dev)
}

/// Takes the connections axum upgraded: those over TLS, and requests the
/// gateway did not answer itself.
pub(crate) struct WsAcceptor<R>(pub(crate) Arc<Shared<R>>);

impl<R> Clone for WsAcceptor<R> {
    fn clone(&self) -> Self {
        WsAcceptor(Arc::clone(&self.0))
    }
}

impl<R: Router> ws::Accept for WsAcceptor<R> {
    type Admission = Slot;

    fn allows_origin(&self, origin: &str) -> bool {
        if origin_allowed(&self.0.config, origin) {
            return true;
        }
        tracing::warn!(
            origin,
            "WebSocket upgrade refused: a page from this origin may not open sessions (listen.allowed_origins)"
        );
        false
    }

    async fn accept(&self, connection: Connection, slot: Option<Slot>) {
        // A task of its own, like a TCP session's, rather than the
        // upgrade's task, whose future would carry the upgrade's state for
        // the connection's life.
        let shared = Arc::clone(&self.0);
        let Some(slot) = slot.or_else(|| shared.slot().map(|permit| ConnectionSlot::new(permit, None)))
        else {
            return;
        };
        session::serve(Arc::clone(&shared), connection, slot);
    }
}
