//! The Kafka routing backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jim_router::inbox::Appended;
use jim_router::{
    ClientAck, Hub, Inbox, InboxRead, InboxState, Observer, Observers, Outbox, Outgoing, Receipt, Recipients,
    Router, RouterError, SessionId, SessionInfo, Target, UserId, recipients,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::positions::{Mark, Positions, realigned};
use crate::records::{self, DeliveryHead, Heartbeat, Presence, SessionRecord};
use crate::view::View;
use crate::{KafkaConfig, KafkaError};

/// When a new session checks its inbox's head again: presence spreads
/// through Kafka in about a consumer's fetch wait, a lease is the most.
const PRESENCE_SETTLES: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(3)];

/// A message's delivery records, the sessions they reach, the sender's own
/// offset (a group message), and how many users it went to.
type Planned = (Vec<DeliveryHead>, usize, Option<u32>, usize);

/// The topics, by role.
#[derive(Debug, Clone)]
struct Topics {
    gateways: String,
    presence: String,
    groups: String,
    deliver: String,
    events: String,
}

impl Topics {
    fn of(config: &KafkaConfig) -> Topics {
        Topics {
            gateways: config.topic("gateways"),
            presence: config.topic("presence"),
            groups: config.topic("groups"),
            deliver: config.topic("deliver"),
            events: config.topic("events"),
        }
    }

    fn state(&self) -> [&str; 3] {
        [&self.gateways, &self.presence, &self.groups]
    }
}

/// The `kafka` routing backend: gateways coordinated through Kafka topics,
/// with no central process.
///
/// See `docs/architecture.md` for the topics. In short: presence, groups
/// and gateway heartbeats live in compacted topics every gateway reads from
/// the beginning and follows; a message becomes one record per gateway
/// holding recipients, in the delivery partition that gateway reads by
/// explicit assignment, plus one record in the events topic for
/// applications. The sender's ack waits for Kafka to confirm every one of
/// these writes (acks=all, idempotent producer).
#[derive(Clone)]
pub struct KafkaBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    topics: Topics,
    node: u16,
    /// This run of the gateway.
    epoch: u64,
    hub: Hub,
    view: View,
    observers: Observers,
    /// Every user's inbox, in Redis (or off): appended before any record is
    /// produced, so Kafka carries each recipient's offset.
    inbox: Inbox,
    /// Replaced when it fails fatally (an idempotent producer does when a
    /// broker comes back without its state).
    producer: std::sync::RwLock<FutureProducer<Health>>,
    admin: AdminClient<DefaultClientContext>,
    /// Kafka took our last heartbeat.
    ready: AtomicBool,
    /// What librdkafka says between heartbeats.
    health: Health,
    presence_version: AtomicU64,
    /// Asks the consume loop to find its place in the logs again.
    realign_asks: mpsc::Sender<oneshot::Sender<Result<(), String>>>,
    /// The last probe of our delivery partition the consume loop read.
    probe_seen: watch::Sender<u64>,
    next_probe: AtomicU64,
    closed: CancellationToken,
}

/// librdkafka's word on the brokers, between two heartbeats: the moment
/// every broker connection is down, the gateway stops calling itself ready
/// instead of waiting for a heartbeat to time out.
#[derive(Debug, Clone, Default)]
struct Health {
    brokers_down: Arc<AtomicBool>,
}

impl ClientContext for Health {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_down.store(true, Ordering::Release);
        }
        tracing::debug!(error = %error, reason, "librdkafka");
    }
}

impl std::fmt::Debug for KafkaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBackend")
            .field("bootstrap", &self.inner.config.bootstrap)
            .field("node", &self.inner.node)
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// A client's configuration: the backend's `defaults` for its role, then
/// the operator's `[kafka.properties]`, which win.
fn client_config(config: &KafkaConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.bootstrap);
    for (key, value) in defaults {
        client.set(*key, *value);
    }
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    // librdkafka prints its own lines to stderr (`%3|...|FAIL|...`), many
    // a second while a broker is away. What matters reaches the log through
    // the clients' contexts, in words, once; its own lines only when the
    // operator asks for them (`debug` or `log_level` in [kafka.properties]).
    let asked = ["debug", "log_level"]
        .iter()
        .any(|key| config.properties.contains_key(*key));
    if !asked {
        // Also while the client is made (a CA file that cannot be read).
        client.set("log_level", "2");
    }
    client.set_log_level(if asked {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Critical
    });
    client
}

fn unavailable(error: impl std::fmt::Display) -> RouterError {
    RouterError::Unavailable {
        reason: format!("kafka: {error}"),
    }
}

