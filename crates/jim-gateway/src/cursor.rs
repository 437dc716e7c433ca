//! A session's position in its user's inbox: deliveries go out in offset
//! order, each once, with no gap (the contract's section 7).
//!
//! Live deliveries arrive in the outbox with their offsets. Whatever is not
//! next in line is settled here: an offset already sent is dropped (a
//! replay and a live delivery overlapped), and a gap (two routes raced, an
//! attach raced a delivery) is filled from the store before the newer
//! entry goes out. The replay after `B002` is the same fill, up to the
//! head the session was told.
//!
//! A gap the store no longer holds is waited on for a while: under load a
//! route that raced another can be further behind than the inbox keeps
//! (a group of thousands, each member's inbox a thousand entries deep in
//! a second) and still be on its way to this session.
//!
//! A read the backend cannot answer is retried for a while too: a router
//! restarting (or a store failing over) would otherwise end every session
//! that happened to read, and have all their clients reconnect at once.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jim_protocol::{Command, Frame};
use jim_router::{InboxState, Outbox, Queued, Refusal, Router, RouterError, SessionId};
use tokio::time::Instant;

/// Entries read from the store at a time.
const READ_CHUNK: usize = 256;

/// How long a gap the store has trimmed waits for its entry to arrive
/// live before the session ends (it fell behind retention).
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(2);

/// How long a store read the backend could not answer is retried before
/// the session ends (with 1011): a router's restart, a store's failover.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// The first pause between two tries of a read, doubled up to
/// [`STORE_RETRY_MAX_PAUSE`].
const STORE_RETRY_PAUSE: Duration = Duration::from_millis(20);
const STORE_RETRY_MAX_PAUSE: Duration = Duration::from_millis(500);

/// What a fill from the store sent, and the first entry the store no
/// longer held, where it stopped.
struct Filled {
    sent: usize,
    trimmed: Option<u32>,
}

impl Filled {
    /// What was sent, where an entry the store no longer held ends the
    /// session (a fill with `Holes::Refused` that had to stop).
    fn all(self) -> Result<usize, RouterError> {
        match self.trimmed {
            Some(trimmed) => Err(behind_retention(trimmed)),
            None => Ok(self.sent),
        }
    }
}

/// Whether a fill may pass over entries the store no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holes {
    /// The client was promised nothing was missed: a hole ends the session.
    Refused,
    /// The client was told it missed something (`recovered: false`).
    Skipped,
}

/// Where a session stands in its inbox.
#[derive(Debug)]
///
/// Whose inbox it is, and where to read it, come with each batch (a
/// [`Store`]): the session holds them already, and a cursor is kept in
/// every idle session.
pub(crate) struct Cursor {
    /// The inbox's epoch when the session attached.
    epoch: Arc<str>,
    /// The last offset sent or passed.
    last: u32,
    /// Offsets up to here are sent right after the `B002` (the replay).
    replay_to: u32,
    /// Whether the client was told `recovered: true`: then its replay may
    /// not skip an entry either.
    recovered: bool,
    /// Whether the `B002` has been written: deliveries wait for it.
    greeted: bool,
    /// An entry came that was already sent: a replay overlapping live
    /// deliveries (rare), or a store that lost the inbox and numbers from 1
    /// again. The head is checked once the batch is placed.
    stale: bool,
}

/// Where a cursor reads its inbox: the backend, for whom, and the
/// session's outbox (what arrives while a gap waits; whether it closes).
pub(crate) struct Store<'a, R> {
    pub(crate) router: &'a R,
    pub(crate) outbox: &'a Outbox,
    /// The user whose inbox it is.
    pub(crate) user: &'a str,
    /// The session (its own group messages are not sent to it).
    pub(crate) session: SessionId,
}

impl Cursor {
    /// A session that has everything up to `last` and is to be sent
    /// everything up to `replay_to` after its `B002`.
    pub(crate) fn new(epoch: Arc<str>, last: u32, replay_to: u32, recovered: bool) -> Cursor {
        Cursor {
            epoch,
            last,
            replay_to,
            recovered,
            greeted: false,
            stale: false,
        }
    }

