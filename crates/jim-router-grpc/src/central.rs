//! The central router: presence and groups for many gateways, and the
//! `jim.router.v1` service they link to.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use jim_model::MessageIdGenerator;
use jim_router::inbox::Retention;
use jim_router::{
    Audience, Directory, Inbox, InboxRead, InboxState, KeyRefusal, Observer, Outgoing, Placement, Planned,
    Receipt, Recipients, RouterError, Routing, SessionChange, SessionId, SessionInfo, Submitted, UserId,
    check_bearer, push_messages,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::convert::{self, status_of};
use crate::proto;
use crate::proto::gateway_event::Event as Up;
use crate::proto::router_event::Event as Down;

/// Events queued for one gateway before it counts as too slow and its link
/// is dropped (it reconnects and re-announces its sessions).
pub const LINK_QUEUE: usize = 65_536;

/// What a central router is configured with.
#[derive(Debug, Clone)]
pub struct CentralConfig {
    /// The router's own node id (for the ids of pushed messages): unique
    /// among the gateways' node ids.
    pub node_id: u16,
    /// The bearer key gateways and admin callers must present, if any.
    pub key: Option<String>,
    /// The largest body a pushed message may have once stamped: what the
    /// gateways' clients accept (their `limits.max_body`).
    pub max_body: usize,
    /// How long after start the router does not know where everyone is:
    /// gateways are still re-linking after a restart. Meanwhile a message
    /// to a user it cannot place is refused as unavailable (error 5000, a
    /// retry later works) instead of acked and dropped. At least the
    /// gateways' longest reconnect delay (their maximum backoff, plus its
    /// jitter of up to half again).
    pub settle: Duration,
}

impl CentralConfig {
    /// The defaults for a node id: no key, the contract's 64 KiB body, and
    /// a settle window of 10 s (gateways back off up to 5 s, 7.5 s with
    /// jitter).
    pub fn new(node_id: u16) -> CentralConfig {
        CentralConfig {
            node_id,
            key: None,
            max_body: jim_protocol::DEFAULT_MAX_BODY,
            settle: DEFAULT_SETTLE,
        }
    }
}

/// The default settle window of a freshly started router.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(10);

/// Counters of a central router, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterStats {
    /// Gateways linked now.
    pub gateways: u64,
    /// Sessions on all gateways now.
    pub sessions: u64,
    /// Groups with members.
    pub groups: u64,
    /// Messages routed since start.
    pub routed: u64,
    /// Deliveries sent to gateways since start.
    pub deliveries: u64,
    /// Gateway links dropped for falling behind.
    pub dropped_links: u64,
}

/// The router of the `grpc` mode: knows which gateway holds which user's
/// sessions, owns group membership, and tells each gateway what to deliver.
///
/// It answers the directory ([`Directory`]: groups, presence, kick) and
/// routes pushes ([`CentralRouter::route`]) for an application that embeds
/// it, with its observers, and
/// [`service`](Self::service) gives the tonic service that gateways link
/// to, mountable on any tonic server.
///
/// ```no_run
/// use jim_router_grpc::{CentralConfig, CentralRouter};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let router = CentralRouter::new(CentralConfig::new(1023), vec![])?;
/// tonic::transport::Server::builder()
///     .add_service(router.service())
///     .serve("127.0.0.1:9093".parse()?)
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CentralRouter {
    inner: Arc<Inner>,
}

struct Inner {
    config: CentralConfig,
    /// When this router started: it settles from then on.
    started: Instant,
    ids: MessageIdGenerator,
    /// Linked gateways by node id.
    links: DashMap<u16, Link>,
    /// Every session, by user.
    presence: DashMap<UserId, Vec<SessionInfo>>,
    /// Groups, observers, and every user's inbox (appended before a
    /// message is confirmed).
    routing: Routing,
    next_link: AtomicU64,
    routed: AtomicU64,
    deliveries: AtomicU64,
    dropped_links: AtomicU64,
}

/// One gateway's link: where its events go.
#[derive(Clone)]
struct Link {
    /// Tells this link apart from a later one of the same node.
    epoch: u64,
    tx: mpsc::Sender<Result<proto::RouterEvent, Status>>,
}

impl std::fmt::Debug for CentralRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentralRouter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl CentralRouter {
    /// A router with no gateways yet, and a memory inbox.
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for a node id above 1023.
    pub fn new(
        config: CentralConfig,
        observers: Vec<Arc<dyn Observer>>,
    ) -> Result<CentralRouter, RouterError> {
        CentralRouter::with_routing(
            config,
            Routing::new(Inbox::memory(Retention::default()), observers),
        )
    }

