//! Logs of a binary.

use std::io::IsTerminal;

/// Sets up `tracing` logs to stderr with a filter such as `info` or
/// `jim_gateway=debug` (an invalid one means `info`). Colour codes only on
/// a terminal, not in a log file or a journal.
pub fn init_logging(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        // stdout carries the banner (and what subcommands print).
        .with_writer(std::io::stderr)
        .try_init();
}
