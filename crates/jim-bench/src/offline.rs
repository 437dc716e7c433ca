//! The `offline` workload: messages to recipients who are not connected,
//! stored in their inboxes, then replayed when they come back with `since`.
//!
//! Phase one measures how fast the gateway stores (acks are given only
//! once a message is in its recipient's inbox, and nobody is online to
//! deliver to). Phase two connects every recipient at once, from the start
//! of its inbox, and measures how fast the replays drain; it checks that
//! each recipient gets every message acked to it, once, with offsets 1, 2,
//! 3, ... in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jim_protocol::{Command, Frame};
use tokio::task::JoinSet;

use crate::conn::{self, Target, Transport};
use crate::report::{Counts, Replay, Report, ServerUse};
use crate::{BenchError, server};

/// An `offline` run.
#[derive(Debug, Clone)]
pub struct Offline {
    /// Where the gateways are.
    pub target: Target,
    /// TCP or WebSocket.
    pub transport: Transport,
    /// Sending clients.
    pub senders: usize,
    /// Recipients, offline while the messages are sent.
    pub recipients: usize,
    /// Messages in all.
    pub messages: usize,
    /// Unacknowledged messages per sender.
    pub window: usize,
    /// Bytes per message body.
    pub body_size: usize,
    /// How long the replays may take at most.
    pub drain: Duration,
    /// Prefix of the user ids.
    pub run_id: String,
    /// The gateway's process id.
    pub server_pid: Option<u32>,
    /// Print progress to stderr.
    pub progress: bool,
}

impl Offline {
    /// Sends, then replays; reports both rates and the checks.
    ///
    /// # Errors
    /// [`BenchError`] if a connection cannot be made.
    pub async fn run(self) -> Result<Report, BenchError> {
        let plan = Arc::new(self);
        let before = plan.server_pid.map(server::sample).transpose()?;
        let started = Instant::now();
        let mut senders = JoinSet::new();
        for s in 0..plan.senders.max(1) {
            let plan = Arc::clone(&plan);
            senders.spawn(async move { plan.send(s).await });
        }
        let mut acked_to = vec![0u64; plan.recipients.max(1)];
        let (mut sent, mut errors) = (0u64, 0u64);
        while let Some(done) = senders.join_next().await {
            let (acks, s_sent, s_errors) = done.map_err(|e| BenchError::Gateway(e.to_string()))??;
            for (recipient, count) in acks.into_iter().enumerate() {
                acked_to[recipient] += count;
            }
            sent += s_sent;
            errors += s_errors;
        }
        let store_elapsed = started.elapsed();
        let acked: u64 = acked_to.iter().sum();
        if plan.progress {
            eprintln!(
                "  stored {acked} in {:.2} s; replaying to {} recipients",
                store_elapsed.as_secs_f64(),
                plan.recipients
            );
        }

        let replay_started = Instant::now();
        let mut replays = JoinSet::new();
        for (r, expected) in acked_to.iter().copied().enumerate() {
            let plan = Arc::clone(&plan);
            replays.spawn(async move { plan.replay(r, expected).await });
        }
        let (mut delivered, mut duplicates, mut reordered) = (0u64, 0u64, 0u64);
        while let Some(done) = replays.join_next().await {
            let (got, dup, order) = done.map_err(|e| BenchError::Gateway(e.to_string()))??;
            delivered += got;
            duplicates += dup;
            reordered += order;
        }
        let replay_elapsed = replay_started.elapsed();
        let after = plan.server_pid.map(server::sample).transpose()?;
        let server = before
            .zip(after)
            .map(|(b, a)| ServerUse::between(&b, &a, acked, None));
        let counts = Counts {
            sent,
            acked,
            errors,
            delivered,
            expected: acked,
            lost: acked.saturating_sub(delivered),
            duplicates,
            reordered,
        };
        Ok(Report {
            workload: "offline".to_owned(),
            transport: plan.transport,
            clients: plan.senders,
            group_size: None,
            window: Some(plan.window),
            rate: None,
            seconds: store_elapsed.as_secs_f64(),
            throughput: delivered as f64 / replay_elapsed.as_secs_f64().max(1e-9),
            counts: Some(counts),
            latency: None,
            send_lag: None,
            server,
            connections: None,
            replay: Some(Replay {
                recipients: plan.recipients,
                stored_per_second: acked as f64 / store_elapsed.as_secs_f64().max(1e-9),
                replay_seconds: replay_elapsed.as_secs_f64(),
                replayed_per_second: delivered as f64 / replay_elapsed.as_secs_f64().max(1e-9),
            }),
            flood: None,
            history: None,
        })
    }

