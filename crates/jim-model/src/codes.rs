//! Error codes of error replies, and close codes of `A999`.

/// The `code` of an error reply (`{"type":"error","data":{"code":..}}`);
/// the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// 4000: malformed JSON, unknown `type`, missing or ill-typed field.
    BadRequest = 4000,
    /// 4001: not authenticated.
    NotAuthenticated = 4001,
    /// 4003: forbidden (not a member of the group; B103 from a client).
    Forbidden = 4003,
    /// 4004: unknown command, unknown group.
    NotFound = 4004,
    /// 4029: rate limited.
    RateLimited = 4029,
    /// 5000: internal error or routing backend unavailable; retry later.
    Internal = 5000,
}

impl ErrorCode {
    /// Every code, in the contract's order.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::BadRequest,
        ErrorCode::NotAuthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
    ];

    /// The number on the wire.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }
}

/// The `code` of an `A999` body, numbered as WebSocket close codes; over
/// WebSocket the server closes with the same code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// 1000: normal closure.
    Normal = 1000,
    /// 1001: the server is going away (shutdown).
    GoingAway = 1001,
    /// 1002: protocol error (bad magic, malformed frame).
    ProtocolError = 1002,
    /// 1008: policy (auth timeout or failure, idle, kicked, slow consumer).
    Policy = 1008,
    /// 1009: frame too large.
    TooLarge = 1009,
    /// 1011: internal error.
    Internal = 1011,
}

impl CloseCode {
    /// Every code the server sends.
    pub const ALL: [CloseCode; 6] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::Policy,
        CloseCode::TooLarge,
        CloseCode::Internal,
    ];

    /// The number on the wire.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }
}
