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

/// What kind of refusal a [`RouterError`] is, and so what every surface
/// says of it: the error code of a client's reply (the contract's section
/// 5), the HTTP status of the admin API, the status code of the router's
/// gRPC service. The one table; every surface reads it.
///
/// ```
/// use jim_router::{Refusal, RouterError};
///
/// let error = RouterError::NotMember { group: "team".into() };
/// assert_eq!(error.refusal(), Refusal::Forbidden);
/// assert_eq!(error.refusal().code().as_u16(), 4003);
/// assert_eq!(error.refusal().http_status(), 403);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The request itself is wrong: 4000, HTTP 400, `INVALID_ARGUMENT`.
    BadRequest,
    /// Not allowed (not a member, vetoed): 4003, HTTP 403,
    /// `PERMISSION_DENIED`.
    Forbidden,
    /// No such thing (a group with no members): 4004, HTTP 404,
    /// `NOT_FOUND`.
    NotFound,
    /// Nothing was done, try again later: 5000, HTTP 503, `UNAVAILABLE`.
    Unavailable,
}

impl Refusal {
    /// Every refusal, for tables and tests.
    pub const ALL: [Refusal; 4] = [
        Refusal::BadRequest,
        Refusal::Forbidden,
        Refusal::NotFound,
        Refusal::Unavailable,
    ];

    /// The error code of a client's reply.
    pub const fn code(self) -> jim_model::ErrorCode {
        match self {
            Refusal::BadRequest => jim_model::ErrorCode::BadRequest,
            Refusal::Forbidden => jim_model::ErrorCode::Forbidden,
            Refusal::NotFound => jim_model::ErrorCode::NotFound,
            Refusal::Unavailable => jim_model::ErrorCode::Internal,
        }
    }

    /// The admin API's HTTP status.
    pub const fn http_status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
            Refusal::Unavailable => 503,
        }
    }

    /// The gRPC status code (`google.rpc.Code`'s numbers).
    pub const fn grpc_code(self) -> i32 {
        match self {
            Refusal::BadRequest => 3,
            Refusal::Forbidden => 7,
            Refusal::NotFound => 5,
            Refusal::Unavailable => 14,
        }
    }
}

impl RouterError {
    /// What kind of refusal this is (see [`Refusal`]).
    pub fn refusal(&self) -> Refusal {
        match self {
            RouterError::Invalid { .. } => Refusal::BadRequest,
            RouterError::NotMember { .. } | RouterError::Rejected { .. } => Refusal::Forbidden,
            RouterError::UnknownGroup { .. } => Refusal::NotFound,
            RouterError::Inbox(_) | RouterError::Unavailable { .. } => Refusal::Unavailable,
        }
    }
}
