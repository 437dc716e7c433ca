//! Reads the events topic of a Kafka-mode deployment: every message the
//! gateways accepted, keyed by conversation, in order per conversation.
//! What an application builds history, moderation or notifications on.
//!
//! ```sh
//! cargo run -p jim-examples --features kafka --bin events -- --bootstrap 127.0.0.1:9092
//! cargo run -p jim-examples --features kafka --bin events -- --group history   # a consumer group, offsets committed
//! ```
//!
//! Headers of each record: `jim-type` (`message` or `ack`), `jim-cmd`
//! (`B101`, `B102`, `B103`), `jim-kind` (`text`, ...), `jim-sender`,
//! `jim-target` (user, group, or `*`), `jim-message-id`. The value is the
//! stamped message body (for an ack, the client's ack body).

use clap::Parser;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Debug, Parser)]
#[command(about = "Print every message accepted by a Kafka-mode Jim deployment")]
struct Args {
    /// Kafka's bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The gateways' topic prefix.
    #[arg(long, default_value = "jim.")]
    prefix: String,
    /// Join this consumer group (offsets committed after each record is
    /// handled: at-least-once). Without it, read every partition from the
    /// beginning, committing nothing.
    #[arg(long)]
    group: Option<String>,
    /// Partitions of the events topic (without `--group`).
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<usize>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences, not Debug output.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("events: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let topic = format!("{}events", args.prefix);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    config.set("group.id", args.group.as_deref().unwrap_or("jim-events-example"));
    let consumer: StreamConsumer = config.create()?;
    if args.group.is_some() {
        consumer.subscribe(&[&topic])?;
    } else {
        let mut assignment = TopicPartitionList::new();
        for partition in 0..args.partitions {
            assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
    }
    println!("reading {topic} from {}", args.bootstrap);
    let mut seen = 0;
    while args.count.is_none_or(|count| seen < count) {
        let record = match consumer.recv().await {
            Ok(record) => record,
            // A broker down or moving: librdkafka reconnects by itself.
            Err(e) => {
                eprintln!("(kafka: {e}; retrying)");
                continue;
            }
        };
        let header = |name: &str| {
            record
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        println!(
            "{} {} {} {} -> {} [{}] {}",
            header("jim-type"),
            header("jim-cmd"),
            header("jim-message-id"),
            header("jim-sender"),
            header("jim-target"),
            String::from_utf8_lossy(record.key().unwrap_or_default()).replace('\0', "|"),
            String::from_utf8_lossy(record.payload().unwrap_or_default()),
        );
        // Handled: only now may the group move past it.
        if args.group.is_some() {
            consumer.commit_message(&record, CommitMode::Async)?;
        }
        seen += 1;
    }
    Ok(())
}
