//! The `disk` store: inboxes in an embedded log-structured engine (fjall),
//! surviving restarts with their epoch.
//!
//! One committer thread owns every write: it takes the appends waiting at
//! that moment, assigns their offsets, writes them in one batch and syncs
//! the journal once (group commit), then answers them all. Small appends
//! (one-to-one messages) pass large ones (a message to a big group), in
//! batches of their own, taking turns with them: a flood to a huge group
//! delays another user's message by one large batch at most. A sender's
//! own appends keep their order. Readers read a
//! snapshot of what is synced, so nothing is ever delivered that a crash
//! could take back.
//!
//! A message to several users (a group's members) is written once, under
//! its id, and each member's entry refers to it: a group of N costs N
//! small entries and one body, not N bodies.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::Bytes;
use fjall::{Batch, Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use jim_protocol::Command;
use tokio::sync::oneshot;

use crate::clock::{epoch_of, new_epoch, now_ms};
use crate::entry::OwnedAppend;
use crate::{Append, Appended, Entry, InboxError, InboxState, KeptGroup, Offset, Read, Retention};

/// A retry's key: the sender and its `client_msg_id`.
type RetryKey = (Arc<str>, Box<str>);
/// The retries of the batch being written: the original's id and offset.
type InBatch = HashMap<RetryKey, (u64, Option<Offset>)>;

/// Appends taken into one batch at most (one sync each).
const MAX_BATCH: usize = 4096;

/// Inbox entries taken into one batch, at least one append's: a batch
/// takes a few milliseconds at most, and whatever waits behind it
/// (another user's one-to-one message) waits that long.
const MAX_BATCH_ENTRIES: usize = 8192;

/// An append to more inboxes than this is large: small ones pass it.
const LARGE_APPEND: usize = 64;

/// An entry's header: when, the command, the session left out.
const ENTRY_HEADER: usize = 20;

/// Set on the command's first byte (ASCII: never set otherwise) of an
/// entry whose body is the id of a body stored once for several inboxes.
const SHARED_BODY: u8 = 0x80;

#[derive(Debug)]
pub(crate) struct DiskStore {
    parts: Arc<Partitions>,
    epoch: Arc<str>,
    /// What readers may see: the keyspace's sequence number after the last
    /// synced batch.
    durable: Arc<AtomicU64>,
    requests: mpsc::SyncSender<Request>,
    ttl_ms: u64,
}

struct Partitions {
    keyspace: Keyspace,
    /// user, offset → entry.
    entries: PartitionHandle,
    /// user → head, generation, oldest: written when a user's inbox is
    /// first made, wraps, or is emptied by age (it lists the users). An
    /// append does not write it: the head is the last entry's offset.
    heads: PartitionHandle,
    /// sender, client_msg_id → message id, sender's offset, time.
    recent: PartitionHandle,
    /// group → members.
    groups: PartitionHandle,
    /// message id → when, body: a message to several users, once.
    bodies: PartitionHandle,
    /// user, 0, key → message id: each user's marks (receipts), moved
    /// forward under `marks_moving`.
    marks: PartitionHandle,
    marks_moving: std::sync::Mutex<()>,
    /// This process's hold on the directory, for as long as the engine
    /// (the committer's too) has it open: the last field, dropped last.
    _lock: crate::dir_lock::DirLock,
}

impl std::fmt::Debug for Partitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitions").finish_non_exhaustive()
    }
}

enum Request {
    Append {
        users: Vec<Arc<str>>,
        append: OwnedAppend,
        reply: oneshot::Sender<Result<Appended, InboxError>>,
    },
    SaveGroup {
        group: Arc<str>,
        members: Vec<Arc<str>>,
        reply: oneshot::Sender<Result<(), InboxError>>,
    },
}

impl Request {
    /// The inbox entries it writes.
    fn entries(&self) -> usize {
        match self {
            Request::Append { users, .. } => users.len(),
            Request::SaveGroup { .. } => 1,
        }
    }

