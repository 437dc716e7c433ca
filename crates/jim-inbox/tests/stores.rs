//! Every store behaves the same: offsets, reads, retention, retries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jim_inbox::{Append, Appended, Inbox, Retention, StoreKind};
use jim_protocol::Command;

fn append<'a>(
    body: &'a Bytes,
    sender: Option<&'a str>,
    client_msg_id: Option<&'a str>,
    id: u64,
) -> Append<'a> {
    Append {
        cmd: Command::C2G,
        body,
        except: Some(9),
        sender,
        client_msg_id,
        message_id: id,
    }
}

/// How often a test checks a store that must change with time.
const POLL: Duration = Duration::from_millis(50);

fn users(names: &[&str]) -> Vec<Arc<str>> {
    names.iter().map(|&n| n.into()).collect()
}

/// What keeps a store's backing alive for a test: a directory, a Redis.
#[allow(dead_code)] // held, never read
enum Backing {
    None,
    Dir(tempfile::TempDir),
    Redis(jim_test_util::redis::RedisServer),
}

async fn stores(retention: Retention) -> Vec<(Inbox, Backing)> {
    let dir = tempfile::tempdir().unwrap();
    let disk = StoreKind::Disk {
        dir: dir.path().to_path_buf(),
    };
    let disk = Inbox::open(&disk, retention, Default::default()).await.unwrap();
    let redis = jim_test_util::redis::RedisServer::start().await;
    let kind = StoreKind::Redis { url: redis.url() };
    let shared = Inbox::open(&kind, retention, Default::default()).await.unwrap();
    vec![
        (Inbox::memory(retention), Backing::None),
        (disk, Backing::Dir(dir)),
        (shared, Backing::Redis(redis)),
    ]
}

#[tokio::test]
async fn offsets_count_from_one_per_user_and_reads_return_what_was_appended() {
    for (inbox, _dir) in stores(Retention::default()).await {
        let team = users(&["alice", "bob"]);
        for i in 1..=3u64 {
            let body = Bytes::from(format!("m{i}"));
            let appended = inbox
                .append(team.iter(), &append(&body, Some("alice"), None, i))
                .await
                .unwrap();
            let offset = i as u32;
            assert_eq!(
                appended,
                Appended::Stored {
                    offsets: vec![offset, offset],
                    sender_offset: Some(offset)
                },
                "{inbox:?}"
            );
        }
        let body = Bytes::from_static(b"only bob");
        inbox
            .append(users(&["bob"]).iter(), &append(&body, None, None, 4))
            .await
            .unwrap();

        let read = inbox.read("bob", 1, 10).await.unwrap();
        let got: Vec<_> = read.entries.iter().map(|e| (e.offset, e.body.clone())).collect();
        assert_eq!(
            got,
            vec![(2, Bytes::from("m2")), (3, Bytes::from("m3")), (4, body.clone())]
        );
        assert_eq!(
            (read.entries[0].cmd, read.entries[0].except),
            (Command::C2G, Some(9))
        );
        assert_eq!(
            inbox.read("bob", 0, 2).await.unwrap().entries.len(),
            2,
            "at most max"
        );
        assert!(inbox.read("bob", 4, 10).await.unwrap().entries.is_empty());
        let state = inbox.state("bob").await.unwrap();
        assert_eq!((state.oldest, state.head, state.held), (1, 4, 4));
        assert_eq!(state.epoch, read.epoch);
        let nobody = inbox.state("carol").await.unwrap();
        assert_eq!((nobody.oldest, nobody.head, nobody.held), (1, 0, 0));
    }
}

#[tokio::test]
async fn retention_by_count_keeps_the_newest_and_never_reuses_an_offset() {
    let retention = Retention {
        max_entries: 3,
        ..Retention::default()
    };
    for (inbox, _dir) in stores(retention).await {
        let bob = users(&["bob"]);
        for i in 1..=5u64 {
            let body = Bytes::from(format!("m{i}"));
            inbox
                .append(bob.iter(), &append(&body, None, None, i))
                .await
                .unwrap();
        }
        let state = inbox.state("bob").await.unwrap();
        assert_eq!((state.oldest, state.head, state.held), (3, 5, 3), "{inbox:?}");
        let offsets: Vec<_> = inbox
            .read("bob", 0, 10)
            .await
            .unwrap()
            .entries
            .iter()
            .map(|e| e.offset)
            .collect();
        assert_eq!(offsets, vec![3, 4, 5]);
    }
}

