//! The `kafka` mode: a real tansu broker and gateway processes that only
//! know Kafka.

#![cfg(feature = "kafka")]
#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jim_protocol::Command;
use jim_test_util::deployment::{self, Listeners, session_nodes};
// The rdkafka the Kafka backend is built with: no rdkafka of the tests' own.
use jim_router_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use jim_router_kafka::rdkafka::message::{Headers, Message};
use jim_router_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use jim_test_util::tansu::Broker;
use jim_test_util::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command as Process};
use tokio::sync::watch;

const GATEWAY_BIN: &str = jim_e2e::gateway_bin!();

/// A short lease, so that a killed gateway's users vanish quickly.
const LEASE_MS: u64 = 3_000;

/// A gateway process in kafka mode.
struct KafkaGateway {
    child: Option<Child>,
    /// Readiness as the process logs it (see [`watch_readiness`]).
    ready: watch::Receiver<bool>,
    /// How many SIGHUPs it said it handled.
    hangups: watch::Receiver<usize>,
    /// The last lines of its log, printed if the test fails.
    log: RecentLines,
    node: u16,
    listeners: Listeners,
    _config: tempfile_path::TempFile,
}

mod tempfile_path {
    /// A file removed when dropped.
    pub struct TempFile(pub std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn config_file(broker: &Broker, prefix: &str, extra: &str) -> tempfile_path::TempFile {
    let path = std::env::temp_dir().join(format!(
        "jim-kafka-{}-{}.toml",
        std::process::id(),
        fastrand::u64(..)
    ));
    let text = format!(
        "[kafka]\nbootstrap = \"{}\"\ntopic_prefix = \"{prefix}\"\nlease_ms = {LEASE_MS}\n\
         delivery_partitions = 4\nevents_partitions = 2\nstate_partitions = 2\n\
         produce_timeout_ms = 1500\nstartup_timeout_ms = 10000\n{extra}{inbox}",
        broker.bootstrap(),
        inbox = if extra.contains("[inbox]") {
            ""
        } else {
            "\n[inbox]\nstore = \"off\"\n"
        },
    );
    std::fs::write(&path, text).unwrap();
    tempfile_path::TempFile(path)
}

fn gateway_command(config: &std::path::Path, node: u16) -> Process {
    let mut process = Process::new(GATEWAY_BIN);
    process
        .args(["--dev", "--mode", "kafka", "--config"])
        .arg(config)
        // The backend's readiness changes are info lines, and what a SIGHUP
        // reloaded: the tests wait on them.
        .args([
            "--node-id",
            &node.to_string(),
            "--log",
            "warn,jim_router_kafka=info,jim_service=info",
        ])
        .args([
            "--tcp",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env_remove("JIM_KAFKA_BOOTSTRAP")
        .env_remove("JIM_KAFKA_PREFIX")
        .kill_on_drop(true);
    process
}

impl std::ops::Deref for KafkaGateway {
    type Target = Listeners;
    fn deref(&self) -> &Listeners {
        &self.listeners
    }
}

impl KafkaGateway {
    async fn start(broker: &Broker, prefix: &str, node: u16) -> KafkaGateway {
        KafkaGateway::start_with(broker, prefix, node, "").await
    }

    /// With more configuration (TOML, after `[kafka]`).
    async fn start_with(broker: &Broker, prefix: &str, node: u16, extra: &str) -> KafkaGateway {
        let config = config_file(broker, prefix, extra);
        let mut child = gateway_command(&config.0, node)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = RecentLines::default();
        let (ready, hangups) = watch_readiness(child.stderr.take().unwrap(), log.clone());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (rows, _) = banner_rows(
            &mut lines,
            &["tcp", "websocket", "admin api"],
            Duration::from_secs(15),
        )
        .await;
        let addr = |row: &str, scheme: &str| -> SocketAddr {
            rows[row]
                .trim_start_matches(scheme)
                .trim_end_matches("/ws")
                .parse()
                .unwrap()
        };
        let listeners = Listeners {
            tcp: addr("tcp", ""),
            ws: addr("websocket", "ws://"),
            admin: addr("admin api", "http://"),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        KafkaGateway {
            child: Some(child),
            ready,
            hangups,
            log,
            node,
            listeners,
            _config: config,
        }
    }

    /// SIGHUP: waits until the gateway says what it reloaded; it goes on.
    async fn hang_up(&self) {
        // Counted before the signal: a gateway quicker than this test has
        // said it already by the time the count would be read after.
        let mut hangups = self.hangups.clone();
        let before = *hangups.borrow();
        let pid = self.child.as_ref().unwrap().id().unwrap().to_string();
        let _ = std::process::Command::new("kill").args(["-HUP", &pid]).status();
        tokio::time::timeout(WAIT, hangups.wait_for(|said| *said > before))
            .await
            .expect("no word of the SIGHUP")
            .expect("the gateway's log ended");
    }

    async fn signal(&mut self, signal: &str) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().unwrap().to_string();
        let _ = std::process::Command::new("kill").args([signal, &pid]).status();
        let status = tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
        if signal == "-TERM" {
            assert!(status.success(), "a clean shutdown exits 0: {status}");
        }
    }
}

/// Waits until `gateway` sees `count` sessions of `user`; returns how long.
async fn wait_presence(gateway: &KafkaGateway, user: &str, count: usize, within: Duration) -> Duration {
    deployment::wait_presence(gateway.admin, user, count, within).await
}

/// The last lines a gateway logged: what a failed test shows of it.
#[derive(Clone, Default)]
struct RecentLines(std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl RecentLines {
    const KEPT: usize = 200;

    fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if lines.len() == Self::KEPT {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }
}

impl Drop for KafkaGateway {
    fn drop(&mut self) {
        // A failure in these multi-process tests is a timing story: tell it.
        if std::thread::panicking() {
            let lines = self
                .log
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            eprintln!(
                "--- the last {} lines of gateway node {}'s log ---",
                lines.len(),
                self.node
            );
            for line in lines.iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// Follows a gateway process's log: its kafka backend says when it is
/// linked, when Kafka is lost and when it is back (each logged once the
/// readiness has changed), and what SIGHUPs it handled (counted). The
/// lines go on to the test's stderr with `JIM_TEST_LOGS` set, and the
/// last ones are kept in `recent`.
fn watch_readiness(
    stderr: ChildStderr,
    recent: RecentLines,
) -> (watch::Receiver<bool>, watch::Receiver<usize>) {
    let (tx, rx) = watch::channel(false);
    let (hangup_tx, hangups) = watch::channel(0);
    let echo = std::env::var_os("JIM_TEST_LOGS").is_some();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("{line}");
            }
            recent.push(&line);
            if line.contains("linked to kafka") || line.contains("kafka is back") {
                tx.send_replace(true);
            } else if line.contains("kafka unavailable") {
                tx.send_replace(false);
            } else if line.contains("SIGHUP: ") {
                hangup_tx.send_modify(|said| *said += 1);
            }
        }
    });
    (rx, hangups)
}

/// Waits until the gateway process reports itself `ready` (or not), and
/// checks that its `/readyz` agrees.
async fn wait_ready(gateway: &KafkaGateway, ready: bool, within: Duration) {
    let mut readiness = gateway.ready.clone();
    tokio::time::timeout(within, readiness.wait_for(|now| *now == ready))
        .await
        .unwrap_or_else(|_| panic!("the gateway never became ready={ready}"))
        .expect("the gateway's log ended");
    let (status, _) = gateway.admin("GET", "/readyz", None).await;
    assert_eq!(status == 200, ready, "/readyz agrees");
}

fn prefix() -> String {
    format!("t{}.", fastrand::u32(..))
}

/// Every record of a topic so far: (key, headers, value).
fn read_topic(
    broker: &Broker,
    topic: &str,
    partitions: i32,
) -> Vec<(String, HashMap<String, String>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", format!("test-{}", fastrand::u64(..)))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .unwrap();
        if high > 0 {
            ends.insert(partition, high);
        }
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ends.is_empty() {
        assert!(Instant::now() < deadline, "could not read {topic}");
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push((key, headers, message.payload().unwrap_or_default().to_vec()));
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_route_c2c_multi_device_presence_s2c_and_kick() {
    let broker = Broker::start().await;
    let prefix = prefix();
    let g1 = KafkaGateway::start(&broker, &prefix, 1).await;
    let g2 = KafkaGateway::start(&broker, &prefix, 2).await;
    let g3 = KafkaGateway::start(&broker, &prefix, 3).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    let mut bob_web = g2.user(Kind::Ws, "bob").await;
    let mut bob_tcp = g3.user(Kind::Tcp, "bob").await;
    wait_presence(&g1, "bob", 2, WAIT).await;
    // A SIGHUP reloads what it can and ends nothing: g2 goes on below.
    g2.hang_up().await;

    // Presence across gateways.
    let (_, body) = g1.admin("GET", "/v1/users/bob/sessions", None).await;
    assert_eq!(session_nodes(&body), [2, 3]);

    // C2C, TCP to WebSocket and TCP, both of bob's sessions.
    let id = alice.send_message(Command::C2C, 1, "bob", "via kafka").await;
    for bob in [&mut bob_web, &mut bob_tcp] {
        let data = json(&bob.recv().await)["data"].clone();
        assert_eq!(
            (data["content"].clone(), data["message_id"].clone()),
            (json!("via kafka"), json!(id))
        );
    }
    // And back from WebSocket.
    wait_presence(&g2, "alice", 1, WAIT).await;
    bob_web.send_message(Command::C2C, 2, "alice", "back").await;
    assert_eq!(json(&alice.recv().await)["data"]["content"], "back");

    // S2C through any gateway's admin API.
    let (status, body) = g3
        .admin(
            "POST",
            "/v1/push",
            Some(r#"{"users":["alice"],"message":{"type":"text","data":{"content":"system"}}}"#),
        )
        .await;
    assert_eq!((status, body["sessions"].clone()), (200, json!(1)), "{body}");
    let frame = alice.recv().await;
    assert_eq!(
        (frame.cmd, json(&frame)["data"]["content"].clone()),
        (Command::S2C, json!("system"))
    );

    // Kick across gateways.
    let (status, body) = g1.admin("POST", "/v1/users/bob/kick", None).await;
    assert_eq!((status, body["kicked"].clone()), (200, json!(2)));
    assert_eq!(bob_web.expect_close(1008).await, "kicked");
    assert_eq!(bob_tcp.expect_close(1008).await, "kicked");
    wait_presence(&g1, "bob", 0, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2g_writes_one_record_per_gateway_and_one_event() {
    let broker = Broker::start().await;
    let prefix = prefix();
    let gateways = [
        KafkaGateway::start(&broker, &prefix, 1).await,
        KafkaGateway::start(&broker, &prefix, 2).await,
        KafkaGateway::start(&broker, &prefix, 3).await,
    ];
    let (status, _) = gateways[0]
        .admin(
            "POST",
            "/v1/groups/team/members",
            Some(r#"{"users":["u1","u2","u3","u4","u5","u6"]}"#),
        )
        .await;
    assert_eq!(status, 200);
    // Two members on each gateway; u1 (on gateway 1) writes.
    let mut members = Vec::new();
    for (i, gateway) in gateways.iter().enumerate() {
        for j in 0..2 {
            let user = format!("u{}", i * 2 + j + 1);
            members.push((
                user.clone(),
                gateway
                    .user(if j == 0 { Kind::Tcp } else { Kind::Ws }, &user)
                    .await,
            ));
        }
    }
    for (user, _) in &members {
        wait_presence(&gateways[0], user, 1, WAIT).await;
    }
    let mut outsider = gateways[2].user(Kind::Tcp, "outsider").await;
    let (_, u1) = &mut members[0];
    let id = u1.send_message(Command::C2G, 5, "team", "all hands").await;
    for (user, raw) in members.iter_mut().skip(1) {
        let frame = raw.recv().await;
        assert_eq!(json(&frame)["data"]["content"], "all hands", "{user}");
    }
    let reply = outsider
        .request(Command::C2G, 6, &text("team", "let me in"))
        .await;
    assert_error(&reply, Command::C2G, 6, 4003);

    // One delivery record per gateway holding members, never one per member.
    let records = read_topic(&broker, &format!("{prefix}deliver"), 4);
    let mut per_gateway: HashMap<String, usize> = HashMap::new();
    for (key, _, value) in &records {
        if String::from_utf8_lossy(value).contains(&id) {
            *per_gateway.entry(key.clone()).or_default() += 1;
        }
    }
    let expected: HashMap<String, usize> = gateways.iter().map(|g| (g.node.to_string(), 1)).collect();
    assert_eq!(per_gateway, expected);
    // One event for it.
    let events = read_topic(&broker, &format!("{prefix}events"), 2);
    let mine: Vec<_> = events
        .iter()
        .filter(|(_, h, _)| h.get("jim-message-id") == Some(&id))
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].0, "group:team");
    assert_eq!(mine[0].1["jim-cmd"], "B102");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_message_is_one_event_in_order_per_conversation() {
    let broker = Broker::start().await;
    let prefix = prefix();
    let g1 = KafkaGateway::start(&broker, &prefix, 1).await;
    let g2 = KafkaGateway::start(&broker, &prefix, 2).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    let mut bob = g2.user(Kind::Tcp, "bob").await;
    let mut carol = g2.user(Kind::Ws, "carol").await;
    wait_presence(&g1, "bob", 1, WAIT).await;
    wait_presence(&g2, "alice", 1, WAIT).await;

    let mut sent: HashMap<&str, Vec<String>> = HashMap::new();
    for seq in 0..30u32 {
        let (raw, to, conversation) = match seq % 3 {
            0 => (&mut alice, "bob", "c2c:alice\u{0}bob"),
            1 => (&mut bob, "alice", "c2c:alice\u{0}bob"),
            _ => (&mut alice, "carol", "c2c:alice\u{0}carol"),
        };
        let id = raw.send_message(Command::C2C, seq, to, &format!("m{seq}")).await;
        sent.entry(conversation).or_default().push(id);
    }
    // A refused message is not an event.
    let reply = alice.request(Command::C2G, 99, &text("nope", "x")).await;
    assert_error(&reply, Command::C2G, 99, 4004);
    let _ = (&mut carol, &mut bob);

    let events = read_topic(&broker, &format!("{prefix}events"), 2);
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for (key, headers, _) in events
        .iter()
        .filter(|(_, h, _)| h.get("jim-type").map(String::as_str) == Some("message"))
    {
        seen.entry(key.clone())
            .or_default()
            .push(headers["jim-message-id"].clone());
    }
    assert_eq!(seen.len(), 2, "two conversations");
    for (conversation, ids) in sent {
        assert_eq!(seen[conversation], ids, "{conversation:?}: once each, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_leaves_at_once_and_a_killed_one_within_the_lease() {
    let broker = Broker::start().await;
    let prefix = prefix();
    let g1 = KafkaGateway::start(&broker, &prefix, 1).await;
    let mut g2 = KafkaGateway::start(&broker, &prefix, 2).await;
    let mut g3 = KafkaGateway::start(&broker, &prefix, 3).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    let _bob = g2.user(Kind::Tcp, "bob").await;
    let _carol = g3.user(Kind::Tcp, "carol").await;
    wait_presence(&g1, "bob", 1, WAIT).await;
    wait_presence(&g1, "carol", 1, WAIT).await;

    // SIGTERM: gone at once (well before the lease).
    g2.signal("-TERM").await;
    let took = wait_presence(&g1, "bob", 0, WAIT).await;
    assert!(
        took < Duration::from_millis(LEASE_MS),
        "left in {took:?}, not at once"
    );

    // SIGKILL: still owning carol for a while, gone within the lease.
    g3.signal("-KILL").await;
    let killed = Instant::now();
    let (_, body) = g1.admin("GET", "/v1/users/carol/sessions", None).await;
    assert_eq!(
        body["sessions"].as_array().unwrap().len(),
        1,
        "a killed gateway owns its users until the lease ends"
    );
    wait_presence(&g1, "carol", 0, Duration::from_millis(LEASE_MS * 2)).await;
    assert!(killed.elapsed() < Duration::from_millis(LEASE_MS * 2));

    // Messages to carol are no longer sent to the dead gateway.
    let before = read_topic(&broker, &format!("{prefix}deliver"), 4).len();
    let id = alice.send_message(Command::C2C, 1, "carol", "anyone?").await;
    let after = read_topic(&broker, &format!("{prefix}deliver"), 4);
    assert_eq!(after.len(), before, "no delivery record for a dead gateway");
    assert!(
        !after
            .iter()
            .any(|(_, _, v)| String::from_utf8_lossy(v).contains(&id))
    );
}

/// A stopped gateway (SIGTERM) delivers to its own sessions everything it
/// acked before their `A999`, though in kafka mode a delivery comes back
/// through the broker after its route was acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_stopped_mid_traffic_delivers_to_its_sessions_everything_it_acked() {
    let broker = Broker::start().await;
    let prefix = prefix();
    let mut g1 = KafkaGateway::start_with(
        &broker,
        &prefix,
        1,
        "\n[limits]\nmessages_per_sec = 100000\nmessage_burst = 100000\n",
    )
    .await;
    let bob = g1.user(Kind::Ws, "bob").await;
    let tcp = g1.listeners.tcp;
    let seen = jim_e2e::stopping::stop_mid_traffic(tcp, bob, g1.signal("-TERM")).await;
    eprintln!("kafka, stopped mid-traffic: {seen:?}");
    assert_eq!(seen.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_gives_5000_then_routing_resumes_by_itself() {
    let mut broker = Broker::start().await;
    let prefix = prefix();
    let g1 = KafkaGateway::start(&broker, &prefix, 1).await;
    let g2 = KafkaGateway::start(&broker, &prefix, 2).await;
    let (status, _) = g1
        .admin(
            "POST",
            "/v1/groups/pair/members",
            Some(r#"{"users":["alice","bob"]}"#),
        )
        .await;
    assert_eq!(status, 200);
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    let mut bob = g2.user(Kind::Ws, "bob").await;
    wait_presence(&g1, "bob", 1, WAIT).await;

    broker.stop().await;
    // Whatever is sent now is refused (5000), never acked; connections stay.
    let reply = alice
        .request(Command::C2C, 1, &text("bob", "during the outage"))
        .await;
    let reason = assert_error(&reply, Command::C2C, 1, 5000);
    assert!(
        reason.starts_with("routing backend unavailable: kafka"),
        "{reason}"
    );
    wait_ready(&g1, false, Duration::from_secs(10)).await;
    let reply = alice.request(Command::C2C, 2, &text("bob", "still down?")).await;
    assert_error(&reply, Command::C2C, 2, 5000);
    bob.expect_silence().await;

    // Back (empty: tansu's memory storage): the gateways rebuild topics, presence and groups.
    broker.restart().await;
    wait_ready(&g1, true, Duration::from_secs(20)).await;
    wait_ready(&g2, true, Duration::from_secs(20)).await;
    wait_presence(&g1, "bob", 1, Duration::from_secs(10)).await;
    // Both gateways said they are back only after re-announcing presence
    // and groups with a fresh producer: the next message routes.
    let reply = alice.request(Command::C2C, 3, &text("bob", "back")).await;
    assert_eq!(json(&reply)["type"], "ack", "{}", body_str(&reply));
    assert_eq!(json(&bob.recv().await)["data"]["content"], "back");
    let (_, body) = g2.admin("GET", "/v1/groups/pair/members", None).await;
    assert_eq!(
        body["members"],
        json!(["alice", "bob"]),
        "groups were re-announced"
    );
}

#[tokio::test]
async fn bad_kafka_settings_fail_at_start_with_a_clear_message() {
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = std::env::temp_dir().join(format!("jim-kafka-bad-{}.toml", fastrand::u64(..)));
    let unreachable = format!("127.0.0.1:{port}");
    let cases = [
        (
            format!(
                "[kafka]\nbootstrap = \"{unreachable}\"\nstartup_timeout_ms = 1500\n[inbox]\nstore = \"off\"\n"
            ),
            1,
            unreachable.as_str(),
        ),
        // kafka mode keeps inboxes in Redis (or none): a gateway's own store
        // would be lost to the users who reconnect elsewhere.
        (
            "[inbox]\nstore = \"memory\"\n".to_owned(),
            78,
            "kafka mode keeps inboxes in Redis",
        ),
        (
            "[inbox]\nstore = \"disk\"\n".to_owned(),
            78,
            "kafka mode keeps inboxes in Redis",
        ),
        (
            "[kafka]\ndelivery_partitions = 0\n[inbox]\nstore = \"off\"\n".to_owned(),
            78,
            "kafka partitions must be at least 1",
        ),
        (
            "[kafka]\nbootstrapp = \"x\"\n".to_owned(),
            78,
            "unknown field `bootstrapp`",
        ),
        // TLS and SASL settings reach librdkafka as they are: its own
        // check of the CA file is what refuses this one.
        (
            format!(
                "[kafka]\nbootstrap = \"{unreachable}\"\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"jim\"\n\"sasl.password\" = \"secret\"\n\"ssl.ca.location\" = \"/nonexistent/kafka-ca.pem\"\n[inbox]\nstore = \"off\"\n"
            ),
            1,
            "ssl.ca.location",
        ),
    ];
    for (config, code, says) in cases {
        std::fs::write(&path, config).unwrap();
        let out = gateway_command(&path, 1)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        // librdkafka's own lines stay out of the log; what it says is told
        // once, in words.
        assert!(!stderr.contains("|FAIL|") && !stderr.contains("%3|"), "{stderr}");
    }
    // No broker: one warning naming the address, then an error that says
    // what to check.
    std::fs::write(&path, cases_unreachable(&unreachable)).unwrap();
    let out = gateway_command(&path, 1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .matches(&format!("no answer from kafka at {unreachable} after 1 s"))
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("is a broker running there"), "{stderr}");
    let _ = std::fs::remove_file(&path);
}

/// A kafka-mode configuration whose broker is not there.
fn cases_unreachable(unreachable: &str) -> String {
    format!("[kafka]\nbootstrap = \"{unreachable}\"\nstartup_timeout_ms = 1500\n[inbox]\nstore = \"off\"\n")
}

/// How long traffic runs before and after a fault.
const TRAFFIC: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_broker_that_lost_its_data_every_acked_message_is_delivered() {
    let mut broker = Broker::start().await;
    let prefix = prefix();
    let g1 = KafkaGateway::start(&broker, &prefix, 1).await;
    let g2 = KafkaGateway::start(&broker, &prefix, 2).await;
    let bob = g2.user(Kind::Tcp, "bob").await;
    wait_presence(&g1, "bob", 1, WAIT).await;
    let deliveries = deployment::Deliveries::collect(bob);

    let (stop, stopped) = watch::channel(false);
    let senders: Vec<_> = (0..2)
        .map(|i| {
            let stopped = stopped.clone();
            let addr = g1.tcp;
            tokio::spawn(async move {
                deployment::pipelined(
                    addr,
                    &format!("alice{i}"),
                    "bob",
                    8,
                    Duration::from_millis(10),
                    stopped,
                )
                .await
            })
        })
        .collect();
    // Enough traffic that the delivery partition's offsets are well ahead
    // of where a recreated log starts.
    tokio::time::sleep(TRAFFIC).await;
    broker.stop().await;
    // Not ready within one heartbeat (a third of the lease), as documented.
    let heartbeat = Duration::from_millis(LEASE_MS / 3);
    wait_ready(&g1, false, heartbeat).await;
    wait_ready(&g2, false, heartbeat).await;
    broker.restart().await;
    let restarted = Instant::now();
    wait_ready(&g1, true, Duration::from_secs(20)).await;
    wait_ready(&g2, true, Duration::from_secs(20)).await;
    tokio::time::sleep(TRAFFIC * 4).await;
    stop.send_replace(true);

    let mut outcome = deployment::Outcome::default();
    for sender in senders {
        outcome.merge(sender.await.unwrap());
    }
    // Acked by the broker that died: Kafka confirmed them, then lost those
    // it had not yet handed to gateway 2 with its data (durability is the
    // broker's; the inbox will make them survive). Acked by the new one:
    // every one delivered, though its logs start again from offset 0.
    let delivered = deliveries.wait_for(&outcome.acked, Duration::from_secs(10)).await;
    let since = outcome.acked_since(restarted);
    let with_the_data = outcome.lost(&delivered).len() - since.lost(&delivered).len();
    eprintln!(
        "kafka, broker lost its data: {} acked by the broker that died, {with_the_data} of them lost with its data",
        outcome.acked.len() - since.acked.len()
    );
    deployment::assert_acked_were_delivered(
        "kafka, acked by the broker that came back empty",
        &since,
        &delivered,
    );
    assert!(!since.acked.is_empty(), "messages were acked after the restart");
    assert!(outcome.refused > 0, "the outage was seen by the senders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_senders_gateway_is_killed_every_message_it_acked_is_delivered() {
    let broker = Broker::start().await;
    let prefix = prefix();
    let mut g1 = KafkaGateway::start(&broker, &prefix, 1).await;
    let g2 = KafkaGateway::start(&broker, &prefix, 2).await;
    let bob = g2.user(Kind::Tcp, "bob").await;
    wait_presence(&g1, "bob", 1, WAIT).await;
    let deliveries = deployment::Deliveries::collect(bob);

    let (stop, stopped) = watch::channel(false);
    let senders: Vec<_> = (0..2)
        .map(|i| {
            let stopped = stopped.clone();
            let addr = g1.tcp;
            tokio::spawn(async move {
                deployment::pipelined(
                    addr,
                    &format!("alice{i}"),
                    "bob",
                    8,
                    Duration::from_millis(10),
                    stopped,
                )
                .await
            })
        })
        .collect();
    // Killed in full flow: once traffic is reaching bob.
    deliveries.wait_count(50, Duration::from_secs(20)).await;
    g1.signal("-KILL").await;
    stop.send_replace(true);
    let mut outcome = deployment::Outcome::default();
    for sender in senders {
        outcome.merge(sender.await.unwrap());
    }
    let delivered = deliveries.wait_for(&outcome.acked, WAIT).await;
    deployment::assert_acked_were_delivered("kafka, the senders' gateway killed", &outcome, &delivered);
    assert!(!outcome.acked.is_empty());
}

/// The inbox in Redis, for gateways of a test.
fn redis_inbox(redis: &jim_test_util::redis::RedisServer) -> String {
    format!("[inbox]\nstore = \"redis\"\nredis_url = \"{}\"\n", redis.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_an_offline_user_gets_what_another_gateway_acked_and_retries_are_recognised() {
    let broker = Broker::start().await;
    let redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    let inbox = redis_inbox(&redis);
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &inbox).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &inbox).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    for i in 1..=3 {
        alice.send_message(Command::C2C, i, "bob", &format!("m{i}")).await;
    }
    let mut bob = g2.raw(Kind::Ws).await;
    let ok = resume(&mut bob, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    let epoch = ok["inbox"]["epoch"].as_str().unwrap().to_owned();
    assert_eq!(
        ok["inbox"],
        json!({"epoch": epoch, "offset": 3, "recovered": false})
    );
    let expected: Vec<_> = (1..=3).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(deliveries(&mut bob, 3).await, expected);
    wait_presence(&g1, "bob", 1, WAIT).await;
    alice.send_message(Command::C2C, 4, "bob", "m4").await;
    assert_eq!(deliveries(&mut bob, 1).await, vec![(4, "m4".to_owned())]);

    // A retry on the other gateway is acked as the original, not delivered.
    let body = r#"{"type":"text","data":{"receiver_id":"bob","content":"once","client_msg_id":"k-1"}}"#;
    let first = assert_ack(
        &alice.request(Command::C2C, 5, body).await,
        Command::C2C,
        5,
        "bob",
    );
    let mut laptop = g2.user(Kind::Tcp, "alice").await;
    let again = assert_ack(
        &laptop.request(Command::C2C, 6, body).await,
        Command::C2C,
        6,
        "bob",
    );
    assert_eq!(first, again);
    assert_eq!(deliveries(&mut bob, 1).await, vec![(5, "once".to_owned())]);
    bob.expect_silence().await;
    let (status, state) = g1.admin("GET", "/v1/users/bob/inbox", None).await;
    assert_eq!(
        (status, state["head"].clone(), state["epoch"].clone()),
        (200, json!(5), json!(epoch))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_user_messaged_from_another_gateway_the_moment_it_logs_in_gets_every_message() {
    let broker = Broker::start().await;
    let redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    let inbox = redis_inbox(&redis);
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &inbox).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &inbox).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    let mut racers = Vec::new();
    for i in 0..200u32 {
        let user = format!("racer{i}");
        let mut racer = g2.raw(Kind::Tcp).await;
        // No wait at all between the login and the message.
        racer
            .send_body(
                Command::Auth,
                1,
                &format!(r#"{{"token":"{user}","since":{{"epoch":"","offset":0}}}}"#),
            )
            .await;
        alice.send_message(Command::C2C, i + 1, &user, "now").await;
        racers.push((user, racer));
    }
    for (user, mut racer) in racers {
        let got = loop {
            let frame = racer.recv().await;
            if is_delivery(&frame) {
                break frame.seq;
            }
        };
        assert_eq!(got, 1, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_when_the_recipients_gateway_is_killed_it_gets_everything_acked_on_the_other_once() {
    let broker = Broker::start().await;
    let redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    let inbox = redis_inbox(&redis);
    let unlimited = format!("{inbox}[limits]\nmessages_per_sec = 100000\nmessage_burst = 100000\n");
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &unlimited).await;
    let mut g2 = KafkaGateway::start_with(&broker, &prefix, 2, &unlimited).await;
    let mut bob = g2.raw(Kind::Tcp).await;
    let ok = resume(&mut bob, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    let epoch = ok["inbox"]["epoch"].as_str().unwrap().to_owned();
    wait_presence(&g1, "bob", 1, WAIT).await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sender = {
        let addr = g1.tcp;
        tokio::spawn(async move {
            deployment::pipelined(addr, "alice", "bob", 16, Duration::from_millis(2), stopped).await
        })
    };
    // Bob reads what arrives until his gateway dies under him.
    let mut seen = Vec::new();
    let reading = async {
        while let Ok(frame) = bob.next_inner().await {
            if is_delivery(&frame) {
                seen.push((
                    frame.seq,
                    json(&frame)["data"]["message_id"].as_str().unwrap().to_owned(),
                ));
            }
        }
    };
    let kill = async {
        tokio::time::sleep(3 * TRAFFIC).await;
        g2.signal("-KILL").await;
    };
    tokio::join!(reading, kill);
    tokio::time::sleep(2 * TRAFFIC).await;
    stop.send_replace(true);
    let outcome = sender.await.unwrap();

    // Back on the other gateway, from the last offset bob processed.
    let last = seen.last().map_or(0, |(seq, _)| *seq);
    let mut bob = g1.raw(Kind::Ws).await;
    let ok = resume(
        &mut bob,
        "bob",
        Some(&format!(r#"{{"epoch":"{epoch}","offset":{last}}}"#)),
    )
    .await;
    assert_eq!(ok["inbox"]["recovered"], true, "{ok}");
    let head = ok["inbox"]["offset"].as_u64().unwrap() as u32;
    let mut frames = delivered_ids(&mut bob, (head - last) as usize).await;
    let offsets: Vec<u32> = seen
        .iter()
        .map(|(s, _)| *s)
        .chain(frames.iter().map(|(s, _)| *s))
        .collect();
    assert_eq!(
        offsets,
        (1..=head).collect::<Vec<_>>(),
        "every offset once, in order"
    );
    seen.append(&mut frames);
    let delivered: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    deployment::assert_acked_were_delivered("kafka+redis, recipient's gateway killed", &outcome, &delivered);
    assert!(!outcome.acked.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_restarted_under_traffic_every_acked_message_is_delivered_once() {
    use jim_client::{Backoff, Endpoint, Event, Session};
    let broker = Broker::start().await;
    let mut redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    let inbox = redis_inbox(&redis);
    let unlimited = format!("{inbox}[limits]\nmessages_per_sec = 100000\nmessage_burst = 100000\n");
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &unlimited).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &unlimited).await;
    // Bob as an application would be: a session that reconnects and resumes
    // by itself (a store that cannot be read closes a session: 1011).
    let backoff = Backoff {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    };
    let mut bob = Session::builder(Endpoint::parse(&format!("tcp://{}", g2.tcp)), "bob")
        .from_start()
        .backoff(backoff)
        .connect()
        .await
        .unwrap();
    let (ids, seen) = tokio::sync::watch::channel(Vec::<(u32, String)>::new());
    let collector = tokio::spawn(async move {
        while let Ok(event) = bob.next().await {
            if let Event::Message { offset, body, .. } = event {
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let id = body["data"]["message_id"].as_str().unwrap().to_owned();
                ids.send_modify(|ids| ids.push((offset, id)));
            }
        }
    });
    wait_presence(&g1, "bob", 1, WAIT).await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let stopped = stopped.clone();
            let addr = g1.tcp;
            tokio::spawn(async move {
                deployment::pipelined(
                    addr,
                    &format!("alice{i}"),
                    "bob",
                    16,
                    Duration::from_millis(2),
                    stopped,
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(2 * TRAFFIC).await;
    redis.kill().await;
    tokio::time::sleep(TRAFFIC).await;
    redis.restart().await;
    tokio::time::sleep(3 * TRAFFIC).await;
    stop.send_replace(true);
    let mut outcome = deployment::Outcome::default();
    for sender in senders {
        outcome.merge(sender.await.unwrap());
    }
    let mut watching = seen.clone();
    let all_in = |got: &Vec<(u32, String)>| {
        let have: std::collections::HashSet<&String> = got.iter().map(|(_, id)| id).collect();
        outcome.acked.iter().all(|id| have.contains(id))
    };
    let _ = tokio::time::timeout(WAIT, watching.wait_for(all_in)).await;
    collector.abort();
    let got = seen.borrow().clone();
    let offsets: Vec<u32> = got.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(
        offsets,
        (1..=offsets.len() as u32).collect::<Vec<_>>(),
        "every offset once, in order"
    );
    let delivered: Vec<String> = got.into_iter().map(|(_, id)| id).collect();
    deployment::assert_acked_were_delivered("kafka+redis, redis restarted", &outcome, &delivered);
    assert!(outcome.refused > 0, "the outage was seen by the senders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_messages_are_acked_and_delivered_in_the_order_sent_and_one_refusal_stays_one() {
    let broker = Broker::start().await;
    let redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    // Many in flight at once, each stored in Redis and produced to Kafka.
    let extra = format!(
        "[limits]\nmessages_per_sec = 100000\nmessage_burst = 100000\nroutes_in_flight = 16\n{}",
        redis_inbox(&redis)
    );
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &extra).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &extra).await;
    for kind in [Kind::Tcp, Kind::Ws] {
        let bob_name = format!("bob-{kind:?}");
        let mut bob = g2.user(kind.other(), &bob_name).await;
        wait_presence(&g1, &bob_name, 1, WAIT).await;
        let mut alice = g1.user(kind, "alice").await;
        const N: u32 = 300;
        // The 150th is refused (no such group): that one alone.
        deployment::send_burst(&mut alice, &bob_name, N, 150).await;
        // Offsets 1 to 299 in bob's inbox, delivered live in that order.
        let expected: Vec<(u32, String)> = (1..=N)
            .filter(|i| *i != 150)
            .enumerate()
            .map(|(k, i)| (k as u32 + 1, format!("m{i}")))
            .collect();
        assert_eq!(deliveries(&mut bob, N as usize - 1).await, expected, "{kind:?}");
    }
}

/// Contract v1.2, sender copies across gateways through Kafka, with the
/// inbox in Redis: the other device gets each copy live once, a device
/// signing in later gets them through `since`, the ack names the offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_senders_other_devices_get_its_copies() {
    let broker = Broker::start().await;
    let redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    let inbox = redis_inbox(&redis);
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &inbox).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &inbox).await;
    let mut phone = g1.user(Kind::Tcp, "alice").await;
    let mut laptop = g2.user(Kind::Ws, "alice").await;
    let mut bob = g2.user(Kind::Tcp, "bob").await;
    wait_presence(&g1, "alice", 2, WAIT).await;
    wait_presence(&g1, "bob", 1, WAIT).await;

    let ack = phone
        .request(Command::C2C, 1, &text("bob", "from the phone"))
        .await;
    assert_ack(&ack, Command::C2C, 1, "bob");
    assert_eq!(json(&ack)["data"]["offset"], 1);
    assert_eq!(
        deliveries(&mut laptop, 1).await,
        vec![(1, "from the phone".to_owned())]
    );
    assert_eq!(
        deliveries(&mut bob, 1).await,
        vec![(1, "from the phone".to_owned())]
    );
    let ack = laptop
        .request(Command::C2C, 2, &text("bob", "from the laptop"))
        .await;
    assert_eq!(json(&ack)["data"]["offset"], 2);
    assert_eq!(
        deliveries(&mut phone, 1).await,
        vec![(2, "from the laptop".to_owned())]
    );
    phone.expect_silence().await;
    laptop.expect_silence().await;

    let mut tablet = g1.raw(Kind::Tcp).await;
    let ok = resume(&mut tablet, "alice", Some(r#"{"epoch":"","offset":0}"#)).await;
    assert_eq!(ok["inbox"]["offset"], 2);
    assert_eq!(
        deliveries(&mut tablet, 2).await,
        vec![
            (1, "from the phone".to_owned()),
            (2, "from the laptop".to_owned())
        ]
    );
    tablet.expect_silence().await;
}

/// Contract v1.2, typing: relayed to a user on another gateway through
/// Kafka, never echoed, never on the events topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_crosses_gateways_and_is_never_an_event() {
    let broker = Broker::start().await;
    let prefix = prefix();
    let g1 = KafkaGateway::start(&broker, &prefix, 1).await;
    let g2 = KafkaGateway::start(&broker, &prefix, 2).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    let mut bob = g2.user(Kind::Ws, "bob").await;
    wait_presence(&g1, "bob", 1, WAIT).await;
    alice
        .send_body(
            Command::Typing,
            1,
            r#"{"type":"typing","data":{"receiver_id":"bob","state":"on"}}"#,
        )
        .await;
    let frame = bob.recv().await;
    assert_eq!((frame.cmd, frame.seq), (Command::Typing, 0));
    assert_eq!(
        json(&frame)["data"],
        json!({"receiver_id": "bob", "state": "on", "sender_id": "alice"})
    );
    alice.expect_silence().await;
    let id = alice.send_message(Command::C2C, 2, "bob", "after").await;
    let events = read_topic(&broker, &format!("{prefix}events"), 2);
    let ids: Vec<_> = events
        .iter()
        .map(|(_, headers, _)| headers.get("jim-message-id").cloned().unwrap_or_default())
        .collect();
    assert_eq!(ids, [id], "one event: the message, not the typing");
}

/// Contract v1.2, history: answered from Redis on any gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_history_is_served_on_any_gateway() {
    let broker = Broker::start().await;
    let redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    let inbox = redis_inbox(&redis);
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &inbox).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &inbox).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    for (seq, content) in [(1, "one"), (2, "two")] {
        alice.send_message(Command::C2C, seq, "bob", content).await;
    }
    let mut bob = g2.user(Kind::Ws, "bob").await;
    let page = json(
        &bob.request(
            Command::History,
            3,
            r#"{"op":"history","conversation":{"user":"alice"}}"#,
        )
        .await,
    );
    let contents: Vec<_> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["body"]["data"]["content"].clone())
        .collect();
    assert_eq!(contents, [json!("two"), json!("one")]);
    let list = json(
        &bob.request(Command::History, 4, r#"{"op":"conversations"}"#)
            .await,
    );
    assert_eq!(list["conversations"][0]["unread"], 2);
}

/// Contract v1.2, receipts through Kafka with the inbox in Redis: the
/// other user on the other gateway gets the receipt live, and it is an
/// event of type `receipt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_receipts_cross_gateways_and_are_events() {
    let broker = Broker::start().await;
    let redis = jim_test_util::redis::RedisServer::start().await;
    let prefix = prefix();
    let inbox = redis_inbox(&redis);
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &inbox).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &inbox).await;
    let mut alice = g1.user(Kind::Tcp, "alice").await;
    let mut bob = g2.user(Kind::Ws, "bob").await;
    wait_presence(&g1, "bob", 1, WAIT).await;
    wait_presence(&g2, "alice", 1, WAIT).await;
    let id = bob.send_message(Command::C2C, 1, "alice", "read me").await;
    deliveries(&mut alice, 1).await;
    let mark =
        format!(r#"{{"type":"ack","data":{{"receiver_id":"bob","message_id":"{id}","status":"read"}}}}"#);
    alice.send_body(Command::C2C, 2, &mark).await;
    let frame = bob.recv().await;
    assert_eq!(json(&frame)["data"]["status"], "read");
    alice.send_body(Command::C2C, 3, &mark).await;
    bob.expect_silence().await;
    // Bob may have the receipt before its event is written (the two writes
    // run together): read the topic until both are there.
    let deadline = Instant::now() + WAIT;
    let kinds = loop {
        let events = read_topic(&broker, &format!("{prefix}events"), 2);
        let kinds: Vec<_> = events
            .iter()
            .map(|(_, headers, _)| headers["jim-type"].clone())
            .collect();
        if kinds.len() >= 2 || Instant::now() > deadline {
            break kinds;
        }
    };
    assert_eq!(kinds, ["message", "receipt"]);
}

/// Contract v1.2, hooks and events in kafka mode: the gateway that takes a
/// message calls the before-send hook and tells `message.accepted` and
/// `push.needed` (placing recipients by its view of every gateway); a
/// user's presence is told by one gateway (the user's home), once for
/// the deployment whichever gateways hold the sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_and_events_are_told_once_for_the_deployment() {
    use jim_e2e::receiver::{HookAnswer, Receiver};
    const SECRET: &str = "the application's shared secret";
    let receiver = Receiver::start().await;
    receiver.check_signatures(SECRET);
    let broker = Broker::start().await;
    let prefix = prefix();
    let hooks = format!(
        "\n[hooks]\nbefore_send_url = {:?}\nevents_url = {:?}\nsecret = {SECRET:?}\noffline_delay_ms = 500\nbatch_wait_ms = 20\n",
        receiver.url("/hook"),
        receiver.url("/events")
    );
    let g1 = KafkaGateway::start_with(&broker, &prefix, 1, &hooks).await;
    let g2 = KafkaGateway::start_with(&broker, &prefix, 2, &hooks).await;
    // Both gateways see both (a session counts once its gateway is seen
    // alive): then they agree on each user's home.
    let _zed1 = g1.user(Kind::Tcp, "zed").await;
    let _zed2 = g2.user(Kind::Tcp, "zed").await;
    wait_presence(&g1, "zed", 2, WAIT).await;
    wait_presence(&g2, "zed", 2, WAIT).await;
    let users = jim_e2e::receiver::presence_of;
    let mut phone = g1.user(Kind::Tcp, "alice").await;
    let laptop = g2.user(Kind::Ws, "alice").await;
    wait_presence(&g1, "alice", 2, WAIT).await;
    wait_presence(&g2, "alice", 2, WAIT).await;
    let got = receiver
        .events_until(WAIT, |got| !users(got, "alice").is_empty())
        .await;
    assert_eq!(users(&got, "alice"), ["user.online"]);

    // Bob has no session on any gateway: one push.
    let ack = phone.request(Command::C2C, 2, &text("bob", "hello")).await;
    let id = assert_ack(&ack, Command::C2C, 2, "bob");
    assert_eq!(receiver.next_hook().await.json()["sender"], "alice");
    let got = receiver.events(2).await;
    assert_eq!(
        got.iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["message.accepted", "push.needed"]
    );
    assert_eq!(
        (&got[1]["user"], &got[1]["message_id"]),
        (&json!("bob"), &json!(id))
    );

    // Bob on the other gateway: no push once the view places him there.
    let mut bob = g2.user(Kind::Tcp, "bob").await;
    wait_presence(&g1, "bob", 1, WAIT).await;
    let got = receiver
        .events_until(WAIT, |got| !users(got, "bob").is_empty())
        .await;
    assert_eq!(users(&got, "bob"), ["user.online"]);
    phone.send_message(Command::C2C, 3, "bob", "again").await;
    assert_eq!(json(&bob.recv().await)["data"]["content"], "again");
    let got = receiver.events(1).await;
    assert_eq!(got[0]["type"], "message.accepted");

    // The hook's deny, through the gateway that took the message.
    receiver.answer(HookAnswer::Json(
        r#"{"verdict":"deny","code":4403,"reason":"no"}"#.into(),
    ));
    let reply = bob.request(Command::C2C, 4, &text("alice", "spam")).await;
    assert_eq!(assert_error(&reply, Command::C2C, 4, 4403), "no");

    // Alice leaves one gateway (still online); then the other.
    drop(phone);
    wait_presence(&g2, "alice", 1, WAIT).await;
    drop(laptop);
    let got = receiver
        .events_until(Duration::from_secs(10), |got| !users(got, "alice").is_empty())
        .await;
    assert_eq!(users(&got, "alice"), ["user.offline"]);
    assert!(
        receiver
            .events_within(Duration::from_millis(800))
            .await
            .is_empty()
    );
    assert_eq!(receiver.badly_signed(), 0);

    // The events topic has them too: the messages, and presence and pushes.
    let records = read_topic(&broker, &format!("{prefix}events"), 2);
    let of = |kind: &str, user: &str| {
        records
            .iter()
            .filter(|(key, headers, _)| headers["jim-type"] == kind && key == user)
            .count()
    };
    assert_eq!((of("user.online", "alice"), of("user.offline", "alice")), (1, 1));
    assert_eq!(of("push.needed", "bob"), 1);
    let push = records
        .iter()
        .find(|(_, headers, _)| headers["jim-type"] == "push.needed")
        .unwrap();
    let push: serde_json::Value = serde_json::from_slice(&push.2).unwrap();
    assert_eq!((&push["user"], &push["message_id"]), (&json!("bob"), &json!(id)));
    assert!(
        records
            .iter()
            .any(|(_, headers, _)| headers["jim-type"] == "message")
    );
}
