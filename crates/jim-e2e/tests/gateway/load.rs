//! Many clients at once, a client that never reads, and the connection limit.

use std::collections::HashSet;

use jim_client::Incoming;
use jim_model::{Message, Text};
use jim_protocol::Command;
use jim_router::{Directory, Router};

use crate::session::wait_until;
use jim_e2e::*;
use jim_test_util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_slow_the_others_and_is_closed() {
    let gw = Gw::with(|c| {
        c.limits.outbox_frames = 64;
        c.limits.messages_per_sec = 1_000_000;
        c.limits.message_burst = 1_000_000;
    })
    .await;
    gw.router
        .add_members(
            "room",
            &["alice".into(), "bob".into(), "carol".into(), "stuck".into()],
        )
        .await
        .unwrap();
    // `stuck` authenticates, then never reads again.
    let mut stuck = gw.user(Kind::Tcp, "stuck").await;
    let mut bob = gw.client(Kind::Tcp, "bob").await;
    let mut carol = gw.client(Kind::Ws, "carol").await;
    let alice = gw.client(Kind::Tcp, "alice").await;

    const N: usize = 600;
    let filler = "x".repeat(30_000);
    let readers: Vec<_> = [(&mut bob, "bob"), (&mut carol, "carol")]
        .into_iter()
        .map(|(client, _)| async move {
            let mut got = Vec::with_capacity(N);
            while got.len() < N {
                match client.next().await {
                    Some(Incoming::Message {
                        message: Message::Text(text),
                        ..
                    }) => {
                        got.push(text.extra["n"].as_u64().unwrap() as usize);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            got
        })
        .collect();
    let sender = async {
        for n in 0..N {
            let mut text = Text::new("room", filler.clone());
            text.extra.insert("n".into(), n.into());
            alice
                .send(Command::C2G, &Message::Text(text))
                .await
                .expect("every message is acked");
        }
    };
    let (_, received) = tokio::join!(sender, futures_util::future::join_all(readers));
    for got in received {
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "every message, once, in order");
    }
    wait_until(|| gw.router.hub().sessions_of("stuck").is_empty()).await;
    let (_, metrics) = http(gw.admin, "GET", "/metrics", None, None).await;
    assert!(metrics.contains("jim_slow_consumer_closes_total 1"), "{metrics}");
    // What the stalled client finally reads ends with the connection closing.
    let mut frames = 0;
    while stuck.next().await.is_ok() {
        frames += 1;
    }
    assert!(frames < N, "the stalled client was cut off ({frames} frames)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_exchange_messages_exactly_once() {
    const CLIENTS: usize = 1000;
    const EACH: usize = 5;
    let gw = Gw::start().await;
    let connects = (0..CLIENTS).map(|i| {
        let kind = if i % 2 == 0 { Kind::Tcp } else { Kind::Ws };
        let gw = &gw;
        async move { gw.client(kind, &format!("u{i}")).await }
    });
    let clients = futures_util::future::join_all(connects).await;
    let runs = clients.into_iter().enumerate().map(|(i, mut client)| async move {
        let to = format!("u{}", (i + 1) % CLIENTS);
        for k in 0..EACH {
            let text = Text::new(to.as_str(), format!("{i}:{k}"));
            client.send(Command::C2C, &Message::Text(text)).await.unwrap();
        }
        let mut got = HashSet::new();
        while got.len() < EACH {
            let (_, message) = tokio::time::timeout(WAIT, client.next_message())
                .await
                .unwrap()
                .unwrap();
            let Message::Text(text) = message else {
                panic!("a text")
            };
            assert!(got.insert(text.content.clone()), "duplicate {}", text.content);
        }
        let from = (i + CLIENTS - 1) % CLIENTS;
        let expected: HashSet<String> = (0..EACH).map(|k| format!("{from}:{k}")).collect();
        assert_eq!(got, expected);
        client
    });
    let clients = futures_util::future::join_all(runs).await;
    // Nothing more arrives: exactly once.
    for mut client in clients {
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(1), client.next())
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn connections_above_the_limit_are_told_and_closed() {
    let gw = Gw::with(|c| c.limits.max_connections = 2).await;
    let mut first = gw.user(Kind::Tcp, "a").await;
    let _second = gw.user(Kind::Ws, "b").await;
    // Over TCP: A999 1008.
    let mut third = gw.raw(Kind::Tcp).await;
    assert_eq!(third.expect_close(1008).await, "too many connections");
    // A WebSocket connection is counted from its TCP accept, so the upgrade
    // is refused: 503, saying why.
    let (status, body) = ws_refusal(&gw.ws_url()).await;
    assert_eq!((status, body.as_str()), (503, "too many connections\n"));
    first.send_body(Command::ClientClose, 1, "").await;
    first.expect_close(1000).await;
    // The freed slot is taken by the next connection.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut next = gw.raw(Kind::Tcp).await;
        next.send_body(Command::Ping, 1, "").await;
        match next.next().await {
            Ok(frame) if frame.cmd == Command::Pong => break,
            _ => assert!(tokio::time::Instant::now() < deadline, "the slot was never freed"),
        }
    }
}