impl KafkaBackend {
    /// Connects to Kafka, creates missing topics, reads the deployment's
    /// state, and announces this gateway.
    ///
    /// # Errors
    /// A [`KafkaError`] saying what failed: an invalid configuration, Kafka
    /// unreachable within the start-up timeout, or topics that cannot be
    /// created.
    pub async fn start(
        config: KafkaConfig,
        node: u16,
        observers: Vec<Arc<dyn Observer>>,
        inbox: Inbox,
    ) -> Result<KafkaBackend, KafkaError> {
        config.validate().map_err(KafkaError::Config)?;
        let topics = Topics::of(&config);
        let admin: AdminClient<DefaultClientContext> = client_config(&config, &[]).create()?;
        tracing::info!(
            "connecting to kafka at {} (up to {} ms: kafka.startup_timeout_ms)",
            config.bootstrap,
            config.startup_timeout_ms
        );
        {
            let ensured = ensure_topics(&admin, &config, &topics, config.startup_timeout());
            tokio::pin!(ensured);
            // A broker that is not there is said once, early, in words; the
            // error at the timeout says what to check.
            tokio::select! {
                done = &mut ensured => done?,
                () = tokio::time::sleep(SLOW_START) => {
                    tracing::warn!(
                        "no answer from kafka at {} after {} s; waiting up to {} ms (is it running?)",
                        config.bootstrap,
                        SLOW_START.as_secs(),
                        config.startup_timeout_ms
                    );
                    ensured.await?;
                }
            }
        }

        let health = Health::default();
        let producer = new_producer(&config, &health)?;
        let epoch = fastrand::u64(1..);
        let consumer: StreamConsumer = client_config(&config, CONSUMER_DEFAULTS)
            .set(
                "group.id",
                format!("{}gateway-{node}-{epoch}", config.topic_prefix),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;

        let (realign_asks, realign_requests) = mpsc::channel(1);
        let inner = Arc::new(Inner {
            topics,
            node,
            epoch,
            hub: Hub::new(),
            view: View::default(),
            observers: observers.into(),
            inbox,
            producer: std::sync::RwLock::new(producer),
            admin,
            ready: AtomicBool::new(false),
            health,
            presence_version: AtomicU64::new(0),
            realign_asks,
            probe_seen: watch::Sender::new(0),
            next_probe: AtomicU64::new(1),
            closed: CancellationToken::new(),
            config,
        });

        // Where the compacted topics end now: the view is complete once read up to there.
        let ends = Arc::clone(&inner).state_ends(&consumer).await?;
        let mut assignment = TopicPartitionList::new();
        let mut positions = Positions::default();
        for topic in inner.topics.state() {
            for partition in 0..inner.config.state_partitions {
                assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
                positions.follow(topic, partition);
            }
        }
        // Deliveries from now on, from this gateway's partition only: no
        // rebalancing. "Now" is an offset read here, not the logical end,
        // which the fetcher resolves later (after the probe below, maybe).
        let delivery_partition = inner.delivery_partition(node);
        let (_, now) = consumer
            .fetch_watermarks(
                &inner.topics.deliver,
                delivery_partition,
                Timeout::After(inner.config.startup_timeout()),
            )
            .map_err(|e| {
                KafkaError::Startup(format!("cannot read offsets of {}: {e}", inner.topics.deliver))
            })?;
        assignment.add_partition_offset(&inner.topics.deliver, delivery_partition, Offset::Offset(now))?;
        positions.follow(&inner.topics.deliver, delivery_partition);
        consumer.assign(&assignment)?;

        let (caught_up, mut caught_up_rx) = tokio::sync::watch::channel(ends.is_empty());
        tokio::spawn(
            Arc::clone(&inner)
                .consume(
                    consumer,
                    Following {
                        ends,
                        caught_up,
                        positions,
                        realign_requests,
                    },
                )
                .instrument(tracing::info_span!("kafka consumer", node)),
        );
        let timeout = inner.config.startup_timeout();
        if tokio::time::timeout(timeout, caught_up_rx.wait_for(|done| *done))
            .await
            .is_err()
        {
            inner.closed.cancel();
            return Err(KafkaError::Startup(format!(
                "could not read the state topics within {} ms",
                inner.config.startup_timeout_ms
            )));
        }
        if let Err(e) = inner.heartbeat().await {
            inner.closed.cancel();
            return Err(KafkaError::Startup(format!(
                "could not write to {}: {e}",
                inner.topics.gateways
            )));
        }
        if let Err(e) = inner.prove_consuming(timeout).await {
            inner.closed.cancel();
            return Err(KafkaError::Startup(format!(
                "could not read back from {}: {e}",
                inner.topics.deliver
            )));
        }
        inner.ready.store(true, Ordering::Release);
        tokio::spawn(
            Arc::clone(&inner)
                .keep_alive()
                .instrument(tracing::info_span!("kafka heartbeat", node)),
        );
        tracing::info!(node, epoch, bootstrap = %inner.config.bootstrap, "linked to kafka");
        Ok(KafkaBackend { inner })
    }

    /// This gateway's sessions.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }
}

/// The consumer's defaults (`[kafka.properties]` may change them).
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "10"),
    ("topic.metadata.refresh.interval.ms", "2000"),
];

