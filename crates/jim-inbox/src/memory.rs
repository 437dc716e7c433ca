//! The `memory` store: inboxes in the process, lost with it (a restart
//! changes the epoch, so clients know).

use std::collections::VecDeque;
use std::sync::Arc;

use metrics::Counter;

use crate::clock::{epoch_of, new_epoch, now_ms};
use crate::{Append, Appended, Entry, InboxState, Offset, Read, Retention};

/// A sharded map hashed with foldhash: every message looks users up in
/// it, and SipHash (the default) cost more than the lookups themselves.
type DashMap<K, V> = dashmap::DashMap<K, V, foldhash::fast::RandomState>;

/// Inboxes in memory: one sharded map of users, each inbox behind its
/// shard's lock for the moment of an append or a read.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    epoch: Arc<str>,
    retention: Retention,
    inboxes: DashMap<Arc<str>, UserInbox>,
    /// (sender, client_msg_id) of recent sends.
    recent: DashMap<(Arc<str>, Box<str>), Original>,
    /// Each sender's recent `client_msg_id`s, oldest first: at most
    /// `dedupe_per_user` of them are kept.
    recent_order: DashMap<Arc<str>, VecDeque<Box<str>>>,
    /// Each user's marks (receipts): key → message id.
    marks: DashMap<Arc<str>, std::collections::HashMap<Box<str>, u64>>,
    forgotten: Counter,
}

/// A recent send, for recognising its retries.
#[derive(Debug, Clone, Copy)]
struct Original {
    message_id: u64,
    sender_offset: Option<Offset>,
    at_ms: u64,
}

#[derive(Debug, Default)]
struct UserInbox {
    /// Times the offset wrapped past `u32::MAX` (each is a new epoch).
    generation: u32,
    head: Offset,
    entries: VecDeque<Entry>,
}

impl UserInbox {
    fn push(&mut self, append: &Append<'_>, at_ms: u64, retention: &Retention) -> Offset {
        if self.head == Offset::MAX {
            self.generation += 1;
            self.head = 0;
            self.entries.clear();
        }
        self.head += 1;
        self.entries.push_back(Entry {
            offset: self.head,
            cmd: append.cmd,
            except: append.except,
            at_ms,
            body: append.body.clone(),
        });
        while self.entries.len() > retention.max_entries as usize {
            self.entries.pop_front();
        }
        self.trim_older_than(at_ms.saturating_sub(retention.ttl.as_millis() as u64));
        self.head
    }

    fn trim_older_than(&mut self, cutoff_ms: u64) {
        while self.entries.front().is_some_and(|e| e.at_ms < cutoff_ms) {
            self.entries.pop_front();
        }
        if self.entries.is_empty() && self.entries.capacity() > 0 {
            self.entries = VecDeque::new();
        }
    }

    fn oldest(&self) -> Offset {
        self.entries
            .front()
            .map_or(self.head.wrapping_add(1), |e| e.offset)
    }
}

impl MemoryStore {
    pub(crate) fn new(retention: Retention, forgotten: Counter) -> MemoryStore {
        MemoryStore {
            epoch: new_epoch(),
            retention,
            inboxes: DashMap::default(),
            recent: DashMap::default(),
            recent_order: DashMap::default(),
            marks: DashMap::default(),
            forgotten,
        }
    }

    pub(crate) fn set_mark(&self, user: &str, key: &str, id: u64) -> bool {
        let mut marks = self.marks.entry(user.into()).or_default();
        match marks.get_mut(key) {
            Some(mark) if *mark >= id => false,
            Some(mark) => {
                *mark = id;
                true
            }
            None => {
                marks.insert(key.into(), id);
                true
            }
        }
    }

    pub(crate) fn marks(&self, user: &str) -> Vec<(String, u64)> {
        self.marks
            .get(user)
            .map(|marks| marks.iter().map(|(k, v)| (k.to_string(), *v)).collect())
            .unwrap_or_default()
    }

