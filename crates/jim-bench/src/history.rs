//! The `history` workload (contract v1.2, `B105`): users whose inboxes
//! hold `conversations` conversations, one of them `entries` long, ask for
//! that conversation's newest page (`history`, `limit` = `entries`) and
//! for their conversation list, in turns, at `rate` requests a second in
//! all (an open loop). Reports each request's latency, from its scheduled
//! time to its reply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use jim_protocol::{Command, Frame};
use tokio::task::JoinSet;

use crate::conn::{self, Target, Transport};
use crate::report::{HistoryLatencies, Latency, Report, ServerUse};
use crate::{BenchError, server};

/// A `history` run.
#[derive(Debug, Clone)]
pub struct History {
    /// Where the gateway is.
    pub target: Target,
    /// TCP or WebSocket.
    pub transport: Transport,
    /// Users asking.
    pub users: usize,
    /// Conversations in each user's inbox.
    pub conversations: usize,
    /// Entries of the conversation asked for (also the page's `limit`).
    pub entries: usize,
    /// Requests a second, all users.
    pub rate: f64,
    /// Seconds of asking.
    pub duration: Duration,
    /// Prefix of the user ids.
    pub run_id: String,
    /// The gateway's process id.
    pub server_pid: Option<u32>,
    /// Print progress to stderr.
    pub progress: bool,
}

impl History {
    /// Fills the inboxes, then asks; reports both requests' latencies.
    ///
    /// # Errors
    /// [`BenchError`] if a connection cannot be made, or a request is refused.
    pub async fn run(self) -> Result<Report, BenchError> {
        let plan = Arc::new(self);
        plan.fill().await?;
        if plan.progress {
            eprintln!(
                "  {} users with {} conversations each (one of {} entries); asking",
                plan.users, plan.conversations, plan.entries
            );
        }
        let before = plan.server_pid.map(server::sample).transpose()?;
        let mut askers = JoinSet::new();
        let per_user = plan.rate / plan.users.max(1) as f64;
        for u in 0..plan.users.max(1) {
            let plan = Arc::clone(&plan);
            askers.spawn(async move { plan.ask(u, per_user).await });
        }
        let mut pages = Histogram::<u64>::new(3).expect("a valid histogram");
        let mut lists = Histogram::<u64>::new(3).expect("a valid histogram");
        while let Some(done) = askers.join_next().await {
            let (p, l) = done.map_err(|e| BenchError::Gateway(e.to_string()))??;
            pages.add(p).map_err(|e| BenchError::Gateway(e.to_string()))?;
            lists.add(l).map_err(|e| BenchError::Gateway(e.to_string()))?;
        }
        let after = plan.server_pid.map(server::sample).transpose()?;
        let requests = pages.len() + lists.len();
        let server = before
            .zip(after)
            .map(|(b, a)| ServerUse::between(&b, &a, requests, None));
        Ok(Report {
            workload: "history".to_owned(),
            transport: plan.transport,
            clients: plan.users,
            group_size: None,
            window: None,
            rate: Some(plan.rate),
            seconds: plan.duration.as_secs_f64(),
            throughput: requests as f64 / plan.duration.as_secs_f64(),
            counts: None,
            latency: None,
            send_lag: None,
            server,
            connections: None,
            replay: None,
            flood: None,
            history: Some(HistoryLatencies {
                page: Latency::from_histogram(&pages),
                list: Latency::from_histogram(&lists),
            }),
        })
    }

