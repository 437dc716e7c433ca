//! C2C, C2G and S2C delivery: the seed's samples across transports,
//! stamping, unknown fields, multi-device, groups, client acks.

use std::sync::Arc;

use jim_protocol::Command;
use jim_router::{ChannelObserver, Directory, Observed};
use serde_json::{Value, json};

use jim_e2e::*;
use jim_test_util::*;

/// The seed note's samples, verbatim.
const SAMPLES: [&str; 7] = [
    r#"{"type":"text","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","content":"hello client 2"}}"#,
    r#"{"type":"location","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","cover_image":"https://www.baidu.com/img/flexible/logo/pc/result.png","lat":116.5319,"lng":40.016465,"map_link":"https://j.map.baidu.com/8f/Q44c","desc":"深圳湾公园"}}"#,
    r#"{"type":"face","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","symbol":"[:smile]"}}"#,
    r#"{"type":"sound","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","url":"https://example.com/a.mp3","size":10240,"seconds":3600}}"#,
    r#"{"type":"image","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","format":2,"size ":10240,"width ":500,"height ":700,"icon_url ":"https: //www.baidu.com/img/flexible/logo/pc/result.png","big_url ":"https: //www.baidu.com/img/flexible/logo/pc/result.png"}}"#,
    r#"{"type":"file","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","size":10240,"name":"a.docx","format":1,"thumb_url":"https://example.com/a.png","url":"https://example/a.docx"}}"#,
    r#"{"type":"video","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","size":10240,"seconds":3600,"url":"https://example/a.mp4","format":1,"thumb_url":"https://example.com/a.png","thumb_size":1024,"thumb_width":500,"thumb_height":700,"thumb_format":2}}"#,
];

/// What the receiver should see: the sample with clean keys and the stamps.
fn expected(sample: &str, sender: &str, message_id: &str, timestamp: &Value) -> Value {
    let mut v: Value = serde_json::from_str(sample).unwrap();
    let data = v["data"].as_object_mut().unwrap();
    let keys: Vec<String> = data.keys().cloned().collect();
    for key in keys {
        if key.ends_with(' ') {
            let value = data.remove(&key).unwrap();
            data.insert(key.trim_end().to_owned(), value);
        }
    }
    data.insert("sender_id".into(), json!(sender));
    data.insert("message_id".into(), json!(message_id));
    data.insert("timestamp".into(), timestamp.clone());
    v
}

async fn samples_delivered(from: Kind) {
    let gw = Gw::start().await;
    // The samples are addressed to user "2" and claim to come from "1";
    // the sender here is "mallory", who cannot pass as "1".
    let mut sender = gw.user(from, "mallory").await;
    let mut receiver = gw.user(from.other(), "2").await;
    for (seq, sample) in SAMPLES.iter().enumerate() {
        let seq = seq as u32 + 100;
        let before = jim_model::unix_ms_now();
        let ack = sender.request(Command::C2C, seq, sample).await;
        let message_id = assert_ack(&ack, Command::C2C, seq, "2");
        let delivered = receiver.recv().await;
        assert_eq!(delivered.cmd, Command::C2C);
        let body = json(&delivered);
        let timestamp = body["data"]["timestamp"].clone();
        assert!(timestamp.as_u64().unwrap() >= before);
        assert_eq!(
            body,
            expected(sample, "mallory", &message_id, &timestamp),
            "sample {seq}"
        );
    }
}

#[tokio::test]
async fn seed_samples_go_from_tcp_to_websocket() {
    samples_delivered(Kind::Tcp).await;
}

#[tokio::test]
async fn seed_samples_go_from_websocket_to_tcp() {
    samples_delivered(Kind::Ws).await;
}

both_transports!(
    unknown_fields_survive_byte_for_byte,
    every_session_of_the_receiver_and_the_senders_other_sessions_get_it,
    without_sender_copies_the_senders_other_sessions_get_nothing,
    a_message_to_an_offline_user_is_acked,
    group_messages_reach_every_member_session_but_the_sending_one,
    non_members_and_unknown_groups_are_refused,
    server_push_seq_numbers_count_up_per_session,
);

