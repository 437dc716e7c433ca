//! The routing rules, written once for every backend: whether a message
//! may go where it is addressed, and who gets it. The backends differ only
//! in where those recipients' sessions are (this process, the gateways a
//! central router knows, the gateways a Kafka view knows).

use jim_protocol::Command;

use crate::{Groups, Members, Observers, Outgoing, RouterError, SessionId, Target, UserId};

/// Who gets an accepted message (borrowing the message's addressee: no
/// reference count is touched per message).
#[derive(Debug, Clone)]
pub enum Recipients<'m> {
    /// Every session of these users, but `except` (the sending session of
    /// a group message: the sender's other devices do get it).
    Users {
        /// The users.
        users: UserList<'m>,
        /// A session left out.
        except: Option<SessionId>,
    },
    /// Every session, wherever it is (a push to everyone).
    Everyone,
}

/// One user, or a group's members (the group's shared snapshot, not a
/// copy).
#[derive(Debug, Clone)]
pub enum UserList<'m> {
    /// One user.
    One(&'m UserId),
    /// Two users: a one-to-one message's recipient and its sender's own
    /// copy.
    Pair(&'m UserId, &'m UserId),
    /// The members of a group.
    Members(Members),
    /// Users listed one by one (a delivery's part for one gateway).
    Listed(Vec<UserId>),
}

impl UserList<'_> {
    /// The users.
    pub fn iter(&self) -> Users<'_> {
        match self {
            UserList::One(user) => Users::One(Some(user)),
            UserList::Pair(first, second) => Users::Pair([*first, *second].into_iter()),
            UserList::Members(members) => Users::Members(members.iter()),
            UserList::Listed(users) => Users::Listed(users.iter()),
        }
    }

    /// The same users, owned.
    pub fn into_owned(self) -> UserList<'static> {
        match self {
            UserList::One(user) => UserList::Listed(vec![UserId::clone(user)]),
            UserList::Pair(first, second) => {
                UserList::Listed(vec![UserId::clone(first), UserId::clone(second)])
            }
            UserList::Members(members) => UserList::Members(members),
            UserList::Listed(users) => UserList::Listed(users),
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        match self {
            UserList::One(_) => 1,
            UserList::Pair(..) => 2,
            UserList::Members(members) => members.len(),
            UserList::Listed(users) => users.len(),
        }
    }

    /// Whether there is nobody (a group has at least one member).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The users of a [`UserList`].
