//! What hooks and events count (`jim_hook_*`, `jim_events_*`).

use jim_service::Registry;
use metrics::{Counter, Gauge, Histogram};

/// The hooks' metrics, registered in a registry of the caller's (each
/// gateway or router has its own). [`Default`] counts nothing.
#[derive(Debug, Clone)]
pub struct HooksMetrics {
    /// How long the before-send hook took to answer, in seconds.
    pub hook_seconds: Histogram,
    /// The hook's verdicts: allow, deny, replace.
    pub verdicts: [Counter; 3],
    /// Calls that failed: timeout, error (connection, HTTP status),
    /// garbage (an answer outside the contract), and messages decided
    /// without a call while the breaker was open.
    pub failures: [Counter; 4],
    /// The breaker: 0 closed, 1 open, 2 half open (one call trying).
    pub breaker: Gauge,
    /// Events the receiver took.
    pub events_sent: Counter,
    /// Events sent again after a failed attempt.
    pub events_retried: Counter,
    /// Events dropped: the queue was full; the retry window passed.
    pub events_dropped: [Counter; 2],
    /// Events waiting.
    pub events_queued: Gauge,
}

impl HooksMetrics {
    /// Registers every metric in `registry`.
    pub fn register(registry: &Registry) -> HooksMetrics {
        let verdict = |v: &str| {
            registry.counter(
                "jim_hook_verdicts_total",
                "Before-send hook verdicts",
                &[("verdict", v.to_owned())],
            )
        };
        let failure = |r: &str| {
            registry.counter(
                "jim_hook_failures_total",
                "Before-send hook calls that failed (and messages decided by hooks.before_send_on_error while the breaker was open)",
                &[("reason", r.to_owned())],
            )
        };
        let dropped = |r: &str| {
            registry.counter(
                "jim_events_dropped_total",
                "Events dropped: the queue was full, or hooks.retry_for_secs passed",
                &[("reason", r.to_owned())],
            )
        };
        HooksMetrics {
            hook_seconds: registry.histogram("jim_hook_seconds", "Time the before-send hook took to answer"),
            verdicts: [verdict("allow"), verdict("deny"), verdict("replace")],
            failures: [
                failure("timeout"),
                failure("error"),
                failure("garbage"),
                failure("breaker_open"),
            ],
            breaker: registry.gauge(
                "jim_hook_breaker_state",
                "The before-send hook's breaker: 0 closed, 1 open, 2 half open",
            ),
            events_sent: registry.counter("jim_events_sent_total", "Events the receiver took", &[]),
            events_retried: registry.counter(
                "jim_events_retried_total",
                "Events sent again after a failed attempt",
                &[],
            ),
            events_dropped: [dropped("queue_full"), dropped("expired")],
            events_queued: registry.gauge("jim_events_queued", "Events waiting to be sent"),
        }
    }
}

impl Default for HooksMetrics {
    fn default() -> HooksMetrics {
        HooksMetrics {
            hook_seconds: Histogram::noop(),
            verdicts: [Counter::noop(), Counter::noop(), Counter::noop()],
            failures: [Counter::noop(), Counter::noop(), Counter::noop(), Counter::noop()],
            breaker: Gauge::noop(),
            events_sent: Counter::noop(),
            events_retried: Counter::noop(),
            events_dropped: [Counter::noop(), Counter::noop()],
            events_queued: Gauge::noop(),
        }
    }
}