#[tokio::test]
async fn retention_by_age_drops_old_entries() {
    let retention = Retention {
        ttl: Duration::from_millis(300),
        ..Retention::default()
    };
    for (inbox, _dir) in stores(retention).await {
        let body = Bytes::from_static(b"soon gone");
        inbox
            .append(users(&["bob"]).iter(), &append(&body, None, None, 1))
            .await
            .unwrap();
        assert_eq!(inbox.read("bob", 0, 10).await.unwrap().entries.len(), 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !inbox.read("bob", 0, 10).await.unwrap().entries.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{inbox:?} kept an entry past its age"
            );
            tokio::time::sleep(POLL).await;
        }
        let head = inbox.state("bob").await.unwrap().head;
        let body = Bytes::from_static(b"next");
        let again = inbox
            .append(users(&["bob"]).iter(), &append(&body, None, None, 2))
            .await
            .unwrap();
        assert_eq!(
            again,
            Appended::Stored {
                offsets: vec![head + 1],
                sender_offset: None
            }
        );
    }
}

#[tokio::test]
async fn a_retry_within_the_window_is_acked_as_the_original_and_not_stored() {
    for (inbox, _dir) in stores(Retention::default()).await {
        let team = users(&["alice", "bob"]);
        let body = Bytes::from_static(b"once");
        let first = inbox
            .append(team.iter(), &append(&body, Some("alice"), Some("c-1"), 10))
            .await
            .unwrap();
        assert_eq!(
            first,
            Appended::Stored {
                offsets: vec![1, 1],
                sender_offset: Some(1)
            }
        );
        let retry = inbox
            .append(team.iter(), &append(&body, Some("alice"), Some("c-1"), 11))
            .await
            .unwrap();
        assert_eq!(
            retry,
            Appended::Duplicate {
                message_id: 10,
                sender_offset: Some(1)
            },
            "{inbox:?}"
        );
        // The same id from another sender is another message.
        let other = inbox
            .append(team.iter(), &append(&body, Some("bob"), Some("c-1"), 12))
            .await
            .unwrap();
        assert_eq!(
            other,
            Appended::Stored {
                offsets: vec![2, 2],
                sender_offset: Some(2)
            }
        );
        assert_eq!(inbox.state("bob").await.unwrap().head, 2);
    }
    let short = Retention {
        dedupe_window: Duration::from_millis(100),
        ..Retention::default()
    };
    for (inbox, _dir) in stores(short).await {
        let bob = users(&["bob"]);
        let body = Bytes::from_static(b"again later");
        inbox
            .append(bob.iter(), &append(&body, Some("alice"), Some("c-2"), 1))
            .await
            .unwrap();
        // Retries are recognised for a span of time: let it pass.
        tokio::time::sleep(short.dedupe_window + POLL).await;
        let later = inbox
            .append(bob.iter(), &append(&body, Some("alice"), Some("c-2"), 2))
            .await
            .unwrap();
        assert_eq!(
            later,
            Appended::Stored {
                offsets: vec![2],
                sender_offset: None
            },
            "after the window: {inbox:?}"
        );
    }
}

#[tokio::test]
async fn a_retry_whose_original_is_still_being_stored_elsewhere_waits_for_it_and_holds_no_one_else_up() {
    let redis = jim_test_util::redis::RedisServer::start().await;
    let kind = StoreKind::Redis { url: redis.url() };
    let inbox = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    // Another gateway claimed this send and is storing it.
    let key = "jim:{alice}:retry:c-9";
    assert_eq!(
        jim_test_util::redis::command(&redis.url(), &["SET", key, "pending"]),
        "+OK"
    );
    let bob = users(&["bob"]);
    let body = Bytes::from_static(b"retried");
    let mut retry = inbox.submit(bob.iter(), &append(&body, Some("alice"), Some("c-9"), 5));
    let other = inbox
        .append(bob.iter(), &append(&body, Some("carol"), None, 6))
        .await
        .unwrap();
    assert_eq!(
        other,
        Appended::Stored {
            offsets: vec![1],
            sender_offset: None
        },
        "appends behind the retry go on"
    );
    assert!(
        tokio::time::timeout(POLL, &mut retry).await.is_err(),
        "the retry waits while its original is pending"
    );
    // The other gateway stored it as message 42, the sender's offset 7.
    assert_eq!(
        jim_test_util::redis::command(&redis.url(), &["SET", key, "42:7"]),
        "+OK"
    );
    assert_eq!(
        retry.await.unwrap(),
        Appended::Duplicate {
            message_id: 42,
            sender_offset: Some(7)
        }
    );
    assert_eq!(
        inbox.state("bob").await.unwrap().head,
        1,
        "the retry stored nothing"
    );
}