    fn sender(&self) -> Option<&Arc<str>> {
        match self {
            Request::Append { append, .. } => append.sender.as_ref(),
            Request::SaveGroup { .. } => None,
        }
    }
}

/// Requests waiting for a batch: small ones pass large ones, except a
/// sender's own, which queue behind its large one.
#[derive(Default)]
struct Waiting {
    small: VecDeque<Request>,
    large: VecDeque<Request>,
    /// Senders with requests among the large, and how many.
    behind: HashMap<Arc<str>, usize>,
    /// The last batch was small: the next is large, if any wait (so that
    /// a stream of small ones never starves them).
    large_turn: bool,
}

impl Waiting {
    fn add(&mut self, request: Request) {
        let sender = request.sender();
        let queued_behind = sender.is_some_and(|s| self.behind.contains_key(s));
        if request.entries() > LARGE_APPEND || queued_behind {
            if let Some(sender) = sender {
                *self.behind.entry(Arc::clone(sender)).or_default() += 1;
            }
            self.large.push_back(request);
        } else {
            self.small.push_back(request);
        }
    }

    fn is_empty(&self) -> bool {
        self.small.is_empty() && self.large.is_empty()
    }

    fn len(&self) -> usize {
        self.small.len() + self.large.len()
    }

    /// The next batch: the small requests waiting, or the large ones in
    /// turn, each up to the bounds of a batch (and at least one).
    fn next_batch(&mut self) -> Vec<Request> {
        let large = !self.large.is_empty() && (self.small.is_empty() || self.large_turn);
        self.large_turn = !large;
        let queue = if large { &mut self.large } else { &mut self.small };
        let mut batch = Vec::new();
        let mut entries = 0;
        while let Some(next) = queue.front() {
            if !batch.is_empty() && (batch.len() >= MAX_BATCH || entries + next.entries() > MAX_BATCH_ENTRIES)
            {
                break;
            }
            let request = queue.pop_front().expect("looked at");
            entries += request.entries();
            batch.push(request);
        }
        if large {
            for request in &batch {
                if let Some(sender) = request.sender()
                    && let Some(count) = self.behind.get_mut(sender)
                {
                    *count -= 1;
                    if *count == 0 {
                        self.behind.remove(sender);
                    }
                }
            }
        }
        batch
    }
}

fn open_err(e: impl std::fmt::Display) -> InboxError {
    InboxError::Open {
        reason: e.to_string(),
    }
}

impl DiskStore {
    pub(crate) fn open(
        dir: &Path,
        retention: Retention,
        forgotten: metrics::Counter,
    ) -> Result<DiskStore, InboxError> {
        let lock = crate::dir_lock::DirLock::take(dir)?;
        let keyspace = Config::new(dir).open().map_err(open_err)?;
        let part = |name: &str| {
            keyspace
                .open_partition(name, PartitionCreateOptions::default())
                .map_err(open_err)
        };
        let meta = part("meta")?;
        let parts = Arc::new(Partitions {
            _lock: lock,
            entries: part("entries")?,
            heads: part("heads")?,
            recent: part("recent")?,
            groups: part("groups")?,
            bodies: part("bodies")?,
            marks: part("marks")?,
            marks_moving: std::sync::Mutex::new(()),
            keyspace: keyspace.clone(),
        });
        let epoch: Arc<str> = match meta.get("epoch").map_err(open_err)? {
            Some(epoch) => String::from_utf8_lossy(&epoch).into(),
            None => {
                let epoch = new_epoch();
                meta.insert("epoch", epoch.as_bytes()).map_err(open_err)?;
                keyspace.persist(PersistMode::SyncAll).map_err(open_err)?;
                epoch
            }
        };
        let durable = Arc::new(AtomicU64::new(keyspace.instant()));
        let (requests, receiver) = mpsc::sync_channel(MAX_BATCH * 4);
        let committer = Committer {
            parts: Arc::clone(&parts),
            retention,
            durable: Arc::clone(&durable),
            heads: HashMap::new(),
            recent_order: HashMap::new(),
            forgotten,
        };
        std::thread::Builder::new()
            .name("jim-inbox-disk".into())
            .spawn(move || committer.run(&receiver))
            .map_err(open_err)?;
        Ok(DiskStore {
            parts,
            epoch,
            durable,
            requests,
            ttl_ms: retention.ttl.as_millis() as u64,
        })
    }

