//! What one user, and the whole gateway, may make the stores and the
//! sessions carry: recipients per second, not messages. A message to a
//! group of 5,000 costs 5,000 inbox entries and deliveries; the message
//! rate alone would let one member keep the store busy for everyone.
//!
//! The cost of a message is known once it is routed (the backend knows
//! the group), so a budget is charged then, and may go into debt; while in
//! debt, the next messages are refused (4029). A group message is charged
//! in advance what the user's last group message cost, so that a session
//! pipelining many cannot run far past its budget before the first is
//! answered.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use jim_router::UserId;
use tokio::time::Instant;

use crate::config::Limits;

/// Budgets count in thousandths of a recipient.
const MILLI: i64 = 1_000;

/// A token bucket of recipients that may go into debt (charged after the
/// fact), shared by the sessions it covers. Lock-free: the gateway's own
/// budget is touched by every session for every message.
#[derive(Debug)]
pub(crate) struct Budget {
    per_sec: u64,
    /// In thousandths of a recipient, as `tokens` and `most_debt`.
    burst: i64,
    /// The most debt: a minute of the rate, so that a flood never locks a
    /// user out for longer than that.
    most_debt: i64,
    /// Thousandths of a recipient: a refill between two messages counts.
    tokens: AtomicI64,
    /// Up to when the refill has been counted, in microseconds since `start`.
    counted_to_us: AtomicU64,
    start: Instant,
    /// What the last group message cost: the advance for the next one.
    last_group: AtomicUsize,
}

impl Budget {
    fn new(per_sec: u32, burst: u32) -> Budget {
        let burst = i64::from(burst.max(1)) * MILLI;
        Budget {
            per_sec: u64::from(per_sec.max(1)),
            burst,
            most_debt: i64::from(per_sec) * 60 * MILLI,
            tokens: AtomicI64::new(burst),
            counted_to_us: AtomicU64::new(0),
            start: Instant::now(),
            last_group: AtomicUsize::new(0),
        }
    }

    /// Whether anything is left now (not in debt).
    pub(crate) fn admits(&self, now: Instant) -> bool {
        self.refill(now);
        self.tokens.load(Ordering::Relaxed) > 0
    }

    /// Spends `recipients` (negative: gives back), into debt if need be.
    pub(crate) fn charge(&self, recipients: i64, now: Instant) {
        self.refill(now);
        let (most_debt, burst) = (self.most_debt, self.burst);
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
                Some(
                    tokens
                        .saturating_sub(recipients.saturating_mul(MILLI))
                        .clamp(-most_debt, burst),
                )
            });
    }

    /// Adds what the time since the last refill earned: whoever moves the
    /// counted time forward adds it (at most one does).
    fn refill(&self, now: Instant) {
        let now_us = u64::try_from(now.saturating_duration_since(self.start).as_micros()).unwrap_or(u64::MAX);
        let counted = self.counted_to_us.load(Ordering::Relaxed);
        // Thousandths of a recipient a microsecond: per_sec / 1,000.
        let earned = now_us.saturating_sub(counted).saturating_mul(self.per_sec) / 1_000;
        if earned == 0 {
            return;
        }
        // The time those took, exactly: the remainder counts next time.
        let took = earned.saturating_mul(1_000) / self.per_sec;
        if self
            .counted_to_us
            .compare_exchange(counted, counted + took, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let earned = i64::try_from(earned).unwrap_or(i64::MAX);
            let burst = self.burst;
            let _ = self
                .tokens
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
                    Some(tokens.saturating_add(earned).min(burst))
                });
        }
    }

    /// The advance a group message is charged: what the last one cost.
    pub(crate) fn group_advance(&self) -> usize {
        self.last_group.load(Ordering::Relaxed)
    }

    pub(crate) fn remember_group(&self, recipients: usize) {
        self.last_group.store(recipients, Ordering::Relaxed);
    }
}

/// Every budget of a gateway: its own, and one per user with a session
/// here (shared by that user's sessions, gone with the last of them).
#[derive(Debug)]
pub(crate) struct Fanout {
    per_user: Option<(u32, u32)>,
    gateway: Option<Budget>,
    users: DashMap<UserId, Weak<Budget>>,
}

impl Fanout {
    pub(crate) fn new(limits: &Limits) -> Fanout {
        Fanout {
            per_user: (limits.fanout_per_sec > 0).then_some((
                limits.fanout_per_sec,
                limits.fanout_burst.max(limits.fanout_per_sec),
            )),
            gateway: (limits.gateway_fanout_per_sec > 0)
                .then(|| Budget::new(limits.gateway_fanout_per_sec, limits.gateway_fanout_per_sec)),
            users: DashMap::new(),
        }
    }

    /// The user's budget (made for its first session here); `None` when
    /// users have no limit.
    pub(crate) fn for_user(&self, user: &UserId) -> Option<Arc<Budget>> {
        let (per_sec, burst) = self.per_user?;
        let mut entry = self.users.entry(Arc::clone(user)).or_default();
        if let Some(budget) = entry.upgrade() {
            return Some(budget);
        }
        let budget = Arc::new(Budget::new(per_sec, burst));
        *entry = Arc::downgrade(&budget);
        drop(entry);
        // Forget users whose last session left: one sweep per new budget
        // keeps the map as large as the users signed in, at most twice.
        if self.users.len() > 64 && self.users.len().is_power_of_two() {
            self.users.retain(|_, budget| budget.strong_count() > 0);
        }
        Some(budget)
    }

    /// The gateway's own budget, if it has one.
    pub(crate) fn gateway(&self) -> Option<&Budget> {
        self.gateway.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_budget_goes_into_debt_and_refills_by_the_second() {
        let start = Instant::now();
        let budget = Budget::new(1_000, 2_000);
        assert!(budget.admits(start));
        budget.charge(5_001, start);
        assert!(!budget.admits(start), "3,001 in debt");
        assert!(
            !budget.admits(start + Duration::from_secs(3)),
            "1 short after 3 s"
        );
        assert!(budget.admits(start + Duration::from_millis(3_002)));
        // A refund (an advance that was too much) gives back, up to the burst.
        budget.charge(-100_000, start + Duration::from_secs(4));
        budget.charge(2_000, start + Duration::from_secs(4));
        assert!(!budget.admits(start + Duration::from_secs(4)));
    }

    #[test]
    fn debt_is_at_most_a_minute_of_the_rate() {
        let start = Instant::now();
        let budget = Budget::new(100, 100);
        budget.charge(1_000_000, start);
        assert!(budget.admits(start + Duration::from_millis(60_100)));
    }

    #[test]
    fn a_users_sessions_share_one_budget_gone_with_the_last() {
        let fanout = Fanout::new(&Limits::default());
        let alice: UserId = "alice".into();
        let first = fanout.for_user(&alice).unwrap();
        let second = fanout.for_user(&alice).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        drop((first, second));
        let fresh = fanout.for_user(&alice).unwrap();
        assert!(fresh.admits(Instant::now()));
        let none = Fanout::new(&Limits {
            fanout_per_sec: 0,
            gateway_fanout_per_sec: 0,
            ..Limits::default()
        });
        assert!(none.for_user(&alice).is_none() && none.gateway().is_none());
    }
}
