//! The Jim IM gateway: sessions, authentication, limits and the admin API,
//! over any routing backend.
//!
//! [`Gateway`] takes a [`Config`] and a [`Router`](jim_router::Router)
//! (the in-process [`LocalRouter`](jim_router::LocalRouter), or a remote
//! backend), binds the TCP, WebSocket and admin listeners, and runs every
//! connection through the session life of the `jim1` contract:
//! authentication (JWT: HS256, RS256, ES256, EdDSA; or the explicit development mode), heartbeat
//! and idle timeout, message validation and stamping, acks, error replies,
//! rate limits, slow-consumer protection and graceful shutdown.
//!
//! [`start`] builds a gateway from its [`Config`] alone, in the mode it
//! names (local, grpc or kafka) with the backend and inbox store it names:
//! the composition root, which the `jim-gateway` binary (a thin `main.rs`
//! over `cli`, feature `cli`) only feeds with what the flags say. The
//! in-process `local` mode is always there.
//!
//! # Features
//! - `cli` (default): the `jim-gateway` binary's command line (clap, the
//!   TOML configuration file, logs to stderr, the open-file limit). An
//!   application that embeds the gateway turns it off
//!   (`default-features = false`) and builds none of it.
//! - `grpc` (default): the `grpc` mode (gateways routed by a central
//!   router; the router binary is the `jim-router-server` package).
//! - `kafka`: the `kafka` mode (gateways coordinated through Kafka;
//!   librdkafka is built from source, which needs a C compiler and `make`).
//! - `full`: `grpc` and `kafka`, for one binary that runs every mode.
//! - `disk` (default): the inbox's `disk` store (fjall, embedded).
//! - `redis` (default): the inbox's `redis` store (redis-rs), which kafka
//!   mode needs for an inbox.
//!
//! # Example: a gateway in any mode, from its configuration
//! ```no_run
//! # async fn example() -> Result<(), jim_gateway::GatewayError> {
//! let config: jim_gateway::Config = toml::from_str(r#"
//!     mode = "grpc"
//!     [auth]
//!     dev = true
//!     [grpc]
//!     router = "http://127.0.0.1:9093"
//! "#).unwrap();
//! let gateway = jim_gateway::start(config).await?;
//! gateway.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a gateway embedded in a service, with a router to drive
//! ```no_run
//! use jim_gateway::{Config, Gateway};
//! use jim_model::{Message, MessageIdGenerator, Text};
//! use jim_router::{LocalRouter, Outgoing, Router, Target};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let router = LocalRouter::new();
//! let gateway = Gateway::new(Config::ephemeral_dev(), router.clone())?.start().await?;
//!
//! // The service pushes to connected users through its own handle.
//! let ids = MessageIdGenerator::new(1)?;
//! let body = Message::Text(Text::new("alice", "welcome!")).to_vec();
//! router.route(Outgoing::push(Target::User("alice".into()), &body, "service", &ids)?).await?;
//!
//! gateway.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod addresses;
mod admin;
mod alarms;
pub mod auth;
#[cfg(feature = "cli")]
pub mod cli;
mod clock;
mod compose;
mod config;
mod cursor;
mod devices;
mod error;
mod fanout;
mod limits;
mod listen;
pub mod metrics;
mod ready;
mod server;
mod session;
mod state;
mod typing;
mod verdicts;
mod websocket;
mod wire;
mod writer;

pub use compose::{check_backend, start};
pub use config::{
    Admin, Auth, Config, Limits, Listen, Mode, PublicKey, SessionTimers, SessionsOverLimit, Tls,
};
pub use error::GatewayError;
pub use jim_service::StopSignals;
pub use server::{Gateway, RunningGateway};
