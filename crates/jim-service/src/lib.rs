//! What a Jim process needs to run as a service, shared by the gateway and
//! the central router so that neither copies the other:
//!
//! - [`Registry`]: a Prometheus registry of its own (no global recorder, so
//!   several gateways can run in one process), handing out counters and
//!   gauges and rendering the text exposition for `/metrics`.
//! - [`StopSignals`]: SIGINT and SIGTERM, caught from the moment they are
//!   installed (before a start-up banner tells anyone the process is up).
//! - [`Hangups`]: SIGHUP, which asks a process to reload what it can and
//!   never ends it.
//! - [`Acceptor`]: an accept loop that rides out a lack of file
//!   descriptors (logged once, retried after a pause) instead of spinning.
//! - [`PidFile`]: the process's id in a file while it runs (`--pid-file`).
//! - [`listen_addr`]: a listener's address in a configuration, or `"off"`.
//! - [`print_table`]: the start-up banner.
//! - [`tls`]: TLS for listeners, with certificates reloaded in place.
//! - `explain_cli_error` (feature `cli`): a mistyped flag explained.
//! - `init_logging` (feature `logging`): `tracing` to stderr, coloured only
//!   on a terminal, with a filter that can change while running.
//!
//! ```
//! let registry = jim_service::Registry::new();
//! let sent = registry.counter("jim_example_total", "Things done", &[]);
//! sent.increment(2);
//! assert!(registry.render().contains("jim_example_total 2"));
//! ```
//!
//! # Features
//! - `logging`: [`init_logging`] (tracing-subscriber).
//! - `cli`: [`explain_cli_error`] (clap).

#![warn(missing_docs)]

mod accept;
mod banner;
#[cfg(feature = "cli")]
mod cli;
pub mod listen_addr;
#[cfg(feature = "logging")]
mod logging;
mod pid_file;
mod registry;
mod signals;
pub mod tls;

pub use accept::Acceptor;
pub use banner::print_table;
#[cfg(feature = "cli")]
pub use cli::explain_cli_error;
#[cfg(feature = "logging")]
pub use logging::{LogFilter, Reload, init_logging};
pub use pid_file::PidFile;
pub use registry::{Outcomes, Registry, UPKEEP_PERIOD};
pub use signals::{Hangups, StopSignals};
