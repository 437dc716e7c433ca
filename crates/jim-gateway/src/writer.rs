//! A connection's write side: what the session task writes from its outbox.
//!
//! There is no writer task: the session task flushes its outbox after
//! handling every frame it has buffered (so a batch of requests gets its
//! replies in one write), and whenever a router queues deliveries for it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use jim_model::{CloseCode, Status};
use jim_protocol::{Command, Frame};
use jim_router::{Close, Outbox, Queued, Router, SessionInfo};
use jim_transport::Link;
use tokio::time::{Instant, timeout};

use crate::cursor::{Cursor, Store};
use crate::metrics::Metrics;
use crate::ready::at_once;

/// When a write that is blocked must be given up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// How long one write may block.
    pub(crate) write_timeout: Duration,
    /// And never past this (the session's own deadline).
    pub(crate) at_most: Instant,
}

impl Deadline {
    /// A fixed instant.
    fn fixed(at: Instant) -> Deadline {
        Deadline {
            write_timeout: Duration::MAX,
            at_most: at,
        }
    }

    /// The deadline of a write found blocked at `now`.
    fn at(self, now: Instant) -> Instant {
        now.checked_add(self.write_timeout)
            .map_or(self.at_most, |by| by.min(self.at_most))
    }
}

/// How long a slow consumer's last write may take before its connection is
/// abandoned.
const SLOW_CONSUMER_GRACE: Duration = Duration::from_secs(1);
/// Batches larger than this give their buffers back after being written.
const KEEP_CAPACITY: usize = 64;

/// The write side of one connection: what it writes to its link with.
pub(crate) struct WriteSide {
    /// Kept between writes while the session is busy, given back when it
    /// parks (boxed: an idle session's task is smaller by their size).
    buffers: Option<Box<Buffers>>,
    /// The session's place in its inbox, once it has one (in line: every
    /// idle session has one).
    cursor: Option<Cursor>,
}

/// What a write is assembled in, and whether writing failed (kept here,
/// not beside them: a connection whose write failed closes, and every idle
/// one would carry the flag).
#[derive(Default)]
struct Buffers {
    batch: VecDeque<Queued>,
    frames: Vec<Frame>,
    /// A write failed or was abandoned halfway: nothing more may be written.
    broken: bool,
}

impl WriteSide {
    pub(crate) fn new() -> WriteSide {
        WriteSide {
            buffers: None,
            cursor: None,
        }
    }

    /// Gives back the buffers kept between writes: the session went quiet.
    pub(crate) fn shrink(&mut self) {
        // A broken write side keeps saying so (it never parks: its session
        // closes).
        if !self.is_broken() {
            self.buffers = None;
        }
    }

    /// Whether a write failed or was abandoned halfway: nothing more may
    /// be written.
    fn is_broken(&self) -> bool {
        self.buffers.as_ref().is_some_and(|buffers| buffers.broken)
    }

    /// From now on, deliveries follow the session's place in its inbox.
    pub(crate) fn follow(&mut self, cursor: Cursor) {
        self.cursor = Some(cursor);
    }

    /// Writes everything queued now (with `control_reply`, also when
    /// nothing is: the transport has a reply of its own to flush), inbox
    /// entries in order, gaps filled from the store of `inbox` (the
    /// router, and whose inbox: once the session has one). Returns whether
    /// the connection is still usable: a write still blocked at `deadline`
    /// means a client that does not read, closed as a slow consumer; an
    /// inbox that cannot be read closes the session.
    pub(crate) async fn flush<R: Router>(
        &mut self,
        link: &mut Link,
        outbox: &Outbox,
        metrics: &Metrics,
        deadline: Deadline,
        control_reply: bool,
        inbox: Option<(&R, &SessionInfo)>,
    ) -> bool {
        let Buffers { batch, frames, .. } = self.buffers.get_or_insert_with(Box::default).as_mut();
        outbox.take(batch);
        if batch.is_empty() && !control_reply {
            return true;
        }
        let mut usable = true;
        if let (Some(cursor), Some((router, info))) = (&mut self.cursor, inbox) {
            let store = Store {
                router,
                outbox,
                user: &info.user,
                session: info.id,
            };
            match cursor.order(batch, frames, &store).await {
                Ok(0) => {}
                Ok(filled) => metrics.inbox_filled.increment(filled as u64),
                Err(e) => {
                    // What is ordered so far still goes out, then the A999.
                    outbox.close(Close::new(CloseCode::Internal, e.to_string()));
                    usable = false;
                }
            }
        }
        self.write_batch(link, None, outbox, metrics, deadline).await && usable
    }