#[derive(Debug)]
pub enum Users<'a> {
    /// One user, until taken.
    One(Option<&'a UserId>),
    /// Two users.
    Pair(std::array::IntoIter<&'a UserId, 2>),
    /// A group's members.
    Members(std::collections::hash_set::Iter<'a, UserId>),
    /// Listed users.
    Listed(std::slice::Iter<'a, UserId>),
}

impl<'a> Iterator for Users<'a> {
    type Item = &'a UserId;

    fn next(&mut self) -> Option<&'a UserId> {
        match self {
            Users::One(user) => user.take(),
            Users::Pair(users) => users.next(),
            Users::Members(members) => members.next(),
            Users::Listed(users) => users.next(),
        }
    }
}

/// Applies the rules to `message` and says who gets it:
///
/// - to a user: that user's sessions;
/// - to a group: the group must exist (else [`RouterError::UnknownGroup`]);
///   a client's message needs its sender to be a member (else
///   [`RouterError::NotMember`]); every member's sessions get it but the
///   sending session; a server push reaches every member;
/// - to everyone: every session;
///
/// and in every case the observers may veto it ([`RouterError::Rejected`]),
/// after the checks above and the backend's own `can_place` (a router that
/// cannot place a recipient yet refuses there), so that they see only
/// messages that would go.
///
/// ```
/// use jim_model::{Message, MessageIdGenerator, Text};
/// use jim_router::{Groups, Observers, Outgoing, Recipients, Target, recipients};
///
/// let groups = Groups::new();
/// groups.add("team", &["alice".into(), "bob".into()])?;
/// let ids = MessageIdGenerator::new(0).unwrap();
/// let body = Message::Text(Text::new("team", "standup")).to_vec();
/// let push = Outgoing::push(Target::Group("team".into()), &body, "bot", &ids).unwrap();
/// let placed = |_: &Recipients<'_>| Ok(());
/// let Recipients::Users { users, except } = recipients(&push, &groups, &Observers::default(), placed)? else {
///     unreachable!()
/// };
/// assert_eq!((users.iter().count(), except), (2, None));
/// # Ok::<(), jim_router::RouterError>(())
/// ```
///
/// # Errors
/// As above.
pub fn recipients<'m>(
    message: &'m Outgoing,
    groups: &Groups,
    observers: &Observers,
    can_place: impl FnOnce(&Recipients<'m>) -> Result<(), RouterError>,
) -> Result<Recipients<'m>, RouterError> {
    let recipients = match &message.target {
        Target::User(user) => Recipients::Users {
            users: UserList::One(user),
            except: None,
        },
        Target::Group(group) => {
            let members = groups.members(group)?;
            let except = match &message.sender {
                Some(sender) if !members.contains(&sender.user) => {
                    return Err(RouterError::NotMember {
                        group: group.to_string(),
                    });
                }
                Some(sender) => Some(sender.session),
                None => None,
            };
            Recipients::Users {
                users: UserList::Members(members),
                except,
            }
        }
        Target::Everyone => Recipients::Everyone,
    };
    can_place(&recipients)?;
    if message.cmd == Command::Typing {
        // Ephemeral: never observed, never to the typist's own sessions.
        return Ok(typing_recipients(message, recipients));
    }
    observers.accept(message)?;
    Ok(recipients)
}

/// Who sees that a user is typing (`B104`, the contract's section 8): the
/// other side of the conversation, every one of its sessions, and never
/// a session of the typist.
fn typing_recipients<'m>(message: &'m Outgoing, recipients: Recipients<'m>) -> Recipients<'m> {
    let Some(sender) = &message.sender else {
        return recipients;
    };
    let Recipients::Users { users, .. } = recipients else {
        return recipients;
    };
    let others = users
        .iter()
        .filter(|user| **user != sender.user)
        .cloned()
        .collect();
    Recipients::Users {
        users: UserList::Listed(others),
        except: None,
    }
}

/// The sender's own copy (the contract's section 8): a client's one-to-one
/// message also goes to its sender, into their inbox and to their other
/// sessions, never to the sending session (which its ack tells the
/// offset). A message to oneself is one entry, not two. Every other
/// message is left as it is (a group's sender is a member already; a push
/// has no sender).
///
/// ```
/// use jim_model::{Message, MessageId, MessageKind};
/// use jim_protocol::Command;
/// use jim_router::{Outgoing, Recipients, Sender, SessionId, Target, UserList, with_sender_copy};
///
/// let message = Outgoing {
///     cmd: Command::C2C,
///     kind: MessageKind::Text,
///     target: Target::User("bob".into()),
///     sender: Some(Sender { user: "alice".into(), session: SessionId(7) }),
///     message_id: MessageId(1),
///     body: bytes::Bytes::new(),
///     client_msg_id: None,
/// };
/// let Target::User(bob) = &message.target else { unreachable!() };
/// let plain = Recipients::Users { users: UserList::One(bob), except: None };
/// let Recipients::Users { users, except } = with_sender_copy(&message, plain) else { unreachable!() };
/// assert_eq!(users.iter().map(|u| &**u).collect::<Vec<_>>(), ["bob", "alice"]);
/// assert_eq!(except, Some(SessionId(7)));
/// ```
pub fn with_sender_copy<'m>(message: &'m Outgoing, recipients: Recipients<'m>) -> Recipients<'m> {
    let (Target::User(to), Some(sender), Recipients::Users { .. }) =
        (&message.target, &message.sender, &recipients)
    else {
        return recipients;
    };
    if message.cmd != Command::C2C {
        return recipients;
    }
    let users = if **to == *sender.user {
        UserList::One(to)
    } else {
        UserList::Pair(to, &sender.user)
    };
    Recipients::Users {
        users,
        except: Some(sender.session),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use jim_model::{MessageId, MessageKind};
    use jim_protocol::Command;

    use super::*;
    use crate::{Observer, Sender};

    fn message(target: Target, sender: Option<(&str, u64)>) -> Outgoing {
        Outgoing {
            cmd: Command::C2G,
            kind: MessageKind::Text,
            target,
            sender: sender.map(|(user, session)| Sender {
                user: user.into(),
                session: SessionId(session),
            }),
            message_id: MessageId(1),
            body: Bytes::from_static(b"{}"),
            client_msg_id: None,
        }
    }

    fn team() -> Groups {
        let groups = Groups::new();
        groups.add("team", &["alice".into(), "bob".into()]).unwrap();
        groups
    }

    /// Records what it sees; vetoes what it is told to.
    #[derive(Default)]
    struct Watcher {
        seen: Mutex<Vec<Target>>,
        veto: bool,
    }

    impl Observer for Watcher {
        fn on_message(&self, message: &Outgoing) -> Result<(), String> {
            self.seen.lock().unwrap().push(message.target.clone());
            if self.veto {
                Err("not today".into())
            } else {
                Ok(())
            }
        }
    }

    fn anywhere(_: &Recipients<'_>) -> Result<(), RouterError> {
        Ok(())
    }

    fn users(recipients: &Recipients<'_>) -> (Vec<String>, Option<SessionId>) {
        match recipients {
            Recipients::Users { users, except } => {
                let mut users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
                users.sort();
                (users, *except)
            }
            Recipients::Everyone => panic!("everyone"),
        }
    }

    #[test]
    fn a_message_to_a_user_goes_to_that_user() {
        let sent = message(Target::User("bob".into()), Some(("alice", 1)));
        let got = recipients(&sent, &team(), &Observers::default(), anywhere);
        assert_eq!(users(&got.unwrap()), (vec!["bob".into()], None));
    }

    #[test]
    fn a_group_message_goes_to_every_member_but_the_sending_session() {
        let sent = message(Target::Group("team".into()), Some(("alice", 7)));
        let got = recipients(&sent, &team(), &Observers::default(), anywhere);
        assert_eq!(
            users(&got.unwrap()),
            (vec!["alice".into(), "bob".into()], Some(SessionId(7))),
            "the sender's other sessions get it too"
        );
    }

    #[test]
    fn a_push_to_a_group_reaches_every_member() {
        let sent = message(Target::Group("team".into()), None);
        let got = recipients(&sent, &team(), &Observers::default(), anywhere);
        assert_eq!(users(&got.unwrap()), (vec!["alice".into(), "bob".into()], None));
    }

    #[test]
    fn a_group_message_needs_the_group_and_a_member_sender_before_observers_see_it() {
        let watcher = Arc::new(Watcher::default());
        let observers = Observers::from(vec![Arc::clone(&watcher) as Arc<dyn Observer>]);
        let sent = message(Target::Group("ghosts".into()), Some(("alice", 1)));
        let unknown = recipients(&sent, &team(), &observers, anywhere);
        assert_eq!(
            unknown.unwrap_err(),
            RouterError::UnknownGroup {
                group: "ghosts".into()
            }
        );
        let sent = message(Target::Group("team".into()), Some(("eve", 1)));
        let outsider = recipients(&sent, &team(), &observers, anywhere);
        assert_eq!(
            outsider.unwrap_err(),
            RouterError::NotMember { group: "team".into() }
        );
        assert!(
            watcher.seen.lock().unwrap().is_empty(),
            "observers see only what would go"
        );
    }

    #[test]
    fn observers_see_every_message_that_would_go_and_may_veto_it() {
        let watcher = Arc::new(Watcher {
            veto: true,
            ..Watcher::default()
        });
        let observers = Observers::from(vec![Arc::clone(&watcher) as Arc<dyn Observer>]);
        for target in [
            Target::User("bob".into()),
            Target::Group("team".into()),
            Target::Everyone,
        ] {
            let sent = message(target, Some(("alice", 1)));
            let vetoed = recipients(&sent, &team(), &observers, anywhere);
            assert_eq!(
                vetoed.unwrap_err(),
                RouterError::Rejected {
                    reason: "not today".into()
                }
            );
        }
        assert_eq!(watcher.seen.lock().unwrap().len(), 3);
    }

    #[test]
    fn a_backend_that_cannot_place_a_recipient_refuses_before_observers_see_it() {
        let watcher = Arc::new(Watcher::default());
        let observers = Observers::from(vec![Arc::clone(&watcher) as Arc<dyn Observer>]);
        let not_yet = |_: &Recipients<'_>| {
            Err(RouterError::Unavailable {
                reason: "settling".into(),
            })
        };
        let sent = message(Target::User("bob".into()), None);
        let got = recipients(&sent, &team(), &observers, not_yet);
        assert!(matches!(got, Err(RouterError::Unavailable { .. })));
        assert!(watcher.seen.lock().unwrap().is_empty());
    }

    #[test]
    fn a_push_to_everyone_goes_to_every_session() {
        let sent = message(Target::Everyone, None);
        let got = recipients(&sent, &team(), &Observers::default(), anywhere).unwrap();
        assert!(matches!(got, Recipients::Everyone));
    }
}
