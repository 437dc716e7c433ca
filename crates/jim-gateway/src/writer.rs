//! A connection's write side: what the session task writes from its outbox.
//!
//! There is no writer task: the session task flushes its outbox after
//! handling every frame it has buffered (so a batch of requests gets its
//! replies in one write), and whenever a router queues deliveries for it.

use std::collections::VecDeque;
use std::time::Duration;

use jim_model::Status;
use jim_protocol::{Command, Frame};
use jim_router::{Close, Outbound, Outbox};
use jim_transport::FrameWriter;
use tokio::time::timeout;

use crate::metrics::Metrics;

/// How long a slow consumer's last write may take before its connection is
/// abandoned.
const SLOW_CONSUMER_GRACE: Duration = Duration::from_secs(1);
/// Batches larger than this give their buffers back after being written.
const KEEP_CAPACITY: usize = 64;

/// The write side of one connection.
pub(crate) struct Out {
    writer: FrameWriter,
    batch: VecDeque<Outbound>,
    frames: Vec<Frame>,
    /// The `seq` of the last frame the server started on this connection.
    pushed: u32,
    /// A write failed or was abandoned halfway: nothing more may be written.
    broken: bool,
}

impl Out {
    pub(crate) fn new(writer: FrameWriter) -> Out {
        Out {
            writer,
            batch: VecDeque::new(),
            frames: Vec::new(),
            pushed: 0,
            broken: false,
        }
    }

    /// Writes everything queued now. Returns whether the connection is
    /// still usable.
    pub(crate) async fn flush(&mut self, outbox: &Outbox, metrics: &Metrics, grace: Duration) -> bool {
        outbox.take(&mut self.batch);
        self.write_batch(None, outbox, metrics, grace).await
    }

    /// The goodbye: what is still queued, the `A999`, and the transport
    /// close (a WebSocket close with the same code).
    pub(crate) async fn finish(
        &mut self,
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
        if !self.broken {
            outbox.take(&mut self.batch);
            self.write_batch(Some(close), outbox, metrics, grace).await;
        }
        let _ = timeout(grace, self.writer.close(close.code.as_u16(), &close.reason)).await;
    }

    async fn write_batch(
        &mut self,
        close: Option<&Close>,
        outbox: &Outbox,
        metrics: &Metrics,
        grace: Duration,
    ) -> bool {
        let pushed = &mut self.pushed;
        self.frames.extend(self.batch.drain(..).map(|item| match item {
            Outbound::Reply(frame) => frame,
            Outbound::Push { cmd, body } => {
                *pushed = pushed.wrapping_add(1);
                Frame {
                    cmd,
                    seq: *pushed,
                    body,
                }
            }
        }));
        if let Some(close) = close {
            let body = Status::new(close.code.as_u16(), close.reason.to_string()).to_vec();
            self.frames.push(Frame::new(Command::ServerClose, 0, body));
        }
        if self.frames.is_empty() {
            return true;
        }
        let bytes: usize = self.frames.iter().map(Frame::encoded_len).sum();
        let written = write_within(&mut self.writer, &self.frames, outbox, grace).await;
        if written {
            metrics.frames_out.increment(self.frames.len() as u64);
            metrics.bytes_out.increment(bytes as u64);
        } else {
            self.broken = true;
        }
        self.frames.clear();
        if self.frames.capacity() > KEEP_CAPACITY {
            self.frames = Vec::new();
        }
        if self.batch.capacity() > KEEP_CAPACITY {
            self.batch = VecDeque::new();
        }
        written
    }
}

/// Writes `frames`. Should the session start closing meanwhile (a stalled
/// client overflowing its queue, a kick, a shutdown), the write gets a grace
/// period to finish. Returns whether everything was written.
async fn write_within(writer: &mut FrameWriter, frames: &[Frame], outbox: &Outbox, grace: Duration) -> bool {
    let write = writer.write_frames(frames);
    tokio::pin!(write);
    tokio::select! {
        result = &mut write => return result.is_ok(),
        () = outbox.closed() => {}
    }
    let grace = if outbox.close_reason().is_some_and(|c| c.is_slow_consumer()) {
        grace.min(SLOW_CONSUMER_GRACE)
    } else {
        grace
    };
    matches!(timeout(grace, write).await, Ok(Ok(())))
}
