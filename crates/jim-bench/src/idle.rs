//! The `idle` and `connect` workloads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::conn::{self, Conn, Target, Transport};
use crate::report::{Connections, Latency, Report, ServerUse};
use crate::{BenchError, server};

/// Connections to open.
#[derive(Debug, Clone)]
pub struct Connecting {
    /// Where the gateway is.
    pub target: Target,
    /// TCP or WebSocket.
    pub transport: Transport,
    /// How many connections.
    pub count: usize,
    /// How many connect at once.
    pub concurrency: usize,
    /// Prefix of the user ids.
    pub run_id: String,
    /// The gateway's process id.
    pub server_pid: Option<u32>,
    /// Print progress to stderr.
    pub progress: bool,
}

impl Connecting {
    /// Opens and authenticates every connection; returns them with the
    /// latency histogram (µs) and the failure count.
    async fn open(&self) -> (Vec<Conn>, Histogram<u64>, u64, Duration) {
        let gate = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        for i in 0..self.count {
            let (gate, target, transport) = (Arc::clone(&gate), self.target.clone(), self.transport);
            let user = format!("{}-c{i}", self.run_id);
            tasks.spawn(async move {
                let _permit = gate.acquire().await;
                let start = Instant::now();
                let mut conn = conn::connect(&target, transport, i, false).await?;
                conn::authenticate(&mut conn, &user).await?;
                Ok::<_, BenchError>((conn, start.elapsed()))
            });
        }
        let mut conns = Vec::with_capacity(self.count);
        let mut latency = Histogram::<u64>::new(3).expect("a valid histogram");
        let mut failed = 0;
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok((conn, took))) => {
                    let _ = latency.record((took.as_micros() as u64).max(1));
                    conns.push(conn);
                    if self.progress && conns.len() % 1000 == 0 {
                        eprintln!("  {} connected", conns.len());
                    }
                }
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        if let Some(error) = first_error {
            eprintln!("  {failed} connections failed; the first: {error}");
        }
        (conns, latency, failed, started.elapsed())
    }

    /// `connect`: opens every connection as fast as `concurrency` allows,
    /// then closes them.
    ///
    /// # Errors
    /// The server's process could not be read.
    pub async fn connect_rate(self) -> Result<Report, BenchError> {
        self.measure("connect", None).await
    }

    /// `idle`: opens every connection, holds them for `hold`, and measures
    /// the gateway's memory per connection.
    ///
    /// # Errors
    /// The server's process could not be read.
    pub async fn idle(self, hold: Duration) -> Result<Report, BenchError> {
        self.measure("idle", Some(hold)).await
    }

    /// Opens every connection, holds them for `hold` if given, and reports
    /// the connect rate and the server's use per connection. The report's
    /// seconds are the hold's, or without one the opening's.
    async fn measure(self, workload: &str, hold: Option<Duration>) -> Result<Report, BenchError> {
        let before = self.server_pid.map(server::sample).transpose()?;
        let (conns, latency, failed, took) = self.open().await;
        let established = conns.len() as u64;
        if let Some(hold) = hold {
            tokio::time::sleep(hold).await;
        }
        let after = self.server_pid.map(server::sample).transpose()?;
        drop(conns);
        Ok(Report {
            workload: workload.into(),
            transport: self.transport,
            clients: self.count,
            group_size: None,
            window: None,
            rate: None,
            seconds: hold.unwrap_or(took).as_secs_f64(),
            throughput: 0.0,
            counts: None,
            latency: Some(Latency::from_histogram(&latency)),
            send_lag: None,
            server: match (before, after) {
                (Some(b), Some(a)) => Some(ServerUse::between(&b, &a, 0, Some(established))),
                _ => None,
            },
            connections: Some(Connections {
                established,
                failed,
                per_second: established as f64 / took.as_secs_f64().max(1e-9),
            }),
            replay: None,
            flood: None,
            history: None,
        })
    }
}
