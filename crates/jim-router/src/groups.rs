//! Group membership.

use std::collections::HashSet;
use std::sync::Arc;

use crate::{GroupId, RouterError, UserId};

/// The members of one group: a snapshot that readers share without locks.
pub type Members = Arc<HashSet<UserId>>;

/// Group membership, set by the application (admin API, gRPC, or in
/// process), never guessed.
///
/// A group exists while it has members. Readers take a snapshot of a
/// group's members (one reference count), so fanning a message out to a
/// large group holds no lock; changes copy the member set.
#[derive(Debug, Default)]
pub struct Groups {
    /// Hashed with foldhash: every group message looks its group up.
    groups: dashmap::DashMap<GroupId, Members, foldhash::fast::RandomState>,
}

impl Groups {
    /// No groups.
    pub fn new() -> Groups {
        Groups::default()
    }

    /// Adds users to a group, creating it.
    ///
    /// # Errors
    /// [`RouterError::Invalid`] for an empty group or user id.
    pub fn add(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        check_id("group", group)?;
        for user in users {
            check_id("user", user)?;
        }
        if users.is_empty() {
            return Ok(()); // a group exists only with members
        }
        let mut entry = self.groups.entry(group.into()).or_default();
        let mut members = HashSet::clone(&entry);
        members.extend(users.iter().cloned());
        *entry = Arc::new(members);
        Ok(())
    }

    /// Removes users from a group; an emptied group is deleted.
    ///
    /// # Errors
    /// [`RouterError::UnknownGroup`] if the group has no members.
    pub fn remove(&self, group: &str, users: &[UserId]) -> Result<(), RouterError> {
        let mut found = false;
        self.groups.remove_if_mut(group, |_, members| {
            found = true;
            let mut remaining = HashSet::clone(members);
            for user in users {
                remaining.remove(user);
            }
            *members = Arc::new(remaining);
            members.is_empty()
        });
        if found { Ok(()) } else { Err(unknown(group)) }
    }

    /// A snapshot of a group's members.
    ///
    /// # Errors
    /// [`RouterError::UnknownGroup`] if the group has no members.
    pub fn members(&self, group: &str) -> Result<Members, RouterError> {
        self.groups
            .get(group)
            .map(|m| Arc::clone(&m))
            .ok_or_else(|| unknown(group))
    }

    /// The members of a group, sorted.
    ///
    /// # Errors
    /// [`RouterError::UnknownGroup`] if the group has no members.
    pub fn sorted_members(&self, group: &str) -> Result<Vec<UserId>, RouterError> {
        let mut members: Vec<UserId> = self.members(group)?.iter().cloned().collect();
        members.sort();
        Ok(members)
    }

    /// Replaces a group's members wholesale (an empty set deletes it); for
    /// backends that learn membership from elsewhere.
    pub fn set(&self, group: &str, members: HashSet<UserId>) {
        if members.is_empty() {
            self.groups.remove(group);
        } else {
            self.groups.insert(group.into(), Arc::new(members));
        }
    }

    /// Every group, with its members (for re-announcing or persisting).
    pub fn snapshot(&self) -> Vec<(GroupId, Members)> {
        self.groups
            .iter()
            .map(|e| (Arc::clone(e.key()), Arc::clone(e.value())))
            .collect()
    }

    /// Groups with members.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

fn unknown(group: &str) -> RouterError {
    RouterError::UnknownGroup {
        group: group.to_owned(),
    }
}

fn check_id(what: &str, id: &str) -> Result<(), RouterError> {
    if id.is_empty() {
        return Err(RouterError::Invalid {
            reason: format!("{what} id must not be empty"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<UserId> {
        names.iter().map(|n| UserId::from(*n)).collect()
    }

    #[test]
    fn membership_lifecycle() {
        let groups = Groups::new();
        assert!(matches!(
            groups.members("g"),
            Err(RouterError::UnknownGroup { .. })
        ));
        groups.add("g", &ids(&["b", "a"])).unwrap();
        groups.add("g", &ids(&["c", "a"])).unwrap();
        assert_eq!(groups.sorted_members("g").unwrap(), ids(&["a", "b", "c"]));

        let before = groups.members("g").unwrap();
        groups.remove("g", &ids(&["a", "zzz"])).unwrap();
        assert_eq!(before.len(), 3, "a snapshot does not change under the reader");
        assert_eq!(groups.sorted_members("g").unwrap(), ids(&["b", "c"]));

        groups.remove("g", &ids(&["b", "c"])).unwrap();
        assert!(groups.is_empty(), "an emptied group is gone");
        assert!(matches!(
            groups.remove("g", &ids(&["b"])),
            Err(RouterError::UnknownGroup { .. })
        ));
    }

    #[test]
    fn empty_ids_are_refused() {
        let groups = Groups::new();
        assert!(matches!(
            groups.add("", &ids(&["a"])),
            Err(RouterError::Invalid { .. })
        ));
        assert!(matches!(
            groups.add("g", &ids(&[""])),
            Err(RouterError::Invalid { .. })
        ));
        assert!(groups.is_empty());
    }
}
