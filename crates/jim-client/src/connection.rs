//! The transports (TCP, TLS, WebSocket) under one reader and one writer
//! type.

use std::sync::Arc;

use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use jim_protocol::{Frame, FrameCodec};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::codec::FramedRead;

use crate::{ClientError, Options};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The reading half of a byte stream: TCP, or TLS over it.
type ByteReader = Box<dyn AsyncRead + Send + Unpin>;
/// Its writing half.
type ByteWriter = Box<dyn AsyncWrite + Send + Unpin>;

pub(crate) enum Reader {
    Bytes(FramedRead<ByteReader, FrameCodec>),
    Ws(SplitStream<Ws>, FrameCodec),
}

pub(crate) enum Writer {
    Bytes(ByteWriter, FrameCodec),
    Ws(SplitSink<Ws, WsMessage>),
}

fn framed(read: ByteReader, write: ByteWriter, max_body: usize) -> (Reader, Writer) {
    let codec = FrameCodec::with_max_body(max_body);
    (
        Reader::Bytes(FramedRead::new(read, codec)),
        Writer::Bytes(write, codec),
    )
}

pub(crate) async fn tcp(addr: impl ToSocketAddrs, max_body: usize) -> Result<(Reader, Writer), ClientError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    Ok(framed(Box::new(read), Box::new(write), max_body))
}

/// `jim1` over TLS to `host:port`, the certificate checked for `host`.
pub(crate) async fn tls(addr: &str, options: &Options) -> Result<(Reader, Writer), ClientError> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| ClientError::Tls(format!("{host:?} cannot be a certificate's name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(client_config(options, &[])?);
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let stream = connector.connect(name, stream).await?;
    let (read, write) = tokio::io::split(stream);
    Ok(framed(Box::new(read), Box::new(write), options.max_body))
}

/// What a TLS client trusts: `options.ca` alone, or the system's roots.
fn client_config(options: &Options, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Tls(format!("cannot read the CA {}: {e}", path.display())))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(ClientError::Tls(format!("no certificate in {}", path.display())));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

pub(crate) async fn ws(url: &str, options: &Options) -> Result<(Reader, Writer), ClientError> {
    use tokio_tungstenite::tungstenite::Error;
    let max_body = options.max_body;
    let connector = if url.starts_with("wss://") {
        Some(tokio_tungstenite::Connector::Rustls(client_config(
            options,
            &[b"http/1.1"],
        )?))
    } else {
        None
    };
    let connected = tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector).await;
    let (stream, _) = connected.map_err(|e| match e {
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
            Reader::Bytes(framed) => framed.next().await.transpose().map_err(Into::into),
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
            Writer::Bytes(stream, codec) => {
                let mut buf = BytesMut::with_capacity(frames.iter().map(Frame::encoded_len).sum());
                for frame in frames {
                    codec.encode_into(frame, &mut buf)?;
                }
                stream.write_all(&buf).await?;
                // TLS holds what it encrypted until flushed.
                stream.flush().await?;
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
