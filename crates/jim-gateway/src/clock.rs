//! The gateway's monotonic clock, in 8 bytes a reading: every session
//! keeps a few times (its last activity, its token's expiry, its rate
//! limit's last refill), and a `tokio::time::Instant` is 16.

use std::time::Duration;

use tokio::time::Instant;

/// Where the gateway's [`Moment`]s count from (its start).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

/// A time on a [`Clock`]: microseconds since its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Moment(u64);

impl Clock {
    /// A clock that starts now.
    pub(crate) fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// When it started.
    #[cfg(test)]
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The time now.
    pub(crate) fn now(&self) -> Moment {
        self.moment(Instant::now())
    }

    /// `at` on this clock (its epoch if earlier).
    pub(crate) fn moment(&self, at: Instant) -> Moment {
        Moment(u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX))
    }

    /// `moment` as an instant, for timers.
    pub(crate) fn instant(&self, moment: Moment) -> Instant {
        self.epoch + Duration::from_micros(moment.0)
    }
}

impl Moment {
    /// Milliseconds since the clock's epoch.
    pub(crate) fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// How long after `earlier` this is (zero if it is not after).
    pub(crate) fn since(self, earlier: Moment) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Moment {
    type Output = Moment;

    fn add(self, later: Duration) -> Moment {
        Moment(
            self.0
                .saturating_add(u64::try_from(later.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_eight_bytes_and_converts_back_to_its_instant() {
        assert_eq!(std::mem::size_of::<Moment>(), 8);
        let clock = Clock::new();
        let at = clock.epoch + Duration::from_millis(2_500);
        let moment = clock.moment(at);
        assert_eq!(moment.as_millis(), 2_500);
        assert_eq!(clock.instant(moment), at);
        assert_eq!(
            (moment + Duration::from_secs(1)).since(moment),
            Duration::from_secs(1)
        );
        assert_eq!(moment.since(moment + Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn an_instant_before_the_epoch_is_the_epoch() {
        let clock = Clock::new();
        let before = clock
            .epoch
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(clock.epoch);
        assert_eq!(clock.moment(before), Moment(0));
    }
}
