//! TLS on every listener, with a test CA: `jim1` over TLS, `wss://`,
//! `https://` for the admin API; certificates reloaded in place; clients
//! that fail the handshake cost no one else anything.

use jim_e2e::*;
use jim_protocol::Command;
use jim_test_util::tls::{TestCa, was_given};
use jim_test_util::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway whose listeners all use a certificate of `ca` for 127.0.0.1
/// and localhost, in `dir`.
async fn encrypted(ca: &TestCa, dir: &std::path::Path, label: &str) -> (Gw, jim_test_util::tls::Issued) {
    let issued = ca.issue(&["127.0.0.1", "localhost"], label);
    (with_certificate(&issued, dir).await, issued)
}

/// A gateway whose listeners all use `issued`, written in `dir`.
async fn with_certificate(issued: &jim_test_util::tls::Issued, dir: &std::path::Path) -> Gw {
    let (cert, key) = issued.write(dir);
    Gw::with(|c| {
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
    })
    .await
}

/// `GET path` over HTTPS; the status line and body.
async fn https_get(ca: &TestCa, addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = ca.connect(addr, "localhost", &[b"http/1.1"]).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}

/// Waits until the gateway's metrics (over HTTPS) show `line`.
async fn wait_metric(ca: &TestCa, gw: &Gw, line: &str) {
    let started = std::time::Instant::now();
    loop {
        let metrics = https_get(ca, gw.admin, "/metrics").await;
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(started.elapsed() < 2 * WAIT, "never `{line}` in:\n{metrics}");
        tokio::time::sleep(POLL).await;
    }
}

/// How often a test looks again at what it waits for.
const POLL: std::time::Duration = std::time::Duration::from_millis(50);

#[tokio::test]
async fn every_listener_speaks_tls_and_a_plaintext_client_bothers_no_one() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = encrypted(&ca, dir.path(), "gateway").await;

    let mut alice = Raw::tls(&ca, gw.tcp, "127.0.0.1").await;
    alice.auth("alice").await;
    let mut bob = Raw::wss(&ca, &format!("wss://localhost:{}/ws", gw.ws.port())).await;
    bob.auth("bob").await;
    text_goes_through(&mut alice, &mut bob, "bob", "over TLS").await;

    let health = https_get(&ca, gw.admin, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // A client speaking plaintext to the TLS port gets nothing it can
    // read, and is counted; the sessions above go on.
    let mut plain = tokio::net::TcpStream::connect(gw.tcp).await.unwrap();
    plain.write_all(b"jim1A001\0\0\0\x01\0\0\0\0").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"jim1"), "no frame for a plaintext client");
    wait_metric(&ca, &gw, "jim_tls_handshake_failures_total 1").await;
    let pong = alice.request(Command::Ping, 3, "").await;
    assert_eq!(pong.cmd, Command::Pong);
    let pong = bob.request(Command::Ping, 3, "").await;
    assert_eq!(pong.cmd, Command::Pong);
}

#[tokio::test]
async fn clients_refuse_a_certificate_for_another_host_or_expired() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = encrypted(&ca, dir.path(), "gateway").await;
    let refusal = |result: std::io::Result<_>| match result {
        Ok(_) => panic!("the handshake went through"),
        Err(e) => e.to_string(),
    };
    let wrong_host = refusal(ca.connect(gw.tcp, "chat.example", &[]).await);
    assert!(wrong_host.contains("not valid for name"), "{wrong_host}");
    let unknown = refusal(TestCa::new().connect(gw.tcp, "127.0.0.1", &[]).await);
    assert!(unknown.contains("UnknownIssuer"), "{unknown}");

    let expired_dir = tempfile::tempdir().unwrap();
    let expired = with_certificate(&ca.issue_expired(&["127.0.0.1"]), expired_dir.path()).await;
    let expired = refusal(ca.connect(expired.tcp, "127.0.0.1", &[]).await);
    assert!(expired.contains("certificate expired"), "{expired}");
}

