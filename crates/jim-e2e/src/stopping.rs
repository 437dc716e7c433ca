//! A gateway stopped in the middle of traffic, in any mode: what it acked
//! and what its recipient got before its goodbye.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;

use jim_protocol::Command;
use jim_test_util::{Raw, WAIT, json, text};

/// What [`stop_mid_traffic`] saw.
#[derive(Debug)]
pub struct MidTraffic<T> {
    /// Messages acked to their senders.
    pub acked: usize,
    /// Messages the recipient got before its `A999` 1001.
    pub delivered: usize,
    /// Acked messages the recipient did not get before its `A999`.
    pub lost: usize,
    /// What `stop` returned.
    pub stopped: T,
}

/// Four users send `B101`s to `bob` over the gateway's TCP listener `tcp`,
/// each waiting for its reply before the next, until the gateway says
/// goodbye; once 200 were acked, `stop` stops the gateway. `bob` (logged
/// in on that gateway) reads until his `A999`, which must be 1001.
pub async fn stop_mid_traffic<T>(
    tcp: SocketAddr,
    mut bob: Raw,
    stop: impl Future<Output = T>,
) -> MidTraffic<T> {
    let (acks, mut acking) = tokio::sync::mpsc::unbounded_channel();
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let acks = acks.clone();
            tokio::spawn(async move {
                let mut raw = Raw::tcp(tcp).await;
                raw.auth(&format!("alice{i}")).await;
                let mut acked = Vec::new();
                for seq in 1u32.. {
                    raw.send_body(Command::C2C, seq, &text("bob", "m")).await;
                    match raw.next().await {
                        Ok(reply) if json(&reply)["type"] == "ack" => {
                            acked.push(json(&reply)["data"]["message_id"].as_str().unwrap().to_owned());
                            let _ = acks.send(());
                        }
                        // Its goodbye, or the connection's end.
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    let reading = tokio::spawn(async move {
        let mut delivered = HashSet::new();
        loop {
            let frame = bob.recv().await;
            if frame.cmd == Command::ServerClose {
                let code = jim_model::Status::from_slice(&frame.body).unwrap().code;
                assert_eq!(code, 1001, "bob's goodbye");
                return delivered;
            }
            delivered.insert(json(&frame)["data"]["message_id"].as_str().unwrap().to_owned());
        }
    });
    for _ in 0..200 {
        tokio::time::timeout(WAIT, acking.recv())
            .await
            .expect("traffic is acked")
            .unwrap();
    }
    let stopped = stop.await;
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.unwrap());
    }
    let delivered = reading.await.unwrap();
    let lost = acked.iter().filter(|id| !delivered.contains(*id)).count();
    MidTraffic {
        acked: acked.len(),
        delivered: delivered.len(),
        lost,
        stopped,
    }
}