    /// Queues an append to the committer now; the receiver gets its result.
    pub(crate) fn submit<'u>(
        &self,
        users: impl Iterator<Item = &'u Arc<str>>,
        append: &Append<'_>,
    ) -> Result<oneshot::Receiver<Result<Appended, InboxError>>, InboxError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Append {
            users: users.cloned().collect(),
            append: OwnedAppend::of(append),
            reply,
        };
        self.queue(request)?;
        Ok(answer)
    }

    fn queue(&self, request: Request) -> Result<(), InboxError> {
        // The queue is bounded: a full one means the disk is far behind.
        self.requests
            .try_send(request)
            .map_err(|e| InboxError::unavailable(format!("disk store: {e}")))
    }

    fn snapshot(&self, partition: &PartitionHandle) -> fjall::Snapshot {
        partition.snapshot_at(self.durable.load(Ordering::Acquire))
    }

    pub(crate) fn read(&self, user: &str, after: Offset, max: usize) -> Result<Read, InboxError> {
        let head = self.head(user)?;
        let cutoff = now_ms();
        let start = entry_key(user, after.saturating_add(1));
        let end = entry_key(user, Offset::MAX);
        let mut entries = Vec::new();
        let bodies = self.snapshot(&self.parts.bodies);
        for item in self.snapshot(&self.parts.entries).range(start..=end) {
            if entries.len() >= max {
                break;
            }
            let (key, value) = item.map_err(InboxError::unavailable)?;
            let (mut entry, shared) = decode_entry(&key, value.into())?;
            // Past its age but not yet swept: as good as gone.
            if entry.at_ms.saturating_add(self.ttl_ms) < cutoff {
                continue;
            }
            if let Some(message_id) = shared {
                let Some(body) = bodies
                    .get(message_id.to_be_bytes())
                    .map_err(InboxError::unavailable)?
                else {
                    // Swept with its age: the entry is as old.
                    continue;
                };
                entry.body = Bytes::from(body).slice(8..);
            }
            entries.push(entry);
        }
        Ok(Read {
            epoch: epoch_of(&self.epoch, head.generation),
            entries,
        })
    }

    fn head(&self, user: &str) -> Result<Head, InboxError> {
        let record = self
            .snapshot(&self.parts.heads)
            .get(user)
            .map_err(InboxError::unavailable)?
            .map(|v| Head::decode(&v));
        let entries = self.snapshot(&self.parts.entries);
        let mut range = entries.range(entry_key(user, 0)..=entry_key(user, Offset::MAX));
        let first = range.next().transpose().map_err(InboxError::unavailable)?;
        let last = range.next_back().transpose().map_err(InboxError::unavailable)?;
        Ok(Head::derive(record, first.map(|(k, _)| k), last.map(|(k, _)| k)))
    }

    pub(crate) fn state(&self, user: &str) -> Result<InboxState, InboxError> {
        let head = self.head(user)?;
        Ok(InboxState {
            epoch: epoch_of(&self.epoch, head.generation),
            oldest: head.oldest,
            head: head.head,
            held: head.head.wrapping_add(1).wrapping_sub(head.oldest),
        })
    }

    pub(crate) async fn save_group(&self, group: &str, members: Vec<Arc<str>>) -> Result<(), InboxError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::SaveGroup {
            group: group.into(),
            members,
            reply,
        };
        self.queue(request)?;
        answer
            .await
            .map_err(|_| InboxError::unavailable("disk store stopped"))?
    }

    pub(crate) fn set_mark(&self, user: &str, key: &str, id: u64) -> Result<bool, InboxError> {
        let mark_key = [user.as_bytes(), b"\0", key.as_bytes()].concat();
        let _moving = self
            .parts
            .marks_moving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self
            .parts
            .marks
            .get(&mark_key)
            .map_err(InboxError::unavailable)?
            .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
            .map(u64::from_be_bytes);
        if current.is_some_and(|current| current >= id) {
            return Ok(false);
        }
        self.parts
            .marks
            .insert(mark_key, id.to_be_bytes())
            .map_err(InboxError::unavailable)?;
        Ok(true)
    }

    pub(crate) fn marks(&self, user: &str) -> Result<Vec<(String, u64)>, InboxError> {
        let prefix = [user.as_bytes(), b"\0"].concat();
        let mut marks = Vec::new();
        for item in self.parts.marks.prefix(&prefix) {
            let (key, value) = item.map_err(InboxError::unavailable)?;
            if let Ok(id) = <[u8; 8]>::try_from(&value[..]) {
                let key = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                marks.push((key, u64::from_be_bytes(id)));
            }
        }
        Ok(marks)
    }

    pub(crate) fn groups(&self) -> Result<Vec<KeptGroup>, InboxError> {
        let mut groups = Vec::new();
        for item in self.snapshot(&self.parts.groups).iter() {
            let (key, value) = item.map_err(InboxError::unavailable)?;
            groups.push((String::from_utf8_lossy(&key).into(), decode_strings(&value)));
        }
        Ok(groups)
    }
}

