//! A flood beside a measured workload: one member sending to a large
//! group at a fixed rate, to see what it does to everyone else's latency
//! (the gateway's fan-out budgets and its stores' fairness).
//!
//! The group has the flooder and `group_size - 1` members who are not
//! connected: every message is an inbox entry for each of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jim_protocol::{Command, Frame};
use serde::Serialize;

use crate::BenchError;
use crate::conn::{self, Target, Transport};

/// The flood's settings.
#[derive(Debug, Clone)]
pub struct Flood {
    /// Members of the flooded group (the flooder among them).
    pub group_size: usize,
    /// Group messages per second the flooder sends.
    pub rate: f64,
    /// Prefix of its ids.
    pub run_id: String,
    /// The admin API and key, to make the group.
    pub admin: (String, Option<String>),
}

/// What the flood did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FloodCounts {
    /// Members of the group.
    pub group_size: usize,
    /// Messages sent.
    pub sent: u64,
    /// Acked (stored for every member).
    pub acked: u64,
    /// Refused with 4029 (a fan-out budget).
    pub refused: u64,
    /// Other errors.
    pub errors: u64,
}

/// A flood under way.
#[derive(Debug)]
pub struct Flooding {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<FloodCounts, BenchError>>,
}

impl Flood {
    /// Makes the group, connects the flooder and starts sending.
    ///
    /// # Errors
    /// The group or the connection could not be set up.
    pub async fn start(self, target: &Target, transport: Transport) -> Result<Flooding, BenchError> {
        if self.group_size < 2 || self.rate <= 0.0 {
            return Err(BenchError::Usage(
                "--flood-group-size must be at least 2 and --flood-rate positive".into(),
            ));
        }
        let flooder = format!("{}-flooder", self.run_id);
        let group = format!("{}-flooded", self.run_id);
        let mut members: Vec<String> = (1..self.group_size)
            .map(|i| format!("{}-m{i}", self.run_id))
            .collect();
        members.push(flooder.clone());
        let (admin, key) = self.admin.clone();
        let url = format!("{}/v1/groups/{group}/members", admin.trim_end_matches('/'));
        tokio::task::spawn_blocking(move || {
            let mut request = ureq::post(&url);
            if let Some(key) = &key {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            request
                .send_json(serde_json::json!({ "users": members }))
                .map(|_| ())
                .map_err(|e| BenchError::Gateway(format!("creating the flooded group: {e}")))
        })
        .await
        .map_err(|e| BenchError::Gateway(e.to_string()))??;
        let mut conn = conn::connect(target, transport, 0, false).await?;
        conn::authenticate(&mut conn, &flooder).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut reader = conn.reader;
        let reading = {
            let counts = Arc::clone(&counts);
            tokio::spawn(async move {
                while let Some(frame) = reader.next().await {
                    if frame.cmd != Command::C2G {
                        continue;
                    }
                    let body: serde_json::Value = serde_json::from_slice(&frame.body).unwrap_or_default();
                    let counter = match (body["type"].as_str(), body["data"]["code"].as_u64()) {
                        (Some("ack"), _) => &counts.acked,
                        (Some("error"), Some(4029)) => &counts.refused,
                        _ => &counts.errors,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let (stop_sending, group_size, rate) = (Arc::clone(&stop), self.group_size, self.rate);
        let mut writer = conn.writer;
        let task = tokio::spawn(async move {
            let body = serde_json::json!({"type": "text", "data": {"receiver_id": group, "content": "x".repeat(150)}})
                .to_string();
            let body = Bytes::from(body);
            let every = Duration::from_secs_f64(1.0 / rate);
            let start = Instant::now();
            let mut sent: u64 = 0;
            while !stop_sending.load(Ordering::Relaxed) {
                let due = start + every.mul_f64(sent as f64);
                tokio::time::sleep_until(due.into()).await;
                sent += 1;
                let seq = u32::try_from(sent % u64::from(u32::MAX)).unwrap_or(1).max(1);
                writer
                    .send(&[Frame::new(Command::C2G, seq, body.clone())])
                    .await?;
            }
            // Replies still on their way: a moment for them.
            let settle = Instant::now() + Duration::from_secs(5);
            while counts.answered() < sent && Instant::now() < settle {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            reading.abort();
            Ok(FloodCounts {
                group_size,
                sent,
                acked: counts.acked.load(Ordering::Relaxed),
                refused: counts.refused.load(Ordering::Relaxed),
                errors: counts.errors.load(Ordering::Relaxed),
            })
        });
        Ok(Flooding { stop, task })
    }
}

#[derive(Debug, Default)]
struct Counts {
    acked: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

impl Counts {
    fn answered(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
            + self.refused.load(Ordering::Relaxed)
            + self.errors.load(Ordering::Relaxed)
    }
}

impl Flooding {
    /// Stops sending; what it did.
    ///
    /// # Errors
    /// The flooder's connection failed.
    pub async fn finish(self) -> Result<FloodCounts, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.map_err(|e| BenchError::Gateway(e.to_string()))?
    }
}
