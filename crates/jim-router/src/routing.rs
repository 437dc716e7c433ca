//! Routing, written once for every backend: the rules, the inbox append
//! and the [`Delivery`] they plan; group changes kept in order; inbox
//! reads. What differs between modes is only where the planned delivery
//! goes (this process's hub, the gateways a central router knows, the
//! gateways a Kafka view knows).

use bytes::Bytes;
use jim_inbox::{Appended, Pending};
use jim_model::{Conversation, Mark, MarkStatus, MessageId};
use jim_protocol::Command;

use crate::{
    Delivery, Groups, Inbox, InboxRead, InboxState, Observer, Observers, Outgoing, Receipt, Recipients,
    RouterError, SessionId, Target, UserId, UserList, recipients, with_sender_copy,
};

/// The state every routing backend plans with: group membership, the
/// observers, and the inbox store.
///
/// ```
/// use jim_model::{Message, MessageIdGenerator, Text};
/// use jim_router::{Hub, Outgoing, Planned, Routing, Target};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let routing = Routing::default(); // a memory inbox
/// let ids = MessageIdGenerator::new(0).unwrap();
/// let body = Message::Text(Text::new("bob", "hi")).to_vec();
/// let push = Outgoing::push(Target::User("bob".into()), &body, "bot", &ids).unwrap();
/// let Planned::Deliver { delivery, receipt } = routing.plan(&push, |_| Ok(())).await? else {
///     unreachable!("not a retry")
/// };
/// assert_eq!(receipt.recipients, 1);
/// assert_eq!(Hub::new().apply(&delivery).sessions, 0); // bob's inbox keeps it
/// # Ok::<(), jim_router::RouterError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Routing {
    groups: Groups,
    observers: Observers,
    inbox: Inbox,
    /// Whether a one-to-one message is copied to its sender
    /// ([`with_sender_copy`]).
    sender_copy: bool,
    /// Where typing is relayed.
    typing: TypingSettings,
    /// Who sees receipts.
    receipts: ReceiptSettings,
    /// Group changes are kept in the store in the order they were made.
    group_changes: tokio::sync::Mutex<()>,
}

impl Default for Routing {
    /// No groups, no observers, a memory inbox.
    fn default() -> Routing {
        Routing::new(
            jim_inbox::Inbox::memory(jim_inbox::Retention::default()),
            Vec::new(),
        )
    }
}

/// `[typing]`: where typing (`B104`) is relayed.
///
/// ```
/// let settings = jim_router::TypingSettings::default();
/// assert_eq!(settings.max_group_members, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypingSettings {
    /// In a group of more members than this, nobody is told who types
    /// (the contract's default: 100).
    pub max_group_members: usize,
}

impl Default for TypingSettings {
    fn default() -> TypingSettings {
        TypingSettings {
            max_group_members: 100,
        }
    }
}

/// `[receipts]`: who sees a user's read receipts.
///
/// ```
/// let settings: jim_router::ReceiptSettings = serde_json::from_str(r#"{"read":"private"}"#).unwrap();
/// assert_eq!(settings.read, jim_router::ReadReceipts::Private);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptSettings {
    /// `public` (the default): a one-to-one read mark reaches the other
    /// user too; `private`: only the reader's own devices.
    pub read: ReadReceipts,
}

/// Whether read marks reach the other side of a one-to-one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadReceipts {
    /// To the other user and the reader's devices.
    #[default]
    Public,
    /// To the reader's own devices only.
    Private,
}

/// What routing a message came to.
#[derive(Debug)]
pub enum Planned<'m> {
    /// Deliver it: the message is stored in its recipients' inboxes (or
    /// no inbox keeps it). The receipt lacks only the sessions reached,
    /// which whoever applies or carries the delivery adds.
    Deliver {
        /// Who gets it, at which offsets.
        delivery: Delivery<'m>,
        /// The sender's offset and the recipients' count.
        receipt: Receipt,
    },
    /// A retry of a message accepted earlier: nothing to deliver; its
    /// receipt names the original.
    Retry(Receipt),
}

/// A message whose place in the store's order is taken: see
/// [`Routing::submit`].
#[derive(Debug)]
pub enum Submitted<'m> {
    /// Nothing to store: a push to everyone, or typing (`B104`).
    Unstored(Delivery<'m>),
    /// Appended to these users' inboxes once `pending` says so.
    Users {
        /// The frame's command.
        cmd: Command,
        /// The stamped body.
        body: Bytes,
        /// The recipients.
        users: UserList<'m>,
        /// The sending session.
        except: Option<SessionId>,
        /// The append.
        pending: Pending,
    },
}

