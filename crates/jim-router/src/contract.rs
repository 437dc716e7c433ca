//! The routing contract: what a gateway asks of its backend, and the
//! directory (groups, presence, kick) every deployment answers.

use std::future::Future;
use std::sync::Arc;

use crate::{ClientAck, Hub, InboxRead, InboxState, Outgoing, Receipt, RouterError, SessionInfo, UserId};

/// Who is where and in which group: what an application asks of any
/// deployment, whether it embeds a gateway's backend or the central
/// router.
///
/// The futures are `Send`, so any directory can be held in spawned tasks.
pub trait Directory: Send + Sync + 'static {
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
}

/// What a gateway's routing backend does: route its sessions' messages,
/// and say where those sessions are.
///
/// Implemented by the in-process [`LocalRouter`](crate::LocalRouter), by
/// the gRPC backend (a central router service) and by the Kafka backend.
/// The gateway owns the [`Hub`] of its sessions and gives it to the
/// backend when building it: every message for those sessions, planned
/// here or carried from elsewhere, is applied to that hub as a
/// [`Delivery`](crate::Delivery). What differs between backends is only
/// where a delivery's recipients are and how it gets there.
pub trait Router: Directory {
    /// The sessions of this process, which every delivery for them is
    /// applied to. The gateway attaches each session here before
    /// [`announce`](Self::announce) and detaches it before
    /// [`withdraw`](Self::withdraw).
    fn hub(&self) -> &Arc<Hub>;

    /// A session of this process authenticated (it is in the
    /// [`hub`](Self::hub) already): tell the deployment where it is. Once
    /// this returns, every message routed to its user reaches it.
    fn announce(&self, info: &SessionInfo) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// A session ended (it left the hub already): tell the deployment.
    fn withdraw(&self, info: &SessionInfo) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// Routes an accepted message. `Ok` means the backend took it (in local
    /// mode: queued to every online recipient session); only then is the
    /// sender acked.
    fn route(&self, message: Outgoing) -> impl Future<Output = Result<Receipt, RouterError>> + Send;

    /// Records a client's ack of a message it received (observers see it;
    /// it is not delivered).
    fn acknowledge(&self, ack: ClientAck) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// Where `user`'s inbox stands; `None` when this deployment keeps no
    /// inbox (the store is `off`).
    fn inbox_state(&self, user: &str)
    -> impl Future<Output = Result<Option<InboxState>, RouterError>> + Send;

    /// Up to `max` entries of `user`'s inbox after offset `after`, oldest
    /// first (a session replaying, or filling a gap).
    fn read_inbox(
        &self,
        user: &str,
        after: u32,
        max: usize,
    ) -> impl Future<Output = Result<InboxRead, RouterError>> + Send;

    /// Every receipt mark of `user`: (key, message id), as
    /// [`Mark::key`](jim_model::Mark::key) names them.
    fn marks(&self, user: &str) -> impl Future<Output = Result<Vec<(String, u64)>, RouterError>> + Send;

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

    /// The gateway is shutting down and nothing routes any more: waits
    /// until what its own routes delivered to its own sessions has reached
    /// their outboxes, so that their goodbye comes after it. The default
    /// waits for nothing: a backend that delivers before it answers a
    /// route (local, grpc) is settled by then. The caller bounds the wait.
    fn settle(&self) -> impl Future<Output = ()> + Send {
        async {}
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
