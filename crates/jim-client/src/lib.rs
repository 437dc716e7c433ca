//! Async Rust client of the Jim IM gateway, over TCP or WebSocket.
//!
//! Connect, authenticate, send messages and get back the gateway's ack
//! (with the `message_id` it gave the message) or its error for that very
//! request, and receive what others send you as a stream. Heartbeats run
//! by themselves once authenticated.
//!
//! ```no_run
//! use jim_client::{Client, Incoming};
//! use jim_model::{Message, Text};
//! use jim_protocol::Command;
//!
//! # async fn example() -> Result<(), jim_client::ClientError> {
//! let mut alice = Client::connect_tcp("127.0.0.1:9001").await?;
//! let who = alice.authenticate("alice-token", Some("laptop")).await?;
//! println!("signed in as {} (session {})", who.user_id, who.session_id);
//!
//! let ack = alice.send(Command::C2C, &Message::Text(Text::new("bob", "hi bob"))).await?;
//! println!("accepted as {}", ack.message_id);
//!
//! while let Some(incoming) = alice.next().await {
//!     match incoming {
//!         Incoming::Message { message, .. } => println!("got {message:?}"),
//!         Incoming::Typing { sender_id, on, .. } => println!("{sender_id} typing: {on}"),
//!         Incoming::Closed(status) => println!("server closed: {status:?}"),
//!     }
//! }
//! alice.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A frame from the server is a reply to one of your requests when its
//! command is `A002`, `B002`, `B003` or `B105`, or when its body's `type`
//! is `ack` (without a `status`: one with a status is a receipt delivered
//! to you) or `error`; everything else the server starts itself (see
//! `docs/protocol.md`). The client sorts them for you.

#![warn(missing_docs)]

mod connection;
mod error;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jim_model::{Ack, AuthOk, AuthRequest, ErrorData, Message, Status};
use jim_protocol::{Command, Frame};
use tokio::net::ToSocketAddrs;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use error::ClientError;
pub use session::{Backoff, Endpoint, Event, Session, SessionBuilder};

/// What the server sent that was not a reply.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // nearly every value is a message; boxing it would only make matching clumsy
pub enum Incoming {
    /// A message delivered to this session (`B101`, `B102` or `B103`).
    Message {
        /// The command it came with.
        cmd: Command,
        /// The server's number for it on this connection.
        seq: u32,
        /// The message, typed.
        message: Message,
        /// The body as received.
        body: Bytes,
    },
    /// Someone is typing in a conversation with this user (`B104`,
    /// ephemeral: treat `on` as expiring after 6 s without another).
    Typing {
        /// Who types.
        sender_id: String,
        /// Where, from this user's side: the typist, or the group.
        conversation: jim_model::Conversation,
        /// Typing, or stopped.
        on: bool,
    },
    /// The server is closing the connection (`A999`). Nothing follows.
    Closed(Status),
}

/// A page of a conversation's history (`B105` `history`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct HistoryPage {
    /// The inbox's epoch.
    pub epoch: String,
    /// Newest first.
    pub entries: Vec<HistoryEntry>,
    /// Whether older entries of the conversation are held.
    pub more: bool,
}

/// One inbox entry of a history page.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct HistoryEntry {
    /// Its offset in the user's inbox.
    pub offset: u32,
    /// `B101`, `B102` or `B103`.
    pub cmd: String,
    /// The message as delivered.
    pub body: Message,
}

/// The user's conversations (`B105` `conversations`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ConversationList {
    /// The inbox's epoch.
    pub epoch: String,
    /// Most recent first.
    pub conversations: Vec<ConversationItem>,
}

/// One conversation of the list.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ConversationItem {
    /// With whom, or in which group.
    pub conversation: jim_model::Conversation,
    /// Its newest entry.
    pub last: HistoryEntry,
    /// Messages after the read mark not sent by this user.
    pub unread: u32,
    /// The read mark, if any.
    pub read: Option<jim_model::MessageId>,
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The largest body accepted or sent.
    pub max_body: usize,
    /// How long to wait for the reply to a request.
    pub request_timeout: Duration,
    /// Send `A001` every `heartbeat_secs` of the server's `B002`.
    pub heartbeat: bool,
    /// Over TLS (`tls://`, `wss://`), the CA the gateway's certificate
    /// must come from (a PEM file); `None`: the operating system's roots.
    pub ca: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_body: jim_protocol::DEFAULT_MAX_BODY,
            request_timeout: Duration::from_secs(10),
            heartbeat: true,
            ca: None,
        }
    }
}

/// Requests waiting for their reply, by `seq` (a reply may have another
/// command than its request: `B001` is answered by `B002` or `B003`).
type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Frame>>>>;