#[tokio::test]
async fn concurrent_retries_store_the_message_once() {
    for (inbox, _dir) in stores(Retention::default()).await {
        let bob = users(&["bob"]);
        let body = Bytes::from_static(b"raced");
        let tries = (0..8u64).map(|i| {
            let (inbox, bob, body) = (inbox.clone(), bob.clone(), body.clone());
            tokio::spawn(async move {
                inbox
                    .append(bob.iter(), &append(&body, Some("alice"), Some("same"), i))
                    .await
            })
        });
        let mut stored = 0;
        for t in tries {
            if matches!(t.await.unwrap().unwrap(), Appended::Stored { .. }) {
                stored += 1;
            }
        }
        assert_eq!(
            (stored, inbox.state("bob").await.unwrap().head),
            (1, 1),
            "{inbox:?}"
        );
    }
}

#[tokio::test]
async fn the_disk_store_survives_a_restart_with_its_epoch_and_groups_and_memory_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let kind = StoreKind::Disk {
        dir: dir.path().to_path_buf(),
    };
    let (epoch, body) = {
        let inbox = Inbox::open(&kind, Retention::default(), Default::default())
            .await
            .unwrap();
        let body = Bytes::from_static(b"kept");
        inbox
            .append(
                users(&["bob"]).iter(),
                &append(&body, Some("alice"), Some("k"), 5),
            )
            .await
            .unwrap();
        inbox.save_group("team", users(&["alice", "bob"])).await.unwrap();
        inbox.save_group("gone", users(&["x"])).await.unwrap();
        inbox.save_group("gone", Vec::new()).await.unwrap();
        (inbox.state("bob").await.unwrap().epoch, body)
    };
    let inbox = reopen(&kind).await;
    let read = inbox.read("bob", 0, 10).await.unwrap();
    assert_eq!(
        (read.epoch.clone(), read.entries[0].body.clone()),
        (epoch, body.clone())
    );
    assert_eq!(
        inbox.groups().await.unwrap(),
        vec![("team".into(), users(&["alice", "bob"]))]
    );
    let retry = inbox
        .append(
            users(&["bob"]).iter(),
            &append(&body, Some("alice"), Some("k"), 6),
        )
        .await
        .unwrap();
    assert_eq!(
        retry,
        Appended::Duplicate {
            message_id: 5,
            sender_offset: None
        },
        "retries are recognised across a restart"
    );
    let next = inbox
        .append(users(&["bob"]).iter(), &append(&body, None, None, 7))
        .await
        .unwrap();
    assert_eq!(
        next,
        Appended::Stored {
            offsets: vec![2],
            sender_offset: None
        }
    );

    let first = Inbox::memory(Retention::default())
        .state("bob")
        .await
        .unwrap()
        .epoch;
    let second = Inbox::memory(Retention::default())
        .state("bob")
        .await
        .unwrap()
        .epoch;
    assert_ne!(first, second, "a memory store's epoch is new with every process");
}

/// Opens the store again once the previous one has let go of it.
async fn reopen(kind: &StoreKind) -> Inbox {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Inbox::open(kind, Retention::default(), Default::default()).await {
            Ok(inbox) => return inbox,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("reopening: {e}"),
        }
    }
}

#[tokio::test]
async fn the_off_store_stores_nothing() {
    let inbox = Inbox::off();
    let body = Bytes::from_static(b"x");
    let appended = inbox
        .append(users(&["a", "b"]).iter(), &append(&body, Some("a"), Some("c"), 1))
        .await
        .unwrap();
    assert_eq!(
        appended,
        Appended::Stored {
            offsets: vec![0, 0],
            sender_offset: None
        }
    );
    assert!(inbox.read("a", 0, 10).await.unwrap().entries.is_empty());
    assert!(!inbox.is_on());
}

