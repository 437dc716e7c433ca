//! TCP and WebSocket adapters of the Jim IM gateway.
//!
//! Every transport becomes one [`Connection`], whose [`Link`] yields whole
//! [`Frame`](jim_protocol::Frame)s and writes batches of them, so the
//! session code never knows which transport it runs on. The adapters only
//! accept and handshake.
//!
//! - TCP ([`tcp`]): frames on the stream, with a read buffer that is
//!   released whenever the connection has nothing pending, so idle
//!   connections hold no buffer; a batch of frames is one `write`.
//! - TCP with TLS ([`tls`]): the same frames through rustls, once the
//!   handshake is done (the gateway accepts and handshakes).
//! - WebSocket ([`ws`]): an axum route that upgrades, then one binary
//!   message per frame, read off the upgraded TCP socket with the same
//!   releasable buffer as TCP; text messages and messages that are not
//!   exactly one frame are protocol errors; messages above the maximum
//!   are refused from the WebSocket header.
//!
//! # Features
//! - `tcp` (default): the TCP adapter.
//! - `ws` (default): the WebSocket adapter (axum, hyper, tungstenite's
//!   frame headers).
//! - `tls` (default): frames on TLS streams (tokio-rustls).

#![warn(missing_docs)]

mod connection;
mod error;
#[cfg(feature = "tcp")]
mod fill;
#[cfg(feature = "tcp")]
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "ws")]
pub mod ws;

pub use connection::{Connection, Incoming, Link};
pub use error::TransportError;
pub use jim_protocol::Transport;

#[cfg(not(any(feature = "tcp", feature = "ws")))]
compile_error!("jim-transport needs at least one of the features `tcp` and `ws`");
