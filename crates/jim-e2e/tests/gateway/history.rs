//! History and the conversation list (`B105`, contract v1.2), from every
//! inbox store: pages newest first that cover a conversation exactly once
//! while messages arrive, own copies included and receipts left out;
//! conversations most recent first with unread counts that never count
//! one's own messages.

use jim_protocol::Command;
use jim_router::inbox::{Inbox, Retention, StoreKind};
use jim_router::{Directory, LocalRouter};
use serde_json::{Value, json};

use jim_e2e::*;
use jim_test_util::*;

both_transports!(
    history_pages_cover_a_conversation_once_newest_first,
    conversations_come_most_recent_first_never_counting_ones_own,
    malformed_history_requests_get_4000_naming_the_field,
);

/// Sends a B105 and returns its reply's body (asserting it is one).
async fn ask(raw: &mut Raw, seq: u32, body: &str) -> Value {
    let reply = raw.request(Command::History, seq, body).await;
    assert_eq!((reply.cmd, reply.seq), (Command::History, seq), "{reply:?}");
    let value = json(&reply);
    assert!(value.get("code").is_none(), "an error: {value}");
    value
}

/// The contents and offsets of a page's entries.
fn page(reply: &Value) -> Vec<(u64, String)> {
    reply["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["offset"].as_u64().unwrap(),
                e["body"]["data"]["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn history_with(user: &str, before: Option<u64>, limit: u32) -> String {
    match before {
        Some(before) => format!(
            r#"{{"op":"history","conversation":{{"user":"{user}"}},"before":{before},"limit":{limit}}}"#
        ),
        None => format!(r#"{{"op":"history","conversation":{{"user":"{user}"}},"limit":{limit}}}"#),
    }
}

async fn history_pages_cover_a_conversation_once_newest_first(kind: Kind) {
    let gw = Gw::start().await;
    history_pages(&gw, kind).await;
}

async fn history_pages(gw: &Gw, kind: Kind) {
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    alice.send_message(Command::C2C, 1, "bob", "a1").await;
    bob.send_message(Command::C2C, 2, "alice", "b1").await;
    alice.send_message(Command::C2C, 3, "carol", "to carol").await;
    alice.send_message(Command::C2C, 4, "bob", "a2").await;
    bob.send_message(Command::C2C, 5, "alice", "b2").await;

    // Alice's inbox: a1 (1, her copy), b1 (2), to carol (3), a2 (4), b2 (5).
    let first = ask(&mut alice, 10, &history_with("bob", None, 2)).await;
    assert_eq!(page(&first), [(5, "b2".to_owned()), (4, "a2".to_owned())]);
    assert_eq!(first["more"], true);
    let epoch = first["epoch"].clone();
    assert!(epoch.as_str().is_some_and(|e| !e.is_empty()));
    // An entry is the stamped body as delivered.
    assert_eq!(first["entries"][0]["cmd"], "B101");
    assert_eq!(first["entries"][0]["body"]["data"]["sender_id"], "bob");

    // New messages arrive while alice pages back: the pages below do not
    // move, and cover every older entry once.
    bob.send_message(Command::C2C, 6, "alice", "b3").await;
    let second = ask(&mut alice, 11, &history_with("bob", Some(4), 2)).await;
    assert_eq!(page(&second), [(2, "b1".to_owned()), (1, "a1".to_owned())]);
    assert_eq!(second["more"], false);
    let last = ask(&mut alice, 12, &history_with("bob", Some(1), 2)).await;
    assert_eq!((page(&last).len(), last["more"].clone()), (0, json!(false)));
    // The newest page now starts with b3.
    let newest = ask(&mut alice, 13, &history_with("bob", None, 50)).await;
    let contents: Vec<_> = page(&newest).into_iter().map(|(_, c)| c).collect();
    assert_eq!(contents, ["b3", "b2", "a2", "b1", "a1"]);

    // Bob's side of the same conversation: his own offsets.
    let bobs = ask(&mut bob, 14, &history_with("alice", None, 50)).await;
    let contents: Vec<_> = page(&bobs).into_iter().map(|(_, c)| c).collect();
    assert_eq!(contents, ["b3", "b2", "a2", "b1", "a1"]);
    // Default limit and a conversation with nobody: empty.
    let nobody = ask(
        &mut alice,
        15,
        r#"{"op":"history","conversation":{"user":"nobody"}}"#,
    )
    .await;
    assert_eq!(nobody["entries"], json!([]));
}

async fn conversations_come_most_recent_first_never_counting_ones_own(kind: Kind) {
    let gw = Gw::start().await;
    gw.router
        .add_members("team", &["alice".into(), "bob".into()])
        .await
        .unwrap();
    let mut alice = gw.user(kind, "alice").await;
    let mut alice_phone = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    alice.send_message(Command::C2C, 1, "carol", "hi carol").await;
    bob.send_message(Command::C2G, 2, "team", "standup?").await;
    bob.send_message(Command::C2C, 3, "alice", "psst").await;
    bob.send_message(Command::C2C, 4, "alice", "psst again").await;
    // From her other device: her own, never unread.
    alice_phone
        .send_message(Command::C2C, 5, "bob", "on my way")
        .await;
    let list = ask(&mut alice, 9, r#"{"op":"conversations"}"#).await;
    let summary: Vec<_> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["conversation"].clone(),
                c["last"]["body"]["data"]["content"].clone(),
                c["unread"].clone(),
                c["read"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!({"user": "bob"}), json!("on my way"), json!(2), Value::Null),
            (json!({"group": "team"}), json!("standup?"), json!(1), Value::Null),
            (json!({"user": "carol"}), json!("hi carol"), json!(0), Value::Null),
        ]
    );
    assert_eq!(list["conversations"][0]["last"]["offset"], 5);
    let one = ask(&mut alice, 10, r#"{"op":"conversations","limit":1}"#).await;
    assert_eq!(one["conversations"].as_array().unwrap().len(), 1);
}

async fn malformed_history_requests_get_4000_naming_the_field(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let cases = [
        (
            r#"{"op":"search"}"#,
            r#"field `op` must be "history" or "conversations""#,
        ),
        (r#"{"op":"history"}"#, "missing field `conversation`"),
        (
            r#"{"op":"history","conversation":{"channel":"x"}}"#,
            r#"field `conversation` must be {"user":"<id>"} or {"group":"<id>"}"#,
        ),
        (
            r#"{"op":"history","conversation":{"user":"bob"},"limit":0}"#,
            "field `limit` must be a positive integer",
        ),
        (
            r#"{"op":"history","conversation":{"user":"bob"},"before":"x"}"#,
            "field `before` must be a positive integer",
        ),
    ];
    for (seq, (body, expected)) in (1..).zip(cases) {
        let reply = alice.request(Command::History, seq, body).await;
        assert_eq!(assert_error(&reply, Command::History, seq, 4000), expected);
    }
    let reply = alice.request(Command::History, 9, "not json").await;
    assert_error(&reply, Command::History, 9, 4000);
    // The session is unaffected; a limit above 100 is served as 100.
    let ok = ask(
        &mut alice,
        10,
        r#"{"op":"history","conversation":{"user":"bob"},"limit":1000}"#,
    )
    .await;
    assert_eq!(ok["more"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_inbox_history_is_404() {
    let gw = Gw::with_router(LocalRouter::open(Inbox::off(), Vec::new()).await.unwrap(), |_| {}).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let reply = alice
        .request(Command::History, 1, r#"{"op":"conversations"}"#)
        .await;
    let reason = assert_error(&reply, Command::History, 1, 4004);
    assert!(reason.contains("keeps no inbox"), "{reason}");
}

async fn with_store(kind: StoreKind) -> Gw {
    let inbox = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    Gw::with_router(LocalRouter::open(inbox, Vec::new()).await.unwrap(), |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_the_disk_store_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gw = with_store(StoreKind::Disk {
        dir: dir.path().to_path_buf(),
    })
    .await;
    history_pages(&gw, Kind::Tcp).await;
    gw.shutdown().await;
    let gw = crate::inbox::on_disk(dir.path()).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let list = ask(&mut alice, 1, r#"{"op":"conversations"}"#).await;
    let unread: Vec<_> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["conversation"].clone(), c["unread"].clone()))
        .collect();
    assert_eq!(
        unread,
        [
            (json!({"user": "bob"}), json!(3)),
            (json!({"user": "carol"}), json!(0))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_the_redis_store() {
    let redis = jim_test_util::redis::RedisServer::start().await;
    let gw = with_store(StoreKind::Redis { url: redis.url() }).await;
    history_pages(&gw, Kind::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_and_read_marks_survive_a_restart_with_redis() {
    let redis = jim_test_util::redis::RedisServer::start().await;
    let gw = with_store(StoreKind::Redis { url: redis.url() }).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    let mut ids = Vec::new();
    for (seq, text) in [(1, "one"), (2, "two"), (3, "three")] {
        ids.push(bob.send_message(Command::C2C, seq, "alice", text).await);
    }
    alice.send_message(Command::C2C, 4, "bob", "mine").await;
    let mark = format!(
        r#"{{"type":"ack","data":{{"receiver_id":"bob","message_id":"{}","status":"read"}}}}"#,
        ids[0]
    );
    alice.send_body(Command::C2C, 5, &mark).await;
    // The receipt reaches bob once the mark is kept.
    loop {
        let frame = bob.recv().await;
        if json(&frame)["type"] == "ack" {
            break;
        }
    }
    gw.shutdown().await;
    let gw = with_store(StoreKind::Redis { url: redis.url() }).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let list = ask(&mut alice, 1, r#"{"op":"conversations"}"#).await;
    let bob_side = &list["conversations"][0];
    assert_eq!(bob_side["conversation"], json!({"user": "bob"}));
    assert_eq!(
        (bob_side["unread"].clone(), bob_side["read"].clone()),
        (json!(2), json!(ids[0])),
        "two of bob's after the mark; her own never counts"
    );
}
