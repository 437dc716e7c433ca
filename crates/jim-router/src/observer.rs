//! Watching (and vetoing) what the router accepts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::{Addressees, ClientAck, Delivery, Outgoing, RouterError, Target};

/// Sees every message a router accepts, before it is delivered, and every
/// client ack. For history, moderation, notifications, analytics.
///
/// Observers run on the routing path: keep them quick and non-blocking
/// (hand work to a task, as [`ChannelObserver`] does).
///
/// ```
/// use jim_router::{Observer, Outgoing};
///
/// /// Refuses messages that mention a forbidden word.
/// struct Moderator;
///
/// impl Observer for Moderator {
///     fn on_message(&self, message: &Outgoing) -> Result<(), String> {
///         let text = String::from_utf8_lossy(&message.body);
///         if text.contains("forbidden") { Err("message refused by moderation".into()) } else { Ok(()) }
///     }
/// }
/// ```
pub trait Observer: Send + Sync + 'static {
    /// Called for every accepted message. An `Err` vetoes it: nobody gets
    /// it and the sender gets error 4003 with the reason.
    fn on_message(&self, message: &Outgoing) -> Result<(), String> {
        let _ = message;
        Ok(())
    }

    /// Called for every client ack.
    fn on_ack(&self, ack: &ClientAck) {
        let _ = ack;
    }

    /// Whether this observer wants [`on_stored`](Self::on_stored) (telling
    /// it costs a presence look-up per recipient).
    fn wants_stored(&self) -> bool {
        false
    }

    /// Called after a chat message (not a receipt, typing or a push to
    /// everyone) was stored in its recipients' inboxes, with its delivery
    /// (the recipients and their offsets, the sender's copy included) and
    /// the recipients other than the sender who had no session anywhere
    /// the backend knows at that moment.
    fn on_stored(&self, message: &Outgoing, delivery: &Delivery<'_>, offline: &[&str]) {
        let _ = (message, delivery, offline);
    }

    /// Called when a session of `user` opened or closed anywhere the
    /// backend oversees (this process; every gateway of a central
    /// router), or, [`SessionChange::Now`], with how many the user has.
    fn on_session(&self, user: &str, change: SessionChange) {
        let _ = (user, change);
    }
}

/// A change in a user's sessions: see [`Observer::on_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    /// One more session.
    Opened,
    /// One fewer.
    Closed,
    /// This many, in all (a backend that learns totals, not changes).
    Now(usize),
}

/// A routing backend's observers, called in order: what every backend
/// does with them, in one place.
///
/// ```
/// use std::sync::Arc;
/// use jim_router::{Observer, Observers};
///
/// struct Quiet;
/// impl Observer for Quiet {}
///
/// let observers = Observers::from(vec![Arc::new(Quiet) as Arc<dyn Observer>]);
/// assert_eq!(observers.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    /// Shows `message` to every observer, in order. The first veto stops
    /// it: [`RouterError::Rejected`] with the observer's reason.
    ///
    /// # Errors
    /// [`RouterError::Rejected`] when an observer refuses the message.
    pub fn accept(&self, message: &Outgoing) -> Result<(), RouterError> {
        for observer in &self.0 {
            observer
                .on_message(message)
                .map_err(|reason| RouterError::Rejected { reason })?;
        }
        Ok(())
    }

    /// Shows a client ack to every observer.
    pub fn ack(&self, ack: &ClientAck) {
        for observer in &self.0 {
            observer.on_ack(ack);
        }
    }

    /// Tells the observers that want it that `message` was stored, as
    /// `delivery` plans it; `online` says whether a user has a session
    /// anywhere the backend knows.
    pub fn stored(&self, message: &Outgoing, delivery: &Delivery<'_>, online: impl Fn(&str) -> bool) {
        if !self.0.iter().any(|o| o.wants_stored())
            || !message.kind.is_chat()
            || matches!(message.target, Target::Everyone)
        {
            return;
        }
        let Addressees::Users { users, .. } = &delivery.to else {
            return;
        };
        let sender = message.sender.as_ref().map(|s| &*s.user);
        let offline: Vec<&str> = users
            .iter()
            .map(|user| &**user)
            .filter(|user| Some(*user) != sender && !online(user))
            .collect();
        for observer in self.0.iter().filter(|o| o.wants_stored()) {
            observer.on_stored(message, delivery, &offline);
        }
    }

    /// Tells every observer of a change in `user`'s sessions.
    pub fn session(&self, user: &str, change: SessionChange) {
        for observer in &self.0 {
            observer.on_session(user, change);
        }
    }

    /// How many observers there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Arc<dyn Observer>>> for Observers {
    fn from(observers: Vec<Arc<dyn Observer>>) -> Observers {
        Observers(observers)
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observers").field("len", &self.0.len()).finish()
    }
}

/// An observed event, as [`ChannelObserver`] passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// An accepted message.
    Message(Outgoing),
    /// A client ack.
    Ack(ClientAck),
}

/// An [`Observer`] that forwards every event to a bounded channel.
///
/// It never slows routing down: when the receiver falls behind, events are
/// dropped and counted ([`ChannelObserver::dropped`]). Use your own
/// [`Observer`] when every event must be handled before delivery.
#[derive(Debug)]
pub struct ChannelObserver {
    tx: mpsc::Sender<Observed>,
    dropped: AtomicU64,
}

impl ChannelObserver {
    /// An observer and the receiving end of its channel.
    pub fn new(capacity: usize) -> (ChannelObserver, mpsc::Receiver<Observed>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let observer = ChannelObserver {
            tx,
            dropped: AtomicU64::new(0),
        };
        (observer, rx)
    }

    /// Events dropped because the receiver was full or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, event: Observed) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Observer for ChannelObserver {
    fn on_message(&self, message: &Outgoing) -> Result<(), String> {
        self.send(Observed::Message(message.clone()));
        Ok(())
    }

    fn on_ack(&self, ack: &ClientAck) {
        self.send(Observed::Ack(ack.clone()));
    }
}
