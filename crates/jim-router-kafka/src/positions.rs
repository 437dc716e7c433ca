//! Where this gateway reads each partition it follows, and how it finds
//! its place again after Kafka lost data.
//!
//! A broker that comes back empty recreates the topics with their offsets
//! starting again from 0. A consumer positioned at its old offset would
//! then skip, or wait for, everything written to the new log until the new
//! offsets pass the old one. So the consume loop notes the last record it
//! read of each partition (offset and timestamp), and after an outage each
//! partition is checked: if that record is still in the log, reading goes
//! on after it; if not, the log is not the one we read, and it is read
//! from its beginning.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The last record read of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) offset: i64,
    /// The record's timestamp in milliseconds: tells a record apart from
    /// another one at the same offset of a recreated log.
    pub(crate) timestamp: i64,
}

#[derive(Debug, Clone)]
struct Followed {
    topic: String,
    partition: i32,
    last: Option<Mark>,
}

/// The partitions a gateway follows, with the last record read of each.
/// Owned by the consume loop: nothing else reads the partitions, so the
/// marks are exact when it looks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Positions {
    followed: Vec<Followed>,
}

impl Positions {
    pub(crate) fn follow(&mut self, topic: &str, partition: i32) {
        self.followed.push(Followed {
            topic: topic.to_owned(),
            partition,
            last: None,
        });
    }

    /// Notes a record read (a handful of partitions: a scan, no allocation).
    pub(crate) fn read(&mut self, topic: &str, partition: i32, mark: Mark) {
        if let Some(followed) = self
            .followed
            .iter_mut()
            .find(|f| f.partition == partition && f.topic == topic)
        {
            followed.last = Some(mark);
        }
    }
}

/// How a record read follows the last one read of its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sequence {
    /// The next offset (or the first record read).
    Next,
    /// At or before the last offset read: read before.
    Again,
    /// Past the next offset: the records from `expected` on were skipped.
    Skipped { expected: i64 },
}

impl Positions {
    /// How a record at `offset` of `partition` follows the last one read.
    pub(crate) fn sequence(&self, topic: &str, partition: i32, offset: i64) -> Sequence {
        let last = self
            .followed
            .iter()
            .find(|f| f.partition == partition && f.topic == topic)
            .and_then(|f| f.last);
        match last {
            None => Sequence::Next,
            Some(mark) if offset <= mark.offset => Sequence::Again,
            Some(mark) if offset == mark.offset + 1 => Sequence::Next,
            Some(mark) => Sequence::Skipped {
                expected: mark.offset + 1,
            },
        }
    }

    /// Forgets what was read of a partition whose log was created anew:
    /// its offsets start again.
    pub(crate) fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(followed) = self
            .followed
            .iter_mut()
            .find(|f| f.partition == partition && f.topic == topic)
        {
            followed.last = None;
        }
    }
}

/// How long the consumer asks again for records a broker skipped before
/// it takes the gap as the log's (see `Inner::consume`).
pub(crate) const REFETCH_FOR: Duration = Duration::from_secs(2);

/// The gap the consumer is asking a broker to fill, and since when.
#[derive(Debug, Default)]
pub(crate) struct Refetch {
    asking: Option<(i32, i64, Instant)>,
}

impl Refetch {
    /// Whether to ask again for `partition` from `expected` at `now`:
    /// yes for `REFETCH_FOR` after the gap was first seen, then no.
    pub(crate) fn ask(&mut self, partition: i32, expected: i64, now: Instant) -> bool {
        match self.asking {
            Some((p, e, since)) if p == partition && e == expected => now.duration_since(since) < REFETCH_FOR,
            _ => {
                self.asking = Some((partition, expected, now));
                true
            }
        }
    }
}

