//! Listeners, connection admission and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jim_model::{CloseCode, MessageIdGenerator, Status};
use jim_protocol::{Command, Frame};
use jim_router::Router;
use jim_service::Acceptor;
use jim_transport::{Connection, tcp, ws};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::StopSignals;
use crate::addresses::{AddressSlot, Refusal};
use crate::auth::Authenticator;
use crate::listen::{Handshake, HttpServing, REFUSAL_WRITE};
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::{Config, GatewayError, admin, session};

/// A gateway, configured and ready to start.
///
/// ```no_run
/// use jim_gateway::{Config, Gateway};
/// use jim_router::LocalRouter;
///
/// # async fn example() -> Result<(), jim_gateway::GatewayError> {
/// let router = LocalRouter::new(); // keep a clone to push, manage groups, observe
/// let gateway = Gateway::new(Config::ephemeral_dev(), router.clone())?.start().await?;
/// println!("TCP clients connect to {}", gateway.tcp_addr().unwrap());
/// gateway.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Gateway<R> {
    shared: Arc<Shared<R>>,
}

impl<R> std::fmt::Debug for Gateway<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<R: Router + Clone> Gateway<R> {
    /// Checks the configuration and prepares the gateway around `router`.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for an invalid configuration.
    pub fn new(config: Config, router: R) -> Result<Gateway<R>, GatewayError> {
        Gateway::with_metrics(config, router, Metrics::new())
    }

