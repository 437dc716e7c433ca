//! The gateway's side of the `grpc` mode: a routing backend that links to
//! the central router.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use jim_router::{
    ClientAck, Directory, Hub, InboxRead, InboxState, Outgoing, Receipt, Router, RouterError, SessionInfo,
    UserId,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use tracing::Instrument;

use crate::LinkConfig;
use crate::convert;
use crate::proto;
use crate::proto::gateway_event::Event as Up;
use crate::proto::router_client::RouterClient;
use crate::proto::router_event::Event as Down;

/// Events queued towards the router before senders get 5000 (the router
/// cannot keep up, or the link is going down).
const UP_QUEUE: usize = 65_536;
/// How long a routed message may wait for the router's answer.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a gateway reaches its router.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The router, its CA and key: the gateway's `[grpc]`.
    pub link: LinkConfig,
    /// This gateway's node id.
    pub node_id: u16,
    /// First reconnect delay; doubles up to `max_backoff`, with jitter.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl BackendConfig {
    /// The router's endpoint as the link reaches it: over TLS for an
    /// `https://` router, trusting the link's `ca` or the system's roots.
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for a router address that is not a URL,
    /// or a CA file that cannot be read.
    pub fn endpoint(&self) -> Result<Endpoint, RouterError> {
        let router = &self.link.router;
        let endpoint = Endpoint::from_shared(router.clone())
            .map_err(|e| RouterError::Invalid {
                reason: format!("router address {router:?}: {e}"),
            })?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        if !router.starts_with("https://") {
            return Ok(endpoint);
        }
        endpoint.tls_config(tls(self)?).map_err(|e| RouterError::Invalid {
            reason: format!("router TLS: {e}"),
        })
    }

    /// Defaults for a router address and node id: no key, backoff from
    /// 100 ms to 5 s.
    pub fn new(router: impl Into<String>, node_id: u16) -> BackendConfig {
        BackendConfig::linked(
            LinkConfig {
                router: router.into(),
                ..LinkConfig::default()
            },
            node_id,
        )
    }

    /// Defaults for a link (a gateway's `[grpc]`) and node id: backoff from
    /// 100 ms to 5 s.
    pub fn linked(link: LinkConfig, node_id: u16) -> BackendConfig {
        BackendConfig {
            link,
            node_id,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// What the link trusts: the configured CA alone, or the system's roots.
/// The router's certificate must be for the URL's host.
fn tls(config: &BackendConfig) -> Result<ClientTlsConfig, RouterError> {
    let tls = ClientTlsConfig::new();
    Ok(match &config.link.ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| RouterError::Invalid {
                reason: format!("cannot read the router's CA {}: {e}", path.display()),
            })?;
            tls.ca_certificate(Certificate::from_pem(pem))
        }
        None => tls.with_native_roots(),
    })
}

/// The `grpc` routing backend: the router plans every message and sends
/// this gateway its part of each delivery, which it applies to the
/// gateway's [`Hub`].
///
/// Every message goes through the router, also between two users of this
/// gateway, so membership, presence and observers behave the same for
/// everyone; the sender is acked only once the router accepted it. While
/// the router is unreachable, messages fail with
/// [`RouterError::Unavailable`] (error 5000 for clients), client
/// connections stay up, and the backend reconnects with jittered backoff
/// and re-announces every session.
#[derive(Clone)]
pub struct GrpcBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: BackendConfig,
    hub: Arc<Hub>,
    /// The current link's sender; `None` while disconnected.
    link: RwLock<Option<mpsc::Sender<proto::GatewayEvent>>>,
    /// Whether the link is up; a watch, so that [`GrpcBackend::wait_linked`]
    /// can wait for a change.
    connected: watch::Sender<bool>,
    pending: DashMap<u64, oneshot::Sender<proto::RouteResult>>,
    next_request: AtomicU64,
    client: RouterClient<Channel>,
    /// Ends the link for good.
    closed: CancellationToken,
}

impl std::fmt::Debug for GrpcBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBackend")
            .field("router", &self.inner.config.link.router)
            .field("connected", &self.is_ready())
            .field("sessions", &self.inner.hub.session_count())
            .finish()
    }
}