    /// A router keeping every user's inbox, and the groups, in `inbox`:
    /// the groups a `disk` store kept are back at once.
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for a node id above 1023;
    /// [`RouterError::Inbox`] if the kept groups cannot be read.
    pub async fn with_inbox(
        config: CentralConfig,
        observers: Vec<Arc<dyn Observer>>,
        inbox: Inbox,
    ) -> Result<CentralRouter, RouterError> {
        CentralRouter::with_routing(config, Routing::open(inbox, observers).await?)
    }

    /// A router planning with `routing` (its inbox, groups, observers and
    /// whether senders get copies).
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for a node id above 1023.
    pub fn with_routing(config: CentralConfig, routing: Routing) -> Result<CentralRouter, RouterError> {
        let ids = MessageIdGenerator::new(config.node_id).map_err(|e| RouterError::Invalid {
            reason: e.to_string(),
        })?;
        Ok(CentralRouter {
            inner: Arc::new(Inner {
                config,
                started: Instant::now(),
                ids,
                links: DashMap::new(),
                presence: DashMap::new(),
                routing,
                next_link: AtomicU64::new(1),
                routed: AtomicU64::new(0),
                deliveries: AtomicU64::new(0),
                dropped_links: AtomicU64::new(0),
            }),
        })
    }

    /// The tonic service gateways link to and admin callers call.
    pub fn service(&self) -> proto::router_server::RouterServer<CentralRouter> {
        proto::router_server::RouterServer::new(self.clone())
    }

    /// Counters, for metrics.
    pub fn stats(&self) -> RouterStats {
        let inner = &self.inner;
        RouterStats {
            gateways: inner.links.len() as u64,
            sessions: inner.presence.iter().map(|e| e.value().len() as u64).sum(),
            groups: inner.routing.groups().len() as u64,
            routed: inner.routed.load(Ordering::Relaxed),
            deliveries: inner.deliveries.load(Ordering::Relaxed),
            dropped_links: inner.dropped_links.load(Ordering::Relaxed),
        }
    }

    /// Ends every gateway's link with `UNAVAILABLE` "router shutting down":
    /// the gateways reconnect (to this router's successor) instead of
    /// holding their links open until the process exits.
    pub fn close_links(&self) {
        for link in self.inner.links.iter() {
            let _ = link.tx.try_send(Err(Status::unavailable("router shutting down")));
        }
    }

    /// Starts a gateway's link, replacing an older one of the same node
    /// (whose sessions are forgotten first).
    fn link(
        &self,
        node: u16,
        sessions: Vec<SessionInfo>,
        tx: mpsc::Sender<Result<proto::RouterEvent, Status>>,
    ) -> u64 {
        let epoch = self.inner.next_link.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = self.inner.links.insert(node, Link { epoch, tx }) {
            tracing::info!(node, old = old.epoch, "gateway relinked; its old link is dropped");
        }
        self.forget_node(node);
        for session in sessions {
            self.add_session(session);
        }
        tracing::info!(node, epoch, "gateway linked");
        epoch
    }

    /// Ends a gateway's link, unless a newer one took its place.
    fn unlink(&self, node: u16, epoch: u64) {
        if self
            .inner
            .links
            .remove_if(&node, |_, link| link.epoch == epoch)
            .is_some()
        {
            self.forget_node(node);
            tracing::info!(node, epoch, "gateway unlinked; its sessions are gone");
        }
    }

    fn forget_node(&self, node: u16) {
        let observers = self.inner.routing.observers();
        self.inner.presence.retain(|user, sessions| {
            let before = sessions.len();
            sessions.retain(|s| s.node != node);
            for _ in sessions.len()..before {
                observers.session(user, SessionChange::Closed);
            }
            !sessions.is_empty()
        });
    }

    fn add_session(&self, session: SessionInfo) {
        let user = Arc::clone(&session.user);
        let mut sessions = self.inner.presence.entry(Arc::clone(&user)).or_default();
        // Idempotent: a session may be announced in a hello and attached again.
        if !sessions.iter().any(|s| s.id == session.id) {
            sessions.push(session);
            // Under the entry's lock: a user's changes reach the observers in order.
            self.inner
                .routing
                .observers()
                .session(&user, SessionChange::Opened);
        }
    }

