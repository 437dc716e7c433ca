//! A client that stays connected and keeps its place in its inbox.

use std::time::Duration;

use bytes::Bytes;
use jim_model::{Ack, InboxHead, Message, Position, Status};
use jim_protocol::Command;

use crate::{Client, ClientError, Incoming, Options};

/// Where the gateway is: `tcp://HOST:PORT`, or a WebSocket URL
/// `ws://HOST:PORT/PATH` (anything else is taken for one, and refused when
/// connecting if it is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(String),
    /// A TCP address, with TLS (the host is the certificate's name).
    Tls(String),
    /// A WebSocket URL (`ws://`, or `wss://` with TLS).
    Ws(String),
}

impl Endpoint {
    /// Reads an endpoint from a URL or address.
    ///
    /// ```
    /// use jim_client::Endpoint;
    ///
    /// assert_eq!(Endpoint::parse("tcp://127.0.0.1:9001"), Endpoint::Tcp("127.0.0.1:9001".into()));
    /// assert_eq!(Endpoint::parse("tls://chat.example:9001"), Endpoint::Tls("chat.example:9001".into()));
    /// assert_eq!(Endpoint::parse("ws://127.0.0.1:9000/ws"), Endpoint::Ws("ws://127.0.0.1:9000/ws".into()));
    /// ```
    pub fn parse(url: &str) -> Endpoint {
        if let Some(addr) = url.strip_prefix("tcp://") {
            Endpoint::Tcp(addr.to_owned())
        } else if let Some(addr) = url.strip_prefix("tls://") {
            Endpoint::Tls(addr.to_owned())
        } else {
            Endpoint::Ws(url.to_owned())
        }
    }

    async fn connect(&self, options: &Options) -> Result<Client, ClientError> {
        match self {
            Endpoint::Tcp(addr) => Client::connect_tcp_with(addr.as_str(), options.clone()).await,
            Endpoint::Tls(addr) => Client::connect_tls_with(addr, options.clone()).await,
            Endpoint::Ws(url) => Client::connect_ws_with(url, options.clone()).await,
        }
    }
}

/// How a [`Session`] reconnects: exponential backoff from `min_backoff` to
/// `max_backoff`, each delay drawn at random between half and all of it
/// (so that many clients cut off at once do not come back at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub min_backoff: Duration,
    /// The longest delay.
    pub max_backoff: Duration,
}

impl Default for Backoff {
    /// 200 ms, doubling up to 10 s.
    fn default() -> Backoff {
        Backoff {
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0 first).
    fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .min_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        full.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// What a [`Session`] tells the application.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // nearly every value is a message
pub enum Event {
    /// Signed in (the first time, or again after a reconnect). Entries
    /// after the session's position follow, oldest first. With
    /// `recovered: false` some were lost to retention or a reset store:
    /// reload the conversation from your own backend.
    Resumed {
        /// The inbox's head and whether nothing was missed (`None`: the
        /// gateway keeps no inbox).
        inbox: Option<InboxHead>,
    },
    /// A message delivered to this user.
    Message {
        /// `B101`, `B102` or `B103`.
        cmd: Command,
        /// Its offset in the user's inbox (0: not an inbox entry).
        offset: u32,
        /// The message, typed.
        message: Message,
        /// The body as received.
        body: Bytes,
    },
    /// Someone is typing (or stopped) in a conversation with this user:
    /// ephemeral, to be treated as expired 6 s after the last `on`.
    Typing {
        /// Who types.
        sender_id: String,
        /// Where.
        conversation: jim_model::Conversation,
        /// Typing, or stopped.
        on: bool,
    },
    /// The connection was lost; the session reconnects by itself after
    /// `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// When it tries again.
        retry_in: Duration,
    },
}

/// A client that stays connected: it reconnects by itself (with backoff and
/// jitter) and resumes from its position in the user's inbox (`since`), so
/// that every message acked while it was away arrives, in order, once.
///
/// It gives up only where reconnecting cannot help: a refused token, or a
/// session closed on purpose (kicked, token expired).
///
/// ```no_run
/// use jim_client::{Endpoint, Event, Session};
///
/// # async fn example() -> Result<(), jim_client::ClientError> {
/// let mut bob = Session::builder(Endpoint::parse("tcp://127.0.0.1:9001"), "bob-token")
///     .from_start() // a new device: everything the inbox still holds
///     .connect()
///     .await?;
/// loop {
///     match bob.next().await? {
///         Event::Resumed { inbox } => println!("signed in: {inbox:?}"),
///         Event::Message { offset, message, .. } => println!("{offset}: {message:?}"),
///         Event::Typing { sender_id, on, .. } => println!("{sender_id} typing: {on}"),
///         Event::Disconnected { reason, retry_in } => println!("{reason}; again in {retry_in:?}"),
///     }
///     // Keep bob.position() somewhere durable to resume from it next time.
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Session {
    endpoint: Endpoint,
    token: String,
    device: Option<String>,
    options: Options,
    backoff: Backoff,
    client: Option<Client>,
    /// What the application has been handed of the inbox.
    position: Option<Position>,
    /// The greeting of the connection just made, not yet told.
    greeting: Option<Option<InboxHead>>,
    /// Reconnect attempts since the last success.
    attempt: u32,
    /// When to try again, once the connection is lost.
    retry_at: Option<tokio::time::Instant>,
}

/// How to start a [`Session`].
#[derive(Debug, Clone)]
pub struct SessionBuilder {
    endpoint: Endpoint,
    token: String,
    device: Option<String>,
    since: Option<Position>,
    options: Options,
    backoff: Backoff,
}

impl SessionBuilder {
    /// A device label.
    pub fn device(mut self, device: &str) -> SessionBuilder {
        self.device = Some(device.to_owned());
        self
    }

