//! Message ids: unique across the gateways of a deployment, increasing with
//! time, and exact in a browser.
//!
//! # Layout
//!
//! ```text
//!  63  62                                22 21          10 9           0
//! +---+------------------------------------+--------------+-------------+
//! | 0 | milliseconds since 2026-01-01 (41) | sequence (12)|  node (10)  |
//! +---+------------------------------------+--------------+-------------+
//! ```
//!
//! * 41 bits of milliseconds since [`EPOCH_MS`] last until the year 2095.
//! * 12 bits of sequence: 4,096 ids per millisecond per node (4.096 million
//!   per second). A node that needs more in one millisecond waits for the
//!   next one (at most a millisecond), so ids never run ahead of the clock.
//! * 10 bits of node id: 1,024 gateways per deployment, each configured with
//!   its own node id.
//!
//! # Representation
//!
//! Ids exceed 2^53, beyond what a JavaScript `Number` holds exactly, so they
//! are written as decimal strings (`"message_id":"123..."`). Integers are
//! accepted on input, for the seed's clients.
//!
//! # Restarts and clocks
//!
//! A generator reads the wall clock once, when it is created, and counts
//! from there on the monotonic clock, so the clock being stepped while it
//! runs neither repeats ids nor stalls it. Its first id is in the
//! millisecond after its creation, and no id is ever ahead of the clock, so
//! a restarted node never repeats an id of its previous run, however quick
//! the restart, as long as the system clock was not set back between the
//! two runs.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::ModelError;

/// The id epoch: 2026-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// Bits of node id.
pub const NODE_BITS: u32 = 10;
/// Bits of sequence per millisecond.
pub const SEQUENCE_BITS: u32 = 12;
/// The largest node id.
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;

const TIME_SHIFT: u32 = NODE_BITS + SEQUENCE_BITS;
const SEQUENCE_STEP: u64 = 1 << NODE_BITS;

/// A message id. Written as a decimal string; read from a string or an
/// integer.
///
/// ```
/// use jim_model::MessageId;
///
/// let id: MessageId = serde_json::from_str("\"7300000000000000001\"").unwrap();
/// assert_eq!(serde_json::to_string(&id).unwrap(), "\"7300000000000000001\"");
/// let seed: MessageId = serde_json::from_str("89797").unwrap();
/// assert_eq!(seed, MessageId(89797));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

impl MessageId {
    /// Unix milliseconds encoded in the id (borrowed milliseconds included).
    pub const fn unix_ms(self) -> u64 {
        (self.0 >> TIME_SHIFT) + EPOCH_MS
    }

    /// The node that issued the id.
    pub const fn node(self) -> u16 {
        (self.0 & MAX_NODE as u64) as u16
    }

    /// The sequence within the millisecond.
    pub const fn sequence(self) -> u16 {
        ((self.0 >> NODE_BITS) & ((1 << SEQUENCE_BITS) - 1)) as u16
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for MessageId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(MessageId)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl de::Visitor<'_> for IdVisitor {
            type Value = MessageId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(MessageId::EXPECTED)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MessageId, E> {
                Ok(MessageId(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageId, E> {
                // Digits only: no sign, no spaces, as `u64::from_str` alone would allow "+1".
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                v.parse()
                    .map(MessageId)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }

        deserializer.deserialize_any(IdVisitor)
    }
}

impl MessageId {
    /// What a `message_id` field holds, for error messages.
    pub const EXPECTED: &'static str = "a message id (a string of decimal digits)";
}

/// Issues [`MessageId`]s for one node. Lock-free; share it between threads.
///
/// ```
/// use jim_model::MessageIdGenerator;
///
/// let ids = MessageIdGenerator::new(7)?;
/// let a = ids.next_id();
/// let b = ids.next_id();
/// assert!(b > a);
/// assert_eq!(a.node(), 7);
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug)]
pub struct MessageIdGenerator {
    node: u64,
    /// Milliseconds since [`EPOCH_MS`] at `started`.
    started_ms: u64,
    started: Instant,
    last: AtomicU64,
}

impl MessageIdGenerator {
    /// A generator for `node` (0 to [`MAX_NODE`]).
    ///
    /// # Errors
    /// [`ModelError::NodeOutOfRange`] for a node id above [`MAX_NODE`].
    pub fn new(node: u16) -> Result<MessageIdGenerator, ModelError> {
        if node > MAX_NODE {
            return Err(ModelError::NodeOutOfRange { node, max: MAX_NODE });
        }
        let node = u64::from(node);
        let started_ms = wall_since_epoch_ms();
        // The first id falls in the next millisecond: an earlier run of this
        // node, never ahead of the clock, issued nothing there.
        let first = (started_ms + 1) << TIME_SHIFT | node;
        Ok(MessageIdGenerator {
            node,
            started_ms,
            started: Instant::now(),
            last: AtomicU64::new(first - SEQUENCE_STEP),
        })
    }