impl GrpcBackend {
    /// A backend delivering into `hub` (the gateway's sessions) that links
    /// to the router in the background (now, and again whenever the link
    /// breaks).
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for a router address that is not a URL.
    pub fn start(config: BackendConfig, hub: Arc<Hub>) -> Result<GrpcBackend, RouterError> {
        let endpoint = config.endpoint()?;
        let backend = GrpcBackend {
            inner: Arc::new(Inner {
                client: RouterClient::new(endpoint.connect_lazy()),
                config,
                hub,
                link: RwLock::new(None),
                connected: watch::Sender::new(false),
                pending: DashMap::new(),
                next_request: AtomicU64::new(1),
                closed: CancellationToken::new(),
            }),
        };
        let span = tracing::info_span!("router link", router = %backend.inner.config.link.router, node = backend.inner.config.node_id);
        tokio::spawn(Arc::clone(&backend.inner).maintain_link().instrument(span));
        Ok(backend)
    }

    /// Waits until the link to the router is up (`linked`) or down: the
    /// readiness [`Router::is_ready`] reports, as an event. For start-up
    /// code that should take no traffic before the router is reachable:
    ///
    /// ```no_run
    /// # async fn run(backend: jim_router_grpc::GrpcBackend) {
    /// backend.wait_linked(true).await;
    /// # }
    /// ```
    pub async fn wait_linked(&self, linked: bool) {
        let mut changes = self.inner.connected.subscribe();
        // The sender lives as long as `self`: this ends only by a match.
        let _ = changes.wait_for(|now| *now == linked).await;
    }

    fn request<T>(&self, message: T) -> Request<T> {
        self.inner.request(message)
    }

    /// Sends an event up the link, if there is one.
    /// Sends the event `make` builds for a fresh request number, and waits
    /// for the router's answer to it.
    async fn ask(&self, make: impl FnOnce(u64) -> Up) -> Result<proto::RouteResult, RouterError> {
        let request = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.pending.insert(request, tx);
        if let Err(error) = self.send_up(make(request)) {
            self.inner.pending.remove(&request);
            return Err(error);
        }
        match tokio::time::timeout(ROUTE_TIMEOUT, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(unavailable("router link lost before it answered")),
            Err(_) => {
                self.inner.pending.remove(&request);
                Err(unavailable("router did not answer in time"))
            }
        }
    }

    /// Waits until the router has taken every event sent before.
    async fn barrier(&self) -> Result<(), RouterError> {
        self.ask(|request| Up::Barrier(proto::Barrier { request }))
            .await
            .map(|_| ())
    }

    fn send_up(&self, event: Up) -> Result<(), RouterError> {
        let link = self
            .inner
            .link
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(tx) = link.as_ref() else {
            return Err(unavailable("router unreachable"));
        };
        tx.try_send(proto::GatewayEvent { event: Some(event) })
            .map_err(|_| unavailable("router link is full or closing"))
    }
}

fn unavailable(reason: &str) -> RouterError {
    RouterError::Unavailable {
        reason: reason.to_owned(),
    }
}

