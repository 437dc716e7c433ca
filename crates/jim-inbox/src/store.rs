//! The one interface over every store.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};

#[cfg(feature = "disk")]
use crate::disk::DiskStore;
use crate::memory::MemoryStore;
#[cfg(feature = "redis")]
use crate::redis::RedisStore;
use crate::{Append, Appended, InboxError, InboxState, KeptGroup, Offset, Read, Retention, StoreKind};

/// The inboxes of a deployment's users, in one of the stores.
///
/// Cheap to clone (clones share the store). Appends happen before the
/// sender is acked: an error means nothing was stored and no ack may be
/// given.
///
/// ```
/// use bytes::Bytes;
/// use jim_inbox::{Append, Appended, Inbox, Retention};
/// use jim_protocol::Command;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let inbox = Inbox::memory(Retention::default());
/// let body = Bytes::from_static(br#"{"type":"text","data":{"text":"hi"}}"#);
/// let append = Append {
///     cmd: Command::C2C,
///     body: &body,
///     except: None,
///     sender: Some("alice"),
///     client_msg_id: None,
///     message_id: 7,
/// };
/// let bob = "bob".into();
/// let stored = inbox.append([&bob].into_iter(), &append).await?;
/// assert_eq!(stored, Appended::Stored { offsets: vec![1], sender_offset: None });
/// let read = inbox.read("bob", 0, 100).await?;
/// assert_eq!(read.entries[0].body, body);
/// # Ok::<(), jim_inbox::InboxError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Inbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: InboxMetrics,
}

// One per process: its size does not matter, and boxing the memory store
// would cost an indirection per append.
#[allow(clippy::large_enum_variant)]
enum Store {
    Off,
    Memory(MemoryStore),
    #[cfg(feature = "disk")]
    Disk(DiskStore, std::path::PathBuf),
    #[cfg(feature = "redis")]
    Redis(RedisStore, String),
}

/// What the store counts, registered by whoever renders them (each
/// gateway has its own registry). [`Default`] counts nothing.
#[derive(Debug, Clone)]
pub struct InboxMetrics {
    /// Messages stored.
    pub appends: Counter,
    /// Retries recognised (not stored again).
    pub duplicates: Counter,
    /// Reads (replays and gap fills).
    pub reads: Counter,
    /// Entries read.
    pub read_entries: Counter,
    /// Appends and reads the store failed.
    pub errors: Counter,
    /// How long appends took, in seconds.
    pub append_seconds: Histogram,
    /// `client_msg_id`s forgotten before their window ended, a sender
    /// having sent more than `dedupe_per_user` within it.
    pub dedupe_forgotten: Counter,
}

impl InboxMetrics {
    /// The store's metrics (`jim_inbox_*`), registered by `counter` and
    /// `histogram` (name, help) in a registry of the caller's.
    pub fn register(
        counter: impl Fn(&'static str, &'static str) -> Counter,
        histogram: impl FnOnce(&'static str, &'static str) -> Histogram,
    ) -> InboxMetrics {
        InboxMetrics {
            appends: counter("jim_inbox_appends_total", "Messages stored in inboxes"),
            duplicates: counter(
                "jim_inbox_duplicates_total",
                "Retried sends recognised by client_msg_id (not stored again)",
            ),
            reads: counter("jim_inbox_reads_total", "Reads of the inbox store"),
            read_entries: counter("jim_inbox_read_entries_total", "Inbox entries read"),
            errors: counter(
                "jim_inbox_store_errors_total",
                "Inbox appends and reads the store failed",
            ),
            append_seconds: histogram(
                "jim_inbox_append_seconds",
                "Time to store a message in its inboxes",
            ),
            dedupe_forgotten: counter(
                "jim_inbox_dedupe_forgotten_total",
                "client_msg_ids forgotten early: their sender sent more than inbox.dedupe_per_user within the window",
            ),
        }
    }
}

impl Default for InboxMetrics {
    fn default() -> InboxMetrics {
        InboxMetrics {
            appends: Counter::noop(),
            duplicates: Counter::noop(),
            reads: Counter::noop(),
            read_entries: Counter::noop(),
            errors: Counter::noop(),
            append_seconds: Histogram::noop(),
            dedupe_forgotten: Counter::noop(),
        }
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("store", &self.describe()).finish()
    }
}

impl Inbox {
    fn new(store: Store, metrics: InboxMetrics) -> Inbox {
        Inbox {
            inner: Arc::new(Inner { store, metrics }),
        }
    }

    /// No inbox: appends store nothing and offsets are 0.
    pub fn off() -> Inbox {
        Inbox::new(Store::Off, InboxMetrics::default())
    }

