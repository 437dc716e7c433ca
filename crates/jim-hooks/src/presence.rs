//! `user.online` and `user.offline`, per user rather than per connection:
//! online when a user's first session opens, offline only once they have
//! had none for `hooks.offline_delay_ms` (a reconnect within it cancels
//! it, and then no second `online` is sent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jim_router::SessionChange;

use crate::Events;

/// Users' sessions as the backend reports them, and the events they give.
#[derive(Debug)]
pub(crate) struct Presence {
    users: Mutex<HashMap<String, UserState>>,
    delay: Duration,
    events: Events,
}

#[derive(Debug, Default)]
struct UserState {
    sessions: usize,
    /// `user.online` was sent, and no `user.offline` after it.
    online: bool,
    /// Changes at each 0 <-> 1: a pending offline checks it is still its own.
    generation: u64,
}

impl Presence {
    pub(crate) fn new(delay: Duration, events: Events) -> Arc<Presence> {
        Arc::new(Presence {
            users: Mutex::new(HashMap::new()),
            delay,
            events,
        })
    }

    pub(crate) fn change(self: &Arc<Self>, user: &str, change: SessionChange) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if !users.contains_key(user) && change == SessionChange::Closed {
            return; // opened before the events started
        }
        let state = users.entry(user.to_owned()).or_default();
        let before = state.sessions;
        state.sessions = match change {
            SessionChange::Opened => before + 1,
            SessionChange::Closed => before.saturating_sub(1),
            SessionChange::Now(sessions) => sessions,
        };
        match (before, state.sessions) {
            (0, 1..) => {
                state.generation += 1; // cancels a pending offline
                if !state.online {
                    state.online = true;
                    // Sent under the lock: a user's events queue in order.
                    self.events
                        .send(self.events.event("user.online").str("user", user));
                }
            }
            (1.., 0) => {
                state.generation += 1;
                let generation = state.generation;
                let presence = Arc::clone(self);
                let user = user.to_owned();
                tokio::spawn(async move {
                    tokio::time::sleep(presence.delay).await;
                    presence.offline_if_still(&user, generation);
                });
            }
            (0, 0) if !state.online => {
                users.remove(user);
            }
            _ => {}
        }
    }

    fn offline_if_still(&self, user: &str, generation: u64) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = users.get(user) else { return };
        if state.sessions > 0 || state.generation != generation {
            return;
        }
        if state.online {
            self.events
                .send(self.events.event("user.offline").str("user", user));
        }
        users.remove(user);
    }
}
