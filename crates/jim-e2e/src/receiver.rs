//! The application's backend as the hook and events tests need it: a real
//! HTTP server on a loopback port that records every request and answers
//! the before-send hook (`/hook`) as the test scripts, and the events
//! (`/events`) with the status the test sets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use jim_test_util::WAIT;
use serde_json::Value;
use tokio::sync::mpsc;

/// How `/hook` answers.
#[derive(Debug, Clone)]
pub enum HookAnswer {
    /// 200 with this body.
    Json(String),
    /// This status, an empty body.
    Status(u16),
    /// Waits, then 200 with this body.
    Slow(Duration, String),
    /// Waits this long for a message whose content is "slow", answers
    /// allow at once for the others.
    SlowFor(Duration),
    /// Waits until the test calls [`Receiver::release`], then allows.
    Held,
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: &'static str,
    pub signature: Option<String>,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON request")
    }
}

struct Shared {
    hook: Mutex<HookAnswer>,
    /// When set, every request's `Jim-Signature` is checked with it.
    secret: Mutex<Option<String>>,
    badly_signed: AtomicUsize,
    events_status: AtomicU16,
    hook_calls: AtomicUsize,
    /// Lets one held hook call answer.
    release: tokio::sync::Notify,
    /// Batches POSTed to `/events`, taken or not: a test waits on it.
    event_posts: tokio::sync::watch::Sender<usize>,
    taken: mpsc::UnboundedSender<Received>,
}

/// The receiver: hook at `url("/hook")`, events at `url("/events")`.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    taken: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            hook: Mutex::new(HookAnswer::Json(r#"{"verdict":"allow"}"#.into())),
            secret: Mutex::new(None),
            badly_signed: AtomicUsize::new(0),
            events_status: AtomicU16::new(200),
            hook_calls: AtomicUsize::new(0),
            release: tokio::sync::Notify::new(),
            event_posts: tokio::sync::watch::Sender::new(0),
            taken: tx,
        });
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .route("/events", post(events))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            addr,
            shared,
            taken: tokio::sync::Mutex::new(rx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn answer(&self, answer: HookAnswer) {
        *self.shared.hook.lock().unwrap() = answer;
    }

    /// What `/events` answers from now on (200: taken; else refused).
    pub fn events_status(&self, status: u16) {
        self.shared.events_status.store(status, Ordering::SeqCst);
    }

    /// Checks every request's signature with `secret` from now on.
    pub fn check_signatures(&self, secret: &str) {
        *self.shared.secret.lock().unwrap() = Some(secret.to_owned());
    }

    /// Requests whose signature did not check out.
    pub fn badly_signed(&self) -> usize {
        self.shared.badly_signed.load(Ordering::SeqCst)
    }

    /// Lets one call held by [`HookAnswer::Held`] answer (the next one,
    /// when none is held yet).
    pub fn release(&self) {
        self.shared.release.notify_one();
    }

    pub fn hook_calls(&self) -> usize {
        self.shared.hook_calls.load(Ordering::SeqCst)
    }

    /// Waits until `n` batches were POSTed to `/events`, taken or not.
    pub async fn wait_event_posts(&self, n: usize) {
        let mut posts = self.shared.event_posts.subscribe();
        tokio::time::timeout(WAIT, posts.wait_for(|posted| *posted >= n))
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} batches were posted"))
            .unwrap();
    }

    /// The next request taken (a hook call, or a batch of events answered 200).
    pub async fn next(&self) -> Received {
        tokio::time::timeout(WAIT, self.taken.lock().await.recv())
            .await
            .expect("a request to the receiver in time")
            .unwrap()
    }

    /// The next hook call.
    pub async fn next_hook(&self) -> Received {
        loop {
            let received = self.next().await;
            if received.path == "/hook" {
                return received;
            }
        }
    }

    /// Events taken until `until` says enough (given all so far), within
    /// `within`.
    pub async fn events_until(&self, within: Duration, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        let mut taken = self.taken.lock().await;
        while !until(&events) {
            let received = tokio::time::timeout_at(deadline, taken.recv())
                .await
                .unwrap_or_else(|_| panic!("events so far: {events:#?}"))
                .unwrap();
            if received.path == "/events" {
                events.extend(received.json()["events"].as_array().unwrap().iter().cloned());
            }
        }
        events
    }

    /// `n` events, within [`WAIT`].
    pub async fn events(&self, n: usize) -> Vec<Value> {
        self.events_until(WAIT, |events| events.len() >= n).await
    }

    /// Waits `quiet` and returns the events taken in it (none, usually).
    pub async fn events_within(&self, quiet: Duration) -> Vec<Value> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + quiet;
        let mut taken = self.taken.lock().await;
        while let Ok(Some(received)) = tokio::time::timeout_at(deadline, taken.recv()).await {
            if received.path == "/events" {
                events.extend(received.json()["events"].as_array().unwrap().iter().cloned());
            }
        }
        events
    }
}

fn signature(headers: &HeaderMap) -> Option<String> {
    headers
        .get("jim-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Shared {
    fn check(&self, signature: Option<&str>, body: &[u8]) {
        let Some(secret) = self.secret.lock().unwrap().clone() else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if jim_hooks::verify(signature.unwrap_or(""), body, &secret, now, 60).is_err() {
            self.badly_signed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    shared.hook_calls.fetch_add(1, Ordering::SeqCst);
    shared.check(signature(&headers).as_deref(), &body);
    let _ = shared.taken.send(Received {
        path: "/hook",
        signature: signature(&headers),
        body: body.clone(),
    });
    let answer = shared.hook.lock().unwrap().clone();
    match answer {
        HookAnswer::Json(json) => (StatusCode::OK, json),
        HookAnswer::Status(status) => (StatusCode::from_u16(status).unwrap(), String::new()),
        HookAnswer::Slow(wait, json) => {
            tokio::time::sleep(wait).await;
            (StatusCode::OK, json)
        }
        HookAnswer::SlowFor(wait) => {
            let request: Value = serde_json::from_slice(&body).unwrap();
            if request["message"]["data"]["content"] == "slow" {
                tokio::time::sleep(wait).await;
            }
            (StatusCode::OK, r#"{"verdict":"allow"}"#.into())
        }
        HookAnswer::Held => {
            shared.release.notified().await;
            (StatusCode::OK, r#"{"verdict":"allow"}"#.into())
        }
    }
}

async fn events(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.event_posts.send_modify(|posted| *posted += 1);
    shared.check(signature(&headers).as_deref(), &body);
    let status = StatusCode::from_u16(shared.events_status.load(Ordering::SeqCst)).unwrap();
    if status.is_success() {
        let _ = shared.taken.send(Received {
            path: "/events",
            signature: signature(&headers),
            body,
        });
    }
    status
}

/// `user.online`/`user.offline` of one user among `events`, in order.
pub fn presence_of(events: &[Value], user: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["user"] == user && e["type"].as_str().is_some_and(|t| t.starts_with("user.")))
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A hook that accepts connections and closes them unanswered.
pub async fn hanging_up() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            drop(stream);
        }
    });
    addr
}