    /// Sender `s`: its share of the messages, round robin over the
    /// recipients, `window` in flight. Returns acks per recipient, sent,
    /// errors.
    async fn send(&self, s: usize) -> Result<(Vec<u64>, u64, u64), BenchError> {
        let senders = self.senders.max(1);
        let share = self.messages / senders + usize::from(s < self.messages % senders);
        let mut conn = conn::connect(&self.target, self.transport, s, false).await?;
        conn::authenticate(&mut conn, &format!("{}-s{s}", self.run_id)).await?;
        let body = "x".repeat(self.body_size);
        let recipients = self.recipients.max(1);
        let mut acks = vec![0u64; recipients];
        let mut to_of_seq = std::collections::HashMap::with_capacity(self.window);
        let (mut next, mut answered, mut errors) = (0usize, 0usize, 0u64);
        while answered < share {
            let mut batch = Vec::new();
            while next < share && next - answered < self.window.max(1) {
                let recipient = (s + next * senders) % recipients;
                let seq = u32::try_from(next + 1).unwrap_or(u32::MAX);
                let message = format!(
                    r#"{{"type":"text","data":{{"receiver_id":"{}-r{recipient}","content":"{body}"}}}}"#,
                    self.run_id
                );
                batch.push(Frame::new(Command::C2C, seq, Bytes::from(message)));
                to_of_seq.insert(seq, recipient);
                next += 1;
            }
            if !batch.is_empty() {
                conn.writer.send(&batch).await?;
            }
            let frame = conn
                .reader
                .next()
                .await
                .ok_or_else(|| BenchError::Gateway("a sender's connection closed".into()))?;
            if frame.cmd != Command::C2C {
                continue;
            }
            let Some(recipient) = to_of_seq.remove(&frame.seq) else {
                continue;
            };
            answered += 1;
            if frame.body.starts_with(br#"{"type":"ack""#) {
                acks[recipient] += 1;
            } else {
                errors += 1;
            }
        }
        Ok((acks, share as u64, errors))
    }

    /// Recipient `r` comes back from the start of its inbox and reads
    /// `expected` deliveries. Returns delivered, duplicates, out of order.
    async fn replay(&self, r: usize, expected: u64) -> Result<(u64, u64, u64), BenchError> {
        let index = self.senders + r;
        let mut conn = conn::connect(&self.target, self.transport, index, false).await?;
        let body = format!(
            r#"{{"token":"{}-r{r}","since":{{"epoch":"","offset":0}}}}"#,
            self.run_id
        );
        conn.writer
            .send(&[Frame::new(Command::Auth, 1, Bytes::from(body))])
            .await?;
        let (mut last, mut got, mut duplicates, mut reordered) = (0u32, 0u64, 0u64, 0u64);
        let deadline = tokio::time::Instant::now() + self.drain;
        while got < expected {
            let frame = match tokio::time::timeout_at(deadline, conn.reader.next()).await {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(_) => break,
            };
            match frame.cmd {
                Command::C2C => {
                    if frame.seq <= last {
                        duplicates += 1;
                    } else {
                        if frame.seq != last + 1 {
                            reordered += 1;
                        }
                        last = frame.seq;
                        got += 1;
                    }
                }
                Command::AuthFailed | Command::ServerClose => {
                    return Err(BenchError::Gateway(format!(
                        "recipient {r}: {}",
                        String::from_utf8_lossy(&frame.body)
                    )));
                }
                _ => {}
            }
        }
        Ok((got, duplicates, reordered))
    }
}
