//! How often a user's typing is relayed: at most once per conversation
//! every two seconds (the contract's section 8), whatever the user's
//! sessions on this gateway. Extras are dropped silently and cost no
//! message rate.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use jim_model::Conversation;

/// The contract's interval between two relayed typings of one user in one
/// conversation.
pub(crate) const TYPING_EVERY: Duration = Duration::from_secs(2);

/// Past this many remembered (user, conversation) pairs, those older than
/// the interval are forgotten: a user typing into many conversations grows
/// nothing for long.
const PRUNE_AT: usize = 65_536;

/// When each (user, conversation) last had its typing relayed.
#[derive(Debug, Default)]
pub(crate) struct TypingGate {
    last: DashMap<Box<str>, Instant>,
}

impl TypingGate {
    /// Whether a typing of `user` in `conversation` at `now` is relayed:
    /// if so it counts from now on (one check and one record, so that two
    /// sessions of the user typing at once do not both pass).
    pub(crate) fn admit(&self, user: &str, conversation: &Conversation, now: Instant) -> bool {
        let mut admitted = false;
        self.last
            .entry(key(user, conversation).into_boxed_str())
            .and_modify(|last| {
                if now.saturating_duration_since(*last) >= TYPING_EVERY {
                    *last = now;
                    admitted = true;
                }
            })
            .or_insert_with(|| {
                admitted = true;
                now
            });
        if admitted && self.last.len() > PRUNE_AT {
            self.last
                .retain(|_, last| now.saturating_duration_since(*last) < TYPING_EVERY);
        }
        admitted
    }

    /// A typing admitted at `now` was refused after all (a group the user
    /// is not in): it does not count, so the next one is answered too.
    pub(crate) fn refund(&self, user: &str, conversation: &Conversation, now: Instant) {
        self.last
            .remove_if(key(user, conversation).as_str(), |_, last| *last == now);
    }
}

/// One key per user and conversation (ids hold no NUL: they are JSON
/// strings the gateway accepted, and a NUL would only merge two of one
/// user's keys).
fn key(user: &str, conversation: &Conversation) -> String {
    let kind = match conversation {
        Conversation::User(_) => 'u',
        Conversation::Group(_) => 'g',
    };
    format!("{user}\0{kind}{}", conversation.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_typing_per_user_and_conversation_every_two_seconds() {
        let gate = TypingGate::default();
        let bob = Conversation::User("bob".into());
        let team = Conversation::Group("bob".into());
        let start = Instant::now();
        assert!(gate.admit("alice", &bob, start));
        assert!(!gate.admit("alice", &bob, start + Duration::from_millis(1999)));
        assert!(gate.admit("alice", &team, start), "another conversation");
        assert!(gate.admit("carol", &bob, start), "another user");
        assert!(gate.admit("alice", &bob, start + TYPING_EVERY));
        // A refusal after admission does not count.
        let later = start + TYPING_EVERY * 2;
        assert!(gate.admit("eve", &team, later));
        gate.refund("eve", &team, later);
        assert!(gate.admit("eve", &team, later));
    }

    #[test]
    fn old_entries_are_forgotten_past_the_bound() {
        let gate = TypingGate::default();
        let start = Instant::now();
        for i in 0..=PRUNE_AT {
            gate.admit("alice", &Conversation::User(i.to_string()), start);
        }
        gate.admit("alice", &Conversation::User("x".into()), start + TYPING_EVERY);
        assert_eq!(gate.last.len(), 1);
    }
}
