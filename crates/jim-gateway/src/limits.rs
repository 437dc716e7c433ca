//! Per-session message rate.

use tokio::time::Instant;

/// The most waiting on the backend that is credited (see
/// [`RateLimit::credit`]).
const MAX_CREDIT_SECS: f64 = 60.0;

/// A token bucket: `burst` messages at once, `per_sec` sustained, by
/// arrival: time the session spent waiting for the backend instead of
/// reading is credited, so that messages a client sent within the limit
/// during a stall are not refused when they are read all at once after it.
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
    // As configured (u32): every session's task holds one.
    per_sec: u32,
    burst: u32,
}

impl RateLimit {
    pub(crate) fn new(per_sec: u32, burst: u32, now: Instant) -> RateLimit {
        let burst = burst.max(1);
        RateLimit {
            tokens: f64::from(burst),
            last: now,
            per_sec,
            burst,
        }
    }

    fn per_sec(&self) -> f64 {
        f64::from(self.per_sec)
    }

    fn burst(&self) -> f64 {
        f64::from(self.burst)
    }

    /// Whether the bucket is full again (nothing to remember).
    pub(crate) fn is_full(&self) -> bool {
        let elapsed = Instant::now().saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_sec() >= self.burst()
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.tokens < self.burst() {
            self.tokens = (self.tokens + elapsed * self.per_sec()).min(self.burst());
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl RateLimit {
    /// The session waited `waited` for the backend without reading: a
    /// client within the limit may have sent that much more meanwhile,
    /// beyond the burst. Only a wait longer than it takes the bucket to
    /// fill counts: a shorter one is covered by the refill, which a longer
    /// one outgrows (the refill stops at the burst). Bounded, and spent
    /// like any token.
    pub(crate) fn credit(&mut self, waited: std::time::Duration) {
        let waited = waited.as_secs_f64();
        if waited < self.burst() / self.per_sec() {
            return;
        }
        let most = self.burst() + self.per_sec() * MAX_CREDIT_SECS;
        self.tokens = (self.tokens + waited * self.per_sec()).min(most.max(self.tokens));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10, 3, start);
        assert!((0..3).all(|_| limit.try_take(start)));
        assert!(!limit.try_take(start), "the burst is spent");
        assert!(
            limit.try_take(start + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!limit.try_take(start + Duration::from_millis(150)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| limit.try_take(later)));
        assert!(!limit.try_take(later));
    }

    #[test]
    fn time_spent_waiting_for_the_backend_is_credited_beyond_the_burst() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10, 3, start);
        assert!(limit.try_take(start));
        // A 2 s stall: 20 messages at 10/s may have come meanwhile, read at once after it.
        limit.credit(Duration::from_secs(2));
        let after = start + Duration::from_secs(2);
        assert!((0..22).all(|_| limit.try_take(after)), "burst left + 20 credited");
        assert!(!limit.try_take(after));
        // A wait the refill covers is not credited on top of it.
        let later = after + Duration::from_millis(100);
        limit.credit(Duration::from_millis(100));
        assert!(limit.try_take(later));
        assert!(!limit.try_take(later));
    }
}
