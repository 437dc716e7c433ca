//! Typing (`B104`, contract v1.2): relayed to the conversation's other
//! side, never to the typist's sessions, at most once per conversation
//! every 2 s, never stored, and refused with the contract's codes.

use jim_protocol::Command;
use jim_router::{Directory, LocalRouter, Routing, TypingSettings};
use serde_json::json;

use jim_e2e::*;
use jim_test_util::*;

both_transports!(
    typing_reaches_the_other_side_and_never_the_typists_sessions,
    typing_is_relayed_once_per_conversation_every_two_seconds,
    typing_in_a_group_reaches_the_other_members_and_is_refused_to_outsiders,
    malformed_typing_gets_4000_naming_the_field,
);

fn typing(to: &str, state: &str) -> String {
    format!(r#"{{"type":"typing","data":{{"receiver_id":"{to}","state":"{state}"}}}}"#)
}

fn group_typing(group: &str, state: &str) -> String {
    format!(r#"{{"type":"typing","data":{{"group_id":"{group}","state":"{state}"}}}}"#)
}

/// The next frame is a relayed typing: its `data`.
async fn relayed(raw: &mut Raw) -> serde_json::Value {
    let frame = raw.recv().await;
    assert_eq!((frame.cmd, frame.seq), (Command::Typing, 0), "{frame:?}");
    let body = json(&frame);
    assert_eq!(body["type"], "typing");
    body["data"].clone()
}

async fn typing_reaches_the_other_side_and_never_the_typists_sessions(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut alice_phone = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let mut bob_phone = gw.user(kind.other(), "bob").await;
    alice.send_body(Command::Typing, 7, &typing("bob", "on")).await;
    for bob in [&mut bob, &mut bob_phone] {
        assert_eq!(
            relayed(bob).await,
            json!({"receiver_id": "bob", "state": "on", "sender_id": "alice"})
        );
    }
    // No reply, no echo, nothing stored.
    alice.expect_silence().await;
    alice_phone.expect_silence().await;
    let (_, inbox) = gw.admin("GET", "/v1/users/bob/inbox", None).await;
    assert_eq!(inbox["head"], 0, "typing is not stored");
    let mut later = gw.raw(kind).await;
    resume(&mut later, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    later.expect_silence().await;
    gw.wait_metric("jim_typing_total{outcome=\"relayed\"} 1").await;
}

async fn typing_is_relayed_once_per_conversation_every_two_seconds(kind: Kind) {
    let gw = Gw::start().await;
    gw.router
        .add_members("team", &["alice".into(), "bob".into()])
        .await
        .unwrap();
    let mut alice = gw.user(kind, "alice").await;
    let mut alice_laptop = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    alice.send_body(Command::Typing, 1, &typing("bob", "on")).await;
    alice.send_body(Command::Typing, 2, &typing("bob", "off")).await;
    // Another device of the same user, the same conversation: still one.
    alice_laptop
        .send_body(Command::Typing, 3, &typing("bob", "on"))
        .await;
    // Another conversation is another allowance.
    alice
        .send_body(Command::Typing, 4, &group_typing("team", "on"))
        .await;
    // One of the three in bob's conversation (whichever came first: the
    // laptop's is another connection), and the group's.
    let mut seen = [relayed(&mut bob).await, relayed(&mut bob).await];
    seen.sort_by_key(|data| data.get("group_id").is_some());
    assert_eq!(seen[0]["receiver_id"], "bob");
    assert_eq!(seen[1]["group_id"], "team");
    bob.expect_silence().await;
    alice.expect_silence().await;
    gw.wait_metric("jim_typing_total{outcome=\"dropped\"} 2").await;
    // Extras do not count against the message rate: messages still go.
    alice.send_message(Command::C2C, 5, "bob", "hi").await;
}

async fn typing_in_a_group_reaches_the_other_members_and_is_refused_to_outsiders(kind: Kind) {
    let gw = Gw::start().await;
    gw.router
        .add_members("team", &["alice".into(), "bob".into(), "carol".into()])
        .await
        .unwrap();
    let mut alice = gw.user(kind, "alice").await;
    let mut alice_phone = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let mut carol = gw.user(kind.other(), "carol").await;
    let mut eve = gw.user(kind, "eve").await;
    alice
        .send_body(Command::Typing, 1, &group_typing("team", "on"))
        .await;
    for member in [&mut bob, &mut carol] {
        assert_eq!(
            relayed(member).await,
            json!({"group_id": "team", "state": "on", "sender_id": "alice"})
        );
    }
    alice_phone.expect_silence().await;

    let refused = eve.request(Command::Typing, 9, &group_typing("team", "on")).await;
    let reason = assert_error(&refused, Command::Typing, 9, 4003);
    assert_eq!(reason, "not a member of group \"team\"");
    let unknown = eve
        .request(Command::Typing, 10, &group_typing("ghosts", "on"))
        .await;
    assert_error(&unknown, Command::Typing, 10, 4004);
    bob.expect_silence().await;
}

async fn malformed_typing_gets_4000_naming_the_field(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let cases = [
        (
            r#"{"type":"typing","data":{"receiver_id":"bob","state":"maybe"}}"#,
            r#"field `data.state` must be "on" or "off""#,
        ),
        (
            r#"{"type":"typing","data":{"state":"on"}}"#,
            "missing field `data.receiver_id`",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"bob","state":"on"}}"#,
            r#"field `type` must be "typing" in B104"#,
        ),
        (
            r#"{"type":"typing","data":{"receiver_id":"bob","group_id":"g","state":"on"}}"#,
            "field `data.group_id` must be absent when `data.receiver_id` is given",
        ),
    ];
    for (seq, (body, expected)) in (1..).zip(cases) {
        let reply = alice.request(Command::Typing, seq, body).await;
        assert_eq!(assert_error(&reply, Command::Typing, seq, 4000), expected);
    }
    bob.expect_silence().await;
    // And a B101 of type typing is an unknown type, not a typing.
    let reply = alice.request(Command::C2C, 9, &typing("bob", "on")).await;
    assert_error(&reply, Command::C2C, 9, 4000);
    // The session is unaffected.
    alice.send_body(Command::Typing, 10, &typing("bob", "on")).await;
    assert_eq!(relayed(&mut bob).await["sender_id"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_larger_than_max_group_members_relays_no_typing() {
    let routing = Routing::new(jim_router::Inbox::memory(Default::default()), Vec::new())
        .typing(TypingSettings { max_group_members: 2 });
    let router = LocalRouter::with_hub(Default::default(), routing);
    router
        .add_members("pair", &["alice".into(), "bob".into()])
        .await
        .unwrap();
    router
        .add_members("crowd", &["alice".into(), "bob".into(), "carol".into()])
        .await
        .unwrap();
    let gw = Gw::with_router(router, |_| {}).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Tcp, "bob").await;
    alice
        .send_body(Command::Typing, 1, &group_typing("crowd", "on"))
        .await;
    alice
        .send_body(Command::Typing, 2, &group_typing("pair", "on"))
        .await;
    assert_eq!(
        relayed(&mut bob).await["group_id"],
        "pair",
        "the crowd relays none"
    );
    bob.expect_silence().await;
    alice.expect_silence().await;
}
