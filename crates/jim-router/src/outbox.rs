//! A session's bounded outbound queue: where routers deliver, and what the
//! session's writer drains.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use jim_model::CloseCode;
use jim_protocol::{Command, Frame};

/// The default number of frames a session may have queued before it is
/// closed as a slow consumer.
pub const DEFAULT_OUTBOX_FRAMES: usize = 1024;

/// One frame queued in a session's [`Outbox`], waiting to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// A reply to one of the client's requests; carries the request's `seq`.
    Reply(Frame),
    /// A frame the server starts (a delivery or a push).
    Push {
        /// `B101`, `B102` or `B103`.
        cmd: Command,
        /// The body, shared with every other recipient.
        body: Bytes,
        /// Its offset in the user's inbox, written as the frame's `seq`; 0
        /// for a frame that is not an inbox entry.
        offset: u32,
    },
    /// The session may have missed inbox entries (its gateway re-linked to
    /// a router that routed meanwhile): it catches up to the head.
    Resync,
    /// The inbox entry at this offset is not for this session (it is the
    /// session's own group message): the session's position moves past it.
    Skip {
        /// The offset.
        offset: u32,
    },
}

/// Why a session is being closed: the body of the `A999` it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The close code.
    pub code: CloseCode,
    /// The reason, for the client and the logs.
    pub reason: Cow<'static, str>,
}

impl Close {
    /// A close with the given code and reason.
    pub fn new(code: CloseCode, reason: impl Into<Cow<'static, str>>) -> Close {
        Close {
            code,
            reason: reason.into(),
        }
    }

    /// The reason given to a session closed because its queue overflowed.
    pub const SLOW_CONSUMER: &'static str = "slow consumer";

    /// The close of a kicked session: 1008 "kicked", or "kicked: `reason`"
    /// when a reason is given. The one rule, whichever way the kick came
    /// (admin API, router RPC, an embedding service).
    ///
    /// ```
    /// use jim_router::Close;
    ///
    /// assert_eq!(Close::kicked("").reason, "kicked");
    /// assert_eq!(Close::kicked("spam").reason, "kicked: spam");
    /// ```
    pub fn kicked(reason: &str) -> Close {
        let reason = reason.trim();
        Close::new(
            CloseCode::Policy,
            if reason.is_empty() {
                Cow::Borrowed("kicked")
            } else {
                Cow::Owned(format!("kicked: {reason}"))
            },
        )
    }

    /// Whether this is the slow-consumer close.
    pub fn is_slow_consumer(&self) -> bool {
        self.code == CloseCode::Policy && self.reason == Close::SLOW_CONSUMER
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The session is closing or closed.
    Closed,
    /// The queue was full: the session is now closing as a slow consumer.
    Overflow,
}

/// A bounded queue of frames for one session.
///
/// Any number of producers (routers, the session's own replies) push
/// without waiting; one writer drains it in batches. A producer never
/// blocks: when the queue is full the session is closed as a slow consumer
/// (its queued frames are dropped) instead of slowing anyone else down.
/// The queue allocates nothing until a frame arrives.
///
/// ```
/// use bytes::Bytes;
/// use jim_protocol::Command;
/// use jim_router::{Outbox, Queued, Refused};
///
/// let outbox = Outbox::new(2);
/// outbox.push(Command::C2C, Bytes::from_static(b"{}")).unwrap();
/// outbox.push(Command::C2C, Bytes::from_static(b"{}")).unwrap();
/// assert_eq!(outbox.push(Command::C2C, Bytes::from_static(b"{}")), Err(Refused::Overflow));
/// assert!(outbox.close_reason().unwrap().is_slow_consumer());
/// ```
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the session's one task: frames or a close arrived. An atomic
    /// slot, not a `Notify`: waiting and waking take no lock, the task
    /// waits anew on every turn of its loop, and every idle session holds
    /// one (a `Notify` is 32 B more).
    writer: AtomicWaker,
    is_closing: AtomicBool,
    /// Set by [`Outbox::nudge`]: the next [`Outbox::ready`] returns at once.
    nudged: AtomicBool,
    /// As configured (u32): every session holds one.
    capacity: u32,
    /// When the session wants to be nudged, in its owner's clock (0: never).
    alarm: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Boxed: set once, at the end, and every idle session holds the slot.
    close: Option<Box<Close>>,
}

