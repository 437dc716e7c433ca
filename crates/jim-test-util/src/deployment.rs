//! One gateway of a multi-gateway deployment as the grpc and kafka tests
//! see it: where it listens, and presence as it reports it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Kind, Raw, admin_request};

/// Where one gateway listens. The tests' gateway handles deref to it, so
/// `gateway.user(..)` and `gateway.admin(..)` read the same everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub admin: SocketAddr,
}

impl Listeners {
    /// A client of this gateway, not yet authenticated.
    pub async fn raw(&self, kind: Kind) -> Raw {
        match kind {
            Kind::Tcp => Raw::tcp(self.tcp).await,
            Kind::Ws => Raw::ws(&format!("ws://{}/ws", self.ws)).await,
        }
    }

    /// A client of this gateway, authenticated as `user`.
    pub async fn user(&self, kind: Kind, user: &str) -> Raw {
        let mut raw = self.raw(kind).await;
        raw.auth(user).await;
        raw
    }

    /// One call to this gateway's admin API.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        admin_request(self.admin, method, path, body, None).await
    }
}

/// Waits until the gateway whose admin API is at `admin` sees `count`
/// sessions of `user`; returns how long that took. Presence spreads from
/// other processes (a router, a broker), which signal nothing here: this
/// asks the admin API again every 20 ms until `within` has passed.
pub async fn wait_presence(admin: SocketAddr, user: &str, count: usize, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (_, body) = admin_request(admin, "GET", &format!("/v1/users/{user}/sessions"), None, None).await;
        if body["sessions"].as_array().is_some_and(|s| s.len() == count) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{user} never had {count} sessions: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The gateway nodes of the sessions in a `/v1/users/{user}/sessions`
/// reply, sorted.
pub fn session_nodes(body: &Value) -> Vec<u64> {
    let mut nodes: Vec<u64> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_u64().unwrap())
        .collect();
    nodes.sort();
    nodes
}

/// What a pipelined sender saw through a fault.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Message ids of the acked messages, in ack order.
    pub acked: Vec<String>,
    /// When each ack arrived, in the same order.
    pub acked_at: Vec<Instant>,
    /// Messages refused with 5000 (the documented outcome of an outage).
    pub refused: usize,
    /// Any other reply, which the fault tests do not expect.
    pub other: Vec<String>,
    /// Messages whose reply never came (the sender's own link broke).
    pub unanswered: usize,
}