    /// Peer `p` writes to every user: one message, and for peer 0 the
    /// rest of the long conversation.
    async fn fill(&self) -> Result<(), BenchError> {
        let mut peers = JoinSet::new();
        for p in 0..self.conversations.max(1) {
            let (target, transport) = (self.target.clone(), self.transport);
            let (run_id, users) = (self.run_id.clone(), self.users.max(1));
            let each = if p == 0 { self.entries.max(1) } else { 1 };
            peers.spawn(async move {
                let mut conn = conn::connect(&target, transport, 100_000 + p, false).await?;
                conn::authenticate(&mut conn, &format!("{run_id}-p{p}")).await?;
                let mut frames = Vec::new();
                for u in 0..users {
                    for i in 0..each {
                        let seq = u32::try_from(frames.len() + 1).unwrap_or(u32::MAX);
                        let body = format!(
                            r#"{{"type":"text","data":{{"receiver_id":"{run_id}-u{u}","content":"message {i} of the conversation with a body of some length"}}}}"#
                        );
                        frames.push(Frame::new(Command::C2C, seq, Bytes::from(body)));
                    }
                }
                let expected = frames.len();
                for chunk in frames.chunks(64) {
                    conn.writer.send(chunk).await?;
                    let mut acked = 0;
                    while acked < chunk.len() {
                        let frame = conn
                            .reader
                            .next()
                            .await
                            .ok_or_else(|| BenchError::Gateway("a filling connection closed".into()))?;
                        if frame.cmd == Command::C2C {
                            if !frame.body.starts_with(br#"{"type":"ack""#) {
                                return Err(BenchError::Gateway(format!(
                                    "a message was refused: {}",
                                    String::from_utf8_lossy(&frame.body)
                                )));
                            }
                            acked += 1;
                        }
                    }
                }
                Ok::<usize, BenchError>(expected)
            });
        }
        while let Some(done) = peers.join_next().await {
            done.map_err(|e| BenchError::Gateway(e.to_string()))??;
        }
        Ok(())
    }

    /// User `u` asks `per_second` times a second, history and list in
    /// turns; the latencies of each.
    async fn ask(&self, u: usize, per_second: f64) -> Result<(Histogram<u64>, Histogram<u64>), BenchError> {
        let mut conn = conn::connect(&self.target, self.transport, u, false).await?;
        conn::authenticate(&mut conn, &format!("{}-u{u}", self.run_id)).await?;
        let history = format!(
            r#"{{"op":"history","conversation":{{"user":"{}-p0"}},"limit":{}}}"#,
            self.run_id,
            self.entries.clamp(1, 100)
        );
        let list = format!(
            r#"{{"op":"conversations","limit":{}}}"#,
            self.conversations.clamp(1, 100)
        );
        let mut pages = Histogram::<u64>::new(3).expect("a valid histogram");
        let mut lists = Histogram::<u64>::new(3).expect("a valid histogram");
        let interval = Duration::from_secs_f64(1.0 / per_second.max(1e-3));
        // Users start spread over one interval, not all at once.
        let start = Instant::now() + interval.mul_f64(fastrand::f64());
        let end = start + self.duration;
        let mut scheduled: HashMap<u32, (Instant, bool)> = HashMap::new();
        let mut n: u32 = 0;
        loop {
            let due = start + interval * n;
            if due >= end && scheduled.is_empty() {
                break;
            }
            let next = if due < end { Some(due) } else { None };
            tokio::select! {
                () = tokio::time::sleep_until(next.unwrap_or(end + Duration::from_secs(3600)).into()), if next.is_some() => {
                    n += 1;
                    let is_page = n % 2 == 1;
                    let body = if is_page { &history } else { &list };
                    scheduled.insert(n, (due, is_page));
                    conn.writer.send(&[Frame::new(Command::History, n, Bytes::from(body.clone()))]).await?;
                }
                frame = conn.reader.next() => {
                    let frame = frame.ok_or_else(|| BenchError::Gateway("an asking connection closed".into()))?;
                    if frame.cmd != Command::History {
                        continue;
                    }
                    if frame.body.starts_with(br#"{"type":"error""#) {
                        return Err(BenchError::Gateway(format!("B105 refused: {}", String::from_utf8_lossy(&frame.body))));
                    }
                    if let Some((due, is_page)) = scheduled.remove(&frame.seq) {
                        let us = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                        let _ = if is_page { pages.record(us) } else { lists.record(us) };
                    }
                }
            }
        }
        Ok((pages, lists))
    }
}