/// Where to read each followed partition from now: after the last record
/// read if the log still holds it, else from the log's beginning. Returns
/// the assignment and the partitions found to be new logs.
///
/// `config` is the gateway's client configuration; a short-lived consumer
/// of its own looks each last record up.
pub(crate) fn realigned(
    positions: &Positions,
    config: &ClientConfig,
    timeout: Duration,
) -> Result<(TopicPartitionList, Vec<(String, i32)>), rdkafka::error::KafkaError> {
    let checker: BaseConsumer = config
        .clone()
        .set("group.id", format!("jim-realign-{}", fastrand::u64(..)))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    let mut renewed = Vec::new();
    for Followed {
        topic,
        partition,
        last,
    } in &positions.followed
    {
        let (topic, partition, last) = (topic.clone(), *partition, *last);
        let kept = match last {
            Some(mark) => still_there(&checker, &topic, partition, mark, timeout)?,
            None => false,
        };
        let offset = match (kept, last) {
            (true, Some(mark)) => Offset::Offset(mark.offset + 1),
            _ => {
                renewed.push((topic.clone(), partition));
                Offset::Beginning
            }
        };
        assignment.add_partition_offset(&topic, partition, offset)?;
    }
    Ok((assignment, renewed))
}

/// Whether the record at `mark.offset` is still the one that was read.
fn still_there(
    checker: &BaseConsumer,
    topic: &str,
    partition: i32,
    mark: Mark,
    timeout: Duration,
) -> Result<bool, rdkafka::error::KafkaError> {
    let (low, high) = checker.fetch_watermarks(topic, partition, timeout)?;
    if mark.offset < low || mark.offset >= high {
        return Ok(false);
    }
    let mut one = TopicPartitionList::new();
    one.add_partition_offset(topic, partition, Offset::Offset(mark.offset))?;
    checker.assign(&one)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match checker.poll(Duration::from_millis(100)) {
            Some(Ok(record)) if record.topic() == topic && record.partition() == partition => {
                return Ok(
                    record.offset() == mark.offset && record.timestamp().to_millis() == Some(mark.timestamp)
                );
            }
            Some(Ok(_)) | None => {}
            Some(Err(e)) => return Err(e),
        }
    }
    // Within the watermarks, yet unreadable: assume the worst and reread.
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(positions: &mut Positions, offset: i64) {
        positions.read("deliver", 1, Mark { offset, timestamp: 0 });
    }

    #[test]
    fn records_are_taken_in_order_once_and_a_skip_is_seen() {
        let mut positions = Positions::default();
        positions.follow("deliver", 1);
        // The first record read may be anywhere.
        assert_eq!(positions.sequence("deliver", 1, 43_000), Sequence::Next);
        read(&mut positions, 43_674);
        assert_eq!(positions.sequence("deliver", 1, 43_675), Sequence::Next);
        // What a broker answered once (seen with tansu under load): a fetch
        // at 43,675 that starts at 43,839, then 43,839 once more later.
        assert_eq!(
            positions.sequence("deliver", 1, 43_839),
            Sequence::Skipped { expected: 43_675 }
        );
        assert_eq!(positions.sequence("deliver", 1, 43_674), Sequence::Again);
        assert_eq!(positions.sequence("deliver", 1, 100), Sequence::Again);
        // Other partitions and topics are apart.
        assert_eq!(positions.sequence("deliver", 2, 5), Sequence::Next);
        assert_eq!(positions.sequence("presence", 1, 5), Sequence::Next);
        // A log created anew starts again.
        positions.forget("deliver", 1);
        assert_eq!(positions.sequence("deliver", 1, 0), Sequence::Next);
    }

    #[test]
    fn a_gap_is_asked_for_again_for_a_while_then_taken() {
        let mut refetch = Refetch::default();
        let start = Instant::now();
        assert!(refetch.ask(1, 43_675, start));
        assert!(refetch.ask(1, 43_675, start + Duration::from_millis(500)));
        assert!(!refetch.ask(1, 43_675, start + REFETCH_FOR));
        // Another gap is asked for afresh.
        assert!(refetch.ask(1, 50_000, start + REFETCH_FOR));
        assert!(refetch.ask(2, 50_000, start + REFETCH_FOR));
    }
}
