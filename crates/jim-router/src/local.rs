//! The in-process backend: one gateway, the hub is the whole world.

use std::sync::Arc;

use jim_inbox::Retention;
use jim_model::MessageKind;

use crate::{
    ClientAck, Directory, Groups, Hub, Inbox, InboxRead, InboxState, Observer, Outgoing, Planned, Receipt,
    Router, RouterError, Routing, SessionChange, SessionInfo, TryRoute, UserId,
};

/// The `local` routing backend: every session is in this process.
///
/// Every message to users or a group is appended to its recipients'
/// [`Inbox`] before the route is confirmed (the memory store unless
/// [`open`](LocalRouter::open) chose another), so that a recipient who is
/// offline gets it when it comes back.
///
/// Cheap to clone (clones share one router). An application can create
/// it, hand a clone to the gateway, and keep one to push messages, manage
/// groups and read presence in-process.
///
/// ```
/// use jim_model::{Message, MessageIdGenerator, Text};
/// use jim_router::{Directory, LocalRouter, Outgoing, Router, Target};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let router = LocalRouter::new();
/// router.add_members("team", &["alice".into(), "bob".into()]).await?;
/// assert_eq!(router.members("team").await?.len(), 2);
///
/// let ids = MessageIdGenerator::new(0).unwrap();
/// let body = Message::Text(Text::new("team", "deploy at 5pm")).to_vec();
/// let push = Outgoing::push(Target::Group("team".into()), &body, "ops-bot", &ids).unwrap();
/// let receipt = router.route(push).await?;
/// assert_eq!(receipt.sessions, Some(0)); // nobody is connected in this example
/// # Ok::<(), jim_router::RouterError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct LocalRouter {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    hub: Arc<Hub>,
    routing: Routing,
}

impl std::fmt::Debug for LocalRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRouter")
            .field("sessions", &self.inner.hub.session_count())
            .field("groups", &self.inner.routing.groups().len())
            .field("observers", &self.inner.routing.observers().len())
            .field("inbox", self.inner.routing.inbox())
            .finish()
    }
}

impl LocalRouter {
    /// A router with no sessions, groups or observers, and a memory inbox.
    pub fn new() -> LocalRouter {
        LocalRouter::default()
    }

    /// A router whose observers see every accepted message and client ack.
    pub fn with_observers(observers: Vec<Arc<dyn Observer>>) -> LocalRouter {
        LocalRouter::with_hub(
            Arc::default(),
            Routing::new(Inbox::memory(Retention::default()), observers),
        )
    }

    /// A router delivering into `hub` (the gateway's sessions) and planning
    /// with `routing`.
    pub fn with_hub(hub: Arc<Hub>, routing: Routing) -> LocalRouter {
        LocalRouter {
            inner: Arc::new(Inner { hub, routing }),
        }
    }

    /// A router keeping its inboxes and groups in `inbox`: the groups the
    /// store kept (a `disk` store across a restart) are back at once.
    ///
    /// ```
    /// use jim_router::inbox::{Inbox, Retention, StoreKind};
    /// use jim_router::{Directory, LocalRouter};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let kind = StoreKind::Disk { dir: dir.path().into() };
    /// let router = LocalRouter::open(Inbox::open(&kind, Retention::default(), Default::default()).await?, vec![]).await?;
    /// router.add_members("team", &["alice".into()]).await?;
    /// drop(router);
    /// # let router = loop { if let Ok(inbox) = Inbox::open(&kind, Retention::default(), Default::default()).await { break LocalRouter::open(inbox, vec![]).await?; } };
    /// // ...restarted on the same directory:
    /// assert_eq!(router.members("team").await?, vec![jim_router::UserId::from("alice")]);
    /// # Ok::<(), jim_router::RouterError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`RouterError::Inbox`] if the kept groups cannot be read.
    pub async fn open(inbox: Inbox, observers: Vec<Arc<dyn Observer>>) -> Result<LocalRouter, RouterError> {
        Ok(LocalRouter::with_hub(
            Arc::default(),
            Routing::open(inbox, observers).await?,
        ))
    }

    /// The inbox store.
    pub fn inbox(&self) -> &Inbox {
        self.inner.routing.inbox()
    }

    /// Group membership.
    pub fn groups(&self) -> &Groups {
        self.inner.routing.groups()
    }

    /// Applies a planned message to this process's sessions.
    fn deliver(&self, message: &Outgoing, planned: Planned<'_>) -> Receipt {
        match planned {
            Planned::Deliver { delivery, receipt } => {
                let sessions = self.inner.hub.apply(&delivery).sessions;
                let hub = &self.inner.hub;
                self.inner
                    .routing
                    .observers()
                    .stored(message, &delivery, |user| hub.has_user(user));
                Receipt {
                    sessions: Some(sessions),
                    ..receipt
                }
            }
            Planned::Retry(receipt) => receipt,
        }
    }
}

