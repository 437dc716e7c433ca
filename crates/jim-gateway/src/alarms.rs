//! Parked sessions' deadlines, kept by one sweeper per gateway.
//!
//! A parked session (see `session`) waits on its socket and its outbox
//! only: no timer and no shutdown wait of its own, which would take 184 B
//! in every idle session's task. Instead it leaves its deadline (idle
//! timeout, token expiry) as its outbox's alarm, and the sweeper nudges
//! the outboxes whose alarm has passed, and every outbox at shutdown. A
//! nudged session wakes, sees why, and acts as if its own timer had fired.

use std::time::Duration;

use jim_router::{Hub, Outbox};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::SessionTimers;

/// How often the sweeper looks, at most: a parked session's deadline is
/// kept within this.
const LONGEST_PERIOD: Duration = Duration::from_secs(1);

/// When the sweeper looks, and its clock.
#[derive(Debug)]
pub(crate) struct Alarms {
    clock: Clock,
    period: Duration,
}

impl Alarms {
    /// Alarms for sessions configured by `session`: an eighth of the idle
    /// timeout apart, at most a second.
    pub(crate) fn new(session: &SessionTimers, clock: Clock) -> Alarms {
        Alarms {
            clock,
            period: (session.idle_timeout() / 8).clamp(Duration::from_millis(10), LONGEST_PERIOD),
        }
    }

    /// The alarm for `at` (never 0, which means none).
    pub(crate) fn at(&self, at: Instant) -> u64 {
        self.clock.moment(at).as_millis().max(1)
    }

    fn now(&self) -> u64 {
        self.at(Instant::now())
    }
}

/// Nudges the hub's parked sessions when their alarm has passed, and all of
/// them at shutdown; ends then.
pub(crate) async fn sweep(hub: &Hub, alarms: &Alarms, shutdown: &CancellationToken) {
    let mut ticks = tokio::time::interval(alarms.period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                let now = alarms.now();
                hub.for_each_outbox(|outbox| {
                    let alarm = outbox.alarm();
                    if alarm != 0 && alarm <= now {
                        outbox.nudge();
                    }
                });
            }
        }
    }
    hub.for_each_outbox(Outbox::nudge);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_follows_the_idle_timeout_within_bounds() {
        let mut session = SessionTimers {
            idle_timeout_ms: 400,
            ..SessionTimers::default()
        };
        assert_eq!(
            Alarms::new(&session, Clock::new()).period,
            Duration::from_millis(50)
        );
        session.idle_timeout_ms = 1;
        assert_eq!(
            Alarms::new(&session, Clock::new()).period,
            Duration::from_millis(10)
        );
        session.idle_timeout_ms = 3_600_000;
        assert_eq!(Alarms::new(&session, Clock::new()).period, LONGEST_PERIOD);
    }

    #[test]
    fn an_alarm_is_never_zero_and_grows_with_time() {
        let clock = Clock::new();
        let alarms = Alarms::new(&SessionTimers::default(), clock);
        assert_eq!(alarms.at(clock.epoch()), 1);
        assert_eq!(alarms.at(clock.epoch() + Duration::from_secs(2)), 2_000);
    }
}