    /// Moves `batch` into `frames` in the order the client must see them.
    ///
    /// # Errors
    /// The store could not be read, or the inbox was lost meanwhile (its
    /// epoch changed): the session must end, and the client come back with
    /// `since`.
    ///
    /// A gap is filled from the store, or, when the store has trimmed it,
    /// from what arrives in `outbox` within [`IN_FLIGHT_WAIT`].
    pub(crate) async fn order<R: Router>(
        &mut self,
        batch: &mut VecDeque<Queued>,
        frames: &mut Vec<Frame>,
        store: &Store<'_, R>,
    ) -> Result<usize, RouterError> {
        if self.order_in_line(batch, frames) {
            return Ok(0);
        }
        // Boxed: the store's futures would otherwise be part of every
        // session's task, idle or not, though few batches need them.
        Box::pin(self.order_with_store(batch, frames, store)).await
    }

    /// Moves the front of `batch` into `frames` as long as it is in line
    /// (the usual case: nothing to read, nothing to hold back); returns
    /// whether all of it was.
    fn order_in_line(&mut self, batch: &mut VecDeque<Queued>, frames: &mut Vec<Frame>) -> bool {
        if !self.greeted {
            return batch.is_empty();
        }
        while let Some(item) = batch.front() {
            match item {
                Queued::Reply(_) | Queued::Push { offset: 0, .. } => {}
                Queued::Push { offset, .. } | Queued::Skip { offset }
                    if *offset == self.last.wrapping_add(1) =>
                {
                    self.last = *offset;
                }
                Queued::Push { .. } | Queued::Skip { .. } | Queued::Resync => return false,
            }
            match batch.pop_front() {
                Some(Queued::Reply(frame)) => frames.push(frame),
                Some(Queued::Push { cmd, body, offset }) => frames.push(Frame {
                    cmd,
                    seq: offset,
                    body,
                }),
                _ => {}
            }
        }
        true
    }

    /// [`order`](Self::order) for a batch that needs the store (or waits
    /// for the greeting).
    async fn order_with_store<R: Router>(
        &mut self,
        batch: &mut VecDeque<Queued>,
        frames: &mut Vec<Frame>,
        store: &Store<'_, R>,
    ) -> Result<usize, RouterError> {
        let mut replayed = 0;
        let mut held = Vec::new();
        // Entries that came ahead of the next one: what they wait for is
        // usually later in this batch (two routes raced by a hair).
        let mut ahead = BTreeMap::new();
        while let Some(item) = batch.pop_front() {
            match item {
                Queued::Reply(frame) => {
                    let greeting = !self.greeted && frame.cmd == Command::AuthOk;
                    frames.push(frame);
                    if greeting {
                        self.greeted = true;
                        // Told it missed something, the client reloads:
                        // entries trimmed meanwhile may be skipped.
                        let holes = if self.recovered {
                            Holes::Refused
                        } else {
                            Holes::Skipped
                        };
                        replayed += self.fill(self.replay_to, holes, frames, store).await?.all()?;
                        for item in std::mem::take(&mut held) {
                            replayed += self.place(item, &mut ahead, frames, store).await?;
                        }
                    }
                }
                item if !self.greeted => held.push(item),
                item => replayed += self.place(item, &mut ahead, frames, store).await?,
            }
        }
        replayed += self.settle(&mut ahead, frames, store).await?;
        if std::mem::take(&mut self.stale) {
            // Is it the same inbox? A changed epoch ends the session here
            // (the client resumes). Only the epoch: filling up to the head
            // now would send entries still on their way, whose live copies
            // would then look stale in turn.
            if let Some(state) = self.inbox_state(store).await? {
                self.check_epoch(&state.epoch)?;
            }
        }
        // Only possible if the greeting was never queued: keep them for later.
        batch.extend(held);
        Ok(replayed)
    }

    /// As [`order`](Self::order) without reading the store (the session is
    /// closing): entries out of line are left for the client's next
    /// `since`.
    pub(crate) fn order_now(&mut self, batch: &mut VecDeque<Queued>, frames: &mut Vec<Frame>) {
        for item in batch.drain(..) {
            match item {
                Queued::Reply(frame) => frames.push(frame),
                Queued::Push { cmd, body, offset: 0 } => frames.push(Frame { cmd, seq: 0, body }),
                Queued::Push { cmd, body, offset } if self.greeted && offset == self.last.wrapping_add(1) => {
                    frames.push(Frame {
                        cmd,
                        seq: offset,
                        body,
                    });
                    self.last = offset;
                }
                Queued::Skip { offset } if self.greeted && offset == self.last.wrapping_add(1) => {
                    self.last = offset
                }
                Queued::Push { .. } | Queued::Skip { .. } | Queued::Resync => {}
            }
        }
    }