/// A connection to a Jim gateway.
#[derive(Debug)]
pub struct Client {
    outgoing: mpsc::Sender<Frame>,
    pending: Pending,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    next_seq: AtomicU32,
    options: Options,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Client {
    /// Connects over TCP.
    ///
    /// # Errors
    /// [`ClientError::Io`] if the connection fails.
    pub async fn connect_tcp(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        Client::connect_tcp_with(addr, Options::default()).await
    }

    /// Connects over TCP with `options`.
    ///
    /// # Errors
    /// [`ClientError::Io`] if the connection fails.
    pub async fn connect_tcp_with(addr: impl ToSocketAddrs, options: Options) -> Result<Client, ClientError> {
        let (reader, writer) = connection::tcp(addr, options.max_body).await?;
        Ok(Client::start(reader, writer, options))
    }

    /// Connects with `jim1` over TLS to `host:port`, checking the gateway's
    /// certificate is for `host` and comes from `options.ca` (or the
    /// system's roots).
    ///
    /// # Errors
    /// [`ClientError::Io`] if the connection or the handshake fails (a
    /// certificate for another host, expired, of an unknown CA);
    /// [`ClientError::Tls`] if the CA file cannot be read.
    pub async fn connect_tls_with(addr: &str, options: Options) -> Result<Client, ClientError> {
        let (reader, writer) = connection::tls(addr, &options).await?;
        Ok(Client::start(reader, writer, options))
    }

    /// Connects over WebSocket, e.g. `ws://127.0.0.1:9000/ws`.
    ///
    /// # Errors
    /// [`ClientError::WebSocket`] if the connection or handshake fails.
    pub async fn connect_ws(url: &str) -> Result<Client, ClientError> {
        Client::connect_ws_with(url, Options::default()).await
    }

    /// Connects over WebSocket with `options`.
    ///
    /// # Errors
    /// [`ClientError::WebSocket`] if the connection or handshake fails.
    pub async fn connect_ws_with(url: &str, options: Options) -> Result<Client, ClientError> {
        let (reader, writer) = connection::ws(url, &options).await?;
        Ok(Client::start(reader, writer, options))
    }

    fn start(reader: connection::Reader, writer: connection::Writer, options: Options) -> Client {
        let (outgoing, to_write) = mpsc::channel(1024);
        let (deliver, incoming) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let tasks = vec![
            tokio::spawn(connection::write_loop(writer, to_write)),
            tokio::spawn(read_loop(reader, Arc::clone(&pending), deliver, outgoing.clone())),
        ];
        Client {
            outgoing,
            pending,
            incoming,
            next_seq: AtomicU32::new(1),
            options,
            tasks,
        }
    }

    /// Authenticates with a token (and an optional device label).
    ///
    /// # Errors
    /// [`ClientError::AuthFailed`] with the server's code and reason.
    pub async fn authenticate(&mut self, token: &str, device: Option<&str>) -> Result<AuthOk, ClientError> {
        self.resume(token, device, None).await
    }

    /// Authenticates, asking for every inbox entry after `since` (v1.1):
    /// they arrive before any newer delivery, and the reply's `inbox` says
    /// whether anything was missed (`recovered`).
    ///
    /// # Errors
    /// [`ClientError::AuthFailed`] with the server's code and reason.
    pub async fn resume(
        &mut self,
        token: &str,
        device: Option<&str>,
        since: Option<jim_model::Position>,
    ) -> Result<AuthOk, ClientError> {
        let body = serde_json::to_vec(&AuthRequest {
            token: token.to_owned(),
            device: device.map(str::to_owned),
            since: since.and_then(|since| serde_json::to_value(since).ok()),
        })
        .unwrap_or_default();
        let reply = self.request(Command::Auth, Bytes::from(body)).await?;
        match reply.cmd {
            Command::AuthOk => {
                let ok: AuthOk =
                    serde_json::from_slice(&reply.body).map_err(|e| ClientError::BadReply(e.to_string()))?;
                if self.options.heartbeat {
                    let every = Duration::from_secs(u64::from(ok.heartbeat_secs.max(1)));
                    self.tasks
                        .push(tokio::spawn(heartbeat(self.outgoing.clone(), every)));
                }
                Ok(ok)
            }
            Command::AuthFailed => {
                let status =
                    Status::from_slice(&reply.body).map_err(|e| ClientError::BadReply(e.to_string()))?;
                Err(ClientError::AuthFailed {
                    code: status.code,
                    reason: status.reason,
                })
            }
            _ => Err(error_of(&reply)),
        }
    }

    /// Sends a message (`B101` to a user, `B102` to a group) and waits for
    /// the gateway's ack.
    ///
    /// # Errors
    /// [`ClientError::Refused`] with the server's error code and reason, or
    /// a connection failure.
    pub async fn send(&self, cmd: Command, message: &Message) -> Result<Ack, ClientError> {
        let reply = self.request(cmd, Bytes::from(message.to_vec())).await?;
        match Message::from_slice(&reply.body) {
            Ok(Message::Ack(ack)) => Ok(ack),
            _ => Err(error_of(&reply)),
        }
    }

    /// Acknowledges a message this session received (a read receipt for
    /// the application; the gateway does not reply).
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the connection is gone.
    pub async fn acknowledge(&self, ack: &Ack) -> Result<(), ClientError> {
        let frame = Frame::new(Command::C2C, self.seq(), Message::Ack(ack.clone()).to_vec());
        self.outgoing
            .send(frame)
            .await
            .map_err(|_| ClientError::Closed(None))
    }

    /// Sends a receipt (contract v1.2): everything up to `message_id` in
    /// `conversation` was read (or delivered). The gateway does not reply
    /// to a valid one; the reader's other devices and, one to one, the
    /// other user get it.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the connection is gone.
    pub async fn mark(
        &self,
        conversation: jim_model::Conversation,
        status: jim_model::MarkStatus,
        message_id: jim_model::MessageId,
    ) -> Result<(), ClientError> {
        let (field, id) = match &conversation {
            jim_model::Conversation::User(id) => ("receiver_id", id),
            jim_model::Conversation::Group(id) => ("group_id", id),
        };
        let body = serde_json::json!({
            "type": "ack",
            "data": {field: id, "message_id": message_id.to_string(), "status": status.as_str()},
        });
        self.fire(Command::C2C, body).await
    }

    /// Tells the other side of `conversation` that this user is typing
    /// (`on`) or stopped (`B104`; the gateway relays at most one every 2 s
    /// per conversation).
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the connection is gone.
    pub async fn typing(&self, conversation: jim_model::Conversation, on: bool) -> Result<(), ClientError> {
        let (field, id) = match &conversation {
            jim_model::Conversation::User(id) => ("receiver_id", id),
            jim_model::Conversation::Group(id) => ("group_id", id),
        };
        let body = serde_json::json!({
            "type": "typing",
            "data": {field: id, "state": if on { "on" } else { "off" }},
        });
        self.fire(Command::Typing, body).await
    }

    /// A page of `conversation`'s history, newest first: entries below
    /// offset `before` (`None`: from the head), at most `limit` (`B105`).
    ///
    /// # Errors
    /// [`ClientError::Refused`] (4004 when the gateway keeps no inbox), or
    /// a connection failure.
    pub async fn history(
        &self,
        conversation: &jim_model::Conversation,
        before: Option<u32>,
        limit: usize,
    ) -> Result<HistoryPage, ClientError> {
        let mut request = serde_json::json!({"op": "history", "conversation": conversation, "limit": limit});
        if let Some(before) = before {
            request["before"] = before.into();
        }
        self.query(request).await
    }

    /// This user's conversations, most recent first, with unread counts
    /// (`B105`).
    ///
    /// # Errors
    /// As [`history`](Self::history).
    pub async fn conversations(&self, limit: usize) -> Result<ConversationList, ClientError> {
        self.query(serde_json::json!({"op": "conversations", "limit": limit}))
            .await
    }

    async fn query<T: serde::de::DeserializeOwned>(
        &self,
        request: serde_json::Value,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let reply = self.request(Command::History, Bytes::from(body)).await?;
        serde_json::from_slice::<T>(&reply.body).map_err(|_| error_of(&reply))
    }

    /// Sends a frame nobody answers unless it is refused.
    async fn fire(&self, cmd: Command, body: serde_json::Value) -> Result<(), ClientError> {
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.outgoing
            .send(Frame::new(cmd, self.seq(), body))
            .await
            .map_err(|_| ClientError::Closed(None))
    }

    /// Sends a frame with `cmd` and `body` and returns the server's reply
    /// frame, whatever it is.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] without a reply in time, or a connection failure.
    pub async fn request(&self, cmd: Command, body: Bytes) -> Result<Frame, ClientError> {
        let seq = self.seq();
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(seq, tx);
        if self.outgoing.send(Frame::new(cmd, seq, body)).await.is_err() {
            self.lock_pending().remove(&seq);
            return Err(ClientError::Closed(None));
        }
        match tokio::time::timeout(self.options.request_timeout, rx).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Err(ClientError::Closed(None)),
            Err(_) => {
                self.lock_pending().remove(&seq);
                Err(ClientError::Timeout)
            }
        }
    }

