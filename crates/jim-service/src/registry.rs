//! A Prometheus registry of one's own.

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

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