    /// As [`new`](Self::new), counting into `metrics` (which the router's
    /// inbox may already count into: [`Metrics::inbox`]).
    ///
    /// # Errors
    /// [`GatewayError::Config`] for an invalid configuration.
    pub fn with_metrics(config: Config, router: R, metrics: Metrics) -> Result<Gateway<R>, GatewayError> {
        config.validate()?;
        let auth = Authenticator::counted(&config.auth, metrics.jwks_reads.clone())?;
        let tls = match config.tls.files() {
            Some(files) => Some(Arc::new(
                jim_service::tls::ServerTls::load(&files).map_err(|e| GatewayError::Config(e.to_string()))?,
            )),
            None => None,
        };
        let clock = crate::clock::Clock::new();
        let addresses = Arc::new(crate::addresses::Addresses::new(
            &config,
            metrics.connections_refused.clone(),
            clock,
        ));
        let ids = MessageIdGenerator::new(config.node_id).map_err(|e| GatewayError::Config(e.to_string()))?;
        let fanout = crate::fanout::Fanout::new(&config.limits);
        let verdicts = crate::verdicts::Verdicts::new(Duration::from_secs(config.inbox.dedupe_window_secs));
        Ok(Gateway {
            shared: Arc::new(Shared {
                connection_slots: Arc::new(Semaphore::new(config.limits.max_connections)),
                alarms: crate::alarms::Alarms::new(&config.session, clock),
                clock,
                config,
                router,
                auth,
                addresses,
                tls,
                ids,
                fanout,
                typing: crate::typing::TypingGate::default(),
                devices: crate::devices::Devices::default(),
                metrics,
                hooks: jim_hooks::Hooks::default(),
                verdicts,
                shutdown: CancellationToken::new(),
                routing: TaskTracker::new(),
                goodbye: CancellationToken::new(),
                tasks: TaskTracker::new(),
                runtime: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The same, calling the application's before-send hook as `hooks`
    /// says, and flushing its events at shutdown (see
    /// [`jim_hooks::Hooks::observers`] for the events' observer, which the
    /// backend's routing takes).
    #[must_use]
    pub fn with_hooks(mut self, hooks: jim_hooks::Hooks) -> Gateway<R> {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.hooks = hooks;
        }
        self
    }

    /// Binds every configured listener and starts serving.
    ///
    /// # Errors
    /// [`GatewayError::Bind`] naming the address that could not be bound.
    pub async fn start(self) -> Result<RunningGateway, GatewayError> {
        let shared = self.shared;
        shared.auth.read_keys().await;
        let listen = &shared.config.listen;
        let tcp = bind(listen.tcp).await?;
        let ws = bind(listen.ws).await?;
        let admin = bind(listen.admin).await?;
        let router = Arc::clone(&shared);
        let mut running = RunningGateway {
            tcp: None,
            ws: None,
            admin: None,
            shutdown: shared.shutdown.clone(),
            routing: shared.routing.clone(),
            goodbye: shared.goodbye.clone(),
            tasks: shared.tasks.clone(),
            listeners: TaskTracker::new(),
            grace: shared.config.session.shutdown_grace(),
            auth: shared.auth.describe(),
            settle_router: {
                let shared = Arc::clone(&shared);
                Box::new(move || Box::pin(async move { shared.router.settle().await }))
            },
            close_router: Box::new(move || {
                Box::pin(async move {
                    router.router.close().await;
                    // What the last messages and sessions gave, sent now.
                    router.hooks.close(HOOKS_FLUSH).await;
                })
            }),
            reload: {
                let shared = Arc::clone(&shared);
                Box::new(move |why| {
                    let shared = Arc::clone(&shared);
                    Box::pin(async move { shared.reload(why).await })
                })
            },
        };

        let sweeping = Arc::clone(&shared);
        shared.tasks.spawn(async move {
            crate::alarms::sweep(sweeping.router.hub(), &sweeping.alarms, &sweeping.shutdown).await;
        });
        let upkeep = Arc::clone(&shared);
        shared
            .tasks
            .spawn(async move { upkeep.metrics.keep_up(&upkeep.shutdown).await });
        if let Some(refresh) = shared.auth.key_refresh(shared.shutdown.clone()) {
            shared.tasks.spawn(refresh);
        }
        if let Some(tls) = &shared.tls {
            shared
                .tasks
                .spawn(Arc::clone(tls).watch(shared.shutdown.clone(), shared.metrics.tls_reloads.clone()));
        }
        warn_plaintext(&shared.config);
        if let Some(listener) = tcp {
            running.tcp = Some(listener.local_addr()?);
            // Among the listeners: shutdown waits for its port to be free.
            running.listeners.spawn(accept_tcp(
                Arc::clone(&shared),
                Acceptor::new(listener, "tcp"),
                shared.tls_for("tcp", &[]),
            ));
        }
        if let Some(listener) = ws {
            running.ws = Some(listener.local_addr()?);
            let app = ws::route(
                &shared.config.listen.ws_path,
                shared.config.limits.max_body,
                crate::websocket::WsAcceptor(Arc::clone(&shared)),
            );
            let serving = shared.http_serving(app);
            running.listeners.spawn(crate::websocket::accept_ws(
                Arc::clone(&shared),
                Acceptor::new(listener, "websocket"),
                serving
                    .encrypted(shared.tls_for("ws", HTTP))
                    .judging(Arc::clone(&shared.addresses)),
            ));
        }
        if let Some(listener) = admin {
            running.admin = Some(listener.local_addr()?);
            let serving = shared
                .http_serving(admin::router(Arc::clone(&shared)))
                .encrypted(shared.tls_for("admin", HTTP));
            shared.tasks.spawn(accept_admin(
                Arc::clone(&shared),
                Acceptor::new(listener, "admin"),
                serving,
            ));
        }
        Ok(running)
    }
}

/// How long the events still queued at shutdown get to be sent.
const HOOKS_FLUSH: Duration = Duration::from_secs(5);

/// What an HTTP listener offers in TLS's ALPN.
const HTTP: &[&[u8]] = &[b"http/1.1"];

impl<R> Shared<R> {
    /// Reads again what can change while running: the TLS pair, the JWKS.
    /// What was read, for the log.
    async fn reload(&self, why: &'static str) -> Vec<String> {
        let mut done = Vec::new();
        if let Some(tls) = &self.tls {
            done.push(match tls.reload_because(why, &self.metrics.tls_reloads) {
                Ok(()) => format!("TLS certificate {}", tls.files().cert.display()),
                Err(e) => format!("TLS certificate NOT reloaded ({e}; keeping the one in use)"),
            });
        }
        done.extend(self.auth.reload_keys().await);
        done
    }

    fn http_serving(&self, app: axum::Router) -> HttpServing {
        HttpServing {
            app,
            header_timeout: self.config.session.handshake_timeout(),
            grace: self.config.session.shutdown_grace(),
            tls: None,
            addresses: None,
        }
    }

    /// The TLS acceptor of the listener named `listener`, if it is encrypted.
    fn tls_for(&self, listener: &str, alpn: &[&[u8]]) -> Option<Handshake> {
        let tls = self.tls.as_ref().filter(|_| self.config.tls.encrypts(listener))?;
        Some(Handshake {
            acceptor: tls.acceptor(alpn),
            timeout: self.config.session.handshake_timeout(),
            failures: self.metrics.tls_handshake_failures.clone(),
        })
    }

    /// A place under the connection limit, if there is one.
    pub(crate) fn slot(&self) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.connection_slots).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.addresses.refused(Refusal::MaxConnections);
                None
            }
        }
    }
}

async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, GatewayError> {
    match addr {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| GatewayError::Bind { addr, source }),
    }
}