    fn remove_session(&self, user: &str, session: SessionId) {
        let observers = self.inner.routing.observers();
        self.inner.presence.remove_if_mut(user, |_, sessions| {
            let before = sessions.len();
            sessions.retain(|s| s.id != session);
            if sessions.len() < before {
                observers.session(user, SessionChange::Closed);
            }
            sessions.is_empty()
        });
    }

    /// The inbox store.
    pub fn inbox(&self) -> &Inbox {
        self.inner.routing.inbox()
    }

    /// Routes a message: stores it in its recipients' inboxes, then sends
    /// each gateway its part of the delivery.
    async fn route_now(&self, message: &Outgoing) -> Result<Receipt, RouterError> {
        let submitted = self.submit(message)?;
        Ok(self.carry(message, submitted.stored().await?))
    }

    /// The part of routing that takes the message's place in line: the
    /// rules, and the append submitted to the store. Messages of one link
    /// are submitted in the order they came, so each recipient's offsets
    /// follow each sender's order.
    fn submit<'m>(&self, message: &'m Outgoing) -> Result<Submitted<'m>, RouterError> {
        self.inner.routing.submit(message, |recipients| match recipients {
            Recipients::Users { users, .. } => self.check_placed(users.iter()),
            Recipients::Everyone => Ok(()),
        })
    }

    /// Sends each gateway holding a recipient its part of a planned
    /// delivery.
    fn carry(&self, message: &Outgoing, planned: Planned<'_>) -> Receipt {
        let (delivery, receipt) = match planned {
            Planned::Deliver { delivery, receipt } => (delivery, receipt),
            Planned::Retry(receipt) => return receipt,
        };
        let inner = &self.inner;
        let mut sessions = 0;
        inner
            .routing
            .observers()
            .stored(message, &delivery, |user| inner.presence.contains_key(user));
        for part in delivery.by_node(&Presence(inner)) {
            if self.send(
                part.node,
                Down::Delivery(convert::delivery_to_proto(&part.delivery)),
            ) {
                sessions += part.sessions;
                inner.deliveries.fetch_add(1, Ordering::Relaxed);
            }
        }
        inner.routed.fetch_add(1, Ordering::Relaxed);
        Receipt {
            sessions: Some(sessions),
            ..receipt
        }
    }

    /// While settling, refuses a message to users of whom no gateway has
    /// told yet: their gateway may still be re-linking.
    fn check_placed<'u>(&self, mut users: impl Iterator<Item = &'u UserId>) -> Result<(), RouterError> {
        let since = self.inner.started.elapsed();
        // With an inbox the message waits there: the user's sessions catch
        // up once their gateway has re-linked.
        if since >= self.inner.config.settle || self.inner.routing.inbox().is_on() {
            return Ok(());
        }
        match users.find(|user| !self.inner.presence.contains_key(&***user)) {
            None => Ok(()),
            Some(user) => Err(RouterError::Unavailable {
                reason: format!(
                    "the router started {} ms ago and does not know yet where {user:?} is; retry in a moment",
                    since.as_millis()
                ),
            }),
        }
    }

    /// Queues an event for a gateway; a gateway too far behind loses its
    /// link (it reconnects and re-announces its sessions).
    fn send(&self, node: u16, event: Down) -> bool {
        let Some(link) = self.inner.links.get(&node).map(|l| l.clone()) else {
            return false;
        };
        match link.tx.try_send(Ok(proto::RouterEvent { event: Some(event) })) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(node, "gateway link is {LINK_QUEUE} events behind: dropping it");
                self.inner.dropped_links.fetch_add(1, Ordering::Relaxed);
                self.unlink(node, link.epoch);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.unlink(node, link.epoch);
                false
            }
        }
    }

    fn kick_now(&self, user: &str, reason: &str) -> usize {
        let nodes: HashMap<u16, usize> =
            self.inner
                .presence
                .get(user)
                .map_or_else(HashMap::new, |sessions| {
                    sessions.iter().fold(HashMap::new(), |mut nodes, s| {
                        *nodes.entry(s.node).or_default() += 1;
                        nodes
                    })
                });
        let mut kicked = 0;
        for (node, count) in nodes {
            let kick = proto::Kick {
                user: user.to_owned(),
                reason: reason.to_owned(),
            };
            if self.send(node, Down::Kick(kick)) {
                kicked += count;
            }
        }
        kicked
    }

    fn check_key<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match check_bearer(given, self.inner.config.key.as_deref()) {
            Ok(()) => Ok(()),
            Err(KeyRefusal::Wrong) => Err(Status::unauthenticated("wrong router key")),
            Err(KeyRefusal::Missing) => Err(Status::unauthenticated(
                "missing router key: send authorization: Bearer <key>",
            )),
        }
    }

    /// Tells a gateway how its route request went.
    fn answer(&self, node: u16, request: u64, routed: Result<Receipt, RouterError>) {
        let result = match routed {
            Ok(receipt) => proto::RouteResult {
                request,
                error: None,
                sessions: receipt.sessions.unwrap_or(0) as u64,
                offset: receipt.offset,
                original: receipt.original.map(|id| id.0),
                recipients: receipt.recipients as u64,
            },
            Err(error) => proto::RouteResult {
                request,
                error: Some(convert::route_error_to_proto(&error)),
                ..proto::RouteResult::default()
            },
        };
        self.send(node, Down::Result(result));
    }

    /// Handles one event of a gateway's stream.
    fn on_event(&self, node: u16, event: Up) -> Result<(), Status> {
        match event {
            Up::Hello(_) => return Err(Status::invalid_argument("hello is only the first event")),
            Up::Attach(session) => {
                let session = convert::session_from_proto(session)?;
                if session.node != node {
                    return Err(Status::invalid_argument(
                        "a gateway attaches only its own sessions",
                    ));
                }
                self.add_session(session);
            }
            Up::Detach(detach) => self.remove_session(&detach.user, SessionId(detach.session)),
            Up::Route(request) => {
                let message = request
                    .message
                    .ok_or_else(|| Status::invalid_argument("route.message is required"))
                    .and_then(convert::message_from_proto)?;
                if message.kind == jim_model::MessageKind::Ack {
                    // A receipt: its mark is read and written first.
                    let router = self.clone();
                    tokio::spawn(async move {
                        let marked = router.inner.routing.mark(&message).await;
                        let routed = marked.map(|planned| {
                            planned.map_or_else(Receipt::default, |p| router.carry(&message, p))
                        });
                        router.answer(node, request.request, routed);
                    });
                    return Ok(());
                }
                match self.submit(&message) {
                    // Stored already (memory, off): finish in line.
                    Ok(submitted) if submitted.is_settled() => {
                        let routed = submitted.settled().map(|planned| self.carry(&message, planned));
                        self.answer(node, request.request, routed);
                    }
                    // Waiting for the disk: the link goes on reading meanwhile.
                    Ok(submitted) => {
                        let submitted = submitted.into_owned();
                        let router = self.clone();
                        tokio::spawn(async move {
                            let routed = submitted
                                .stored()
                                .await
                                .map(|planned| router.carry(&message, planned));
                            router.answer(node, request.request, routed);
                        });
                    }
                    Err(error) => self.answer(node, request.request, Err(error)),
                }
            }
            Up::Ack(ack) => {
                let ack = convert::ack_from_proto(ack);
                self.inner.routing.observers().ack(&ack);
            }
            Up::Barrier(barrier) => self.answer(node, barrier.request, Ok(Receipt::default())),
        }
        Ok(())
    }
}