    /// Pings and waits for the pong.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.request(Command::Ping, Bytes::new()).await.map(|_| ())
    }

    /// The next message or close from the server; `None` once the
    /// connection is gone.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// The next message (typing notices, which are not messages, are
    /// skipped): a close becomes an error.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the server closed instead.
    pub async fn next_message(&mut self) -> Result<(Command, Message), ClientError> {
        loop {
            match self.next().await {
                Some(Incoming::Message { cmd, message, .. }) => return Ok((cmd, message)),
                Some(Incoming::Typing { .. }) => {}
                Some(Incoming::Closed(status)) => return Err(ClientError::Closed(Some(status))),
                None => return Err(ClientError::Closed(None)),
            }
        }
    }

    /// Leaves cleanly: sends `A998` and waits for the server's `A999`.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] if the server did not answer in time.
    pub async fn close(mut self) -> Result<Status, ClientError> {
        let _ = self
            .outgoing
            .send(Frame::empty(Command::ClientClose, self.seq()))
            .await;
        let wait = async {
            loop {
                match self.incoming.recv().await {
                    Some(Incoming::Closed(status)) => return Ok(status),
                    Some(Incoming::Message { .. } | Incoming::Typing { .. }) => {}
                    None => return Err(ClientError::Closed(None)),
                }
            }
        };
        tokio::time::timeout(self.options.request_timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    fn seq(&self) -> u32 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Frame>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The error a reply frame carries.
fn error_of(reply: &Frame) -> ClientError {
    match Message::from_slice(&reply.body) {
        Ok(Message::Error(ErrorData { code, reason, .. })) => ClientError::Refused { code, reason },
        _ => ClientError::BadReply(format!(
            "unexpected {} reply: {}",
            reply.cmd,
            String::from_utf8_lossy(&reply.body)
        )),
    }
}

/// What a frame from the server is.
enum Kind {
    Reply,
    Delivery(Box<Message>),
    Typing(Box<Incoming>),
    Close,
    Ping,
}

fn classify(frame: &Frame) -> Kind {
    match frame.cmd {
        Command::ServerClose => Kind::Close,
        Command::Ping => Kind::Ping,
        Command::C2C | Command::C2G | Command::S2C => match Message::from_slice(&frame.body) {
            Ok(message) if message.kind().is_chat() => Kind::Delivery(Box::new(message)),
            // A receipt (an ack with a status) is delivered, not a reply.
            // (A reply to this client's own send never has a status.)
            Ok(Message::Ack(ack)) if ack.status.is_some() => Kind::Delivery(Box::new(Message::Ack(ack))),
            // An ack or an error (or anything unreadable) answers a request.
            _ => Kind::Reply,
        },
        Command::Typing => match typing_of(&frame.body) {
            Some(typing) => Kind::Typing(Box::new(typing)),
            None => Kind::Reply,
        },
        _ => Kind::Reply,
    }
}

/// A relayed `B104`.
fn typing_of(body: &[u8]) -> Option<Incoming> {
    let typing = jim_model::Typing::parse(body).ok()?;
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let sender_id = value["data"]["sender_id"].as_str()?.to_owned();
    // From this user's side: one to one, the conversation is the typist.
    let conversation = match typing.conversation {
        jim_model::Conversation::User(_) => jim_model::Conversation::User(sender_id.clone()),
        group => group,
    };
    Some(Incoming::Typing {
        sender_id,
        conversation,
        on: typing.on,
    })
}

async fn read_loop(
    mut reader: connection::Reader,
    pending: Pending,
    deliver: mpsc::UnboundedSender<Incoming>,
    outgoing: mpsc::Sender<Frame>,
) {
    while let Ok(Some(frame)) = reader.read_frame().await {
        match classify(&frame) {
            Kind::Close => {
                let status = Status::from_slice(&frame.body)
                    .unwrap_or_else(|_| Status::new(0, "unreadable A999 body"));
                let _ = deliver.send(Incoming::Closed(status));
                return;
            }
            Kind::Ping => {
                let _ = outgoing
                    .send(frame.reply(Command::Pong, frame.body.clone()))
                    .await;
            }
            Kind::Reply => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&frame.seq);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(frame);
                }
            }
            Kind::Typing(typing) => {
                let _ = deliver.send(*typing);
            }
            Kind::Delivery(message) => {
                let _ = deliver.send(Incoming::Message {
                    cmd: frame.cmd,
                    seq: frame.seq,
                    message: *message,
                    body: frame.body,
                });
            }
        }
    }
}

async fn heartbeat(outgoing: mpsc::Sender<Frame>, every: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut seq = 0u32;
    loop {
        ticker.tick().await;
        // Heartbeats use their own high range of seq numbers; nobody waits for the pong.
        seq = seq.wrapping_add(1);
        if outgoing
            .send(Frame::empty(Command::Ping, 0x8000_0000 | seq))
            .await
            .is_err()
        {
            return;
        }
    }
}
