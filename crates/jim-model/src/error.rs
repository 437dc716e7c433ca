//! The one error type of this crate.

/// Why a body was refused, naming the offending field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Not JSON, or JSON of the wrong shape (the message says where).
    #[error("malformed JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The `type` is not one of the contract's.
    #[error("unknown type \"{found}\"")]
    UnknownType {
        /// The `type` value seen.
        found: String,
    },
    /// A required field is absent (or `null`).
    #[error("missing field `{field}`")]
    MissingField {
        /// Its path, such as `data.content`.
        field: String,
    },
    /// A field holds a value of the wrong type or range.
    #[error("field `{field}` must be {expected}")]
    InvalidField {
        /// Its path, such as `data.size`.
        field: String,
        /// What it must hold.
        expected: &'static str,
    },
    /// A field appears twice (also through an alias such as `"size "`).
    #[error("duplicate field `{field}`")]
    DuplicateField {
        /// Its path.
        field: String,
    },
    /// Well-formed JSON that parsers read differently (see
    /// [`strict`](crate::strict)): too deep, a lone surrogate, a number
    /// beyond a double, a duplicate key.
    #[error("JSON that parsers read differently: {what} (at byte {at})")]
    Ambiguous {
        /// What was found.
        what: std::borrow::Cow<'static, str>,
        /// Where, as a byte offset into the body.
        at: usize,
    },
    /// A well-formed message of a kind the sender may not send here.
    #[error("{reason}")]
    NotAllowed {
        /// Why not.
        reason: &'static str,
    },
    /// A message id generator was asked for a node id that does not fit.
    #[error("node id {node} is out of range (0..={max})")]
    NodeOutOfRange {
        /// The node id asked for.
        node: u16,
        /// The largest node id.
        max: u16,
    },
}
