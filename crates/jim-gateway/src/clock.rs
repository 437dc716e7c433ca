//! The gateway's monotonic clock, in 8 bytes a reading: every session
//! keeps a few times (its last activity, its token's expiry, its rate
//! limit's last refill), and a `tokio::time::Instant` is 16.

use std::num::NonZeroU64;
use std::time::Duration;

use tokio::time::Instant;

/// Where the gateway's [`Moment`]s count from (its start).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

/// A time on a [`Clock`]: microseconds since its epoch, plus one (never
/// zero, so that an `Option<Moment>` is 8 bytes too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Moment(NonZeroU64);

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
        Moment::from_micros(
            u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX),
        )
    }

    /// `moment` as an instant, for timers.
    pub(crate) fn instant(&self, moment: Moment) -> Instant {
        self.epoch + Duration::from_micros(moment.micros())
    }
}

impl Moment {
    fn from_micros(micros: u64) -> Moment {
        Moment(NonZeroU64::MIN.saturating_add(micros.min(u64::MAX - 1)))
    }

    fn micros(self) -> u64 {
        self.0.get() - 1
    }

    /// Milliseconds since the clock's epoch.
    pub(crate) fn as_millis(self) -> u64 {
        self.micros() / 1_000
    }

    /// How long after `earlier` this is (zero if it is not after).
    pub(crate) fn since(self, earlier: Moment) -> Duration {
        Duration::from_micros(self.micros().saturating_sub(earlier.micros()))
    }
}

impl std::ops::Add<Duration> for Moment {
    type Output = Moment;

    fn add(self, later: Duration) -> Moment {
        let later = u64::try_from(later.as_micros()).unwrap_or(u64::MAX);
        Moment::from_micros(self.micros().saturating_add(later))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_eight_bytes_even_optional_and_converts_back_to_its_instant() {
        assert_eq!(std::mem::size_of::<Option<Moment>>(), 8);
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
        assert_eq!(clock.moment(before).as_millis(), 0);
        assert_eq!(clock.instant(clock.moment(before)), clock.epoch);
    }
}
