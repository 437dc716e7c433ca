//! The routing contract every backend implements.

use std::future::Future;
use std::sync::Arc;

use crate::{
    ClientAck, Hub, InboxRead, InboxState, Outbox, Outgoing, Receipt, RouterError, SessionInfo, UserId,
};

/// Where a gateway's sessions are announced and its messages routed.
///
/// Implemented by the in-process [`LocalRouter`](crate::LocalRouter), by the
/// gRPC backend (a central router service) and by the Kafka backend. Every
/// method is async and fallible, and nothing assumes the recipient is in
/// this process: a backend delivers to sessions on this gateway through its
/// [`Hub`](crate::Hub) and forwards the rest.
///
/// The futures are `Send`, so a gateway can hold any router in spawned tasks.
pub trait Router: Send + Sync + 'static {
    /// A session authenticated: deliver its user's messages to `outbox`.
    fn attach(
        &self,
        info: SessionInfo,
        outbox: Arc<Outbox>,
    ) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// A session ended.
    fn detach(&self, info: &SessionInfo) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// Routes an accepted message. `Ok` means the backend took it (in local
    /// mode: queued to every online recipient session); only then is the
    /// sender acked.
    fn route(&self, message: Outgoing) -> impl Future<Output = Result<Receipt, RouterError>> + Send;

    /// Records a client's ack of a message it received (observers see it;
    /// it is not delivered).
    fn acknowledge(&self, ack: ClientAck) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// Adds users to a group, creating it if needed.
    fn add_members(
        &self,
        group: &str,
        users: &[UserId],
    ) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// Removes users from a group; a group left with no members is gone.
    ///
    /// Fails with [`RouterError::UnknownGroup`] for a group with no members.
    fn remove_members(
        &self,
        group: &str,
        users: &[UserId],
    ) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// The members of a group, sorted.
    ///
    /// Fails with [`RouterError::UnknownGroup`] for a group with no members.
    fn members(&self, group: &str) -> impl Future<Output = Result<Vec<UserId>, RouterError>> + Send;

    /// Every session of a user, on every gateway.
    fn presence(&self, user: &str) -> impl Future<Output = Result<Vec<SessionInfo>, RouterError>> + Send;

    /// Closes every session of a user with `A999` 1008 "kicked" or
    /// "kicked: `reason`" (an empty `reason`: none; see
    /// [`Close::kicked`](crate::Close::kicked)); returns how many sessions
    /// were told.
    fn kick(&self, user: &str, reason: &str) -> impl Future<Output = Result<usize, RouterError>> + Send;

    /// Where `user`'s inbox stands; `None` when this backend keeps no
    /// inbox (the store is `off`).
    fn inbox_state(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<InboxState>, RouterError>> + Send {
        let _ = user;
        async { Ok(None) }
    }

    /// Up to `max` entries of `user`'s inbox after offset `after`, oldest
    /// first (a session replaying, or filling a gap).
    fn read_inbox(
        &self,
        user: &str,
        after: u32,
        max: usize,
    ) -> impl Future<Output = Result<InboxRead, RouterError>> + Send {
        let _ = (user, after, max);
        async {
            Ok(InboxRead {
                epoch: "".into(),
                entries: Vec::new(),
            })
        }
    }

    /// Routes `message` without waiting if this backend can (nothing to
    /// wait for on the way: the local backend with a memory inbox or
    /// none), else gives it back for [`route`](Self::route). A session
    /// answers what is routed at once in line, with no future of its own
    /// per message; the default routes nothing at once.
    ///
    /// ```
    /// use jim_router::{LocalRouter, Outgoing, Router, Target, TryRoute};
    /// use jim_model::{Message, MessageIdGenerator, Text};
    ///
    /// let router = LocalRouter::new(); // a memory inbox: settles at once
    /// let ids = MessageIdGenerator::new(0).unwrap();
    /// let body = Message::Text(Text::new("bob", "hi")).to_vec();
    /// let push = Outgoing::push(Target::User("bob".into()), &body, "bot", &ids).unwrap();
    /// let TryRoute::Routed(receipt) = router.try_route(push) else { unreachable!() };
    /// assert_eq!(receipt?.sessions, Some(0)); // bob is away: it waits in his inbox
    /// # Ok::<(), jim_router::RouterError>(())
    /// ```
    fn try_route(&self, message: Outgoing) -> TryRoute {
        TryRoute::Later(message)
    }

    /// Whether messages can be routed now (for `/readyz`).
    fn is_ready(&self) -> bool;

    /// The sessions attached through this backend in this process (for a
    /// gateway's limits that count them); `None` for a backend that holds
    /// no client sessions (the central router itself).
    fn local_hub(&self) -> Option<&Hub> {
        None
    }

    /// The gateway is shutting down (its sessions are closed): leave the
    /// deployment cleanly, so that others stop routing here at once.
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What [`Router::try_route`] did with a message.
#[derive(Debug)]
pub enum TryRoute {
    /// Routed at once: the receipt, or why it was refused.
    Routed(Result<Receipt, RouterError>),
    /// Not without waiting: route it with [`Router::route`].
    Later(Outgoing),
}
