//! The two transports under one reader and one writer type.

use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use jim_protocol::{Frame, FrameCodec};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::codec::FramedRead;

use crate::ClientError;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) enum Reader {
    Tcp(FramedRead<OwnedReadHalf, FrameCodec>),
    Ws(SplitStream<Ws>, FrameCodec),
}

pub(crate) enum Writer {
    Tcp(OwnedWriteHalf, FrameCodec),
    Ws(SplitSink<Ws, WsMessage>),
}

pub(crate) async fn tcp(addr: impl ToSocketAddrs, max_body: usize) -> Result<(Reader, Writer), ClientError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let codec = FrameCodec::with_max_body(max_body);
    Ok((
        Reader::Tcp(FramedRead::new(read, codec)),
        Writer::Tcp(write, codec),
    ))
}

pub(crate) async fn ws(url: &str, max_body: usize) -> Result<(Reader, Writer), ClientError> {
    use tokio_tungstenite::tungstenite::Error;
    let (stream, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| match e {
        Error::Url(_) => ClientError::BadUrl { url: url.to_owned() },
        Error::Io(e) => ClientError::Io(e),
        Error::Http(response) => ClientError::WebSocket(format!(
            "the upgrade was refused with HTTP {}{}",
            response.status(),
            response
                .body()
                .as_deref()
                .map(|body| format!(": {}", String::from_utf8_lossy(body).trim()))
                .unwrap_or_default()
        )),
        other => ClientError::WebSocket(other.to_string()),
    })?;
    let (sink, stream) = stream.split();
    Ok((
        Reader::Ws(stream, FrameCodec::with_max_body(max_body)),
        Writer::Ws(sink),
    ))
}

impl Reader {
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        match self {
            Reader::Tcp(framed) => framed.next().await.transpose().map_err(Into::into),
            Reader::Ws(stream, codec) => loop {
                match stream.next().await {
                    None | Some(Ok(WsMessage::Close(_))) => return Ok(None),
                    Some(Ok(WsMessage::Binary(bytes))) => return Ok(Some(codec.decode_message(bytes)?)),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(ClientError::WebSocket(e.to_string())),
                }
            },
        }
    }
}

/// Writes whatever is queued, many frames per write, until the queue closes.
pub(crate) async fn write_loop(mut writer: Writer, mut queue: mpsc::Receiver<Frame>) {
    let mut batch = Vec::with_capacity(64);
    while queue.recv_many(&mut batch, 64).await > 0 {
        if writer.write(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
    if let Writer::Ws(sink) = &mut writer {
        let _ = sink.close().await;
    }
}

impl Writer {
    async fn write(&mut self, frames: &[Frame]) -> Result<(), ClientError> {
        match self {
            Writer::Tcp(stream, codec) => {
                let mut buf = BytesMut::with_capacity(frames.iter().map(Frame::encoded_len).sum());
                for frame in frames {
                    codec.encode_into(frame, &mut buf)?;
                }
                stream.write_all(&buf).await?;
                Ok(())
            }
            Writer::Ws(sink) => {
                for frame in frames {
                    sink.feed(WsMessage::Binary(frame.to_bytes()?))
                        .await
                        .map_err(|e| ClientError::WebSocket(e.to_string()))?;
                }
                sink.flush()
                    .await
                    .map_err(|e| ClientError::WebSocket(e.to_string()))
            }
        }
    }
}
