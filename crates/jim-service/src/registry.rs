//! A Prometheus registry of one's own.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio_util::sync::CancellationToken;

/// How often [`Registry::keep_up`] drains histograms by default (the
/// exporter's own upkeep period).
pub const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// Counters and gauges registered once (updating one is an atomic add),
/// rendered as Prometheus text.
pub struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Registry { recorder, handle }
    }

    fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
        let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, v.clone())).collect();
        Key::from_parts(name, labels)
    }

    fn metadata() -> Metadata<'static> {
        Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
    }

    /// A counter `name{labels}`, described by `help`.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, String)],
    ) -> Counter {
        self.recorder.describe_counter(name.into(), None, help.into());
        self.recorder
            .register_counter(&Self::key(name, labels), &Self::metadata())
    }

    /// `name{outcome="ok"}` and `name{outcome="error"}`: how often a
    /// recurring task (a reload, a fetch) worked and failed.
    pub fn outcomes(&self, name: &'static str, help: &'static str) -> Outcomes {
        Outcomes {
            ok: self.counter(name, help, &[("outcome", "ok".to_owned())]),
            failed: self.counter(name, help, &[("outcome", "error".to_owned())]),
        }
    }

    /// A counter of bytes.
    pub fn bytes(&self, name: &'static str, help: &'static str) -> Counter {
        self.recorder
            .describe_counter(name.into(), Some(Unit::Bytes), help.into());
        self.recorder
            .register_counter(&Self::key(name, &[]), &Self::metadata())
    }

    /// A gauge.
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.recorder.describe_gauge(name.into(), None, help.into());
        self.recorder
            .register_gauge(&Self::key(name, &[]), &Self::metadata())
    }

    /// A histogram of seconds (rendered as a summary of quantiles).
    pub fn histogram(&self, name: &'static str, help: &'static str) -> Histogram {
        self.recorder
            .describe_histogram(name.into(), Some(Unit::Seconds), help.into());
        self.recorder
            .register_histogram(&Self::key(name, &[]), &Self::metadata())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds the samples histograms recorded since into their summaries.
    ///
    /// A sample waits, a few bytes of memory, until this or a
    /// [`render`](Self::render) takes it: with nobody scraping, a histogram
    /// on a busy path grows without end. [`keep_up`](Self::keep_up) calls
    /// it periodically.
    ///
    /// ```
    /// let registry = jim_service::Registry::new();
    /// let took = registry.histogram("jim_example_seconds", "How long it took");
    /// took.record(0.25);
    /// registry.upkeep();
    /// assert!(registry.render().contains("jim_example_seconds_count 1"));
    /// ```
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`upkeep`](Self::upkeep) every `period` until `stop`.
    pub async fn keep_up(&self, period: Duration, stop: &CancellationToken) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => self.upkeep(),
            }
        }
    }
}

/// How often something recurring worked, and failed. The default counts
/// nowhere.
#[derive(Clone)]
pub struct Outcomes {
    /// It worked.
    pub ok: Counter,
    /// It failed.
    pub failed: Counter,
}

impl std::fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcomes").finish_non_exhaustive()
    }
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            ok: Counter::noop(),
            failed: Counter::noop(),
        }
    }
}

impl Outcomes {
    /// Counts `result`'s outcome.
    pub fn count<T, E>(&self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.ok.increment(1),
            Err(_) => self.failed.increment(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process's resident memory, from `/proc/self/statm`.
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// Two million samples nobody scrapes hold ~16 MB until a render; kept
    /// up, they hold none. (Before `upkeep`, a gateway nobody scraped kept
    /// every inbox append's sample: ~15 B a message, without end.)
    #[test]
    fn a_histogram_kept_up_stays_bounded_though_nobody_scrapes() {
        let registry = Registry::new();
        let took = registry.histogram("jim_test_seconds", "A test");
        for _ in 0..100_000 {
            took.record(0.001);
        }
        registry.upkeep();
        let before = resident_bytes();
        for _ in 0..20 {
            for _ in 0..100_000 {
                took.record(0.001);
            }
            registry.upkeep();
        }
        let grew = resident_bytes().saturating_sub(before);
        assert!(grew < 4 << 20, "grew {grew} B for 2,000,000 samples");
        assert!(registry.render().contains("jim_test_seconds_count 2100000"));
    }
}