    /// The goodbye: what is still queued, the `A999`, and the transport
    /// close (a WebSocket close with the same code).
    pub(crate) async fn finish(
        &mut self,
        link: &mut Link,
        outbox: &Outbox,
        close: &Close,
        metrics: &Metrics,
        grace: Duration,
    ) {
        let grace = if close.is_slow_consumer() {
            SLOW_CONSUMER_GRACE
        } else {
            grace
        };
        if !self.is_broken() {
            outbox.take(&mut self.buffers.get_or_insert_with(Box::default).batch);
            let deadline = Deadline::fixed(Instant::now() + grace);
            self.write_batch(link, Some(close), outbox, metrics, deadline)
                .await;
        }
        let _ = timeout(grace, link.close(close.code.as_u16(), &close.reason)).await;
    }

    async fn write_batch(
        &mut self,
        link: &mut Link,
        close: Option<&Close>,
        outbox: &Outbox,
        metrics: &Metrics,
        deadline: Deadline,
    ) -> bool {
        let Buffers {
            batch,
            frames,
            broken,
        } = self.buffers.get_or_insert_with(Box::default).as_mut();
        match &mut self.cursor {
            // Closing: what is in order goes out; the rest the client gets
            // from its inbox when it comes back.
            Some(cursor) => cursor.order_now(batch, frames),
            None => frames.extend(batch.drain(..).filter_map(|item| match item {
                Queued::Reply(frame) => Some(frame),
                Queued::Push { cmd, body, offset } => Some(Frame {
                    cmd,
                    seq: offset,
                    body,
                }),
                Queued::Skip { .. } | Queued::Resync => None,
            })),
        }
        if let Some(close) = close {
            let body = Status::new(close.code.as_u16(), close.reason.to_string()).to_vec();
            frames.push(Frame::new(Command::ServerClose, 0, body));
        }
        let bytes: usize = frames.iter().map(Frame::encoded_len).sum();
        let written = write_within(link, frames, outbox, deadline).await;
        if written {
            metrics.frames_out.increment(frames.len() as u64);
            metrics.bytes_out.increment(bytes as u64);
        } else {
            *broken = true;
        }
        frames.clear();
        if frames.capacity() > KEEP_CAPACITY {
            *frames = Vec::new();
        }
        if batch.capacity() > KEEP_CAPACITY {
            *batch = VecDeque::new();
        }
        written
    }
}

/// Writes `frames` by `deadline`. A write still blocked at the deadline
/// closes the session as a slow consumer: its socket does not drain. Should
/// the session start closing meanwhile (a stalled client overflowing its
/// queue, a kick, a shutdown), a slow consumer's write gets at most
/// [`SLOW_CONSUMER_GRACE`]. Returns whether everything was written.
async fn write_within(link: &mut Link, frames: &[Frame], outbox: &Outbox, deadline: Deadline) -> bool {
    let write = link.write_frames(frames);
    tokio::pin!(write);
    // Most writes complete at once: they need no clock and no timer.
    if let Some(result) = at_once(write.as_mut()).await {
        return result.is_ok();
    }
    // Boxed: the timers of a blocked write would otherwise be part of every
    // session's task, idle or not, though few sessions ever wait here.
    Box::pin(wait_blocked(write, outbox, deadline.at(Instant::now()))).await
}

/// The rest of [`write_within`] for a write that did not complete at once.
async fn wait_blocked(
    mut write: Pin<&mut impl Future<Output = Result<(), jim_transport::TransportError>>>,
    outbox: &Outbox,
    deadline: Instant,
) -> bool {
    tokio::select! {
        result = &mut write => return result.is_ok(),
        () = outbox.closed() => {}
        () = tokio::time::sleep_until(deadline) => {
            outbox.close(Close::new(CloseCode::Policy, Close::SLOW_CONSUMER));
            return false;
        }
    }
    let deadline = if outbox.close_reason().is_some_and(|c| c.is_slow_consumer()) {
        deadline.min(Instant::now() + SLOW_CONSUMER_GRACE)
    } else {
        deadline
    };
    matches!(tokio::time::timeout_at(deadline, write).await, Ok(Ok(())))
}
