//! The inbox (the contract's section 7) in local mode: what was acked
//! arrives, once, in order, whenever the recipient comes back.

use std::collections::BTreeSet;
use std::path::Path;

use jim_protocol::Command;
use jim_router::inbox::{Inbox, Retention, StoreKind};
use jim_router::{Directory, LocalRouter, Router};
use serde_json::json;

use jim_e2e::*;
use jim_test_util::*;

fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<(u32, String)> {
    range.map(|i| (i, format!("m{i}"))).collect()
}

/// Sends `m{from}..=m{to}` from `raw` to `to`, each acked.
async fn send_many(raw: &mut Raw, to: &str, from: u32, upto: u32) {
    for i in from..=upto {
        raw.send_message(Command::C2C, i, to, &format!("m{i}")).await;
    }
}

async fn offline_recipient_gets_every_acked_message_when_it_comes_back(kind: Kind) {
    let gw = Gw::start().await;
    let mut alice = gw.user(kind, "alice").await;
    send_many(&mut alice, "bob", 1, 3).await;

    let mut bob = gw.raw(kind.other()).await;
    let ok = resume(&mut bob, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    let epoch = ok["inbox"]["epoch"].as_str().unwrap().to_owned();
    assert!(!epoch.is_empty());
    assert_eq!(
        ok["inbox"],
        json!({"epoch": epoch, "offset": 3, "recovered": false})
    );
    assert_eq!(deliveries(&mut bob, 3).await, numbered(1..=3));
    bob.expect_silence().await;

    // Live deliveries go on from the head.
    send_many(&mut alice, "bob", 4, 4).await;
    assert_eq!(deliveries(&mut bob, 1).await, numbered(4..=4));

    let (status, inbox) = gw.admin("GET", "/v1/users/bob/inbox", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        inbox,
        json!({"user": "bob", "epoch": epoch, "oldest": 1, "head": 4, "entries": 4})
    );
}

async fn every_since_case_of_the_contract(kind: Kind) {
    let gw = Gw::with_router(
        LocalRouter::open(
            Inbox::open(
                &StoreKind::Memory,
                Retention {
                    max_entries: 3,
                    ..Retention::default()
                },
                Default::default(),
            )
            .await
            .unwrap(),
            Vec::new(),
        )
        .await
        .unwrap(),
        |_| {},
    )
    .await;
    let mut alice = gw.user(kind, "alice").await;
    send_many(&mut alice, "bob", 1, 5).await; // bob's inbox holds 3..=5
    let epoch = gw
        .router
        .inbox_state("bob")
        .await
        .unwrap()
        .unwrap()
        .epoch
        .to_string();

    let cases = [
        // (since, recovered, replayed)
        (format!(r#"{{"epoch":"{epoch}","offset":5}}"#), true, vec![]),
        (
            format!(r#"{{"epoch":"{epoch}","offset":3}}"#),
            true,
            numbered(4..=5),
        ),
        (
            format!(r#"{{"epoch":"{epoch}","offset":2}}"#),
            true,
            numbered(3..=5),
        ),
        // Behind past retention: 1 and 2 are gone.
        (
            format!(r#"{{"epoch":"{epoch}","offset":1}}"#),
            false,
            numbered(3..=5),
        ),
        (r#"{"epoch":"","offset":0}"#.to_owned(), false, numbered(3..=5)),
        (
            r#"{"epoch":"another","offset":4}"#.to_owned(),
            false,
            numbered(3..=5),
        ),
        // Ahead of the head: not a position of this inbox.
        (
            format!(r#"{{"epoch":"{epoch}","offset":9}}"#),
            false,
            numbered(3..=5),
        ),
    ];
    for (since, recovered, replayed) in cases {
        let mut bob = gw.raw(kind).await;
        let ok = resume(&mut bob, "bob", Some(&since)).await;
        assert_eq!(
            ok["inbox"],
            json!({"epoch": epoch, "offset": 5, "recovered": recovered}),
            "since {since}"
        );
        assert_eq!(
            deliveries(&mut bob, replayed.len()).await,
            replayed,
            "since {since}"
        );
        bob.expect_silence().await;
    }

    // Without since: nothing replayed, not recovered, live from the head.
    let mut bob = gw.raw(kind).await;
    let ok = resume(&mut bob, "bob", None).await;
    assert_eq!(
        ok["inbox"],
        json!({"epoch": epoch, "offset": 5, "recovered": false})
    );
    bob.expect_silence().await;
    send_many(&mut alice, "bob", 6, 6).await;
    assert_eq!(deliveries(&mut bob, 1).await, numbered(6..=6));

    // A malformed since: B003 4000, and the session ends; others go on.
    for since in [
        r#""1:5""#,
        r#"{"epoch":1,"offset":2}"#,
        r#"{"epoch":"e","offset":-1}"#,
        r#"{"epoch":"e","offset":1.5}"#,
        r#"{"epoch":"e"}"#,
        r#"[]"#,
        r#"null"#,
    ] {
        let mut carol = gw.raw(kind).await;
        let reply = carol
            .request(Command::Auth, 7, &format!(r#"{{"token":"bob","since":{since}}}"#))
            .await;
        assert_eq!((reply.cmd, reply.seq), (Command::AuthFailed, 7), "since {since}");
        let status = json(&reply);
        assert_eq!(status["code"], 4000, "since {since}: {status}");
        assert!(status["reason"].as_str().unwrap().contains("since"), "{status}");
        carol.expect_close(1008).await;
    }
    send_many(&mut alice, "bob", 7, 7).await;
    assert_eq!(deliveries(&mut bob, 1).await, numbered(7..=7));
}

async fn live_messages_during_a_replay_are_neither_lost_nor_repeated_nor_reordered(kind: Kind) {
    const N: u32 = 600;
    let gw = Gw::with_router(
        LocalRouter::open(
            Inbox::open(
                &StoreKind::Memory,
                Retention {
                    max_entries: 10_000,
                    ..Retention::default()
                },
                Default::default(),
            )
            .await
            .unwrap(),
            Vec::new(),
        )
        .await
        .unwrap(),
        |config| config.limits.messages_per_sec = 100_000,
    )
    .await;
    let mut alice = gw.user(kind, "alice").await;
    send_many(&mut alice, "bob", 1, 200).await;
    // The rest is sent while bob attaches and replays.
    let sender = tokio::spawn(async move {
        send_many(&mut alice, "bob", 201, N).await;
        alice
    });
    let mut bob = gw.raw(kind.other()).await;
    let ok = resume(&mut bob, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    let head = ok["inbox"]["offset"].as_u64().unwrap() as u32;
    assert!(head >= 200);
    assert_eq!(deliveries(&mut bob, N as usize).await, numbered(1..=N));
    sender.await.unwrap();
    bob.expect_silence().await;
}

async fn group_messages_carry_offsets_and_skip_only_the_sending_session(kind: Kind) {
    let gw = Gw::start().await;
    gw.router
        .add_members("team", &["alice".into(), "bob".into()])
        .await
        .unwrap();
    let mut phone = gw.user(kind, "alice").await;
    let mut laptop = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;

    let reply = phone.request(Command::C2G, 5, &text("team", "g1")).await;
    assert_ack(&reply, Command::C2G, 5, "team");
    assert_eq!(json(&reply)["data"]["offset"], 1, "the sender's own offset");
    assert_eq!(deliveries(&mut laptop, 1).await, vec![(1, "g1".to_owned())]);
    assert_eq!(deliveries(&mut bob, 1).await, vec![(1, "g1".to_owned())]);

    // The sending session's next delivery is offset 2: no gap, no echo.
    bob.send_message(Command::C2G, 6, "team", "g2").await;
    assert_eq!(deliveries(&mut phone, 1).await, vec![(2, "g2".to_owned())]);
    assert_eq!(deliveries(&mut laptop, 1).await, vec![(2, "g2".to_owned())]);
    phone.expect_silence().await;

    // A B101 is copied to the sender's inbox too (contract v1.2): its ack
    // carries the offset, the laptop gets it there, the phone does not.
    let reply = phone.request(Command::C2C, 7, &text("bob", "direct")).await;
    assert_eq!(json(&reply)["data"]["offset"], 3, "{}", body_str(&reply));
    assert_eq!(deliveries(&mut laptop, 1).await, vec![(3, "direct".to_owned())]);
    phone.expect_silence().await;

    // Another session of alice, from the start: every entry, its own too.
    let mut tablet = gw.raw(kind).await;
    resume(&mut tablet, "alice", Some(r#"{"epoch":"","offset":0}"#)).await;
    let replayed = deliveries(&mut tablet, 3).await;
    assert_eq!(
        replayed,
        vec![
            (1, "g1".to_owned()),
            (2, "g2".to_owned()),
            (3, "direct".to_owned())
        ]
    );
}

async fn a_retried_send_is_acked_as_the_original_and_delivered_once(kind: Kind) {
    let gw = Gw::start().await;
    let mut bob = gw.user(kind.other(), "bob").await;
    let send = |content: &str, id: &str| {
        format!(
            r#"{{"type":"text","data":{{"receiver_id":"bob","content":"{content}","client_msg_id":"{id}"}}}}"#
        )
    };
    let mut phone = gw.user(kind, "alice").await;
    let first = assert_ack(
        &phone.request(Command::C2C, 1, &send("once", "c-1")).await,
        Command::C2C,
        1,
        "bob",
    );
    let delivered = bob.recv().await;
    assert_eq!(
        json(&delivered)["data"]["client_msg_id"],
        "c-1",
        "deliveries carry it unchanged"
    );
    // The ack was lost: the client retries, on the same and on another connection.
    let again = assert_ack(
        &phone.request(Command::C2C, 2, &send("once", "c-1")).await,
        Command::C2C,
        2,
        "bob",
    );
    let mut laptop = gw.user(kind.other(), "alice").await;
    let elsewhere = assert_ack(
        &laptop.request(Command::C2C, 3, &send("once", "c-1")).await,
        Command::C2C,
        3,
        "bob",
    );
    assert_eq!((&again, &elsewhere), (&first, &first));
    bob.expect_silence().await;

    // Another sender's c-1 is another message.
    let mut carol = gw.user(kind, "carol").await;
    let other = assert_ack(
        &carol.request(Command::C2C, 1, &send("mine", "c-1")).await,
        Command::C2C,
        1,
        "bob",
    );
    assert_ne!(other, first);
    assert_eq!(deliveries(&mut bob, 1).await, vec![(2, "mine".to_owned())]);

    // A group retry gets the original offset too.
    gw.router
        .add_members("team", &["alice".into(), "bob".into()])
        .await
        .unwrap();
    let group = |id: &str| {
        format!(r#"{{"type":"text","data":{{"receiver_id":"team","content":"g","client_msg_id":"{id}"}}}}"#)
    };
    let a = json(&phone.request(Command::C2G, 4, &group("g-1")).await);
    let b = json(&phone.request(Command::C2G, 5, &group("g-1")).await);
    assert_eq!(
        (a["data"]["message_id"].clone(), a["data"]["offset"].clone()),
        (b["data"]["message_id"].clone(), b["data"]["offset"].clone())
    );
    assert_eq!(deliveries(&mut bob, 1).await.len(), 1);
    bob.expect_silence().await;

    // A client_msg_id that is not 1 to 64 bytes of string: 4000, nothing sent.
    for bad in [
        r#""""#.to_owned(),
        format!(r#""{}""#, "x".repeat(65)),
        "7".to_owned(),
        "null".to_owned(),
    ] {
        let body = format!(
            r#"{{"type":"text","data":{{"receiver_id":"bob","content":"x","client_msg_id":{bad}}}}}"#
        );
        let reason = assert_error(
            &phone.request(Command::C2C, 9, &body).await,
            Command::C2C,
            9,
            4000,
        );
        assert!(reason.contains("client_msg_id"), "{reason}");
    }
    bob.expect_silence().await;
}

both_transports!(
    offline_recipient_gets_every_acked_message_when_it_comes_back,
    every_since_case_of_the_contract,
    live_messages_during_a_replay_are_neither_lost_nor_repeated_nor_reordered,
    group_messages_carry_offsets_and_skip_only_the_sending_session,
    a_retried_send_is_acked_as_the_original_and_delivered_once,
    a_retried_send_is_copied_to_the_senders_other_devices_once,
);

async fn a_retried_send_is_copied_to_the_senders_other_devices_once(kind: Kind) {
    let gw = Gw::start().await;
    let mut phone = gw.user(kind, "alice").await;
    let mut laptop = gw.user(kind.other(), "alice").await;
    let mut bob = gw.user(kind, "bob").await;
    let body = r#"{"type":"text","data":{"receiver_id":"bob","content":"once","client_msg_id":"c-9"}}"#;
    let first = json(&phone.request(Command::C2C, 1, body).await);
    assert_eq!(first["data"]["offset"], 1);
    assert_eq!(deliveries(&mut laptop, 1).await, vec![(1, "once".to_owned())]);
    assert_eq!(deliveries(&mut bob, 1).await, vec![(1, "once".to_owned())]);
    // The laptop retries it (it saw the copy, but say its own send timed
    // out): acked as the original, offset and all; nothing new anywhere.
    let retry = json(&laptop.request(Command::C2C, 2, body).await);
    assert_eq!(
        (
            retry["data"]["message_id"].clone(),
            retry["data"]["offset"].clone()
        ),
        (first["data"]["message_id"].clone(), json!(1))
    );
    for session in [&mut phone, &mut laptop, &mut bob] {
        session.expect_silence().await;
    }
    let (_, state) = gw.admin("GET", "/v1/users/alice/inbox", None).await;
    assert_eq!(state["head"], 1, "one copy in the sender's inbox");
}

/// A gateway whose inbox and groups are on disk in `dir`.
pub(crate) async fn on_disk(dir: &Path) -> Gw {
    on_disk_with(dir, |_| {}).await
}

async fn on_disk_with(dir: &Path, adjust: impl FnOnce(&mut jim_gateway::Config)) -> Gw {
    let kind = StoreKind::Disk {
        dir: dir.to_path_buf(),
    };
    // The previous gateway's store lets go of the directory as it stops.
    let deadline = tokio::time::Instant::now() + WAIT;
    let inbox = loop {
        match Inbox::open(&kind, Retention::default(), Default::default()).await {
            Ok(inbox) => break inbox,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "{e}");
                tokio::task::yield_now().await;
            }
        }
    };
    Gw::with_router(LocalRouter::open(inbox, Vec::new()).await.unwrap(), adjust).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_store_keeps_inboxes_groups_and_retries_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gw = on_disk(dir.path()).await;
    let (status, _) = gw
        .admin(
            "POST",
            "/v1/groups/team/members",
            Some(r#"{"users":["alice","bob"]}"#),
        )
        .await;
    assert_eq!(status, 200);
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let body = r#"{"type":"text","data":{"receiver_id":"bob","content":"kept","client_msg_id":"k-1"}}"#;
    let id = assert_ack(
        &alice.request(Command::C2C, 1, body).await,
        Command::C2C,
        1,
        "bob",
    );
    alice.send_message(Command::C2G, 2, "team", "kept too").await;
    let epoch = gw.router.inbox_state("bob").await.unwrap().unwrap().epoch;
    drop(alice);
    assert!(gw.shutdown().await);
    let gw = on_disk(dir.path()).await;

    let (status, members) = gw.admin("GET", "/v1/groups/team/members", None).await;
    assert_eq!(
        (status, members["members"].clone()),
        (200, json!(["alice", "bob"]))
    );
    let mut bob = gw.raw(Kind::Ws).await;
    let ok = resume(
        &mut bob,
        "bob",
        Some(&format!(r#"{{"epoch":"{epoch}","offset":0}}"#)),
    )
    .await;
    assert_eq!(
        ok["inbox"],
        json!({"epoch": &*epoch, "offset": 2, "recovered": true})
    );
    assert_eq!(
        deliveries(&mut bob, 2).await,
        vec![(1, "kept".to_owned()), (2, "kept too".to_owned())]
    );
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let retried = assert_ack(
        &alice.request(Command::C2C, 3, body).await,
        Command::C2C,
        3,
        "bob",
    );
    assert_eq!(retried, id, "a retry is recognised after a restart");
    bob.expect_silence().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_store_restart_changes_the_epoch_and_clients_are_told() {
    let gw = Gw::start().await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    send_many(&mut alice, "bob", 1, 2).await;
    let epoch = gw.router.inbox_state("bob").await.unwrap().unwrap().epoch;
    assert!(gw.shutdown().await);

    let gw = Gw::start().await;
    let mut bob = gw.raw(Kind::Tcp).await;
    let ok = resume(
        &mut bob,
        "bob",
        Some(&format!(r#"{{"epoch":"{epoch}","offset":2}}"#)),
    )
    .await;
    assert_eq!(
        ok["inbox"]["recovered"], false,
        "the messages of the old epoch are gone: {ok}"
    );
    assert_ne!(ok["inbox"]["epoch"], json!(&*epoch));
    assert_eq!(ok["inbox"]["offset"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_inbox_off_deliveries_have_seq_0_and_b002_no_inbox() {
    let gw = Gw::with_router(LocalRouter::open(Inbox::off(), Vec::new()).await.unwrap(), |_| {}).await;
    let mut bob = gw.raw(Kind::Tcp).await;
    let ok = resume(&mut bob, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    assert!(ok.get("inbox").is_none(), "{ok}");
    let mut alice = gw.user(Kind::Ws, "alice").await;
    send_many(&mut alice, "bob", 1, 2).await;
    assert_eq!(
        deliveries(&mut bob, 2).await,
        vec![(0, "m1".to_owned()), (0, "m2".to_owned())]
    );
    let (status, body) = gw.admin("GET", "/v1/users/bob/inbox", None).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_users_and_groups_are_stored_and_pushes_to_everyone_are_not() {
    let gw = Gw::start().await;
    gw.router.add_members("team", &["bob".into()]).await.unwrap();
    for body in [
        r#"{"users":["bob"],"message":{"type":"text","data":{"content":"p1"}}}"#,
        r#"{"group":"team","message":{"type":"text","data":{"content":"p2"}}}"#,
        r#"{"everyone":true,"message":{"type":"text","data":{"content":"p3"}}}"#,
    ] {
        let (status, reply) = gw.admin("POST", "/v1/push", Some(body)).await;
        assert_eq!(status, 200, "{reply}");
    }
    let mut bob = gw.raw(Kind::Tcp).await;
    let ok = resume(&mut bob, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    assert_eq!(ok["inbox"]["offset"], 2);
    let got: BTreeSet<_> = deliveries(&mut bob, 2).await.into_iter().collect();
    assert_eq!(
        got,
        [(1, "p1".to_owned()), (2, "p2".to_owned())].into_iter().collect()
    );
    bob.expect_silence().await;

    // Live: a push to everyone has seq 0.
    let (status, _) = gw
        .admin(
            "POST",
            "/v1/push",
            Some(r#"{"everyone":true,"message":{"type":"text","data":{"content":"p4"}}}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(deliveries(&mut bob, 1).await, vec![(0, "p4".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_session_reconnects_by_itself_and_gets_what_was_sent_meanwhile() {
    use jim_client::{Backoff, Endpoint, Event, Session};
    let dir = tempfile::tempdir().unwrap();
    let gw = on_disk(dir.path()).await;
    let tcp = gw.tcp;
    let fast = Backoff {
        min_backoff: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_millis(200),
    };
    let mut bob = Session::builder(Endpoint::parse(&format!("tcp://{tcp}")), "bob")
        .from_start()
        .backoff(fast)
        .connect()
        .await
        .unwrap();
    let Event::Resumed { inbox: Some(inbox) } = bob.next().await.unwrap() else {
        panic!("the first event is Resumed with an inbox")
    };
    assert_eq!((inbox.offset, inbox.recovered), (0, false));
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    send_many(&mut alice, "bob", 1, 1).await;
    let Event::Message { offset: 1, .. } = bob.next().await.unwrap() else {
        panic!("m1 live")
    };

    // The gateway goes away; bob is told, and will try again by itself.
    drop(alice);
    assert!(gw.shutdown().await);
    let Event::Disconnected { .. } = bob.next().await.unwrap() else {
        panic!("bob is told the connection is gone")
    };
    // Back on the same port; alice sends while bob is still away.
    let gw = on_disk_with(dir.path(), |config| config.listen.tcp = Some(tcp)).await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    send_many(&mut alice, "bob", 2, 3).await;
    let resumed = loop {
        match bob.next().await.unwrap() {
            Event::Resumed { inbox } => break inbox.unwrap(),
            Event::Disconnected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((resumed.offset, resumed.recovered), (3, true));
    for expected in 2..=3u32 {
        match bob.next().await.unwrap() {
            Event::Message { offset, message, .. } => {
                assert_eq!(offset, expected);
                assert!(format!("{message:?}").contains(&format!("m{expected}")));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(bob.position().map(|p| p.offset), Some(3));

    // Kicked: reconnecting would not help, and the session says so.
    let (status, _) = gw
        .admin("POST", "/v1/users/bob/kick", Some(r#"{"reason":"bye"}"#))
        .await;
    assert_eq!(status, 200);
    let closed = bob.next().await.unwrap_err();
    assert!(closed.to_string().contains("kicked: bye"), "{closed}");
}

/// The gateway binary on fixed loopback ports (so that it can come back on
/// them), with its configuration and its inbox (on disk) in `dir`.
async fn gateway_process(dir: &Path, tcp: u16, admin: u16) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let mut process = tokio::process::Command::new(jim_e2e::gateway_bin!());
    for (key, _) in std::env::vars() {
        if key.starts_with("JIM_") {
            process.env_remove(key);
        }
    }
    // Senders at full speed: no rate limit in the way.
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "[limits]\nmessages_per_sec = 100000\nmessage_burst = 100000\n",
    )
    .unwrap();
    let mut child = process
        .args(["--dev", "--log", "warn", "--ws", "off", "--inbox", "disk"])
        .arg("--config")
        .arg(&config)
        .arg("--inbox-dir")
        .arg(dir.join("inbox"))
        .args([
            "--tcp",
            &format!("127.0.0.1:{tcp}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    banner_rows(&mut lines, &["tcp", "inbox"], WAIT).await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// How long traffic runs before a fault.
const TRAFFIC: std::time::Duration = std::time::Duration::from_millis(600);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_disk_killed_under_traffic_delivers_every_acked_message_once_after_reconnecting() {
    use jim_test_util::deployment::{self, pipelined_as};
    let dir = tempfile::tempdir().unwrap();
    let (tcp, admin) = (free_port(), free_port());
    let mut gateway = gateway_process(dir.path(), tcp, admin).await;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], tcp).into();
    let admin_addr: std::net::SocketAddr = ([127, 0, 0, 1], admin).into();
    let (status, _) = admin_request(
        admin_addr,
        "POST",
        "/v1/groups/team/members",
        Some(r#"{"users":["carol","bob"]}"#),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut bob = Raw::tcp(addr).await;
    let ok = resume(&mut bob, "bob", Some(r#"{"epoch":"","offset":0}"#)).await;
    let epoch = ok["inbox"]["epoch"].as_str().unwrap().to_owned();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let senders = [("alice", Command::C2C, "bob"), ("carol", Command::C2G, "team")].map(|(user, cmd, to)| {
        let stopped = stopped.clone();
        tokio::spawn(async move {
            pipelined_as(
                addr,
                user,
                cmd,
                to,
                16,
                std::time::Duration::from_millis(1),
                stopped,
            )
            .await
        })
    });
    // Bob reads until the gateway dies under him.
    let mut seen: Vec<(u32, String)> = Vec::new();
    let reading = async {
        while let Ok(frame) = bob.next_inner().await {
            if is_delivery(&frame) {
                seen.push((
                    frame.seq,
                    json(&frame)["data"]["message_id"].as_str().unwrap().to_owned(),
                ));
            }
        }
    };
    let kill = async {
        tokio::time::sleep(TRAFFIC).await;
        gateway.kill().await.unwrap();
    };
    tokio::join!(reading, kill);
    stop.send_replace(true);
    let mut outcome = deployment::Outcome::default();
    for sender in senders {
        outcome.merge(sender.await.unwrap());
    }

    // Back on the same ports and directory; bob resumes where he was.
    let _gateway = gateway_process(dir.path(), tcp, admin).await;
    let last = seen.last().map_or(0, |(seq, _)| *seq);
    let mut bob = Raw::tcp(addr).await;
    let ok = resume(
        &mut bob,
        "bob",
        Some(&format!(r#"{{"epoch":"{epoch}","offset":{last}}}"#)),
    )
    .await;
    assert_eq!(ok["inbox"]["recovered"], true, "{ok}");
    let head = ok["inbox"]["offset"].as_u64().unwrap() as u32;
    while seen.len() < head as usize {
        let frame = bob.recv().await;
        if is_delivery(&frame) {
            seen.push((
                frame.seq,
                json(&frame)["data"]["message_id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    bob.expect_silence().await;
    let offsets: Vec<u32> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        offsets,
        (1..=head).collect::<Vec<_>>(),
        "every offset once, in order"
    );
    let delivered: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    deployment::assert_acked_were_delivered("local, disk, gateway killed", &outcome, &delivered);
    assert!(outcome.acked.len() > 50, "traffic ran: {}", outcome.acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_loses_the_inbox_under_a_live_session_it_is_told_and_gets_the_new_entries() {
    use jim_client::{Backoff, Endpoint, Event, Session};
    let redis = jim_test_util::redis::RedisServer::start().await;
    let kind = StoreKind::Redis { url: redis.url() };
    let inbox = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    let gw = Gw::with_router(LocalRouter::open(inbox, Vec::new()).await.unwrap(), |_| {}).await;
    let fast = Backoff {
        min_backoff: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_millis(200),
    };
    let mut bob = Session::builder(Endpoint::parse(&format!("tcp://{}", gw.tcp)), "bob")
        .from_start()
        .backoff(fast)
        .connect()
        .await
        .unwrap();
    let Event::Resumed { .. } = bob.next().await.unwrap() else {
        panic!("resumed first")
    };
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    send_many(&mut alice, "bob", 1, 3).await;
    for expected in 1..=3 {
        let Event::Message { offset, .. } = bob.next().await.unwrap() else {
            panic!("m{expected}")
        };
        assert_eq!(offset, expected);
    }
    let old = bob.position().unwrap().epoch.clone();

    // Redis loses everything; the next message starts a new epoch at 1.
    jim_test_util::redis::flush_all(&redis.url());
    send_many(&mut alice, "bob", 4, 4).await;
    let mut events = Vec::new();
    let resumed = tokio::time::timeout(WAIT, async {
        loop {
            match bob.next().await.unwrap() {
                Event::Resumed { inbox } => break inbox.unwrap(),
                other => events.push(other),
            }
        }
    })
    .await
    .expect("the live session is told its inbox was reset");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { reason, .. } if reason.contains("inbox was reset"))),
        "the live session was told: {events:?}"
    );
    assert!(!resumed.recovered, "{resumed:?}");
    assert_ne!(resumed.epoch, old);
    match bob.next().await.unwrap() {
        Event::Message {
            offset: 1, message, ..
        } => assert!(format!("{message:?}").contains("m4")),
        other => panic!("m4 in the new epoch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_take_the_message_is_a_5000_and_no_ack() {
    let mut redis = jim_test_util::redis::RedisServer::start().await;
    let kind = StoreKind::Redis { url: redis.url() };
    let inbox = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    let gw = Gw::with_router(LocalRouter::open(inbox, Vec::new()).await.unwrap(), |_| {}).await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    send_many(&mut alice, "bob", 1, 1).await;
    assert_eq!(deliveries(&mut bob, 1).await, numbered(1..=1));

    redis.kill().await;
    let reply = alice.request(Command::C2C, 2, &text("bob", "m2")).await;
    let reason = assert_error(&reply, Command::C2C, 2, 5000);
    assert!(reason.contains("redis"), "{reason}");
    bob.expect_silence().await;

    // Back: the retry is acked and delivered, next in line.
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = alice.request(Command::C2C, 3, &text("bob", "m2")).await;
        if json(&reply)["type"] == "ack" {
            break;
        }
        assert_error(&reply, Command::C2C, 3, 5000);
        assert!(tokio::time::Instant::now() < deadline, "redis never came back");
    }
    assert_eq!(deliveries(&mut bob, 1).await, vec![(2, "m2".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_messages_to_a_disk_inbox_are_acked_and_delivered_in_the_order_sent() {
    let dir = tempfile::tempdir().unwrap();
    let gw = on_disk_with(dir.path(), |config| {
        config.limits.messages_per_sec = 100_000;
        config.limits.message_burst = 100_000;
        config.limits.routes_in_flight = 16;
    })
    .await;
    for kind in [Kind::Tcp, Kind::Ws] {
        let bob_name = format!("bob-{kind:?}");
        let mut bob = gw.user(kind.other(), &bob_name).await;
        let mut alice = gw.user(kind, "alice").await;
        const N: u32 = 300;
        let frames: Vec<_> = (1..=N)
            .map(|i| jim_protocol::Frame::new(Command::C2C, i, text(&bob_name, &format!("m{i}"))))
            .collect();
        // All at once: the disk answers in groups, many in flight.
        alice.send_all(&frames).await;
        for i in 1..=N {
            assert_ack(&alice.reply().await, Command::C2C, i, &bob_name);
        }
        assert_eq!(
            deliveries(&mut bob, N as usize).await,
            numbered(1..=N),
            "{kind:?}"
        );
    }
}
