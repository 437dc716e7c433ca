//! The in-process backend: one gateway, the hub is the whole world.

use std::sync::Arc;

use crate::{
    ClientAck, Groups, Hub, Observer, Observers, Outbox, Outgoing, Receipt, Recipients, Router, RouterError,
    SessionInfo, UserId, recipients,
};

/// The `local` routing backend: every session is in this process.
///
/// Cheap to clone (clones share one router). An application can create
/// it, hand a clone to the gateway, and keep one to push messages, manage
/// groups and read presence in-process.
///
/// ```
/// use jim_model::{Message, MessageIdGenerator, Text};
/// use jim_router::{LocalRouter, Outgoing, Router, Target};
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
    hub: Hub,
    groups: Groups,
    observers: Observers,
}

impl std::fmt::Debug for LocalRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRouter")
            .field("sessions", &self.inner.hub.session_count())
            .field("groups", &self.inner.groups.len())
            .field("observers", &self.inner.observers.len())
            .finish()
    }
}

impl LocalRouter {
    /// A router with no sessions, groups or observers.
    pub fn new() -> LocalRouter {
        LocalRouter::default()
    }

    /// A router whose observers see every accepted message and client ack.
    pub fn with_observers(observers: Vec<Arc<dyn Observer>>) -> LocalRouter {
        LocalRouter {
            inner: Arc::new(Inner {
                observers: observers.into(),
                ..Inner::default()
            }),
        }
    }

    /// The sessions of this process.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Group membership.
    pub fn groups(&self) -> &Groups {
        &self.inner.groups
    }

    /// Routes synchronously: the whole of `route` for this backend.
    fn route_now(&self, message: &Outgoing) -> Result<Receipt, RouterError> {
        let hub = &self.inner.hub;
        let delivered = match recipients(message, &self.inner.groups, &self.inner.observers, |_| Ok(()))? {
            Recipients::Users { users, except } => {
                let mut delivered = crate::Delivered::default();
                for user in users.iter() {
                    delivered += hub.deliver_to_user(user, message.cmd, &message.body, except);
                }
                delivered
            }
            Recipients::Everyone => hub.deliver_to_all(message.cmd, &message.body),
        };
        Ok(Receipt {
            sessions: Some(delivered.sessions),
        })
    }
}

impl Router for LocalRouter {
    async fn attach(&self, info: SessionInfo, outbox: Arc<Outbox>) -> Result<(), RouterError> {
        self.inner.hub.attach(info, outbox);
        Ok(())
    }

    async fn detach(&self, info: &SessionInfo) -> Result<(), RouterError> {
        self.inner.hub.detach(&info.user, info.id);
        Ok(())
    }

    async fn route(&self, message: Outgoing) -> Result<Receipt, RouterError> {
        self.route_now(&message)
    }

    async fn acknowledge(&self, ack: ClientAck) -> Result<(), RouterError> {
        self.inner.observers.ack(&ack);
        Ok(())
    }

    async fn add_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        self.inner.groups.add(group, users)
    }

    async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        self.inner.groups.remove(group, users)
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, RouterError> {
        self.inner.groups.sorted_members(group)
    }

    async fn presence(&self, user: &str) -> Result<Vec<SessionInfo>, RouterError> {
        Ok(self.inner.hub.sessions_of(user))
    }

    async fn kick(&self, user: &str, reason: &str) -> Result<usize, RouterError> {
        Ok(self.inner.hub.kick(user, reason))
    }

    fn is_ready(&self) -> bool {
        true
    }
}
