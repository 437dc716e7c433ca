//! What can go wrong with hooks and events.

/// An error of this crate.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HooksError {
    /// `[hooks]` cannot be used as given.
    #[error("invalid [hooks] configuration: {reason}")]
    Config {
        /// Which key, and why.
        reason: String,
    },
    /// A `Jim-Signature` did not check out.
    #[error("bad signature: {reason}")]
    Signature {
        /// What did not match.
        reason: String,
    },
    /// A hook's answer that the contract does not allow.
    #[error("the before-send hook answered {reason}")]
    Answer {
        /// What was wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot make the hooks' HTTP client: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
}