async fn accept_tcp<R: Router>(shared: Arc<Shared<R>>, mut acceptor: Acceptor, tls: Option<Handshake>) {
    while let Some((stream, peer)) = acceptor.next(&shared.shutdown).await {
        let slot = shared.slot();
        if tls.is_none() && !shared.addresses.is_trusted(peer.ip()) {
            // Nothing to wait for before the session: no task of its own.
            let admitted = admission(&shared, slot, peer);
            let connection = tcp::connection(stream, peer, shared.config.limits.max_body);
            start(&shared, connection, admitted);
        } else {
            let (tls, shared_too) = (tls.clone(), Arc::clone(&shared));
            shared.tasks.spawn(prelude(shared_too, stream, peer, slot, tls));
        }
    }
}

/// What a TCP connection waits for before its session: the PROXY header
/// a trusted proxy sends first, its TLS handshake. Then the session starts
/// on a task of its own (this one's state is not carried through it).
async fn prelude<R: Router>(
    shared: Arc<Shared<R>>,
    mut stream: TcpStream,
    peer: SocketAddr,
    slot: Option<OwnedSemaphorePermit>,
    tls: Option<Handshake>,
) {
    let max_body = shared.config.limits.max_body;
    let client = if shared.addresses.is_trusted(peer.ip()) {
        let timeout = shared.config.session.handshake_timeout();
        match crate::addresses::read_proxy_header(&mut stream, peer, timeout).await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "a trusted proxy's connection without a PROXY header: closed");
                return;
            }
        }
    } else {
        peer
    };
    let admitted = admission(&shared, slot, client);
    let connection = match &tls {
        None => tcp::connection(stream, client, max_body),
        Some(tls) => match tls.accept(stream, client).await {
            Some(stream) => jim_transport::tls::connection(stream, client, max_body),
            None => return,
        },
    };
    start(&shared, connection, admitted);
}

/// A connection's places under the limits, or the one it met (counted).
fn admission<R>(
    shared: &Shared<R>,
    slot: Option<OwnedSemaphorePermit>,
    client: SocketAddr,
) -> Result<(OwnedSemaphorePermit, Option<AddressSlot>), Refusal> {
    let slot = slot.ok_or(Refusal::MaxConnections)?;
    let address = shared.addresses.admit(client.ip())?;
    Ok((slot, address))
}

/// Runs a session on an admitted connection, on a task of its own; tells
/// a refused one why, and closes it.
fn start<R: Router>(
    shared: &Arc<Shared<R>>,
    mut connection: Connection,
    admitted: Result<(OwnedSemaphorePermit, Option<AddressSlot>), Refusal>,
) {
    match admitted {
        Ok(slot) => {
            session::serve(Arc::clone(shared), connection, slot);
        }
        Err(refusal) => {
            shared.tasks.spawn(async move {
                let body = Status::new(CloseCode::Policy.as_u16(), refusal.reason()).to_vec();
                let goodbye = [Frame::new(Command::ServerClose, 0, body)];
                let _ = tokio::time::timeout(REFUSAL_WRITE, async {
                    let _ = connection.link.write_frames(&goodbye).await;
                    let _ = connection
                        .link
                        .close(CloseCode::Policy.as_u16(), refusal.reason())
                        .await;
                })
                .await;
            });
        }
    }
}

/// WebSocket connections take their slot when accepted, so that requests
/// that never finish (or never upgrade) count against the limit too.
async fn accept_admin<R>(shared: Arc<Shared<R>>, mut acceptor: Acceptor, serving: HttpServing)
where
    R: Send + Sync + 'static,
{
    while let Some((stream, peer)) = acceptor.next(&shared.shutdown).await {
        let shutdown = shared.shutdown.clone();
        shared
            .tasks
            .spawn(serving.clone().serve(stream, peer, None, shutdown));
    }
}

/// Warns, for each listener on an address others can reach, that it is
/// not encrypted.
fn warn_plaintext(config: &Config) {
    for (listener, addr) in config.exposed_plaintext() {
        tracing::warn!(
            listener,
            %addr,
            "this listener is reachable from other hosts and NOT encrypted: set tls.cert and tls.key, or put a TLS proxy in front"
        );
    }
}

/// One of the routing backend's steps at shutdown (settling, then leaving).
type RouterStep = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

