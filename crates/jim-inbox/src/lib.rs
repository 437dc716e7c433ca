//! The inbox of the Jim IM gateway: every user's ordered, bounded log of
//! the messages delivered to them, so that an acknowledged message reaches
//! its recipient whenever the recipient comes back (the contract's section
//! 7).
//!
//! An [`Inbox`] is one of the stores: `memory` (in the process), `disk` (an
//! embedded engine, surviving restarts), `redis` (Redis Streams, shared by
//! every gateway), or `off`. Entries of one inbox are
//! numbered 1, 2, 3, ... (the [`Offset`]); the inbox's epoch changes when
//! the store could not keep it, so a client's position (`epoch`, `offset`)
//! says whether it missed anything. The inbox also recognises retried sends
//! (`client_msg_id`) and keeps groups across restarts.

#![warn(missing_docs)]

mod clock;
mod config;
#[cfg(feature = "disk")]
mod dir_lock;
#[cfg(feature = "disk")]
mod disk;
mod entry;
mod error;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod store;

pub use config::{InboxSettings, InboxStore, Retention, StoreKind};
pub use entry::{Append, Appended, Entry, InboxState, KeptGroup, Offset, Read};
pub use error::InboxError;
pub use store::{Inbox, InboxMetrics, Pending};