/// Where one inbox stands, as the committer keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    head: Offset,
    generation: u32,
    oldest: Offset,
}

impl Default for Head {
    fn default() -> Head {
        Head {
            head: 0,
            generation: 0,
            oldest: 1,
        }
    }
}

impl Head {
    /// Where an inbox stands: its record (as last written), and the keys
    /// of its first and last entries (the last may be the first).
    fn derive(record: Option<Head>, first: Option<impl AsRef<[u8]>>, last: Option<impl AsRef<[u8]>>) -> Head {
        let record = record.unwrap_or_default();
        let offset = |key: &[u8]| {
            key.get(key.len().saturating_sub(4)..)
                .and_then(|b| b.try_into().ok())
                .map_or(0, Offset::from_be_bytes)
        };
        let first = first.map(|k| offset(k.as_ref()));
        let last = last.map(|k| offset(k.as_ref())).or(first);
        let head = last.map_or(record.head, |last| last.max(record.head));
        Head {
            head,
            generation: record.generation,
            oldest: first.unwrap_or(head.wrapping_add(1)),
        }
    }

    fn encode(self) -> [u8; 12] {
        let mut out = [0; 12];
        out[..4].copy_from_slice(&self.head.to_be_bytes());
        out[4..8].copy_from_slice(&self.generation.to_be_bytes());
        out[8..].copy_from_slice(&self.oldest.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Head {
        let word = |i: usize| {
            bytes
                .get(i..i + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_be_bytes)
        };
        Head {
            head: word(0),
            generation: word(4),
            oldest: word(8),
        }
    }
}

/// The one writer.
struct Committer {
    parts: Arc<Partitions>,
    retention: Retention,
    durable: Arc<AtomicU64>,
    /// Heads of the inboxes written since start, and whether the inbox has
    /// its record: the committer is their only writer, so this cache is
    /// the truth.
    heads: HashMap<Arc<str>, (Head, bool)>,
    /// Each sender's `client_msg_id`s recorded since start, oldest first,
    /// with when: at most `dedupe_per_user` are kept.
    recent_order: HashMap<Arc<str>, VecDeque<(Box<str>, u64)>>,
    forgotten: metrics::Counter,
}

/// What one batch will answer.
enum Answer {
    Append(oneshot::Sender<Result<Appended, InboxError>>, Appended),
    Group(oneshot::Sender<Result<(), InboxError>>),
}

impl Committer {
    fn run(mut self, receiver: &mpsc::Receiver<Request>) {
        let sweep_every = (self.retention.ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut next_sweep = std::time::Instant::now() + sweep_every;
        let mut waiting = Waiting::default();
        loop {
            if waiting.is_empty() {
                let wait = next_sweep.saturating_duration_since(std::time::Instant::now());
                match receiver.recv_timeout(wait) {
                    Ok(request) => waiting.add(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            // Bounded as the channel is: past it, senders are told the store
            // is full rather than queue without end.
            while waiting.len() < MAX_BATCH * 4
                && let Ok(request) = receiver.try_recv()
            {
                waiting.add(request);
            }
            let mut batch = self.parts.keyspace.batch();
            let mut answers = Vec::new();
            let mut recent: InBatch = HashMap::new();
            let mut failed = None;
            for request in waiting.next_batch() {
                if let Err(e) = self.take(request, &mut batch, &mut answers, &mut recent) {
                    failed = Some(e);
                }
            }
            if std::time::Instant::now() >= next_sweep {
                if let Err(e) = self.sweep(&mut batch) {
                    failed = Some(e);
                }
                next_sweep = std::time::Instant::now() + sweep_every;
            }
            let result = match failed {
                Some(e) => Err(e),
                None => self.commit(batch),
            };
            if result.is_err() {
                // The cache may be ahead of the disk: read it again.
                self.heads.clear();
            }
            for answer in answers {
                match answer {
                    Answer::Append(reply, appended) => {
                        let _ = reply.send(result.clone().map(|()| appended));
                    }
                    Answer::Group(reply) => {
                        let _ = reply.send(result.clone());
                    }
                }
            }
        }
    }

    fn commit(&self, batch: Batch) -> Result<(), InboxError> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.commit().map_err(InboxError::unavailable)?;
        let seen = self.parts.keyspace.instant();
        self.parts
            .keyspace
            .persist(PersistMode::SyncAll)
            .map_err(InboxError::unavailable)?;
        self.durable.store(seen, Ordering::Release);
        Ok(())
    }

    fn take(
        &mut self,
        request: Request,
        batch: &mut Batch,
        answers: &mut Vec<Answer>,
        recent: &mut InBatch,
    ) -> Result<(), InboxError> {
        match request {
            Request::SaveGroup {
                group,
                members,
                reply,
            } => {
                if members.is_empty() {
                    batch.remove(&self.parts.groups, group.as_bytes());
                } else {
                    batch.insert(&self.parts.groups, group.as_bytes(), encode_strings(&members));
                }
                answers.push(Answer::Group(reply));
                Ok(())
            }
            Request::Append { users, append, reply } => {
                let OwnedAppend {
                    cmd,
                    body,
                    except,
                    sender,
                    client_msg_id,
                    message_id,
                } = append;
                let at_ms = now_ms();
                let dedupe = sender.clone().zip(client_msg_id);
                if let Some(key) = &dedupe
                    && let Some(original) = self.recent(key, recent, at_ms)?
                {
                    let duplicate = Appended::Duplicate {
                        message_id: original.0,
                        sender_offset: original.1,
                    };
                    answers.push(Answer::Append(reply, duplicate));
                    return Ok(());
                }
                let mut sender_offset = None;
                let mut offsets = Vec::with_capacity(users.len());
                // Several inboxes: the body once, each entry referring to it.
                let shared = crate::entry::shares_body(users.len());
                let mut code = cmd.code();
                if shared {
                    code[0] |= SHARED_BODY;
                }
                let mut value = Vec::with_capacity(ENTRY_HEADER + body.len());
                value.extend_from_slice(&at_ms.to_be_bytes());
                value.extend_from_slice(&code);
                value.extend_from_slice(&except.unwrap_or(0).to_be_bytes());
                if shared {
                    let mut shared = Vec::with_capacity(8 + body.len());
                    shared.extend_from_slice(&at_ms.to_be_bytes());
                    shared.extend_from_slice(&body);
                    batch.insert(&self.parts.bodies, message_id.to_be_bytes(), shared);
                    value.extend_from_slice(&message_id.to_be_bytes());
                } else {
                    value.extend_from_slice(&body);
                }
                for user in &users {
                    let offset = self.push(user, &value, batch)?;
                    if sender.as_deref() == Some(&**user) {
                        sender_offset = Some(offset);
                    }
                    offsets.push(offset);
                }
                if let Some(key) = dedupe {
                    let mut value = Vec::with_capacity(20);
                    value.extend_from_slice(&message_id.to_be_bytes());
                    value.extend_from_slice(&sender_offset.unwrap_or(0).to_be_bytes());
                    value.extend_from_slice(&at_ms.to_be_bytes());
                    batch.insert(&self.parts.recent, recent_key(&key.0, &key.1), value);
                    self.remember(&key, at_ms, batch);
                    recent.insert(key, (message_id, sender_offset));
                }
                let stored = Appended::Stored {
                    offsets,
                    sender_offset,
                };
                answers.push(Answer::Append(reply, stored));
                Ok(())
            }
        }
    }

    /// Keeps a sender's `client_msg_id` among its recent ones, forgetting
    /// the oldest past `dedupe_per_user`.
    fn remember(&mut self, key: &RetryKey, at_ms: u64, batch: &mut Batch) {
        let most = self.retention.dedupe_per_user.max(1) as usize;
        let order = self.recent_order.entry(Arc::clone(&key.0)).or_default();
        order.push_back((key.1.clone(), at_ms));
        while order.len() > most {
            if let Some((oldest, _)) = order.pop_front() {
                batch.remove(&self.parts.recent, recent_key(&key.0, &oldest));
                self.forgotten.increment(1);
            }
        }
    }

    /// The original of a retry, if `key` was sent within the window.
    fn recent(
        &self,
        key: &RetryKey,
        in_batch: &InBatch,
        now: u64,
    ) -> Result<Option<(u64, Option<Offset>)>, InboxError> {
        if let Some(original) = in_batch.get(key) {
            return Ok(Some(*original));
        }
        let Some(value) = self
            .parts
            .recent
            .get(recent_key(&key.0, &key.1))
            .map_err(InboxError::unavailable)?
        else {
            return Ok(None);
        };
        let number = |i: usize, n: usize| {
            value
                .get(i..i + n)
                .map(|b| b.iter().fold(0u64, |a, &b| a << 8 | u64::from(b)))
        };
        let (Some(message_id), Some(offset), Some(at_ms)) = (number(0, 8), number(8, 4), number(12, 8))
        else {
            return Ok(None);
        };
        let window = self.retention.dedupe_window.as_millis() as u64;
        Ok((now.saturating_sub(at_ms) < window)
            .then(|| (message_id, (offset != 0).then_some(offset as Offset))))
    }

    fn head(&mut self, user: &Arc<str>) -> Result<&mut Head, InboxError> {
        Ok(&mut self.cached(user)?.0)
    }

    /// The cached head of `user`'s inbox (read once from the disk), and
    /// whether its record exists.
    fn cached(&mut self, user: &Arc<str>) -> Result<&mut (Head, bool), InboxError> {
        if !self.heads.contains_key(user) {
            let record = self
                .parts
                .heads
                .get(user.as_bytes())
                .map_err(InboxError::unavailable)?
                .map(|v| Head::decode(&v));
            let recorded = record.is_some();
            let mut range = self
                .parts
                .entries
                .range(entry_key(user, 0)..=entry_key(user, Offset::MAX));
            let first = range.next().transpose().map_err(InboxError::unavailable)?;
            let last = range.next_back().transpose().map_err(InboxError::unavailable)?;
            let head = Head::derive(record, first.map(|(k, _)| k), last.map(|(k, _)| k));
            self.heads.insert(Arc::clone(user), (head, recorded));
        }
        Ok(self.heads.get_mut(user).expect("just inserted"))
    }

    /// Appends `value` (an entry: its header, then its body or the id of
    /// its shared body) to `user`'s inbox.
    fn push(&mut self, user: &Arc<str>, value: &[u8], batch: &mut Batch) -> Result<Offset, InboxError> {
        let max_entries = self.retention.max_entries;
        let entries = self.parts.entries.clone();
        let heads = self.parts.heads.clone();
        let (head, recorded) = self.cached(user)?;
        if head.head == Offset::MAX {
            // Offsets are 32 bits: start again from 1 in a new epoch.
            for offset in head.oldest..=head.head {
                batch.remove(&entries, entry_key(user, offset));
            }
            *head = Head {
                head: 0,
                generation: head.generation + 1,
                oldest: 1,
            };
            *recorded = false;
        }
        head.head += 1;
        let offset = head.head;
        batch.insert(&entries, entry_key(user, offset), value);
        while head.head - head.oldest + 1 > max_entries {
            batch.remove(&entries, entry_key(user, head.oldest));
            head.oldest += 1;
        }
        // A new inbox (or a new epoch of one) is recorded once; later
        // appends are told by their entries.
        if !*recorded {
            batch.insert(&heads, user.as_bytes(), head.encode());
            *recorded = true;
        }
        Ok(offset)
    }

    /// Drops entries past their age and forgotten retries.
    fn sweep(&mut self, batch: &mut Batch) -> Result<(), InboxError> {
        let now = now_ms();
        let cutoff = now.saturating_sub(self.retention.ttl.as_millis() as u64);
        let users: Vec<Arc<str>> = self
            .parts
            .heads
            .iter()
            .filter_map(|item| item.ok().map(|(key, _)| String::from_utf8_lossy(&key).into()))
            .collect();
        for user in users {
            let entries = self.parts.entries.clone();
            let head = *self.head(&user)?;
            let mut oldest = head.oldest;
            for item in entries.range(entry_key(&user, head.oldest)..=entry_key(&user, head.head)) {
                let (key, value) = item.map_err(InboxError::unavailable)?;
                let (entry, _) = decode_entry(&key, value.into())?;
                if entry.at_ms >= cutoff {
                    break;
                }
                batch.remove(&entries, key);
                oldest = entry.offset + 1;
            }
            if oldest != head.oldest {
                let head = self.head(&user)?;
                head.oldest = oldest;
                // Emptied: the record keeps the head (offsets never repeat).
                if oldest > head.head {
                    let encoded = head.encode();
                    batch.insert(&self.parts.heads, user.as_bytes(), encoded);
                }
            }
        }
        // Shared bodies by age: their keys (message ids) rise with time.
        for item in self.parts.bodies.iter() {
            let (key, value) = item.map_err(InboxError::unavailable)?;
            let at_ms = value
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if at_ms >= cutoff {
                break;
            }
            batch.remove(&self.parts.bodies, key);
        }
        let window = self.retention.dedupe_window.as_millis() as u64;
        self.recent_order.retain(|_, order| {
            while order
                .front()
                .is_some_and(|(_, at)| now.saturating_sub(*at) >= window)
            {
                order.pop_front();
            }
            !order.is_empty()
        });
        for item in self.parts.recent.iter() {
            let (key, value) = item.map_err(InboxError::unavailable)?;
            let at_ms = value
                .get(12..20)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if now.saturating_sub(at_ms) >= window {
                batch.remove(&self.parts.recent, key);
            }
        }
        Ok(())
    }
}

/// An entry's key: the user (length first, so that no user's keys run
/// into another's) and the offset, big-endian so keys sort by offset.
fn entry_key(user: &str, offset: Offset) -> Vec<u8> {
    let mut key = Vec::with_capacity(6 + user.len());
    key.extend_from_slice(&(user.len() as u32).to_be_bytes());
    key.extend_from_slice(user.as_bytes());
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

fn recent_key(sender: &str, client_msg_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + sender.len() + client_msg_id.len());
    key.extend_from_slice(&(sender.len() as u32).to_be_bytes());
    key.extend_from_slice(sender.as_bytes());
    key.extend_from_slice(client_msg_id.as_bytes());
    key
}

/// An entry, and the id of the body stored once it refers to, if it does
/// (then its `body` is that id).
fn decode_entry(key: &[u8], value: Bytes) -> Result<(Entry, Option<u64>), InboxError> {
    let corrupt = || InboxError::unavailable("disk store: a corrupt entry");
    let offset = key
        .get(key.len().saturating_sub(4)..)
        .and_then(|b| b.try_into().ok())
        .map(Offset::from_be_bytes)
        .ok_or_else(corrupt)?;
    if value.len() < ENTRY_HEADER {
        return Err(corrupt());
    }
    let at_ms = u64::from_be_bytes(value[..8].try_into().map_err(|_| corrupt())?);
    let mut code: [u8; 4] = value[8..12].try_into().map_err(|_| corrupt())?;
    let shared = code[0] & SHARED_BODY != 0;
    code[0] &= !SHARED_BODY;
    let except = u64::from_be_bytes(value[12..20].try_into().map_err(|_| corrupt())?);
    let body = value.slice(ENTRY_HEADER..);
    let shared = if shared {
        Some(u64::from_be_bytes(
            body.as_ref().try_into().map_err(|_| corrupt())?,
        ))
    } else {
        None
    };
    let entry = Entry {
        offset,
        cmd: Command::from_code(code),
        except: (except != 0).then_some(except),
        at_ms,
        body,
    };
    Ok((entry, shared))
}

fn encode_strings(strings: &[Arc<str>]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in strings {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn decode_strings(mut bytes: &[u8]) -> Vec<Arc<str>> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let Some(s) = bytes.get(4..4 + len) else { break };
        out.push(String::from_utf8_lossy(s).into());
        bytes = &bytes[4 + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(sender: &str, users: usize, id: u64) -> Request {
        let (reply, _) = oneshot::channel();
        Request::Append {
            users: (0..users).map(|i| Arc::from(format!("u{i}"))).collect(),
            append: OwnedAppend {
                cmd: Command::C2C,
                body: Bytes::new(),
                except: None,
                sender: Some(sender.into()),
                client_msg_id: None,
                message_id: id,
            },
            reply,
        }
    }

    fn ids(batch: &[Request]) -> Vec<u64> {
        batch
            .iter()
            .map(|r| match r {
                Request::Append { append, .. } => append.message_id,
                Request::SaveGroup { .. } => 0,
            })
            .collect()
    }

    #[test]
    fn small_appends_pass_large_ones_in_turns_and_a_senders_own_keep_their_order() {
        let mut waiting = Waiting::default();
        waiting.add(append("flooder", 5_001, 1));
        waiting.add(append("flooder", 5_001, 2));
        waiting.add(append("alice", 1, 3));
        // The flooder's one-to-one message waits behind its group messages.
        waiting.add(append("flooder", 1, 4));
        waiting.add(append("bob", 1, 5));
        assert_eq!(ids(&waiting.next_batch()), [3, 5], "the small first");
        assert_eq!(
            ids(&waiting.next_batch()),
            [1],
            "then a large batch (one 5,001 fills it)"
        );
        waiting.add(append("carol", 1, 6));
        assert_eq!(ids(&waiting.next_batch()), [6], "turns: small again");
        assert_eq!(
            ids(&waiting.next_batch()),
            [2, 4],
            "then the flooder's, in its order"
        );
        assert!(waiting.is_empty() && waiting.behind.is_empty());
        waiting.add(append("flooder", 1, 7));
        assert_eq!(ids(&waiting.next_batch()), [7], "no longer behind anything");
    }
}
