//! `jim-bench`: a load generator for the Jim IM gateway.
//!
//! Workloads:
//! - `c2c`: N clients, each sending to uniformly random others;
//! - `c2g`: groups of G clients, each sending to its group (fan-out);
//! - `idle`: K authenticated connections held open (memory per connection);
//! - `connect`: connect + authenticate as fast as allowed;
//! - `offline`: messages to recipients who are offline, stored in their
//!   inboxes, then replayed when they reconnect with `since`;
//! - beside `c2c` or `c2g`, a [`flood`]: one member sending to a large
//!   group at a fixed rate (what it costs everyone else).
//!
//! Over TCP or WebSocket, closed loop (at most W unacknowledged messages
//! per sender; reports deliveries per second) or open loop (a fixed total
//! rate; latency from the *scheduled* send time, so a stalled gateway shows
//! up as latency instead of hiding as a lower rate). Every run checks for
//! loss, duplicates and per-sender order, and reports them. Given the
//! gateway's process id it reads `/proc/PID` for CPU time per delivered
//! message and memory per idle connection.
//!
//! Loopback only, bounded in count and time.
//!
//! [`relay`] is a minimal relay to run the same workloads against: the
//! floor that shows how much of a figure is the machine's and the harness's.

#![warn(missing_docs)]

pub mod conn;
mod error;
pub mod flood;
pub mod history;
pub mod idle;
pub mod messaging;
pub mod offline;
pub mod peers;
pub mod relay;
pub mod report;
pub mod server;

pub use error::BenchError;