/// Reads the TLS pair and the JWKS again, saying why; what was read.
type Reload = Box<
    dyn Fn(&'static str) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send>>
        + Send
        + Sync,
>;

/// A started gateway: its addresses, and the handle to stop it.
pub struct RunningGateway {
    tcp: Option<SocketAddr>,
    ws: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    shutdown: CancellationToken,
    /// What may still route (see `Shared::routing`), and the sessions' cue
    /// to say goodbye once it is empty.
    routing: TaskTracker,
    goodbye: CancellationToken,
    /// Every connection's task.
    tasks: TaskTracker,
    /// The accept loops: they end (and free their ports) first at shutdown.
    listeners: TaskTracker,
    grace: Duration,
    /// Once nothing routes: the backend's own deliveries reach their sessions.
    settle_router: RouterStep,
    /// Once sessions are closed: the backend is left.
    close_router: RouterStep,
    reload: Reload,
    /// What tokens are checked with, for the banner.
    auth: String,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("tcp", &self.tcp)
            .field("ws", &self.ws)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl RunningGateway {
    /// What client tokens are checked with (development mode, the HS256
    /// secret, public keys, a JWKS).
    pub fn auth(&self) -> &str {
        &self.auth
    }

    /// The TCP listener's address (with the real port when configured as 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The WebSocket listener's address.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws
    }

    /// The admin API's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Reads again, now, what the gateway can change while it runs: the
    /// listeners' TLS certificate and key (also read whenever their files
    /// change) and a JWKS (also read on its schedule). `why` goes to the
    /// log (`"SIGHUP"`). Returns a line for each thing read, for the log;
    /// empty when there is nothing to read again. A pair or a document
    /// that cannot be used is refused, and the one in use stays.
    ///
    /// The binary calls this on SIGHUP; a service embedding the gateway
    /// calls it when it likes (no signal handler is installed for it).
    pub async fn reload(&self, why: &'static str) -> Vec<String> {
        (self.reload)(why).await
    }

    /// Stops the gateway: listeners stop accepting and free their ports at
    /// once; sessions take no more messages and answer those in flight;
    /// once all have, every session gets `A999` 1001 after what was queued
    /// for it (a message acked to its sender is delivered first). This
    /// returns once all connections are closed or the shutdown grace
    /// period is over.
    /// Returns whether everything closed within the grace period.
    pub async fn shutdown(self) -> bool {
        let deadline = tokio::time::Instant::now() + self.grace;
        self.shutdown.cancel();
        self.routing.close();
        // The ports are free before the connections drain: a successor can
        // bind them at once.
        self.listeners.close();
        self.listeners.wait().await;
        tracing::info!("listeners closed, their ports are free; closing the connections");
        self.tasks.close();
        // No session says goodbye while another may still route to it, or
        // while what was routed is still on its way back (kafka).
        let _ = tokio::time::timeout_at(deadline, async {
            self.routing.wait().await;
            (self.settle_router)().await;
        })
        .await;
        self.goodbye.cancel();
        // Sessions get the grace period; a little more covers their writers' own timeouts.
        let clean = tokio::time::timeout_at(deadline + Duration::from_secs(1), self.tasks.wait())
            .await
            .is_ok();
        (self.close_router)().await;
        clean
    }

    /// Waits for SIGINT or SIGTERM, then [`shutdown`](Self::shutdown).
    ///
    /// The signal handlers are installed when this is called; a process
    /// that announces it is ready first should install them before, with
    /// [`StopSignals::install`] and [`shutdown_after`](Self::shutdown_after).
    pub async fn run_until_signal(self) -> bool {
        match StopSignals::install() {
            Ok(signals) => self.shutdown_after(signals.received()).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot install signal handlers; running until the process is killed");
                std::future::pending().await
            }
        }
    }

    /// Waits for `stop`, then [`shutdown`](Self::shutdown).
    pub async fn shutdown_after(self, stop: impl std::future::Future<Output = ()>) -> bool {
        stop.await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A development gateway, and a TCP connection accepted for it: the
    /// client's end (kept open), the gateway's, and the client's address.
    async fn accepted() -> (
        Gateway<jim_router::LocalRouter>,
        tokio::net::TcpStream,
        tokio::net::TcpStream,
        std::net::SocketAddr,
    ) {
        let gateway = Gateway::new(Config::ephemeral_dev(), jim_router::LocalRouter::new()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        (gateway, client, stream, peer)
    }

    /// A WebSocket upgrade read by the gateway lives on a task of its own
    /// until the session starts; a large one leaves a hole in the heap per
    /// connection (1,784 B, with the parsed headers held across a read,
    /// cost an idle WebSocket connection ~80 B more than this). The HTTP
    /// server's state for other requests is boxed out of it.
    #[tokio::test]
    async fn a_websocket_upgrades_task_stays_under_1_kib() {
        let (gateway, _client, stream, peer) = accepted().await;
        let shared = &gateway.shared;
        let permit = Arc::clone(&shared.connection_slots).try_acquire_owned().unwrap();
        let serving = shared.http_serving(axum::Router::new());
        let upgrade =
            crate::websocket::upgrade_here(Arc::clone(shared), serving, stream, peer, (permit, None), false);
        let size = std::mem::size_of_val(&upgrade);
        assert!(size <= 1024, "an upgrade's task future is {size} B");
    }
}
