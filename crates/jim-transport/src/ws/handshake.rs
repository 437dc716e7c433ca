//! The common upgrade request, answered straight off the TCP socket.
//!
//! A well-formed `GET` of the WebSocket path over HTTP/1.1 is read and
//! answered here, in a buffer the size of the request. An HTTP server
//! (hyper) takes 8 KiB each way per connection; freed after the upgrade,
//! they leave holes in the heap that cost every idle WebSocket connection
//! a few hundred bytes more than a TCP one. Anything else (another path,
//! a malformed or refused upgrade, a head longer than [`MAX_HEAD`]) is
//! handed to the HTTP server with the bytes read so far ([`Replay`]), so
//! it gets the same answer as before.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::Connection;

/// The longest request head read here: a longer one goes to the HTTP server.
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers parsed here: a request with more goes to the HTTP server.
const MAX_HEADERS: usize = 32;

/// What the start of a connection held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// A whole request head: the first `len` bytes of the buffer.
    Complete {
        /// Its length, up to and including the blank line.
        len: usize,
    },
    /// Not an HTTP request head read here (malformed, or longer than
    /// [`MAX_HEAD`]): for the HTTP server.
    Other,
    /// The client closed before sending a whole head.
    Closed,
}

/// Reads the start of a connection into `buf` until it holds a whole
/// request head, or can be seen not to be one read here.
///
/// # Errors
/// The socket's.
pub async fn read_head(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<Head> {
    loop {
        if let Some(head) = whole_head(buf) {
            return Ok(head);
        }
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            return Ok(Head::Closed);
        }
    }
}

/// What `buf` holds, once it can tell. Not `async`: the parsed headers
/// (1 KiB) stay on the stack, out of the caller's future.
fn whole_head(buf: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(len)) => Some(Head::Complete { len }),
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => None,
        Ok(httparse::Status::Partial) | Err(_) => Some(Head::Other),
    }
}

/// A WebSocket upgrade request answered here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade<'a> {
    /// The `Sec-WebSocket-Accept` of the answer (RFC 6455 4.2.2).
    pub accept_key: String,
    /// The `Origin` header, from a browser page.
    pub origin: Option<&'a str>,
    /// The first `X-Forwarded-For` header, from a proxy.
    pub forwarded_for: Option<&'a str>,
}

/// The WebSocket upgrade in `head` (a whole request head, as
/// [`read_head`] found it), if it is a well-formed one of `path` over
/// HTTP/1.1; `None` for anything the HTTP server is to answer.
///
/// ```
/// use jim_transport::ws::upgrade_request;
///
/// let head = b"GET /ws?v=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
///              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/// let upgrade = upgrade_request(head, "/ws").unwrap();
/// assert_eq!(upgrade.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// assert_eq!(upgrade_request(head, "/other"), None);
/// ```
pub fn upgrade_request<'a>(head: &'a [u8], path: &str) -> Option<Upgrade<'a>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let target = request.path?;
    let target_path = target.split_once('?').map_or(target, |(path, _)| path);
    if request.method != Some("GET") || request.version != Some(1) || target_path != path {
        return None;
    }
    let values = |name: &'static str| {
        request
            .headers
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .map(|header| std::str::from_utf8(header.value).ok())
    };
    let lists = |name, token| super::lists_token(values(name).flatten(), token);
    if !lists("connection", "upgrade")
        || !lists("upgrade", "websocket")
        || !lists("sec-websocket-version", "13")
    {
        return None;
    }
    let key = request
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("sec-websocket-key"))?;
    // A header that is not text: the HTTP server decides.
    let first = |name| values(name).next().map_or(Some(None), |value| value.map(Some));
    Some(Upgrade {
        accept_key: tungstenite::handshake::derive_accept_key(key.value),
        origin: first("origin")?,
        forwarded_for: first("x-forwarded-for")?,
    })
}

/// Answers an upgrade ([`Upgrade::accept_key`]) with `101 Switching Protocols` and makes its
/// connection: frames are read straight off the socket, starting with
/// `read_ahead` (what the client sent after the head).
///
/// # Errors
/// Writing the answer failed.
pub async fn accept(
    mut stream: TcpStream,
    accept_key: &str,
    read_ahead: BytesMut,
    peer: SocketAddr,
    max_body: usize,
) -> io::Result<Connection> {
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {accept_key}\r\n\r\n"
    );
    stream.write_all(answer.as_bytes()).await?;
    Ok(super::on_tcp(stream, peer, max_body, read_ahead))
}

