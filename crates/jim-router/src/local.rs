//! The in-process backend: one gateway, the hub is the whole world.

use std::sync::Arc;

use jim_inbox::{Appended, Retention};
use jim_model::MessageId;

use crate::{
    ClientAck, Groups, Hub, Inbox, InboxRead, InboxState, Observer, Observers, Outbox, Outgoing, Receipt,
    Recipients, Router, RouterError, SessionId, SessionInfo, TryRoute, UserId, UserList, recipients,
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

struct Inner {
    hub: Hub,
    groups: Groups,
    observers: Observers,
    inbox: Inbox,
    /// Group changes are kept in the store in the order they were made.
    group_changes: tokio::sync::Mutex<()>,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            hub: Hub::default(),
            groups: Groups::default(),
            observers: Observers::default(),
            inbox: Inbox::memory(Retention::default()),
            group_changes: tokio::sync::Mutex::new(()),
        }
    }
}

impl std::fmt::Debug for LocalRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRouter")
            .field("sessions", &self.inner.hub.session_count())
            .field("groups", &self.inner.groups.len())
            .field("observers", &self.inner.observers.len())
            .field("inbox", &self.inner.inbox)
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
        LocalRouter {
            inner: Arc::new(Inner {
                observers: observers.into(),
                ..Inner::default()
            }),
        }
    }

    /// A router keeping its inboxes and groups in `inbox`: the groups the
    /// store kept (a `disk` store across a restart) are back at once.
    ///
    /// ```
    /// use jim_router::inbox::{Inbox, Retention, StoreKind};
    /// use jim_router::{LocalRouter, Router};
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
        let groups = Groups::new();
        for (group, members) in inbox.groups().await? {
            groups.add(&group, &members)?;
        }
        Ok(LocalRouter {
            inner: Arc::new(Inner {
                groups,
                observers: observers.into(),
                inbox,
                ..Inner::default()
            }),
        })
    }

    /// The inbox store.
    pub fn inbox(&self) -> &Inbox {
        &self.inner.inbox
    }

    /// The sessions of this process.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Group membership.
    pub fn groups(&self) -> &Groups {
        &self.inner.groups
    }

    /// Who gets `message`: its users and the session left out, or, for a
    /// push to everyone (which no inbox keeps), its receipt once queued.
    fn recipients<'m>(
        &self,
        message: &'m Outgoing,
    ) -> Result<Result<(UserList<'m>, Option<SessionId>), Receipt>, RouterError> {
        match recipients(message, &self.inner.groups, &self.inner.observers, |_| Ok(()))? {
            Recipients::Users { users, except } => Ok(Ok((users, except))),
            Recipients::Everyone => {
                let delivered = self.inner.hub.deliver_to_all(message.cmd, &message.body);
                Ok(Err(Receipt {
                    sessions: Some(delivered.sessions),
                    ..Receipt::default()
                }))
            }
        }
    }

    /// Queues a message stored in its recipients' inboxes to their
    /// sessions here, with its offsets.
    fn deliver(
        &self,
        message: &Outgoing,
        users: &UserList<'_>,
        except: Option<SessionId>,
        appended: Appended,
    ) -> Receipt {
        let (offsets, offset) = match appended {
            Appended::Stored {
                offsets,
                sender_offset,
            } => (offsets, sender_offset),
            Appended::Duplicate {
                message_id,
                sender_offset,
            } => {
                return Receipt {
                    sessions: Some(0),
                    offset: sender_offset,
                    original: Some(MessageId(message_id)),
                    recipients: 0,
                };
            }
        };
        let mut delivered = crate::Delivered::default();
        for (user, offset) in users.iter().zip(offsets) {
            delivered += self
                .inner
                .hub
                .deliver_to_user(user, message.cmd, &message.body, except, offset);
        }
        Receipt {
            sessions: Some(delivered.sessions),
            offset,
            original: None,
            recipients: users.len(),
        }
    }

    /// Keeps a group's members as they are now in the store.
    async fn save_group(&self, group: &str) -> Result<(), RouterError> {
        let members = match self.inner.groups.members(group) {
            Ok(members) => members.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        Ok(self.inner.inbox.save_group(group, members).await?)
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
        let (users, except) = match self.recipients(&message)? {
            Ok(users) => users,
            Err(receipt) => return Ok(receipt),
        };
        let appended = self
            .inner
            .inbox
            .append(users.iter(), &message.stored(except))
            .await?;
        Ok(self.deliver(&message, &users, except, appended))
    }

    fn try_route(&self, message: Outgoing) -> TryRoute {
        if !self.inner.inbox.settles_at_once() {
            return TryRoute::Later(message);
        }
        let routed = self.recipients(&message).and_then(|recipients| match recipients {
            Ok((users, except)) => {
                let appended = self
                    .inner
                    .inbox
                    .append_now(users.iter(), &message.stored(except))?;
                Ok(self.deliver(&message, &users, except, appended))
            }
            Err(receipt) => Ok(receipt),
        });
        TryRoute::Routed(routed)
    }

    async fn acknowledge(&self, ack: ClientAck) -> Result<(), RouterError> {
        self.inner.observers.ack(&ack);
        Ok(())
    }

    async fn add_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let _in_order = self.inner.group_changes.lock().await;
        self.inner.groups.add(group, users)?;
        self.save_group(group).await
    }

    async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let _in_order = self.inner.group_changes.lock().await;
        self.inner.groups.remove(group, users)?;
        self.save_group(group).await
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

    async fn inbox_state(&self, user: &str) -> Result<Option<InboxState>, RouterError> {
        if !self.inner.inbox.is_on() {
            return Ok(None);
        }
        Ok(Some(self.inner.inbox.state(user).await?))
    }

    async fn read_inbox(&self, user: &str, after: u32, max: usize) -> Result<InboxRead, RouterError> {
        Ok(self.inner.inbox.read(user, after, max).await?)
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn local_hub(&self) -> Option<&Hub> {
        Some(&self.inner.hub)
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
