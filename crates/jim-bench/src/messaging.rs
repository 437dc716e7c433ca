//! The `c2c` and `c2g` workloads: senders, receivers, and the checks.
//!
//! Every message carries its sender's index, its sequence number and its
//! scheduled send time in the text content (`b:<sender>:<n>:<nanos>:`
//! then padding). Receivers check each sender's messages arrive in order
//! and once, and record latency from the scheduled time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use jim_protocol::{Command, Frame};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::conn::{self, Conn, DirectWriter, Reader, Target, Transport, Writer};
use crate::report::{Counts, Latency, Report, ServerUse};
use crate::{BenchError, server};

/// How senders pace themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// At most `window` unacknowledged messages per sender.
    Closed {
        /// Messages in flight per sender.
        window: usize,
    },
    /// A fixed total rate over all senders, in messages per second.
    Open {
        /// Messages per second, all senders together.
        rate: f64,
    },
}

/// A `c2c` or `c2g` run.
#[derive(Debug, Clone)]
pub struct Messaging {
    /// Where the gateway is.
    pub target: Target,
    /// TCP or WebSocket.
    pub transport: Transport,
    /// Connected clients; each sends and receives.
    pub clients: usize,
    /// `None`: C2C to uniformly random others. `Some(g)`: groups of `g`
    /// clients, each sending to its group.
    pub group_size: Option<usize>,
    /// Pacing.
    pub load: Load,
    /// How long senders send.
    pub duration: Duration,
    /// Bytes of each message body.
    pub body_size: usize,
    /// How long to wait for deliveries after sending stops.
    pub drain: Duration,
    /// Prefix of the user and group ids of this run.
    pub run_id: String,
    /// The admin API (`http://host:port`) and key, to create groups.
    pub admin: Option<(String, Option<String>)>,
    /// The gateway's process id, to measure its CPU and memory.
    pub server_pid: Option<u32>,
    /// Print progress to stderr every second.
    pub progress: bool,
    /// Each recipient marks what it gets read (contract v1.2 receipts),
    /// at most one receipt per conversation a second (the TypeScript SDK's
    /// coalescing; the highest counts).
    pub receipts: bool,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    reordered: AtomicU64,
    receipts_sent: AtomicU64,
}

impl Messaging {
    fn fanout(&self) -> u64 {
        self.group_size.map_or(1, |g| g as u64 - 1)
    }

    fn user(&self, i: usize) -> String {
        format!("{}-u{i}", self.run_id)
    }

    fn group_of(&self, i: usize) -> Option<String> {
        self.group_size.map(|g| format!("{}-g{}", self.run_id, i / g))
    }

    fn check(&self) -> Result<(), BenchError> {
        if self.clients < 2 {
            return Err(BenchError::Usage("at least 2 clients".into()));
        }
        if let Some(g) = self.group_size {
            if g < 2 || !self.clients.is_multiple_of(g) {
                return Err(BenchError::Usage(format!(
                    "group size {g} must be at least 2 and divide the {} clients",
                    self.clients
                )));
            }
            if self.admin.is_none() {
                return Err(BenchError::Usage("c2g needs --admin to create the groups".into()));
            }
        }
        match self.load {
            Load::Closed { window: 0 } => Err(BenchError::Usage("window must be positive".into())),
            Load::Open { rate } if rate <= 0.0 => Err(BenchError::Usage("rate must be positive".into())),
            _ => Ok(()),
        }
    }