    /// Resume from a position kept from an earlier run.
    pub fn since(mut self, position: Position) -> SessionBuilder {
        self.since = Some(position);
        self
    }

    /// Start from everything the inbox still holds (a new device).
    pub fn from_start(self) -> SessionBuilder {
        self.since(Position {
            epoch: String::new(),
            offset: 0,
        })
    }

    /// Client options.
    pub fn options(mut self, options: Options) -> SessionBuilder {
        self.options = options;
        self
    }

    /// Reconnect delays.
    pub fn backoff(mut self, backoff: Backoff) -> SessionBuilder {
        self.backoff = backoff;
        self
    }

    /// Connects and signs in. The first [`Session::next`] is
    /// [`Event::Resumed`].
    ///
    /// # Errors
    /// Connecting or signing in failed (a first connect is not retried:
    /// the caller sees a wrong address or token at once).
    pub async fn connect(self) -> Result<Session, ClientError> {
        let mut session = Session {
            endpoint: self.endpoint,
            token: self.token,
            device: self.device,
            options: self.options,
            backoff: self.backoff,
            client: None,
            position: self.since,
            greeting: None,
            attempt: 0,
            retry_at: None,
        };
        session.open().await?;
        Ok(session)
    }
}

impl Session {
    /// How to start a session of the user `token` signs in, at `endpoint`.
    pub fn builder(endpoint: Endpoint, token: &str) -> SessionBuilder {
        SessionBuilder {
            endpoint,
            token: token.to_owned(),
            device: None,
            since: None,
            options: Options::default(),
            backoff: Backoff::default(),
        }
    }

    /// The position of the last inbox entry handed to the application (or
    /// acknowledged as its own group message): keep it to resume from.
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    async fn open(&mut self) -> Result<(), ClientError> {
        let mut client = self.endpoint.connect(&self.options).await?;
        let ok = client
            .resume(&self.token, self.device.as_deref(), self.position.clone())
            .await?;
        if let Some(inbox) = &ok.inbox {
            // The contract's rule, as the gateway and the TypeScript SDK read it.
            self.position = Some(jim_model::position::resumed(self.position.as_ref(), inbox));
        }
        self.client = Some(client);
        self.greeting = Some(ok.inbox);
        self.attempt = 0;
        self.retry_at = None;
        Ok(())
    }

    /// The next event. Reconnects as needed, telling the application
    /// ([`Event::Disconnected`], then [`Event::Resumed`]).
    ///
    /// # Errors
    /// The gateway refused the token, or closed the session on purpose
    /// (kicked, token expired): reconnecting would not help.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(inbox) = self.greeting.take() {
                return Ok(Event::Resumed { inbox });
            }
            let Some(client) = self.client.as_mut() else {
                if let Some(at) = self.retry_at {
                    tokio::time::sleep_until(at).await;
                }
                match self.open().await {
                    Ok(()) => continue,
                    Err(e @ ClientError::AuthFailed { .. }) => return Err(e),
                    Err(e) => {
                        return Ok(self.lost(e.to_string()));
                    }
                }
            };
            match client.next().await {
                Some(Incoming::Message {
                    cmd,
                    seq,
                    message,
                    body,
                }) => {
                    if seq != 0
                        && let Some(position) = &mut self.position
                    {
                        position.offset = u64::from(seq);
                    }
                    return Ok(Event::Message {
                        cmd,
                        offset: seq,
                        message,
                        body,
                    });
                }
                Some(Incoming::Typing {
                    sender_id,
                    conversation,
                    on,
                }) => {
                    return Ok(Event::Typing {
                        sender_id,
                        conversation,
                        on,
                    });
                }
                Some(Incoming::Closed(status)) if on_purpose(&status) => {
                    self.client = None;
                    return Err(ClientError::Closed(Some(status)));
                }
                Some(Incoming::Closed(status)) => {
                    return Ok(self.lost(format!(
                        "closed by the gateway: {} {}",
                        status.code, status.reason
                    )));
                }
                None => return Ok(self.lost("connection lost".to_owned())),
            }
        }
    }

    fn lost(&mut self, reason: String) -> Event {
        self.client = None;
        let retry_in = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        // The next call waits until then before reconnecting.
        self.retry_at = Some(tokio::time::Instant::now() + retry_in);
        Event::Disconnected { reason, retry_in }
    }

    /// Sends a message, as [`Client::send`]. The message's own offset
    /// (in its ack: a group message, or a one-to-one message's sender copy)
    /// moves the position past it.
    ///
    /// # Errors
    /// As [`Client::send`]; [`ClientError::Closed`] while reconnecting (the
    /// message was not sent: send it again later, with the same
    /// `client_msg_id` if it may have been).
    pub async fn send(&mut self, cmd: Command, message: &Message) -> Result<Ack, ClientError> {
        let client = self.client.as_ref().ok_or(ClientError::Closed(None))?;
        let ack = client.send(cmd, message).await?;
        let own = ack.extra.get("offset").and_then(serde_json::Value::as_u64);
        if let (Some(own), Some(position)) = (own, &mut self.position) {
            jim_model::position::skip_own(position, own);
        }
        Ok(ack)
    }
}

impl Session {
    /// Leaves cleanly: `A998`, then the server's `A999`.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if not connected now; as [`Client::close`].
    pub async fn close(mut self) -> Result<Status, ClientError> {
        match self.client.take() {
            Some(client) => client.close().await,
            None => Err(ClientError::Closed(None)),
        }
    }
}

/// A close after which reconnecting would not help.
fn on_purpose(status: &Status) -> bool {
    status.code == jim_model::CloseCode::Policy.as_u16()
        && (status.reason.starts_with("kicked")
            || status.reason.contains("token")
            || status.reason.contains("authentication"))
}
