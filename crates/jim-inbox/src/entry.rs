//! What an inbox holds and what it answers.

use std::sync::Arc;

use bytes::Bytes;
use jim_protocol::Command;

/// An entry's number in its inbox: 1, 2, 3, ... with no gap.
pub type Offset = u32;

/// One stored message of one user's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its offset in the inbox.
    pub offset: Offset,
    /// `B101`, `B102` or `B103`, as delivered.
    pub cmd: Command,
    /// The session that sent it (a group message is not delivered to the
    /// session it came from): replays and gap fills leave it out there.
    pub except: Option<u64>,
    /// When it was stored, in Unix milliseconds (for retention by age).
    pub at_ms: u64,
    /// The stamped body, as every recipient gets it.
    pub body: Bytes,
}

/// Where a user's inbox stands: for `B002` and the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxState {
    /// The epoch: changes whenever the store could not keep the inbox.
    pub epoch: Arc<str>,
    /// The offset of the oldest entry held (`head + 1` when none is).
    pub oldest: Offset,
    /// The offset of the newest entry ever appended (0: none yet).
    pub head: Offset,
    /// How many entries are held.
    pub held: u32,
}

/// Entries read from an inbox, with the epoch they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The inbox's epoch.
    pub epoch: Arc<str>,
    /// The entries, oldest first.
    pub entries: Vec<Entry>,
}

/// A message to append to the inboxes of its recipients.
#[derive(Debug, Clone, Copy)]
pub struct Append<'a> {
    /// `B101`, `B102` or `B103`.
    pub cmd: Command,
    /// The stamped body.
    pub body: &'a Bytes,
    /// The sending session, for a group message (see [`Entry::except`]).
    pub except: Option<u64>,
    /// The sending user, if a client sent it: its own offset is reported,
    /// and with `client_msg_id` it keys the deduplication.
    pub sender: Option<&'a str>,
    /// The client's id for this send: a second send with the same sender
    /// and id within the window is not stored again.
    pub client_msg_id: Option<&'a str>,
    /// The message id stamped into the body (reported to a retry).
    pub message_id: u64,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored: each recipient's offset, in the order the users were given
    /// (all 0 when the inbox is off), and the sender's own offset if the
    /// sender is a recipient (a member of the group it wrote to).
    Stored {
        /// Offsets by recipient.
        offsets: Vec<Offset>,
        /// The sender's offset.
        sender_offset: Option<Offset>,
    },
    /// A retry of a message accepted within the window: nothing stored.
    Duplicate {
        /// The original message's id.
        message_id: u64,
        /// The original's offset in the sender's inbox.
        sender_offset: Option<Offset>,
    },
}

/// Whether a message to `recipients` inboxes has its body stored once
/// and referred to (a group's), or in each entry. Two inboxes (a one-to-one
/// message and its sender's copy) keep it inline: a second copy of the
/// body costs less than the extra write, and the extra read of every
/// replay and history page, of a body stored apart.
#[cfg(any(feature = "disk", feature = "redis"))]
pub(crate) fn shares_body(recipients: usize) -> bool {
    recipients > 2
}

/// A group the store kept: its id and members.
pub type KeptGroup = (Arc<str>, Vec<Arc<str>>);

/// An [`Append`] that owns its parts, to wait in a store's queue (the
/// memory store has none).
#[cfg(any(feature = "disk", feature = "redis"))]
pub(crate) struct OwnedAppend {
    pub(crate) cmd: Command,
    pub(crate) body: Bytes,
    pub(crate) except: Option<u64>,
    pub(crate) sender: Option<Arc<str>>,
    pub(crate) client_msg_id: Option<Box<str>>,
    pub(crate) message_id: u64,
}

#[cfg(any(feature = "disk", feature = "redis"))]
impl OwnedAppend {
    pub(crate) fn of(append: &Append<'_>) -> OwnedAppend {
        OwnedAppend {
            cmd: append.cmd,
            body: append.body.clone(),
            except: append.except,
            sender: append.sender.map(Arc::from),
            client_msg_id: append.client_msg_id.map(Box::from),
            message_id: append.message_id,
        }
    }

    #[cfg(feature = "redis")]
    pub(crate) fn borrowed(&self) -> Append<'_> {
        Append {
            cmd: self.cmd,
            body: &self.body,
            except: self.except,
            sender: self.sender.as_deref(),
            client_msg_id: self.client_msg_id.as_deref(),
            message_id: self.message_id,
        }
    }
}