    /// Runs the workload and checks every delivery.
    ///
    /// # Errors
    /// Bad parameters, or connections that could not be set up.
    pub async fn run(self) -> Result<Report, BenchError> {
        self.check()?;
        let plan = Arc::new(self);
        if plan.group_size.is_some() {
            create_groups(&plan).await?;
        }
        let conns = connect_all(&plan).await?;
        // In multi-gateway modes presence takes a moment to spread: measure
        // only once the deployment sees every client online.
        wait_for_presence(&plan).await;
        let counters = Arc::new(Counters::default());
        let stop_sending = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let before = plan.server_pid.map(server::sample).transpose()?;

        let mut readers = JoinSet::new();
        let mut senders = JoinSet::new();
        let stop_reading = Arc::new(tokio::sync::Notify::new());
        let (mut clock_writers, mut idle_writers) = (Vec::new(), Vec::new());
        let mut windows = Vec::with_capacity(plan.clients);
        for (
            i,
            Conn {
                reader,
                writer,
                mut direct,
            },
        ) in conns.into_iter().enumerate()
        {
            // With receipts, the reader marks what it gets through a handle
            // of its own (the open loop's clock keeps the other).
            let marker = match (plan.receipts, plan.load) {
                (true, Load::Closed { .. }) => direct.take(),
                (true, Load::Open { .. }) => direct.as_ref().and_then(DirectWriter::try_clone),
                (false, _) => None,
            };
            let window = Arc::new(Semaphore::new(match plan.load {
                Load::Closed { window } => window,
                Load::Open { .. } => 0,
            }));
            windows.push(Arc::clone(&window));
            readers.spawn(receive(
                reader,
                Arc::clone(&counters),
                Arc::clone(&window),
                epoch,
                Arc::clone(&stop_reading),
                marker.map(|writer| Marker::new(writer, Arc::clone(&plan))),
            ));
            match plan.load {
                Load::Closed { .. } => {
                    let (plan, counters, stop) = (
                        Arc::clone(&plan),
                        Arc::clone(&counters),
                        Arc::clone(&stop_sending),
                    );
                    senders.spawn(async move {
                        let writer = send_closed_loop(plan, i, writer, counters, window, epoch, stop).await;
                        (vec![writer], Histogram::<u64>::new(3).expect("a valid histogram"))
                    });
                }
                Load::Open { .. } => {
                    clock_writers.extend(direct);
                    idle_writers.push(writer);
                }
            }
        }
        if let Load::Open { rate } = plan.load {
            let (plan, counters, stop) = (
                Arc::clone(&plan),
                Arc::clone(&counters),
                Arc::clone(&stop_sending),
            );
            let clock = tokio::task::spawn_blocking(move || {
                pace(&plan, clock_writers, rate, &counters, epoch, &stop)
            });
            senders.spawn(async move {
                let lag = clock
                    .await
                    .unwrap_or_else(|_| Histogram::new(3).expect("a valid histogram"));
                (idle_writers, lag)
            });
        }

        let progress = plan
            .progress
            .then(|| tokio::spawn(show_progress(Arc::clone(&counters), epoch)));
        tokio::time::sleep(plan.duration).await;
        stop_sending.store(true, Ordering::Relaxed);
        // A sender waiting for acks that will not come (its connection
        // closed, or the server lost them) stops waiting too.
        for window in &windows {
            window.close();
        }
        let send_elapsed = epoch.elapsed();
        let mut writers = Vec::new();
        let mut send_lag = Histogram::<u64>::new(3).expect("a valid histogram");
        while let Some(done) = senders.join_next().await {
            if let Ok((some, lag)) = done {
                writers.extend(some); // kept open until the drain is over
                send_lag.add(&lag).expect("histograms of the same shape");
            }
        }

        // Drain: until every request has its reply and every acked message
        // has reached every recipient.
        let drain_until = Instant::now() + plan.drain;
        loop {
            let replies = counters.acked.load(Ordering::Relaxed) + counters.errors.load(Ordering::Relaxed);
            let expected = counters.acked.load(Ordering::Relaxed) * plan.fanout();
            let settled = replies >= counters.sent.load(Ordering::Relaxed)
                && counters.delivered.load(Ordering::Relaxed) >= expected;
            if settled || Instant::now() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = epoch.elapsed();
        let after = plan.server_pid.map(server::sample).transpose()?;
        stop_reading.notify_waiters();
        let mut latency = Histogram::<u64>::new(3).expect("a valid histogram");
        while let Some(done) = readers.join_next().await {
            if let Ok(histogram) = done {
                latency.add(&histogram).expect("histograms of the same shape");
            }
        }
        if let Some(progress) = progress {
            progress.abort();
        }
        drop(writers);

        let c = &counters;
        let acked = c.acked.load(Ordering::Relaxed);
        let delivered = c.delivered.load(Ordering::Relaxed);
        if plan.receipts && plan.progress {
            eprintln!(
                "  read receipts sent: {}",
                c.receipts_sent.load(Ordering::Relaxed)
            );
        }
        let expected = acked * plan.fanout();
        let counts = Counts {
            sent: c.sent.load(Ordering::Relaxed),
            acked,
            errors: c.errors.load(Ordering::Relaxed),
            delivered,
            expected,
            lost: expected.saturating_sub(delivered),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
        };
        let server = match (before, after) {
            (Some(before), Some(after)) => Some(ServerUse::between(&before, &after, delivered, None)),
            _ => None,
        };
        Ok(Report {
            workload: if plan.group_size.is_some() { "c2g" } else { "c2c" }.to_owned(),
            transport: plan.transport,
            clients: plan.clients,
            group_size: plan.group_size,
            window: match plan.load {
                Load::Closed { window } => Some(window),
                Load::Open { .. } => None,
            },
            rate: match plan.load {
                Load::Open { rate } => Some(rate),
                Load::Closed { .. } => None,
            },
            seconds: send_elapsed.as_secs_f64(),
            throughput: delivered as f64 / elapsed.as_secs_f64().max(1e-9),
            counts: Some(counts),
            latency: Some(Latency::from_histogram(&latency)),
            send_lag: matches!(plan.load, Load::Open { .. }).then(|| Latency::from_histogram(&send_lag)),
            server,
            connections: None,
            replay: None,
            flood: None,
            history: None,
        })
    }
}

async fn create_groups(plan: &Messaging) -> Result<(), BenchError> {
    let Some((admin, key)) = plan.admin.clone() else {
        return Ok(());
    };
    let Some(size) = plan.group_size else {
        return Ok(());
    };
    let groups: Vec<(String, Vec<String>)> = (0..plan.clients / size)
        .map(|g| {
            let users = (g * size..(g + 1) * size).map(|i| plan.user(i)).collect();
            (format!("{}-g{g}", plan.run_id), users)
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        for (group, users) in groups {
            let url = format!("{}/v1/groups/{group}/members", admin.trim_end_matches('/'));
            let mut request = ureq::post(&url);
            if let Some(key) = &key {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            request
                .send_json(serde_json::json!({ "users": users }))
                .map_err(|e| BenchError::Gateway(format!("creating {group}: {e}")))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| BenchError::Gateway(e.to_string()))?
}

/// Waits (up to 20 s) until the admin API shows a session for every
/// client; gives up quietly without an admin API.
async fn wait_for_presence(plan: &Arc<Messaging>) {
    let Some((admin, key)) = plan.admin.clone() else {
        return;
    };
    let users: Vec<String> = (0..plan.clients).map(|i| plan.user(i)).collect();
    let waited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        for user in users {
            loop {
                let url = format!("{}/v1/users/{user}/sessions", admin.trim_end_matches('/'));
                let mut request = ureq::get(&url);
                if let Some(key) = &key {
                    request = request.header("Authorization", &format!("Bearer {key}"));
                }
                let online = match request.call() {
                    Ok(mut reply) => reply
                        .body_mut()
                        .read_json::<serde_json::Value>()
                        .is_ok_and(|v| v["sessions"].as_array().is_some_and(|s| !s.is_empty())),
                    Err(_) => return Some(false), // no admin API here
                };
                if online {
                    break;
                }
                if Instant::now() > deadline {
                    return Some(true);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        None
    })
    .await;
    if let Ok(Some(true)) = waited {
        eprintln!("  presence of every client not seen within 20 s: starting anyway");
    }
}

/// Connects and authenticates every client, at most 256 at a time.
async fn connect_all(plan: &Arc<Messaging>) -> Result<Vec<Conn>, BenchError> {
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = JoinSet::new();
    for i in 0..plan.clients {
        let (plan, gate) = (Arc::clone(plan), Arc::clone(&gate));
        tasks.spawn(async move {
            let _permit = gate.acquire().await;
            let mut conn = conn::connect(
                &plan.target,
                plan.transport,
                i,
                matches!(plan.load, Load::Open { .. }) || plan.receipts,
            )
            .await?;
            conn::authenticate(&mut conn, &plan.user(i)).await?;
            Ok::<_, BenchError>((i, conn))
        });
    }
    let mut conns: Vec<Option<Conn>> = (0..plan.clients).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, conn) = done.map_err(|e| BenchError::Connect(e.to_string()))??;
        conns[i] = Some(conn);
    }
    Ok(conns.into_iter().flatten().collect())
}

/// The body of message `n` from `sender` to `receiver`, scheduled at `nanos`.
fn body(receiver: &str, sender: usize, n: u64, nanos: u64, size: usize) -> Bytes {
    let head =
        format!(r#"{{"type":"text","data":{{"receiver_id":"{receiver}","content":"b:{sender}:{n}:{nanos}:"#);
    let tail = r#""}}"#;
    let padding = size.saturating_sub(head.len() + tail.len());
    let mut out = String::with_capacity(head.len() + padding + tail.len());
    out.push_str(&head);
    out.extend(std::iter::repeat_n('x', padding));
    out.push_str(tail);
    Bytes::from(out)
}

/// Reads `sender`, `n` and the scheduled time back out of a delivered body.
fn parse_mark(body: &[u8]) -> Option<(u32, u64, u64)> {
    const MARK: &[u8] = b"\"content\":\"b:";
    let start = body.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let mut fields = body[start..].split(|b| *b == b':');
    let mut number = || std::str::from_utf8(fields.next()?).ok()?.parse::<u64>().ok();
    Some((u32::try_from(number()?).ok()?, number()?, number()?))
}

/// Who client `me` sends its next message to.
fn receiver_for(plan: &Messaging, me: usize, group: Option<&String>, rng: &mut fastrand::Rng) -> String {
    match group {
        Some(group) => group.clone(),
        None => {
            let mut other = rng.usize(..plan.clients - 1);
            if other >= me {
                other += 1;
            }
            plan.user(other)
        }
    }
}

fn command(plan: &Messaging) -> Command {
    if plan.group_size.is_some() {
        Command::C2G
    } else {
        Command::C2C
    }
}

/// Closed loop: one task per client, at most `window` messages unacked.
#[allow(clippy::too_many_arguments)]
async fn send_closed_loop(
    plan: Arc<Messaging>,
    me: usize,
    mut writer: Writer,
    counters: Arc<Counters>,
    window: Arc<Semaphore>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Writer {
    let cmd = command(&plan);
    let group = plan.group_of(me);
    let mut rng = fastrand::Rng::with_seed(me as u64 + 1);
    let mut n: u64 = 0;
    let mut frames = Vec::with_capacity(16);
    while !stop.load(Ordering::Relaxed) {
        let Ok(permit) = window.acquire().await else { break };
        permit.forget();
        let mut count = 1;
        while count < 16 {
            match window.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    count += 1;
                }
                Err(_) => break,
            }
        }
        let now = epoch.elapsed().as_nanos() as u64;
        for _ in 0..count {
            let receiver = receiver_for(&plan, me, group.as_ref(), &mut rng);
            let seq = u32::try_from(n & 0x7fff_ffff).unwrap_or(0);
            frames.push(Frame::new(cmd, seq, body(&receiver, me, n, now, plan.body_size)));
            n += 1;
        }
        if writer.send(&frames).await.is_err() {
            break;
        }
        counters.sent.fetch_add(frames.len() as u64, Ordering::Relaxed);
        frames.clear();
    }
    writer
}

/// Open loop: a clock thread schedules message `k` at `k / rate` seconds,
/// from client `k mod N`, and writes it at that moment itself. An OS
/// thread sleeps with sub-millisecond precision where async timers tick in
/// milliseconds (whose bursts would queue messages behind each other and
/// measure the generator, not the gateway), and writing from it saves a
/// task wake-up per message. Latency counts from the scheduled slot, so a
/// gateway that holds the writes up shows as latency (no coordinated
/// omission). Returns the generator's own lag behind the schedule.
fn pace(
    plan: &Messaging,
    mut writers: Vec<DirectWriter>,
    rate: f64,
    counters: &Counters,
    epoch: Instant,
    stop: &AtomicBool,
) -> Histogram<u64> {
    let mut lag = Histogram::<u64>::new(3).expect("a valid histogram");
    let cmd = command(plan);
    let groups: Vec<Option<String>> = (0..plan.clients).map(|i| plan.group_of(i)).collect();
    let mut rngs: Vec<fastrand::Rng> = (0..plan.clients)
        .map(|i| fastrand::Rng::with_seed(i as u64 + 1))
        .collect();
    let mut sequence = vec![0u64; plan.clients];
    let mut live = vec![true; plan.clients];
    let slot = |k: u64| epoch + Duration::from_secs_f64(k as f64 / rate);
    let mut k: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let next = slot(k);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let now = Instant::now();
        while slot(k) <= now {
            let scheduled = slot(k);
            let _ = lag.record((now.saturating_duration_since(scheduled).as_micros() as u64).max(1));
            let me = (k % plan.clients as u64) as usize;
            k += 1;
            if !live[me] {
                continue;
            }
            let receiver = receiver_for(plan, me, groups[me].as_ref(), &mut rngs[me]);
            let n = sequence[me];
            sequence[me] += 1;
            let start = scheduled.duration_since(epoch).as_nanos() as u64;
            let seq = u32::try_from(n & 0x7fff_ffff).unwrap_or(0);
            let frame = Frame::new(cmd, seq, body(&receiver, me, n, start, plan.body_size));
            live[me] = writers[me].send(&frame).is_ok();
            if live[me] {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    lag
}

/// Sends read receipts for what a client gets: at most one per sender (a
/// conversation) a second, for the highest message seen.
struct Marker {
    writer: DirectWriter,
    plan: Arc<Messaging>,
    /// Per sender: when its last receipt went, and the highest id since.
    last: HashMap<u32, (Instant, Option<Vec<u8>>)>,
    seq: u32,
}

impl Marker {
    fn new(writer: DirectWriter, plan: Arc<Messaging>) -> Marker {
        Marker {
            writer,
            plan,
            last: HashMap::new(),
            seq: u32::MAX / 2,
        }
    }

    /// A delivery from `sender` with `message_id`: a receipt now, or the
    /// highest id kept for the next one after a second.
    fn delivered(&mut self, sender: u32, message_id: &[u8], counters: &Counters) {
        let now = Instant::now();
        let entry = self
            .last
            .entry(sender)
            .or_insert((now - Duration::from_secs(2), None));
        if now.duration_since(entry.0) < Duration::from_secs(1) {
            entry.1 = Some(message_id.to_vec());
            return;
        }
        entry.0 = now;
        entry.1 = None;
        let body = format!(
            r#"{{"type":"ack","data":{{"receiver_id":"{}","message_id":"{}","status":"read"}}}}"#,
            self.plan.user(sender as usize),
            String::from_utf8_lossy(message_id)
        );
        self.seq = self.seq.wrapping_add(1);
        if self
            .writer
            .send(&Frame::new(Command::C2C, self.seq, Bytes::from(body)))
            .is_ok()
        {
            counters.receipts_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A delivered body's `message_id`.
fn message_id_of(body: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"message_id\":\"";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|b| *b == b'"')?;
    Some(&body[start..start + len])
}

async fn receive(
    mut reader: Reader,
    counters: Arc<Counters>,
    window: Arc<Semaphore>,
    epoch: Instant,
    stop: Arc<tokio::sync::Notify>,
    mut marker: Option<Marker>,
) -> Histogram<u64> {
    let mut latency = Histogram::<u64>::new(3).expect("a valid histogram");
    let mut last_seen: HashMap<u32, u64> = HashMap::new();
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let frame = tokio::select! {
            () = &mut stopped => break,
            frame = reader.next() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        let body = &frame.body[..];
        if body.starts_with(br#"{"type":"ack""#) && body.windows(9).any(|w| w == br#""status":"#) {
            // A receipt from a recipient, delivered: not an ack of ours.
            continue;
        }
        if body.starts_with(br#"{"type":"ack""#) {
            counters.acked.fetch_add(1, Ordering::Relaxed);
            window.add_permits(1);
        } else if body.starts_with(br#"{"type":"error""#) {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            window.add_permits(1);
        } else if let Some((sender, n, nanos)) = parse_mark(body) {
            let now = epoch.elapsed().as_nanos() as u64;
            let _ = latency.record((now.saturating_sub(nanos) / 1_000).max(1));
            match last_seen.get(&sender) {
                Some(&last) if n == last => {
                    counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some(&last) if n < last => {
                    counters.reordered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    last_seen.insert(sender, n);
                }
            }
            counters.delivered.fetch_add(1, Ordering::Relaxed);
            if let (Some(marker), Some(id)) = (&mut marker, message_id_of(body)) {
                marker.delivered(sender, id, &counters);
            }
        }
    }
    latency
}

async fn show_progress(counters: Arc<Counters>, epoch: Instant) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last = 0;
    loop {
        ticker.tick().await;
        let delivered = counters.delivered.load(Ordering::Relaxed);
        eprintln!(
            "  {:>4.0}s  sent {:>10}  acked {:>10}  delivered {:>10}  {:>9}/s  errors {}",
            epoch.elapsed().as_secs_f64(),
            counters.sent.load(Ordering::Relaxed),
            counters.acked.load(Ordering::Relaxed),
            delivered,
            delivered - last,
            counters.errors.load(Ordering::Relaxed),
        );
        last = delivered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_requested_size_and_their_mark_reads_back() {
        let b = body("bench-u7", 12, 345, 6_789_000, 200);
        assert_eq!(b.len(), 200);
        let value: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(value["data"]["receiver_id"], "bench-u7");
        assert_eq!(parse_mark(&b), Some((12, 345, 6_789_000)));
        // The gateway stamps around the content: the mark still reads.
        let stamped = br#"{"type":"text","data":{"sender_id":"x","receiver_id":"y","content":"b:1:2:3:xx","message_id":"9"}}"#;
        assert_eq!(parse_mark(stamped), Some((1, 2, 3)));
        assert_eq!(parse_mark(b"{}"), None);
    }
}