    /// Places one item; returns the entries read from the store for it.
    async fn place<R: Router>(
        &mut self,
        item: Queued,
        ahead: &mut BTreeMap<u32, Option<Frame>>,
        frames: &mut Vec<Frame>,
        store: &Store<'_, R>,
    ) -> Result<usize, RouterError> {
        if self.place_now(item, ahead, frames) {
            let settled = self.settle(ahead, frames, store).await?;
            return Ok(settled + self.resync(frames, store).await?);
        }
        Ok(0)
    }

    /// Places one item without the store; returns whether it asks for a
    /// resync, which it leaves to the caller.
    fn place_now(
        &mut self,
        item: Queued,
        ahead: &mut BTreeMap<u32, Option<Frame>>,
        frames: &mut Vec<Frame>,
    ) -> bool {
        let (offset, frame) = match item {
            Queued::Reply(frame) => {
                frames.push(frame);
                return false;
            }
            Queued::Push { cmd, body, offset: 0 } => {
                frames.push(Frame { cmd, seq: 0, body });
                return false;
            }
            Queued::Push { cmd, body, offset } => (
                offset,
                Some(Frame {
                    cmd,
                    seq: offset,
                    body,
                }),
            ),
            Queued::Skip { offset } => (offset, None),
            Queued::Resync => return true,
        };
        if offset == self.last.wrapping_add(1) {
            frames.extend(frame);
            self.last = offset;
            self.release(ahead, frames);
        } else if offset > self.last {
            ahead.insert(offset, frame);
        } else {
            self.stale = true;
        }
        false
    }

    /// Sends what waited in `ahead` and is next in line now.
    fn release(&mut self, ahead: &mut BTreeMap<u32, Option<Frame>>, frames: &mut Vec<Frame>) {
        while let Some(entry) = ahead.first_entry() {
            let offset = *entry.key();
            if offset <= self.last {
                entry.remove();
            } else if offset == self.last.wrapping_add(1) {
                frames.extend(entry.remove());
                self.last = offset;
            } else {
                break;
            }
        }
    }

    /// Fills from the store the gaps before what still waits in `ahead`,
    /// then sends it.
    async fn settle<R: Router>(
        &mut self,
        ahead: &mut BTreeMap<u32, Option<Frame>>,
        frames: &mut Vec<Frame>,
        store: &Store<'_, R>,
    ) -> Result<usize, RouterError> {
        let mut filled = 0;
        // The entry the store had trimmed, and until when it is waited for.
        let mut awaited: Option<(u32, Instant)> = None;
        let mut resync = false;
        while let Some((&next, _)) = ahead.first_key_value() {
            if let Some((hole, until)) = awaited.filter(|(hole, _)| self.last < *hole) {
                if self
                    .take_arriving(ahead, frames, store.outbox, until, &mut resync)
                    .await
                {
                    continue;
                }
                if store.outbox.is_closing() {
                    // Closed meanwhile: what is out of line is left for
                    // the client's next `since`, as when closing.
                    break;
                }
                return Err(behind_retention(hole));
            }
            let fill = self.fill(next - 1, Holes::Refused, frames, store).await?;
            filled += fill.sent;
            if let Some(hole) = fill.trimmed {
                let until = awaited.map_or_else(|| Instant::now() + IN_FLIGHT_WAIT, |(_, until)| until);
                awaited = Some((hole, until));
                continue;
            }
            self.release(ahead, frames);
        }
        if resync {
            filled += self.resync(frames, store).await?;
        }
        Ok(filled)
    }

    /// Waits until `until` for what arrives in `outbox`, and places it;
    /// whether to wait on (false: nothing came, or the session is closing:
    /// what came is placed all the same, to go out before the `A999`).
    async fn take_arriving(
        &mut self,
        ahead: &mut BTreeMap<u32, Option<Frame>>,
        frames: &mut Vec<Frame>,
        outbox: &Outbox,
        until: Instant,
        resync: &mut bool,
    ) -> bool {
        if tokio::time::timeout_at(until, outbox.ready()).await.is_err() {
            return false;
        }
        let mut arrived = VecDeque::new();
        let closing = outbox.take(&mut arrived).is_some();
        for item in arrived {
            *resync |= self.place_now(item, ahead, frames);
        }
        !closing
    }

