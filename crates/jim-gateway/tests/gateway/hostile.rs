//! Hostile and faulty clients against an in-process gateway: pipelined
//! bursts, floods, clients that never read. Every frame is answered exactly
//! once, and nobody else notices.

use std::collections::HashMap;

use jim_protocol::{Command, Frame};

use crate::support::*;

both_transports!(a_pipelined_burst_of_pings_gets_every_pong,);

/// Sends `frames` back to back in one write (TCP) or without waiting
/// between messages (WebSocket), and collects `expected` replies.
async fn burst(raw: &mut Raw, frames: &[Frame], expected: usize) -> Vec<Frame> {
    let mut wire = Vec::new();
    for frame in frames {
        wire.extend_from_slice(&frame.to_bytes().unwrap());
    }
    match raw.kind() {
        Kind::Tcp => raw.send_bytes(&wire).await,
        Kind::Ws => {
            for frame in frames {
                raw.send(frame.clone()).await;
            }
        }
    }
    let mut replies = Vec::with_capacity(expected);
    while replies.len() < expected {
        replies.push(raw.recv().await);
    }
    replies
}

/// How many replies each `seq` got.
fn answers(replies: &[Frame]) -> HashMap<u32, usize> {
    let mut count = HashMap::new();
    for reply in replies {
        *count.entry(reply.seq).or_default() += 1;
    }
    count
}

async fn a_pipelined_burst_of_pings_gets_every_pong(kind: Kind) {
    let gw = Gw::start().await;
    let mut raw = gw.user(kind, "alice").await;
    // More than two read batches of the session (64 frames each).
    let pings: Vec<Frame> = (100..400).map(|seq| Frame::new(Command::Ping, seq, "")).collect();
    let pongs = burst(&mut raw, &pings, pings.len()).await;
    assert!(pongs.iter().all(|p| p.cmd == Command::Pong));
    let count = answers(&pongs);
    assert!((100..400).all(|seq| count.get(&seq) == Some(&1)), "{count:?}");
    raw.expect_silence().await;
}
