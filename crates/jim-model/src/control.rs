//! Bodies of the control commands: authentication and close.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// `B001` body: the token and an optional device label.
///
/// The seed's older clients send `{"client_id":..,"token":..}`; `client_id`
/// is read as the device label.
///
/// ```
/// use jim_model::AuthRequest;
///
/// let old = AuthRequest::from_slice(br#"{"client_id":"ios-1","token":"abc"}"#)?;
/// assert_eq!(old.device.as_deref(), Some("ios-1"));
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// A signed token (or, in development mode, the user id).
    pub token: String,
    /// Free text such as `ios` or `web`.
    #[serde(default, alias = "client_id", skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The client's inbox position (v1.1): read it with
    /// [`since`](AuthRequest::since).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub since: Option<serde_json::Value>,
}

/// A field that is there, even as `null` (a `since` of `null` is refused,
/// not taken for none).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// A position in a user's inbox: everything up to `offset` of epoch
/// `epoch` (`B001`'s `since`, `B002`'s `inbox`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The inbox's epoch (`""` with offset 0: a new device).
    pub epoch: String,
    /// The offset.
    pub offset: u64,
}

/// `B002`'s `inbox`: the inbox's head, and whether the client's position
/// was kept (nothing missed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxHead {
    /// The inbox's epoch.
    pub epoch: String,
    /// The newest offset.
    pub offset: u64,
    /// Whether everything after the client's `since` is replayed.
    pub recovered: bool,
}

impl AuthRequest {
    /// Parses a `B001` body.
    ///
    /// # Errors
    /// [`ModelError::Json`] for malformed JSON or a missing `token`.
    pub fn from_slice(body: &[u8]) -> Result<AuthRequest, ModelError> {
        serde_json::from_slice(body).map_err(ModelError::Json)
    }

    /// The inbox position the client gave, if any.
    ///
    /// ```
    /// use jim_model::{AuthRequest, Position};
    ///
    /// let request = AuthRequest::from_slice(br#"{"token":"t","since":{"epoch":"e1","offset":7}}"#)?;
    /// assert_eq!(request.since()?, Some(Position { epoch: "e1".into(), offset: 7 }));
    /// let bad = AuthRequest::from_slice(br#"{"token":"t","since":{"epoch":1,"offset":-1}}"#)?;
    /// assert!(bad.since().is_err());
    /// # Ok::<(), jim_model::ModelError>(())
    /// ```
    ///
    /// # Errors
    /// [`ModelError::InvalidField`] if `since` is not an object of a string
    /// `epoch` and a non-negative integer `offset`.
    pub fn since(&self) -> Result<Option<Position>, ModelError> {
        let Some(since) = &self.since else {
            return Ok(None);
        };
        let invalid = || ModelError::InvalidField {
            field: "since".into(),
            expected: "an object of a string `epoch` and a non-negative integer `offset`",
        };
        let object = since.as_object().ok_or_else(invalid)?;
        let epoch = object.get("epoch").and_then(|e| e.as_str()).ok_or_else(invalid)?;
        let offset = object
            .get("offset")
            .and_then(|o| o.as_u64())
            .ok_or_else(invalid)?;
        Ok(Some(Position {
            epoch: epoch.to_owned(),
            offset,
        }))
    }
}

/// `B002` body: who the session is and how often to ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthOk {
    /// The authenticated user id.
    pub user_id: String,
    /// This connection's session id, unique within the deployment.
    pub session_id: String,
    /// Send `A001` about this often.
    pub heartbeat_secs: u32,
    /// The inbox's head (absent when the gateway keeps no inbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<InboxHead>,
}

/// A code and a reason: the body of `B003` (authentication failed), `A999`
/// (server closing) and, optionally, `A998` (client closing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// An [`ErrorCode`](crate::ErrorCode) (`B003`) or a
    /// [`CloseCode`](crate::CloseCode) (`A999`, `A998`).
    pub code: u16,
    /// A human-readable explanation.
    pub reason: String,
}

impl Status {
    /// A status with the given code and reason.
    pub fn new(code: u16, reason: impl Into<String>) -> Status {
        Status {
            code,
            reason: reason.into(),
        }
    }

    /// Parses a status body.
    ///
    /// # Errors
    /// [`ModelError::Json`] for malformed JSON or a missing field.
    pub fn from_slice(body: &[u8]) -> Result<Status, ModelError> {
        serde_json::from_slice(body).map_err(ModelError::Json)
    }

    /// The body as JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
