//! A session's writer: drains its outbox into the connection in batches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use jim_model::Status;
use jim_protocol::{Command, Frame};
use jim_router::{Outbound, Outbox, Router};
use jim_transport::FrameWriter;
use tokio::time::timeout;

use crate::server::Shared;

/// How long a slow consumer's last write may take before its connection is
/// abandoned.
const SLOW_CONSUMER_GRACE: Duration = Duration::from_secs(1);
/// Batches larger than this give their buffers back after being written.
const KEEP_CAPACITY: usize = 64;

/// Writes everything the outbox gets, numbering server-started frames,
/// until the session closes; then the `A999` and the transport close.
pub(crate) async fn run<R: Router>(mut writer: FrameWriter, outbox: Arc<Outbox>, shared: Arc<Shared<R>>) {
    let metrics = &shared.metrics;
    let mut batch = VecDeque::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut pushed: u32 = 0;
    loop {
        let close = outbox.next_batch(&mut batch).await;
        frames.extend(batch.drain(..).map(|item| match item {
            Outbound::Reply(frame) => frame,
            Outbound::Push { cmd, body } => {
                pushed = pushed.wrapping_add(1);
                Frame {
                    cmd,
                    seq: pushed,
                    body,
                }
            }
        }));
        let grace = match &close {
            Some(close) if close.is_slow_consumer() => SLOW_CONSUMER_GRACE,
            _ => shared.config.session.shutdown_grace(),
        };
        if let Some(close) = &close {
            let body = Status::new(close.code.as_u16(), close.reason.to_string()).to_vec();
            frames.push(Frame::new(Command::ServerClose, 0, body));
        }
        if !frames.is_empty() {
            let bytes: usize = frames.iter().map(Frame::encoded_len).sum();
            if !write_within(&mut writer, &frames, &outbox, grace).await {
                // The client is gone or stalled: nothing more can be written.
                outbox.close(jim_router::Close::new(
                    jim_model::CloseCode::Internal,
                    "connection lost",
                ));
                return;
            }
            metrics.frames_out.increment(frames.len() as u64);
            metrics.bytes_out.increment(bytes as u64);
            frames.clear();
            if frames.capacity() > KEEP_CAPACITY {
                frames = Vec::new();
            }
            if batch.capacity() > KEEP_CAPACITY {
                batch = VecDeque::new();
            }
        }
        if let Some(close) = close {
            let _ = timeout(grace, writer.close(close.code.as_u16(), &close.reason)).await;
            return;
        }
    }
}

/// Writes `frames`. Should the session start closing meanwhile (a stalled
/// client overflowing its queue, a kick, a shutdown), the write gets `grace`
/// more to finish. Returns whether everything was written.
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