#[tokio::test]
async fn the_redis_store_rides_out_a_redis_restart_and_says_when_redis_lost_its_data() {
    let mut redis = jim_test_util::redis::RedisServer::start().await;
    let kind = StoreKind::Redis { url: redis.url() };
    let inbox = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    let body = Bytes::from_static(b"kept");
    inbox
        .append(
            users(&["bob"]).iter(),
            &append(&body, Some("alice"), Some("k"), 5),
        )
        .await
        .unwrap();
    inbox.save_group("team", users(&["alice", "bob"])).await.unwrap();
    let epoch = inbox.state("bob").await.unwrap().epoch;

    // Down: nothing is stored, and the caller is told.
    redis.kill().await;
    let down = inbox
        .append(users(&["bob"]).iter(), &append(&body, None, None, 6))
        .await;
    assert!(down.is_err(), "an append while Redis is down: {down:?}");

    // Back (its append-only file kept everything acknowledged): same epoch.
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let next = loop {
        match inbox
            .append(users(&["bob"]).iter(), &append(&body, None, None, 7))
            .await
        {
            Ok(next) => break next,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "redis never came back: {e}"
                );
                tokio::time::sleep(POLL).await;
            }
        }
    };
    assert_eq!(
        next,
        Appended::Stored {
            offsets: vec![2],
            sender_offset: None
        }
    );
    let read = inbox.read("bob", 0, 10).await.unwrap();
    assert_eq!((read.epoch.clone(), read.entries.len()), (epoch.clone(), 2));
    assert_eq!(
        inbox.groups().await.unwrap(),
        vec![("team".into(), users(&["alice", "bob"]))]
    );
    let retry = inbox
        .append(
            users(&["bob"]).iter(),
            &append(&body, Some("alice"), Some("k"), 8),
        )
        .await
        .unwrap();
    assert_eq!(
        retry,
        Appended::Duplicate {
            message_id: 5,
            sender_offset: None
        }
    );

    // Redis lost its data: a new epoch, offsets from 1 again.
    jim_test_util::redis::flush_all(&redis.url());
    let state = inbox.state("bob").await.unwrap();
    assert_ne!(state.epoch, epoch);
    assert_eq!((state.head, state.held), (0, 0));
}

#[tokio::test]
async fn the_redis_store_shards_inboxes_over_a_redis_cluster() {
    let cluster = jim_test_util::redis::RedisCluster::start().await;
    let kind = StoreKind::Redis { url: cluster.url() };
    let inbox = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    // Enough users for their inboxes to land on every node.
    let team: Vec<Arc<str>> = (0..30).map(|i| Arc::from(format!("user{i}"))).collect();
    for i in 1..=3u64 {
        let body = Bytes::from(format!("m{i}"));
        let stored = inbox
            .append(team.iter(), &append(&body, Some("user0"), None, i))
            .await
            .unwrap();
        assert_eq!(
            stored,
            Appended::Stored {
                offsets: vec![i as u32; team.len()],
                sender_offset: Some(i as u32)
            }
        );
    }
    for user in &team {
        let read = inbox.read(user, 1, 10).await.unwrap();
        let got: Vec<_> = read.entries.iter().map(|e| (e.offset, e.body.clone())).collect();
        assert_eq!(
            got,
            vec![(2, Bytes::from("m2")), (3, Bytes::from("m3"))],
            "{user}"
        );
        let state = inbox.state(user).await.unwrap();
        assert_eq!((state.head, state.held, state.epoch), (3, 3, read.epoch));
    }
    let body = Bytes::from_static(b"once");
    let first = inbox
        .append(team.iter().take(2), &append(&body, Some("user1"), Some("c"), 9))
        .await
        .unwrap();
    let retry = inbox
        .append(team.iter().take(2), &append(&body, Some("user1"), Some("c"), 10))
        .await
        .unwrap();
    assert_eq!(
        first,
        Appended::Stored {
            offsets: vec![4, 4],
            sender_offset: Some(4)
        }
    );
    assert_eq!(
        retry,
        Appended::Duplicate {
            message_id: 9,
            sender_offset: Some(4)
        }
    );
    inbox.save_group("team", team.clone()).await.unwrap();
    let groups = inbox.groups().await.unwrap();
    assert_eq!((groups.len(), groups[0].1.len()), (1, team.len()));
    // Every node holds some inbox.
    for node in &cluster.nodes {
        let keys = tokio::process::Command::new("redis-cli")
            .args(["-p", &node.port.to_string(), "dbsize"])
            .output()
            .await
            .unwrap();
        let count: u64 = String::from_utf8_lossy(&keys.stdout).trim().parse().unwrap();
        assert!(count > 0, "node {} holds nothing", node.port);
    }
}