    /// Inboxes in this process's memory.
    pub fn memory(retention: Retention) -> Inbox {
        Inbox::new(
            Store::Memory(MemoryStore::new(retention, Counter::noop())),
            InboxMetrics::default(),
        )
    }

    /// Opens the store `kind` names, counting into `metrics`; within a Tokio runtime it also starts
    /// the task that drops entries past their age.
    ///
    /// # Errors
    /// [`InboxError::Open`] if the store cannot be opened (or its feature
    /// is off).
    pub async fn open(
        kind: &StoreKind,
        retention: Retention,
        metrics: InboxMetrics,
    ) -> Result<Inbox, InboxError> {
        let inbox = match kind {
            StoreKind::Off => return Ok(Inbox::new(Store::Off, metrics)),
            StoreKind::Memory => Inbox::new(
                Store::Memory(MemoryStore::new(retention, metrics.dedupe_forgotten.clone())),
                metrics,
            ),
            #[cfg(feature = "disk")]
            StoreKind::Disk { dir } => Inbox::new(
                Store::Disk(
                    DiskStore::open(dir, retention, metrics.dedupe_forgotten.clone())?,
                    dir.clone(),
                ),
                metrics,
            ),
            #[cfg(not(feature = "disk"))]
            StoreKind::Disk { .. } => {
                return Err(InboxError::Open {
                    reason: "built without the `disk` feature".into(),
                });
            }
            #[cfg(feature = "redis")]
            StoreKind::Redis { url } => Inbox::new(
                Store::Redis(
                    RedisStore::open(url, retention, metrics.dedupe_forgotten.clone()).await?,
                    crate::config::redacted(url),
                ),
                metrics,
            ),
            #[cfg(not(feature = "redis"))]
            StoreKind::Redis { .. } => {
                return Err(InboxError::Open {
                    reason: "built without the `redis` feature".into(),
                });
            }
        };
        if let (Store::Memory(_), Ok(runtime)) = (&inbox.inner.store, tokio::runtime::Handle::try_current()) {
            runtime.spawn(sweep_memory(Arc::downgrade(&inbox.inner), retention));
        }
        Ok(inbox)
    }

    /// Whether an append completes without waiting (memory, off).
    pub fn settles_at_once(&self) -> bool {
        matches!(self.inner.store, Store::Off | Store::Memory(_))
    }

    /// Whether messages are stored (the store is not `off`).
    pub fn is_on(&self) -> bool {
        !matches!(self.inner.store, Store::Off)
    }

    /// The store, for the start-up banner: `memory`, `disk (DIR)` or `off`.
    pub fn describe(&self) -> String {
        match &self.inner.store {
            Store::Off => "off".into(),
            Store::Memory(_) => "memory".into(),
            #[cfg(feature = "disk")]
            Store::Disk(_, dir) => format!("disk ({})", dir.display()),
            #[cfg(feature = "redis")]
            Store::Redis(_, url) => format!("redis ({url})"),
        }
    }