impl Routing {
    /// Routing with `inbox` as its store and `observers` seeing every
    /// message, copying one-to-one messages to their senders; no groups
    /// yet (see [`open`](Self::open)).
    pub fn new(inbox: Inbox, observers: Vec<std::sync::Arc<dyn Observer>>) -> Routing {
        Routing {
            groups: Groups::new(),
            observers: observers.into(),
            inbox,
            sender_copy: true,
            typing: TypingSettings::default(),
            receipts: ReceiptSettings::default(),
            group_changes: tokio::sync::Mutex::new(()),
        }
    }

    /// The same, relaying typing (`B104`) as `settings` say (`[typing]`).
    #[must_use]
    pub fn typing(mut self, settings: TypingSettings) -> Routing {
        self.typing = settings;
        self
    }

    /// The same, with receipts shown as `settings` say (`[receipts]`).
    #[must_use]
    pub fn receipts(mut self, settings: ReceiptSettings) -> Routing {
        self.receipts = settings;
        self
    }

    /// The same, copying one-to-one messages to their senders or not
    /// (`inbox.sender_copy`; see [`with_sender_copy`]).
    #[must_use]
    pub fn sender_copy(mut self, on: bool) -> Routing {
        self.sender_copy = on;
        self
    }

    /// As [`new`](Self::new), with the groups the store kept (a `disk`
    /// store across a restart).
    ///
    /// # Errors
    /// [`RouterError::Inbox`] if the kept groups cannot be read.
    pub async fn open(
        inbox: Inbox,
        observers: Vec<std::sync::Arc<dyn Observer>>,
    ) -> Result<Routing, RouterError> {
        let routing = Routing::new(inbox, observers);
        for (group, members) in routing.inbox.groups().await? {
            routing.groups.add(&group, &members)?;
        }
        Ok(routing)
    }

    /// Group membership.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The observers.
    pub fn observers(&self) -> &Observers {
        &self.observers
    }

