//! History and the conversation list (`B105`, the contract's section 8),
//! answered from the inbox store in every mode: through the routing
//! contract's inbox reads, so the store may be in this process, behind
//! the central router, or in Redis. A query reads the inbox in pages from
//! the newest entry back: it costs the entries it reads.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use jim_model::{Conversation, EntryView, MessageId};
use jim_protocol::Command;

use crate::{Router, RouterError};

/// Entries read from the store at a time.
const PAGE: u32 = 100;

/// One inbox entry of a history page or a conversation's last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its offset in the user's inbox.
    pub offset: u32,
    /// `B101`, `B102` or `B103`.
    pub cmd: Command,
    /// The stamped body, as delivered.
    pub body: Bytes,
}

/// A page of one conversation, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The inbox's epoch.
    pub epoch: Arc<str>,
    /// The entries, newest first.
    pub entries: Vec<HistoryEntry>,
    /// Whether older entries of the conversation are held.
    pub more: bool,
}

/// One conversation of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation, from the user's side.
    pub conversation: Conversation,
    /// Its newest entry.
    pub last: HistoryEntry,
    /// Messages after the user's read mark that the user did not send.
    pub unread: u32,
    /// The user's read mark, if any.
    pub read: Option<MessageId>,
}

/// The user's conversations, most recent first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationList {
    /// The inbox's epoch.
    pub epoch: Arc<str>,
    /// The conversations.
    pub conversations: Vec<ConversationSummary>,
}

/// Walks `user`'s inbox from below offset `before` (`None`: the head)
/// back to its oldest entry, a page at a time, giving each entry and how
/// it looks to `user`, until `visit` says stop. `whole`: the walk will
/// read every entry, so two pages are read at once (one wait for both).
/// `None` when the store is `off`.
async fn walk_back<R: Router + ?Sized>(
    router: &R,
    user: &str,
    before: Option<u32>,
    whole: bool,
    mut visit: impl FnMut(&jim_inbox::Entry, EntryView) -> bool,
) -> Result<Option<Arc<str>>, RouterError> {
    let Some(state) = router.inbox_state(user).await? else {
        return Ok(None);
    };
    let mut epoch = state.epoch;
    let floor = state.oldest.saturating_sub(1);
    let mut upper = before.map_or(state.head, |b| b.saturating_sub(1).min(state.head));
    let page_below = |upper: u32| upper.saturating_sub(PAGE).max(floor);
    let read = |after: u32, upper: u32| router.read_inbox(user, after, (upper - after) as usize);
    while upper > floor {
        let after = page_below(upper);
        let (newer, older, next) = if whole && after > floor {
            let below = page_below(after);
            let (newer, older) = tokio::join!(read(after, upper), read(below, after));
            (newer?, Some(older?), below)
        } else {
            (read(after, upper).await?, None, after)
        };
        for (page, upper) in std::iter::once((newer, upper)).chain(older.map(|page| (page, after))) {
            epoch = page.epoch;
            for entry in page.entries.iter().rev().filter(|e| e.offset <= upper) {
                let Some(view) = EntryView::of(user, entry.cmd == Command::C2G, &entry.body) else {
                    continue;
                };
                if !visit(entry, view) {
                    return Ok(Some(epoch));
                }
            }
        }
        upper = next;
    }
    Ok(Some(epoch))
}

fn entry(entry: &jim_inbox::Entry) -> HistoryEntry {
    HistoryEntry {
        offset: entry.offset,
        cmd: entry.cmd,
        body: entry.body.clone(),
    }
}

/// A page of `conversation` in `user`'s inbox: its entries (the user's
/// own sent copies and what they received; receipts left out) with
/// offsets below `before`, newest first, at most `limit`. `None` when the
/// store is `off`.
///
/// ```
/// use jim_model::{Conversation, Message, MessageIdGenerator, Text};
/// use jim_router::{LocalRouter, Outgoing, Router, Target, history};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let router = LocalRouter::new();
/// let ids = MessageIdGenerator::new(0).unwrap();
/// for text in ["one", "two", "three"] {
///     let body = Message::Text(Text::new("bob", text)).to_vec();
///     router.route(Outgoing::push(Target::User("bob".into()), &body, "shop", &ids).unwrap()).await?;
/// }
/// let shop = Conversation::User("shop".into());
/// let page = history(&router, "bob", &shop, None, 2).await?.unwrap();
/// assert_eq!(page.entries.iter().map(|e| e.offset).collect::<Vec<_>>(), [3, 2]);
/// assert!(page.more);
/// let older = history(&router, "bob", &shop, Some(2), 2).await?.unwrap();
/// assert_eq!((older.entries.len(), older.more), (1, false));
/// # Ok::<(), jim_router::RouterError>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// The store's ([`RouterError::Inbox`], or unavailable).
pub async fn history<R: Router + ?Sized>(
    router: &R,
    user: &str,
    conversation: &Conversation,
    before: Option<u32>,
    limit: usize,
) -> Result<Option<HistoryPage>, RouterError> {
    let mut entries = Vec::new();
    let mut more = false;
    let epoch = walk_back(router, user, before, false, |held, view| {
        if view.receipt || view.conversation != *conversation {
            return true;
        }
        if entries.len() == limit {
            more = true;
            return false;
        }
        entries.push(entry(held));
        true
    })
    .await?;
    Ok(epoch.map(|epoch| HistoryPage { epoch, entries, more }))
}