impl Inner {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(key) = self.config.link.key.as_deref().filter(|k| !k.is_empty())
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {key}"))
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Links, and relinks after every failure, for as long as the backend
    /// lives. The log gets one line per change of state (linked; down, and
    /// why), not one per attempt: a router that stays away for an hour is
    /// one warning, not thousands.
    async fn maintain_link(self: Arc<Self>) {
        let mut backoff = self.config.min_backoff;
        // Whether the link being down was logged (since it was last up).
        let mut said_down = false;
        loop {
            let mut linked = false;
            let outcome = tokio::select! {
                outcome = self.run_link(&mut linked) => outcome,
                () = self.closed.cancelled() => {
                    self.disconnected();
                    return;
                }
            };
            let why = match outcome {
                Ok(()) => "it closed the link".to_owned(),
                Err(status) => cause(&status),
            };
            if linked {
                backoff = self.config.min_backoff;
                said_down = false;
            }
            tracing::debug!(router = %self.config.link.router, why, "router link attempt ended");
            if !said_down {
                tracing::warn!(
                    "router at {} unreachable: {why}; retrying every {:?} to {:?} until it answers",
                    self.config.link.router,
                    self.config.min_backoff,
                    self.config.max_backoff
                );
                said_down = true;
            }
            self.disconnected();
            // Jitter: gateways that lost the same router do not come back in step.
            let delay = backoff.mul_f64(0.5 + fastrand::f64());
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.closed.cancelled() => return,
            }
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    fn disconnected(&self) {
        *self
            .link
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.connected.send_replace(false);
        // Nobody will answer these: their senders get 5000.
        self.pending.clear();
    }

    /// One link, until it ends; `linked` says whether it came up.
    async fn run_link(&self, linked: &mut bool) -> Result<(), Status> {
        let (tx, rx) = mpsc::channel(UP_QUEUE);
        {
            // Under the lock: sessions attached from now on are sent after
            // the hello, those attached before are in it (or both: the
            // router takes attaches idempotently).
            let mut link = self
                .link
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let hello = proto::Hello {
                node: u32::from(self.config.node_id),
                sessions: self
                    .hub
                    .all_sessions()
                    .iter()
                    .map(convert::session_to_proto)
                    .collect(),
            };
            let _ = tx.try_send(proto::GatewayEvent {
                event: Some(Up::Hello(hello)),
            });
            *link = Some(tx);
        }
        let mut client = self.client.clone();
        let response = client.link(self.request(ReceiverStream::new(rx))).await;
        let mut inbound = match response {
            Ok(response) => response.into_inner(),
            Err(status) => return Err(status),
        };
        self.connected.send_replace(true);
        *linked = true;
        // While unlinked, messages may have been stored for these sessions.
        self.hub.resync_all();
        tracing::info!(router = %self.config.link.router, node = self.config.node_id, "linked to router");
        while let Some(event) = inbound.message().await? {
            match event.event {
                Some(Down::Result(result)) => {
                    if let Some((_, waiter)) = self.pending.remove(&result.request) {
                        let _ = waiter.send(result);
                    }
                }
                Some(Down::Delivery(delivery)) => match convert::delivery_from_proto(delivery) {
                    Ok(delivery) => {
                        self.hub.apply(&delivery);
                    }
                    Err(status) => tracing::warn!(error = %status.message(), "router sent a bad delivery"),
                },
                Some(Down::Kick(kick)) => {
                    self.hub.kick(&kick.user, &kick.reason);
                }
                None => {}
            }
        }
        Ok(())
    }
}

impl Router for GrpcBackend {
    fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    async fn announce(&self, info: &SessionInfo) -> Result<(), RouterError> {
        let announce = Up::Attach(convert::session_to_proto(info));
        // While disconnected, the next hello announces it (it is in the hub).
        if self.send_up(announce).is_ok() {
            // Once the router has it, every message it routes comes here:
            // the session reads its inbox's head only then.
            let _ = self.barrier().await;
        }
        Ok(())
    }

    async fn withdraw(&self, info: &SessionInfo) -> Result<(), RouterError> {
        let _ = self.send_up(Up::Detach(proto::Detach {
            session: info.id.0,
            user: info.user.to_string(),
        }));
        Ok(())
    }

    async fn route(&self, message: Outgoing) -> Result<Receipt, RouterError> {
        let message = Some(convert::message_to_proto(&message));
        let result = self.ask(|request| Up::Route(proto::RouteRequest { request, message }));
        let result = result.await?;
        match result.error {
            None => Ok(Receipt {
                sessions: Some(result.sessions as usize),
                offset: result.offset,
                original: result.original.map(jim_model::MessageId),
                recipients: usize::try_from(result.recipients).unwrap_or(usize::MAX),
            }),
            Some(error) => Err(convert::route_error_from_proto(error)),
        }
    }

    async fn acknowledge(&self, ack: ClientAck) -> Result<(), RouterError> {
        self.send_up(Up::Ack(convert::ack_to_proto(&ack)))
    }

