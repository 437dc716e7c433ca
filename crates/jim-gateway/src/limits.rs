//! Per-session message rate.

use crate::clock::Moment;

/// The most waiting on the backend that is credited (see
/// [`RateLimit::credit`]).
const MAX_CREDIT_SECS: f64 = 60.0;

/// A token bucket: `burst` messages at once, `per_sec` sustained, by
/// arrival: time the session spent waiting for the backend instead of
/// reading is credited, so that messages a client sent within the limit
/// during a stall are not refused when they are read all at once after it.
///
/// Its settings are the caller's (the configuration's): every session
/// holds a bucket, and they are the same for all.
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: f64,
    last: Moment,
}

/// A bucket's settings: `burst` at once, `per_sec` sustained.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    pub(crate) per_sec: u32,
    pub(crate) burst: u32,
}

impl Rate {
    fn per_sec(self) -> f64 {
        f64::from(self.per_sec)
    }

    fn burst(self) -> f64 {
        f64::from(self.burst.max(1))
    }
}

impl RateLimit {
    /// A full bucket.
    pub(crate) fn new(rate: Rate, now: Moment) -> RateLimit {
        RateLimit {
            tokens: rate.burst(),
            last: now,
        }
    }

    /// Whether the bucket is full again at `now` (nothing to remember).
    pub(crate) fn is_full(&self, rate: Rate, now: Moment) -> bool {
        self.tokens + now.since(self.last).as_secs_f64() * rate.per_sec() >= rate.burst()
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, rate: Rate, now: Moment) -> bool {
        let elapsed = now.since(self.last).as_secs_f64();
        self.last = now;
        if self.tokens < rate.burst() {
            self.tokens = (self.tokens + elapsed * rate.per_sec()).min(rate.burst());
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The session waited `waited` for the backend without reading: a
    /// client within the limit may have sent that much more meanwhile,
    /// beyond the burst. Only a wait longer than it takes the bucket to
    /// fill counts: a shorter one is covered by the refill, which a longer
    /// one outgrows (the refill stops at the burst). Bounded, and spent
    /// like any token.
    pub(crate) fn credit(&mut self, rate: Rate, waited: std::time::Duration) {
        let waited = waited.as_secs_f64();
        if waited < rate.burst() / rate.per_sec() {
            return;
        }
        let most = rate.burst() + rate.per_sec() * MAX_CREDIT_SECS;
        self.tokens = (self.tokens + waited * rate.per_sec()).min(most.max(self.tokens));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock;

    const RATE: Rate = Rate {
        per_sec: 10,
        burst: 3,
    };

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let start = Clock::new().now();
        let mut limit = RateLimit::new(RATE, start);
        assert!((0..3).all(|_| limit.try_take(RATE, start)));
        assert!(!limit.try_take(RATE, start), "the burst is spent");
        assert!(
            limit.try_take(RATE, start + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!limit.try_take(RATE, start + Duration::from_millis(150)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| limit.try_take(RATE, later)));
        assert!(!limit.try_take(RATE, later));
    }

    #[test]
    fn time_spent_waiting_for_the_backend_is_credited_beyond_the_burst() {
        let start = Clock::new().now();
        let mut limit = RateLimit::new(RATE, start);
        assert!(limit.try_take(RATE, start));
        // A 2 s stall: 20 messages at 10/s may have come meanwhile, read at once after it.
        limit.credit(RATE, Duration::from_secs(2));
        let after = start + Duration::from_secs(2);
        assert!(
            (0..22).all(|_| limit.try_take(RATE, after)),
            "burst left + 20 credited"
        );
        assert!(!limit.try_take(RATE, after));
        // A wait the refill covers is not credited on top of it.
        let later = after + Duration::from_millis(100);
        limit.credit(RATE, Duration::from_millis(100));
        assert!(limit.try_take(RATE, later));
        assert!(!limit.try_take(RATE, later));
    }
}
