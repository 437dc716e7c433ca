//! Hooks and events (contract v1.2, section 9) in local mode, against a
//! real HTTP server of the test's own (`jim_e2e::receiver`): each verdict
//! of the before-send hook, a hook that times out, fails, answers garbage
//! or hangs up, its breaker; events batched, signed, per user, retried
//! while the receiver is down and dropped (counted) past the window.

use std::collections::HashSet;
use std::time::Duration;

use jim_gateway::{Config, RunningGateway};
use jim_hooks::OnError;
use jim_protocol::Command;
use serde_json::{Value, json};

use jim_e2e::metric;
use jim_e2e::receiver::{HookAnswer, Receiver, hanging_up, presence_of as of_user};
use jim_test_util::*;

both_transports!(
    each_verdict_reaches_the_sender_as_the_contract_says,
    a_slow_hook_holds_up_only_its_senders_messages_which_stay_in_order,
);

pub const SECRET: &str = "the application's shared secret";

/// A gateway of the composition root (local mode, memory inbox) calling
/// `receiver` as `adjust` says.
pub struct Hooked {
    pub running: RunningGateway,
    pub receiver: Receiver,
}

impl Hooked {
    pub async fn start(adjust: impl FnOnce(&mut Config, &Receiver)) -> Hooked {
        let receiver = Receiver::start().await;
        receiver.check_signatures(SECRET);
        let mut config = Config::ephemeral_dev();
        config.hooks.secret = Some(SECRET.into());
        adjust(&mut config, &receiver);
        let running = jim_gateway::start(config).await.unwrap();
        Hooked { running, receiver }
    }

    pub async fn user(&self, kind: Kind, user: &str) -> Raw {
        let mut raw = match kind {
            Kind::Tcp => Raw::tcp(self.running.tcp_addr().unwrap()).await,
            Kind::Ws => Raw::ws(&format!("ws://{}/ws", self.running.ws_addr().unwrap())).await,
        };
        raw.auth(user).await;
        raw
    }

    /// Makes `users` the members of group `team` (through the admin API).
    pub async fn add_to_team(&self, users: &[&str]) {
        let body = serde_json::json!({ "users": users }).to_string();
        let admin = self.running.admin_addr().unwrap();
        let (status, _) = admin_request(admin, "POST", "/v1/groups/team/members", Some(&body), None).await;
        assert_eq!(status, 200);
    }

    pub async fn metrics(&self) -> String {
        http(self.running.admin_addr().unwrap(), "GET", "/metrics", None, None)
            .await
            .1
    }

    /// Waits until the metric `name` (with its labels) reaches `at_least`.
    pub async fn wait_metric_at_least(&self, name: &str, at_least: f64) -> f64 {
        jim_e2e::wait_metric_at_least(self.running.admin_addr().unwrap(), name, at_least).await
    }
}

