//! Receipts (contract v1.2): a B101 `ack` with a `status` moves the
//! reader's mark forward only, gets no reply, and reaches the reader's
//! other devices and, one to one, the other user, live and through
//! `since`; groups' marks go to the reader's devices and the admin API.

use jim_protocol::Command;
use jim_router::{Directory, LocalRouter, ReadReceipts, ReceiptSettings, Routing};
use serde_json::{Value, json};

use jim_e2e::*;
use jim_test_util::*;

both_transports!(
    a_read_mark_reaches_the_readers_other_devices_and_the_other_user,
    marks_move_forward_only,
    group_marks_reach_only_the_readers_devices_and_the_admin_api,
    malformed_receipts_get_4000_and_outsiders_4003,
    unread_counts_start_after_the_read_mark,
);

fn receipt(to: &str, id: &str, status: &str) -> String {
    format!(r#"{{"type":"ack","data":{{"receiver_id":"{to}","message_id":"{id}","status":"{status}"}}}}"#)
}

fn group_receipt(group: &str, id: &str, status: &str) -> String {
    format!(r#"{{"type":"ack","data":{{"group_id":"{group}","message_id":"{id}","status":"{status}"}}}}"#)
}

/// The next frame is a receipt: its offset and `data`.
async fn receipt_of(raw: &mut Raw) -> (u32, Value) {
    let frame = raw.recv().await;
    assert_eq!(frame.cmd, Command::C2C, "{frame:?}");
    let body = json(&frame);
    assert_eq!(body["type"], "ack", "{body}");
    (frame.seq, body["data"].clone())
}

async fn a_read_mark_reaches_the_readers_other_devices_and_the_other_user(kind: Kind) {
    let gw = Gw::start().await;
    let mut phone = gw.user(kind, "alice").await;
    let mut laptop = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let id = bob.send_message(Command::C2C, 1, "alice", "read me").await;
    for device in [&mut phone, &mut laptop] {
        assert_eq!(deliveries(device, 1).await, vec![(1, "read me".to_owned())]);
    }
    phone
        .send_body(Command::C2C, 2, &receipt("bob", &id, "read"))
        .await;
    let expected = json!({"receiver_id": "bob", "message_id": id, "status": "read", "sender_id": "alice"});
    // Stored: the laptop gets it at offset 2 of alice's inbox, bob at 2 of his.
    assert_eq!(receipt_of(&mut laptop).await, (2, expected.clone()));
    assert_eq!(receipt_of(&mut bob).await, (2, expected.clone()));
    phone.expect_silence().await;

    // Offline devices get it through `since`.
    let mut tablet = gw.raw(kind).await;
    resume(&mut tablet, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    let replay = tablet.recv().await;
    assert_eq!(json(&replay)["data"]["content"], "read me");
    assert_eq!(receipt_of(&mut tablet).await, (2, expected));

    // History leaves receipts out; delivered marks reach bob too.
    let page = json(
        &laptop
            .request(
                Command::History,
                3,
                r#"{"op":"history","conversation":{"user":"bob"}}"#,
            )
            .await,
    );
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    gw.wait_metric("jim_receipts_total 1").await;
}

async fn marks_move_forward_only(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let first = bob.send_message(Command::C2C, 1, "alice", "one").await;
    let second = bob.send_message(Command::C2C, 2, "alice", "two").await;
    deliveries(&mut alice, 2).await;
    alice
        .send_body(Command::C2C, 3, &receipt("bob", &second, "delivered"))
        .await;
    assert_eq!(receipt_of(&mut bob).await.1["message_id"], json!(second));
    // At or below the mark: accepted, nothing moves, nothing is sent.
    alice
        .send_body(Command::C2C, 4, &receipt("bob", &first, "delivered"))
        .await;
    alice
        .send_body(Command::C2C, 5, &receipt("bob", &second, "delivered"))
        .await;
    // Read is a mark of its own.
    alice
        .send_body(Command::C2C, 6, &receipt("bob", &first, "read"))
        .await;
    let (_, read) = receipt_of(&mut bob).await;
    assert_eq!(
        (read["status"].clone(), read["message_id"].clone()),
        (json!("read"), json!(first))
    );
    bob.expect_silence().await;
    alice.expect_silence().await;
}

async fn group_marks_reach_only_the_readers_devices_and_the_admin_api(kind: Kind) {
    let gw = Gw::start().await;
    gw.router
        .add_members("team", &["alice".into(), "bob".into()])
        .await
        .unwrap();
    let mut phone = gw.user(kind, "alice").await;
    let mut laptop = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let id = bob.send_message(Command::C2G, 1, "team", "standup").await;
    deliveries(&mut phone, 1).await;
    deliveries(&mut laptop, 1).await;
    phone
        .send_body(Command::C2C, 2, &group_receipt("team", &id, "read"))
        .await;
    let (offset, data) = receipt_of(&mut laptop).await;
    assert_eq!(offset, 2);
    assert_eq!(
        data,
        json!({"group_id": "team", "message_id": id, "status": "read", "sender_id": "alice"})
    );
    bob.expect_silence().await;
    let (status, reads) = gw.admin("GET", "/v1/groups/team/reads", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        reads,
        json!({
            "alice": {"read": id, "delivered": null},
            "bob": {"read": null, "delivered": null},
        })
    );
    let (status, _) = gw.admin("GET", "/v1/groups/ghosts/reads", None).await;
    assert_eq!(status, 404);
}

async fn malformed_receipts_get_4000_and_outsiders_4003(kind: Kind) {
    let gw = Gw::start().await;
    gw.router.add_members("team", &["bob".into()]).await.unwrap();
    let mut alice = gw.user(kind, "alice").await;
    let cases = [
        (
            receipt("bob", "42", "seen"),
            r#"field `data.status` must be "read" or "delivered""#,
        ),
        (
            receipt("bob", "4x", "read"),
            "field `data.message_id` must be a message id (a string of decimal digits)",
        ),
        (
            r#"{"type":"ack","data":{"message_id":"42","status":"read"}}"#.to_owned(),
            "missing field `data.receiver_id`",
        ),
    ];
    for (seq, (body, expected)) in (1..).zip(cases) {
        let reply = alice.request(Command::C2C, seq, &body).await;
        assert_eq!(assert_error(&reply, Command::C2C, seq, 4000), expected);
    }
    let reply = alice
        .request(Command::C2C, 9, &group_receipt("team", "42", "read"))
        .await;
    assert_eq!(
        assert_error(&reply, Command::C2C, 9, 4003),
        "not a member of group \"team\""
    );
    // A v1 ack (no status) still needs its receiver.
    let reply = alice
        .request(Command::C2C, 10, r#"{"type":"ack","data":{"message_id":"42"}}"#)
        .await;
    assert_eq!(
        assert_error(&reply, Command::C2C, 10, 4000),
        "missing field `data.receiver_id`"
    );
    // The session is unaffected.
    alice.send_message(Command::C2C, 11, "bob", "still here").await;
}

async fn unread_counts_start_after_the_read_mark(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let mut ids = Vec::new();
    for (seq, text) in [(1, "one"), (2, "two"), (3, "three")] {
        ids.push(bob.send_message(Command::C2C, seq, "alice", text).await);
    }
    deliveries(&mut alice, 3).await;
    alice
        .send_body(Command::C2C, 4, &receipt("bob", &ids[1], "read"))
        .await;
    receipt_of(&mut bob).await;
    let list = json(
        &alice
            .request(Command::History, 5, r#"{"op":"conversations"}"#)
            .await,
    );
    let bob_side = &list["conversations"][0];
    assert_eq!(bob_side["conversation"], json!({"user": "bob"}));
    assert_eq!(
        (bob_side["unread"].clone(), bob_side["read"].clone()),
        (json!(1), json!(ids[1]))
    );
    // Bob's list: alice's receipt is not a message, and his own never count.
    let list = json(
        &bob.request(Command::History, 6, r#"{"op":"conversations"}"#)
            .await,
    );
    assert_eq!(list["conversations"][0]["unread"], 0);
    assert_eq!(
        list["conversations"][0]["last"]["body"]["data"]["content"],
        "three"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_read_receipts_reach_only_the_readers_devices() {
    let routing =
        Routing::new(jim_router::Inbox::memory(Default::default()), Vec::new()).receipts(ReceiptSettings {
            read: ReadReceipts::Private,
        });
    let gw = Gw::with_router(LocalRouter::with_hub(Default::default(), routing), |_| {}).await;
    let mut phone = gw.user(Kind::Tcp, "alice").await;
    let mut laptop = gw.user(Kind::Ws, "alice").await;
    let mut bob = gw.user(Kind::Tcp, "bob").await;
    let id = bob.send_message(Command::C2C, 1, "alice", "hi").await;
    deliveries(&mut phone, 1).await;
    deliveries(&mut laptop, 1).await;
    phone
        .send_body(Command::C2C, 2, &receipt("bob", &id, "read"))
        .await;
    assert_eq!(receipt_of(&mut laptop).await.1["status"], "read");
    bob.expect_silence().await;
    // Delivered marks still reach the sender.
    phone
        .send_body(Command::C2C, 3, &receipt("bob", &id, "delivered"))
        .await;
    assert_eq!(receipt_of(&mut bob).await.1["status"], "delivered");
}

/// The Rust client speaks all of section 8: receipts in and out, typing,
/// history and conversations, typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_marks_types_and_reads_history() {
    use jim_client::Incoming;
    use jim_model::{Conversation, MarkStatus, Message, Text};
    let gw = Gw::start().await;
    let mut alice = gw.client(Kind::Tcp, "alice").await;
    let mut bob = gw.client(Kind::Ws, "bob").await;
    let ack = alice
        .send(Command::C2C, &Message::Text(Text::new("bob", "hello")))
        .await
        .unwrap();
    assert_eq!(
        ack.extra.get("offset"),
        Some(&json!(1)),
        "the sender copy's offset"
    );
    let Some(Incoming::Message { seq, .. }) = bob.next().await else {
        panic!("bob gets the message")
    };
    assert_eq!(seq, 1);
    bob.mark(
        Conversation::User("alice".into()),
        MarkStatus::Read,
        ack.message_id,
    )
    .await
    .unwrap();
    let Some(Incoming::Message {
        seq,
        message: Message::Ack(receipt),
        ..
    }) = alice.next().await
    else {
        panic!("alice gets the receipt")
    };
    assert_eq!((seq, receipt.status.as_deref()), (2, Some("read")));
    assert_eq!(receipt.message_id, ack.message_id);

    bob.typing(Conversation::User("alice".into()), true)
        .await
        .unwrap();
    let Some(Incoming::Typing {
        sender_id,
        conversation,
        on,
    }) = alice.next().await
    else {
        panic!("alice sees bob typing")
    };
    assert_eq!(
        (sender_id.as_str(), conversation, on),
        ("bob", Conversation::User("bob".into()), true)
    );

    let page = alice
        .history(&Conversation::User("bob".into()), None, 10)
        .await
        .unwrap();
    assert_eq!((page.entries.len(), page.more), (1, false));
    assert!(matches!(&page.entries[0].body, Message::Text(text) if text.content == "hello"));
    let list = bob.conversations(10).await.unwrap();
    assert_eq!(
        list.conversations[0].conversation,
        Conversation::User("alice".into())
    );
    assert_eq!(list.conversations[0].read, Some(ack.message_id));
    assert_eq!(list.conversations[0].unread, 0);
}
