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
    /// Another process has the store's directory: two would overwrite
    /// each other's entries.
    #[error(
        "the inbox directory {} is in use by {}: two processes on one directory would overwrite each other's messages; give each its own inbox.dir (--inbox-dir), or stop the other",
        dir.display(),
        holder.map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}"))
    )]
    Locked {
        /// The directory.
        dir: std::path::PathBuf,
        /// The process holding it, as it wrote its id.
        holder: Option<u32>,
    },
}

impl InboxError {
    pub(crate) fn unavailable(reason: impl std::fmt::Display) -> InboxError {
        InboxError::Unavailable {
            reason: reason.to_string(),
        }
    }
}
