//! Each example binary, run for real against a real gateway.

use std::process::Stdio;
use std::time::Duration;

use jim_client::Client;
use jim_gateway::{Config, Gateway, RunningGateway};
use jim_model::{Message, Text};
use jim_protocol::Command;
use jim_router::LocalRouter;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command as Process};

const WAIT: Duration = Duration::from_secs(10);

async fn gateway(router: LocalRouter) -> RunningGateway {
    Gateway::new(Config::ephemeral_dev(), router)
        .unwrap()
        .start()
        .await
        .unwrap()
}

async fn client(addr: std::net::SocketAddr, user: &str) -> Client {
    let mut client = Client::connect_tcp(addr).await.unwrap();
    client.authenticate(user, None).await.unwrap();
    client
}

fn spawn(bin: &str, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Process::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn line_containing(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap();
        let line = line.unwrap_or_else(|| panic!("output ended before {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

async fn next_text(client: &mut Client) -> (Command, Text) {
    match tokio::time::timeout(WAIT, client.next_message())
        .await
        .unwrap()
        .unwrap()
    {
        (cmd, Message::Text(text)) => (cmd, text),
        other => panic!("expected a text, got {other:?}"),
    }
}

#[tokio::test]
async fn chat_sends_lines_and_prints_what_arrives() {
    let gw = gateway(LocalRouter::new()).await;
    let url = format!("tcp://{}", gw.tcp_addr().unwrap());
    let mut bob = client(gw.tcp_addr().unwrap(), "bob").await;
    // Sent while alice is away: it waits in her inbox.
    bob.send(
        Command::C2C,
        &Message::Text(Text::new("alice", "while you were away")),
    )
    .await
    .unwrap();
    let (mut chat, mut out) = spawn(
        env!("CARGO_BIN_EXE_chat"),
        &["--user", "alice", "--to", "bob", "--url", &url],
    );
    line_containing(&mut out, "signed in as alice").await;
    // A first sign-in misses nothing: it is told it is catching up.
    assert_eq!(
        line_containing(&mut out, "* ").await,
        "* catching up on what your inbox holds"
    );
    assert_eq!(
        line_containing(&mut out, "while you were away").await,
        "<bob> while you were away"
    );

    let mut stdin = chat.stdin.take().unwrap();
    stdin.write_all(b"hello from the terminal\n").await.unwrap();
    line_containing(&mut out, "* sent (").await;
    let (cmd, text) = next_text(&mut bob).await;
    assert_eq!(
        (cmd, text.content.as_str(), text.common.sender_id.as_deref()),
        (Command::C2C, "hello from the terminal", Some("alice"))
    );

    bob.send(Command::C2C, &Message::Text(Text::new("alice", "hi alice")))
        .await
        .unwrap();
    assert_eq!(line_containing(&mut out, "hi alice").await, "<bob> hi alice");

    // Pushes: from the system, or from whoever the admin API names.
    for (sender, shown) in [
        ("system", "<push> your order shipped"),
        ("shop", "<push from shop> your order shipped"),
    ] {
        let admin = format!("http://{}/v1/push", gw.admin_addr().unwrap());
        let body = serde_json::json!({
            "users": ["alice"],
            "sender_id": sender,
            "message": { "type": "text", "data": { "content": "your order shipped" } },
        });
        tokio::task::spawn_blocking(move || ureq::post(&admin).send_json(&body).unwrap())
            .await
            .unwrap();
        assert_eq!(line_containing(&mut out, "your order shipped").await, shown);
    }

    stdin.write_all(b"/quit\n").await.unwrap();
    line_containing(&mut out, "* bye (1000 client closed)").await;
    assert!(
        tokio::time::timeout(WAIT, chat.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn push_sends_a_b103_through_the_admin_api() {
    let gw = gateway(LocalRouter::new()).await;
    let mut bob = client(gw.tcp_addr().unwrap(), "bob").await;
    let admin = format!("http://{}", gw.admin_addr().unwrap());
    let output = Process::new(env!("CARGO_BIN_EXE_push"))
        .args([
            "--admin",
            &admin,
            "--user",
            "bob",
            "--sender",
            "shop",
            "Your order has shipped",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("to bob (1 session here)"));
    let (cmd, text) = next_text(&mut bob).await;
    assert_eq!(
        (cmd, text.content.as_str(), text.common.sender_id.as_deref()),
        (Command::S2C, "Your order has shipped", Some("shop"))
    );

    let output = Process::new(env!("CARGO_BIN_EXE_push"))
        .args(["--admin", &admin, "--group", "nope", "x"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    // A sentence, not Debug output or escaped JSON.
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        r#"push: the gateway refused the push (404 Not Found): unknown group "nope""#
    );
    gw.shutdown().await;
}

/// A newcomer's mistakes are told in sentences that say what to do.
#[tokio::test]
async fn chat_explains_a_bad_url_and_a_refused_token() {
    let mut config = Config::ephemeral_dev();
    config.auth.dev = false;
    config.auth.jwt_secret = Some("a secret of at least thirty-two bytes!".into());
    config.admin.key = Some("admin".into());
    let gw = Gateway::new(config, LocalRouter::new())
        .unwrap()
        .start()
        .await
        .unwrap();
    let tcp = gw.tcp_addr().unwrap().to_string();
    let tcp_url = format!("tcp://{tcp}");
    let cases = [
        (
            vec!["--user", "alice", "--to", "bob", "--url", tcp.as_str()],
            format!(
                "chat: {tcp:?} is not a WebSocket URL: expected ws://HOST:PORT/PATH or wss://... (for TCP, tcp://HOST:PORT or tls://HOST:PORT where a tool takes both)"
            ),
        ),
        (
            vec!["--user", "alice", "--to", "bob", "--url", tcp_url.as_str()],
            "chat: the gateway refused the token: invalid token: not a JWT (three base64url parts separated by dots) (code 4001)".to_owned(),
        ),
    ];
    for (args, expected) in cases {
        let output = Process::new(env!("CARGO_BIN_EXE_chat"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim(),
            expected,
            "{args:?}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn embed_observes_moderates_and_pushes() {
    let (_embed, mut out) = spawn(
        env!("CARGO_BIN_EXE_embed"),
        &["--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0"],
    );
    let banner = line_containing(&mut out, "embedded gateway: tcp ").await;
    let tcp: std::net::SocketAddr = banner.split_whitespace().nth(3).unwrap().parse().unwrap();

    let mut alice = client(tcp, "alice").await;
    let mut bob = client(tcp, "bob").await;
    alice
        .send(Command::C2G, &Message::Text(Text::new("lobby", "hello lobby")))
        .await
        .unwrap();
    line_containing(&mut out, "history: B102").await;
    let (cmd, welcome) = next_text(&mut alice).await;
    assert_eq!((cmd, welcome.content.as_str()), (Command::S2C, "welcome, alice!"));
    let (cmd, text) = next_text(&mut bob).await;
    assert_eq!((cmd, text.content.as_str()), (Command::C2G, "hello lobby"));

    let refused = alice
        .send(
            Command::C2G,
            &Message::Text(Text::new("lobby", "a forbidden word")),
        )
        .await;
    assert!(
        matches!(refused, Err(jim_client::ClientError::Refused { code: 4003, .. })),
        "{refused:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bob.next())
            .await
            .is_err(),
        "bob got nothing"
    );
}

/// GET `url`: the status and the body.
async fn http_get(url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let config = ureq::Agent::config_builder().http_status_as_error(false).build();
        let mut response = ureq::Agent::new_with_config(config).get(&url).call().unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn web_serves_the_chat_page_and_the_sdks_modules_only() {
    // The SDK's real modules are exercised in Chromium by clients/typescript's
    // browser test; here, what the server hands out from its --sdk directory.
    let sdk = std::env::temp_dir().join(format!("jim-web-sdk-{}", fastrand::u64(..)));
    std::fs::create_dir_all(sdk.join("nested")).unwrap();
    std::fs::write(sdk.join("index.js"), "export const ok = 1;").unwrap();
    std::fs::write(sdk.join("nested/part.js.map"), "{}").unwrap();
    std::fs::write(sdk.join("secret.txt"), "not served").unwrap();
    let (_web, mut out) = spawn(
        env!("CARGO_BIN_EXE_web"),
        &["--listen", "127.0.0.1:0", "--sdk", sdk.to_str().unwrap()],
    );
    let line = line_containing(&mut out, "open http://").await;
    let base = line.split_whitespace().nth(1).unwrap().to_owned();
    let (status, page) = http_get(format!("{base}/")).await;
    assert_eq!(status, 200);
    for needle in [
        "<script type=\"module\" src=\"app.js\">",
        "name=\"viewport\"",
        "Protocol details",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    let (status, app) = http_get(format!("{base}/app.js")).await;
    assert_eq!(status, 200);
    assert!(app.contains("from \"/sdk/index.js\""));
    assert_eq!(
        http_get(format!("{base}/sdk/index.js")).await,
        (200, "export const ok = 1;".to_owned())
    );
    assert_eq!(http_get(format!("{base}/sdk/nested/part.js.map")).await.0, 200);
    // Browsers ask for an icon: they get one, not a 404.
    for icon in ["favicon.ico", "favicon.svg"] {
        let (status, body) = http_get(format!("{base}/{icon}")).await;
        assert_eq!(status, 200, "{icon}");
        assert!(body.starts_with("<svg"), "{icon}: {body}");
    }
    for refused in [
        "secret.txt",
        "../Cargo.toml",
        "%2e%2e/index.js",
        "nested/../index.js",
        ".hidden.js",
    ] {
        assert_eq!(
            http_get(format!("{base}/sdk/{refused}")).await.0,
            404,
            "{refused}"
        );
    }
    std::fs::remove_dir_all(&sdk).unwrap();
}

#[tokio::test]
async fn web_on_a_taken_port_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let sdk = std::env::temp_dir().join(format!("jim-web-sdk-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&sdk).unwrap();
    std::fs::write(sdk.join("index.js"), "export const ok = 1;").unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_web"))
        .args(["--listen", &addr, "--sdk", sdk.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    std::fs::remove_dir_all(&sdk).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("web: cannot listen on {addr}: ")) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[tokio::test]
async fn web_without_the_built_sdk_says_how_to_build_it() {
    let missing = std::env::temp_dir().join(format!("jim-web-none-{}", fastrand::u64(..)));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_web"))
        .args(["--listen", "127.0.0.1:0", "--sdk", missing.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the SDK is not built") && stderr.contains("npm --prefix clients/typescript ci"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_embed_hosts_the_router_observes_and_pushes() {
    use jim_router_grpc::{BackendConfig, GrpcBackend};
    let (_app, mut out) = spawn(
        env!("CARGO_BIN_EXE_router_embed"),
        &["--grpc", "127.0.0.1:0", "--tick", "0"],
    );
    let banner = line_containing(&mut out, "router embedded at ").await;
    let url = banner.split_whitespace().last().unwrap().to_owned();

    // A gateway linked to the application's router.
    let mut config = Config::ephemeral_dev();
    config.node_id = 5;
    let backend = GrpcBackend::start(BackendConfig::new(url, 5), Default::default()).unwrap();
    let gw = Gateway::new(config, backend.clone())
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::time::timeout(WAIT, backend.wait_linked(true))
        .await
        .expect("the gateway never linked");
    let mut alice = client(gw.tcp_addr().unwrap(), "alice").await;
    let mut bob = client(gw.tcp_addr().unwrap(), "bob").await;
    alice
        .send(Command::C2C, &Message::Text(Text::new("bob", "hi bob")))
        .await
        .unwrap();
    assert_eq!(next_text(&mut bob).await.1.content, "hi bob");
    line_containing(&mut out, "history: B101").await;
    let (cmd, thanks) = next_text(&mut alice).await;
    assert_eq!(
        (cmd, thanks.content.as_str(), thanks.common.sender_id.as_deref()),
        (Command::S2C, "message received by the app", Some("app"))
    );
    gw.shutdown().await;
}

#[cfg(feature = "kafka")]
use jim_test_util::tansu;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "kafka")]
async fn events_prints_what_a_kafka_deployment_accepted() {
    use jim_router_kafka::{KafkaBackend, KafkaConfig};
    let broker = tansu::Broker::start().await;
    let prefix = format!("ex{}.", fastrand::u32(..));
    let kafka = KafkaConfig {
        bootstrap: broker.bootstrap(),
        topic_prefix: prefix.clone(),
        delivery_partitions: 2,
        events_partitions: 2,
        state_partitions: 1,
        ..KafkaConfig::default()
    };
    let backend = KafkaBackend::start(
        kafka,
        7,
        jim_router::Routing::new(jim_router::Inbox::off(), Vec::new()),
        Default::default(),
    )
    .await
    .unwrap();
    let mut config = Config::ephemeral_dev();
    config.node_id = 7;
    let gw = Gateway::new(config, backend.clone())
        .unwrap()
        .start()
        .await
        .unwrap();
    let alice = client(gw.tcp_addr().unwrap(), "alice").await;
    let mut bob = client(gw.tcp_addr().unwrap(), "bob").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while jim_router::Directory::presence(&backend, "bob")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never showed in presence"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ack = alice
        .send(Command::C2C, &Message::Text(Text::new("bob", "kept in kafka")))
        .await
        .unwrap();
    let _ = next_text(&mut bob).await;

    let output = Process::new(env!("CARGO_BIN_EXE_events"))
        .args([
            "--bootstrap",
            &broker.bootstrap(),
            "--prefix",
            &prefix,
            "--partitions",
            "2",
            "--count",
            "1",
        ])
        .output();
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("message "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains(&format!("B101 {} alice -> bob [c2c:alice|bob]", ack.message_id)),
        "{line}"
    );
    assert!(line.contains("kept in kafka"), "{line}");
    gw.shutdown().await;
}

/// Runs `host` with `args`, chats through the gateway it embeds, and stops
/// it by closing its input.
async fn host_chats(args: &[&str]) {
    let (mut host, mut out) = spawn(
        env!("CARGO_BIN_EXE_host"),
        &[args, &["--ephemeral", "--http", "127.0.0.1:0"]].concat(),
    );
    let banner = line_containing(&mut out, "host: gateway in ").await;
    let tcp: std::net::SocketAddr = banner
        .split("tcp ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    let service = banner.rsplit(' ').next().unwrap().to_owned();
    let (status, body) = http_get(service).await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("\"tcp\":\"{tcp}\"")), "{body}");
    let alice = client(tcp, "alice").await;
    let mut bob = client(tcp, "bob").await;
    // In grpc and kafka modes presence takes a moment to reach the backend.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        alice
            .send(
                Command::C2C,
                &Message::Text(Text::new("bob", "hello from inside")),
            )
            .await
            .unwrap();
        if let Ok(Ok((cmd, message))) =
            tokio::time::timeout(Duration::from_millis(300), bob.next_message()).await
        {
            let Message::Text(text) = message else {
                panic!("{message:?}")
            };
            assert_eq!((cmd, text.content.as_str()), (Command::C2C, "hello from inside"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
    }
    drop(host.stdin.take());
    line_containing(&mut out, "host: stopped").await;
    assert!(
        tokio::time::timeout(WAIT, host.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_embeds_the_gateway_in_local_mode() {
    host_chats(&["--mode", "local"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_embeds_the_gateway_in_grpc_mode() {
    use jim_router_grpc::{CentralConfig, CentralRouter};
    // The central router, served here.
    let router = CentralRouter::new(
        CentralConfig {
            settle: Duration::ZERO,
            ..CentralConfig::new(1000)
        },
        Vec::new(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(router.service())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    host_chats(&["--mode", "grpc", "--router", &url, "--node-id", "3"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "kafka")]
async fn host_embeds_the_gateway_in_kafka_mode() {
    let broker = tansu::Broker::start().await;
    let prefix = format!("host{}.", fastrand::u32(..));
    host_chats(&[
        "--mode",
        "kafka",
        "--kafka-bootstrap",
        &broker.bootstrap(),
        "--kafka-prefix",
        &prefix,
        "--node-id",
        "4",
    ])
    .await;
}