async fn unknown_fields_survive_byte_for_byte(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let body = r#"{"type":"text","trace":"t-1","data":{"receiver_id":"bob","content":"hi","quote":{"id":"m7","n":1.50},"tags":["a","b"]}}"#;
    assert_ack(
        &alice.request(Command::C2C, 1, body).await,
        Command::C2C,
        1,
        "bob",
    );
    let delivered = body_str(&bob.recv().await);
    assert!(
        delivered.contains(r#""quote":{"id":"m7","n":1.50}"#),
        "{delivered}"
    );
    assert!(delivered.contains(r#""tags":["a","b"]"#), "{delivered}");
    assert!(delivered.ends_with(r#","trace":"t-1"}"#), "{delivered}");
}

async fn every_session_of_the_receiver_and_the_senders_other_sessions_get_it(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut alice_phone = gw.user(kind.other(), "alice").await;
    let mut bob_laptop = gw.user(kind, "bob").await;
    let mut bob_phone = gw.user(kind.other(), "bob").await;
    let ack = alice.request(Command::C2C, 1, &text("bob", "both?")).await;
    assert_ack(&ack, Command::C2C, 1, "bob");
    let id = json(&ack)["data"]["message_id"].clone();
    assert_eq!(
        json(&ack)["data"]["offset"],
        1,
        "the copy's offset in alice's inbox"
    );
    for bob in [&mut bob_laptop, &mut bob_phone] {
        let body = json(&bob.recv().await);
        assert_eq!(
            (
                body["data"]["content"].clone(),
                body["data"]["message_id"].clone()
            ),
            (json!("both?"), id.clone())
        );
    }
    // The sender's other session gets its copy, with its offset: the same
    // stamped body, its own sender_id.
    let copy = alice_phone.recv().await;
    assert_eq!((copy.cmd, copy.seq), (Command::C2C, 1));
    let copy = json(&copy);
    assert_eq!(
        (
            copy["data"]["sender_id"].clone(),
            copy["data"]["receiver_id"].clone(),
            copy["data"]["message_id"].clone()
        ),
        (json!("alice"), json!("bob"), id)
    );
    alice.expect_silence().await;
    alice_phone.expect_silence().await;
}

async fn without_sender_copies_the_senders_other_sessions_get_nothing(kind: Kind) {
    let routing = jim_router::Routing::new(jim_router::Inbox::memory(Default::default()), Vec::new())
        .sender_copy(false);
    let router = jim_router::LocalRouter::with_hub(Default::default(), routing);
    let gw = Gw::with_router(router, |_| {}).await;
    let mut alice = gw.user(kind, "alice").await;
    let mut alice_phone = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let ack = alice.request(Command::C2C, 1, &text("bob", "only bob")).await;
    assert_ack(&ack, Command::C2C, 1, "bob");
    assert!(json(&ack)["data"].get("offset").is_none(), "no copy, no offset");
    assert_eq!(json(&bob.recv().await)["data"]["content"], "only bob");
    alice_phone.expect_silence().await;

    // To oneself without copies: every session, the sending one too.
    alice.send_body(Command::C2C, 2, &text("alice", "note")).await;
    let (mut acks, mut notes) = (0, 0);
    for _ in 0..2 {
        let frame = alice.recv().await;
        if is_delivery(&frame) {
            assert_eq!(json(&frame)["data"]["content"], "note");
            notes += 1;
        } else {
            assert_ack(&frame, Command::C2C, 2, "alice");
            assert!(json(&frame)["data"].get("offset").is_none());
            acks += 1;
        }
    }
    assert_eq!((acks, notes), (1, 1));
    assert_eq!(json(&alice_phone.recv().await)["data"]["content"], "note");
}

async fn a_message_to_an_offline_user_is_acked(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    alice.send_message(Command::C2C, 1, "nobody", "hello?").await;
}

async fn group_messages_reach_every_member_session_but_the_sending_one(kind: Kind) {
    let gw = Gw::start().await;
    gw.router
        .add_members("team", &["alice".into(), "bob".into(), "carol".into()])
        .await
        .unwrap();
    let mut alice = gw.user(kind, "alice").await;
    let mut alice_phone = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let mut bob_phone = gw.user(kind.other(), "bob").await;
    let mut carol = gw.user(kind.other(), "carol").await;
    let mut dave = gw.user(kind, "dave").await;

    let id = alice.send_message(Command::C2G, 3, "team", "standup").await;
    for member in [&mut alice_phone, &mut bob, &mut bob_phone, &mut carol] {
        let frame = member.recv().await;
        assert_eq!(frame.cmd, Command::C2G);
        let body = json(&frame);
        assert_eq!(body["data"]["sender_id"], "alice");
        assert_eq!(body["data"]["receiver_id"], "team");
        assert_eq!(body["data"]["message_id"], id);
    }
    alice.expect_silence().await;
    dave.expect_silence().await;
}

async fn non_members_and_unknown_groups_are_refused(kind: Kind) {
    let gw = Gw::start().await;
    gw.router.add_members("team", &["alice".into()]).await.unwrap();
    let mut alice = gw.user(kind, "alice").await;
    let mut dave = gw.user(kind, "dave").await;
    let reply = dave.request(Command::C2G, 1, &text("team", "let me in")).await;
    assert_eq!(
        assert_error(&reply, Command::C2G, 1, 4003),
        "not a member of group \"team\""
    );
    let reply = dave.request(Command::C2G, 2, &text("ghosts", "anyone?")).await;
    assert_eq!(
        assert_error(&reply, Command::C2G, 2, 4004),
        "unknown group \"ghosts\""
    );
    alice.expect_silence().await;
}

async fn server_push_seq_numbers_count_up_per_session(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    for seq in 500..505 {
        alice.send_message(Command::C2C, seq, "bob", "n").await;
    }
    for expected in 1..=5 {
        assert_eq!(bob.recv().await.seq, expected);
    }
}

#[tokio::test]
async fn token_claims_become_sender_name_and_avatar() {
    use jim_gateway::auth::{claims_for, mint};
    let gw = Gw::with(|c| {
        c.auth.dev = false;
        c.auth.jwt_secret = Some(JWT_SECRET.into());
        c.admin.key = Some(ADMIN_KEY.into());
    })
    .await;
    let token = mint(
        JWT_SECRET.as_bytes(),
        &claims_for("alice", 60, Some("Alice A."), Some("https://a/a.png")),
    )
    .unwrap();
    let mut alice = gw.raw(Kind::Tcp).await;
    alice.auth(&token).await;
    let mut bob = gw.raw(Kind::Ws).await;
    bob.auth(&mint(JWT_SECRET.as_bytes(), &claims_for("bob", 60, None, None)).unwrap())
        .await;
    let body = r#"{"type":"text","data":{"sender_name":"The Boss","sender_avatar":"x","receiver_id":"bob","content":"hi"}}"#;
    assert_ack(
        &alice.request(Command::C2C, 1, body).await,
        Command::C2C,
        1,
        "bob",
    );
    let data = json(&bob.recv().await)["data"].clone();
    assert_eq!(
        (data["sender_name"].clone(), data["sender_avatar"].clone()),
        (json!("Alice A."), json!("https://a/a.png"))
    );
}

#[tokio::test]
async fn client_acks_are_observed_not_routed_and_not_answered() {
    let (observer, mut events) = ChannelObserver::new(16);
    let gw = Gw::with_observer(Arc::new(observer)).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    let id = alice.send_message(Command::C2C, 1, "bob", "read me").await;
    let Some(Observed::Message(message)) = events.recv().await else {
        panic!("the message was observed")
    };
    assert_eq!(message.message_id.to_string(), id);
    bob.recv().await;

    let receipt = format!(r#"{{"type":"ack","data":{{"receiver_id":"alice","message_id":"{id}"}}}}"#);
    bob.send_body(Command::C2C, 9, &receipt).await;
    let Some(Observed::Ack(ack)) = tokio::time::timeout(WAIT, events.recv()).await.unwrap() else {
        panic!("the ack was observed")
    };
    assert_eq!((&*ack.user, ack.message_id.to_string()), ("bob", id.clone()));
    bob.expect_silence().await;
    alice.expect_silence().await;

    // The seed's numeric message_id is accepted too; a bad one is refused.
    bob.send_body(
        Command::C2C,
        10,
        r#"{"type":"ack","data":{"receiver_id":"alice","request_id":1233,"message_id":89797}}"#,
    )
    .await;
    let Some(Observed::Ack(ack)) = tokio::time::timeout(WAIT, events.recv()).await.unwrap() else {
        panic!()
    };
    assert_eq!(ack.message_id.0, 89797);
    let reply = bob
        .request(
            Command::C2C,
            11,
            r#"{"type":"ack","data":{"receiver_id":"alice","message_id":"x1"}}"#,
        )
        .await;
    assert_error(&reply, Command::C2C, 11, 4000);
}

#[tokio::test]
async fn an_observer_can_veto_a_message() {
    struct NoSpam;
    impl jim_router::Observer for NoSpam {
        fn on_message(&self, message: &jim_router::Outgoing) -> Result<(), String> {
            if String::from_utf8_lossy(&message.body).contains("spam") {
                return Err("refused by moderation".into());
            }
            Ok(())
        }
    }
    let gw = Gw::with_observer(Arc::new(NoSpam)).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Tcp, "bob").await;
    let reply = alice.request(Command::C2C, 1, &text("bob", "buy spam")).await;
    assert_eq!(
        assert_error(&reply, Command::C2C, 1, 4003),
        "rejected: refused by moderation"
    );
    bob.expect_silence().await;
}

#[tokio::test]
async fn the_sdk_client_sends_receives_and_closes() {
    use jim_client::Incoming;
    use jim_model::{Message, Text};
    let gw = Gw::start().await;
    let alice = gw.client(Kind::Tcp, "alice").await;
    let mut bob = gw.client(Kind::Ws, "bob").await;
    let ack = alice
        .send(Command::C2C, &Message::Text(Text::new("bob", "via the SDK")))
        .await
        .unwrap();
    let Some(Incoming::Message {
        cmd,
        message: Message::Text(text),
        ..
    }) = bob.next().await
    else {
        panic!()
    };
    assert_eq!((cmd, text.content.as_str()), (Command::C2C, "via the SDK"));
    assert_eq!(text.common.message_id, Some(ack.message_id));
    let err = alice
        .send(Command::C2G, &Message::Text(Text::new("nope", "x")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, jim_client::ClientError::Refused { code: 4004, .. }),
        "{err}"
    );
    alice.ping().await.unwrap();
    let status = bob.close().await.unwrap();
    assert_eq!((status.code, status.reason.as_str()), (1000, "client closed"));
}
