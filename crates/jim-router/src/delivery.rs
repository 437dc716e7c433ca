//! A message's delivery, planned once: who gets it and at which inbox
//! offsets. A process applies it to its [`Hub`](crate::Hub); the grpc and
//! kafka backends split it by the gateway holding each recipient and carry
//! the parts, which those gateways apply the same way.

use std::collections::HashMap;

use bytes::Bytes;
use jim_protocol::Command;

use crate::{SessionId, UserId, UserList};

/// A planned delivery: the frame, and who gets it.
///
/// ```
/// use bytes::Bytes;
/// use jim_protocol::Command;
/// use jim_router::{Delivery, Hub, Outbox, SessionId, SessionInfo, Transport, UserList};
/// use std::sync::Arc;
///
/// let hub = Hub::new();
/// let info = |id, user: &str| SessionInfo {
///     id: SessionId(id), user: user.into(), device: None,
///     transport: Transport::Tcp, node: 0, since_ms: 0,
/// };
/// let (phone, laptop) = (Arc::new(Outbox::new(8)), Arc::new(Outbox::new(8)));
/// hub.attach(info(1, "alice"), Arc::clone(&phone));
/// hub.attach(info(2, "alice"), Arc::clone(&laptop));
/// // Alice wrote to her group from her phone: the entry at offset 7 of her
/// // inbox goes to her laptop, and her phone is told to skip it.
/// let delivery = Delivery::to_users(
///     Command::C2G,
///     Bytes::from_static(b"{}"),
///     UserList::Listed(vec!["alice".into()]),
///     vec![7],
///     Some(SessionId(1)),
/// );
/// assert_eq!(hub.apply(&delivery).sessions, 1);
/// assert_eq!((phone.len(), laptop.len()), (1, 1)); // a skip, and the frame
/// ```
#[derive(Debug, Clone)]
pub struct Delivery<'m> {
    /// `B101`, `B102` or `B103`.
    pub cmd: Command,
    /// The stamped body, shared by every recipient.
    pub body: Bytes,
    /// Who gets it.
    pub to: Addressees<'m>,
}

/// Who gets a [`Delivery`].
#[derive(Debug, Clone)]
pub enum Addressees<'m> {
    /// Every session, wherever it is (a push to everyone: no inbox keeps it).
    Everyone,
    /// Every session of these users.
    Users {
        /// The users.
        users: UserList<'m>,
        /// Each user's inbox offset, in the order of `users`; empty when
        /// the message is not an inbox entry (the inbox is off).
        offsets: Vec<u32>,
        /// The sending session: not given the frame; told to skip its
        /// entry instead, so that its position stays gapless.
        except: Option<SessionId>,
    },
}

impl<'m> Delivery<'m> {
    /// A delivery to every session.
    pub fn to_everyone(cmd: Command, body: Bytes) -> Delivery<'static> {
        Delivery {
            cmd,
            body,
            to: Addressees::Everyone,
        }
    }

    /// A delivery to `users` at `offsets` (all 0, or empty: not inbox
    /// entries), `except` the sending session.
    pub fn to_users(
        cmd: Command,
        body: Bytes,
        users: UserList<'m>,
        mut offsets: Vec<u32>,
        except: Option<SessionId>,
    ) -> Delivery<'m> {
        if offsets.iter().all(|o| *o == 0) {
            offsets.clear();
        }
        Delivery {
            cmd,
            body,
            to: Addressees::Users {
                users,
                offsets,
                except,
            },
        }
    }

    /// The same delivery, owning its users (to carry it across an await
    /// or a task).
    pub fn into_owned(self) -> Delivery<'static> {
        let to = match self.to {
            Addressees::Everyone => Addressees::Everyone,
            Addressees::Users {
                users,
                offsets,
                except,
            } => Addressees::Users {
                users: users.into_owned(),
                offsets,
                except,
            },
        };
        Delivery {
            cmd: self.cmd,
            body: self.body,
            to,
        }
    }

    /// The parts of this delivery for each gateway holding a recipient's
    /// session, as `placement` knows them, and how many sessions (other
    /// than the sending one) they reach: what a backend carries.
    ///
    /// The sending session's gateway gets the sender's entry only when
    /// there is an offset to skip; the sending session is never counted.
    pub fn by_node(&self, placement: &impl Placement) -> Vec<Part> {
        let mut parts: HashMap<u16, (Vec<UserId>, Vec<u32>, usize)> = HashMap::new();
        let (users, offsets, except) = match &self.to {
            Addressees::Everyone => {
                return placement
                    .nodes()
                    .into_iter()
                    .map(|(node, sessions)| Part {
                        node,
                        delivery: Delivery::to_everyone(self.cmd, self.body.clone()),
                        sessions,
                    })
                    .collect();
            }
            Addressees::Users {
                users,
                offsets,
                except,
            } => (users, offsets, *except),
        };
        for (i, user) in users.iter().enumerate() {
            let offset = offsets.get(i).copied().unwrap_or(0);
            placement.sessions_of(user, &mut |node, session| {
                let sending = Some(session) == except;
                if sending && offset == 0 {
                    return;
                }
                let (users, offsets, sessions) = parts.entry(node).or_default();
                if users.last() != Some(user) {
                    users.push(UserId::clone(user));
                    offsets.push(offset);
                }
                if !sending {
                    *sessions += 1;
                }
            });
        }
        parts
            .into_iter()
            .map(|(node, (users, offsets, sessions))| Part {
                node,
                delivery: Delivery::to_users(
                    self.cmd,
                    self.body.clone(),
                    UserList::Listed(users),
                    offsets,
                    except,
                ),
                sessions,
            })
            .collect()
    }
}

