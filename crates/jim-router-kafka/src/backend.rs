//! The Kafka routing backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jim_router::{
    ClientAck, Directory, Hub, InboxRead, InboxState, Outgoing, Placement, Planned, Receipt, Router,
    RouterError, Routing, SessionChange, SessionId, SessionInfo, Target, UserId,
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

use crate::positions::{Mark, Positions, Refetch, Sequence, realigned};
use crate::records::{self, DeliveryHead, Heartbeat, Presence, SessionRecord};
use crate::view::View;
use crate::{KafkaConfig, KafkaError};

/// When a new session checks its inbox's head again: presence spreads
/// through Kafka in about a consumer's fetch wait, a lease is the most.
const PRESENCE_SETTLES: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(3)];

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
    hub: Arc<Hub>,
    view: View,
    /// Groups (as the groups topic says), observers, and every user's
    /// inbox, in Redis (or off): appended before any record is produced,
    /// so Kafka carries each recipient's offset.
    routing: Routing,
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
    /// A writer of application events (`user.online`, `user.offline`,
    /// `push.needed`: JSON, keyed by user) to the events topic, with
    /// `jim-type` the event's type: what `jim_hooks::Hooks::mirror_events`
    /// takes. Each is produced on its own task; one that fails is logged.
    pub fn event_writer(&self) -> impl Fn(&str, &str, bytes::Bytes) + Send + Sync + 'static {
        let inner = Arc::downgrade(&self.inner);
        move |kind: &str, user: &str, event: bytes::Bytes| {
            let Some(inner) = inner.upgrade() else { return };
            let (kind, user) = (kind.to_owned(), user.to_owned());
            tokio::spawn(async move {
                let headers = OwnedHeaders::new().insert(Header {
                    key: "jim-type",
                    value: Some(&kind),
                });
                let produced = inner
                    .produce(
                        &inner.topics.events,
                        user.as_bytes(),
                        Some(&event),
                        None,
                        Some(headers),
                    )
                    .await;
                if let Err(e) = produced {
                    tracing::warn!(error = %e, kind, "an event was not written to the events topic");
                }
            });
        }
    }

    /// Connects to Kafka, creates missing topics, reads the deployment's
    /// state, and announces this gateway, which plans with `routing` (its
    /// inbox and observers; groups come from the groups topic) and
    /// delivers into `hub` (the gateway's sessions).
    ///
    /// # Errors
    /// A [`KafkaError`] saying what failed: an invalid configuration, Kafka
    /// unreachable within the start-up timeout, or topics that cannot be
    /// created.
    pub async fn start(
        config: KafkaConfig,
        node: u16,
        routing: Routing,
        hub: Arc<Hub>,
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
            hub,
            view: View::default(),
            routing,
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

/// How much longer than librdkafka's own request timeout the topics'
/// creation is given, so that its answer wins.
const ADMIN_SLACK: Duration = Duration::from_secs(2);

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
    // Kafka's own answer (a refusal, or librdkafka's timeout with its
    // reason) first: ours, as long, raced it and said less (a busy
    // machine's run got "no answer" from a cluster that had refused).
    let results = tokio::time::timeout(timeout + ADMIN_SLACK, admin.create_topics(&wanted, &options))
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
        let mut refetch = Refetch::default();
        loop {
            let message = tokio::select! {
                () = self.closed.cancelled() => return,
                Some(reply) = following.realign_requests.recv() => {
                    let _ = reply.send(self.realign(&consumer, &mut following.positions).await);
                    continue;
                }
                message = consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    let topic = message.topic();
                    if topic == self.topics.deliver
                        && !self.in_sequence(&consumer, &following.positions, &mut refetch, &message)
                    {
                        continue;
                    }
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

    /// Whether a record of this gateway's delivery partition is the next
    /// one, to be applied. A delivery is applied once and in the order of
    /// the log: a record read before is dropped, and one past the next
    /// offset means the broker's answer skipped records (seen with tansu
    /// under load: a fetch answered from a later batch while earlier ones
    /// were not yet readable, then the later ones again), so the consumer
    /// asks again from the next offset, for `REFETCH_FOR`; a gap still
    /// there then is taken as the log's (a warning says so).
    fn in_sequence(
        &self,
        consumer: &StreamConsumer,
        positions: &Positions,
        refetch: &mut Refetch,
        message: &rdkafka::message::BorrowedMessage<'_>,
    ) -> bool {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        match positions.sequence(topic, partition, offset) {
            Sequence::Next => true,
            Sequence::Again => {
                tracing::debug!(partition, offset, "a delivery read before: dropped");
                false
            }
            Sequence::Skipped { expected } if refetch.ask(partition, expected, Instant::now()) => {
                tracing::debug!(
                    partition,
                    expected,
                    offset,
                    "the broker skipped deliveries: reading again"
                );
                // Asynchronous: librdkafka drops what it fetched before the seek.
                if let Err(e) = consumer.seek(
                    topic,
                    partition,
                    Offset::Offset(expected),
                    Timeout::After(Duration::ZERO),
                ) {
                    tracing::warn!(error = %e, partition, expected, "cannot read the skipped deliveries again");
                    return true;
                }
                false
            }
            Sequence::Skipped { expected } => {
                tracing::warn!(
                    partition,
                    from = expected,
                    to = offset - 1,
                    "the broker's log skips these offsets"
                );
                true
            }
        }
    }

    /// Points the consumer at the last record it read of each partition,
    /// or at the beginning of a log that is not the one it read (Kafka
    /// lost its data and the topic was created again).
    async fn realign(&self, consumer: &StreamConsumer, positions: &mut Positions) -> Result<(), String> {
        let config = client_config(&self.config, CONSUMER_DEFAULTS);
        let timeout = self.config.produce_timeout();
        let snapshot = positions.clone();
        let (assignment, renewed) =
            tokio::task::spawn_blocking(move || realigned(&snapshot, &config, timeout))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        for (topic, partition) in &renewed {
            tracing::info!(
                topic,
                partition,
                "not the log this gateway read (kafka lost its data): reading it from the start"
            );
            // Its offsets start again: what was read of the old log says nothing.
            positions.forget(topic, *partition);
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
                self.view.presence(user.as_str().into(), node, value);
                self.tell_presence(&user);
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
            let users = [UserId::from(user)];
            let groups = self.routing.groups();
            // A record the view cannot apply (an empty id) changes nothing.
            let _ = if value.is_some() {
                groups.add(&group, &users)
            } else {
                groups.remove(&group, &users)
            };
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
        if let Some(delivery) = head.into_delivery(body) {
            self.hub.apply(&delivery);
        }
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
        for (group, members) in self.routing.groups().snapshot() {
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

    /// Tells the observers how many sessions `user` has in the
    /// deployment, if this gateway is the user's home (see
    /// [`View::home_of`]). Only from the consumer, which applies the
    /// presence topic in order: the counts reach the observers in order.
    fn tell_presence(&self, user: &str) {
        let now = Instant::now();
        if self.view.home_of(user, now) == Some(self.node) {
            let sessions = self.view.sessions_of(user, now).len();
            self.routing
                .observers()
                .session(user, SessionChange::Now(sessions));
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
    /// sessions they reach: its planned delivery, split by where the view
    /// places its recipients.
    fn split(&self, message: &Outgoing, delivery: &jim_router::Delivery<'_>) -> (Vec<DeliveryHead>, usize) {
        // Presence as it is once the message is stored: a session that
        // attaches later reads a head that includes it.
        let placement = Placed {
            view: &self.view,
            now: Instant::now(),
            node: self.node,
            sender: message.sender.as_ref(),
        };
        let mut sessions = 0;
        let heads = delivery
            .by_node(&placement)
            .into_iter()
            .map(|part| {
                sessions += part.sessions;
                DeliveryHead::of(part.node, &part.delivery)
            })
            .collect();
        (heads, sessions)
    }
}

/// Where sessions are, as this gateway's view of the deployment knows it.
struct Placed<'a> {
    view: &'a View,
    now: Instant,
    /// This gateway.
    node: u16,
    /// The sending session, which is here even before the view says so.
    sender: Option<&'a jim_router::Sender>,
}

impl Placement for Placed<'_> {
    fn sessions_of(&self, user: &str, each: &mut dyn FnMut(u16, SessionId)) {
        let mut saw_sending = false;
        let sending = self.sender.filter(|s| &*s.user == user).map(|s| s.session);
        self.view.placed(user, self.now, &mut |node, session| {
            saw_sending |= Some(session) == sending;
            each(node, session);
        });
        // The sending session skips its own entry, in order with the rest
        // of its deliveries, even if its presence has not spread yet.
        if let Some(session) = sending
            && !saw_sending
        {
            each(self.node, session);
        }
    }

    fn nodes(&self) -> Vec<(u16, usize)> {
        self.view.live_gateways(self.now)
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
    // A receipt (contract v1.2) is an event of its own type.
    let kind = if message.kind == jim_model::MessageKind::Ack {
        "receipt"
    } else {
        "message"
    };
    OwnedHeaders::new()
        .insert(Header {
            key: "jim-type",
            value: Some(kind),
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
    fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    async fn announce(&self, info: &SessionInfo) -> Result<(), RouterError> {
        if self.inner.routing.inbox().is_on() {
            // Other gateways learn of this session only when they read its
            // presence record: what they store for this user meanwhile is
            // not delivered live. The session catches up with its inbox
            // once presence has had time to spread.
            let hub = Arc::downgrade(&self.inner.hub);
            let (user, session) = (Arc::clone(&info.user), info.id);
            let closed = self.inner.closed.clone();
            tokio::spawn(async move {
                for after in PRESENCE_SETTLES {
                    tokio::select! {
                        () = closed.cancelled() => return,
                        () = tokio::time::sleep(after) => {}
                    }
                    match hub.upgrade() {
                        Some(hub) if hub.resync_session(&user, session) => {}
                        _ => return,
                    }
                }
            });
        }
        // While Kafka is down, the resync after it publishes everything.
        if self.is_ready()
            && let Err(e) = self.inner.publish_presence(&info.user).await
        {
            tracing::warn!(error = %e, "presence not published; it will be after the next resync");
        }
        Ok(())
    }

    async fn withdraw(&self, info: &SessionInfo) -> Result<(), RouterError> {
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
        let planned = if message.kind == jim_model::MessageKind::Ack {
            // A receipt: its mark is read and written first; one that did
            // not move is not delivered.
            match inner.routing.mark(&message).await? {
                Some(planned) => planned,
                None => return Ok(Receipt::default()),
            }
        } else {
            inner.routing.plan(&message, |_| Ok(())).await?
        };
        let (delivery, receipt) = match planned {
            Planned::Deliver { delivery, receipt } => (delivery, receipt),
            Planned::Retry(receipt) => return Ok(receipt),
        };
        let (deliveries, sessions) = inner.split(&message, &delivery);
        let now = Instant::now();
        inner.routing.observers().stored(&message, &delivery, |user| {
            inner.hub.has_user(user) || !inner.view.sessions_of(user, now).is_empty()
        });
        let key = records::conversation_key(&message);
        // Typing is ephemeral: never on the events topic.
        let event = async {
            if message.cmd == jim_protocol::Command::Typing {
                return Ok(());
            }
            inner
                .produce(
                    &inner.topics.events,
                    key.as_bytes(),
                    Some(&message.body),
                    None,
                    Some(event_headers(&message)),
                )
                .await
        };
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
            ..receipt
        })
    }

    async fn acknowledge(&self, ack: ClientAck) -> Result<(), RouterError> {
        self.inner.routing.observers().ack(&ack);
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

    async fn inbox_state(&self, user: &str) -> Result<Option<InboxState>, RouterError> {
        self.inner.routing.inbox_state(user).await
    }

    async fn read_inbox(&self, user: &str, after: u32, max: usize) -> Result<InboxRead, RouterError> {
        self.inner.routing.read_inbox(user, after, max).await
    }

    async fn marks(&self, user: &str) -> Result<Vec<(String, u64)>, RouterError> {
        Ok(self.inner.routing.inbox().marks(user).await?)
    }

    fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !self.inner.health.brokers_down.load(Ordering::Acquire)
    }

    /// Deliveries to this gateway's own sessions come back through its
    /// delivery partition, after the route was acked: a probe written now,
    /// once nothing routes, is read back after every one of them.
    async fn settle(&self) {
        if !self.is_ready() {
            return;
        }
        if let Err(e) = self
            .inner
            .prove_consuming(self.inner.config.produce_timeout())
            .await
        {
            tracing::warn!(error = %e, "shutdown: deliveries to this gateway's sessions may come after their goodbye");
        }
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

impl Directory for KafkaBackend {
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
        inner.routing.groups().add(group, users)
    }

    async fn remove_members(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let inner = &self.inner;
        inner.routing.groups().members(group)?;
        let keys: Vec<Vec<u8>> = users.iter().map(|u| records::member_key(group, u)).collect();
        let writes = keys
            .iter()
            .map(|key| inner.produce(&inner.topics.groups, key, None, None, None));
        for written in join_all(writes).await {
            written.map_err(unavailable)?;
        }
        match inner.routing.groups().remove(group, users) {
            Ok(()) | Err(RouterError::UnknownGroup { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn members(&self, group: &str) -> Result<Vec<UserId>, RouterError> {
        self.inner.routing.groups().sorted_members(group)
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
}

#[cfg(test)]
mod tests {
    use jim_router::Inbox;
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
        let err = KafkaBackend::start(config, 1, Routing::new(Inbox::off(), Vec::new()), Arc::default())
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
        let err = KafkaBackend::start(config, 1, Routing::new(Inbox::off(), Vec::new()), Arc::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kafka configuration: kafka.lease_ms must be at least 300"
        );
    }
}