type LinkStream = Pin<Box<dyn Stream<Item = Result<proto::RouterEvent, Status>> + Send>>;

#[tonic::async_trait]
impl proto::router_server::Router for CentralRouter {
    type LinkStream = LinkStream;

    async fn link(
        &self,
        request: Request<Streaming<proto::GatewayEvent>>,
    ) -> Result<Response<LinkStream>, Status> {
        self.check_key(&request)?;
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await?.and_then(|e| e.event) {
            Some(Up::Hello(hello)) => hello,
            _ => {
                return Err(Status::invalid_argument(
                    "the first event of a link must be hello",
                ));
            }
        };
        let node = u16::try_from(hello.node)
            .ok()
            .filter(|n| *n <= jim_model::MAX_NODE)
            .ok_or_else(|| Status::invalid_argument("hello.node is out of range (0..=1023)"))?;
        let sessions = hello
            .sessions
            .into_iter()
            .map(convert::session_from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        if sessions.iter().any(|s| s.node != node) {
            return Err(Status::invalid_argument(
                "a gateway announces only its own sessions",
            ));
        }
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let epoch = self.link(node, sessions, tx.clone());
        let router = self.clone();
        let span = tracing::info_span!("gateway link", node, epoch);
        tokio::spawn(
            async move {
                loop {
                    match inbound.message().await {
                        Ok(Some(proto::GatewayEvent { event: Some(event) })) => {
                            if let Err(status) = router.on_event(node, event) {
                                let _ = tx.try_send(Err(status));
                                break;
                            }
                        }
                        Ok(Some(proto::GatewayEvent { event: None })) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                router.unlink(node, epoch);
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn push(&self, request: Request<proto::PushRequest>) -> Result<Response<proto::PushReply>, Status> {
        self.check_key(&request)?;
        let request = request.into_inner();
        let users = (!request.users.is_empty()).then_some(request.users);
        let audience = Audience::from_parts(users, request.group, request.everyone).map_err(status_of)?;
        let sender = if request.sender_id.is_empty() {
            "system"
        } else {
            request.sender_id.as_str()
        };
        let messages = push_messages(
            &audience,
            &request.message,
            sender,
            &self.inner.ids,
            self.inner.config.max_body,
        )
        .map_err(status_of)?;
        let mut pushed = Vec::with_capacity(messages.len());
        for (receiver, outgoing) in messages {
            let receipt = self.route_now(&outgoing).await.map_err(status_of)?;
            pushed.push(proto::Pushed {
                receiver_id: receiver,
                message_id: outgoing.message_id.to_string(),
                sessions: receipt.sessions.unwrap_or(0) as u64,
            });
        }
        Ok(Response::new(proto::PushReply { pushed }))
    }

    async fn add_members(
        &self,
        request: Request<proto::MembersRequest>,
    ) -> Result<Response<proto::MembersReply>, Status> {
        self.check_key(&request)?;
        let request = request.into_inner();
        let users = convert::users(request.users)?;
        self.inner
            .routing
            .add_members(&request.group, &users)
            .await
            .map_err(status_of)?;
        self.members_reply(request.group)
    }

    async fn remove_members(
        &self,
        request: Request<proto::MembersRequest>,
    ) -> Result<Response<proto::MembersReply>, Status> {
        self.check_key(&request)?;
        let request = request.into_inner();
        let users = convert::users(request.users)?;
        self.inner
            .routing
            .remove_members(&request.group, &users)
            .await
            .map_err(status_of)?;
        let members = match self.inner.routing.groups().sorted_members(&request.group) {
            // The last member left: the group is gone, and empty.
            Err(RouterError::UnknownGroup { .. }) => Vec::new(),
            members => members.map_err(status_of)?,
        };
        Ok(members_reply(request.group, &members))
    }

    async fn list_members(
        &self,
        request: Request<proto::GroupRequest>,
    ) -> Result<Response<proto::MembersReply>, Status> {
        self.check_key(&request)?;
        self.members_reply(request.into_inner().group)
    }

    async fn presence(
        &self,
        request: Request<proto::UserRequest>,
    ) -> Result<Response<proto::PresenceReply>, Status> {
        self.check_key(&request)?;
        let user = request.into_inner().user;
        if user.is_empty() {
            return Err(Status::invalid_argument("user must not be empty"));
        }
        let sessions = self
            .inner
            .presence
            .get(user.as_str())
            .map(|s| s.iter().map(convert::session_to_proto).collect())
            .unwrap_or_default();
        Ok(Response::new(proto::PresenceReply { user, sessions }))
    }

    async fn kick(&self, request: Request<proto::KickRequest>) -> Result<Response<proto::KickReply>, Status> {
        self.check_key(&request)?;
        let request = request.into_inner();
        if request.user.is_empty() {
            return Err(Status::invalid_argument("user must not be empty"));
        }
        let reason = request.reason;
        let kicked = self.kick_now(&request.user, &reason) as u64;
        Ok(Response::new(proto::KickReply {
            user: request.user,
            kicked,
        }))
    }

    async fn inbox_state(
        &self,
        request: Request<proto::UserRequest>,
    ) -> Result<Response<proto::InboxStateReply>, Status> {
        self.check_key(&request)?;
        let user = request.into_inner().user;
        if user.is_empty() {
            return Err(Status::invalid_argument("user must not be empty"));
        }
        let reply = match self.inbox_state(&user).await.map_err(status_of)? {
            Some(state) => proto::InboxStateReply {
                on: true,
                epoch: state.epoch.to_string(),
                oldest: state.oldest,
                head: state.head,
                held: state.held,
            },
            None => proto::InboxStateReply::default(),
        };
        Ok(Response::new(reply))
    }

    async fn read_inbox(
        &self,
        request: Request<proto::ReadInboxRequest>,
    ) -> Result<Response<proto::ReadInboxReply>, Status> {
        self.check_key(&request)?;
        let request = request.into_inner();
        if request.user.is_empty() {
            return Err(Status::invalid_argument("user must not be empty"));
        }
        // A bounded read: a gateway asks again for more.
        let max = (request.max as usize).clamp(1, READ_MAX);
        let read = self
            .inner
            .routing
            .inbox()
            .read(&request.user, request.after, max)
            .await
            .map_err(|e| status_of(e.into()))?;
        Ok(Response::new(convert::read_to_proto(read)))
    }

    async fn marks(
        &self,
        request: Request<proto::UserRequest>,
    ) -> Result<Response<proto::MarksReply>, Status> {
        self.check_key(&request)?;
        let user = request.into_inner().user;
        if user.is_empty() {
            return Err(Status::invalid_argument("user must not be empty"));
        }
        Ok(Response::new(self.marks_reply(&user).await?))
    }
}

impl CentralRouter {
    async fn marks_reply(&self, user: &str) -> Result<proto::MarksReply, Status> {
        let marks = self
            .inner
            .routing
            .inbox()
            .marks(user)
            .await
            .map_err(|e| status_of(e.into()))?;
        Ok(proto::MarksReply {
            marks: marks
                .into_iter()
                .map(|(key, message_id)| proto::Mark { key, message_id })
                .collect(),
        })
    }
}

/// Entries one `ReadInbox` answers at most.
const READ_MAX: usize = 1024;

impl CentralRouter {
    fn members_reply(&self, group: String) -> Result<Response<proto::MembersReply>, Status> {
        let members = self
            .inner
            .routing
            .groups()
            .sorted_members(&group)
            .map_err(status_of)?;
        Ok(members_reply(group, &members))
    }
}

fn members_reply(group: String, members: &[UserId]) -> Response<proto::MembersReply> {
    Response::new(proto::MembersReply {
        group,
        members: members.iter().map(|m| m.to_string()).collect(),
    })
}

/// Routing, for an application that embeds the router: push with
/// [`route`](Self::route), read inboxes. Sessions are not attached here:
/// they live on gateways, which link.
impl CentralRouter {
    /// Routes a message (a push of the application's own, with its own
    /// ids) as a gateway's would be: stored, then sent to the gateways
    /// holding its recipients.
    ///
    /// # Errors
    /// As the routing rules ([`jim_router::recipients`]); an inbox store
    /// that did not keep it.
    pub async fn route(&self, message: Outgoing) -> Result<Receipt, RouterError> {
        self.route_now(&message).await
    }

    /// Where `user`'s inbox stands; `None` when the store is `off`.
    ///
    /// # Errors
    /// [`RouterError::Inbox`].
    pub async fn inbox_state(&self, user: &str) -> Result<Option<InboxState>, RouterError> {
        self.inner.routing.inbox_state(user).await
    }

    /// Up to `max` entries of `user`'s inbox after offset `after`.
    ///
    /// # Errors
    /// [`RouterError::Inbox`].
    pub async fn read_inbox(&self, user: &str, after: u32, max: usize) -> Result<InboxRead, RouterError> {
        self.inner.routing.read_inbox(user, after, max).await
    }
}

/// The directory, for an application that embeds the router.
impl Directory for CentralRouter {
    async fn add_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        self.inner.routing.add_members(group, users).await
    }

    async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        self.inner.routing.remove_members(group, users).await
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, RouterError> {
        self.inner.routing.groups().sorted_members(group)
    }

    async fn presence(&self, user: &str) -> Result<Vec<SessionInfo>, RouterError> {
        Ok(self
            .inner
            .presence
            .get(user)
            .map(|s| s.clone())
            .unwrap_or_default())
    }

    async fn kick(&self, user: &str, reason: &str) -> Result<usize, RouterError> {
        Ok(self.kick_now(user, reason))
    }
}

/// Where sessions are, as the router's presence knows it.
struct Presence<'a>(&'a Inner);

impl Placement for Presence<'_> {
    fn sessions_of(&self, user: &str, each: &mut dyn FnMut(u16, SessionId)) {
        if let Some(sessions) = self.0.presence.get(user) {
            for session in sessions.iter() {
                each(session.node, session.id);
            }
        }
    }

    fn nodes(&self) -> Vec<(u16, usize)> {
        let mut nodes: HashMap<u16, usize> = self.0.links.iter().map(|link| (*link.key(), 0)).collect();
        for sessions in self.0.presence.iter() {
            for session in sessions.iter() {
                *nodes.entry(session.node).or_default() += 1;
            }
        }
        nodes.into_iter().collect()
    }
}
