//! The routing contract of the Jim IM gateway, and its in-process backend.
//!
//! A gateway accepts a client's message, validates and stamps it, then
//! hands it to a [`Router`]: the router decides which sessions get it, on
//! this gateway or another, and the sender is acked only once the router
//! took it. Three backends implement the contract:
//!
//! - [`LocalRouter`] (this crate): one process, the [`Hub`] of its sessions
//!   is the whole world. Embed it to push messages, manage groups and
//!   observe traffic from your own Rust service.
//! - `jim-router-grpc`: gateways stream to a central router service.
//! - `jim-router-kafka`: gateways coordinate through Kafka topics.
//!
//! Every backend plans a message the same way ([`Routing`]: the rules, the
//! inbox append, and the [`Delivery`] they give) and the delivery reaches
//! sessions the same way: applied to the gateway's [`Hub`] (user →
//! sessions), which pushes into each session's bounded [`Outbox`]; the
//! session's writer drains the outbox in batches. Nothing on that path
//! waits: a session whose outbox is full is closed as a slow consumer. The
//! grpc and kafka backends only split a delivery by gateway
//! ([`Delivery::by_node`]) and carry the parts.
//!
//! [`Observer`]s see (and may veto) every accepted message and client ack,
//! for history, moderation or notifications.

#![warn(missing_docs)]

mod contract;
mod delivery;
mod error;
mod groups;
mod history;
mod hub;
mod keys;
mod local;
mod message;
mod observer;
mod outbox;
mod push;
mod routing;
mod rules;
mod session;

pub use contract::{Directory, Router, TryRoute};
pub use delivery::{Addressees, Delivery, Part, Placement};
pub use error::{Refusal, RouterError};
pub use groups::{Groups, Members};
pub use history::{ConversationList, ConversationSummary, HistoryEntry, HistoryPage, conversations, history};
pub use hub::{Delivered, Hub};
pub use jim_inbox as inbox;
pub use jim_inbox::{Inbox, InboxState, Read as InboxRead};
pub use keys::{KeyRefusal, check_bearer};
pub use local::LocalRouter;
pub use message::{ClientAck, Outgoing, Receipt, Sender, Target};
pub use observer::{ChannelObserver, Observed, Observer, Observers, SessionChange};
pub use outbox::{Close, DEFAULT_OUTBOX_FRAMES, Outbox, Queued, Refused};
pub use push::{Audience, push_messages};
pub use routing::{Planned, ReadReceipts, ReceiptSettings, Routing, Submitted, TypingSettings};
pub use rules::{Recipients, UserList, Users, recipients, with_sender_copy};
pub use session::{GroupId, SessionId, SessionInfo, Transport, UserId};
