//! Retention and the choice of store.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much each inbox keeps, and for how long retries are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many entries per inbox (older ones are dropped).
    pub max_entries: u32,
    /// Entries older than this are dropped.
    pub ttl: Duration,
    /// A send with a `client_msg_id` seen this recently is a retry.
    pub dedupe_window: Duration,
    /// The `client_msg_id`s kept per sender, whatever its sessions: past
    /// it, the oldest is forgotten first (a retry of it is then a new
    /// message).
    pub dedupe_per_user: u32,
}

impl Default for Retention {
    /// 1,000 entries, 7 days, a 5-minute dedupe window (the contract's
    /// defaults), 10,000 `client_msg_id`s per sender.
    fn default() -> Retention {
        Retention {
            max_entries: 1000,
            ttl: Duration::from_secs(7 * 24 * 3600),
            dedupe_window: Duration::from_secs(300),
            dedupe_per_user: 10_000,
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
    /// In Redis (one stream per user), shared by every gateway.
    Redis {
        /// `redis://[:password@]host:port[/db]`, or a Redis Cluster's seed
        /// nodes, comma-separated.
        url: String,
    },
}

/// `[inbox]`: the store of every user's inbox (the contract's section 7)
/// and its retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxSettings {
    /// `memory` (the default), `disk`, `redis` or `off`.
    pub store: InboxStore,
    /// The `disk` store's directory.
    pub dir: std::path::PathBuf,
    /// The `redis` store's server, `redis://[:password@]host:port[/db]`;
    /// or a Redis Cluster's seed nodes, comma-separated.
    pub redis_url: String,
    /// Entries kept per inbox.
    pub max_entries: u32,
    /// Entries older than this are dropped, in seconds.
    pub ttl_secs: u64,
    /// A send with the same `client_msg_id` this recently is a retry, in
    /// seconds.
    pub dedupe_window_secs: u64,
    /// The `client_msg_id`s kept per sender within the window (the oldest
    /// forgotten first), whatever its sessions.
    pub dedupe_per_user: u32,
    /// Whether a one-to-one message is also kept in its sender's inbox and
    /// sent to the sender's other sessions (the contract's section 8).
    pub sender_copy: bool,
}

impl Default for InboxSettings {
    fn default() -> InboxSettings {
        let retention = Retention::default();
        InboxSettings {
            store: InboxStore::Memory,
            dir: "jim-inbox".into(),
            redis_url: "redis://127.0.0.1:6379/".into(),
            max_entries: retention.max_entries,
            ttl_secs: retention.ttl.as_secs(),
            dedupe_window_secs: retention.dedupe_window.as_secs(),
            dedupe_per_user: retention.dedupe_per_user,
            sender_copy: true,
        }
    }
}

impl InboxSettings {
    /// The store these settings name.
    pub fn kind(&self) -> StoreKind {
        match self.store {
            InboxStore::Memory => StoreKind::Memory,
            InboxStore::Disk => StoreKind::Disk {
                dir: self.dir.clone(),
            },
            InboxStore::Redis => StoreKind::Redis {
                url: self.redis_url.clone(),
            },
            InboxStore::Off => StoreKind::Off,
        }
    }

    /// The store and its retention, for a start-up banner.
    pub fn describe(&self) -> String {
        let retention = format!("{} entries for {} s per user", self.max_entries, self.ttl_secs);
        match self.store {
            InboxStore::Memory => format!("memory (lost on restart), {retention}"),
            InboxStore::Disk => format!("disk ({}), {retention}", self.dir.display()),
            InboxStore::Redis => format!("redis ({}), {retention}", redacted(&self.redis_url)),
            InboxStore::Off => "OFF: acked messages to offline users are lost".to_owned(),
        }
    }

    /// Checks what serde cannot: what to fix, naming the key.
    ///
    /// # Errors
    /// A sentence saying which setting is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.store != InboxStore::Off && (self.max_entries == 0 || self.ttl_secs == 0) {
            return Err(
                "inbox.max_entries and inbox.ttl_secs must be above 0 (set inbox.store = \"off\" for no inbox)".into(),
            );
        }
        if self.store != InboxStore::Off && self.dedupe_per_user == 0 {
            return Err("inbox.dedupe_per_user must be above 0".into());
        }
        Ok(())
    }

    /// Checks the settings and opens the store they name, counting into
    /// `metrics`; says loudly, in the log, when there is no inbox (an ack
    /// then promises nothing about delivery). The one way a gateway or the
    /// router opens its inbox.
    ///
    /// # Errors
    /// A sentence saying what is wrong, or why the store cannot be opened.
    pub async fn open(&self, metrics: crate::InboxMetrics) -> Result<crate::Inbox, String> {
        self.check()?;
        let inbox = crate::Inbox::open(&self.kind(), self.retention(), metrics)
            .await
            .map_err(|e| format!("[inbox]: {e}"))?;
        if self.store == InboxStore::Off {
            tracing::warn!(
                "INBOX OFF: a message acked to its sender is lost if its recipient is offline or reconnecting"
            );
        }
        Ok(inbox)
    }

    /// The retention these settings give.
    pub fn retention(&self) -> Retention {
        Retention {
            max_entries: self.max_entries,
            ttl: std::time::Duration::from_secs(self.ttl_secs),
            dedupe_window: std::time::Duration::from_secs(self.dedupe_window_secs),
            dedupe_per_user: self.dedupe_per_user,
        }
    }
}

/// The inbox store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxStore {
    /// In the process: lost with it (clients see a new epoch).
    Memory,
    /// On disk in `inbox.dir`: survives restarts.
    Disk,
    /// In Redis at `inbox.redis_url`: shared by every gateway.
    Redis,
    /// No inbox: an ack promises routing only (v1).
    Off,
}

impl InboxStore {
    /// Its name in configuration: `memory`, `disk`, `redis` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            InboxStore::Memory => "memory",
            InboxStore::Disk => "disk",
            InboxStore::Redis => "redis",
            InboxStore::Off => "off",
        }
    }
}

impl std::str::FromStr for InboxStore {
    type Err = String;

    fn from_str(s: &str) -> Result<InboxStore, String> {
        match s {
            "memory" => Ok(InboxStore::Memory),
            "disk" => Ok(InboxStore::Disk),
            "redis" => Ok(InboxStore::Redis),
            "off" => Ok(InboxStore::Off),
            other => Err(format!(
                "unknown inbox store {other:?}: memory, disk, redis or off"
            )),
        }
    }
}

/// A Redis URL without its password, for the banner and logs.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