    pub(crate) fn append<'u>(
        &self,
        users: impl Iterator<Item = &'u Arc<str>>,
        append: &Append<'_>,
    ) -> Appended {
        let at_ms = now_ms();
        let window = self.retention.dedupe_window.as_millis() as u64;
        let (Some(sender), Some(id)) = (append.sender, append.client_msg_id) else {
            return self.store(users, append, at_ms);
        };
        // The key's shard stays locked while the message is stored: a retry
        // racing its original waits for it, then sees it.
        let sender: Arc<str> = Arc::from(sender);
        let key = (Arc::clone(&sender), Box::<str>::from(id));
        let stored = match self.recent.entry(key) {
            dashmap::Entry::Occupied(seen) if at_ms.saturating_sub(seen.get().at_ms) < window => {
                let original = *seen.get();
                return Appended::Duplicate {
                    message_id: original.message_id,
                    sender_offset: original.sender_offset,
                };
            }
            entry => {
                let stored = self.store(users, append, at_ms);
                if let Appended::Stored { sender_offset, .. } = &stored {
                    entry.insert(Original {
                        message_id: append.message_id,
                        sender_offset: *sender_offset,
                        at_ms,
                    });
                }
                stored
            }
        };
        self.remember(sender, id);
        stored
    }

    /// Keeps `id` among the sender's recent ones, forgetting the oldest
    /// past `dedupe_per_user` (the recent map's lock is not held here).
    fn remember(&self, sender: Arc<str>, id: &str) {
        let most = self.retention.dedupe_per_user.max(1) as usize;
        let mut order = self.recent_order.entry(Arc::clone(&sender)).or_default();
        order.push_back(id.into());
        while order.len() > most {
            if let Some(oldest) = order.pop_front() {
                self.recent.remove(&(Arc::clone(&sender), oldest));
                self.forgotten.increment(1);
            }
        }
    }

    fn store<'u>(
        &self,
        users: impl Iterator<Item = &'u Arc<str>>,
        append: &Append<'_>,
        at_ms: u64,
    ) -> Appended {
        let mut sender_offset = None;
        let offsets = users
            .map(|user| {
                // Looked up first: inserting needs a key of its own (an
                // `Arc` clone, contended between cores), and the inbox is
                // nearly always there.
                let offset = match self.inboxes.get_mut(&**user) {
                    Some(mut inbox) => inbox.push(append, at_ms, &self.retention),
                    None => {
                        self.inboxes
                            .entry(Arc::clone(user))
                            .or_default()
                            .push(append, at_ms, &self.retention)
                    }
                };
                if append.sender == Some(&**user) {
                    sender_offset = Some(offset);
                }
                offset
            })
            .collect();
        Appended::Stored {
            offsets,
            sender_offset,
        }
    }

    pub(crate) fn read(&self, user: &str, after: Offset, max: usize) -> Read {
        let Some(mut inbox) = self.inboxes.get_mut(user) else {
            return Read {
                epoch: Arc::clone(&self.epoch),
                entries: Vec::new(),
            };
        };
        inbox.trim_older_than(now_ms().saturating_sub(self.retention.ttl.as_millis() as u64));
        let first = inbox.oldest();
        let skip = after.saturating_add(1).saturating_sub(first) as usize;
        Read {
            epoch: epoch_of(&self.epoch, inbox.generation),
            entries: inbox.entries.iter().skip(skip).take(max).cloned().collect(),
        }
    }

    pub(crate) fn state(&self, user: &str) -> InboxState {
        match self.inboxes.get(user) {
            Some(inbox) => InboxState {
                epoch: epoch_of(&self.epoch, inbox.generation),
                oldest: inbox.oldest(),
                head: inbox.head,
                held: inbox.entries.len() as u32,
            },
            None => InboxState {
                epoch: Arc::clone(&self.epoch),
                oldest: 1,
                head: 0,
                held: 0,
            },
        }
    }

    /// Drops entries past their age and forgotten retries.
    pub(crate) fn sweep(&self) {
        let now = now_ms();
        let cutoff = now.saturating_sub(self.retention.ttl.as_millis() as u64);
        // An emptied inbox keeps its head: its offsets must never repeat.
        self.inboxes
            .iter_mut()
            .for_each(|mut inbox| inbox.trim_older_than(cutoff));
        let window = self.retention.dedupe_window.as_millis() as u64;
        self.recent
            .retain(|_, seen| now.saturating_sub(seen.at_ms) < window);
        // What the window forgot leaves the senders' lists too.
        self.recent_order.retain(|sender, order| {
            order.retain(|id| self.recent.contains_key(&(Arc::clone(sender), id.clone())));
            !order.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use jim_protocol::Command;

    use super::*;

    fn append(body: &Bytes) -> Append<'_> {
        Append {
            cmd: Command::C2C,
            body,
            except: None,
            sender: None,
            client_msg_id: None,
            message_id: 1,
        }
    }

    #[test]
    fn bodies_read_back_whole_while_the_oldest_are_evicted() {
        let retention = Retention {
            max_entries: 7,
            ttl: Duration::from_secs(3600),
            ..Retention::default()
        };
        let store = MemoryStore::new(retention, Counter::noop());
        let alice: Arc<str> = Arc::from("alice");
        // Bodies of every length from 0 to 99, the oldest dropped past 7.
        let bodies: Vec<Bytes> = (0..100u8).map(|n| Bytes::from(vec![n; n as usize])).collect();
        for (n, body) in bodies.iter().enumerate() {
            store.append(std::iter::once(&alice), &append(body));
            let read = store.read("alice", 0, 100);
            let first = n.saturating_sub(6);
            assert_eq!(read.entries.len(), n + 1 - first);
            for (entry, expected) in read.entries.iter().zip(&bodies[first..=n]) {
                assert_eq!(&entry.body, expected, "after {} appends", n + 1);
                assert_eq!(entry.offset as usize, expected.len() + 1);
            }
        }
        assert_eq!(store.state("alice").held, 7);
    }
}