/// The producer's defaults (`[kafka.properties]` may change them).
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[("linger.ms", "1")];

/// The producer: every write acknowledged by all in-sync replicas, and
/// idempotent (no duplicates on retry, order kept per partition).
fn new_producer(
    config: &KafkaConfig,
    health: &Health,
) -> Result<FutureProducer<Health>, rdkafka::error::KafkaError> {
    client_config(config, PRODUCER_DEFAULTS)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", config.produce_timeout_ms.to_string())
        .create_with_context(health.clone())
}

/// How long Kafka may take to answer at start before the log says so.
const SLOW_START: Duration = Duration::from_secs(1);

/// What to check when Kafka does not answer, for start-up errors.
const CHECK_KAFKA: &str = "is a broker running there, reachable from this host, and speaking the protocol \
     [kafka.properties] sets (security.protocol, TLS, SASL)? Set the address with kafka.bootstrap or --kafka-bootstrap";

async fn ensure_topics(
    admin: &AdminClient<DefaultClientContext>,
    config: &KafkaConfig,
    topics: &Topics,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let replication = || TopicReplication::Fixed(config.replication);
    fn compacted<'a>(name: &'a str, partitions: i32, replication: TopicReplication<'a>) -> NewTopic<'a> {
        NewTopic::new(name, partitions, replication).set("cleanup.policy", "compact")
    }
    let wanted = [
        compacted(&topics.gateways, config.state_partitions, replication()),
        compacted(&topics.presence, config.state_partitions, replication()),
        compacted(&topics.groups, config.state_partitions, replication()),
        NewTopic::new(&topics.deliver, config.delivery_partitions, replication()),
        NewTopic::new(&topics.events, config.events_partitions, replication()),
    ];
    let options = AdminOptions::new()
        .operation_timeout(Some(Timeout::After(timeout)))
        .request_timeout(Some(Timeout::After(timeout)));
    let results = tokio::time::timeout(timeout, admin.create_topics(&wanted, &options))
        .await
        .map_err(|_| {
            KafkaError::Startup(format!(
                "no answer from kafka at {} within {} ms: {CHECK_KAFKA}",
                config.bootstrap,
                timeout.as_millis()
            ))
        })?
        .map_err(|e| {
            KafkaError::Startup(format!(
                "cannot create the topics on kafka at {}: {e}: {CHECK_KAFKA}",
                config.bootstrap
            ))
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Startup(format!(
                    "cannot create topic {topic}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// What the consume loop keeps: how far the state topics must be read at
/// start-up, where it is in each partition, and requests to realign.
struct Following {
    ends: HashMap<(String, i32), i64>,
    caught_up: watch::Sender<bool>,
    positions: Positions,
    realign_requests: mpsc::Receiver<oneshot::Sender<Result<(), String>>>,
}

impl Inner {
    fn delivery_partition(&self, node: u16) -> i32 {
        i32::from(node) % self.config.delivery_partitions
    }

    /// The end offsets of the non-empty state partitions.
    async fn state_ends(
        self: Arc<Self>,
        consumer: &StreamConsumer,
    ) -> Result<HashMap<(String, i32), i64>, KafkaError> {
        let timeout = self.config.startup_timeout();
        let mut ends = HashMap::new();
        for topic in self.topics.state() {
            for partition in 0..self.config.state_partitions {
                let (low, high) = consumer
                    .fetch_watermarks(topic, partition, Timeout::After(timeout))
                    .map_err(|e| KafkaError::Startup(format!("cannot read offsets of {topic}: {e}")))?;
                if high > low {
                    ends.insert((topic.to_owned(), partition), high);
                }
            }
        }
        Ok(ends)
    }

    /// Follows the state topics and this gateway's deliveries until closed.
    /// The only reader of the consumer: realigning it happens here too,
    /// between two records, so that no record is read twice or skipped.
    async fn consume(self: Arc<Self>, consumer: StreamConsumer, mut following: Following) {
        let mut last_error = Instant::now() - Duration::from_secs(60);
        loop {
            let message = tokio::select! {
                () = self.closed.cancelled() => return,
                Some(reply) = following.realign_requests.recv() => {
                    let _ = reply.send(self.realign(&consumer, &following.positions).await);
                    continue;
                }
                message = consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    let topic = message.topic();
                    following.positions.read(
                        topic,
                        message.partition(),
                        Mark {
                            offset: message.offset(),
                            timestamp: message.timestamp().to_millis().unwrap_or(-1),
                        },
                    );
                    self.apply(topic, message.key(), message.payload());
                    if !following.ends.is_empty() {
                        let key = (topic.to_owned(), message.partition());
                        if following
                            .ends
                            .get(&key)
                            .is_some_and(|end| message.offset() + 1 >= *end)
                        {
                            following.ends.remove(&key);
                            if following.ends.is_empty() {
                                let _ = following.caught_up.send(true);
                            }
                        }
                    }
                }
                Err(error) => {
                    // Kafka is down or a topic is being recreated: librdkafka retries by itself.
                    if last_error.elapsed() > Duration::from_secs(5) {
                        tracing::warn!(error = %error, "kafka consumer");
                        last_error = Instant::now();
                    }
                }
            }
        }
    }

    /// Points the consumer at the last record it read of each partition,
    /// or at the beginning of a log that is not the one it read (Kafka
    /// lost its data and the topic was created again).
    async fn realign(&self, consumer: &StreamConsumer, positions: &Positions) -> Result<(), String> {
        let config = client_config(&self.config, CONSUMER_DEFAULTS);
        let timeout = self.config.produce_timeout();
        let positions = positions.clone();
        let (assignment, renewed) =
            tokio::task::spawn_blocking(move || realigned(&positions, &config, timeout))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        for (topic, partition) in &renewed {
            tracing::info!(
                topic,
                partition,
                "not the log this gateway read (kafka lost its data): reading it from the start"
            );
        }
        consumer.assign(&assignment).map_err(|e| e.to_string())
    }

    /// Applies one record of a followed topic.
    fn apply(&self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(key) = key else { return };
        if topic == self.topics.deliver {
            self.apply_delivery(key, value);
        } else if topic == self.topics.presence {
            if let Ok((user, node)) = serde_json::from_slice::<(String, u16)>(key) {
                let value = value.and_then(|v| serde_json::from_slice::<Presence>(v).ok());
                self.view.presence(user.into(), node, value);
            }
        } else if topic == self.topics.gateways {
            let node = std::str::from_utf8(key).ok().and_then(|k| k.parse::<u16>().ok());
            match (
                node,
                value.and_then(|v| serde_json::from_slice::<Heartbeat>(v).ok()),
            ) {
                (Some(_), Some(heartbeat)) => self.view.heartbeat(&heartbeat, Instant::now()),
                (Some(node), None) => self.view.gateway_left(node),
                _ => {}
            }
        } else if topic == self.topics.groups
            && let Ok((group, user)) = serde_json::from_slice::<(String, String)>(key)
        {
            self.view.membership(&group, &user, value.is_some());
        }
    }

    fn apply_delivery(&self, key: &[u8], value: Option<&[u8]>) {
        if key != self.node.to_string().as_bytes() {
            return; // for another gateway sharing the partition
        }
        let Some((head, body)) = value.and_then(DeliveryHead::decode) else {
            return;
        };
        if let Some(probe) = head.probe {
            self.probe_seen.send_replace(probe);
            return;
        }
        if let Some((user, reason)) = &head.kick {
            self.hub.kick(user, reason);
            return;
        }
        let Some(cmd) = head.cmd.as_deref().and_then(command) else {
            return;
        };
        if head.everyone {
            self.hub.deliver_to_all(cmd, &body);
            return;
        }
        self.hub
            .deliver_to_users(cmd, &body, head.except.map(SessionId), &head.users, &head.offsets);
    }

    async fn produce(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
        partition: Option<i32>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        let producer = self
            .producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        producer
            .send(record, Timeout::After(self.config.produce_timeout()))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }

    async fn heartbeat(&self) -> Result<(), rdkafka::error::KafkaError> {
        let heartbeat = Heartbeat {
            node: self.node,
            epoch: self.epoch,
            lease_ms: self.config.lease_ms,
        };
        let value = serde_json::to_vec(&heartbeat).unwrap_or_default();
        self.produce(
            &self.topics.gateways,
            self.node.to_string().as_bytes(),
            Some(&value),
            None,
            None,
        )
        .await?;
        // Our own view counts us alive at once.
        self.view.heartbeat(&heartbeat, Instant::now());
        Ok(())
    }

    /// Writes a probe to this gateway's delivery partition and waits until
    /// the consume loop reads it: proof that what is written there now
    /// reaches this gateway.
    async fn prove_consuming(&self, within: Duration) -> Result<(), String> {
        let probe = self.next_probe.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.probe_seen.subscribe();
        let head = DeliveryHead {
            node: self.node,
            cmd: None,
            users: Vec::new(),
            offsets: Vec::new(),
            except: None,
            everyone: false,
            kick: None,
            probe: Some(probe),
        };
        let partition = self.delivery_partition(self.node);
        self.produce(
            &self.topics.deliver,
            self.node.to_string().as_bytes(),
            Some(&head.encode(b"")),
            Some(partition),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        match tokio::time::timeout(within, seen.wait_for(|seen| *seen >= probe)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "the probe written to partition {partition} was not read back within {} ms",
                within.as_millis()
            )),
        }
    }

    /// Asks the consume loop to find its place in the logs again.
    async fn realign_consumer(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.realign_asks
            .send(reply)
            .await
            .map_err(|_| "the consume loop has ended".to_owned())?;
        answer
            .await
            .map_err(|_| "the consume loop has ended".to_owned())?
    }

    /// Not ready any more; said once per outage.
    fn went_down(&self, why: &str) {
        if self.ready.swap(false, Ordering::AcqRel) {
            tracing::warn!(why, "kafka unavailable: messages get 5000 until it is back");
        }
    }

    /// Heartbeats; after an outage, re-creates what Kafka may have lost,
    /// finds its place again in logs Kafka may have started afresh, and
    /// is ready again only once it reads what is written now.
    async fn keep_alive(self: Arc<Self>) {
        let beat = self.config.heartbeat();
        let mut ticker = tokio::time::interval(beat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resync = false;
        loop {
            tokio::select! {
                () = self.closed.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if self.health.brokers_down.swap(false, Ordering::AcqRel) {
                self.went_down("every broker connection is down");
                resync = true;
            }
            if resync {
                // A broker that lost its data (or a new cluster) needs its topics again.
                let timeout = self.config.produce_timeout();
                if let Err(e) = ensure_topics(&self.admin, &self.config, &self.topics, timeout).await {
                    tracing::warn!(error = %e, "kafka still unavailable");
                    continue;
                }
                // Kafka answers again. A broker that lost its state refuses
                // the old producer's id (an idempotent producer does not
                // always recover by itself): start afresh.
                self.renew_producer();
                if let Err(e) = self.realign_consumer().await {
                    tracing::warn!(error = %e, "kafka answers, but the consumer could not find its place yet");
                    continue;
                }
            }
            // A heartbeat slower than the beat itself is a Kafka in trouble.
            match tokio::time::timeout(beat, self.heartbeat()).await {
                Ok(Ok(())) => {
                    if resync {
                        if let Err(e) = self.prove_consuming(self.config.produce_timeout()).await {
                            tracing::warn!(error = %e, "kafka answers, but this gateway does not read back yet");
                            continue;
                        }
                        self.republish().await;
                        // Nobody could heartbeat during the outage: a lease
                        // that ran out meanwhile says nothing of a gateway.
                        self.view.renew_leases(Instant::now());
                    }
                    self.ready.store(true, Ordering::Release);
                    if resync {
                        // Said once ready: whoever reads the log may act on it.
                        tracing::info!("kafka is back: presence and groups re-announced");
                        resync = false;
                        // Deliveries produced meanwhile may be lost with
                        // the broker's data: every session catches up with
                        // its inbox.
                        self.hub.resync_all();
                    }
                }
                Ok(Err(e)) => {
                    self.went_down(&e.to_string());
                    resync = true;
                }
                Err(_) => {
                    self.went_down("a heartbeat took longer than the heartbeat interval");
                    resync = true;
                }
            }
        }
    }

    /// Replaces the producer (messages still queued in the old one fail:
    /// their senders get 5000).
    fn renew_producer(&self) {
        match new_producer(&self.config, &self.health) {
            Ok(fresh) => {
                *self
                    .producer
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh
            }
            Err(e) => tracing::warn!(error = %e, "cannot create a new kafka producer"),
        }
    }

    /// Writes again everything this gateway owns (its presence) and the
    /// groups it knows: idempotent, and what rebuilds a broker that lost its
    /// data.
    async fn republish(&self) {
        for user in self.hub.users() {
            let _ = self.publish_presence(&user).await;
        }
        for (group, members) in self.view.groups.snapshot() {
            for user in members.iter() {
                let _ = self
                    .produce(
                        &self.topics.groups,
                        &records::member_key(&group, user),
                        Some(b"1"),
                        None,
                        None,
                    )
                    .await;
            }
        }
    }

    /// Writes this gateway's sessions of `user` (a tombstone when none).
    async fn publish_presence(&self, user: &str) -> Result<(), rdkafka::error::KafkaError> {
        let sessions: Vec<SessionRecord> = self.hub.sessions_of(user).iter().map(SessionRecord::of).collect();
        let key = records::presence_key(user, self.node);
        let value = (!sessions.is_empty()).then(|| Presence {
            epoch: self.epoch,
            version: self.presence_version.fetch_add(1, Ordering::Relaxed) + 1,
            sessions,
        });
        // Our own view knows at once.
        self.view.presence(user.into(), self.node, value.clone());
        let encoded = value.map(|v| serde_json::to_vec(&v).unwrap_or_default());
        self.produce(&self.topics.presence, &key, encoded.as_deref(), None, None)
            .await
    }

    /// The delivery records of a message, by target gateway, and how many
    /// sessions they reach; a message to users is stored in their inboxes
    /// first, and each record carries their offsets. `None` for a retry of a
    /// message accepted earlier (nothing to deliver): its receipt instead.
    async fn plan(&self, message: &Outgoing) -> Result<Result<Planned, Receipt>, RouterError> {
        let cmd = Some(message.cmd.to_string());
        let head = |node: u16, except: Option<SessionId>| DeliveryHead {
            node,
            cmd: cmd.clone(),
            users: Vec::new(),
            offsets: Vec::new(),
            except: except.map(|s| s.0),
            everyone: false,
            kick: None,
            probe: None,
        };
        let (users, except): (Vec<UserId>, _) =
            match recipients(message, &self.view.groups, &self.observers, |_| Ok(()))? {
                Recipients::Users { users, except } => (users.iter().cloned().collect(), except),
                Recipients::Everyone => {
                    let mut sessions = 0;
                    let heads = self
                        .view
                        .live_gateways(Instant::now())
                        .into_iter()
                        .map(|(node, count)| {
                            sessions += count;
                            DeliveryHead {
                                everyone: true,
                                ..head(node, None)
                            }
                        })
                        .collect();
                    return Ok(Ok((heads, sessions, None, 0)));
                }
            };
        let (offsets, sender_offset) = match self.inbox.append(users.iter(), &message.stored(except)).await? {
            Appended::Stored {
                offsets,
                sender_offset,
            } => (offsets, sender_offset),
            Appended::Duplicate {
                message_id,
                sender_offset,
            } => {
                return Ok(Err(Receipt {
                    sessions: Some(0),
                    offset: sender_offset,
                    original: Some(jim_model::MessageId(message_id)),
                    recipients: 0,
                }));
            }
        };
        // Presence as it is once the message is stored: a session that
        // attaches later reads a head that includes it.
        let now = Instant::now();
        let mut by_node: HashMap<u16, DeliveryHead> = HashMap::new();
        let mut sessions = 0;
        for (user, offset) in users.iter().zip(offsets) {
            let mut nodes = self.view.nodes_of(user, except, now);
            // The sending session is told to skip its own entry, in order
            // with the rest of its deliveries.
            if offset != 0
                && sender_offset == Some(offset)
                && message.sender.as_ref().is_some_and(|s| s.user == *user)
                && !nodes.iter().any(|(node, _)| *node == self.node)
            {
                nodes.push((self.node, 0));
            }
            for (node, count) in nodes {
                let head = by_node.entry(node).or_insert_with(|| head(node, except));
                head.users.push(user.to_string());
                head.offsets.push(offset);
                sessions += count;
            }
        }
        let mut heads: Vec<DeliveryHead> = by_node.into_values().collect();
        for head in &mut heads {
            if head.offsets.iter().all(|o| *o == 0) {
                head.offsets.clear();
            }
        }
        Ok(Ok((heads, sessions, sender_offset, users.len())))
    }
}

fn command(code: &str) -> Option<jim_protocol::Command> {
    let code: [u8; 4] = code.as_bytes().try_into().ok()?;
    match jim_protocol::Command::from_code(code) {
        cmd @ (jim_protocol::Command::C2C | jim_protocol::Command::C2G | jim_protocol::Command::S2C) => {
            Some(cmd)
        }
        _ => None,
    }
}

fn event_headers(message: &Outgoing) -> OwnedHeaders {
    let sender = message
        .sender
        .as_ref()
        .map(|s| s.user.to_string())
        .unwrap_or_default();
    let message_id = message.message_id.to_string();
    let target = match &message.target {
        Target::User(user) => user.to_string(),
        Target::Group(group) => group.to_string(),
        Target::Everyone => "*".to_owned(),
    };
    OwnedHeaders::new()
        .insert(Header {
            key: "jim-type",
            value: Some("message"),
        })
        .insert(Header {
            key: "jim-cmd",
            value: Some(&message.cmd.to_string()),
        })
        .insert(Header {
            key: "jim-kind",
            value: Some(message.kind.as_str()),
        })
        .insert(Header {
            key: "jim-sender",
            value: Some(&sender),
        })
        .insert(Header {
            key: "jim-target",
            value: Some(&target),
        })
        .insert(Header {
            key: "jim-message-id",
            value: Some(&message_id),
        })
}

impl Router for KafkaBackend {
    async fn attach(&self, info: SessionInfo, outbox: Arc<Outbox>) -> Result<(), RouterError> {
        let user = Arc::clone(&info.user);
        if self.inner.inbox.is_on() {
            // Other gateways learn of this session only when they read its
            // presence record: what they store for this user meanwhile is
            // not delivered live. The session catches up with its inbox
            // once presence has had time to spread.
            let outbox = Arc::downgrade(&outbox);
            let closed = self.inner.closed.clone();
            tokio::spawn(async move {
                for after in PRESENCE_SETTLES {
                    tokio::select! {
                        () = closed.cancelled() => return,
                        () = tokio::time::sleep(after) => {}
                    }
                    match outbox.upgrade() {
                        Some(outbox) if !outbox.is_closing() => {
                            let _ = outbox.resync();
                        }
                        _ => return,
                    }
                }
            });
        }
        self.inner.hub.attach(info, outbox);
        // While Kafka is down, the resync after it publishes everything.
        if self.is_ready()
            && let Err(e) = self.inner.publish_presence(&user).await
        {
            tracing::warn!(error = %e, "presence not published; it will be after the next resync");
        }
        Ok(())
    }

    async fn detach(&self, info: &SessionInfo) -> Result<(), RouterError> {
        self.inner.hub.detach(&info.user, info.id);
        if self.is_ready() {
            let _ = self.inner.publish_presence(&info.user).await;
        }
        Ok(())
    }

    async fn route(&self, message: Outgoing) -> Result<Receipt, RouterError> {
        let inner = &self.inner;
        if !self.is_ready() {
            return Err(unavailable("not reachable"));
        }
        let (deliveries, sessions, sender_offset, recipients) = match inner.plan(&message).await? {
            Ok(planned) => planned,
            Err(retry) => return Ok(retry),
        };
        let key = records::conversation_key(&message);
        let event = inner.produce(
            &inner.topics.events,
            key.as_bytes(),
            Some(&message.body),
            None,
            Some(event_headers(&message)),
        );
        let values: Vec<(Vec<u8>, i32, Vec<u8>)> = deliveries
            .iter()
            .map(|head| {
                (
                    head.node.to_string().into_bytes(),
                    inner.delivery_partition(head.node),
                    head.encode(&message.body),
                )
            })
            .collect();
        let deliveries = values.iter().map(|(key, partition, value)| {
            inner.produce(&inner.topics.deliver, key, Some(value), Some(*partition), None)
        });
        // The ack waits for every write: the event and each delivery.
        let (event, deliveries) = tokio::join!(event, join_all(deliveries));
        event.map_err(unavailable)?;
        for delivery in deliveries {
            delivery.map_err(unavailable)?;
        }
        Ok(Receipt {
            sessions: Some(sessions),
            offset: sender_offset,
            original: None,
            recipients,
        })
    }

    async fn acknowledge(&self, ack: ClientAck) -> Result<(), RouterError> {
        self.inner.observers.ack(&ack);
        let inner = &self.inner;
        let message_id = ack.message_id.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "jim-type",
                value: Some("ack"),
            })
            .insert(Header {
                key: "jim-sender",
                value: Some(&*ack.user),
            })
            .insert(Header {
                key: "jim-message-id",
                value: Some(&message_id),
            });
        inner
            .produce(
                &inner.topics.events,
                ack.user.as_bytes(),
                Some(&ack.body),
                None,
                Some(headers),
            )
            .await
            .map_err(unavailable)
    }

    async fn add_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let inner = &self.inner;
        // The same checks as everywhere; the view applies them too.
        if group.is_empty() || users.iter().any(|u| u.is_empty()) {
            return Err(RouterError::Invalid {
                reason: "group and user ids must not be empty".into(),
            });
        }
        let keys: Vec<Vec<u8>> = users.iter().map(|u| records::member_key(group, u)).collect();
        let writes = keys
            .iter()
            .map(|key| inner.produce(&inner.topics.groups, key, Some(b"1"), None, None));
        for written in join_all(writes).await {
            written.map_err(unavailable)?;
        }
        inner.view.groups.add(group, users)
    }

    async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let inner = &self.inner;
        inner.view.groups.members(group)?;
        let keys: Vec<Vec<u8>> = users.iter().map(|u| records::member_key(group, u)).collect();
        let writes = keys
            .iter()
            .map(|key| inner.produce(&inner.topics.groups, key, None, None, None));
        for written in join_all(writes).await {
            written.map_err(unavailable)?;
        }
        match inner.view.groups.remove(group, users) {
            Ok(()) | Err(RouterError::UnknownGroup { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, RouterError> {
        self.inner.view.groups.sorted_members(group)
    }

    async fn presence(&self, user: &str) -> Result<Vec<SessionInfo>, RouterError> {
        Ok(self.inner.view.sessions_of(user, Instant::now()))
    }

    async fn kick(&self, user: &str, reason: &str) -> Result<usize, RouterError> {
        let inner = &self.inner;
        let mut kicked = 0;
        let mut writes = Vec::new();
        for (node, count) in inner.view.nodes_of(user, None, Instant::now()) {
            kicked += count;
            let head = DeliveryHead {
                node,
                cmd: None,
                users: Vec::new(),
                offsets: Vec::new(),
                except: None,
                everyone: false,
                kick: Some((user.to_owned(), reason.to_owned())),
                probe: None,
            };
            writes.push((
                node.to_string().into_bytes(),
                inner.delivery_partition(node),
                head.encode(b""),
            ));
        }
        let sends = writes.iter().map(|(key, partition, value)| {
            inner.produce(&inner.topics.deliver, key, Some(value), Some(*partition), None)
        });
        for sent in join_all(sends).await {
            sent.map_err(unavailable)?;
        }
        Ok(kicked)
    }

    async fn inbox_state(&self, user: &str) -> Result<Option<InboxState>, RouterError> {
        if !self.inner.inbox.is_on() {
            return Ok(None);
        }
        Ok(Some(self.inner.inbox.state(user).await?))
    }

    async fn read_inbox(&self, user: &str, after: u32, max: usize) -> Result<InboxRead, RouterError> {
        Ok(self.inner.inbox.read(user, after, max).await?)
    }

    fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !self.inner.health.brokers_down.load(Ordering::Acquire)
    }

    fn local_hub(&self) -> Option<&Hub> {
        Some(&self.inner.hub)
    }

    /// Leaves at once: a tombstone for this gateway's heartbeat and each of
    /// its presence records.
    async fn close(&self) {
        let inner = &self.inner;
        inner.ready.store(false, Ordering::Release);
        let node = inner.node.to_string();
        let _ = inner
            .produce(&inner.topics.gateways, node.as_bytes(), None, None, None)
            .await;
        for user in inner.hub.users() {
            let key = records::presence_key(&user, inner.node);
            let _ = inner
                .produce(&inner.topics.presence, &key, None, None, None)
                .await;
        }
        inner.closed.cancel();
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::mocking::MockCluster;

    use super::*;

    #[tokio::test]
    async fn a_cluster_that_refuses_to_create_topics_is_a_clear_startup_error() {
        // librdkafka's mock cluster cannot create topics through the admin API.
        let cluster = MockCluster::new(1).unwrap();
        let config = KafkaConfig {
            bootstrap: cluster.bootstrap_servers(),
            startup_timeout_ms: 3_000,
            ..KafkaConfig::default()
        };
        let err = KafkaBackend::start(config, 1, Vec::new(), Inbox::off())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("kafka: cannot create the topics on kafka at 127.0.0.1:"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_invalid_configuration_is_refused_before_connecting() {
        let config = KafkaConfig {
            lease_ms: 10,
            ..KafkaConfig::default()
        };
        let err = KafkaBackend::start(config, 1, Vec::new(), Inbox::off())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kafka configuration: kafka.lease_ms must be at least 300"
        );
    }
}
