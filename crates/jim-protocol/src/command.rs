//! The four-byte command codes of `jim1`.

use std::fmt;

/// A frame's command: one of the twelve codes of the contract, or any other
/// four bytes carried intact so that the receiver can answer it (an unknown
/// command gets an error reply with the same code, not silence).
///
/// ```
/// use jim_protocol::Command;
///
/// assert_eq!(Command::from_code(*b"B101"), Command::C2C);
/// assert_eq!(Command::C2C.code(), *b"B101");
/// assert_eq!(Command::from_code(*b"Z999"), Command::Unknown(*b"Z999"));
/// assert_eq!(Command::Unknown(*b"Z999").to_string(), "Z999");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `A001`: heartbeat ping, either direction.
    Ping,
    /// `A002`: heartbeat pong, same `seq` as the ping.
    Pong,
    /// `A998`: the client is closing.
    ClientClose,
    /// `A999`: the server is closing this connection.
    ServerClose,
    /// `B001`: authenticate.
    Auth,
    /// `B002`: authenticated.
    AuthOk,
    /// `B003`: authentication failed; the server then closes.
    AuthFailed,
    /// `B101`: one-to-one (C2C) message, or its ack or error.
    C2C,
    /// `B102`: group (C2G) message, or its ack or error.
    C2G,
    /// `B103`: server push (S2C).
    S2C,
    /// `B104`: typing, client→server and relayed, ephemeral (v1.2).
    Typing,
    /// `B105`: a history or conversation-list request, and its reply (v1.2).
    History,
    /// Any other four bytes, kept as received.
    Unknown([u8; 4]),
}

impl Command {
    /// Every command the contract defines, in code order.
    pub const KNOWN: [Command; 12] = [
        Command::Ping,
        Command::Pong,
        Command::ClientClose,
        Command::ServerClose,
        Command::Auth,
        Command::AuthOk,
        Command::AuthFailed,
        Command::C2C,
        Command::C2G,
        Command::S2C,
        Command::Typing,
        Command::History,
    ];

    /// The command for four bytes off the wire.
    #[inline]
    pub const fn from_code(code: [u8; 4]) -> Command {
        match &code {
            b"A001" => Command::Ping,
            b"A002" => Command::Pong,
            b"A998" => Command::ClientClose,
            b"A999" => Command::ServerClose,
            b"B001" => Command::Auth,
            b"B002" => Command::AuthOk,
            b"B003" => Command::AuthFailed,
            b"B101" => Command::C2C,
            b"B102" => Command::C2G,
            b"B103" => Command::S2C,
            b"B104" => Command::Typing,
            b"B105" => Command::History,
            _ => Command::Unknown(code),
        }
    }

    /// The four bytes this command is written as.
    #[inline]
    pub const fn code(self) -> [u8; 4] {
        match self {
            Command::Ping => *b"A001",
            Command::Pong => *b"A002",
            Command::ClientClose => *b"A998",
            Command::ServerClose => *b"A999",
            Command::Auth => *b"B001",
            Command::AuthOk => *b"B002",
            Command::AuthFailed => *b"B003",
            Command::C2C => *b"B101",
            Command::C2G => *b"B102",
            Command::S2C => *b"B103",
            Command::Typing => *b"B104",
            Command::History => *b"B105",
            Command::Unknown(code) => code,
        }
    }

    /// Whether this is one of the contract's ten codes.
    #[inline]
    pub const fn is_known(self) -> bool {
        !matches!(self, Command::Unknown(_))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        // Unknown codes may hold any bytes; show non-printable ones escaped.
        for byte in code {
            if byte.is_ascii_graphic() {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

impl From<[u8; 4]> for Command {
    fn from(code: [u8; 4]) -> Self {
        Command::from_code(code)
    }
}

impl From<Command> for [u8; 4] {
    fn from(cmd: Command) -> Self {
        cmd.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_maps_back_to_itself() {
        for cmd in Command::KNOWN {
            assert!(cmd.is_known());
            assert_eq!(Command::from_code(cmd.code()), cmd);
        }
    }

    #[test]
    fn unknown_bytes_are_kept_intact() {
        let raw = [0x00, b'B', 0xff, b'1'];
        let cmd = Command::from_code(raw);
        assert_eq!(cmd, Command::Unknown(raw));
        assert_eq!(cmd.code(), raw);
        assert_eq!(cmd.to_string(), "\\x00B\\xff1");
    }
}
