//! What Jim's tests share, instead of files included by `#[path]`:
//!
//! - the root: raw clients that speak frames over real TCP and WebSocket
//!   sockets ([`Raw`], [`HandWs`]), the admin API over HTTP, and
//!   [`both_transports!`] to run a test body over each transport (the
//!   in-process gateway, `Gw`, is `jim-e2e`'s: this crate depends on none
//!   of Jim's crates above the model);
//! - [`deployment`]: several gateways (grpc and kafka modes): where each
//!   listens, presence as it reports it, pipelined senders and the
//!   deliveries they cause, through faults;
//! - [`process`]: our binaries as processes, their logs collected;
//! - [`tansu`]: a real Kafka-protocol broker on a free port;
//! - [`redis`]: a real Redis (Debian's `redis-server`) on a free port.

#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod deployment;
pub mod document;
pub mod process;
pub mod redis;
mod support;
pub mod tansu;
pub mod tls;

pub use support::*;
