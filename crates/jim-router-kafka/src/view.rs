//! What a gateway knows of the deployment, read from the compacted topics:
//! which gateways are alive and where each user's sessions are. (Groups
//! are applied to the backend's routing state.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use jim_router::{SessionId, SessionInfo, UserId};

use crate::records::{Heartbeat, Presence};

/// A gateway's latest heartbeat.
#[derive(Debug, Clone, Copy)]
struct Liveness {
    epoch: u64,
    seen: Instant,
    lease: Duration,
}

/// One gateway's sessions of one user.
#[derive(Debug, Clone)]
struct Held {
    epoch: u64,
    version: u64,
    sessions: Vec<SessionInfo>,
}

/// The deployment as this gateway sees it.
#[derive(Debug, Default)]
pub(crate) struct View {
    gateways: DashMap<u16, Liveness>,
    presence: DashMap<UserId, HashMap<u16, Held>>,
}

impl View {
    pub(crate) fn heartbeat(&self, heartbeat: &Heartbeat, seen: Instant) {
        self.gateways.insert(
            heartbeat.node,
            Liveness {
                epoch: heartbeat.epoch,
                seen,
                lease: Duration::from_millis(heartbeat.lease_ms),
            },
        );
    }

    /// Kafka is back after an outage during which no gateway could
    /// heartbeat: every gateway known gets a fresh lease from `now`, to
    /// heartbeat again before it counts as dead. Without it, the gateways
    /// that come back first would take the others' users for offline.
    pub(crate) fn renew_leases(&self, now: Instant) {
        for mut gateway in self.gateways.iter_mut() {
            gateway.seen = gateway.seen.max(now);
        }
    }

    /// A gateway left cleanly (a tombstone of its heartbeat).
    pub(crate) fn gateway_left(&self, node: u16) {
        self.gateways.remove(&node);
    }

    /// The epoch of `node` if it is alive at `now`.
    fn alive(&self, node: u16, now: Instant) -> Option<u64> {
        self.gateways
            .get(&node)
            .filter(|g| now.saturating_duration_since(g.seen) <= g.lease)
            .map(|g| g.epoch)
    }

    /// Applies a presence record (`None`: a tombstone).
    pub(crate) fn presence(&self, user: UserId, node: u16, value: Option<Presence>) {
        let Some(value) = value else {
            self.presence.remove_if_mut(&user, |_, nodes| {
                nodes.remove(&node);
                nodes.is_empty()
            });
            return;
        };
        let mut nodes = self.presence.entry(Arc::clone(&user)).or_default();
        if let Some(held) = nodes.get(&node)
            && held.epoch == value.epoch
            && held.version > value.version
        {
            return; // an older record of the same run
        }
        let sessions = value.sessions.iter().map(|s| s.info(&user, node)).collect();
        nodes.insert(
            node,
            Held {
                epoch: value.epoch,
                version: value.version,
                sessions,
            },
        );
    }