/// A TCP client of `user` that keeps up to `window` text messages to `to`
/// in flight, one every `interval`, until `stop` turns true; then waits
/// for the replies still due and says what became of every message.
pub async fn pipelined(
    addr: SocketAddr,
    user: &str,
    to: &str,
    window: usize,
    interval: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Outcome {
    pipelined_as(addr, user, jim_protocol::Command::C2C, to, window, interval, stop).await
}

/// As [`pipelined`], sending `cmd` (`B102` to a group `to`).
pub async fn pipelined_as(
    addr: SocketAddr,
    user: &str,
    cmd: jim_protocol::Command,
    to: &str,
    window: usize,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Outcome {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use jim_protocol::{Frame, FrameCodec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Semaphore;

    let mut raw = Raw::tcp(addr).await;
    raw.auth(user).await;
    let (mut reader, mut writer) = raw.into_tcp().into_split();
    let window = Arc::new(Semaphore::new(window));
    let sent = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sending = {
        let (window, sent, done, to) = (
            Arc::clone(&window),
            Arc::clone(&sent),
            Arc::clone(&done),
            to.to_owned(),
        );
        async move {
            for seq in 1u32.. {
                let permit = tokio::select! {
                    permit = window.acquire() => permit.unwrap(),
                    _ = stop.wait_for(|stop| *stop) => break,
                };
                permit.forget();
                let frame = Frame::new(cmd, seq, crate::text(&to, &format!("m{seq}")));
                // Counted first: its reply may come before the write returns.
                sent.fetch_add(1, Ordering::SeqCst);
                if writer.write_all(&frame.to_bytes().unwrap()).await.is_err() {
                    sent.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|stop| *stop) => break,
                }
            }
            done.store(true, Ordering::SeqCst);
            // Kept open until every reply is in: a closed write side ends the session.
            writer
        }
    };
    let receiving = async {
        let codec = FrameCodec::new();
        let mut buf = bytes::BytesMut::new();
        let mut outcome = Outcome::default();
        let mut answered = 0;
        // A reply is due within the backends' own timeouts (5 s at most).
        let mut silent_since = tokio::time::Instant::now();
        loop {
            while let Some(frame) = codec.decode_from(&mut buf).unwrap() {
                let body = crate::json(&frame);
                answered += 1;
                window.add_permits(1);
                match (body["type"].as_str(), body["data"]["code"].as_u64()) {
                    (Some("ack"), _) => {
                        outcome
                            .acked
                            .push(body["data"]["message_id"].as_str().unwrap().to_owned());
                        outcome.acked_at.push(Instant::now());
                    }
                    (Some("error"), Some(5000)) => outcome.refused += 1,
                    _ => outcome.other.push(body.to_string()),
                }
                silent_since = tokio::time::Instant::now();
            }
            let due = sent.load(Ordering::SeqCst).saturating_sub(answered);
            if done.load(Ordering::SeqCst) && due == 0 {
                return outcome;
            }
            if silent_since.elapsed() > Duration::from_secs(8) {
                outcome.unanswered = due;
                return outcome;
            }
            buf.reserve(4096);
            // Short reads, so that the end of sending is noticed.
            if let Ok(result) =
                tokio::time::timeout(Duration::from_millis(100), reader.read_buf(&mut buf)).await
            {
                match result {
                    Ok(n) if n > 0 => {}
                    _ => {
                        outcome.unanswered = due;
                        return outcome;
                    }
                }
            }
        }
    };
    let (_writer, outcome) = tokio::join!(sending, receiving);
    outcome
}

/// Collects the message ids delivered to a client, until dropped.
pub struct Deliveries {
    ids: tokio::sync::watch::Receiver<Vec<String>>,
    /// The frames other than deliveries and how the connection ended, once
    /// it did: why a fault test saw fewer deliveries than it waited for.
    ended: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Deliveries {
    pub fn collect(mut raw: Raw) -> Deliveries {
        let (tx, ids) = tokio::sync::watch::channel(Vec::new());
        let ended = Arc::new(Mutex::new(None));
        let record = Arc::clone(&ended);
        let task = tokio::spawn(async move {
            let mut others = Vec::new();
            let end = loop {
                match raw.next_inner().await {
                    Ok(frame) if crate::is_delivery(&frame) => {
                        let body = crate::json(&frame);
                        let id = body["data"]["message_id"].as_str().unwrap().to_owned();
                        tx.send_modify(|ids| ids.push(id));
                    }
                    Ok(frame) => {
                        others.push(format!("{} {}", frame.cmd, String::from_utf8_lossy(&frame.body)))
                    }
                    Err(end) => break end,
                }
            };
            *record.lock().unwrap() = Some(format!("{end:?} after {others:?}"));
        });
        Deliveries { ids, ended, task }
    }

    /// Waits until at least `count` messages were delivered.
    pub async fn wait_count(&self, count: usize, within: Duration) {
        let mut ids = self.ids.clone();
        tokio::time::timeout(within, ids.wait_for(|ids| ids.len() >= count))
            .await
            .unwrap_or_else(|_| panic!("fewer than {count} deliveries within {within:?}"))
            .unwrap();
    }

    /// Waits until every id of `acked` was delivered (or `within` passed);
    /// returns the ids delivered, in order.
    pub async fn wait_for(&self, acked: &[String], within: Duration) -> Vec<String> {
        let mut ids = self.ids.clone();
        let all_in = |delivered: &Vec<String>| {
            let have: std::collections::HashSet<&String> = delivered.iter().collect();
            acked.iter().all(|id| have.contains(id))
        };
        let _ = tokio::time::timeout(within, ids.wait_for(all_in)).await;
        if let Some(ended) = self.ended.lock().unwrap().as_ref() {
            eprintln!("the collecting connection ended: {ended}");
        }
        ids.borrow().clone()
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Outcome {
    /// Adds another sender's outcome to this one.
    pub fn merge(&mut self, other: Outcome) {
        self.acked.extend(other.acked);
        self.acked_at.extend(other.acked_at);
        self.refused += other.refused;
        self.other.extend(other.other);
        self.unanswered += other.unanswered;
    }

    /// The part of this outcome acked at or after `since`.
    pub fn acked_since(&self, since: Instant) -> Outcome {
        let (acked, acked_at) = self
            .acked
            .iter()
            .zip(&self.acked_at)
            .filter(|(_, at)| **at >= since)
            .map(|(id, at)| (id.clone(), *at))
            .unzip();
        Outcome {
            acked,
            acked_at,
            refused: self.refused,
            other: self.other.clone(),
            unanswered: self.unanswered,
        }
    }

    /// Acked ids that were not delivered.
    pub fn lost<'a>(&'a self, delivered: &[String]) -> Vec<&'a String> {
        let have: std::collections::HashSet<&String> = delivered.iter().collect();
        self.acked.iter().filter(|id| !have.contains(id)).collect()
    }
}

/// The fault tests' verdict: nothing acked was lost or delivered twice.
/// Prints the counts (for the notes).
pub fn assert_acked_were_delivered(what: &str, outcome: &Outcome, delivered: &[String]) {
    let have: std::collections::HashSet<&String> = delivered.iter().collect();
    let lost: Vec<&String> = outcome.acked.iter().filter(|id| !have.contains(id)).collect();
    eprintln!(
        "{what}: {} acked, {} refused with 5000, {} delivered, {} lost, {} unanswered, {} other",
        outcome.acked.len(),
        outcome.refused,
        delivered.len(),
        lost.len(),
        outcome.unanswered,
        outcome.other.len()
    );
    assert!(
        outcome.other.is_empty(),
        "unexpected replies: {:?}",
        outcome.other
    );
    assert_eq!(have.len(), delivered.len(), "a message was delivered twice");
    assert!(
        lost.is_empty(),
        "{} acked messages were never delivered: {lost:?}",
        lost.len()
    );
}

/// `n` text messages `m1`, `m2`, ... to `to`, numbered by `seq`, but for
/// the one at `refused`: a group message to a group that does not exist,
/// which every backend refuses with 4004.
pub fn pipelined_burst(to: &str, n: u32, refused: u32) -> Vec<jim_protocol::Frame> {
    use jim_protocol::{Command, Frame};
    (1..=n)
        .map(|i| {
            if i == refused {
                Frame::new(Command::C2G, i, crate::text("no-such-group", "x"))
            } else {
                Frame::new(Command::C2C, i, crate::text(to, &format!("m{i}")))
            }
        })
        .collect()
}

/// Sends a [`pipelined_burst`] all at once, then reads its replies: every
/// message acked in the order sent, the refused one with 4004, in its place.
pub async fn send_burst(raw: &mut Raw, to: &str, n: u32, refused: u32) {
    use jim_protocol::Command;
    raw.send_all(&pipelined_burst(to, n, refused)).await;
    for i in 1..=n {
        let reply = raw.reply().await;
        if i == refused {
            crate::assert_error(&reply, Command::C2G, i, 4004);
        } else {
            crate::assert_ack(&reply, Command::C2C, i, to);
        }
    }
}