fn before_send(hooked: &Receiver, config: &mut Config) {
    config.hooks.before_send_url = Some(hooked.url("/hook"));
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A request the receiver took is signed with the shared secret, now.
pub fn assert_signed(received: &jim_e2e::receiver::Received) {
    let header = received.signature.as_deref().expect("a Jim-Signature header");
    jim_hooks::verify(header, &received.body, SECRET, now_secs(), 60)
        .unwrap_or_else(|e| panic!("{e}: {header}"));
}

async fn each_verdict_reaches_the_sender_as_the_contract_says(kind: Kind) {
    let gw = Hooked::start(|config, r| before_send(r, config)).await;
    let hook = &gw.receiver;
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind.other(), "bob").await;

    // Allow: the hook is shown the message as sent, signed.
    let ack = alice.request(Command::C2C, 2, &text("bob", "hello")).await;
    assert_ack(&ack, Command::C2C, 2, "bob");
    assert_eq!(json(&bob.recv().await)["data"]["content"], "hello");
    let call = hook.next_hook().await;
    assert_signed(&call);
    assert_eq!(
        call.json(),
        json!({
            "event": "message.before_send",
            "sender": "alice",
            "device": "raw",
            "cmd": "B101",
            "conversation": {"user": "bob"},
            "message": {"type": "text", "data": {"receiver_id": "bob", "content": "hello"}},
        })
    );

    // Deny with the application's code and reason: nothing stored or sent.
    hook.answer(HookAnswer::Json(
        r#"{"verdict":"deny","code":4403,"reason":"no spam here"}"#.into(),
    ));
    let reply = alice.request(Command::C2C, 3, &text("bob", "buy now")).await;
    assert_eq!(assert_error(&reply, Command::C2C, 3, 4403), "no spam here");
    // Deny without a code: 4003 and a reason saying who refused.
    hook.answer(HookAnswer::Json(r#"{"verdict":"deny"}"#.into()));
    let reply = alice.request(Command::C2C, 4, &text("bob", "buy now")).await;
    assert_eq!(
        assert_error(&reply, Command::C2C, 4, 4003),
        "message refused by the application"
    );
    bob.expect_silence().await;

    // Replace: fields of `data`, never the sender or the ids.
    hook.answer(HookAnswer::Json(
        r#"{"verdict":"replace","data":{"content":"see [link]","sender_id":"mallory","message_id":"1"}}"#
            .into(),
    ));
    let ack = alice
        .request(Command::C2C, 5, &text("bob", "see http://evil.example"))
        .await;
    let id = assert_ack(&ack, Command::C2C, 5, "bob");
    let delivered = json(&bob.recv().await);
    assert_eq!(delivered["data"]["content"], "see [link]");
    assert_eq!(delivered["data"]["sender_id"], "alice");
    assert_eq!(delivered["data"]["message_id"], id);

    // Group messages are shown too, with their conversation.
    hook.answer(HookAnswer::Json(r#"{"verdict":"allow"}"#.into()));
    gw.add_to_team(&["alice", "bob"]).await;
    let ack = alice.request(Command::C2G, 6, &text("team", "hi team")).await;
    assert_ack(&ack, Command::C2G, 6, "team");
    assert_eq!(json(&bob.recv().await)["data"]["content"], "hi team");
    let call = loop {
        let call = hook.next_hook().await;
        if call.json()["cmd"] == "B102" {
            break call;
        }
    };
    assert_eq!(call.json()["conversation"], json!({"group": "team"}));
    // Acks, receipts and typing are never shown to the hook.
    let calls = hook.hook_calls();
    let receipt =
        format!(r#"{{"type":"ack","data":{{"receiver_id":"bob","message_id":"{id}","status":"read"}}}}"#);
    alice.send_body(Command::C2C, 7, &receipt).await;
    alice
        .send_body(
            Command::Typing,
            8,
            r#"{"type":"typing","data":{"receiver_id":"bob","state":"on"}}"#,
        )
        .await;
    // Bob is told both (the read receipt, then the typing).
    let told = [bob.recv().await.cmd, bob.recv().await.cmd];
    assert_eq!(told, [Command::C2C, Command::Typing]);
    assert_eq!(hook.hook_calls(), calls);
}

async fn a_slow_hook_holds_up_only_its_senders_messages_which_stay_in_order(kind: Kind) {
    let gw = Hooked::start(|config, r| {
        before_send(r, config);
        config.hooks.before_send_timeout_ms = 10_000;
    })
    .await;
    gw.receiver
        .answer(HookAnswer::SlowFor(Duration::from_millis(1_500)));
    let mut alice = gw.user(kind, "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let mut carol = gw.user(kind.other(), "carol").await;
    alice.send_body(Command::C2C, 2, &text("carol", "slow")).await;
    alice.send_body(Command::C2C, 3, &text("carol", "fast")).await;
    // Alice's session still answers while her message waits for the hook,
    // and other users' messages go through.
    let pong = alice.request(Command::Ping, 9, "").await;
    assert_eq!(pong.cmd, Command::Pong);
    text_goes_through(&mut bob, &mut carol, "carol", "meanwhile").await;
    // Then hers, in the order she sent them, acked in that order.
    assert_ack(&alice.reply().await, Command::C2C, 2, "carol");
    assert_ack(&alice.reply().await, Command::C2C, 3, "carol");
    assert_eq!(json(&carol.recv().await)["data"]["content"], "slow");
    assert_eq!(json(&carol.recv().await)["data"]["content"], "fast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_cannot_answer_is_decided_by_on_error() {
    let hung_up = hanging_up().await;
    for (answer, on_error, outcome) in [
        (
            HookAnswer::Slow(Duration::from_millis(800), r#"{"verdict":"deny"}"#.into()),
            OnError::Allow,
            None,
        ),
        (
            HookAnswer::Slow(Duration::from_millis(800), r#"{"verdict":"allow"}"#.into()),
            OnError::Deny,
            Some("it timed out"),
        ),
        (HookAnswer::Status(500), OnError::Deny, Some("it failed")),
        (HookAnswer::Status(500), OnError::Allow, None),
        (
            HookAnswer::Json("not json".into()),
            OnError::Deny,
            Some("its answer was not understood"),
        ),
        (
            HookAnswer::Json(r#"{"verdict":"maybe"}"#.into()),
            OnError::Deny,
            Some("its answer was not understood"),
        ),
        (
            HookAnswer::Json(r#"{"verdict":"deny","code":200}"#.into()),
            OnError::Deny,
            Some("its answer was not understood"),
        ),
        (
            HookAnswer::Json(r#"{"verdict":"replace","data":{"content":7}}"#.into()),
            OnError::Deny,
            Some("its replacement is not a valid message"),
        ),
        (
            HookAnswer::Json(r#"{"verdict":"replace","data":{"content":7}}"#.into()),
            OnError::Allow,
            None,
        ),
        (HookAnswer::Status(0), OnError::Deny, Some("it failed")), // hangs up
    ] {
        let hangs_up = matches!(answer, HookAnswer::Status(0));
        let gw = Hooked::start(|config, r| {
            config.hooks.before_send_url = Some(if hangs_up {
                format!("http://{hung_up}/hook")
            } else {
                r.url("/hook")
            });
            config.hooks.before_send_timeout_ms = 300;
            config.hooks.before_send_on_error = on_error;
        })
        .await;
        if !hangs_up {
            gw.receiver.answer(answer.clone());
        }
        let mut alice = gw.user(Kind::Tcp, "alice").await;
        let mut bob = gw.user(Kind::Tcp, "bob").await;
        let reply = alice.request(Command::C2C, 2, &text("bob", "hello")).await;
        match outcome {
            None => {
                assert_ack(&reply, Command::C2C, 2, "bob");
                assert_eq!(json(&bob.recv().await)["data"]["content"], "hello", "{answer:?}");
            }
            Some(why) => {
                assert_eq!(
                    assert_error(&reply, Command::C2C, 2, 5000),
                    format!("message not sent: the application's check is unavailable ({why}); retry later"),
                    "{answer:?}"
                );
                bob.expect_silence().await;
            }
        }
        // The session and the others go on.
        let mut carol = gw.user(Kind::Ws, "carol").await;
        let pong = carol.request(Command::Ping, 5, "").await;
        assert_eq!(pong.cmd, Command::Pong);
        gw.running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_after_failures_in_a_row_and_closes_once_the_hook_answers() {
    let gw = Hooked::start(|config, r| {
        before_send(r, config);
        config.hooks.before_send_timeout_ms = 2_000;
        config.hooks.breaker_failures = 3;
        config.hooks.breaker_open_ms = 300;
    })
    .await;
    let hook = &gw.receiver;
    hook.answer(HookAnswer::Status(503));
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    for seq in 2..5 {
        let reply = alice.request(Command::C2C, seq, &text("bob", "hi")).await;
        assert_error(&reply, Command::C2C, seq, 5000);
    }
    assert_eq!(hook.hook_calls(), 3);
    // Opened before the third reply was written.
    assert_eq!(metric(&gw.metrics().await, "jim_hook_breaker_state"), 1.0);
    // Open: decided at once, without a call.
    for seq in 5..25 {
        let reply = alice.request(Command::C2C, seq, &text("bob", "hi")).await;
        let reason = assert_error(&reply, Command::C2C, seq, 5000);
        if hook.hook_calls() == 3 {
            assert!(reason.contains("its breaker is open"), "{reason}");
        }
    }
    assert!(
        hook.hook_calls() <= 4,
        "one trial at most in 300 ms: {}",
        hook.hook_calls()
    );
    assert!(
        metric(
            &gw.metrics().await,
            "jim_hook_failures_total{reason=\"breaker_open\"}"
        ) >= 15.0
    );
    // The hook is back: after the interval one message tries it, and the
    // breaker closes. Nothing tells when the interval has passed but the
    // clock: messages are sent, 50 ms apart, until one is acked.
    hook.answer(HookAnswer::Json(r#"{"verdict":"allow"}"#.into()));
    let start = std::time::Instant::now();
    let mut seq = 100;
    loop {
        let reply = alice.request(Command::C2C, seq, &text("bob", "hi")).await;
        if json(&reply)["type"] == "ack" {
            break;
        }
        assert!(start.elapsed() < WAIT, "the breaker never closed");
        seq += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&gw.metrics().await, "jim_hook_breaker_state"), 0.0);
    let reply = alice.request(Command::C2C, 999, &text("bob", "hi")).await;
    assert_ack(&reply, Command::C2C, 999, "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_the_originals_verdict_without_a_second_call() {
    let gw = Hooked::start(|config, r| before_send(r, config)).await;
    let hook = &gw.receiver;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Tcp, "bob").await;
    let with_id = |id: &str, content: &str| {
        format!(
            r#"{{"type":"text","data":{{"receiver_id":"bob","content":"{content}","client_msg_id":"{id}"}}}}"#
        )
    };
    hook.answer(HookAnswer::Json(
        r#"{"verdict":"deny","code":4451,"reason":"not today"}"#.into(),
    ));
    let reply = alice.request(Command::C2C, 2, &with_id("c-1", "spam")).await;
    assert_eq!(assert_error(&reply, Command::C2C, 2, 4451), "not today");
    // The hook would allow it now; the retry is denied as the original.
    hook.answer(HookAnswer::Json(r#"{"verdict":"allow"}"#.into()));
    let retry = alice.request(Command::C2C, 3, &with_id("c-1", "spam")).await;
    assert_eq!(assert_error(&retry, Command::C2C, 3, 4451), "not today");
    assert_eq!(hook.hook_calls(), 1);
    // An allowed message's retry is acked as the original, not sent again.
    let ack = alice.request(Command::C2C, 4, &with_id("c-2", "fine")).await;
    let id = assert_ack(&ack, Command::C2C, 4, "bob");
    assert_eq!(json(&bob.recv().await)["data"]["content"], "fine");
    hook.answer(HookAnswer::Json(r#"{"verdict":"deny"}"#.into()));
    let retry = alice.request(Command::C2C, 5, &with_id("c-2", "fine")).await;
    assert_eq!(assert_ack(&retry, Command::C2C, 5, "bob"), id);
    bob.expect_silence().await;
    assert_eq!(hook.hook_calls(), 2);
}

fn events_on(receiver: &Receiver, config: &mut Config) {
    config.hooks.events_url = Some(receiver.url("/events"));
    config.hooks.offline_delay_ms = 400;
    config.hooks.batch_wait_ms = 20;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_say_what_was_accepted_who_came_and_went_and_whom_to_push() {
    let gw = Hooked::start(|config, r| events_on(r, config)).await;
    let events = &gw.receiver;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    assert_eq!(of_user(&events.events(1).await, "alice"), ["user.online"]);

    // Bob has no session: the message is accepted, and he needs a push.
    let ack = alice
        .request(Command::C2C, 2, &text("bob", "are you there?"))
        .await;
    let id = assert_ack(&ack, Command::C2C, 2, "bob");
    let got = events.events(2).await;
    let accepted = &got[0];
    assert_eq!(accepted["type"], "message.accepted");
    assert_eq!(
        (
            &accepted["sender"],
            &accepted["cmd"],
            &accepted["conversation"],
            &accepted["message_id"],
            &accepted["client_msg_id"],
            &accepted["offsets"],
        ),
        (
            &json!("alice"),
            &json!("B101"),
            &json!({"user": "bob"}),
            &json!(id),
            &Value::Null,
            &json!({"bob": 1, "alice": 1}),
        )
    );
    assert_eq!(accepted["message"]["data"]["content"], "are you there?");
    assert_eq!(
        (
            &got[1]["type"],
            &got[1]["user"],
            &got[1]["conversation"],
            &got[1]["message_id"],
            &got[1]["sender"],
            &got[1]["preview"]
        ),
        (
            &json!("push.needed"),
            &json!("bob"),
            &json!({"user": "alice"}),
            &json!(id),
            &json!("alice"),
            &json!("are you there?")
        )
    );
    for event in &got {
        assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()), "{event}");
        assert!(event["at"].as_u64().is_some(), "{event}");
    }

    // Bob comes: online; a message now needs no push.
    let mut bob = gw.user(Kind::Ws, "bob").await;
    assert_eq!(of_user(&events.events(1).await, "bob"), ["user.online"]);
    alice.send_message(Command::C2C, 3, "bob", "hi").await;
    bob.recv().await;
    let got = events.events(1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["type"], "message.accepted");

    // A reconnect within the delay: no offline, no second online.
    drop(bob);
    let bob = gw.user(Kind::Tcp, "bob").await;
    assert!(events.events_within(Duration::from_millis(800)).await.is_empty());
    // A second device of alice's changes nothing for the application.
    let alice_laptop = gw.user(Kind::Ws, "alice").await;
    drop(alice_laptop);
    // Gone for good: offline after the delay, per user, once.
    drop(bob);
    drop(alice);
    let got = events.events(2).await;
    assert_eq!(of_user(&got, "bob"), ["user.offline"]);
    assert_eq!(of_user(&got, "alice"), ["user.offline"]);
    assert!(events.events_within(Duration::from_millis(600)).await.is_empty());
    assert_eq!(events.badly_signed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_pushes_only_to_members_without_a_session() {
    let gw = Hooked::start(|config, r| events_on(r, config)).await;
    let events = &gw.receiver;
    gw.add_to_team(&["alice", "bob", "carol", "dave"]).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let _bob = gw.user(Kind::Ws, "bob").await;
    events.events(2).await; // both online
    let ack = alice.request(Command::C2G, 2, &text("team", "lunch?")).await;
    let id = assert_ack(&ack, Command::C2G, 2, "team");
    let got = events.events(3).await;
    assert_eq!(got[0]["type"], "message.accepted");
    assert_eq!(got[0]["conversation"], json!({"group": "team"}));
    let pushed: HashSet<&str> = got[1..]
        .iter()
        .inspect(|e| {
            assert_eq!(e["type"], "push.needed");
            assert_eq!(e["conversation"], json!({"group": "team"}));
            assert_eq!(e["message_id"], id);
        })
        .map(|e| e["user"].as_str().unwrap())
        .collect();
    assert_eq!(pushed, HashSet::from(["carol", "dave"]));
    assert!(events.events_within(Duration::from_millis(300)).await.is_empty());
}

/// The signature of an events batch, checked by Python's `hmac` (an
/// implementation of HMAC-SHA256 that is not ours).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_checks_out_with_pythons_hmac_and_during_a_rotation() {
    let gw = Hooked::start(|config, r| {
        events_on(r, config);
        config.hooks.previous_secret = Some("the secret being retired".into());
    })
    .await;
    let _alice = gw.user(Kind::Tcp, "alice").await;
    let batch = gw.receiver.next().await;
    let header = batch.signature.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, &batch.body).unwrap();
    let check = r#"
import hmac, hashlib, sys, time
header, body = sys.argv[1], open(sys.argv[2], "rb").read()
parts = [p.split("=", 1) for p in header.split(",")]
t = [v for k, v in parts if k == "t"][0]
signatures = [v for k, v in parts if k == "v1"]
assert abs(time.time() - int(t)) < 60, "stale"
for secret in sys.argv[3:]:
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert any(hmac.compare_digest(expected, s) for s in signatures), secret
print("ok", len(signatures))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            check,
            &header,
            body.to_str().unwrap(),
            SECRET,
            "the secret being retired",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_30_seconds_gets_every_event_once_it_is_back() {
    let gw = Hooked::start(|config, r| events_on(r, config)).await;
    let events = &gw.receiver;
    events.events_status(503);
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    for seq in 0..20 {
        alice
            .send_message(Command::C2C, 2 + seq, "bob", &format!("m{seq}"))
            .await;
    }
    // 1 online, 20 accepted, 20 pushes: refused while the receiver is down.
    events.wait_event_posts(3).await;
    // The fault itself: the receiver stays down this long (the gateway
    // retries meanwhile); no event to wait on but the clock.
    tokio::time::sleep(Duration::from_secs(30)).await;
    events.events_status(200);
    let got = events
        .events_until(Duration::from_secs(20), |got| {
            got.iter()
                .map(|e| e["id"].as_str().unwrap())
                .collect::<HashSet<_>>()
                .len()
                >= 41
        })
        .await;
    let ids: HashSet<&str> = got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 41);
    let accepted = got.iter().filter(|e| e["type"] == "message.accepted").count();
    let pushes = got.iter().filter(|e| e["type"] == "push.needed").count();
    assert!(accepted >= 20 && pushes >= 20, "{accepted} {pushes}");
    let text = gw.metrics().await;
    assert_eq!(metric(&text, "jim_events_dropped_total{reason=\"expired\"}"), 0.0);
    assert!(metric(&text, "jim_events_retried_total") > 0.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_past_the_retry_window_costs_counted_drops_not_memory() {
    let gw = Hooked::start(|config, r| {
        events_on(r, config);
        config.hooks.retry_for_secs = 1;
        config.hooks.max_queued = 50;
        config.hooks.batch_max = 10;
    })
    .await;
    let events = &gw.receiver;
    events.events_status(500);
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    for seq in 0..200 {
        alice.send_message(Command::C2C, 2 + seq, "bob", "m").await;
    }
    // Dropped as they were queued, before each message's ack.
    let full = metric(
        &gw.metrics().await,
        "jim_events_dropped_total{reason=\"queue_full\"}",
    );
    assert!(full >= 1.0);
    let expired = gw
        .wait_metric_at_least("jim_events_dropped_total{reason=\"expired\"}", 10.0)
        .await;
    let text = gw.metrics().await;
    assert!(metric(&text, "jim_events_queued") <= 50.0, "{text}");
    // Every event is sent, queued or counted as dropped.
    assert!(full + expired <= 401.0);
    // Back: what comes next is sent.
    events.events_status(200);
    alice.send_message(Command::C2C, 999, "bob", "after").await;
    events
        .events_until(Duration::from_secs(20), |got| {
            got.iter()
                .any(|e| e["type"] == "message.accepted" && e["message"]["data"]["content"] == "after")
        })
        .await;
}
