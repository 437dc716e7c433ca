//! The sessions of this process, by user.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use jim_protocol::Command;

use crate::{Addressees, Close, Delivery, Outbox, SessionId, SessionInfo, UserId};

/// One attached session: what it is and where its frames go. Its user is
/// the map's key.
#[derive(Debug, Clone)]
struct Entry {
    id: SessionId,
    device: Option<Arc<str>>,
    transport: crate::Transport,
    node: u16,
    since_ms: u64,
    outbox: Arc<Outbox>,
}

impl Entry {
    fn new(info: SessionInfo, outbox: Arc<Outbox>) -> Entry {
        let SessionInfo {
            id,
            user: _,
            device,
            transport,
            node,
            since_ms,
        } = info;
        Entry {
            id,
            device,
            transport,
            node,
            since_ms,
            outbox,
        }
    }

    /// What is known of it, as a session of `user`.
    fn info(&self, user: &UserId) -> SessionInfo {
        SessionInfo {
            id: self.id,
            user: Arc::clone(user),
            device: self.device.clone(),
            transport: self.transport,
            node: self.node,
            since_ms: self.since_ms,
        }
    }
}

/// A user's sessions here. Most users have one: it is kept in the map's
/// slot itself, where a vector would take an allocation of its own in
/// every idle connection.
#[derive(Debug)]
enum Sessions {
    One(Entry),
    Many(Vec<Entry>),
}

impl Sessions {
    fn iter(&self) -> std::slice::Iter<'_, Entry> {
        match self {
            Sessions::One(entry) => std::slice::from_ref(entry).iter(),
            Sessions::Many(entries) => entries.iter(),
        }
    }

    fn push(&mut self, entry: Entry) {
        match self {
            Sessions::One(first) => *self = Sessions::Many(vec![first.clone(), entry]),
            Sessions::Many(entries) => entries.push(entry),
        }
    }

    /// Removes `session`; whether it was there, and whether none is left.
    fn remove(&mut self, session: SessionId) -> (bool, bool) {
        match self {
            Sessions::One(entry) => {
                let removed = entry.id == session;
                (removed, removed)
            }
            Sessions::Many(entries) => {
                let before = entries.len();
                entries.retain(|e| e.id != session);
                let (removed, none_left) = (entries.len() != before, entries.is_empty());
                if let [last] = entries.as_slice() {
                    *self = Sessions::One(last.clone());
                }
                (removed, none_left)
            }
        }
    }
}

/// The sessions held by this gateway process, by user.
///
/// A gateway owns one, and gives it to its routing backend: it is where
/// every message for this process's sessions ends up, whatever the mode. The map is sharded, so no lock covers more than a slice of the users,
/// and delivering only pushes into each session's [`Outbox`], which never
/// waits.
#[derive(Debug, Default)]
pub struct Hub {
    /// Hashed with foldhash: every delivery looks its user up.
    users: dashmap::DashMap<UserId, Sessions, foldhash::fast::RandomState>,
    sessions: AtomicUsize,
}

/// Counts of what a delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Sessions the frame was queued to.
    pub sessions: usize,
    /// Sessions that overflowed and are now closing as slow consumers.
    pub overflowed: usize,
}

