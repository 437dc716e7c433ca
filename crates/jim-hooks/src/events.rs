//! Events to the application (`hooks.events_url`): queued without
//! waiting, sent in batches, signed, retried with backoff and jitter for
//! `hooks.retry_for_secs`, then dropped and counted. The queue is bounded:
//! when it is full, new events are dropped and counted, so a dead receiver
//! costs at most `hooks.max_queued` events of memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::{HooksConfig, HooksMetrics, Secrets};

/// The longest wait between two attempts of a batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The sending end of the events: cheap to clone; queueing an event never
/// waits (a full queue drops it, counted).
#[derive(Debug, Clone)]
pub struct Events {
    shared: Arc<Shared>,
}

/// Where events are written besides the receiver (kafka mode's events
/// topic): type, key (the user, if any) and the event's JSON.
pub type Mirror = Box<dyn Fn(&str, &str, Bytes) + Send + Sync>;

struct Shared {
    queue: mpsc::Sender<Bytes>,
    mirror: std::sync::OnceLock<Mirror>,
    ids: EventIds,
    metrics: HooksMetrics,
    closing: AtomicBool,
    closed: Notify,
    wake: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("mirrored", &self.mirror.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Unique event ids: a random prefix per process and a counter.
#[derive(Debug)]
struct EventIds {
    prefix: String,
    next: AtomicU64,
}

impl EventIds {
    fn new() -> EventIds {
        EventIds {
            prefix: std::iter::repeat_with(fastrand::alphanumeric).take(12).collect(),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An event being written: `{"id":..,"type":..,"at":..` and its fields.
pub(crate) struct EventWriter {
    json: Vec<u8>,
    kind: &'static str,
    /// Its `user`, the key of its record on a mirror.
    user: Option<String>,
}

impl EventWriter {
    /// A field whose value is a string.
    pub(crate) fn str(mut self, name: &str, value: &str) -> EventWriter {
        self.name(name);
        let _ = serde_json::to_writer(&mut self.json, value);
        if name == "user" {
            self.user = Some(value.to_owned());
        }
        self
    }

    /// A field whose value is JSON already.
    pub(crate) fn raw(mut self, name: &str, json: &[u8]) -> EventWriter {
        self.name(name);
        self.json.extend_from_slice(json);
        self
    }

    /// A field serialized from `value`.
    pub(crate) fn value(mut self, name: &str, value: &impl serde::Serialize) -> EventWriter {
        self.name(name);
        let _ = serde_json::to_writer(&mut self.json, value);
        self
    }

    fn name(&mut self, name: &str) {
        self.json.push(b',');
        let _ = serde_json::to_writer(&mut self.json, name);
        self.json.push(b':');
    }

    fn finish(mut self) -> (Bytes, &'static str, Option<String>) {
        self.json.push(b'}');
        (Bytes::from(self.json), self.kind, self.user)
    }
}

impl Events {
    /// Starts the task that sends to `config.events_url` (which must be
    /// set) with `client`.
    pub(crate) fn start(
        config: &HooksConfig,
        client: reqwest::Client,
        secrets: Arc<Secrets>,
        metrics: HooksMetrics,
    ) -> Events {
        let (queue, rx) = mpsc::channel(config.max_queued.max(1));
        let shared = Arc::new(Shared {
            queue,
            mirror: std::sync::OnceLock::new(),
            ids: EventIds::new(),
            metrics,
            closing: AtomicBool::new(false),
            closed: Notify::new(),
            wake: Notify::new(),
        });
        let sender = Sender {
            client,
            url: config.events_url.clone().unwrap_or_default(),
            timeout: Duration::from_millis(config.events_timeout_ms),
            retry_for: Duration::from_secs(config.retry_for_secs),
            batch_max: config.batch_max.max(1),
            batch_wait: Duration::from_millis(config.batch_wait_ms),
            secrets,
            shared: Arc::clone(&shared),
        };
        tokio::spawn(sender.run(rx));
        Events { shared }
    }

    /// An event of `kind`, its id and time written; add its fields, then
    /// [`send`](Self::send) it.
    pub(crate) fn event(&self, kind: &'static str) -> EventWriter {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"id\":");
        let _ = serde_json::to_writer(&mut out, &self.shared.ids.next());
        out.extend_from_slice(b",\"type\":");
        let _ = serde_json::to_writer(&mut out, kind);
        out.extend_from_slice(b",\"at\":");
        out.extend_from_slice(now_ms().to_string().as_bytes());
        EventWriter {
            json: out,
            kind,
            user: None,
        }
    }

    /// Queues an event; drops it (counted) when the queue is full. Gives
    /// it to the mirror too (but `message.accepted`: a mirror that is the
    /// kafka events topic has the message itself).
    pub(crate) fn send(&self, event: EventWriter) {
        let (json, kind, user) = event.finish();
        if kind != "message.accepted"
            && let Some(mirror) = self.shared.mirror.get()
        {
            mirror(kind, user.as_deref().unwrap_or(""), json.clone());
        }
        let metrics = &self.shared.metrics;
        match self.shared.queue.try_send(json) {
            Ok(()) => metrics.events_queued.increment(1.0),
            Err(_) => metrics.events_dropped[0].increment(1),
        }
    }

    /// Writes every event but `message.accepted` to `mirror` too, from now
    /// on (kafka mode: the events topic). Once; `false` if one was set.
    pub fn mirror_to(&self, mirror: Mirror) -> bool {
        self.shared.mirror.set(mirror).is_ok()
    }

    /// Sends what is queued, trying each batch once more at most, within
    /// `grace`; then stops.
    pub async fn close(&self, grace: Duration) {
        self.shared.closing.store(true, Ordering::Release);
        let closed = self.shared.closed.notified();
        self.shared.wake.notify_one();
        let _ = tokio::time::timeout(grace, closed).await;
    }
}

struct Sender {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    retry_for: Duration,
    batch_max: usize,
    batch_wait: Duration,
    secrets: Arc<Secrets>,
    shared: Arc<Shared>,
}

impl Sender {
    async fn run(self, mut queue: mpsc::Receiver<Bytes>) {
        let mut batch = Vec::with_capacity(self.batch_max);
        loop {
            if self.closing() && queue.is_empty() {
                break;
            }
            tokio::select! {
                got = queue.recv_many(&mut batch, self.batch_max) => if got == 0 { break },
                () = self.shared.wake.notified() => continue,
            }
            // Fill the batch for up to `batch_wait`, unless closing.
            let deadline = Instant::now() + self.batch_wait;
            while batch.len() < self.batch_max && !self.closing() {
                let room = self.batch_max - batch.len();
                match tokio::time::timeout_at(deadline, queue.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            self.shared.metrics.events_queued.decrement(batch.len() as f64);
            self.deliver(&batch).await;
            batch.clear();
        }
        self.shared.closed.notify_waiters();
    }

    fn closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// Sends one batch until it is taken, the retry window passes, or
    /// (closing) one attempt more failed.
    async fn deliver(&self, batch: &[Bytes]) {
        let mut body = BytesMut::with_capacity(16 + batch.iter().map(|e| e.len() + 1).sum::<usize>());
        body.extend_from_slice(b"{\"events\":[");
        for (i, event) in batch.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(b",");
            }
            body.extend_from_slice(event);
        }
        body.extend_from_slice(b"]}");
        let body = body.freeze();
        let events = batch.len() as u64;
        let metrics = &self.shared.metrics;
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let why = match self.post(&body).await {
                Ok(()) => {
                    metrics.events_sent.increment(events);
                    return;
                }
                Err(why) => why,
            };
            if self.closing() || started.elapsed() + backoff > self.retry_for {
                metrics.events_dropped[1].increment(events);
                tracing::warn!(
                    events,
                    url = %self.url,
                    "events dropped: the receiver did not take them within hooks.retry_for_secs ({why})"
                );
                return;
            }
            tracing::debug!(events, %why, "events will be sent again");
            metrics.events_retried.increment(events);
            // Full jitter in the upper half: receivers coming back are
            // not hit by every gateway at once.
            let wait = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shared.wake.notified() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn post(&self, body: &Bytes) -> Result<(), String> {
        let signature = self.secrets.sign(body);
        let sent = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(crate::SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send();
        // (reqwest's own per-request timeout closes every connection.)
        let answer = async {
            let answer = sent.await.map_err(|e| e.to_string())?;
            let status = answer.status();
            // Read to the end: the connection goes back to the pool.
            let _ = answer.bytes().await;
            Ok::<_, String>(status)
        };
        let status = tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))??;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}
