//! The inbox position rule (the contract's section 7), in one place, with
//! no I/O: where a session starts in its inbox (the server's side), what a
//! client keeps after each `B002` (the client's side), and which
//! deliveries are new to it. The Rust client and the gateway call these;
//! the TypeScript SDK runs the same test vectors
//! (`tests/vectors/inbox-position.json`).

use crate::{InboxHead, Position};

/// The server's side: where a session with `since` starts in an inbox
/// of `epoch` holding offsets `oldest..=head` (`oldest` is `head + 1` when
/// it holds none), and whether nothing was missed (`recovered`).
///
/// The session is sent every offset above the start: with `since` kept
/// (same epoch, within what is held or just before it), what follows it;
/// with a `since` that cannot be kept, every entry held; without `since`,
/// nothing (live deliveries only).
///
/// ```
/// use jim_model::{Position, position::start};
///
/// let since = Position { epoch: "e1".into(), offset: 5 };
/// assert_eq!(start(Some(&since), "e1", 3, 9), (5, true)); // 6..=9 follow
/// assert_eq!(start(Some(&since), "e2", 1, 9), (0, false)); // another epoch: all
/// assert_eq!(start(None, "e1", 3, 9), (9, false)); // nothing replayed
/// ```
pub fn start(since: Option<&Position>, epoch: &str, oldest: u32, head: u32) -> (u32, bool) {
    match since {
        None => (head, false),
        Some(since)
            if since.epoch == epoch
                && since.offset <= u64::from(head)
                && since.offset + 1 >= u64::from(oldest) =>
        {
            // Within `head`, so it fits.
            (u32::try_from(since.offset).unwrap_or(head), true)
        }
        Some(_) => (oldest.saturating_sub(1), false),
    }
}

/// The client's side: the position to count from after a `B002` whose
/// inbox is `head`, having asked with `asked`. Without `asked` nothing is
/// replayed (from the head on); with `recovered`, what was asked; else the
/// replay is everything the inbox holds, whose offsets follow: nothing of
/// this epoch is counted as had (the application reloads its history).
///
/// ```
/// use jim_model::{InboxHead, Position, position::resumed};
///
/// let head = InboxHead { epoch: "e1".into(), offset: 9, recovered: true };
/// let asked = Position { epoch: "e1".into(), offset: 5 };
/// assert_eq!(resumed(Some(&asked), &head).offset, 5);
/// assert_eq!(resumed(None, &head).offset, 9);
/// let lost = InboxHead { recovered: false, ..head };
/// assert_eq!(resumed(Some(&asked), &lost), Position { epoch: "e1".into(), offset: 0 });
/// ```
pub fn resumed(asked: Option<&Position>, head: &InboxHead) -> Position {
    let offset = match asked {
        None => head.offset,
        Some(asked) if head.recovered => asked.offset,
        Some(_) => 0,
    };
    Position {
        epoch: head.epoch.clone(),
        offset,
    }
}

/// Whether the delivery at `offset` (0: not an inbox entry) is new to a
/// client at `position` (none: it keeps no position).
pub fn is_new(position: Option<&Position>, offset: u64) -> bool {
    offset == 0 || position.is_none_or(|p| offset > p.offset)
}

/// A message of the client's own session (a group message, or a one-to-one
/// message's sender copy) at `offset` (from its
/// ack): the session is not sent it, so the position moves past it if it
/// is the next one. Whether it moved.
pub fn skip_own(position: &mut Position, offset: u64) -> bool {
    if offset != position.offset + 1 {
        return false;
    }
    position.offset = offset;
    true
}