    /// Catches up to the inbox's head now.
    async fn resync<R: Router>(
        &mut self,
        frames: &mut Vec<Frame>,
        store: &Store<'_, R>,
    ) -> Result<usize, RouterError> {
        let Some(state) = self.inbox_state(store).await? else {
            return Ok(0);
        };
        self.check_epoch(&state.epoch)?;
        self.fill(state.head, Holes::Refused, frames, store).await?.all()
    }

    /// Where the inbox stands, retried as [`retried`] says.
    async fn inbox_state<R: Router>(&self, store: &Store<'_, R>) -> Result<Option<InboxState>, RouterError> {
        retried(store.outbox, || store.router.inbox_state(store.user)).await
    }

    fn check_epoch(&self, epoch: &Arc<str>) -> Result<(), RouterError> {
        if *epoch == self.epoch {
            return Ok(());
        }
        Err(RouterError::Unavailable {
            reason: format!(
                "the inbox was reset (epoch {} became {epoch}): reconnect with `since`",
                self.epoch
            ),
        })
    }

    /// Sends the store's entries after `last` up to `upto`. Entries the
    /// store no longer holds (past retention) are passed with
    /// `Holes::Skipped`; with `Holes::Refused` the fill stops before the
    /// first of them and names it.
    async fn fill<R: Router>(
        &mut self,
        upto: u32,
        holes: Holes,
        frames: &mut Vec<Frame>,
        store: &Store<'_, R>,
    ) -> Result<Filled, RouterError> {
        let mut sent = 0;
        while self.last < upto {
            let want = ((upto - self.last) as usize).min(READ_CHUNK);
            let after = self.last;
            let read = retried(store.outbox, || store.router.read_inbox(store.user, after, want)).await?;
            self.check_epoch(&read.epoch)?;
            let first = read.entries.first().map_or(upto.saturating_add(1), |e| e.offset);
            if first != self.last.wrapping_add(1) && holes == Holes::Refused {
                return Ok(Filled {
                    sent,
                    trimmed: Some(self.last.wrapping_add(1)),
                });
            }
            let Some(newest) = read.entries.last().map(|e| e.offset) else {
                self.last = upto;
                break;
            };
            for entry in read.entries.into_iter().filter(|e| e.offset <= upto) {
                if entry.except != Some(store.session.0) {
                    frames.push(Frame {
                        cmd: entry.cmd,
                        seq: entry.offset,
                        body: entry.body,
                    });
                    sent += 1;
                }
            }
            self.last = newest.min(upto);
        }
        Ok(Filled { sent, trimmed: None })
    }
}

