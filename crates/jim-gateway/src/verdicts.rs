//! The before-send hook's verdicts, remembered by sender and
//! `client_msg_id` for the inbox's dedupe window: a retry gets the
//! original's verdict without a second call (a denied one is denied
//! again; an allowed one goes on to the inbox, which acks it as the
//! original). Kept by the gateway that called the hook: a retry that
//! reaches another gateway calls the hook there once.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use jim_hooks::Verdict;
use tokio::time::Instant;

/// Verdicts kept at most; past it, the expired ones are swept, then the
/// newest is not kept (a retry of it calls the hook again).
const MAX_KEPT: usize = 100_000;

/// Verdicts by (sender, `client_msg_id`).
#[derive(Debug)]
pub(crate) struct Verdicts {
    kept: DashMap<(Arc<str>, Arc<str>), (Verdict, Instant)>,
    window: Duration,
}

impl Verdicts {
    pub(crate) fn new(window: Duration) -> Verdicts {
        Verdicts {
            kept: DashMap::new(),
            window,
        }
    }

    /// The verdict given to this sender's message of this id within the window.
    pub(crate) fn recall(&self, sender: &Arc<str>, id: &Arc<str>) -> Option<Verdict> {
        let key = (Arc::clone(sender), Arc::clone(id));
        let kept = self.kept.get(&key)?;
        let (verdict, until) = &*kept;
        (Instant::now() < *until).then(|| verdict.clone())
    }

    pub(crate) fn remember(&self, sender: &Arc<str>, id: &Arc<str>, verdict: &Verdict) {
        let now = Instant::now();
        if self.kept.len() >= MAX_KEPT {
            self.kept.retain(|_, (_, until)| *until > now);
            if self.kept.len() >= MAX_KEPT {
                return;
            }
        }
        self.kept.insert(
            (Arc::clone(sender), Arc::clone(id)),
            (verdict.clone(), now + self.window),
        );
    }
}
