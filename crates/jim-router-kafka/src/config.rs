//! What the Kafka backend is configured with.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Kafka backend's configuration (the `[kafka]` section of the
/// gateway's file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Prefix of every topic name.
    pub topic_prefix: String,
    /// Partitions of the delivery topic (gateway `n` reads partition
    /// `n mod delivery_partitions`); at least the number of gateways.
    pub delivery_partitions: i32,
    /// Partitions of the events topic.
    pub events_partitions: i32,
    /// Partitions of the compacted presence, groups and gateways topics.
    pub state_partitions: i32,
    /// Replication factor of topics the backend creates.
    pub replication: i32,
    /// A gateway that sent no heartbeat for this long no longer owns its
    /// users. Heartbeats go every third of it.
    pub lease_ms: u64,
    /// How long a write may take before the sender gets error 5000.
    pub produce_timeout_ms: u64,
    /// How long start-up waits for Kafka before giving up.
    pub startup_timeout_ms: u64,
    /// Extra librdkafka properties, for both producer and consumer (e.g.
    /// `security.protocol`).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap: "127.0.0.1:9092".to_owned(),
            topic_prefix: "jim.".to_owned(),
            delivery_partitions: 64,
            events_partitions: 8,
            state_partitions: 8,
            replication: 1,
            lease_ms: 10_000,
            produce_timeout_ms: 5_000,
            startup_timeout_ms: 15_000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The lease.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// How often heartbeats go.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis((self.lease_ms / 3).max(50))
    }

    /// The produce timeout.
    pub fn produce_timeout(&self) -> Duration {
        Duration::from_millis(self.produce_timeout_ms)
    }

    /// The start-up timeout.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }

    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap.trim().is_empty() {
            return Err("kafka.bootstrap must name at least one broker".into());
        }
        if self.delivery_partitions < 1 || self.events_partitions < 1 || self.state_partitions < 1 {
            return Err("kafka partitions must be at least 1".into());
        }
        if self.replication < 1 {
            return Err("kafka.replication must be at least 1".into());
        }
        if self.lease_ms < 300 {
            return Err("kafka.lease_ms must be at least 300".into());
        }
        Ok(())
    }

    /// The name of a topic.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }
}
