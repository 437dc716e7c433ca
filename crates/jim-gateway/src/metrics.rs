//! Prometheus metrics of one gateway.
//!
//! Each gateway owns its recorder (no global state), so several gateways
//! can run in one process (tests, embedding). Handles are registered once;
//! updating one is an atomic add.

use jim_model::{ErrorCode, MessageKind};
use jim_protocol::Command;
use jim_service::Registry;
use metrics::{Counter, Gauge};

const ERROR_CODES: [ErrorCode; 6] = [
    ErrorCode::BadRequest,
    ErrorCode::NotAuthenticated,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
];
const ROUTED_CMDS: [Command; 3] = [Command::C2C, Command::C2G, Command::S2C];

/// Why a session ended, as counted by `jim_session_closes_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent `A998` or disconnected.
    Client,
    /// Authentication timed out or failed.
    Auth,
    /// Nothing received within the idle timeout.
    Idle,
    /// Kicked through the admin API or the router.
    Kicked,
    /// Its outbound queue overflowed.
    SlowConsumer,
    /// A protocol violation (bad magic, oversized frame, bad WebSocket message).
    Protocol,
    /// The gateway shut down.
    Shutdown,
    /// The connection failed.
    Error,
}

impl CloseReason {
    const ALL: [CloseReason; 8] = [
        CloseReason::Client,
        CloseReason::Auth,
        CloseReason::Idle,
        CloseReason::Kicked,
        CloseReason::SlowConsumer,
        CloseReason::Protocol,
        CloseReason::Shutdown,
        CloseReason::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Auth => "auth",
            CloseReason::Idle => "idle",
            CloseReason::Kicked => "kicked",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Protocol => "protocol",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Error => "error",
        }
    }
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    hooks: jim_hooks::HooksMetrics,
    /// Open client connections.
    pub connections: Gauge,
    /// Client connections accepted.
    pub connections_accepted: Counter,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused: [Counter; 3],
    /// Authenticated sessions.
    pub sessions: Gauge,
    /// Connections parked: quiet, holding only what waits.
    pub parked: Gauge,
    /// Frames received.
    pub frames_in: Counter,
    /// Frames sent.
    pub frames_out: Counter,
    /// Bytes received (frames, header included).
    pub bytes_in: Counter,
    /// Bytes sent.
    pub bytes_out: Counter,
    /// Failed authentications.
    pub auth_failures: Counter,
    /// TLS handshakes that failed or took too long.
    pub tls_handshake_failures: Counter,
    /// Sessions refused at `limits.sessions_per_user` (`refuse_new`).
    pub sessions_refused: Counter,
    /// Sessions closed to make room for a newer one of their user
    /// (`kick_oldest`).
    pub sessions_kicked: Counter,
    /// Messages refused at a fan-out budget: a user's, the gateway's.
    pub fanout_refused: [Counter; 2],
    /// Recipients of the messages routed (a group message counts its
    /// members): what the budgets are charged.
    pub fanout_recipients: Counter,
    /// Receipts (acks with a `status`) taken.
    pub receipts: Counter,
    /// Typings (`B104`) relayed.
    pub typing_relayed: Counter,
    /// Typings dropped: another of the same user and conversation was
    /// relayed less than 2 s before.
    pub typing_dropped: Counter,
    /// Certificate reloads, done and refused.
    pub tls_reloads: jim_service::Outcomes,
    /// JWKS reads, done and failed.
    pub jwks_reads: jim_service::Outcomes,
    /// Sessions closed as slow consumers.
    pub slow_consumer_closes: Counter,
    /// Sessions that resumed from an inbox position (`since`).
    pub inbox_replays: Counter,
    /// Inbox entries sent from the store (replays and filled gaps) rather
    /// than live.
    pub inbox_filled: Counter,
    /// Live tasks of the runtime (set when rendering): leak detection.
    pub tasks: Gauge,
    routed: Vec<Counter>,
    errors: Vec<Counter>,
    closes: Vec<Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics with its own recorder.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;

        let routed = ROUTED_CMDS
            .iter()
            .flat_map(|cmd| {
                MessageKind::ALL.iter().map(move |kind| {
                    r.counter(
                        "jim_messages_routed_total",
                        "Messages accepted and routed, by command and type",
                        &[("cmd", cmd.to_string()), ("type", kind.as_str().to_owned())],
                    )
                })
            })
            .collect();
        let errors = ERROR_CODES
            .iter()
            .map(|code| {
                r.counter(
                    "jim_errors_total",
                    "Error replies sent, by code",
                    &[("code", code.as_u16().to_string())],
                )
            })
            .collect();
        let closes = CloseReason::ALL
            .iter()
            .map(|reason| {
                r.counter(
                    "jim_session_closes_total",
                    "Connections ended, by reason",
                    &[("reason", reason.label().to_owned())],
                )
            })
            .collect();

        Metrics {
            connections: r.gauge("jim_connections", "Open client connections"),
            connections_accepted: r.counter(
                "jim_connections_accepted_total",
                "Client connections accepted",
                &[],
            ),
            connections_refused: ["max_connections", "address_connections", "address_rate"].map(|reason| {
                r.counter(
                    "jim_connections_refused_total",
                    "Connections refused, by the limit they met",
                    &[("reason", reason.to_owned())],
                )
            }),
            sessions: r.gauge("jim_sessions", "Authenticated sessions"),
            parked: r.gauge(
                "jim_connections_parked",
                "Connections with nothing to do, parked (holding no buffers)",
            ),
            frames_in: r.counter("jim_frames_in_total", "Frames received", &[]),
            frames_out: r.counter("jim_frames_out_total", "Frames sent", &[]),
            bytes_in: r.bytes("jim_bytes_in_total", "Bytes received"),
            bytes_out: r.bytes("jim_bytes_out_total", "Bytes sent"),
            auth_failures: r.counter("jim_auth_failures_total", "Failed authentications", &[]),
            tls_reloads: r.outcomes(
                "jim_tls_reloads_total",
                "Certificate reloads: done (ok), or refused and the one in use kept (error)",
            ),
            jwks_reads: r.outcomes(
                "jim_jwks_reads_total",
                "JWKS reads: done (ok), or failed and the keys read before kept (error)",
            ),
            sessions_refused: r.counter(
                "jim_sessions_refused_total",
                "Sessions refused, by the limit they met",
                &[("reason", "sessions_per_user".to_owned())],
            ),
            fanout_refused: ["user", "gateway"].map(|scope| {
                r.counter(
                    "jim_fanout_refused_total",
                    "Messages refused (4029) at a fan-out budget: limits.fanout_per_sec (user) or limits.gateway_fanout_per_sec (gateway)",
                    &[("scope", scope.to_owned())],
                )
            }),
            fanout_recipients: r.counter(
                "jim_fanout_recipients_total",
                "Recipients of the messages routed (a group message counts its members)",
                &[],
            ),
            receipts: r.counter(
                "jim_receipts_total",
                "Receipts (B101 acks with a status: read or delivered marks) taken",
                &[],
            ),
            typing_relayed: r.counter(
                "jim_typing_total",
                "Typings (B104): relayed, or dropped (one per user and conversation every 2 s)",
                &[("outcome", "relayed".to_owned())],
            ),
            typing_dropped: r.counter(
                "jim_typing_total",
                "Typings (B104): relayed, or dropped (one per user and conversation every 2 s)",
                &[("outcome", "dropped".to_owned())],
            ),
            sessions_kicked: r.counter(
                "jim_sessions_kicked_total",
                "Sessions closed to make room for a newer one of their user (limits.sessions_per_user)",
                &[("reason", "sessions_per_user".to_owned())],
            ),
            tls_handshake_failures: r.counter(
                "jim_tls_handshake_failures_total",
                "TLS handshakes that failed or took longer than session.handshake_timeout_ms",
                &[],
            ),
            slow_consumer_closes: r.counter(
                "jim_slow_consumer_closes_total",
                "Sessions closed because their outbound queue overflowed",
                &[],
            ),
            inbox_replays: r.counter(
                "jim_inbox_replays_total",
                "Sessions that resumed from an inbox position (since)",
                &[],
            ),
            inbox_filled: r.counter(
                "jim_inbox_replayed_entries_total",
                "Inbox entries sent from the store (replays and filled gaps)",
                &[],
            ),
            tasks: r.gauge("jim_runtime_tasks", "Live tasks of the async runtime"),
            routed,
            errors,
            closes,
            hooks: jim_hooks::HooksMetrics::register(&registry),
            registry,
        }
    }

    /// Counts a routed message.
    pub fn routed(&self, cmd: Command, kind: MessageKind) {
        let cmd_index = ROUTED_CMDS.iter().position(|c| *c == cmd);
        let kind_index = MessageKind::ALL.iter().position(|k| *k == kind);
        if let (Some(c), Some(k)) = (cmd_index, kind_index) {
            self.routed[c * MessageKind::ALL.len() + k].increment(1);
        }
    }

    /// Counts an error reply.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
            self.errors[i].increment(1);
        }
    }

    /// Counts an ended connection.
    pub fn closed(&self, reason: CloseReason) {
        if let Some(i) = CloseReason::ALL.iter().position(|r| *r == reason) {
            self.closes[i].increment(1);
        }
        if reason == CloseReason::SlowConsumer {
            self.slow_consumer_closes.increment(1);
        }
    }

    /// The hooks' and events' metrics, in this gateway's registry
    /// (registered whether or not hooks are on: the dashboard charts them).
    pub fn hooks(&self) -> jim_hooks::HooksMetrics {
        self.hooks.clone()
    }

    /// The inbox store's metrics, in this gateway's registry.
    pub fn inbox(&self) -> jim_router::inbox::InboxMetrics {
        let r = &self.registry;
        jim_router::inbox::InboxMetrics::register(
            |name, help| r.counter(name, help, &[]),
            |name, help| r.histogram(name, help),
        )
    }

    /// Folds histogram samples into their summaries every
    /// [`jim_service::UPKEEP_PERIOD`] until `stop`: they wait for a scrape
    /// otherwise, and with nobody scraping they pile up without end. A
    /// started gateway runs it.
    pub async fn keep_up(&self, stop: &tokio_util::sync::CancellationToken) {
        self.registry.keep_up(jim_service::UPKEEP_PERIOD, stop).await;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.set(runtime.metrics().num_alive_tasks() as f64);
        }
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.frames_in.increment(3);
        metrics.routed(Command::C2G, MessageKind::Image);
        metrics.error(ErrorCode::RateLimited);
        metrics.closed(CloseReason::SlowConsumer);
        metrics.sessions.set(2.0);
        let text = metrics.render();
        for expected in [
            "jim_frames_in_total 3",
            "jim_messages_routed_total{cmd=\"B102\",type=\"image\"} 1",
            "jim_errors_total{code=\"4029\"} 1",
            "jim_session_closes_total{reason=\"slow_consumer\"} 1",
            "jim_slow_consumer_closes_total 1",
            "jim_sessions 2",
            "# HELP jim_frames_in_total Frames received",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
