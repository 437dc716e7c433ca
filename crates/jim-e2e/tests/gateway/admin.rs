//! The admin HTTP API: push, groups, presence, kick, health, metrics, and
//! its errors.

use jim_protocol::Command;
use serde_json::json;

use jim_e2e::*;
use jim_router::Router as _;
use jim_test_util::*;

async fn keyed() -> Gw {
    Gw::with(|c| c.admin.key = Some(ADMIN_KEY.into())).await
}

#[tokio::test]
async fn push_to_users_gives_each_their_own_b103() {
    let gw = keyed().await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    let (status, body) = gw
        .admin(
            "POST",
            "/v1/push",
            Some(r#"{"users":["alice","bob"],"message":{"type":"text","data":{"content":"maintenance at 5"}},"sender_id":"ops"}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Counts, not a list of every receiver (a push may reach 100,000).
    assert_eq!(body, serde_json::json!({"messages": 2, "sessions": 2}));
    for (raw, user) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        let data = raw.recv_push(user, "ops").await;
        assert_eq!(data["content"], "maintenance at 5");
        assert!(data["message_id"].is_string());
    }
    // The list on request.
    let (status, body) = gw
        .admin(
            "POST",
            "/v1/push",
            Some(r#"{"users":["alice","carol"],"list":true,"message":{"type":"text","data":{"content":"listed"}}}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["messages"].clone(), body["sessions"].clone()),
        (serde_json::json!(2), serde_json::json!(1))
    );
    let listed = body["pushed"].as_array().unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| (p["receiver_id"].clone(), p["sessions"].clone()))
            .collect::<Vec<_>>(),
        [
            (serde_json::json!("alice"), serde_json::json!(1)),
            (serde_json::json!("carol"), serde_json::json!(0))
        ]
    );
    assert!(listed.iter().all(|p| p["message_id"].is_string()));
}

