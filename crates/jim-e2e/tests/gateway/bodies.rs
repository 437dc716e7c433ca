//! Bad bodies: exact error replies, and the connection stays.

use jim_protocol::Command;

use jim_e2e::*;
use jim_test_util::*;

both_transports!(
    malformed_json_gets_4000_and_the_connection_stays,
    unknown_type_gets_4000,
    missing_receiver_id_gets_4000,
    ill_typed_fields_get_4000_naming_the_field,
    error_bodies_and_acks_in_b102_are_refused,
    a_message_too_large_once_stamped_gets_4000,
    rate_limit_gets_4029_and_nothing_is_delivered,
);

async fn malformed_json_gets_4000_and_the_connection_stays(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    for (seq, body) in [r#"{"type":"text","data":"#, "", "[1,2]", "\u{feff}{}"]
        .into_iter()
        .enumerate()
    {
        let reply = alice.request(Command::C2C, seq as u32, body).await;
        let reason = assert_error(&reply, Command::C2C, seq as u32, 4000);
        assert!(reason.starts_with("malformed JSON: "), "{reason}");
    }
    alice.send_message(Command::C2C, 9, "bob", "ok now").await;
    assert_eq!(
        json(&bob.recv().await)["data"]["content"],
        "ok now",
        "bob got only the valid message"
    );
}

async fn unknown_type_gets_4000(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let reply = alice
        .request(Command::C2C, 4, r#"{"type":"gif","data":{"receiver_id":"bob"}}"#)
        .await;
    assert_eq!(
        assert_error(&reply, Command::C2C, 4, 4000),
        r#"unknown type "gif""#
    );
}

async fn missing_receiver_id_gets_4000(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let reply = alice
        .request(Command::C2G, 5, r#"{"type":"text","data":{"content":"hi"}}"#)
        .await;
    assert_eq!(
        assert_error(&reply, Command::C2G, 5, 4000),
        "missing field `data.receiver_id`"
    );
}

async fn ill_typed_fields_get_4000_naming_the_field(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let cases = [
        (
            r#"{"type":"text","data":{"receiver_id":"bob"}}"#,
            "missing field `data.content`",
        ),
        (r#"{"type":"text"}"#, "missing field `data`"),
        (r#"{"data":{}}"#, "missing field `type`"),
        (
            r#"{"type":"sound","data":{"receiver_id":"bob","url":"u","size":"big"}}"#,
            "field `data.size` must be a non-negative integer",
        ),
        (
            r#"{"type":"image","data":{"receiver_id":"bob","big_url":"u","format":7}}"#,
            "field `data.format` must be one of the image format codes 0 1 2 3 (Jpg Gif Png Bmp )",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":7,"content":"x"}}"#,
            "field `data.receiver_id` must be a string",
        ),
    ];
    for (seq, (body, expected)) in cases.into_iter().enumerate() {
        let reply = alice.request(Command::C2C, seq as u32, body).await;
        assert_eq!(assert_error(&reply, Command::C2C, seq as u32, 4000), expected);
    }
}

async fn error_bodies_and_acks_in_b102_are_refused(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    let reply = alice
        .request(
            Command::C2C,
            1,
            r#"{"type":"error","data":{"code":4000,"reason":"x"}}"#,
        )
        .await;
    assert_eq!(
        assert_error(&reply, Command::C2C, 1, 4000),
        "type \"error\" is sent by the server only"
    );
    let ack = r#"{"type":"ack","data":{"receiver_id":"bob","message_id":"12"}}"#;
    let reply = alice.request(Command::C2G, 2, ack).await;
    assert_eq!(
        assert_error(&reply, Command::C2G, 2, 4000),
        "acks are sent in B101"
    );
}

async fn a_message_too_large_once_stamped_gets_4000(kind: Kind) {
    let gw = Gw::with(|c| c.limits.max_body = 200).await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let body = text("bob", &"x".repeat(130));
    assert!(body.len() <= 200);
    let reply = alice.request(Command::C2C, 1, &body).await;
    let reason = assert_error(&reply, Command::C2C, 1, 4000);
    assert!(reason.starts_with("message too large once stamped"), "{reason}");
    bob.expect_silence().await;
}

async fn rate_limit_gets_4029_and_nothing_is_delivered(kind: Kind) {
    let gw = Gw::with(|c| {
        c.limits.messages_per_sec = 1;
        c.limits.message_burst = 3;
    })
    .await;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;
    for seq in 0..3 {
        alice.send_message(Command::C2C, seq, "bob", "burst").await;
    }
    let reply = alice.request(Command::C2C, 3, &text("bob", "one too many")).await;
    assert_eq!(
        assert_error(&reply, Command::C2C, 3, 4029),
        "rate limited: at most 1 messages per second"
    );
    for _ in 0..3 {
        assert_eq!(json(&bob.recv().await)["data"]["content"], "burst");
    }
    bob.expect_silence().await;
    // Pings are not rate limited.
    assert_eq!(alice.request(Command::Ping, 4, "").await.cmd, Command::Pong);
}
