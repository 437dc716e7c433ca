//! The one error type of this crate.

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// A connection could not be made or set up.
    #[error("connection: {0}")]
    Connect(String),
    /// The gateway refused or failed something the benchmark needs.
    #[error("gateway: {0}")]
    Gateway(String),
    /// I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
