//! Graceful shutdown.

use jim_protocol::Command;

use crate::support::*;

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
