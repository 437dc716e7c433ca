//! A session's position in its user's inbox: deliveries go out in offset
//! order, each once, with no gap (the contract's section 7).
//!
//! Live deliveries arrive in the outbox with their offsets. Whatever is not
//! next in line is settled here: an offset already sent is dropped (a
//! replay and a live delivery overlapped), and a gap (two routes raced, an
//! attach raced a delivery) is filled from the store before the newer
//! entry goes out. The replay after `B002` is the same fill, up to the
//! head the session was told.

use std::collections::VecDeque;
use std::sync::Arc;

use jim_protocol::{Command, Frame};
use jim_router::{Outbound, Router, RouterError};

/// Entries read from the store at a time.
const READ_CHUNK: usize = 256;

/// Where a session stands in its inbox.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// The user whose inbox it is.
    user: Arc<str>,
    /// The session (its own group messages are not sent to it).
    session: u64,
    /// The inbox's epoch when the session attached.
    epoch: Arc<str>,
    /// The last offset sent or passed.
    last: u32,
    /// Offsets up to here are sent right after the `B002` (the replay).
    replay_to: u32,
    /// Whether the `B002` has been written: deliveries wait for it.
    greeted: bool,
}

impl Cursor {
    /// A session of `user` that has everything up to `last` and is to be
    /// sent everything up to `replay_to` after its `B002`.
    pub(crate) fn new(user: Arc<str>, session: u64, epoch: Arc<str>, last: u32, replay_to: u32) -> Cursor {
        Cursor {
            user,
            session,
            epoch,
            last,
            replay_to,
            greeted: false,
        }
    }

    /// Moves `batch` into `frames` in the order the client must see them.
    ///
    /// # Errors
    /// The store could not be read, or the inbox was lost meanwhile (its
    /// epoch changed): the session must end, and the client come back with
    /// `since`.
    pub(crate) async fn order<R: Router>(
        &mut self,
        batch: &mut VecDeque<Outbound>,
        frames: &mut Vec<Frame>,
        router: &R,
    ) -> Result<usize, RouterError> {
        let mut replayed = 0;
        let mut held = Vec::new();
        while let Some(item) = batch.pop_front() {
            match item {
                Outbound::Reply(frame) => {
                    let greeting = !self.greeted && frame.cmd == Command::AuthOk;
                    frames.push(frame);
                    if greeting {
                        self.greeted = true;
                        replayed += self.fill(self.replay_to, frames, router).await?;
                        for item in std::mem::take(&mut held) {
                            replayed += self.place(item, frames, router).await?;
                        }
                    }
                }
                item if !self.greeted => held.push(item),
                item => replayed += self.place(item, frames, router).await?,
            }
        }
        // Only possible if the greeting was never queued: keep them for later.
        batch.extend(held);
        Ok(replayed)
    }

    /// As [`order`](Self::order) without reading the store (the session is
    /// closing): entries out of line are left for the client's next
    /// `since`.
    pub(crate) fn order_now(&mut self, batch: &mut VecDeque<Outbound>, frames: &mut Vec<Frame>) {
        for item in batch.drain(..) {
            match item {
                Outbound::Reply(frame) => frames.push(frame),
                Outbound::Push { cmd, body, offset: 0 } => frames.push(Frame { cmd, seq: 0, body }),
                Outbound::Push { cmd, body, offset }
                    if self.greeted && offset == self.last.wrapping_add(1) =>
                {
                    frames.push(Frame {
                        cmd,
                        seq: offset,
                        body,
                    });
                    self.last = offset;
                }
                Outbound::Skip { offset } if self.greeted && offset == self.last.wrapping_add(1) => {
                    self.last = offset
                }
                Outbound::Push { .. } | Outbound::Skip { .. } | Outbound::Resync => {}
            }
        }
    }

    /// Places one delivery or skip; returns the entries filled before it.
    async fn place<R: Router>(
        &mut self,
        item: Outbound,
        frames: &mut Vec<Frame>,
        router: &R,
    ) -> Result<usize, RouterError> {
        let (offset, frame) = match item {
            Outbound::Push { cmd, body, offset: 0 } => {
                frames.push(Frame { cmd, seq: 0, body });
                return Ok(0);
            }
            Outbound::Push { cmd, body, offset } => (
                offset,
                Some(Frame {
                    cmd,
                    seq: offset,
                    body,
                }),
            ),
            Outbound::Skip { offset } => (offset, None),
            Outbound::Resync => return self.resync(frames, router).await,
            Outbound::Reply(frame) => {
                frames.push(frame);
                return Ok(0);
            }
        };
        let filled = if offset > self.last.saturating_add(1) {
            self.fill(offset - 1, frames, router).await?
        } else {
            0
        };
        if offset == self.last.wrapping_add(1) {
            frames.extend(frame);
            self.last = offset;
        }
        Ok(filled)
    }

    /// Catches up to the inbox's head now.
    async fn resync<R: Router>(&mut self, frames: &mut Vec<Frame>, router: &R) -> Result<usize, RouterError> {
        let Some(state) = router.inbox_state(&self.user).await? else {
            return Ok(0);
        };
        self.check_epoch(&state.epoch)?;
        self.fill(state.head, frames, router).await
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

    /// Sends the store's entries after `last` up to `upto`; returns how
    /// many. Entries the store no longer holds (past retention) are passed.
    async fn fill<R: Router>(
        &mut self,
        upto: u32,
        frames: &mut Vec<Frame>,
        router: &R,
    ) -> Result<usize, RouterError> {
        let mut sent = 0;
        while self.last < upto {
            let want = ((upto - self.last) as usize).min(READ_CHUNK);
            let read = router.read_inbox(&self.user, self.last, want).await?;
            self.check_epoch(&read.epoch)?;
            let Some(newest) = read.entries.last().map(|e| e.offset) else {
                self.last = upto;
                break;
            };
            for entry in read.entries.into_iter().filter(|e| e.offset <= upto) {
                if entry.except != Some(self.session) {
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
        Ok(sent)
    }
}
