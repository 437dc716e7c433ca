//! Graceful shutdown.

use jim_protocol::Command;

use jim_e2e::*;
use jim_test_util::*;

#[tokio::test]
async fn shutdown_sends_a999_1001_to_every_session_after_what_was_queued() {
    let gw = Gw::start().await;
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    let mut anonymous = gw.raw(Kind::Tcp).await;
    alice.send_message(Command::C2C, 1, "bob", "last words").await;
    let tcp = gw.tcp;
    let stopped = tokio::spawn(gw.shutdown());
    assert_eq!(json(&bob.recv().await)["data"]["content"], "last words");
    for raw in [&mut alice, &mut bob, &mut anonymous] {
        assert_eq!(raw.expect_close(1001).await, "server shutting down");
    }
    assert!(
        stopped.await.unwrap(),
        "every connection closed within the grace period"
    );
    assert!(
        tokio::net::TcpStream::connect(tcp).await.is_err(),
        "the listener is closed"
    );
}

/// Local mode has one process: killed, it takes every session with it.
/// Stopped (SIGTERM, or `shutdown`), it delivers everything it acked
/// before the sessions close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_stopped_mid_traffic_delivers_everything_it_acked() {
    let gw = Gw::with(|c| {
        c.limits.messages_per_sec = 100_000;
        c.limits.message_burst = 100_000;
    })
    .await;
    let bob = gw.user(Kind::Ws, "bob").await;
    let tcp = gw.tcp;
    let seen = jim_e2e::stopping::stop_mid_traffic(tcp, bob, gw.shutdown()).await;
    eprintln!("local, stopped mid-traffic: {seen:?}");
    assert_eq!(seen.lost, 0);
    assert!(seen.stopped, "closed within the grace period");
}

/// A message still being routed when the gateway is told to stop (here,
/// held by the before-send hook) is acked to its sender and reaches its
/// recipient before the recipient's `A999`: no session says goodbye while
/// another may still route to it.
#[tokio::test]
async fn a_message_in_flight_at_shutdown_reaches_its_recipient_before_the_goodbye() {
    let gw = crate::hooks::Hooked::start(|config, receiver| {
        config.hooks.before_send_url = Some(receiver.url("/hook"));
        // Held longer than the silence below: the hook does not time out.
        config.hooks.before_send_timeout_ms = 10_000;
    })
    .await;
    gw.receiver.answer(jim_e2e::receiver::HookAnswer::Held);
    let mut alice = gw.user(Kind::Tcp, "alice").await;
    let mut bob = gw.user(Kind::Ws, "bob").await;
    let crate::hooks::Hooked { running, receiver } = gw;
    alice.send_body(Command::C2C, 7, &text("bob", "held")).await;
    receiver.next_hook().await;

    let stopping = tokio::spawn(running.shutdown());
    // Bob's session is stopping too, but alice's message to him is not answered yet.
    bob.expect_silence().await;
    receiver.release();
    assert_ack(&alice.recv().await, Command::C2C, 7, "bob");
    assert_eq!(json(&bob.recv().await)["data"]["content"], "held");
    assert_eq!(bob.expect_close(1001).await, "server shutting down");
    assert_eq!(alice.expect_close(1001).await, "server shutting down");
    assert!(stopping.await.unwrap(), "closed within the grace period");
}
