//! One sender's appends, stored in the order they were submitted.
//!
//! A store whose append is a round trip or more (Redis: a retry's claim,
//! then the script that numbers the entry) cannot rely on appends started
//! one after the other reaching it in that order: a task may be polled
//! late, a claim may take longer than the next append. So each append of a
//! sender waits for the sender's previous one to finish. Appends of
//! different senders still go in parallel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::oneshot;

/// The last append of each sender with one in progress.
#[derive(Debug, Default)]
pub(crate) struct SenderOrder {
    /// Per sender: the number of its last turn, and what says it is over.
    last: DashMap<Arc<str>, (u64, oneshot::Receiver<()>)>,
    turns: AtomicU64,
}

/// One append's place in its sender's order. Dropping it (the append done,
/// failed or abandoned) lets the next one go.
#[derive(Debug)]
pub(crate) struct Turn {
    order: Arc<SenderOrder>,
    sender: Arc<str>,
    number: u64,
    previous: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl SenderOrder {
    /// Takes the next place in `sender`'s order, now.
    pub(crate) fn enter(self: &Arc<Self>, sender: &str) -> Turn {
        let (done, over) = oneshot::channel();
        let number = self.turns.fetch_add(1, Ordering::Relaxed);
        let sender: Arc<str> = sender.into();
        let previous = match self.last.entry(Arc::clone(&sender)) {
            dashmap::Entry::Occupied(mut last) => Some(std::mem::replace(last.get_mut(), (number, over)).1),
            dashmap::Entry::Vacant(none) => {
                none.insert((number, over));
                None
            }
        };
        Turn {
            order: Arc::clone(self),
            sender,
            number,
            previous,
            _done: done,
        }
    }

    /// Senders with an append in progress.
    #[cfg(test)]
    fn senders(&self) -> usize {
        self.last.len()
    }
}

impl Turn {
    /// Waits until the sender's previous append is over.
    pub(crate) async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            // Over, either way: done, or dropped.
            let _ = previous.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // The last of its sender: forget the sender.
        self.order
            .last
            .remove_if(&self.sender, |_, (number, _)| *number == self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_senders_turns_go_one_after_the_other_and_others_do_not_wait() {
        let order = Arc::new(SenderOrder::default());
        let mut first = order.enter("alice");
        let mut second = order.enter("alice");
        let mut other = order.enter("bob");
        first.wait().await;
        other.wait().await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), second.wait()).await;
        assert!(waiting.is_err(), "the second waits for the first");
        drop(first);
        second.wait().await;
        drop((second, other));
        assert_eq!(order.senders(), 0, "nothing kept once every turn is over");
    }

    #[tokio::test]
    async fn an_abandoned_turn_lets_the_next_one_go() {
        let order = Arc::new(SenderOrder::default());
        let first = order.enter("alice");
        let second = order.enter("alice");
        let mut third = order.enter("alice");
        drop(second);
        drop(first);
        third.wait().await;
    }
}
