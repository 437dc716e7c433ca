//! What one user, and one gateway, may make the stores carry: recipients
//! per second. One member flooding a large group is refused at its budget;
//! everyone else goes on.

use jim_protocol::{Command, Frame};
use serde_json::json;

use jim_e2e::*;
use jim_test_util::*;

both_transports!(
    a_member_flooding_a_large_group_is_refused_at_its_budget_and_others_go_on,
    past_the_gateways_budget_group_messages_wait_and_one_to_one_ones_pass,
);

/// A group of `size` members, `alice` among them.
async fn large_group(gw: &Gw, name: &str, size: usize) {
    let mut users: Vec<String> = (0..size - 1).map(|i| format!("m{i}")).collect();
    users.push("alice".into());
    let (status, _) = gw
        .admin(
            "POST",
            &format!("/v1/groups/{name}/members"),
            Some(&json!({ "users": users }).to_string()),
        )
        .await;
    assert_eq!(status, 200);
}

/// Sends `n` group messages back to back, pipelined; the replies by seq.
async fn flood(raw: &mut Raw, group: &str, n: u32) -> Vec<Frame> {
    let frames: Vec<Frame> = (1..=n)
        .map(|seq| Frame::new(Command::C2G, seq + 10, text(group, "flood")))
        .collect();
    raw.send_all(&frames).await;
    let mut replies = Vec::new();
    while replies.len() < n as usize {
        let reply = raw.recv().await;
        if reply.cmd == Command::C2G && reply.seq > 10 {
            replies.push(reply);
        }
    }
    replies
}

async fn a_member_flooding_a_large_group_is_refused_at_its_budget_and_others_go_on(kind: Kind) {
    let gw = Gw::with(|c| {
        c.limits.fanout_per_sec = 1_000;
        c.limits.fanout_burst = 2_000;
        c.limits.gateway_fanout_per_sec = 0;
        c.limits.messages_per_sec = 1_000;
        c.limits.message_burst = 1_000;
    })
    .await;
    large_group(&gw, "big", 500).await;
    let mut alice = gw.user(kind, "alice").await;
    let replies = flood(&mut alice, "big", 20).await;
    let acked = replies.iter().filter(|r| json(r)["type"] == "ack").count();
    // 2,000 recipients in a burst: four messages of 500 (a fifth may slip
    // in on what refilled meanwhile); the rest refused, each once.
    assert!((4..=5).contains(&acked), "{acked} acked");
    for refused in replies.iter().filter(|r| json(r)["type"] == "error") {
        let reason = assert_error(refused, Command::C2G, refused.seq, 4029);
        assert!(
            reason.starts_with("fan-out limit: your messages may reach at most 1000 recipients a second"),
            "{reason}"
        );
    }
    gw.wait_metric(&format!(
        "jim_fanout_refused_total{{scope=\"user\"}} {}",
        20 - acked
    ))
    .await;
    // Its one-to-one messages wait too: the budget is the user's.
    let reply = alice.request(Command::C2C, 99, &text("m1", "me too")).await;
    assert_error(&reply, Command::C2C, 99, 4029);
    // Everyone else goes on, in the group too.
    let mut bob = gw.user(kind.other(), "bob").await;
    let mut carol = gw.user(kind, "carol").await;
    text_goes_through(&mut bob, &mut carol, "carol", "unaffected").await;
    large_group(&gw, "big2", 300).await;
    let (status, _) = gw
        .admin("POST", "/v1/groups/big2/members", Some(r#"{"users":["bob"]}"#))
        .await;
    assert_eq!(status, 200);
    let reply = bob.request(Command::C2G, 3, &text("big2", "hello all")).await;
    assert_ack(&reply, Command::C2G, 3, "big2");
}

async fn past_the_gateways_budget_group_messages_wait_and_one_to_one_ones_pass(kind: Kind) {
    let gw = Gw::with(|c| {
        c.limits.fanout_per_sec = 0;
        c.limits.gateway_fanout_per_sec = 1_000;
    })
    .await;
    large_group(&gw, "big", 600).await;
    let mut alice = gw.user(kind, "alice").await;
    let replies = flood(&mut alice, "big", 5).await;
    let refused: Vec<&Frame> = replies.iter().filter(|r| json(r)["type"] == "error").collect();
    assert!(!refused.is_empty(), "the gateway's budget is 1,000 a second");
    for refused in refused {
        let reason = assert_error(refused, Command::C2G, refused.seq, 4029);
        assert!(
            reason.starts_with("fan-out limit: this gateway's messages"),
            "{reason}"
        );
    }
    // One recipient at a time still passes, for everyone.
    let mut bob = gw.user(kind.other(), "bob").await;
    text_goes_through(&mut alice, &mut bob, "bob", "one to one").await;
    text_goes_through(&mut bob, &mut alice, "alice", "and back").await;
}
