//! What `jim1` frames travel over.

/// The transport a connection uses: frames concatenated on a TCP stream,
/// or one frame per binary WebSocket message.
///
/// ```
/// assert_eq!(jim_protocol::Transport::WebSocket.as_str(), "ws");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `jim1` frames on a TCP stream.
    Tcp,
    /// One `jim1` frame per binary WebSocket message.
    WebSocket,
}

impl Transport {
    /// `tcp` or `ws`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "ws",
        }
    }
}
