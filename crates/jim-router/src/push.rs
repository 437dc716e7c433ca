//! Server pushes (`B103`) as API callers ask for them: the one place where
//! an audience is read and a pushed message is checked, addressed and
//! stamped, for the gateway's admin API and the central router's `Push`.

use jim_model::MessageIdGenerator;

use crate::{GroupId, Outgoing, RouterError, Target, UserId};

/// Who a push goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// These users, each getting the message addressed to them.
    Users(Vec<UserId>),
    /// Every member of a group (`receiver_id` is the group).
    Group(GroupId),
    /// Every session (`receiver_id` is `*`); not stored in any inbox.
    Everyone,
}

impl Audience {
    /// The audience from an API request's three optional parts, of which
    /// exactly one must be given.
    ///
    /// ```
    /// use jim_router::Audience;
    ///
    /// assert_eq!(Audience::from_parts(None, None, true)?, Audience::Everyone);
    /// assert!(Audience::from_parts(Some(vec![]), None, false).is_err());
    /// assert!(Audience::from_parts(None, Some("g".into()), true).is_err());
    /// # Ok::<(), jim_router::RouterError>(())
    /// ```
    ///
    /// # Errors
    /// [`RouterError::Invalid`] saying what is wrong.
    pub fn from_parts(
        users: Option<Vec<String>>,
        group: Option<String>,
        everyone: bool,
    ) -> Result<Audience, RouterError> {
        let invalid = |reason: &str| RouterError::Invalid {
            reason: reason.to_owned(),
        };
        match (users, group, everyone) {
            (Some(users), None, false) => {
                if users.is_empty() || users.iter().any(String::is_empty) {
                    return Err(invalid("`users` must list at least one non-empty user id"));
                }
                Ok(Audience::Users(users.into_iter().map(Into::into).collect()))
            }
            (None, Some(group), false) if !group.is_empty() => Ok(Audience::Group(group.into())),
            (None, None, true) => Ok(Audience::Everyone),
            _ => Err(invalid(
                "give exactly one of `users`, `group` (non-empty) or `everyone`",
            )),
        }
    }
}

/// The messages of one push, checked, addressed and stamped, ready to be
/// routed one by one: one per user, or one for the group or everyone.
///
/// Every message is built before any is routed, so a push that cannot be
/// sent whole is refused whole. A stamped body above `max_body` is refused
/// (no recipient would accept it).
///
/// ```
/// use jim_model::MessageIdGenerator;
/// use jim_router::{Audience, push_messages};
///
/// let ids = MessageIdGenerator::new(0)?;
/// let audience = Audience::Users(vec!["alice".into(), "bob".into()]);
/// let message = br#"{"type":"text","data":{"content":"maintenance at 10:00"}}"#;
/// let pushes = push_messages(&audience, message, "system", &ids, 64 * 1024)?;
/// assert_eq!(pushes.len(), 2);
/// assert_eq!(pushes[1].0, "bob"); // the receiver_id of each
///
/// let too_big = push_messages(&audience, message, "system", &ids, 64).unwrap_err();
/// assert!(too_big.to_string().contains("maximum body of 64 bytes"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`RouterError::Invalid`] for an empty sender, a message that is not a
/// valid chat message, or one too large once addressed and stamped.
pub fn push_messages(
    audience: &Audience,
    message: &[u8],
    sender_id: &str,
    ids: &MessageIdGenerator,
    max_body: usize,
) -> Result<Vec<(String, Outgoing)>, RouterError> {
    if sender_id.is_empty() {
        return Err(RouterError::Invalid {
            reason: "`sender_id` must not be empty".into(),
        });
    }
    let addressed: Vec<(String, Target)> = match audience {
        Audience::Users(users) => users
            .iter()
            .map(|user| (user.to_string(), Target::User(user.clone())))
            .collect(),
        Audience::Group(group) => vec![(group.to_string(), Target::Group(group.clone()))],
        Audience::Everyone => vec![("*".to_owned(), Target::Everyone)],
    };
    addressed
        .into_iter()
        .map(|(receiver, target)| {
            let bad = |e: jim_model::ModelError| RouterError::Invalid {
                reason: format!("bad message: {e}"),
            };
            let body = jim_model::addressed(message, &receiver).map_err(bad)?;
            let outgoing = Outgoing::push(target, &body, sender_id, ids).map_err(bad)?;
            if outgoing.body.len() > max_body {
                return Err(RouterError::Invalid {
                    reason: format!(
                        "message too large: {} bytes once addressed and stamped, above the maximum body of {max_body} bytes",
                        outgoing.body.len()
                    ),
                });
            }
            Ok((receiver, outgoing))
        })
        .collect()
}
