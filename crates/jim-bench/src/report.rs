//! What a run measured, as a table or as JSON.

use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::conn::Transport;
use crate::server::Sample;

/// Messages counted by a messaging run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Sent by the clients.
    pub sent: u64,
    /// Acked by the gateway.
    pub acked: u64,
    /// Refused by the gateway (error replies).
    pub errors: u64,
    /// Deliveries received (duplicates excluded).
    pub delivered: u64,
    /// Deliveries that every ack promised.
    pub expected: u64,
    /// Promised deliveries that never arrived.
    pub lost: u64,
    /// Deliveries received twice.
    pub duplicates: u64,
    /// Deliveries out of their sender's order.
    pub reordered: u64,
}

impl Counts {
    /// Messages sent that got neither an ack nor an error.
    pub fn unanswered(&self) -> u64 {
        self.sent.saturating_sub(self.acked + self.errors)
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// What the gateway process used during the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServerUse {
    /// CPU seconds (user + system) during the measured span.
    pub cpu_seconds: f64,
    /// CPU microseconds per delivered message.
    pub cpu_us_per_message: Option<f64>,
    /// Resident memory at the end, in bytes.
    pub rss_bytes: u64,
    /// Resident memory added per connection (idle runs), in bytes.
    pub rss_bytes_per_connection: Option<f64>,
}

impl ServerUse {
    /// The use between two samples, per message and per connection.
    pub fn between(before: &Sample, after: &Sample, messages: u64, connections: Option<u64>) -> ServerUse {
        let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        ServerUse {
            cpu_seconds: cpu,
            cpu_us_per_message: (messages > 0).then(|| cpu * 1e6 / messages as f64),
            rss_bytes: after.rss,
            rss_bytes_per_connection: connections
                .filter(|n| *n > 0)
                .map(|n| after.rss.saturating_sub(before.rss) as f64 / n as f64),
        }
    }
}

/// Connections made by an `idle` or `connect` run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Connections {
    /// Connected and authenticated.
    pub established: u64,
    /// Failed to connect or authenticate.
    pub failed: u64,
    /// Connections per second (connect + authenticate).
    pub per_second: f64,
}

/// The two phases of an `offline` run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Replay {
    /// Recipients replayed to.
    pub recipients: usize,
    /// Messages acked (so stored) per second while nobody was online.
    pub stored_per_second: f64,
    /// From the first reconnect to the last entry received.
    pub replay_seconds: f64,
    /// Entries received per second, all recipients.
    pub replayed_per_second: f64,
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `c2c`, `c2g`, `idle` or `connect`.
    pub workload: String,
    /// The transport.
    pub transport: Transport,
    /// Clients (or connections).
    pub clients: usize,
    /// Group size (`c2g`).
    pub group_size: Option<usize>,
    /// Closed loop: messages in flight per sender.
    pub window: Option<usize>,
    /// Open loop: messages per second, all senders.
    pub rate: Option<f64>,
    /// Seconds of sending (or holding, or connecting).
    pub seconds: f64,
    /// Deliveries per second (messaging runs).
    pub throughput: f64,
    /// Message counts and checks (messaging runs).
    pub counts: Option<Counts>,
    /// Latency: from the scheduled send time (open loop) or the send time
    /// (closed loop) to delivery; or of connect + authenticate.
    pub latency: Option<Latency>,
    /// Open loop: how late the generator sent after each scheduled time
    /// (its own lag, not the gateway's; included in `latency`).
    pub send_lag: Option<Latency>,
    /// The gateway's CPU and memory, given its process id.
    pub server: Option<ServerUse>,
    /// Connection counts (`idle`, `connect`).
    pub connections: Option<Connections>,
    /// Storing and replaying (`offline`).
    pub replay: Option<Replay>,
    /// A flood run beside the workload (`--flood-group-size`).
    pub flood: Option<crate::flood::FloodCounts>,
    /// Latencies of the `history` workload's two requests.
    pub history: Option<HistoryLatencies>,
}

/// The `history` workload's latencies, from each request's scheduled time
/// to its reply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryLatencies {
    /// `history`: a page of one conversation.
    pub page: Latency,
    /// `conversations`: the list.
    pub list: Latency,
}