    async fn inbox_state(&self, user: &str) -> Result<Option<InboxState>, RouterError> {
        let request = self.request(proto::UserRequest {
            user: user.to_owned(),
        });
        let mut client = self.inner.client.clone();
        let reply = client
            .inbox_state(request)
            .await
            .map_err(|s| convert::error_of(&s))?
            .into_inner();
        Ok(reply.on.then(|| InboxState {
            epoch: reply.epoch.into(),
            oldest: reply.oldest,
            head: reply.head,
            held: reply.held,
        }))
    }

    async fn marks(&self, user: &str) -> Result<Vec<(String, u64)>, RouterError> {
        let request = self.request(proto::UserRequest {
            user: user.to_owned(),
        });
        let mut client = self.inner.client.clone();
        let reply = client
            .marks(request)
            .await
            .map_err(|s| convert::error_of(&s))?
            .into_inner();
        Ok(reply.marks.into_iter().map(|m| (m.key, m.message_id)).collect())
    }

    async fn read_inbox(&self, user: &str, after: u32, max: usize) -> Result<InboxRead, RouterError> {
        let request = self.request(proto::ReadInboxRequest {
            user: user.to_owned(),
            after,
            max: u32::try_from(max).unwrap_or(u32::MAX),
        });
        let mut client = self.inner.client.clone();
        let reply = client
            .read_inbox(request)
            .await
            .map_err(|s| convert::error_of(&s))?
            .into_inner();
        convert::read_from_proto(reply).map_err(|s| convert::error_of(&s))
    }

    fn is_ready(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Ends the link: the router forgets this gateway's sessions at once.
    async fn close(&self) {
        self.inner.closed.cancel();
    }
}

impl Directory for GrpcBackend {
    async fn add_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let request = self.request(proto::MembersRequest {
            group: group.to_owned(),
            users: users.iter().map(|u| u.to_string()).collect(),
        });
        let mut client = self.inner.client.clone();
        client
            .add_members(request)
            .await
            .map(|_| ())
            .map_err(|s| convert::error_of(&s))
    }

    async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let request = self.request(proto::MembersRequest {
            group: group.to_owned(),
            users: users.iter().map(|u| u.to_string()).collect(),
        });
        let mut client = self.inner.client.clone();
        client
            .remove_members(request)
            .await
            .map(|_| ())
            .map_err(|s| convert::error_of(&s))
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, RouterError> {
        let request = self.request(proto::GroupRequest {
            group: group.to_owned(),
        });
        let mut client = self.inner.client.clone();
        let reply = client
            .list_members(request)
            .await
            .map_err(|s| convert::error_of(&s))?;
        Ok(reply.into_inner().members.into_iter().map(Into::into).collect())
    }

    async fn presence(&self, user: &str) -> Result<Vec<SessionInfo>, RouterError> {
        let request = self.request(proto::UserRequest {
            user: user.to_owned(),
        });
        let mut client = self.inner.client.clone();
        let reply = client
            .presence(request)
            .await
            .map_err(|s| convert::error_of(&s))?;
        reply
            .into_inner()
            .sessions
            .into_iter()
            .map(|s| convert::session_from_proto(s).map_err(|e| convert::error_of(&e)))
            .collect()
    }

    async fn kick(&self, user: &str, reason: &str) -> Result<usize, RouterError> {
        let request = self.request(proto::KickRequest {
            user: user.to_owned(),
            reason: reason.to_owned(),
        });
        let mut client = self.inner.client.clone();
        let reply = client.kick(request).await.map_err(|s| convert::error_of(&s))?;
        Ok(reply.into_inner().kicked as usize)
    }
}

/// Why a link attempt failed, in words: for a transport failure the
/// innermost cause ("Connection refused (os error 111)"), which tonic's own
/// message ("transport error") hides; otherwise the router's message.
fn cause(status: &Status) -> String {
    let mut error: &dyn std::error::Error = status;
    let mut innermost = None;
    while let Some(source) = error.source() {
        innermost = Some(source);
        error = source;
    }
    match innermost {
        Some(source) => source.to_string(),
        None if status.message().is_empty() => format!("{:?}", status.code()),
        None => format!("{} ({:?})", status.message(), status.code()),
    }
}