impl Outbox {
    /// A queue that holds at most `capacity` frames.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            writer: AtomicWaker::new(),
            is_closing: AtomicBool::new(false),
            nudged: AtomicBool::new(false),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX).max(1),
            alarm: AtomicU64::new(0),
        }
    }

    /// Queues a frame the server starts: a delivery or a push.
    ///
    /// # Errors
    /// [`Refused::Closed`] if the session is closing; [`Refused::Overflow`]
    /// if the queue was full, which closes the session as a slow consumer.
    pub fn push(&self, cmd: Command, body: Bytes) -> Result<(), Refused> {
        self.enqueue(Queued::Push { cmd, body, offset: 0 })
    }

    /// Queues an inbox entry: a delivery with its offset (0: not an entry).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn deliver(&self, cmd: Command, body: Bytes, offset: u32) -> Result<(), Refused> {
        self.enqueue(Queued::Push { cmd, body, offset })
    }

    /// Asks the session to catch up with its inbox (see [`Queued::Resync`]).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn resync(&self) -> Result<(), Refused> {
        self.enqueue(Queued::Resync)
    }

    /// Moves the session's position past an inbox entry it does not get.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn skip(&self, offset: u32) -> Result<(), Refused> {
        self.enqueue(Queued::Skip { offset })
    }

    /// Queues a reply to one of the client's requests.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn reply(&self, frame: Frame) -> Result<(), Refused> {
        self.enqueue(Queued::Reply(frame))
    }

    fn enqueue(&self, item: Queued) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.close.is_some() {
            return Err(Refused::Closed);
        }
        if state.queue.len() >= self.capacity as usize {
            // Whatever is queued will never be read in time: drop it and close.
            state.queue = VecDeque::new();
            state.close = Some(Box::new(Close::new(CloseCode::Policy, Close::SLOW_CONSUMER)));
            drop(state);
            self.wake_closed();
            return Err(Refused::Overflow);
        }
        let was_empty = state.queue.is_empty();
        state.queue.push_back(item);
        drop(state);
        if was_empty {
            self.writer.wake();
        }
        Ok(())
    }

    /// Starts closing the session: frames already queued are still written,
    /// then an `A999` with `close`. Only the first close counts; returns
    /// whether this one did.
    pub fn close(&self, close: Close) -> bool {
        let mut state = self.lock();
        if state.close.is_some() {
            return false;
        }
        state.close = Some(Box::new(close));
        drop(state);
        self.wake_closed();
        true
    }

    fn wake_closed(&self) {
        self.is_closing.store(true, Ordering::Release);
        self.writer.wake();
    }

    /// Whether the session is closing.
    pub fn is_closing(&self) -> bool {
        self.is_closing.load(Ordering::Acquire)
    }

    /// Why the session is closing, once it is.
    pub fn close_reason(&self) -> Option<Close> {
        self.lock().close.as_deref().cloned()
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the session is closing.
    ///
    /// For the session's one task, like [`ready`](Outbox::ready), with which
    /// it shares a waker slot: a second task waiting at the same time would
    /// take the wake-up over from the first.
    pub async fn closed(&self) {
        let _unregister = Unregister(&self.writer);
        std::future::poll_fn(|cx| {
            // Registered before looking, as in `poll_ready`.
            self.writer.register(cx.waker());
            if self.is_closing() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Wakes the writer waiting in [`Outbox::ready`] (or the next to wait)
    /// with nothing queued: for a session that keeps no timer of its own
    /// while it waits, when its time has come or the server is stopping.
    pub fn nudge(&self) {
        self.nudged.store(true, Ordering::Release);
        self.writer.wake();
    }

    /// Sets when the session wants a [`nudge`](Outbox::nudge), in whatever
    /// clock its owner keeps (0: never). Whoever keeps the time reads it
    /// with [`Outbox::alarm`] and nudges (the hub's sessions: a gateway's
    /// one sweeper instead of a timer per idle session).
    pub fn set_alarm(&self, at: u64) {
        self.alarm.store(at, Ordering::Relaxed);
    }

    /// When the session wants a nudge (0: never).
    pub fn alarm(&self) -> u64 {
        self.alarm.load(Ordering::Relaxed)
    }

    /// Resolves once frames are queued, the session is closing, or it was
    /// [nudged](Outbox::nudge).
    ///
    /// For the session's one writer: a second task waiting at the same
    /// time would take the wake-up over from the first.
    pub async fn ready(&self) {
        // Given back when this wait ends: frames the session queues for
        // itself (its replies) while busy must not wake it once more.
        let _unregister = Unregister(&self.writer);
        std::future::poll_fn(|cx| self.poll_ready(cx)).await;
    }

    /// [`ready`](Outbox::ready) as a poll, for a writer that waits on
    /// something else too without a future of its own. The waker stays
    /// registered until [`stop_waiting`](Outbox::stop_waiting).
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use jim_protocol::Command;
    /// use jim_router::Outbox;
    ///
    /// let outbox = Outbox::new(8);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(outbox.poll_ready(&mut cx).is_pending());
    /// outbox.push(Command::S2C, bytes::Bytes::from_static(b"{}")).unwrap();
    /// assert!(outbox.poll_ready(&mut cx).is_ready());
    /// outbox.stop_waiting();
    /// ```
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Registered before looking, so a frame queued right after the
        // look still wakes this task.
        self.writer.register(cx.waker());
        if self.nudged.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        let state = self.lock();
        if state.queue.is_empty() && state.close.is_none() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Forgets the waker [`poll_ready`](Outbox::poll_ready) registered:
    /// what is queued from now on wakes nobody until the next wait.
    pub fn stop_waiting(&self) {
        self.writer.take();
    }

    /// Gives back the queue's memory if nothing is queued: for a session
    /// gone quiet.
    pub fn shrink(&self) {
        let mut state = self.lock();
        if state.queue.is_empty() {
            state.queue = VecDeque::new();
        }
    }

    /// Moves every queued frame into `batch` (which must be empty), without
    /// waiting. Returns the close once the session is closing; the frames
    /// in `batch` are to be written before the `A999`.
    pub fn take(&self, batch: &mut VecDeque<Queued>) -> Option<Close> {
        debug_assert!(batch.is_empty());
        let mut state = self.lock();
        if !state.queue.is_empty() {
            std::mem::swap(batch, &mut state.queue);
        }
        state.close.as_deref().cloned()
    }

    /// For a session's writer: waits until frames are queued or the session
    /// is closing, then [`take`](Self::take)s them.
    pub async fn next_batch(&self, batch: &mut VecDeque<Queued>) -> Option<Close> {
        self.ready().await;
        self.take(batch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves a consistent queue.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Takes the waker out of the slot when dropped.
struct Unregister<'a>(&'a AtomicWaker);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.take();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn body() -> Bytes {
        Bytes::from_static(b"{}")
    }

    #[tokio::test]
    async fn the_writer_gets_everything_queued_in_one_batch() {
        let outbox = Outbox::new(10);
        for _ in 0..3 {
            outbox.push(Command::C2C, body()).unwrap();
        }
        outbox.reply(Frame::empty(Command::Pong, 7)).unwrap();
        let mut batch = VecDeque::new();
        assert_eq!(outbox.next_batch(&mut batch).await, None);
        assert_eq!(batch.len(), 4);
        assert_eq!(batch[3], Queued::Reply(Frame::empty(Command::Pong, 7)));
        assert!(outbox.is_empty());
    }

    #[tokio::test]
    async fn a_nudge_wakes_the_waiting_writer_once_with_nothing_queued() {
        let outbox = Arc::new(Outbox::new(10));
        outbox.set_alarm(42);
        assert_eq!(outbox.alarm(), 42);
        let waiting = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.ready().await }
        });
        tokio::task::yield_now().await;
        outbox.nudge();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the nudge woke it")
            .unwrap();
        assert!(outbox.is_empty() && !outbox.is_closing());
        // Taken: the next wait waits again.
        let again = tokio::time::timeout(Duration::from_millis(50), outbox.ready()).await;
        assert!(again.is_err());
        // A nudge with no one waiting is kept for the next.
        outbox.nudge();
        tokio::time::timeout(Duration::from_secs(5), outbox.ready())
            .await
            .expect("the kept nudge");
    }

    /// Counts the wake-ups it gets.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_writer_is_woken_while_it_waits_and_not_after() {
        let outbox = Outbox::new(10);
        let counting = Arc::new(Counting(Default::default()));
        let waker = std::task::Waker::from(Arc::clone(&counting));
        let mut cx = std::task::Context::from_waker(&waker);
        let wakes = || counting.0.load(Ordering::SeqCst);

        let mut wait = Box::pin(outbox.ready());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        outbox.push(Command::C2C, body()).unwrap();
        assert_eq!(wakes(), 1, "a waiting writer is woken");
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        drop(wait);
        outbox.take(&mut VecDeque::new());

        // Waiting again, then busy elsewhere (the wait dropped, as when
        // another branch of the session's select wins): its own replies
        // queued meanwhile do not wake it again...
        let mut wait = Box::pin(outbox.ready());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        drop(wait);
        outbox.reply(Frame::empty(Command::Pong, 1)).unwrap();
        assert_eq!(wakes(), 1);
        // ...and the next wait sees them at once.
        assert!(Box::pin(outbox.ready()).as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn the_writer_wakes_for_a_frame_pushed_later() {
        let outbox = Arc::new(Outbox::new(10));
        let writer = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move {
                let mut batch = VecDeque::new();
                outbox.next_batch(&mut batch).await;
                batch.len()
            })
        };
        tokio::task::yield_now().await;
        outbox.push(Command::S2C, body()).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, 1);
    }

    #[tokio::test]
    async fn a_close_flushes_what_is_queued_then_reports_itself() {
        let outbox = Outbox::new(10);
        outbox.push(Command::C2C, body()).unwrap();
        assert!(outbox.close(Close::new(CloseCode::Policy, "kicked")));
        assert!(
            !outbox.close(Close::new(CloseCode::GoingAway, "shutdown")),
            "first close wins"
        );
        assert_eq!(outbox.push(Command::C2C, body()), Err(Refused::Closed));
        let mut batch = VecDeque::new();
        let close = outbox.next_batch(&mut batch).await.unwrap();
        assert_eq!((close.code, &*close.reason), (CloseCode::Policy, "kicked"));
        assert_eq!(batch.len(), 1);
        batch.clear();
        assert_eq!(outbox.next_batch(&mut batch).await.unwrap().reason, "kicked");
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn overflow_drops_the_queue_and_closes_as_slow_consumer() {
        let outbox = Arc::new(Outbox::new(2));
        let waiter = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move { outbox.closed().await })
        };
        outbox.push(Command::C2C, body()).unwrap();
        outbox.push(Command::C2C, body()).unwrap();
        assert_eq!(outbox.push(Command::C2C, body()), Err(Refused::Overflow));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        let mut batch = VecDeque::new();
        assert!(outbox.next_batch(&mut batch).await.unwrap().is_slow_consumer());
        assert!(batch.is_empty(), "a slow consumer's backlog is dropped");
    }

    #[tokio::test]
    async fn closed_resolves_at_once_when_already_closing() {
        let outbox = Outbox::new(1);
        outbox.close(Close::new(CloseCode::Normal, "bye"));
        tokio::time::timeout(Duration::from_secs(5), outbox.closed())
            .await
            .unwrap();
    }

    /// Every session holds one, idle or not: with its `Arc`'s counts, 104 B
    /// is a 112-byte heap block (it was 168 B, a 176-byte block, with a
    /// `Notify` and the close inline). Fails when a change makes it larger.
    #[test]
    fn an_outbox_fits_a_112_byte_block() {
        assert!(
            std::mem::size_of::<Outbox>() <= 88,
            "{} B",
            std::mem::size_of::<Outbox>()
        );
    }
}