/// A sender's appends get their offsets in the order they were submitted,
/// whoever waits for them first, and a retry's claim (a Redis round trip
/// more) does not let the next one overtake it.
#[tokio::test]
async fn a_senders_appends_are_stored_in_the_order_submitted_whichever_is_awaited_first() {
    for (inbox, _backing) in stores(Retention::default()).await {
        let bob = users(&["bob"]);
        let bodies: Vec<Bytes> = (1..=3).map(|i| Bytes::from(format!("m{i}"))).collect();
        let first = inbox.submit(bob.iter(), &append(&bodies[0], Some("alice"), Some("r-1"), 1));
        let second = inbox.submit(bob.iter(), &append(&bodies[1], Some("alice"), None, 2));
        let third = inbox.submit(bob.iter(), &append(&bodies[2], Some("alice"), None, 3));
        // Awaited last first.
        let third = third.await.unwrap();
        let second = second.await.unwrap();
        let first = first.await.unwrap();
        let offset = |appended: Appended| match appended {
            Appended::Stored { offsets, .. } => offsets[0],
            other => panic!("stored, not {other:?}"),
        };
        assert_eq!(
            (offset(first), offset(second), offset(third)),
            (1, 2, 3),
            "{inbox:?}"
        );
        let read = inbox.read("bob", 0, 10).await.unwrap();
        let stored: Vec<&[u8]> = read.entries.iter().map(|e| &e.body[..]).collect();
        assert_eq!(stored, vec![&b"m1"[..], b"m2", b"m3"], "{inbox:?}");
    }
}