#[tokio::test]
async fn push_to_a_group_and_to_everyone() {
    let gw = keyed().await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    let (status, _) = gw
        .admin("POST", "/v1/groups/team/members", Some(r#"{"users":["alice"]}"#))
        .await;
    assert_eq!(status, 200);

    let (status, body) = gw
        .admin(
            "POST",
            "/v1/push",
            Some(r#"{"group":"team","message":{"type":"face","data":{"symbol":"[:wave]"}}}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = json(&alice.recv().await)["data"].clone();
    assert_eq!(
        (data["receiver_id"].clone(), data["sender_id"].clone()),
        (json!("team"), json!("system"))
    );
    bob.expect_silence().await;

    let (status, _) = gw
        .admin(
            "POST",
            "/v1/push",
            Some(r#"{"everyone":true,"message":{"type":"text","data":{"content":"hi all"}}}"#),
        )
        .await;
    assert_eq!(status, 200);
    for raw in [&mut alice, &mut bob] {
        assert_eq!(json(&raw.recv().await)["data"]["receiver_id"], "*");
    }
}

#[tokio::test]
async fn push_errors_are_clear() {
    let gw = keyed().await;
    let cases = [
        ("{", 400, "the body is not the expected JSON: EOF while parsing"),
        (
            "users=a",
            400,
            "the body is not the expected JSON: expected value",
        ),
        (
            r#"{"message":{"type":"text","data":{"content":"x"}}}"#,
            400,
            "give exactly one of `users`, `group` (non-empty) or `everyone`",
        ),
        (
            r#"{"users":[],"message":{}}"#,
            400,
            "`users` must list at least one non-empty user id",
        ),
        (
            r#"{"users":["a"],"message":{"type":"text"}}"#,
            400,
            "bad message: field `message` must be {\"type\":..,\"data\":{..}}",
        ),
        (
            r#"{"users":["a"],"message":{"type":"text","data":{}}}"#,
            400,
            "bad message: missing field `data.content`",
        ),
        (
            r#"{"users":["a"],"message":{"type":"ack","data":{"message_id":"1"}}}"#,
            400,
            "bad message: only chat messages can be pushed, not ack or error",
        ),
        (
            r#"{"group":"nope","message":{"type":"text","data":{"content":"x"}}}"#,
            404,
            "unknown group \"nope\"",
        ),
        (
            r#"{"users":["a"],"message":{"type":"text","data":{"content":"x"}},"extra":1}"#,
            400,
            "unknown field `extra`",
        ),
    ];
    for (body, status, error) in cases {
        let (got, reply) = gw.admin("POST", "/v1/push", Some(body)).await;
        assert_eq!(got, status, "{body}: {reply}");
        let message = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {reply}"));
        assert!(
            message.contains(error),
            "{body}: got {message:?}, expected {error:?}"
        );
    }
}

#[tokio::test]
async fn a_push_above_the_maximum_body_is_refused_and_nobody_is_disconnected() {
    let gw = Gw::with(|c| c.limits.max_body = 1024).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    for audience in [r#""users":["alice","bob"]"#, r#""everyone":true"#] {
        let body = format!(
            r#"{{{audience},"message":{{"type":"text","data":{{"content":"{}"}}}}}}"#,
            "x".repeat(1000)
        );
        let (status, reply) = gw.admin("POST", "/v1/push", Some(&body)).await;
        assert_eq!(status, 400, "{reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.starts_with("invalid request: message too large: "),
            "{error}"
        );
        assert!(error.ends_with("above the maximum body of 1024 bytes"), "{error}");
    }
    // Both still connected, nothing delivered.
    for raw in [&mut alice, &mut bob] {
        let pong = raw.request(Command::Ping, 9, "").await;
        assert_eq!(pong.cmd, Command::Pong);
    }
}

/// `curl -d` sends `application/x-www-form-urlencoded`; other clients send
/// no type at all. A JSON body is read whatever the type says.
#[tokio::test]
async fn a_json_body_is_read_whatever_its_content_type() {
    let gw = keyed().await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ] {
        let body = r#"{"users":["alice"],"message":{"type":"text","data":{"content":"hi"}}}"#;
        let (status, reply) = http_with(
            gw.admin,
            "POST",
            "/v1/push",
            Some(body),
            gw.admin_key.as_deref(),
            content_type,
        )
        .await;
        assert_eq!(status, 200, "{content_type:?}: {reply}");
        alice.recv_push("alice", "system").await;
    }
}

#[tokio::test]
async fn group_membership_add_list_remove() {
    let gw = keyed().await;
    let (status, body) = gw.admin("GET", "/v1/groups/g1/members", None).await;
    assert_eq!((status, body), (404, json!({"error": "unknown group \"g1\""})));
    let (status, body) = gw
        .admin("POST", "/v1/groups/g1/members", Some(r#"{"users":["b","a"]}"#))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"group": "g1", "members": ["a", "b"]}))
    );
    let (_, body) = gw.admin("GET", "/v1/groups/g1/members", None).await;
    assert_eq!(body["members"], json!(["a", "b"]));
    let (status, body) = gw
        .admin("DELETE", "/v1/groups/g1/members", Some(r#"{"users":["a"]}"#))
        .await;
    assert_eq!((status, body["members"].clone()), (200, json!(["b"])));
    let (status, body) = gw
        .admin("DELETE", "/v1/groups/g1/members", Some(r#"{"users":["b"]}"#))
        .await;
    assert_eq!((status, body["members"].clone()), (200, json!([])));
    let (status, _) = gw
        .admin("DELETE", "/v1/groups/g1/members", Some(r#"{"users":["b"]}"#))
        .await;
    assert_eq!(status, 404);
    let (status, body) = gw
        .admin("POST", "/v1/groups/g1/members", Some(r#"{"users":[""]}"#))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = gw
        .admin("POST", "/v1/groups/g1/members", Some(r#"{"user":"a"}"#))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn presence_lists_a_users_sessions() {
    let gw = keyed().await;
    let _a = gw.user(Kind::Tcp, "alice").await;
    let _b = gw.user(Kind::Ws, "alice").await;
    let (status, body) = gw.admin("GET", "/v1/users/alice/sessions", None).await;
    assert_eq!(status, 200);
    let mut transports: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["transport"].as_str().unwrap())
        .collect();
    transports.sort();
    assert_eq!(transports, ["tcp", "ws"]);
    assert_eq!(body["sessions"][0]["device"], "raw");
    let (_, body) = gw.admin("GET", "/v1/users/nobody/sessions", None).await;
    assert_eq!(body, json!({"user": "nobody", "sessions": []}));
}

#[tokio::test]
async fn kick_closes_every_session_of_the_user_with_1008() {
    let gw = keyed().await;
    let mut a1 = gw.user(Kind::Tcp, "alice").await;
    let mut a2 = gw.user(Kind::Ws, "alice").await;
    let mut bob = gw.user(Kind::Tcp, "bob").await;
    let (status, body) = gw
        .admin("POST", "/v1/users/alice/kick", Some(r#"{"reason":"abuse"}"#))
        .await;
    assert_eq!((status, body), (200, json!({"user": "alice", "kicked": 2})));
    assert_eq!(a1.expect_close(1008).await, "kicked: abuse");
    assert_eq!(a2.expect_close(1008).await, "kicked: abuse");
    crate::session::wait_until(|| gw.router.hub().sessions_of("alice").is_empty()).await;
    assert_eq!(bob.request(Command::Ping, 1, "").await.cmd, Command::Pong);
    let (status, body) = gw.admin("POST", "/v1/users/bob/kick", None).await;
    assert_eq!((status, body["kicked"].clone()), (200, json!(1)));
    assert_eq!(bob.expect_close(1008).await, "kicked");
}

#[tokio::test]
async fn the_admin_key_is_required_and_checked() {
    let gw = keyed().await;
    for key in [None, Some("wrong")] {
        let (status, body) = admin_request(gw.admin, "GET", "/v1/users/a/sessions", None, key).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"].as_str().unwrap().contains("admin key"));
    }
    // Probes need no key.
    let (status, text) = http(gw.admin, "GET", "/healthz", None, None).await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    let (status, body) = admin_request(gw.admin, "GET", "/readyz", None, None).await;
    assert_eq!((status, body), (200, json!({"ready": true})));
    let (status, body) = gw.admin("GET", "/v1/nothing-here", None).await;
    assert_eq!((status, body), (404, json!({"error": "no such endpoint"})));
}

#[tokio::test]
async fn metrics_count_connections_frames_messages_and_errors() {
    let gw = keyed().await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    alice.send_message(Command::C2C, 1, "bob", "x").await;
    bob.recv().await;
    assert_error(&alice.request(Command::C2C, 2, "{").await, Command::C2C, 2, 4000);
    let (status, text) = http(gw.admin, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    for expected in [
        "jim_connections 2",
        "jim_sessions 2",
        "jim_messages_routed_total{cmd=\"B101\",type=\"text\"} 1",
        "jim_errors_total{code=\"4000\"} 1",
        "jim_frames_in_total 4",
        "jim_bytes_in_total",
        "jim_bytes_out_total",
        "jim_slow_consumer_closes_total 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