impl Report {
    /// Whether the run lost, duplicated or reordered anything, had errors,
    /// or sent messages that got no reply at all.
    pub fn is_clean(&self) -> bool {
        self.counts.is_none_or(|c| {
            c.lost == 0 && c.duplicates == 0 && c.reordered == 0 && c.errors == 0 && c.unanswered() == 0
        }) && self.connections.is_none_or(|c| c.failed == 0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: Vec<(&str, String)> = vec![
            ("workload", self.workload.clone()),
            ("transport", format!("{:?}", self.transport).to_lowercase()),
            ("clients", self.clients.to_string()),
        ];
        if let Some(g) = self.group_size {
            rows.push(("group size", g.to_string()));
        }
        if let Some(w) = self.window {
            rows.push(("mode", format!("closed loop, window {w}")));
        }
        if let Some(r) = self.rate {
            rows.push(("mode", format!("open loop, {r:.0} msg/s")));
        }
        rows.push(("seconds", format!("{:.1}", self.seconds)));
        if let Some(c) = &self.counts {
            rows.push(("throughput", format!("{:.0} deliveries/s", self.throughput)));
            rows.push(("sent / acked", format!("{} / {}", c.sent, c.acked)));
            rows.push(("delivered", format!("{} of {} expected", c.delivered, c.expected)));
            let verdict = if self.is_clean() { "none" } else { "YES" };
            rows.push((
                "loss/dup/order",
                format!(
                    "{verdict}: lost {}, duplicates {}, reordered {}, errors {}, unanswered {}",
                    c.lost,
                    c.duplicates,
                    c.reordered,
                    c.errors,
                    c.unanswered()
                ),
            ));
        }
        if let Some(r) = &self.replay {
            rows.push(("recipients", r.recipients.to_string()));
            rows.push(("stored", format!("{:.0} acked messages/s", r.stored_per_second)));
            rows.push((
                "replayed",
                format!(
                    "{:.0} entries/s ({:.2} s to drain)",
                    r.replayed_per_second, r.replay_seconds
                ),
            ));
        }
        if let Some(flood) = &self.flood {
            rows.push((
                "flood",
                format!(
                    "group of {}: {} sent, {} acked, {} refused (4029), {} other errors",
                    flood.group_size, flood.sent, flood.acked, flood.refused, flood.errors
                ),
            ));
        }
        if let Some(c) = &self.connections {
            rows.push((
                "connections",
                format!("{} established, {} failed", c.established, c.failed),
            ));
            rows.push(("connect rate", format!("{:.0}/s", c.per_second)));
        }
        if let Some(l) = &self.latency {
            rows.push((
                "latency",
                format!(
                    "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} samples)",
                    l.p50_us, l.p99_us, l.p999_us, l.max_us, l.count
                ),
            ));
        }
        if let Some(h) = &self.history {
            for (name, l) in [("history page", &h.page), ("conversations", &h.list)] {
                rows.push((
                    name,
                    format!(
                        "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} requests)",
                        l.p50_us, l.p99_us, l.p999_us, l.max_us, l.count
                    ),
                ));
            }
        }
        if let Some(l) = &self.send_lag {
            rows.push((
                "generator lag",
                format!("p50 {} µs, p99 {} µs, max {} µs", l.p50_us, l.p99_us, l.max_us),
            ));
        }
        if let Some(s) = &self.server {
            rows.push(("server cpu", format!("{:.2} s", s.cpu_seconds)));
            if let Some(per) = s.cpu_us_per_message {
                rows.push(("server cpu/msg", format!("{per:.2} µs per delivered message")));
            }
            rows.push(("server rss", format!("{:.1} MiB", s.rss_bytes as f64 / 1048576.0)));
            if let Some(per) = s.rss_bytes_per_connection {
                rows.push(("rss/connection", format!("{per:.0} bytes")));
            }
        }
        let width = rows.iter().map(|(_, v)| v.chars().count()).max().unwrap_or(0);
        let line = format!("+----------------+-{}-+", "-".repeat(width));
        writeln!(f, "{line}")?;
        for (name, value) in rows {
            writeln!(f, "| {name:<14} | {value:<width$} |")?;
        }
        write!(f, "{line}")
    }
}
