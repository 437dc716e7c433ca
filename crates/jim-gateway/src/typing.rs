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
    /// Whether a typing of `user` in `conversation` at `now` would be
    /// relayed.
    pub(crate) fn admits(&self, user: &str, conversation: &Conversation, now: Instant) -> bool {
        self.last
            .get(key(user, conversation).as_str())
            .is_none_or(|last| now.saturating_duration_since(*last) >= TYPING_EVERY)
    }

    /// A typing of `user` in `conversation` was relayed at `now`.
    pub(crate) fn relayed(&self, user: &str, conversation: &Conversation, now: Instant) {
        self.last.insert(key(user, conversation).into_boxed_str(), now);
        if self.last.len() > PRUNE_AT {
            self.last
                .retain(|_, last| now.saturating_duration_since(*last) < TYPING_EVERY);
        }
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
        assert!(gate.admits("alice", &bob, start));
        gate.relayed("alice", &bob, start);
        assert!(!gate.admits("alice", &bob, start + Duration::from_millis(1999)));
        assert!(gate.admits("alice", &team, start), "another conversation");
        assert!(gate.admits("carol", &bob, start), "another user");
        assert!(gate.admits("alice", &bob, start + TYPING_EVERY));
    }

    #[test]
    fn old_entries_are_forgotten_past_the_bound() {
        let gate = TypingGate::default();
        let start = Instant::now();
        for i in 0..=PRUNE_AT {
            gate.relayed("alice", &Conversation::User(i.to_string()), start);
        }
        gate.relayed("alice", &Conversation::User("x".into()), start + TYPING_EVERY);
        assert_eq!(gate.last.len(), 1);
    }
}