/// A stream that first gives back bytes already read from it: a
/// connection whose head was read here, for the HTTP server.
#[derive(Debug)]
pub struct Replay<S> {
    read: Bytes,
    stream: S,
}

impl<S> Replay<S> {
    /// `stream`, from which `read` was read first.
    pub fn new(read: Bytes, stream: S) -> Replay<S> {
        Replay { read, stream }
    }

    /// What is left to give back, and the stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.read, self.stream)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    fn head(extra: &str) -> String {
        format!("{UPGRADE}{extra}\r\n")
    }

    #[test]
    fn a_well_formed_upgrade_is_answered_here() {
        let head =
            head("Origin: https://app.example\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n");
        let upgrade = upgrade_request(head.as_bytes(), "/ws").unwrap();
        assert_eq!(upgrade.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(upgrade.origin, Some("https://app.example"));
        assert_eq!(upgrade.forwarded_for, Some("10.0.0.1"));
    }

    #[test]
    fn anything_else_is_for_the_http_server() {
        for (what, request) in [
            ("another path", UPGRADE.replace("/ws", "/wss") + "\r\n"),
            ("a POST", UPGRADE.replace("GET", "POST") + "\r\n"),
            ("HTTP/1.0", UPGRADE.replace("HTTP/1.1", "HTTP/1.0") + "\r\n"),
            (
                "no upgrade token",
                UPGRADE.replace("keep-alive, Upgrade", "keep-alive") + "\r\n",
            ),
            (
                "another version",
                UPGRADE.replace("Version: 13", "Version: 8") + "\r\n",
            ),
            (
                "no key",
                UPGRADE.replace("Sec-WebSocket-Key", "Sec-WebSocket-Nonce") + "\r\n",
            ),
            ("an incomplete head", UPGRADE.to_string()),
        ] {
            assert_eq!(upgrade_request(request.as_bytes(), "/ws"), None, "{what}");
        }
        let binary_origin = [UPGRADE.as_bytes(), b"Origin: \xff\r\n\r\n"].concat();
        assert_eq!(
            upgrade_request(&binary_origin, "/ws"),
            None,
            "an origin that is not text"
        );
    }

    #[tokio::test]
    async fn a_head_is_read_across_writes_and_what_follows_is_kept() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let request = head("");
        let (first, rest) = request.split_at(20);
        client.write_all(first.as_bytes()).await.unwrap();
        let reading = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let head = read_head(&mut server, &mut buf).await.unwrap();
            (head, buf)
        });
        client.write_all(rest.as_bytes()).await.unwrap();
        client.write_all(b"after").await.unwrap();
        let (head, buf) = reading.await.unwrap();
        let Head::Complete { len } = head else {
            panic!("{head:?}")
        };
        assert_eq!(len, request.len());
        assert!(
            b"after".starts_with(&buf[len..]),
            "only what follows the head is kept"
        );
    }

    #[tokio::test]
    async fn a_head_too_long_or_malformed_is_for_the_http_server() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        for request in [
            head(&format!("Cookie: {}\r\n", "c".repeat(MAX_HEAD))),
            "NOT HTTP\r\n\r\n".to_string(),
        ] {
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            client.write_all(request.as_bytes()).await.unwrap();
            let mut buf = BytesMut::new();
            assert_eq!(read_head(&mut server, &mut buf).await.unwrap(), Head::Other);
            assert!(
                buf.len() <= 2 * MAX_HEAD + 1024,
                "reading stops past the longest head"
            );
            drop(client);
        }
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"GET /ws HTT").await.unwrap();
        drop(client);
        assert_eq!(
            read_head(&mut server, &mut BytesMut::new()).await.unwrap(),
            Head::Closed
        );
    }

    #[tokio::test]
    async fn a_replay_gives_back_what_was_read_then_reads_on() {
        use tokio::io::AsyncWriteExt;
        let (mut near, far) = tokio::io::duplex(64);
        let mut replay = Replay::new(Bytes::from_static(b"head "), far);
        near.write_all(b"and more").await.unwrap();
        drop(near);
        let mut all = String::new();
        replay.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "head and more");
        assert!(replay.into_parts().0.is_empty());
    }
}