#[tokio::test]
async fn a_new_certificate_is_used_without_a_restart_and_a_bad_one_keeps_the_old() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (gw, first) = encrypted(&ca, dir.path(), "first").await;
    let mut alice = Raw::tls(&ca, gw.tcp, "127.0.0.1").await;
    alice.auth("alice").await;
    let stream = ca.connect(gw.tcp, "127.0.0.1", &[]).await.unwrap();
    assert!(was_given(&stream, &first));

    // Renewed: new connections get the new certificate.
    let second = ca.issue(&["127.0.0.1", "localhost"], "second");
    second.write(dir.path());
    wait_metric(&ca, &gw, r#"jim_tls_reloads_total{outcome="ok"} 1"#).await;
    let stream = ca.connect(gw.tcp, "127.0.0.1", &[]).await.unwrap();
    assert!(was_given(&stream, &second), "the renewed certificate is used");

    // A broken renewal (a key that is not the certificate's): the
    // certificate in use stays.
    let mismatched = TestCa::new().issue(&["127.0.0.1"], "mismatched");
    jim_test_util::tls::replace(&dir.path().join("key.pem"), mismatched.key_pem.as_bytes());
    wait_metric(&ca, &gw, r#"jim_tls_reloads_total{outcome="error"} 1"#).await;
    let stream = ca.connect(gw.tcp, "127.0.0.1", &[]).await.unwrap();
    assert!(was_given(&stream, &second), "a bad pair replaced a good one");
    // And not a certificate at all.
    jim_test_util::tls::replace(&dir.path().join("cert.pem"), b"not a certificate");
    wait_metric(&ca, &gw, r#"jim_tls_reloads_total{outcome="error"} 2"#).await;
    let stream = ca.connect(gw.tcp, "127.0.0.1", &[]).await.unwrap();
    assert!(was_given(&stream, &second), "a bad file replaced a good pair");
    // The session from before went on throughout.
    assert_eq!(alice.request(Command::Ping, 5, "").await.cmd, Command::Pong);
}

#[tokio::test]
async fn jim_client_checks_the_gateways_certificate_over_tls_and_wss() {
    use jim_client::{Client, Options};
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = encrypted(&ca, dir.path(), "gateway").await;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let trusting = Options {
        ca: Some(ca_file.clone()),
        ..Options::default()
    };

    let mut alice = Client::connect_tls_with(&format!("localhost:{}", gw.tcp.port()), trusting.clone())
        .await
        .unwrap();
    alice.authenticate("alice", None).await.unwrap();
    let mut bob = Client::connect_ws_with(&format!("wss://localhost:{}/ws", gw.ws.port()), trusting.clone())
        .await
        .unwrap();
    bob.authenticate("bob", None).await.unwrap();
    let text: jim_model::Message =
        serde_json::from_str(r#"{"type":"text","data":{"receiver_id":"bob","content":"verified"}}"#).unwrap();
    alice.send(Command::C2C, &text).await.unwrap();
    let (_, got) = bob.next_message().await.unwrap();
    assert_eq!(serde_json::to_value(&got).unwrap()["data"]["content"], "verified");

    let refusal = |result: Result<Client, jim_client::ClientError>| match result {
        Ok(_) => panic!("connected"),
        Err(e) => e.to_string(),
    };
    // The system's roots do not know the test CA.
    let system =
        refusal(Client::connect_tls_with(&format!("localhost:{}", gw.tcp.port()), Options::default()).await);
    assert!(system.contains("UnknownIssuer"), "{system}");

    // A certificate for localhost only, reached as 127.0.0.1.
    let named_dir = tempfile::tempdir().unwrap();
    let named = with_certificate(&ca.issue(&["localhost"], "named"), named_dir.path()).await;
    let wrong_host = refusal(Client::connect_tls_with(&named.tcp.to_string(), trusting.clone()).await);
    assert!(wrong_host.contains("not valid for name"), "{wrong_host}");
    let wrong_host =
        refusal(Client::connect_ws_with(&format!("wss://{}/ws", named.ws), trusting.clone()).await);
    assert!(wrong_host.contains("not valid for name"), "{wrong_host}");

    let expired_dir = tempfile::tempdir().unwrap();
    let expired = with_certificate(&ca.issue_expired(&["localhost"]), expired_dir.path()).await;
    let refused =
        refusal(Client::connect_tls_with(&format!("localhost:{}", expired.tcp.port()), trusting).await);
    assert!(refused.contains("certificate expired"), "{refused}");
}