impl std::ops::AddAssign for Delivered {
    fn add_assign(&mut self, other: Delivered) {
        self.sessions += other.sessions;
        self.overflowed += other.overflowed;
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Adds a session.
    pub fn attach(&self, info: SessionInfo, outbox: Arc<Outbox>) {
        let user = Arc::clone(&info.user);
        let entry = Entry::new(info, outbox);
        match self.users.entry(user) {
            dashmap::Entry::Occupied(mut sessions) => sessions.get_mut().push(entry),
            dashmap::Entry::Vacant(slot) => {
                slot.insert(Sessions::One(entry));
            }
        }
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes a session; returns whether it was there.
    pub fn detach(&self, user: &str, session: SessionId) -> bool {
        let mut removed = false;
        self.users.remove_if_mut(user, |_, sessions| {
            let (was_there, none_left) = sessions.remove(session);
            removed = was_there;
            none_left
        });
        if removed {
            self.sessions.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Queues a frame to every session of `user`, except `except`, as the
    /// inbox entry at `offset` (0: not an inbox entry). `except` is told to
    /// skip that offset, so that its position stays gapless.
    pub fn deliver_to_user(
        &self,
        user: &str,
        cmd: Command,
        body: &Bytes,
        except: Option<SessionId>,
        offset: u32,
    ) -> Delivered {
        let mut delivered = Delivered::default();
        if let Some(entries) = self.users.get(user) {
            for entry in entries.iter() {
                if Some(entry.id) != except {
                    deliver(entry, cmd, body, offset, &mut delivered);
                } else if offset != 0 {
                    let _ = entry.outbox.skip(offset);
                }
            }
        }
        delivered
    }

    /// Applies a planned delivery to this process's sessions: the one way
    /// a message reaches them, in every mode (planned here, or carried
    /// here from a router or through Kafka).
    pub fn apply(&self, delivery: &Delivery<'_>) -> Delivered {
        match &delivery.to {
            Addressees::Everyone => self.deliver_to_all(delivery.cmd, &delivery.body),
            Addressees::Users {
                users,
                offsets,
                except,
            } => {
                let mut delivered = Delivered::default();
                for (i, user) in users.iter().enumerate() {
                    let offset = offsets.get(i).copied().unwrap_or(0);
                    delivered += self.deliver_to_user(user, delivery.cmd, &delivery.body, *except, offset);
                }
                delivered
            }
        }
    }

    /// Queues a frame to every session in this process.
    pub fn deliver_to_all(&self, cmd: Command, body: &Bytes) -> Delivered {
        let mut delivered = Delivered::default();
        for entries in self.users.iter() {
            for entry in entries.iter() {
                deliver(entry, cmd, body, 0, &mut delivered);
            }
        }
        delivered
    }

    /// Whether `user` has a session here.
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The sessions of `user` here.
    pub fn sessions_of(&self, user: &str) -> Vec<SessionInfo> {
        self.users
            .get(user)
            .map(|sessions| sessions.iter().map(|e| e.info(sessions.key())).collect())
            .unwrap_or_default()
    }

    /// Every session here (for re-announcing them to a restarted router).
    pub fn all_sessions(&self) -> Vec<SessionInfo> {
        self.users
            .iter()
            .flat_map(|sessions| {
                sessions
                    .iter()
                    .map(|e| e.info(sessions.key()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Users with a session here.
    pub fn users(&self) -> Vec<UserId> {
        self.users.iter().map(|e| Arc::clone(e.key())).collect()
    }

    /// Closes every session of `user` with `A999` 1008 "kicked" (or
    /// "kicked: `reason`" when a reason is given: [`Close::kicked`]);
    /// returns how many were told.
    pub fn kick(&self, user: &str, reason: &str) -> usize {
        let close = Close::kicked(reason);
        self.users
            .get(user)
            .map(|entries| entries.iter().filter(|e| e.outbox.close(close.clone())).count())
            .unwrap_or(0)
    }

    /// Closes one session of `user` with `A999` 1008 "kicked: `reason`";
    /// whether it was there to be told.
    pub fn kick_session(&self, user: &str, session: SessionId, reason: &str) -> bool {
        let close = Close::kicked(reason);
        self.users.get(user).is_some_and(|entries| {
            entries
                .iter()
                .filter(|e| e.id == session)
                .any(|e| e.outbox.close(close.clone()))
        })
    }

    /// Tells one session to catch up with its inbox (see
    /// [`resync_all`](Self::resync_all)); whether it is still here.
    pub fn resync_session(&self, user: &str, session: SessionId) -> bool {
        self.users.get(user).is_some_and(|entries| {
            entries
                .iter()
                .filter(|e| e.id == session)
                .any(|e| e.outbox.resync().is_ok())
        })
    }

    /// Tells every session to catch up with its inbox: routing may have
    /// gone on without this process knowing (a re-linked gateway).
    pub fn resync_all(&self) {
        for entries in self.users.iter() {
            for entry in entries.iter() {
                let _ = entry.outbox.resync();
            }
        }
    }

    /// Calls `f` with every attached session's outbox (holding a slice of
    /// the users' map at a time).
    pub fn for_each_outbox(&self, mut f: impl FnMut(&Outbox)) {
        for entries in self.users.iter() {
            for entry in entries.iter() {
                f(&entry.outbox);
            }
        }
    }

    /// Closes every session with `close` (shutdown); returns how many.
    pub fn close_all(&self, close: &Close) -> usize {
        self.users
            .iter()
            .map(|entries| entries.iter().filter(|e| e.outbox.close(close.clone())).count())
            .sum()
    }

    /// Sessions attached now.
    pub fn session_count(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Users with at least one session now.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }
}

fn deliver(entry: &Entry, cmd: Command, body: &Bytes, offset: u32, delivered: &mut Delivered) {
    match entry.outbox.deliver(cmd, body.clone(), offset) {
        Ok(()) => delivered.sessions += 1,
        Err(crate::Refused::Overflow) => delivered.overflowed += 1,
        Err(crate::Refused::Closed) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;

    fn info(id: u64, user: &str) -> SessionInfo {
        SessionInfo {
            id: SessionId(id),
            user: user.into(),
            device: None,
            transport: Transport::Tcp,
            node: 0,
            since_ms: 0,
        }
    }

    #[test]
    fn attach_deliver_detach() {
        let hub = Hub::new();
        let (a1, a2, b) = (
            Arc::new(Outbox::new(8)),
            Arc::new(Outbox::new(8)),
            Arc::new(Outbox::new(8)),
        );
        hub.attach(info(1, "a"), Arc::clone(&a1));
        hub.attach(info(2, "a"), Arc::clone(&a2));
        hub.attach(info(3, "b"), Arc::clone(&b));
        assert_eq!((hub.session_count(), hub.user_count()), (3, 2));

        let body = Bytes::from_static(b"{}");
        assert_eq!(hub.deliver_to_user("a", Command::C2C, &body, None, 0).sessions, 2);
        assert_eq!(
            hub.deliver_to_user("a", Command::C2G, &body, Some(SessionId(1)), 0)
                .sessions,
            1
        );
        assert_eq!((a1.len(), a2.len(), b.len()), (1, 2, 0));
        assert_eq!(hub.deliver_to_all(Command::S2C, &body).sessions, 3);
        assert_eq!(
            hub.deliver_to_user("nobody", Command::C2C, &body, None, 0)
                .sessions,
            0
        );

        assert!(hub.detach("a", SessionId(1)));
        assert!(!hub.detach("a", SessionId(1)));
        assert_eq!(hub.sessions_of("a").len(), 1);
        assert!(hub.detach("a", SessionId(2)));
        assert!(!hub.has_user("a"));
        assert_eq!((hub.session_count(), hub.user_count()), (1, 1));
    }

    /// One session in the map's slot, more in a vector, and back: what is
    /// known of each stays as attached, and deliveries reach the ones left.
    #[test]
    fn a_users_sessions_are_kept_however_many_come_and_go() {
        let hub = Hub::new();
        let outboxes: Vec<_> = (0..3).map(|_| Arc::new(Outbox::new(8))).collect();
        let infos: Vec<_> = (1..=3)
            .map(|id| SessionInfo {
                device: Some(format!("phone-{id}").into()),
                since_ms: id * 1_000,
                transport: Transport::WebSocket,
                node: 7,
                ..info(id, "a")
            })
            .collect();
        for (info, outbox) in infos.iter().zip(&outboxes) {
            hub.attach(info.clone(), Arc::clone(outbox));
        }
        assert_eq!(hub.sessions_of("a"), infos);
        assert!(hub.detach("a", SessionId(2)));
        assert_eq!(hub.sessions_of("a"), [infos[0].clone(), infos[2].clone()]);
        assert!(hub.detach("a", SessionId(1)));
        assert_eq!(hub.sessions_of("a"), [infos[2].clone()]);
        assert!(!hub.detach("a", SessionId(1)), "already gone");
        let body = Bytes::from_static(b"{}");
        assert_eq!(hub.deliver_to_user("a", Command::C2C, &body, None, 0).sessions, 1);
        assert_eq!(outboxes.iter().map(|o| o.len()).collect::<Vec<_>>(), [0, 0, 1]);
        assert!(hub.detach("a", SessionId(3)));
        assert_eq!((hub.session_count(), hub.user_count()), (0, 0));
        // A user's one session is in the slot: no allocation of its own.
        assert!(std::mem::size_of::<Sessions>() <= 48);
    }

    #[test]
    fn kick_closes_every_session_of_the_user() {
        let hub = Hub::new();
        let (a1, a2) = (Arc::new(Outbox::new(8)), Arc::new(Outbox::new(8)));
        hub.attach(info(1, "a"), Arc::clone(&a1));
        hub.attach(info(2, "a"), Arc::clone(&a2));
        assert_eq!(hub.kick("a", "spam"), 2);
        assert_eq!(a1.close_reason().unwrap().reason, "kicked: spam");
        assert_eq!(hub.kick("a", "again"), 0, "already closing");
    }

    #[test]
    fn overflow_is_counted() {
        let hub = Hub::new();
        hub.attach(info(1, "a"), Arc::new(Outbox::new(1)));
        let body = Bytes::from_static(b"{}");
        assert_eq!(hub.deliver_to_user("a", Command::C2C, &body, None, 0).sessions, 1);
        assert_eq!(
            hub.deliver_to_user("a", Command::C2C, &body, None, 0).overflowed,
            1
        );
    }
}