/// Bytes under `dir`, every file.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// A message to 2,000 users costs 2,000 small entries and its body once,
/// on disk and in Redis, and every member reads the whole body back.
#[tokio::test]
async fn a_group_message_is_stored_once_whatever_the_group_size() {
    let members: Vec<Arc<str>> = (0..2_000).map(|i| format!("member{i}").into()).collect();
    let body = Bytes::from(format!(
        r#"{{"type":"text","data":{{"content":"{}"}}}}"#,
        "x".repeat(20_000)
    ));
    let check_reads = |inbox: Inbox| {
        let (members, body) = (members.clone(), body.clone());
        async move {
            for user in [&members[0], &members[1_999]] {
                let read = inbox.read(user, 0, 10).await.unwrap();
                assert_eq!(read.entries.len(), 1);
                assert_eq!(read.entries[0].body, body);
            }
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let kind = StoreKind::Disk {
        dir: dir.path().to_path_buf(),
    };
    let disk = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    let before = dir_bytes(dir.path());
    disk.append(members.iter(), &append(&body, None, None, 77))
        .await
        .unwrap();
    let grew = dir_bytes(dir.path()) - before;
    // 2,000 copies would be 40 MB.
    assert!(grew < 1_000_000, "the disk store grew by {grew} bytes");
    check_reads(disk.clone()).await;
    drop(disk);
    check_reads(reopen(&kind).await).await;

    let redis = jim_test_util::redis::RedisServer::start().await;
    let kind = StoreKind::Redis { url: redis.url() };
    let shared = Inbox::open(&kind, Retention::default(), Default::default())
        .await
        .unwrap();
    shared
        .append(members.iter(), &append(&body, None, None, 78))
        .await
        .unwrap();
    // A member's inbox holds a small entry, not the 20 KB body.
    let usage = jim_test_util::redis::command(&redis.url(), &["MEMORY", "USAGE", "jim:{member7}:in"]);
    let bytes: u64 = usage.trim_start_matches(':').parse().unwrap();
    // (An empty stream's own structure is about 4.5 KB.)
    assert!(bytes < 10_000, "a member's stream takes {bytes} bytes");
    check_reads(shared).await;
}

/// However many sessions a sender has, its store keeps at most
/// `dedupe_per_user` of its `client_msg_id`s: the oldest is forgotten
/// first (a retry of it is a new message), the newest still recognised.
#[tokio::test]
async fn a_sender_keeps_at_most_dedupe_per_user_retries_the_oldest_forgotten_first() {
    let retention = Retention {
        dedupe_per_user: 3,
        ..Retention::default()
    };
    for (inbox, _backing) in stores(retention).await {
        let bob = users(&["bob"]);
        let body = Bytes::from_static(b"{}");
        for (i, id) in ["c1", "c2", "c3", "c4", "c5"].into_iter().enumerate() {
            let stored = inbox
                .append(
                    bob.iter(),
                    &append(&body, Some("alice"), Some(id), 100 + i as u64),
                )
                .await
                .unwrap();
            assert!(matches!(stored, Appended::Stored { .. }), "{inbox:?} {id}");
        }
        for (id, original) in [("c5", 104), ("c3", 102)] {
            let again = inbox
                .append(bob.iter(), &append(&body, Some("alice"), Some(id), 200))
                .await
                .unwrap();
            assert!(
                matches!(again, Appended::Duplicate { message_id, .. } if message_id == original),
                "{inbox:?} {id}: {again:?}"
            );
        }
        let forgotten = inbox
            .append(bob.iter(), &append(&body, Some("alice"), Some("c1"), 300))
            .await
            .unwrap();
        assert!(
            matches!(forgotten, Appended::Stored { .. }),
            "{inbox:?}: {forgotten:?}"
        );
        // Another sender's are its own.
        let other = inbox
            .append(bob.iter(), &append(&body, Some("carol"), Some("c1"), 400))
            .await
            .unwrap();
        assert!(matches!(other, Appended::Stored { .. }), "{inbox:?}");
    }
}

/// Entries stored before each entry was kept pre-joined for reads (fields
/// `c`, `e`, `t`, `b`) are read as before, in order with newer ones, and
/// still trimmed by age.
#[tokio::test]
async fn the_redis_store_reads_entries_written_in_the_earlier_layout() {
    let redis = jim_test_util::redis::RedisServer::start().await;
    let url = redis.url();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (long_ago, recent) = ((now - 3_600_000).to_string(), now.to_string());
    for (id, at, body) in [("1-0", &long_ago, "old"), ("2-0", &recent, "kept")] {
        let added = jim_test_util::redis::command(
            &url,
            &[
                "XADD",
                "jim:{bob}:in",
                id,
                "c",
                "B101",
                "e",
                "0",
                "t",
                at,
                "b",
                body,
            ],
        );
        assert!(added.starts_with('$'), "{added}");
    }
    assert_eq!(
        jim_test_util::redis::command(&url, &["HSET", "jim:{bob}:meta", "epoch", "e1", "head", "2"]),
        ":2"
    );
    let retention = Retention {
        ttl: Duration::from_secs(60),
        ..Retention::default()
    };
    let inbox = Inbox::open(
        &StoreKind::Redis { url: url.clone() },
        retention,
        Default::default(),
    )
    .await
    .unwrap();
    let read = |inbox: Inbox| async move {
        let read = inbox.read("bob", 0, 10).await.unwrap();
        let seen: Vec<(u32, Command, Bytes)> = read
            .entries
            .into_iter()
            .map(|e| (e.offset, e.cmd, e.body))
            .collect();
        (read.epoch, seen)
    };
    let (epoch, seen) = read(inbox.clone()).await;
    assert_eq!(&*epoch, "e1");
    assert_eq!(
        seen,
        [(2, Command::C2C, Bytes::from_static(b"kept"))],
        "the hour-old entry is past the minute's retention"
    );
    let body = Bytes::from_static(b"new");
    let stored = inbox
        .append(users(&["bob"]).iter(), &append(&body, Some("alice"), None, 9))
        .await
        .unwrap();
    assert!(
        matches!(stored, Appended::Stored { ref offsets, .. } if offsets == &[3]),
        "{stored:?}"
    );
    let (_, seen) = read(inbox.clone()).await;
    assert_eq!(
        seen,
        [
            (2, Command::C2C, Bytes::from_static(b"kept")),
            (3, Command::C2G, Bytes::from_static(b"new"))
        ]
    );
    // The append trimmed the old-layout entry past the retention.
    assert_eq!(
        jim_test_util::redis::command(&url, &["XLEN", "jim:{bob}:in"]),
        ":2"
    );
}
