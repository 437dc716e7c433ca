//! Limits per client address and per user, and the client's address
//! behind trusted proxies: the PROXY protocol (v1, v2) on TCP,
//! `X-Forwarded-For` on WebSocket; what an untrusted peer claims is
//! ignored.

use jim_e2e::*;
use jim_protocol::{Command, Frame};
use jim_test_util::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A TCP connection that first writes `header` (a PROXY header), then
/// pings: whether the gateway answered (or refused, and what it said).
async fn tcp_after(gw: &Gw, header: &[u8]) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(gw.tcp).await.unwrap();
    stream.write_all(header).await.unwrap();
    let mut raw = Raw::from_tcp(stream);
    raw.send_body(Command::Ping, 1, "").await;
    match raw.next().await {
        Ok(frame) if frame.cmd == Command::Pong => Ok(()),
        Ok(frame) if frame.cmd == Command::ServerClose => {
            Err(json(&frame)["reason"].as_str().unwrap().to_owned())
        }
        other => Err(format!("{other:?}")),
    }
}

fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 9001\r\n").into_bytes()
}

fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x21, 0x11, 0, 12]); // PROXY, TCP over IPv4, 12 bytes of addresses
    header.extend(client);
    header.extend([127, 0, 0, 1]);
    header.extend(40000u16.to_be_bytes());
    header.extend(9001u16.to_be_bytes());
    header
}

#[tokio::test]
async fn connections_per_address_are_limited_and_given_back() {
    let gw = Gw::with(|c| c.limits.connections_per_address = 2).await;
    let mut first = gw.user(Kind::Tcp, "a").await;
    let _second = gw.user(Kind::Ws, "b").await;
    let mut third = gw.raw(Kind::Tcp).await;
    assert_eq!(
        third.expect_close(1008).await,
        "too many connections from your address"
    );
    let (status, body) = ws_refusal(&gw.ws_url()).await;
    assert_eq!(
        (status, body.as_str()),
        (429, "too many connections from your address\n")
    );
    gw.wait_metric(r#"jim_connections_refused_total{reason="address_connections"} 2"#)
        .await;

    first.send_body(Command::ClientClose, 1, "").await;
    first.expect_close(1000).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tcp_after(&gw, b"").await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never given back"
        );
    }
}

