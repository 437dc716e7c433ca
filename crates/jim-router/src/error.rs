//! The one error type of this crate.

/// Why the router refused or could not route a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The sender of a group message is not a member of the group.
    #[error("not a member of group \"{group}\"")]
    NotMember {
        /// The group.
        group: String,
    },
    /// The group has no members (groups exist while they have members).
    #[error("unknown group \"{group}\"")]
    UnknownGroup {
        /// The group.
        group: String,
    },
    /// An observer vetoed the message.
    #[error("rejected: {reason}")]
    Rejected {
        /// The observer's reason.
        reason: String,
    },
    /// The request itself is wrong (an empty user id, say).
    #[error("invalid request: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// The inbox store could not take the message: nothing was stored.
    #[error("{0}")]
    Inbox(#[from] jim_inbox::InboxError),
    /// The backend cannot be reached or did not confirm; retry later.
    #[error("routing backend unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
}
