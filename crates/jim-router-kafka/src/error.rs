//! The one error type of this crate.

/// Why the Kafka backend could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The configuration is invalid.
    #[error("kafka configuration: {0}")]
    Config(String),
    /// Kafka could not be reached or set up at start.
    #[error("kafka: {0}")]
    Startup(String),
    /// librdkafka refused something.
    #[cfg(feature = "client")]
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
}
