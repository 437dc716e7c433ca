//! The one error type of this crate.

/// Why the inbox could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// The store failed (a disk error, say): nothing was stored.
    #[error("inbox store unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// The store could not be opened.
    #[error("cannot open the inbox store: {reason}")]
    Open {
        /// What failed.
        reason: String,
    },
}

impl InboxError {
    pub(crate) fn unavailable(reason: impl std::fmt::Display) -> InboxError {
        InboxError::Unavailable {
            reason: reason.to_string(),
        }
    }
}