    /// The next id: greater than every id this generator issued before.
    pub fn next_id(&self) -> MessageId {
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let now = self.now_ms();
            let next = (now << TIME_SHIFT | self.node).max(last + SEQUENCE_STEP);
            if next >> TIME_SHIFT > now {
                // This millisecond's 4,096 ids are used up: wait for the next.
                std::hint::spin_loop();
                last = self.last.load(Ordering::Relaxed);
                continue;
            }
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return MessageId(next),
                Err(seen) => last = seen,
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started_ms + self.started.elapsed().as_millis() as u64
    }
}

fn wall_since_epoch_ms() -> u64 {
    unix_ms_now().saturating_sub(EPOCH_MS)
}

/// Milliseconds since the Unix epoch, as stamped into `timestamp`.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn ids_increase_and_carry_their_node() {
        let ids = MessageIdGenerator::new(MAX_NODE).unwrap();
        let mut prev = ids.next_id();
        for _ in 0..100_000 {
            let id = ids.next_id();
            assert!(id > prev);
            assert_eq!(id.node(), MAX_NODE);
            prev = id;
        }
    }

    #[test]
    fn node_out_of_range_is_refused() {
        let err = MessageIdGenerator::new(1024).unwrap_err();
        assert_eq!(err.to_string(), "node id 1024 is out of range (0..=1023)");
    }

    #[test]
    fn ids_from_many_threads_and_nodes_never_collide() {
        let nodes: Vec<_> = (0..3)
            .map(|n| Arc::new(MessageIdGenerator::new(n).unwrap()))
            .collect();
        let handles: Vec<_> = (0..6)
            .map(|t| {
                let ids = Arc::clone(&nodes[t % 3]);
                std::thread::spawn(move || (0..50_000).map(|_| ids.next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            let ids = handle.join().unwrap();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids of one thread increase");
            for id in ids {
                assert!(seen.insert(id), "duplicate {id}");
            }
        }
    }

    #[test]
    fn a_restarted_node_starts_above_the_previous_run() {
        let first = MessageIdGenerator::new(5).unwrap();
        // 10,000 ids need three milliseconds' worth of sequence.
        let last_of_first_run = (0..10_000).map(|_| first.next_id()).last().unwrap();
        let _stopped = first; // the first run ends here
        let second = MessageIdGenerator::new(5).unwrap();
        assert!(second.next_id() > last_of_first_run);
    }

    #[test]
    fn ids_track_the_clock_and_exceed_javascript_safe_integers() {
        let ids = MessageIdGenerator::new(0).unwrap();
        let id = ids.next_id();
        let now = unix_ms_now();
        assert!(id.unix_ms() <= now, "ids never run ahead of the clock");
        assert!(id.unix_ms() + 1000 > now);
        assert!(
            id.0 > (1 << 53),
            "ids are written as strings because they exceed 2^53"
        );
    }

    #[test]
    fn ids_parse_from_strings_and_integers_only() {
        assert_eq!(
            serde_json::from_str::<MessageId>("\"42\"").unwrap(),
            MessageId(42)
        );
        assert_eq!(serde_json::from_str::<MessageId>("42").unwrap(), MessageId(42));
        for bad in [
            "\"+42\"",
            "\"\"",
            "\" 42\"",
            "-1",
            "4.2",
            "\"18446744073709551616\"",
            "null",
            "[]",
        ] {
            assert!(serde_json::from_str::<MessageId>(bad).is_err(), "{bad} accepted");
        }
    }
}