    /// Appends a message to the inbox of each of `users` (in that order:
    /// the offsets come back in it), unless it is a retry of one accepted
    /// within the dedupe window.
    ///
    /// # Errors
    /// [`InboxError::Unavailable`]: nothing was stored.
    pub async fn append<'u>(
        &self,
        users: impl Iterator<Item = &'u Arc<str>>,
        append: &Append<'_>,
    ) -> Result<Appended, InboxError> {
        self.submit(users, append).await
    }

    /// As [`append`](Self::append), without waiting: for a store that
    /// [settles at once](Self::settles_at_once) (memory, off). Another
    /// store stores nothing and says so.
    ///
    /// # Errors
    /// [`InboxError::Unavailable`]: nothing was stored.
    pub fn append_now<'u>(
        &self,
        users: impl Iterator<Item = &'u Arc<str>>,
        append: &Append<'_>,
    ) -> Result<Appended, InboxError> {
        if !self.settles_at_once() {
            return Err(InboxError::unavailable(
                "this store does not append at once: use append",
            ));
        }
        let mut pending = self.submit(users, append);
        pending.settle()
    }

    /// As [`append`](Self::append), in two steps: the append takes its
    /// place in the store's order now (appends submitted one after the
    /// other get their offsets in that order), and the returned future
    /// says when it is stored. A router routing one link's messages submits
    /// each in turn and waits for them together.
    pub fn submit<'u>(&self, users: impl Iterator<Item = &'u Arc<str>>, append: &Append<'_>) -> Pending {
        // Only stores that make an append wait are timed: a memory append
        // takes well under a microsecond, and two clock reads and a
        // histogram sample would be a good part of it, on every message.
        let started = (!matches!(self.inner.store, Store::Off | Store::Memory(_))).then(Instant::now);
        let state = match &self.inner.store {
            Store::Off => PendingState::Done(Some(Ok(Appended::Stored {
                offsets: users.map(|_| 0).collect(),
                sender_offset: None,
            }))),
            Store::Memory(store) => PendingState::Done(Some(Ok(store.append(users, append)))),
            #[cfg(feature = "disk")]
            Store::Disk(store, _) => match store.submit(users, append) {
                Ok(answer) => PendingState::Answer(answer),
                Err(e) => PendingState::Done(Some(Err(e))),
            },
            #[cfg(feature = "redis")]
            Store::Redis(store, _) => PendingState::Answer(store.submit(users, append)),
        };
        Pending {
            inbox: self.clone(),
            started,
            state,
        }
    }

    /// Up to `max` entries of `user`'s inbox after offset `after`, oldest
    /// first.
    ///
    /// # Errors
    /// [`InboxError::Unavailable`].
    pub async fn read(&self, user: &str, after: Offset, max: usize) -> Result<Read, InboxError> {
        let metrics = &self.inner.metrics;
        let read = match &self.inner.store {
            Store::Off => Ok(Read {
                epoch: "".into(),
                entries: Vec::new(),
            }),
            Store::Memory(store) => Ok(store.read(user, after, max)),
            #[cfg(feature = "disk")]
            Store::Disk(store, _) => store.read(user, after, max),
            #[cfg(feature = "redis")]
            // Boxed, like every Redis call here: its future would otherwise
            // sit in every caller's (every session's task), idle or not.
            Store::Redis(store, _) => Box::pin(store.read(user, after, max)).await,
        };
        match &read {
            Ok(read) => {
                metrics.reads.increment(1);
                metrics.read_entries.increment(read.entries.len() as u64);
            }
            Err(_) => metrics.errors.increment(1),
        }
        read
    }

    /// Where `user`'s inbox stands.
    ///
    /// # Errors
    /// [`InboxError::Unavailable`].
    pub async fn state(&self, user: &str) -> Result<InboxState, InboxError> {
        let state = match &self.inner.store {
            Store::Off => Ok(InboxState {
                epoch: "".into(),
                oldest: 1,
                head: 0,
                held: 0,
            }),
            Store::Memory(store) => Ok(store.state(user)),
            #[cfg(feature = "disk")]
            Store::Disk(store, _) => store.state(user),
            #[cfg(feature = "redis")]
            Store::Redis(store, _) => Box::pin(store.state(user)).await,
        };
        if state.is_err() {
            self.inner.metrics.errors.increment(1);
        }
        state
    }

    /// Keeps a group's members (none: the group is gone) where a restart
    /// finds them. The memory store keeps nothing: it does not outlive the
    /// process that holds the groups anyway.
    ///
    /// # Errors
    /// [`InboxError::Unavailable`].
    pub async fn save_group(&self, group: &str, members: Vec<Arc<str>>) -> Result<(), InboxError> {
        match &self.inner.store {
            Store::Off | Store::Memory(_) => {
                let _ = (group, members);
                Ok(())
            }
            #[cfg(feature = "disk")]
            Store::Disk(store, _) => store.save_group(group, members).await,
            #[cfg(feature = "redis")]
            Store::Redis(store, _) => store.save_group(group, members).await,
        }
    }

    /// Moves `user`'s mark `key` (a receipt's: what they read or had
    /// delivered in one conversation) forward to message `id`; whether it
    /// moved. A mark at or below the current one changes nothing. With the
    /// store `off` nothing is kept, and every mark moves.
    ///
    /// ```
    /// use jim_inbox::{Inbox, Retention};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let inbox = Inbox::memory(Retention::default());
    /// assert!(inbox.set_mark("alice", "read u:bob", 42).await?);
    /// assert!(!inbox.set_mark("alice", "read u:bob", 41).await?, "only forward");
    /// assert_eq!(inbox.marks("alice").await?, vec![("read u:bob".to_owned(), 42)]);
    /// # Ok::<(), jim_inbox::InboxError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`InboxError::Unavailable`].
    pub async fn set_mark(&self, user: &str, key: &str, id: u64) -> Result<bool, InboxError> {
        match &self.inner.store {
            Store::Off => Ok(true),
            Store::Memory(store) => Ok(store.set_mark(user, key, id)),
            #[cfg(feature = "disk")]
            Store::Disk(store, _) => store.set_mark(user, key, id),
            #[cfg(feature = "redis")]
            Store::Redis(store, _) => Box::pin(store.set_mark(user, key, id)).await,
        }
    }

    /// As [`set_mark`](Self::set_mark), without waiting, for a store that
    /// [settles at once](Self::settles_at_once) (memory, off); `None` (nothing
    /// done) for another.
    pub fn set_mark_now(&self, user: &str, key: &str, id: u64) -> Option<bool> {
        match &self.inner.store {
            Store::Off => Some(true),
            Store::Memory(store) => Some(store.set_mark(user, key, id)),
            #[cfg(any(feature = "disk", feature = "redis"))]
            _ => None,
        }
    }

    /// Every mark of `user`: (key, message id).
    ///
    /// # Errors
    /// [`InboxError::Unavailable`].
    pub async fn marks(&self, user: &str) -> Result<Vec<(String, u64)>, InboxError> {
        match &self.inner.store {
            Store::Off => Ok(Vec::new()),
            Store::Memory(store) => Ok(store.marks(user)),
            #[cfg(feature = "disk")]
            Store::Disk(store, _) => store.marks(user),
            #[cfg(feature = "redis")]
            Store::Redis(store, _) => Box::pin(store.marks(user)).await,
        }
    }

    /// Every group kept by [`save_group`](Self::save_group).
    ///
    /// # Errors
    /// [`InboxError::Unavailable`].
    pub async fn groups(&self) -> Result<Vec<KeptGroup>, InboxError> {
        match &self.inner.store {
            Store::Off | Store::Memory(_) => Ok(Vec::new()),
            #[cfg(feature = "disk")]
            Store::Disk(store, _) => store.groups(),
            #[cfg(feature = "redis")]
            Store::Redis(store, _) => store.groups().await,
        }
    }

    /// Drops entries past their age and forgotten retries now (a task does
    /// it periodically; the disk store's committer does it itself).
    pub fn sweep(&self) {
        if let Store::Memory(store) = &self.inner.store {
            store.sweep();
        }
    }
}

