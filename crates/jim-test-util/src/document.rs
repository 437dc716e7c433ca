//! A document served over HTTP (or HTTPS) on a loopback port (a JWKS, say), which a
//! test changes as it goes and whose reads it counts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A connection: plain, or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Serves `GET` of any path with the current document, one request per
/// connection.
pub struct DocumentServer {
    addr: SocketAddr,
    scheme: &'static str,
    document: Arc<Mutex<Vec<u8>>>,
    reads: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DocumentServer {
    pub async fn start(document: impl Into<Vec<u8>>) -> DocumentServer {
        DocumentServer::serving(document, None).await
    }

    /// The same over HTTPS, with a certificate of `ca` for 127.0.0.1.
    pub async fn start_tls(document: impl Into<Vec<u8>>, ca: &crate::tls::TestCa) -> DocumentServer {
        let issued = ca.issue(&["127.0.0.1"], "documents");
        let cert = rustls::pki_types::CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
        DocumentServer::serving(document, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serving(document: impl Into<Vec<u8>>, tls: Option<tokio_rustls::TlsAcceptor>) -> DocumentServer {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let document = Arc::new(Mutex::new(document.into()));
        let reads = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&document), Arc::clone(&reads));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (served, counted, tls) = (Arc::clone(&served), Arc::clone(&counted), tls.clone());
                tokio::spawn(async move {
                    let mut stream: Box<dyn Stream> = match tls {
                        None => Box::new(stream),
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => Box::new(stream),
                            Err(_) => return,
                        },
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = served.lock().unwrap().clone();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                    counted.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        DocumentServer {
            addr,
            scheme,
            document,
            reads,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("{}://{}/jwks.json", self.scheme, self.addr)
    }

    /// What the next reads get.
    pub fn set(&self, document: impl Into<Vec<u8>>) {
        *self.document.lock().unwrap() = document.into();
    }

    /// How many times it was read so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Waits until it has been read more than `than` times.
    pub async fn read_more_than(&self, than: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.reads() <= than {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the document was not read again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