    /// The holdings of gateways that are alive, from their current run:
    /// what a dead gateway, or an earlier run of a live one, announced
    /// does not count.
    fn live<'a>(
        &'a self,
        nodes: &'a HashMap<u16, Held>,
        now: Instant,
    ) -> impl Iterator<Item = (u16, &'a Held)> + 'a {
        nodes
            .iter()
            .filter(move |(node, held)| self.alive(**node, now) == Some(held.epoch))
            .map(|(node, held)| (*node, held))
    }

    /// Every session of `user` on gateways that are alive, in their
    /// current run.
    pub(crate) fn sessions_of(&self, user: &str, now: Instant) -> Vec<SessionInfo> {
        self.presence
            .get(user)
            .map(|nodes| {
                self.live(&nodes, now)
                    .flat_map(|(_, held)| held.sessions.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The live gateways holding sessions of `user` (but `except`), with
    /// how many sessions each.
    /// Calls `each` with the node and id of every session of `user` on a
    /// live gateway.
    pub(crate) fn placed(&self, user: &str, now: Instant, each: &mut dyn FnMut(u16, SessionId)) {
        if let Some(nodes) = self.presence.get(user) {
            for (node, held) in self.live(&nodes, now) {
                for session in &held.sessions {
                    each(node, session.id);
                }
            }
        }
    }

    pub(crate) fn nodes_of(&self, user: &str, except: Option<SessionId>, now: Instant) -> Vec<(u16, usize)> {
        self.presence
            .get(user)
            .map(|nodes| {
                self.live(&nodes, now)
                    .map(|(node, held)| {
                        (
                            node,
                            held.sessions.iter().filter(|s| Some(s.id) != except).count(),
                        )
                    })
                    .filter(|(_, count)| *count > 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The live gateway that reports `user`'s presence to the observers
    /// (`user.online`/`user.offline`, sent once for the deployment): one
    /// chosen by a hash of the user among the live gateways, so every
    /// gateway that sees the same gateways picks the same one.
    pub(crate) fn home_of(&self, user: &str, now: Instant) -> Option<u16> {
        let mut live: Vec<u16> = self
            .gateways
            .iter()
            .filter(|g| now.saturating_duration_since(g.seen) <= g.lease)
            .map(|g| *g.key())
            .collect();
        if live.is_empty() {
            return None;
        }
        live.sort_unstable();
        // FNV-1a: the same on every gateway, whatever its build.
        let hash = user.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Some(live[(hash % live.len() as u64) as usize])
    }

    /// Live gateways and their session counts (for a push to everyone).
    pub(crate) fn live_gateways(&self, now: Instant) -> Vec<(u16, usize)> {
        let mut counts: HashMap<u16, usize> = self
            .gateways
            .iter()
            .filter(|g| now.saturating_duration_since(g.seen) <= g.lease)
            .map(|g| (*g.key(), 0))
            .collect();
        for nodes in self.presence.iter() {
            for (node, held) in nodes.iter() {
                if self.alive(*node, now) == Some(held.epoch)
                    && let Some(count) = counts.get_mut(node)
                {
                    *count += held.sessions.len();
                }
            }
        }
        counts.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::SessionRecord;

    fn presence(epoch: u64, version: u64, ids: &[u64]) -> Presence {
        Presence {
            epoch,
            version,
            sessions: ids
                .iter()
                .map(|id| SessionRecord {
                    id: *id,
                    device: None,
                    transport: "tcp".into(),
                    since_ms: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn presence_counts_only_live_gateways_of_the_current_run() {
        let view = View::default();
        let now = Instant::now();
        let lease = 1_000;
        view.heartbeat(
            &Heartbeat {
                node: 1,
                epoch: 10,
                lease_ms: lease,
            },
            now,
        );
        view.heartbeat(
            &Heartbeat {
                node: 2,
                epoch: 20,
                lease_ms: lease,
            },
            now,
        );
        view.presence("u".into(), 1, Some(presence(10, 1, &[1, 2])));
        view.presence("u".into(), 2, Some(presence(19, 5, &[3]))); // an earlier run of node 2
        assert_eq!(view.sessions_of("u", now).len(), 2);
        assert_eq!(view.nodes_of("u", Some(SessionId(1)), now), vec![(1, 1)]);

        // Past the lease, node 1 owns nobody.
        assert!(
            view.sessions_of("u", now + Duration::from_millis(1_500))
                .is_empty()
        );
        // A clean leave: at once.
        view.gateway_left(1);
        assert!(view.sessions_of("u", now).is_empty());
    }

    #[test]
    fn after_an_outage_every_gateway_gets_a_fresh_lease() {
        let view = View::default();
        let start = Instant::now();
        view.heartbeat(
            &Heartbeat {
                node: 2,
                epoch: 20,
                lease_ms: 1_000,
            },
            start,
        );
        view.presence("u".into(), 2, Some(presence(20, 1, &[1])));
        // Kafka was down for 5 s: node 2 could not heartbeat either.
        let back = start + Duration::from_secs(5);
        assert!(view.sessions_of("u", back).is_empty());
        view.renew_leases(back);
        assert_eq!(view.sessions_of("u", back).len(), 1);
        // It must heartbeat within the new lease.
        assert!(
            view.sessions_of("u", back + Duration::from_millis(1_500))
                .is_empty()
        );
    }

    #[test]
    fn the_latest_presence_record_wins_and_tombstones_remove() {
        let view = View::default();
        let now = Instant::now();
        view.heartbeat(
            &Heartbeat {
                node: 1,
                epoch: 7,
                lease_ms: 1_000,
            },
            now,
        );
        view.presence("u".into(), 1, Some(presence(7, 2, &[1, 2])));
        view.presence("u".into(), 1, Some(presence(7, 1, &[1]))); // late and older: ignored
        assert_eq!(view.sessions_of("u", now).len(), 2);
        view.presence("u".into(), 1, None);
        assert!(view.sessions_of("u", now).is_empty());
    }
}