impl Directory for LocalRouter {
    async fn add_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        self.inner.routing.add_members(group, users).await
    }

    async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        self.inner.routing.remove_members(group, users).await
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, RouterError> {
        self.groups().sorted_members(group)
    }

    async fn presence(&self, user: &str) -> Result<Vec<SessionInfo>, RouterError> {
        Ok(self.inner.hub.sessions_of(user))
    }

    async fn kick(&self, user: &str, reason: &str) -> Result<usize, RouterError> {
        Ok(self.inner.hub.kick(user, reason))
    }
}

impl Router for LocalRouter {
    fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Nothing to tell but the observers: the hub is the whole world.
    async fn announce(&self, info: &SessionInfo) -> Result<(), RouterError> {
        self.inner
            .routing
            .observers()
            .session(&info.user, SessionChange::Opened);
        Ok(())
    }

    async fn withdraw(&self, info: &SessionInfo) -> Result<(), RouterError> {
        self.inner
            .routing
            .observers()
            .session(&info.user, SessionChange::Closed);
        Ok(())
    }

    async fn route(&self, message: Outgoing) -> Result<Receipt, RouterError> {
        if message.kind == MessageKind::Ack {
            return Ok(match self.inner.routing.mark(&message).await? {
                Some(planned) => self.deliver(&message, planned),
                None => Receipt::default(),
            });
        }
        let planned = self.inner.routing.plan(&message, |_| Ok(())).await?;
        Ok(self.deliver(&message, planned))
    }

    fn try_route(&self, message: Outgoing) -> TryRoute {
        if message.kind == MessageKind::Ack {
            // A receipt: its mark first, at once with a memory store.
            return match self.inner.routing.mark_now(&message) {
                Some(marked) => TryRoute::Routed(
                    marked
                        .map(|planned| planned.map_or_else(Receipt::default, |p| self.deliver(&message, p))),
                ),
                None => TryRoute::Later(message),
            };
        }
        match self.inner.routing.plan_now(&message) {
            Some(planned) => TryRoute::Routed(planned.map(|planned| self.deliver(&message, planned))),
            None => TryRoute::Later(message),
        }
    }

    async fn acknowledge(&self, ack: ClientAck) -> Result<(), RouterError> {
        self.inner.routing.observers().ack(&ack);
        Ok(())
    }

    async fn inbox_state(&self, user: &str) -> Result<Option<InboxState>, RouterError> {
        self.inner.routing.inbox_state(user).await
    }

    async fn read_inbox(&self, user: &str, after: u32, max: usize) -> Result<InboxRead, RouterError> {
        self.inner.routing.read_inbox(user, after, max).await
    }

    async fn marks(&self, user: &str) -> Result<Vec<(String, u64)>, RouterError> {
        Ok(self.inner.routing.inbox().marks(user).await?)
    }

    fn is_ready(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use jim_inbox::StoreKind;
    use jim_model::{Message, MessageIdGenerator, Text};

    use super::*;
    use crate::Target;

    fn to_bob(ids: &MessageIdGenerator) -> Outgoing {
        let body = Message::Text(Text::new("bob", "hi")).to_vec();
        Outgoing::push(Target::User("bob".into()), &body, "bot", ids).unwrap()
    }

    #[tokio::test]
    async fn a_memory_inbox_routes_at_once_and_a_disk_one_later_storing_once() {
        let ids = MessageIdGenerator::new(0).unwrap();
        let memory = LocalRouter::new();
        let TryRoute::Routed(receipt) = memory.try_route(to_bob(&ids)) else {
            panic!("a memory inbox settles at once")
        };
        assert_eq!(receipt.unwrap().sessions, Some(0));
        assert_eq!(memory.inbox().state("bob").await.unwrap().head, 1);

        let dir = tempfile::tempdir().unwrap();
        let kind = StoreKind::Disk {
            dir: dir.path().into(),
        };
        let inbox = Inbox::open(&kind, Retention::default(), Default::default())
            .await
            .unwrap();
        let disk = LocalRouter::open(inbox, Vec::new()).await.unwrap();
        let TryRoute::Later(message) = disk.try_route(to_bob(&ids)) else {
            panic!("a disk inbox waits for its write")
        };
        // Given back untouched: nothing was stored yet.
        assert_eq!(disk.inbox().state("bob").await.unwrap().head, 0);
        disk.route(message).await.unwrap();
        assert_eq!(disk.inbox().state("bob").await.unwrap().head, 1);
    }
}