/// One gateway's part of a delivery: see [`Delivery::by_node`].
#[derive(Debug)]
pub struct Part {
    /// The gateway's node id.
    pub node: u16,
    /// What it applies to its hub.
    pub delivery: Delivery<'static>,
    /// The sessions there it reaches (not the sending one).
    pub sessions: usize,
}

/// Where sessions are, as a backend that carries deliveries between
/// gateways knows it (the central router's presence, a Kafka gateway's
/// view).
pub trait Placement {
    /// Calls `each` with the node and id of every session of `user`.
    fn sessions_of(&self, user: &str, each: &mut dyn FnMut(u16, SessionId));

    /// Every gateway that takes deliveries, and how many sessions it holds.
    fn nodes(&self) -> Vec<(u16, usize)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions by node: (node, session, user).
    struct Fixed(Vec<(u16, u64, &'static str)>);

    impl Placement for Fixed {
        fn sessions_of(&self, user: &str, each: &mut dyn FnMut(u16, SessionId)) {
            for (node, id, u) in &self.0 {
                if *u == user {
                    each(*node, SessionId(*id));
                }
            }
        }

        fn nodes(&self) -> Vec<(u16, usize)> {
            let mut nodes: HashMap<u16, usize> = HashMap::new();
            for (node, _, _) in &self.0 {
                *nodes.entry(*node).or_default() += 1;
            }
            nodes.into_iter().collect()
        }
    }

    fn users(names: &[&str]) -> UserList<'static> {
        UserList::Listed(names.iter().map(|n| UserId::from(*n)).collect())
    }

    fn part(split: &[Part], node: u16) -> &Delivery<'static> {
        &split.iter().find(|p| p.node == node).unwrap().delivery
    }

    fn sessions(split: &[Part]) -> usize {
        split.iter().map(|p| p.sessions).sum()
    }

    fn listed(delivery: &Delivery<'_>) -> (Vec<String>, Vec<u32>) {
        let Addressees::Users { users, offsets, .. } = &delivery.to else {
            panic!("not to users")
        };
        (users.iter().map(|u| u.to_string()).collect(), offsets.clone())
    }

    #[test]
    fn the_sending_session_gets_its_entry_to_skip_only_when_there_is_one() {
        // alice sends from session 1 on node 1; her laptop (2) is on node 2;
        // bob (3) is on node 2.
        let placement = Fixed(vec![(1, 1, "alice"), (2, 2, "alice"), (2, 3, "bob")]);
        let group = Delivery::to_users(
            Command::C2G,
            Bytes::new(),
            users(&["alice", "bob"]),
            vec![5, 9],
            Some(SessionId(1)),
        );
        let split = group.by_node(&placement);
        assert_eq!(sessions(&split), 2, "the laptop and bob, not the sender");
        assert_eq!(listed(part(&split, 1)), (vec!["alice".into()], vec![5]));
        assert_eq!(
            listed(part(&split, 2)),
            (vec!["alice".into(), "bob".into()], vec![5, 9])
        );

        // No inbox: nothing to skip, so node 1 gets nothing.
        let off = Delivery::to_users(
            Command::C2G,
            Bytes::new(),
            users(&["alice", "bob"]),
            vec![0, 0],
            Some(SessionId(1)),
        );
        let split = off.by_node(&placement);
        assert_eq!((split.len(), sessions(&split)), (1, 2));
        assert_eq!(listed(part(&split, 2)).1, Vec::<u32>::new());
    }

    #[test]
    fn everyone_goes_to_every_node() {
        let placement = Fixed(vec![(1, 1, "a"), (2, 2, "b"), (2, 3, "c")]);
        let split = Delivery::to_everyone(Command::S2C, Bytes::new()).by_node(&placement);
        assert_eq!((split.len(), sessions(&split)), (2, 3));
    }
}