/// An append submitted to the store: resolves once it is stored (or not).
#[must_use = "an append is stored only once this says so"]
pub struct Pending {
    inbox: Inbox,
    /// When it was submitted, for a store that makes it wait.
    started: Option<Instant>,
    state: PendingState,
}

enum PendingState {
    Done(Option<Result<Appended, InboxError>>),
    /// The answer of the disk store's committer, or of the Redis store's
    /// batching task.
    #[cfg(any(feature = "disk", feature = "redis"))]
    Answer(tokio::sync::oneshot::Receiver<Result<Appended, InboxError>>),
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Pending {
    /// Whether the append is already settled (the memory and off stores
    /// settle at once): then no task need wait for it.
    pub fn is_settled(&self) -> bool {
        matches!(self.state, PendingState::Done(_))
    }
}

impl std::future::Future for Pending {
    type Output = Result<Appended, InboxError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let appended = match &mut self.state {
            PendingState::Done(_) => None,
            #[cfg(any(feature = "disk", feature = "redis"))]
            PendingState::Answer(answer) => match std::pin::Pin::new(answer).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    Some(result.unwrap_or_else(|_| Err(InboxError::unavailable("the store stopped"))))
                }
            },
        };
        let _ = cx;
        Poll::Ready(match appended {
            Some(appended) => self.counted(appended),
            None => self.settle(),
        })
    }
}

impl Pending {
    /// The outcome of an append that [settled](Self::is_settled) at once,
    /// without waiting; an append not settled yet stores nothing and says
    /// so ([`InboxError::Unavailable`]).
    ///
    /// # Errors
    /// As [`Inbox::append`].
    pub fn settle(&mut self) -> Result<Appended, InboxError> {
        let appended = match &mut self.state {
            PendingState::Done(result) => result.take(),
            #[cfg(any(feature = "disk", feature = "redis"))]
            _ => None,
        };
        let appended =
            appended.unwrap_or_else(|| Err(InboxError::unavailable("append settled twice, or not yet")));
        self.counted(appended)
    }

    fn counted(&self, appended: Result<Appended, InboxError>) -> Result<Appended, InboxError> {
        let metrics = &self.inbox.inner.metrics;
        match &appended {
            Ok(Appended::Stored { .. }) => metrics.appends.increment(1),
            Ok(Appended::Duplicate { .. }) => metrics.duplicates.increment(1),
            Err(_) => metrics.errors.increment(1),
        }
        if let Some(started) = self.started {
            metrics.append_seconds.record(started.elapsed());
        }
        appended
    }
}

/// Sweeps a memory store every tenth of its retention (1 s to 60 s) until
/// the store is dropped.
async fn sweep_memory(inner: Weak<Inner>, retention: Retention) {
    let every = (retention.ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        if let Store::Memory(store) = &inner.store {
            store.sweep();
        }
    }
}
