//! Filling a reader's buffer, by the one rule every transport keeps: while
//! nothing is pending the buffer holds no memory (it is given back before
//! waiting; bytes already handed out keep their own allocation), so a quiet
//! connection costs none.

use std::io;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// How much a read asks for at once.
const READ_CHUNK: usize = 8 * 1024;

/// Reads what a TCP socket has into `buf`: the count (0 at end of stream).
///
/// The buffer is reserved only once the socket is readable.
pub(crate) fn tcp(stream: &TcpStream, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    loop {
        if buf.is_empty() {
            *buf = BytesMut::new();
        }
        ready!(stream.poll_read_ready(cx))?;
        buf.reserve(READ_CHUNK);
        // None: the readiness was stale; wait again, having given the buffer back.
        if let Some(n) = read_available(stream, buf)? {
            return Poll::Ready(Ok(n));
        }
    }
}

/// One read into the spare capacity: `Some(n)` bytes (0 at end of stream),
/// or `None` if the readiness was stale.
///
/// A short read means the socket is drained, so it also clears the
/// readiness: the next wait then sleeps instead of paying a `recvfrom`
/// that can only say WouldBlock (one syscall per message). `try_io` clears
/// only the readiness seen before the read, so data that arrives meanwhile
/// still wakes us.
fn read_available(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    let spare = buf.capacity() - buf.len();
    let mut read = None;
    let result = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < spare {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match result {
        Ok(()) => Ok(read),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(read),
        Err(e) => Err(e),
    }
}

/// Reads what `reader` (TLS, an upgraded stream) has into `buf`: the count
/// (0 at end of stream). Such readers have no readiness to wait on first, so
/// the buffer is reserved before the read.
#[cfg(any(feature = "tls", feature = "ws"))]
pub(crate) fn stream<R>(
    reader: std::pin::Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>>
where
    R: tokio::io::AsyncRead + ?Sized,
{
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    buf.reserve(READ_CHUNK);
    tokio_util::io::poll_read_buf(reader, cx, buf)
}