#[tokio::test]
async fn new_connections_per_address_are_rate_limited() {
    let gw = Gw::with(|c| c.limits.connections_per_address_per_sec = 1).await;
    assert_eq!(tcp_after(&gw, b"").await, Ok(()));
    assert_eq!(
        tcp_after(&gw, b"").await,
        Err("connecting too often from your address".to_owned())
    );
    gw.wait_metric(r#"jim_connections_refused_total{reason="address_rate"} 1"#)
        .await;
}

#[tokio::test]
async fn a_trusted_proxys_proxy_header_names_the_client_and_an_untrusted_peers_is_refused() {
    let gw = Gw::with(|c| {
        c.listen.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits.connections_per_address = 1;
    })
    .await;
    // The limit is the client's: each client its own place.
    let mut first = tokio::net::TcpStream::connect(gw.tcp).await.unwrap();
    first.write_all(&v1("198.51.100.7")).await.unwrap();
    let mut first = Raw::from_tcp(first);
    first.auth("alice").await;
    assert_eq!(
        tcp_after(&gw, &v2([198, 51, 100, 8])).await,
        Ok(()),
        "another client, v2"
    );
    assert_eq!(
        tcp_after(&gw, &v1("198.51.100.7")).await,
        Err("too many connections from your address".to_owned()),
        "the same client again"
    );
    assert_eq!(
        tcp_after(&gw, &v2([198, 51, 100, 7])).await,
        Err("too many connections from your address".to_owned()),
        "the same client again, v2"
    );
    // A trusted proxy must send the header: a connection without is closed.
    assert!(tcp_after(&gw, b"").await.is_err());
    // The session from before goes on.
    assert_eq!(first.request(Command::Ping, 2, "").await.cmd, Command::Pong);

    // From a peer not trusted, a PROXY header is not a jim1 frame.
    let untrusted = Gw::start().await;
    let mut stream = tokio::net::TcpStream::connect(untrusted.tcp).await.unwrap();
    stream.write_all(&v1("198.51.100.7")).await.unwrap();
    let mut spoofer = Raw::from_tcp(stream);
    let close = spoofer.recv().await;
    assert_eq!(close.cmd, Command::ServerClose);
    assert_eq!(json(&close)["code"], 1002);
}

/// A WebSocket upgrade saying `X-Forwarded-For: forwarded`, refused: its
/// status and body.
async fn refused_forwarded(gw: &Gw, forwarded: &str) -> (u16, String) {
    ws_refusal_with(&gw.ws_url(), |r| {
        r.headers_mut()
            .insert("x-forwarded-for", forwarded.parse().unwrap());
    })
    .await
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_behind_a_trusted_proxy_only() {
    let upgrade = |gw: &Gw, forwarded: &str| {
        let mut request = gw.ws_url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded.parse().unwrap());
        request
    };
    let behind = Gw::with(|c| {
        c.listen.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.limits.connections_per_address = 1;
    })
    .await;
    let (_alice, _) = tokio_tungstenite::connect_async(upgrade(&behind, "203.0.113.5, 198.51.100.7"))
        .await
        .unwrap();
    // Another client: its own place.
    let (_bob, _) = tokio_tungstenite::connect_async(upgrade(&behind, "198.51.100.8"))
        .await
        .unwrap();
    // The same client, whatever it wrote before its address.
    let (status, body) = refused_forwarded(&behind, "192.0.2.1, 198.51.100.7").await;
    assert_eq!(
        (status, body.as_str()),
        (429, "too many connections from your address\n")
    );

    // Not trusted: the header is ignored, the peer is the client.
    let direct = Gw::with(|c| c.limits.connections_per_address = 1).await;
    let (_carol, _) = tokio_tungstenite::connect_async(upgrade(&direct, "198.51.100.9"))
        .await
        .unwrap();
    let (status, _) = refused_forwarded(&direct, "198.51.100.10").await;
    assert_eq!(
        status, 429,
        "a made-up X-Forwarded-For does not get a place of its own"
    );
}

#[tokio::test]
async fn a_proxy_header_split_over_writes_is_read_whole() {
    let gw = Gw::with(|c| c.listen.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let mut stream = tokio::net::TcpStream::connect(gw.tcp).await.unwrap();
    let header = v1("198.51.100.7");
    let ping = Frame::new(Command::Ping, 1, "").to_bytes().unwrap();
    for chunk in header.chunks(5) {
        stream.write_all(chunk).await.unwrap();
        stream.flush().await.unwrap();
    }
    stream.write_all(&ping).await.unwrap();
    let mut raw = Raw::from_tcp(stream);
    assert_eq!(raw.recv().await.cmd, Command::Pong);
}

#[tokio::test]
async fn a_users_sessions_past_the_limit_kick_the_oldest_or_are_refused() {
    let gw = Gw::with(|c| c.limits.sessions_per_user = 2).await;
    let mut oldest = gw.user(Kind::Tcp, "alice").await;
    let mut second = gw.user(Kind::Ws, "alice").await;
    let mut newest = gw.user(Kind::Tcp, "alice").await;
    assert_eq!(
        oldest.expect_close(1008).await,
        "kicked: a newer session of this user"
    );
    assert_eq!(second.request(Command::Ping, 2, "").await.cmd, Command::Pong);
    assert_eq!(newest.request(Command::Ping, 2, "").await.cmd, Command::Pong);
    gw.wait_metric(r#"jim_sessions_kicked_total{reason="sessions_per_user"} 1"#)
        .await;
    // Another user is not concerned.
    let _bob = gw.user(Kind::Tcp, "bob").await;

    let strict = Gw::with(|c| {
        c.limits.sessions_per_user = 1;
        c.limits.sessions_over_limit = jim_gateway::SessionsOverLimit::RefuseNew;
    })
    .await;
    let mut first = strict.user(Kind::Tcp, "carol").await;
    let mut again = strict.raw(Kind::Ws).await;
    let reply = again.request(Command::Auth, 1, r#"{"token":"carol"}"#).await;
    assert_eq!(reply.cmd, Command::AuthFailed);
    assert_eq!(
        json(&reply),
        serde_json::json!({"code": 4029, "reason": "too many sessions of this user: at most 1"})
    );
    again.expect_close(1008).await;
    assert_eq!(first.request(Command::Ping, 2, "").await.cmd, Command::Pong);
    strict
        .wait_metric(r#"jim_sessions_refused_total{reason="sessions_per_user"} 1"#)
        .await;
}

/// By default one user holds at most 16 sessions on a gateway: the 17th
/// takes the oldest's place, so one token cannot hold thousands of
/// connections.
#[tokio::test]
async fn by_default_a_user_holds_at_most_sixteen_sessions() {
    let gw = Gw::start().await;
    let mut sessions = Vec::new();
    for i in 0..16 {
        sessions.push(
            gw.user(if i % 2 == 0 { Kind::Tcp } else { Kind::Ws }, "alice")
                .await,
        );
    }
    let mut newest = gw.user(Kind::Tcp, "alice").await;
    assert_eq!(
        sessions[0].expect_close(1008).await,
        "kicked: a newer session of this user"
    );
    for session in sessions.iter_mut().skip(1) {
        assert_eq!(session.request(Command::Ping, 2, "").await.cmd, Command::Pong);
    }
    assert_eq!(newest.request(Command::Ping, 2, "").await.cmd, Command::Pong);
    let (_, presence) = gw.admin("GET", "/v1/users/alice/sessions", None).await;
    assert_eq!(presence["sessions"].as_array().unwrap().len(), 16);
}
