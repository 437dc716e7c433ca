//! Where the errors of the crates below become the contract's numbers: the
//! error code of a reply (section 5 of the protocol) and the close code of
//! an `A999`. The one place that decides them.

use jim_model::{CloseCode, ErrorCode, ModelError};
use jim_router::RouterError;
use jim_transport::TransportError;

/// The error code of a request refused for a body that is not right.
pub(crate) fn model_error(error: &ModelError) -> ErrorCode {
    match error {
        ModelError::NodeOutOfRange { .. } => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

/// The error code of a request the routing backend refused or could not
/// take: the router's table ([`jim_router::Refusal`]).
pub(crate) fn router_error(error: &RouterError) -> ErrorCode {
    error.refusal().code()
}

/// The close code of a connection whose transport failed, or `None` when
/// the link itself is gone (nobody would read an `A999`).
pub(crate) fn transport_close(error: &TransportError) -> Option<CloseCode> {
    if error.is_too_large() {
        Some(CloseCode::TooLarge)
    } else if error.is_protocol_violation() || matches!(error, TransportError::Truncated { .. }) {
        Some(CloseCode::ProtocolError)
    } else {
        None
    }
}
