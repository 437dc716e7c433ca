//! Logs of a binary.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::EnvFilter;

/// Puts a new filter in place.
type SetFilter = Arc<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// The filter the logs are written with, changeable while running (on
/// SIGHUP, say).
#[derive(Clone)]
pub struct LogFilter {
    reload: Option<SetFilter>,
    current: Arc<Mutex<String>>,
}

impl std::fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LogFilter").field(&self.current()).finish()
    }
}

impl LogFilter {
    /// The filter in use, as it was given.
    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Uses `filter` from now on. Whether it differs from the one in use.
    ///
    /// # Errors
    /// Not a valid filter (the one in use stays), or logging was set up by
    /// someone else (then this one cannot change it).
    pub fn set(&self, filter: &str) -> Result<bool, String> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == filter {
            return Ok(false);
        }
        let parsed = EnvFilter::try_new(filter).map_err(|e| format!("log filter {filter:?}: {e}"))?;
        let reload = self
            .reload
            .as_ref()
            .ok_or("the process's logging was set up elsewhere")?;
        reload(parsed)?;
        *current = filter.to_owned();
        Ok(true)
    }
}

/// Sets up `tracing` logs to stderr with a filter such as `info` or
/// `jim_gateway=debug` (an invalid one means `info`). Colour codes only on
/// a terminal, not in a log file or a journal. The filter can be changed
/// later through what this returns.
pub fn init_logging(filter: &str) -> LogFilter {
    let (parsed, used) = match EnvFilter::try_new(filter) {
        Ok(parsed) => (parsed, filter.to_owned()),
        Err(_) => (EnvFilter::new("info"), "info".to_owned()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(parsed)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        // stdout carries the banner (and what subcommands print).
        .with_writer(std::io::stderr)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    let installed = builder.try_init().is_ok();
    let reload: SetFilter = Arc::new(move |filter| handle.reload(filter).map_err(|e| e.to_string()));
    LogFilter {
        reload: installed.then_some(reload),
        current: Arc::new(Mutex::new(used)),
    }
}

/// A SIGHUP's reload as both binaries do it: the configuration file's log
/// filter applied, whatever else was read again, and one line to the log
/// saying what, when [`finish`](Self::finish)ed. Nothing here stops the
/// process.
#[derive(Debug, Default)]
pub struct Reload {
    done: Vec<String>,
}

impl Reload {
    /// The configuration as read again: its log filter (`Ok(filter, rest
    /// changed)`), applied now; other settings that changed wait for the
    /// next start (said); a file that does not load changes nothing (said).
    pub fn configuration(&mut self, logs: &LogFilter, read: Result<(&str, bool), String>) {
        match read {
            Ok((filter, rest_changed)) => {
                match logs.set(filter) {
                    Ok(true) => self.done.push(format!("log filter {filter:?}")),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "SIGHUP: log filter not changed"),
                }
                if rest_changed {
                    tracing::warn!(
                        "SIGHUP: the configuration changed beyond what a reload applies (the log filter, \
                         the contents of certificate and key files): the rest takes effect at the next start"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP: the configuration does not load; none of it applied")
            }
        }
    }

    /// Something else read again, as a line of the log.
    pub fn read(&mut self, what: String) {
        self.done.push(what);
    }

    /// Says what was reloaded.
    pub fn finish(self) {
        if self.done.is_empty() {
            tracing::info!(
                "SIGHUP: nothing to reload (the log filter unchanged, no certificate or key file); still serving"
            );
        } else {
            tracing::info!(reloaded = %self.done.join("; "), "SIGHUP: reloaded; still serving");
        }
    }
}