    /// The inbox store.
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Applies the rules ([`recipients`]) and takes the message's place in
    /// the store's order: messages submitted one after the other get their
    /// offsets in that order. `can_place` is the backend's own check of
    /// the recipients (a router that does not know yet where they are).
    ///
    /// # Errors
    /// As [`recipients`].
    pub fn submit<'m>(
        &self,
        message: &'m Outgoing,
        can_place: impl FnOnce(&Recipients<'m>) -> Result<(), RouterError>,
    ) -> Result<Submitted<'m>, RouterError> {
        let mut recipients = recipients(message, &self.groups, &self.observers, can_place)?;
        if self.sender_copy {
            recipients = with_sender_copy(message, recipients);
        }
        let (users, except) = match recipients {
            Recipients::Users { users, except } if message.cmd == Command::Typing => {
                let users = if message.target.is_group() && users.len() >= self.typing.max_group_members {
                    UserList::Listed(Vec::new()) // a crowd: nobody is told
                } else {
                    users
                };
                let delivery =
                    Delivery::to_users(message.cmd, message.body.clone(), users, Vec::new(), except);
                return Ok(Submitted::Unstored(delivery));
            }
            Recipients::Users { users, except } => (users, except),
            Recipients::Everyone => {
                return Ok(Submitted::Unstored(Delivery::to_everyone(
                    message.cmd,
                    message.body.clone(),
                )));
            }
        };
        let pending = self.inbox.submit(users.iter(), &message.stored(except));
        Ok(Submitted::Users {
            cmd: message.cmd,
            body: message.body.clone(),
            users,
            except,
            pending,
        })
    }

    /// Plans a message: the rules, then the append, then its delivery.
    ///
    /// # Errors
    /// As [`recipients`]; [`RouterError::Inbox`] if nothing was stored.
    pub async fn plan<'m>(
        &self,
        message: &'m Outgoing,
        can_place: impl FnOnce(&Recipients<'m>) -> Result<(), RouterError>,
    ) -> Result<Planned<'m>, RouterError> {
        self.submit(message, can_place)?.stored().await
    }

    /// As [`plan`](Self::plan), without waiting, when the store settles
    /// at once (memory, off); `None` (nothing done) otherwise.
    pub fn plan_now<'m>(&self, message: &'m Outgoing) -> Option<Result<Planned<'m>, RouterError>> {
        // Typing is never stored: it settles at once with any store.
        if !self.inbox.settles_at_once() && message.cmd != Command::Typing {
            return None;
        }
        Some(self.submit(message, |_| Ok(())).and_then(Submitted::settled))
    }

    /// A receipt (a B101 `ack` with a `status`, its body written by
    /// [`Mark::body`]): moves the reader's mark forward in the store and,
    /// if it moved, plans its delivery as an inbox entry to the reader's
    /// other sessions and, one to one, to the other user (unless read
    /// receipts are private). `None` when the mark did not move (it was at
    /// or past this message already): nothing to deliver.
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for a message that is no receipt;
    /// [`RouterError::UnknownGroup`] and [`RouterError::NotMember`] for a
    /// group the reader is not in; an observer's veto; the store's.
    pub async fn mark<'m>(&self, message: &'m Outgoing) -> Result<Option<Planned<'m>>, RouterError> {
        let (sender, mark) = self.check_mark(message)?;
        if !self
            .inbox
            .set_mark(&sender.user, &mark.key(), mark.message_id.0)
            .await?
        {
            return Ok(None);
        }
        let (users, except) = self.mark_recipients(message, sender, &mark);
        let appended = self.inbox.append(users.iter(), &message.stored(except)).await?;
        Ok(Some(planned(
            message.cmd,
            message.body.clone(),
            users,
            except,
            appended,
        )))
    }

    /// As [`mark`](Self::mark), without waiting, when the store settles
    /// at once (memory, off); `None` (nothing done) otherwise.
    pub fn mark_now<'m>(&self, message: &'m Outgoing) -> Option<Result<Option<Planned<'m>>, RouterError>> {
        if !self.inbox.settles_at_once() {
            return None;
        }
        let marked = self.check_mark(message).and_then(|(sender, mark)| {
            let moved = self
                .inbox
                .set_mark_now(&sender.user, &mark.key(), mark.message_id.0);
            if moved != Some(true) {
                return Ok(None);
            }
            let (users, except) = self.mark_recipients(message, sender, &mark);
            let appended = self.inbox.append_now(users.iter(), &message.stored(except))?;
            Ok(Some(planned(
                message.cmd,
                message.body.clone(),
                users,
                except,
                appended,
            )))
        });
        Some(marked)
    }

    /// A receipt's reader and mark, checked: the reader is in the group,
    /// and the observers let it through.
    fn check_mark<'m>(&self, message: &'m Outgoing) -> Result<(&'m crate::Sender, Mark), RouterError> {
        let invalid = |reason: &str| RouterError::Invalid {
            reason: reason.to_owned(),
        };
        let sender = message
            .sender
            .as_ref()
            .ok_or_else(|| invalid("a receipt has a reader"))?;
        let mark = Mark::parse(&message.body)
            .ok()
            .flatten()
            .ok_or_else(|| invalid("not a receipt"))?;
        if let Conversation::Group(group) = &mark.conversation
            && !self.groups.members(group)?.contains(&*sender.user)
        {
            return Err(RouterError::NotMember { group: group.clone() });
        }
        self.observers.accept(message)?;
        Ok((sender, mark))
    }

    /// Who gets a receipt that moved a mark: the reader's other sessions
    /// and, one to one, the other user (unless read receipts are private).
    fn mark_recipients<'m>(
        &self,
        message: &'m Outgoing,
        sender: &'m crate::Sender,
        mark: &Mark,
    ) -> (UserList<'m>, Option<SessionId>) {
        let shared = match (&mark.conversation, mark.status) {
            (Conversation::Group(_), _) => false,
            (Conversation::User(_), MarkStatus::Read) => self.receipts.read == ReadReceipts::Public,
            (Conversation::User(_), MarkStatus::Delivered) => true,
        };
        let users = match &message.target {
            Target::User(other) if shared && **other != *sender.user => UserList::Pair(other, &sender.user),
            _ => UserList::One(&sender.user),
        };
        (users, Some(sender.session))
    }

    /// Adds users to a group, creating it, and keeps the change in the store.
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for an empty id; [`RouterError::Inbox`] if
    /// the store did not keep it.
    pub async fn add_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let _in_order = self.group_changes.lock().await;
        self.groups.add(group, users)?;
        self.save_group(group).await
    }

    /// Removes users from a group (an emptied group is gone), and keeps
    /// the change in the store.
    ///
    /// # Errors
    /// [`RouterError::UnknownGroup`]; [`RouterError::Inbox`] if the store
    /// did not keep it.
    pub async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let _in_order = self.group_changes.lock().await;
        self.groups.remove(group, users)?;
        self.save_group(group).await
    }

    async fn save_group(&self, group: &str) -> Result<(), RouterError> {
        let members = match self.groups.members(group) {
            Ok(members) => members.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        Ok(self.inbox.save_group(group, members).await?)
    }

    /// Where `user`'s inbox stands; `None` when the store is `off`.
    ///
    /// # Errors
    /// [`RouterError::Inbox`].
    pub async fn inbox_state(&self, user: &str) -> Result<Option<InboxState>, RouterError> {
        if !self.inbox.is_on() {
            return Ok(None);
        }
        Ok(Some(self.inbox.state(user).await?))
    }

    /// Up to `max` entries of `user`'s inbox after offset `after`.
    ///
    /// # Errors
    /// [`RouterError::Inbox`].
    pub async fn read_inbox(&self, user: &str, after: u32, max: usize) -> Result<InboxRead, RouterError> {
        Ok(self.inbox.read(user, after, max).await?)
    }
}

