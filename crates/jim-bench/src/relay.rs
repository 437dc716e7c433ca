//! A minimal `jim1` relay over TCP: the floor a gateway is measured against.
//!
//! It accepts any token as the user id (`B002`), forwards each `B101`
//! frame's bytes unchanged to the connection of its `receiver_id`, and acks
//! the sender. No validation, no stamping, no ids, no inbox, no limits, no
//! metrics: what is left is the cost of the sockets and the scheduling.
//! It reads and writes as the gateway does (whatever the socket holds in one
//! read, one write per wake-up), so that the two differ only by the work
//! between. Run under the same harness as the gateway, on the same machine,
//! it shows how much of a latency or CPU figure is the gateway's own (see
//! docs/benchmarks.md, "Calibration").
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tokio::spawn(jim_bench::relay::serve(listener));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use jim_protocol::{Command, HEADER_LEN, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::peers::{receiver, token};

/// Frames queued for one connection before the relay drops more.
const QUEUE: usize = 4096;

/// Room kept free in a connection's read buffer: a read takes whatever
/// the socket holds, not a few bytes at a time.
const READ_ROOM: usize = 16 * 1024;

/// The body of every ack.
const ACK: &[u8] = br#"{"type":"ack"}"#;

type Registry = Arc<RwLock<HashMap<Box<str>, mpsc::Sender<Bytes>>>>;

/// Serves connections from `listener` until accepting fails.
///
/// # Errors
/// Accepting failed.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    let registry = Registry::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(relay(stream, Arc::clone(&registry)));
    }
}

/// One connection: reads frames, forwards them, writes what others sent.
///
/// Per message: the header is parsed, `receiver_id` found by a byte scan,
/// the receiver's queue looked up under a read lock, and the frame's bytes,
/// as they were read (no copy), queued to it; the sender's ack is 16 + 14
/// bytes appended to its output. Each wake-up ends with at most one write
/// of everything it produced.
async fn relay(mut stream: TcpStream, registry: Registry) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let mut input = BytesMut::with_capacity(READ_ROOM);
    let mut output = BytesMut::with_capacity(READ_ROOM);
    let mut user: Option<Box<str>> = None;
    loop {
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
                while let Some(header) = match Header::parse(&input) {
                    Ok(header) => header,
                    // Not jim1: nothing sensible to relay.
                    Err(_) => return unregister(&registry, user),
                } {
                    let frame_len = HEADER_LEN + header.len as usize;
                    if input.len() < frame_len {
                        break;
                    }
                    let frame = input.split_to(frame_len).freeze();
                    let body = &frame[HEADER_LEN..];
                    match header.cmd {
                        Command::Auth => {
                            let id: Box<str> = token(body).unwrap_or_default().into();
                            registry
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(id.clone(), tx.clone());
                            user = Some(id);
                            reply(&mut output, Command::AuthOk, header.seq, b"{}");
                        }
                        Command::C2C => {
                            if let Some(to) = receiver(body) {
                                let peer = registry.read().unwrap_or_else(|e| e.into_inner()).get(to).cloned();
                                if let Some(peer) = peer {
                                    let _ = peer.try_send(frame);
                                }
                            }
                            reply(&mut output, Command::C2C, header.seq, ACK);
                        }
                        _ => {}
                    }
                }
                input.reserve(READ_ROOM);
            }
            Some(bytes) = rx.recv() => {
                output.extend_from_slice(&bytes);
                while let Ok(bytes) = rx.try_recv() {
                    output.extend_from_slice(&bytes);
                }
            }
        }
        // Everything this wake-up produced, in one write; the buffer is kept.
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                break;
            }
            output.clear();
        }
    }
    unregister(&registry, user);
}

/// Appends a reply frame to `output`.
fn reply(output: &mut BytesMut, cmd: Command, seq: u32, body: &[u8]) {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    output.extend_from_slice(&Header { cmd, seq, len }.to_bytes());
    output.extend_from_slice(body);
}

fn unregister(registry: &Registry, user: Option<Box<str>>) {
    if let Some(user) = user {
        registry.write().unwrap_or_else(|e| e.into_inner()).remove(&user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_is_found_without_parsing() {
        let body = br#"{"type":"text","data":{"receiver_id":"bench-u7","content":"hi"}}"#;
        assert_eq!(receiver(body), Some("bench-u7"));
        assert_eq!(receiver(b"{}"), None);
        assert_eq!(token(br#"{"token":"u1","device":"d"}"#).as_deref(), Some("u1"));
    }
}
