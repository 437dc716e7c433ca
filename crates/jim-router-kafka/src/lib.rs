//! The `kafka` mode of the Jim IM gateway: many gateways coordinated
//! through Kafka, with no central process of ours.
//!
//! Every gateway talks only to a Kafka cluster. Presence, group membership
//! and gateway heartbeats live in compacted topics that every gateway reads
//! from the beginning at start and then follows; each message becomes one
//! record per gateway holding recipients, in the delivery partition that
//! gateway reads by explicit assignment (no consumer-group rebalancing),
//! plus one record in the events topic for applications (history,
//! moderation, notifications). The sender's ack waits for Kafka to confirm
//! every write (acks=all, idempotent producer).
//!
//! [`KafkaBackend`] implements the routing contract ([`jim_router::Router`]);
//! the topics are described in `docs/architecture.md`.
//!
//! librdkafka is built from source (bundled): no system Kafka library.

#![warn(missing_docs)]

#[cfg(feature = "client")]
mod backend;
mod config;
mod error;
#[cfg(feature = "client")]
mod positions;
#[cfg(feature = "client")]
mod records;
#[cfg(feature = "client")]
mod view;

#[cfg(feature = "client")]
pub use backend::KafkaBackend;
pub use config::KafkaConfig;
pub use error::KafkaError;
/// The rdkafka this backend is built with, for applications (and tests)
/// that read the same cluster.
#[cfg(feature = "client")]
pub use rdkafka;
