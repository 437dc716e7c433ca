//! Retention and the choice of store.

use std::path::PathBuf;
use std::time::Duration;

/// How much each inbox keeps, and for how long retries are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many entries per inbox (older ones are dropped).
    pub max_entries: u32,
    /// Entries older than this are dropped.
    pub ttl: Duration,
    /// A send with a `client_msg_id` seen this recently is a retry.
    pub dedupe_window: Duration,
}

impl Default for Retention {
    /// 1,000 entries, 7 days, a 5-minute dedupe window (the contract's
    /// defaults).
    fn default() -> Retention {
        Retention {
            max_entries: 1000,
            ttl: Duration::from_secs(7 * 24 * 3600),
            dedupe_window: Duration::from_secs(300),
        }
    }
}

/// Which store holds the inboxes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// No inbox: acks promise nothing beyond routing (v1).
    Off,
    /// In the process; a restart changes every epoch.
    #[default]
    Memory,
    /// On disk in this directory; survives restarts.
    Disk {
        /// The store's directory (created if missing).
        dir: PathBuf,
    },
}