/// `user`'s conversations in their inbox, most recent first, at most
/// `limit`, each with its newest entry and how many messages after the
/// user's read mark (`read_marks`) the user did not send. Reads the inbox
/// back to its oldest entry. `None` when the store is `off`.
///
/// # Errors
/// The store's ([`RouterError::Inbox`], or unavailable).
pub async fn conversations<R: Router + ?Sized>(
    router: &R,
    user: &str,
    limit: usize,
    read_marks: &HashMap<Conversation, MessageId>,
) -> Result<Option<ConversationList>, RouterError> {
    let mut list: Vec<ConversationSummary> = Vec::new();
    let mut index: HashMap<Conversation, usize> = HashMap::new();
    let epoch = walk_back(router, user, None, true, |held, view| {
        if view.receipt {
            return true;
        }
        let read = read_marks.get(&view.conversation).copied();
        let slot = *index.entry(view.conversation.clone()).or_insert_with(|| {
            list.push(ConversationSummary {
                conversation: view.conversation.clone(),
                last: entry(held),
                unread: 0,
                read,
            });
            list.len() - 1
        });
        let after_mark = match (read, view.message_id) {
            (Some(mark), Some(id)) => id > mark,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if !view.own && after_mark {
            list[slot].unread += 1;
        }
        true
    })
    .await?;
    list.truncate(limit);
    Ok(epoch.map(|epoch| ConversationList {
        epoch,
        conversations: list,
    }))
}

impl HistoryPage {
    /// The `B105` reply:
    /// `{"epoch":E,"entries":[{"offset":o,"cmd":"B101","body":{..}},..],"more":bool}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.iter().map(|e| e.body.len() + 40).sum::<usize>());
        out.extend_from_slice(b"{\"epoch\":");
        write_str(&mut out, &self.epoch);
        out.extend_from_slice(b",\"entries\":[");
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            e.write(&mut out);
        }
        out.extend_from_slice(b"],\"more\":");
        out.extend_from_slice(if self.more { b"true" } else { b"false" });
        out.push(b'}');
        out
    }
}

impl ConversationList {
    /// The `B105` reply:
    /// `{"epoch":E,"conversations":[{"conversation":{..},"last":{..},"unread":n,"read":id|null}]}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.conversations.len() * 256);
        out.extend_from_slice(b"{\"epoch\":");
        write_str(&mut out, &self.epoch);
        out.extend_from_slice(b",\"conversations\":[");
        for (i, c) in self.conversations.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"conversation\":");
            let _ = serde_json::to_writer(&mut out, &c.conversation);
            out.extend_from_slice(b",\"last\":");
            c.last.write(&mut out);
            out.extend_from_slice(b",\"unread\":");
            out.extend_from_slice(c.unread.to_string().as_bytes());
            out.extend_from_slice(b",\"read\":");
            match c.read {
                Some(id) => write_str(&mut out, &id.to_string()),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

impl HistoryEntry {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"offset\":");
        out.extend_from_slice(self.offset.to_string().as_bytes());
        out.extend_from_slice(b",\"cmd\":\"");
        out.extend_from_slice(&self.cmd.code());
        // The stored body is the stamped JSON the server wrote: embedded as is.
        out.extend_from_slice(b"\",\"body\":");
        out.extend_from_slice(&self.body);
        out.push(b'}');
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(out, s);
}

#[cfg(test)]
mod tests {
    use jim_model::{Message, MessageIdGenerator, Text};

    use super::*;
    use crate::{LocalRouter, Outgoing, Target};

    /// A list over several pages (read two at a time, the last page
    /// short) counts every entry once: the same as one read of the whole
    /// inbox would.
    #[tokio::test]
    async fn the_list_over_many_pages_counts_every_entry_once() {
        let router = LocalRouter::new();
        let ids = MessageIdGenerator::new(0).unwrap();
        let senders = ["shop", "bank", "news"];
        for i in 0..(2 * PAGE as usize + PAGE as usize / 2 + 7) {
            let body = Message::Text(Text::new("bob", format!("n{i}"))).to_vec();
            let sender = senders[(i + i / 7) % 3];
            router
                .route(Outgoing::push(Target::User("bob".into()), &body, sender, &ids).unwrap())
                .await
                .unwrap();
        }
        let whole = router.read_inbox("bob", 0, 1_000).await.unwrap();
        let list = conversations(&router, "bob", 10, &HashMap::new())
            .await
            .unwrap()
            .unwrap();
        let mut listed: Vec<(String, u32, u32)> = list
            .conversations
            .iter()
            .map(|c| match &c.conversation {
                Conversation::User(user) => (user.clone(), c.unread, c.last.offset),
                other => panic!("{other:?}"),
            })
            .collect();
        listed.sort();
        let mut expected: Vec<(String, u32, u32)> = senders
            .iter()
            .map(|sender| {
                let theirs: Vec<u32> = whole
                    .entries
                    .iter()
                    .filter(|e| {
                        EntryView::of("bob", false, &e.body).unwrap().conversation
                            == Conversation::User((*sender).to_owned())
                    })
                    .map(|e| e.offset)
                    .collect();
                ((*sender).to_owned(), theirs.len() as u32, *theirs.last().unwrap())
            })
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(
            listed.iter().map(|(_, unread, _)| unread).sum::<u32>() as usize,
            whole.entries.len()
        );
    }
}
