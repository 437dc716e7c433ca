//! Sessions as the router sees them.

use std::fmt;
use std::sync::Arc;

/// A user id (the token's subject). Cheap to clone.
pub type UserId = Arc<str>;

/// A group id. Cheap to clone.
pub type GroupId = Arc<str>;

/// One connection's session id: unique across the gateways of a deployment
/// and across restarts (it is drawn from the gateway's message id
/// generator). Written as a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

pub use jim_protocol::Transport;

/// What is known of a session: who, where, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session.
    pub id: SessionId,
    /// The authenticated user.
    pub user: UserId,
    /// The client's device label, if it gave one.
    pub device: Option<Arc<str>>,
    /// How it is connected.
    pub transport: Transport,
    /// The node id of the gateway holding the connection.
    pub node: u16,
    /// When it authenticated, in Unix milliseconds.
    pub since_ms: u64,
}