/// `read()`'s answer; a refusal of the `Unavailable` kind (the backend
/// unreachable, the store failing) is tried again, with pauses doubling
/// from [`STORE_RETRY_PAUSE`], for up to [`STORE_RETRY`], unless the
/// session is closing meanwhile.
async fn retried<T, F, Fut>(outbox: &Outbox, mut read: F) -> Result<T, RouterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RouterError>>,
{
    let give_up = Instant::now() + STORE_RETRY;
    let mut pause = STORE_RETRY_PAUSE;
    loop {
        match read().await {
            Err(e)
                if e.refusal() == Refusal::Unavailable
                    && !outbox.is_closing()
                    && Instant::now() + pause <= give_up =>
            {
                tracing::debug!(error = %e, retry_in = ?pause, "an inbox read failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(STORE_RETRY_MAX_PAUSE);
            }
            answer => return answer,
        }
    }
}

/// An entry this session was never sent is trimmed from the store: it fell
/// further behind than the inbox keeps. Never skipped silently: the client
/// resumes, and is told it missed something.
fn behind_retention(offset: u32) -> RouterError {
    RouterError::Unavailable {
        reason: format!(
            "this session fell behind its inbox's retention (offset {offset} is gone): reconnect with `since`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use jim_router::LocalRouter;
    use jim_router::inbox::{Append, Inbox, Retention, StoreKind};

    use super::*;

    fn push(offset: u32) -> Queued {
        Queued::Push {
            cmd: Command::C2C,
            body: Bytes::from(offset.to_string()),
            offset,
        }
    }

    /// A router whose store holds bob's offsets 1 to 3 but keeps only the
    /// newest; and bob's inbox's epoch.
    async fn trimmed() -> (LocalRouter, Arc<str>) {
        let retention = Retention {
            max_entries: 1,
            ..Retention::default()
        };
        let inbox = Inbox::open(&StoreKind::Memory, retention, Default::default())
            .await
            .unwrap();
        let user: Arc<str> = "bob".into();
        for id in 1..=3 {
            let body = Bytes::from(id.to_string());
            let append = Append {
                cmd: Command::C2C,
                body: &body,
                except: None,
                sender: None,
                client_msg_id: None,
                message_id: id,
            };
            inbox.append([&user].into_iter(), &append).await.unwrap();
        }
        let epoch = inbox.state("bob").await.unwrap().epoch;
        (LocalRouter::open(inbox, Vec::new()).await.unwrap(), epoch)
    }

    /// Bob's session 7 reading `router`'s store, its outbox `outbox`.
    fn bobs<'a>(router: &'a LocalRouter, outbox: &'a Outbox) -> Store<'a, LocalRouter> {
        Store {
            router,
            outbox,
            user: "bob",
            session: SessionId(7),
        }
    }

    /// Over `trimmed`'s store: bob's session 7, greeted, with nothing sent
    /// yet and nothing missed.
    async fn greeted() -> (LocalRouter, Cursor) {
        let (router, epoch) = trimmed().await;
        let mut cursor = Cursor::new(epoch, 0, 0, true);
        cursor.greeted = true;
        (router, cursor)
    }

    /// Two routes that raced: the later offset came first, and the store
    /// keeps only the newest entry. The earlier one, right behind in the
    /// same batch, is sent (not passed as lost) and each goes out once.
    #[tokio::test]
    async fn entries_out_of_order_in_a_batch_go_out_in_order_without_the_store() {
        let (router, mut cursor) = greeted().await;
        let mut batch: VecDeque<Queued> = [push(2), push(1), push(2), Queued::Skip { offset: 3 }].into();
        let mut frames = Vec::new();
        let filled = cursor
            .order(&mut batch, &mut frames, &bobs(&router, &Outbox::new(8)))
            .await
            .unwrap();
        let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
        assert_eq!((seqs, filled, cursor.last), (vec![1, 2], 0, 3));
    }

    /// A batch in line at first, then out of order: what is in line goes
    /// out as it is, the rest is put in order, and nothing is read twice.
    #[tokio::test]
    async fn a_batch_in_line_then_out_of_order_goes_out_in_order() {
        let (router, mut cursor) = greeted().await;
        let pong = Frame::new(Command::Pong, 9, Bytes::new());
        let mut batch: VecDeque<Queued> = [
            push(1),
            Queued::Reply(pong),
            Queued::Skip { offset: 2 },
            push(4),
            push(3),
            push(5),
        ]
        .into();
        let mut frames = Vec::new();
        let filled = cursor
            .order(&mut batch, &mut frames, &bobs(&router, &Outbox::new(8)))
            .await
            .unwrap();
        let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
        assert_eq!((seqs, filled, cursor.last), (vec![1, 9, 3, 4, 5], 0, 5));
        assert!(batch.is_empty());
    }

    /// An entry the session never got is gone from the store and does not
    /// arrive within the wait: the session ends (the client resumes and is
    /// told), it never skips silently.
    #[tokio::test(start_paused = true)]
    async fn a_gap_the_store_no_longer_holds_ends_the_session() {
        let (router, mut cursor) = greeted().await;
        let mut batch: VecDeque<Queued> = [push(3)].into();
        let error = cursor
            .order(&mut batch, &mut Vec::new(), &bobs(&router, &Outbox::new(8)))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("fell behind its inbox's retention"),
            "{error}"
        );
    }

    /// Under load a raced route can be further behind than the store keeps
    /// and still be on its way: what arrives while the gap is waited on
    /// fills it, in order, and the session goes on.
    #[tokio::test(start_paused = true)]
    async fn a_gap_the_store_has_trimmed_is_filled_by_what_arrives_meanwhile() {
        let (router, mut cursor) = greeted().await;
        let outbox = std::sync::Arc::new(Outbox::new(8));
        let late = {
            let outbox = std::sync::Arc::clone(&outbox);
            tokio::spawn(async move {
                tokio::time::sleep(IN_FLIGHT_WAIT / 2).await;
                outbox.deliver(Command::C2C, Bytes::from("2"), 2).unwrap();
                outbox.deliver(Command::C2C, Bytes::from("1"), 1).unwrap();
            })
        };
        let mut batch: VecDeque<Queued> = [push(3)].into();
        let mut frames = Vec::new();
        cursor
            .order(&mut batch, &mut frames, &bobs(&router, &outbox))
            .await
            .unwrap();
        late.await.unwrap();
        let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
        assert_eq!((seqs, cursor.last), (vec![1, 2, 3], 3));
        assert!(outbox.is_empty());
    }

    /// A session closed while a gap waits: what arrived in line goes out
    /// (before the `A999`), what is still out of line is left for `since`.
    #[tokio::test(start_paused = true)]
    async fn a_session_closed_while_a_gap_waits_sends_what_is_in_line() {
        let (router, mut cursor) = greeted().await;
        let outbox = Outbox::new(8);
        outbox.deliver(Command::C2C, Bytes::from("1"), 1).unwrap();
        outbox.close(jim_router::Close::new(jim_model::CloseCode::Policy, "kicked"));
        let mut batch: VecDeque<Queued> = [push(3)].into();
        let mut frames = Vec::new();
        cursor
            .order(&mut batch, &mut frames, &bobs(&router, &outbox))
            .await
            .unwrap();
        let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
        assert_eq!((seqs, cursor.last), (vec![1], 1));
    }

    /// A replay after `recovered: false` passes what is gone.
    #[tokio::test]
    async fn a_replay_the_client_was_told_is_partial_passes_what_is_gone() {
        let (router, epoch) = trimmed().await;
        let mut cursor = Cursor::new(epoch, 0, 3, false);
        let greeting = Frame::new(Command::AuthOk, 1, Bytes::new());
        let mut batch: VecDeque<Queued> = [Queued::Reply(greeting)].into();
        let mut frames = Vec::new();
        cursor
            .order(&mut batch, &mut frames, &bobs(&router, &Outbox::new(8)))
            .await
            .unwrap();
        let seqs: Vec<u32> = frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![1, 3], "the greeting's seq, then the one entry left");
    }

    fn unreachable() -> RouterError {
        RouterError::Unavailable {
            reason: "router: transport error".into(),
        }
    }

    /// A read that fails `failures` times, then answers 7; and its tries.
    fn failing(
        failures: usize,
    ) -> (
        std::cell::Cell<usize>,
        impl Fn(&std::cell::Cell<usize>) -> Result<u32, RouterError>,
    ) {
        let answer = move |tries: &std::cell::Cell<usize>| {
            tries.set(tries.get() + 1);
            if tries.get() > failures {
                Ok(7)
            } else {
                Err(unreachable())
            }
        };
        (std::cell::Cell::new(0), answer)
    }

    /// A router restarting: the reads it cannot answer are tried again,
    /// with pauses doubling, and the session goes on once it answers.
    #[tokio::test(start_paused = true)]
    async fn a_read_the_backend_could_not_answer_is_tried_again_until_it_answers() {
        let (tries, answer) = failing(3);
        let started = Instant::now();
        let read = retried(&Outbox::new(8), || std::future::ready(answer(&tries))).await;
        assert_eq!((read, tries.get()), (Ok(7), 4));
        assert_eq!(started.elapsed(), Duration::from_millis(20 + 40 + 80));
    }

    /// A backend down for longer than the retry window: the session ends
    /// with the backend's error once the window has passed.
    #[tokio::test(start_paused = true)]
    async fn a_read_failing_past_the_retry_window_ends_with_its_error() {
        let (tries, answer) = failing(usize::MAX);
        let started = Instant::now();
        let read = retried(&Outbox::new(8), || std::future::ready(answer(&tries))).await;
        assert_eq!(read, Err(unreachable()));
        assert!(tries.get() > 5, "tried {} times", tries.get());
        let waited = started.elapsed();
        assert!(
            waited <= STORE_RETRY && waited > STORE_RETRY - STORE_RETRY_MAX_PAUSE,
            "gave up after {waited:?}"
        );
    }

    /// A closing session does not wait for the backend; nor is a refusal
    /// that is not about availability tried again.
    #[tokio::test(start_paused = true)]
    async fn a_closing_session_or_a_refusal_is_not_retried() {
        let outbox = Outbox::new(8);
        outbox.close(jim_router::Close::new(jim_model::CloseCode::Policy, "kicked"));
        let (tries, answer) = failing(1);
        let read = retried(&outbox, || std::future::ready(answer(&tries))).await;
        assert_eq!((read, tries.get()), (Err(unreachable()), 1));

        let invalid = || RouterError::Invalid { reason: "no".into() };
        let tries = std::cell::Cell::new(0);
        let read: Result<u32, _> = retried(&Outbox::new(8), || {
            tries.set(tries.get() + 1);
            std::future::ready(Err(invalid()))
        })
        .await;
        assert_eq!((read, tries.get()), (Err(invalid()), 1));
    }
}
