//! A minimal `jim1` relay over TCP: the floor a gateway is measured against.
//!
//! It accepts any token as the user id (`B002`), forwards each `B101`
//! frame's bytes unchanged to the connection of its `receiver_id`, and acks
//! the sender. No validation, no stamping, no ids, no limits: what is left
//! is the cost of the sockets and the scheduling. Run under the same
//! harness as the gateway, on the same machine, it shows how much of a
//! latency or CPU figure is the gateway's own (see docs/benchmarks.md).
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
use jim_protocol::{Command, Frame, FrameCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frames queued for one connection before the relay drops more.
const QUEUE: usize = 4096;

type Registry = Arc<RwLock<HashMap<String, mpsc::Sender<Bytes>>>>;

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
async fn relay(mut stream: TcpStream, registry: Registry) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let codec = FrameCodec::with_max_body(64 * 1024);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut user = None;
    loop {
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
                loop {
                    let frame = match codec.decode_from(&mut input) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        // Not jim1: nothing sensible to relay.
                        Err(_) => return unregister(&registry, user),
                    };
                    match frame.cmd {
                        Command::Auth => {
                            let id = token(&frame.body).unwrap_or_default();
                            registry
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(id.clone(), tx.clone());
                            user = Some(id);
                            let _ = codec.encode_into(&Frame::new(Command::AuthOk, frame.seq, "{}"), &mut output);
                        }
                        Command::C2C => {
                            if let Some(to) = receiver(&frame.body) {
                                let peer = registry.read().unwrap_or_else(|e| e.into_inner()).get(to).cloned();
                                if let (Some(peer), Ok(bytes)) = (peer, frame.to_bytes()) {
                                    let _ = peer.try_send(bytes);
                                }
                            }
                            let ack = Frame::new(Command::C2C, frame.seq, r#"{"type":"ack"}"#);
                            let _ = codec.encode_into(&ack, &mut output);
                        }
                        _ => {}
                    }
                }
            }
            Some(bytes) = rx.recv() => {
                output.extend_from_slice(&bytes);
                while let Ok(bytes) = rx.try_recv() {
                    output.extend_from_slice(&bytes);
                }
            }
        }
        // Everything this wake-up produced, in one write.
        if !output.is_empty() && stream.write_all(&output.split()).await.is_err() {
            break;
        }
    }
    unregister(&registry, user);
}

fn unregister(registry: &Registry, user: Option<String>) {
    if let Some(user) = user {
        registry.write().unwrap_or_else(|e| e.into_inner()).remove(&user);
    }
}

/// The `token` field of an authentication body.
fn token(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value.get("token")?.as_str()?.to_owned())
}

/// The `receiver_id` of a message, found by scanning: a relay parses nothing.
fn receiver(body: &[u8]) -> Option<&str> {
    const FIELD: &[u8] = br#""receiver_id":""#;
    let start = body.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let len = body[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&body[start..start + len]).ok()
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
