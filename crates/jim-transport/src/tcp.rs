//! `jim1` frames on a TCP stream.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use jim_protocol::{Frame, FrameCodec};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{Connection, Incoming, Link, TransportError};

/// Turns an accepted TCP stream into a [`Connection`] that refuses bodies
/// above `max_body`.
///
/// Sets `TCP_NODELAY`: frames are written in whole batches already, and
/// chat wants latency.
pub fn connection(stream: TcpStream, peer: SocketAddr, max_body: usize) -> Connection {
    let _ = stream.set_nodelay(true);
    Connection {
        link: Link::Tcp(TcpLink {
            stream,
            buf: BytesMut::new(),
            codec: FrameCodec::with_max_body(max_body),
        }),
        peer,
        kind: jim_protocol::Transport::Tcp,
    }
}

/// Frames on a TCP stream.
#[derive(Debug)]
pub struct TcpLink {
    stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl TcpLink {
    /// The next frame, or [`Incoming::Closed`] at a clean end of stream;
    /// as a poll.
    ///
    /// # Errors
    /// A fatal protocol error (bad magic, oversized length: checked from the
    /// header before the body is read), a stream cut mid-frame, or I/O.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, TransportError>> {
        loop {
            if let Some(frame) = self.codec.decode_from(&mut self.buf)? {
                return Poll::Ready(Ok(Incoming::Frame(frame)));
            }
            if ready!(crate::fill::tcp(&self.stream, cx, &mut self.buf))? == 0 {
                return Poll::Ready(if self.buf.is_empty() {
                    Ok(Incoming::Closed)
                } else {
                    Err(TransportError::Truncated {
                        buffered: self.buf.len(),
                    })
                });
            }
        }
    }

    /// The next frame if the read buffer already holds it.
    ///
    /// # Errors
    /// A fatal protocol error.
    pub fn try_read(&mut self) -> Result<Option<Incoming>, TransportError> {
        Ok(self.codec.decode_from(&mut self.buf)?.map(Incoming::Frame))
    }

    /// Reads and drops input until end of stream or an error.
    pub async fn discard(&mut self) {
        self.buf = BytesMut::new();
        // On the heap: an array here would sit in every connection's future.
        let mut scratch = vec![0u8; 4096];
        loop {
            if self.stream.readable().await.is_err() {
                return;
            }
            match self.stream.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Writes every frame with one `write_all` of one buffer.
    ///
    /// The buffer lives only for the call, so a quiet connection holds none.
    ///
    /// # Errors
    /// I/O, or a frame above the maximum body (a bug of the caller).
    pub async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), TransportError> {
        if frames.is_empty() {
            return Ok(());
        }
        let buf = encode_batch(&mut self.codec, frames)?;
        self.stream.write_all(&buf).await?;
        Ok(())
    }

    /// Shuts the write side down: the client reads end of stream.
    ///
    /// # Errors
    /// I/O.
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

/// Writes `bytes` from `written` on to `stream`, advancing `written`: a
/// poll, so that the write's future holds no more than its position.
#[cfg(feature = "ws")]
pub(crate) fn poll_write_all(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bytes: &[u8],
    written: &mut usize,
) -> Poll<io::Result<()>> {
    while *written < bytes.len() {
        ready!(stream.poll_write_ready(cx))?;
        match stream.try_write(&bytes[*written..]) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
}

/// Every frame in one buffer, for one write.
pub(crate) fn encode_batch(codec: &mut FrameCodec, frames: &[Frame]) -> Result<BytesMut, TransportError> {
    let mut buf = BytesMut::with_capacity(frames.iter().map(Frame::encoded_len).sum());
    for frame in frames {
        codec.encode_into(frame, &mut buf)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jim_protocol::Command;
    use tokio::net::TcpListener;

    use super::*;

    async fn pair(max_body: usize) -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        (connection(server, peer, max_body), client)
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_read_buffer_after_a_large_frame() {
        let (mut conn, mut client) = pair(64 * 1024).await;
        let big = Frame::new(Command::C2C, 1, vec![b'x'; 60 * 1024])
            .to_bytes()
            .unwrap();
        client.write_all(&big).await.unwrap();
        let Incoming::Frame(frame) = conn.link.read().await.unwrap() else {
            panic!("a frame")
        };
        assert_eq!(frame.body.len(), 60 * 1024);
        drop(frame);
        // Wait for the next frame while nothing comes: the buffer is given back.
        let idle = tokio::time::timeout(Duration::from_millis(50), conn.link.read()).await;
        assert!(idle.is_err(), "nothing was sent");
        let Link::Tcp(link) = &conn.link else {
            unreachable!()
        };
        assert_eq!(link.buf.capacity(), 0);
        // And reading resumes normally.
        client
            .write_all(&Frame::new(Command::Ping, 2, "").to_bytes().unwrap())
            .await
            .unwrap();
        assert!(matches!(conn.link.read().await.unwrap(), Incoming::Frame(f) if f.seq == 2));
    }

    #[tokio::test]
    async fn a_batch_of_frames_is_written_and_read_back() {
        let (mut conn, client) = pair(1024).await;
        let frames: Vec<Frame> = (0..50)
            .map(|i| Frame::new(Command::C2C, i, format!("m{i}")))
            .collect();
        conn.link.write_frames(&frames).await.unwrap();
        conn.link.close(1000, "bye").await.unwrap();
        let mut back = connection(client, conn.peer, 1024);
        for expected in &frames {
            assert_eq!(back.link.read().await.unwrap(), Incoming::Frame(expected.clone()));
        }
        assert_eq!(
            back.link.read().await.unwrap(),
            Incoming::Closed,
            "clean end of stream"
        );
    }

    #[tokio::test]
    async fn end_of_stream_inside_a_frame_is_an_error() {
        let (mut conn, mut client) = pair(1024).await;
        client.write_all(b"jim1A001\0\0\0\x01\0\0\0\x05ab").await.unwrap();
        drop(client);
        let err = conn.link.read().await.unwrap_err();
        assert!(matches!(err, TransportError::Truncated { buffered: 18 }), "{err}");
    }
}