impl<'m> Submitted<'m> {
    /// Whether the append is stored already (memory, off): then
    /// [`settled`](Self::settled) plans it without waiting.
    pub fn is_settled(&self) -> bool {
        match self {
            Submitted::Unstored(_) => true,
            Submitted::Users { pending, .. } => pending.is_settled(),
        }
    }

    /// The same, owning its recipients (to wait for the store in a task).
    pub fn into_owned(self) -> Submitted<'static> {
        match self {
            Submitted::Unstored(delivery) => Submitted::Unstored(delivery.into_owned()),
            Submitted::Users {
                cmd,
                body,
                users,
                except,
                pending,
            } => Submitted::Users {
                cmd,
                body,
                users: users.into_owned(),
                except,
                pending,
            },
        }
    }

    /// Waits for the append, then plans the delivery.
    ///
    /// # Errors
    /// [`RouterError::Inbox`] if nothing was stored.
    pub async fn stored(self) -> Result<Planned<'m>, RouterError> {
        match self {
            Submitted::Unstored(delivery) => Ok(everyone(delivery)),
            Submitted::Users {
                cmd,
                body,
                users,
                except,
                pending,
            } => Ok(planned(cmd, body, users, except, pending.await?)),
        }
    }

    /// Plans the delivery of an append that [is settled](Self::is_settled).
    ///
    /// # Errors
    /// [`RouterError::Inbox`] if nothing was stored, or the append had not
    /// settled.
    pub fn settled(self) -> Result<Planned<'m>, RouterError> {
        match self {
            Submitted::Unstored(delivery) => Ok(everyone(delivery)),
            Submitted::Users {
                cmd,
                body,
                users,
                except,
                mut pending,
            } => Ok(planned(cmd, body, users, except, pending.settle()?)),
        }
    }
}

fn everyone(delivery: Delivery<'_>) -> Planned<'_> {
    Planned::Deliver {
        delivery,
        receipt: Receipt::default(),
    }
}

/// The one place a stored append becomes a delivery and a receipt.
fn planned(
    cmd: Command,
    body: Bytes,
    users: UserList<'_>,
    except: Option<SessionId>,
    appended: Appended,
) -> Planned<'_> {
    match appended {
        Appended::Stored {
            offsets,
            sender_offset,
        } => {
            let receipt = Receipt {
                sessions: None,
                // Told only to a sending session that is not sent the
                // entry (a message to oneself without copies is sent).
                offset: sender_offset.filter(|_| except.is_some()),
                original: None,
                recipients: users.len(),
            };
            let delivery = Delivery::to_users(cmd, body, users, offsets, except);
            Planned::Deliver { delivery, receipt }
        }
        Appended::Duplicate {
            message_id,
            sender_offset,
        } => Planned::Retry(Receipt {
            sessions: Some(0),
            offset: sender_offset.filter(|_| except.is_some()),
            original: Some(MessageId(message_id)),
            recipients: 0,
        }),
    }
}
