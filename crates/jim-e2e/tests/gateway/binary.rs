//! The `jim-gateway` binary: banner, gentoken, config errors, SIGTERM.

use std::net::SocketAddr;
use std::process::{Command as Process, Stdio};

use jim_gateway::auth::Authenticator;
use jim_protocol::{Command, Frame};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use jim_test_util::*;

const BIN: &str = jim_e2e::gateway_bin!();

fn gateway() -> Process {
    let mut process = Process::new(BIN);
    // Keep the caller's JIM_* settings out of the test.
    for (key, _) in std::env::vars() {
        if key.starts_with("JIM_") {
            process.env_remove(key);
        }
    }
    process
}

#[test]
fn gentoken_mints_a_token_the_gateway_accepts() {
    let out = gateway()
        .args([
            "gentoken", "--user", "alice", "--name", "Alice", "--ttl", "60", "--secret", JWT_SECRET,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let who = Authenticator::jwt(JWT_SECRET.as_bytes())
        .verify(token.trim())
        .unwrap();
    assert_eq!((&*who.user_id, who.name.as_deref()), ("alice", Some("Alice")));
}

#[test]
fn gentoken_signs_with_a_private_key_and_prints_the_jwks_the_gateway_takes() {
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ed-a.pem");
    let run = |args: &[&str]| {
        let out = gateway().args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let common = ["gentoken", "--key", key, "--alg", "EdDSA", "--kid", "2026-11"];
    let token = run(&[
        &common[..],
        &["--user", "alice", "--iss", "https://id.example", "--aud", "jim"],
    ]
    .concat());
    let jwks = run(&[&common[..], &["--jwks"]].concat());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, &jwks).unwrap();
    let auth = jim_gateway::Auth {
        jwks: Some(path.display().to_string()),
        issuer: Some("https://id.example".into()),
        audience: Some("jim".into()),
        ..jim_gateway::Auth::default()
    };
    let who = Authenticator::from_config(&auth).unwrap().verify(&token).unwrap();
    assert_eq!(&*who.user_id, "alice");
    // The public half only.
    assert!(!jwks.contains("\"d\""), "{jwks}");
}

#[test]
fn configuration_errors_exit_78_with_a_clear_message() {
    let mut cases: Vec<(&[&str], &str)> = vec![
        (&[], "no token key: set auth.jwt_secret or JIM_JWT_SECRET"),
        (
            &["--config", "/nonexistent/jim.toml"],
            "cannot read /nonexistent/jim.toml",
        ),
        (
            &["gentoken", "--user", "a", "--secret", "short"],
            "HS256 needs at least 32",
        ),
    ];
    // The example file as it ships: its placeholder secrets are refused.
    const EXAMPLE: &[&str] = &[
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/jim.toml.example"),
    ];
    cases.push((EXAMPLE, "auth.jwt_secret is still the example's placeholder"));
    // [hooks] (contract section 9): what cannot work is said at start-up.
    cases.push((
        &["--dev", "--hooks-events-url", "http://127.0.0.1:9/events"],
        "hooks.secret is required when hooks.before_send_url or hooks.events_url is set",
    ));
    cases.push((
        &[
            "--dev",
            "--hooks-before-send-url",
            "ftp://x/hook",
            "--hooks-secret",
            "0123456789abcdef",
        ],
        "hooks.before_send_url = \"ftp://x/hook\" must be an http:// or https:// URL with a host",
    ));
    cases.push((
        &[
            "--dev",
            "--hooks-events-url",
            "http://127.0.0.1:9/e",
            "--hooks-secret",
            "short",
        ],
        "hooks.secret is 5 characters: use at least 16",
    ));
    cases.push((
        &[
            "--dev",
            "--mode",
            "grpc",
            "--hooks-events-url",
            "http://127.0.0.1:9/e",
            "--hooks-secret",
            "0123456789abcdef",
        ],
        "hooks.events_url: in grpc mode the router sends the events",
    ));
    // A mode the binary was built without is refused by name.
    if cfg!(not(feature = "kafka")) {
        cases.push((
            &["--dev", "--mode", "kafka"],
            "mode `kafka` is not compiled into this binary",
        ));
    }
    if cfg!(not(feature = "grpc")) {
        cases.push((
            &["--dev", "--mode", "grpc"],
            "mode `grpc` is not compiled into this binary",
        ));
    }
    for (args, message) in cases {
        let out = gateway().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn the_binary_serves_prints_its_listeners_and_stops_on_sigterm() {
    let mut child = tokio::process::Command::from(gateway())
        .args([
            "--dev",
            "--tcp",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (rows, mut banner) = banner_rows(&mut lines, &["tcp"], WAIT).await;
    let tcp: SocketAddr = rows["tcp"].parse().unwrap();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(QUIET, lines.next_line()).await {
        banner.push_str(&line);
        banner.push('\n');
    }
    assert!(banner.contains("| mode      | local"), "{banner}");
    assert!(banner.contains("DEVELOPMENT"), "{banner}");
    assert!(banner.contains("ws://127.0.0.1:"), "{banner}");

    let mut raw = Raw::tcp(tcp).await;
    raw.auth("alice").await;
    let pid = child.id().unwrap().to_string();
    assert!(
        Process::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(raw.expect_close(1001).await, "server shutting down");
    let status = tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let _ = Command::Ping;
}

/// This test binary's gateway process, in development mode.
struct GatewayProcess;

impl GatewayProcess {
    async fn start(config: &str, wrapper: Option<&str>) -> jim_test_util::process::GatewayProcess {
        jim_test_util::process::GatewayProcess::launch(BIN, config, "--dev", wrapper).await
    }
}

/// Floods from clients that never read, over both transports, before and
/// after authentication: the gateway's memory stays bounded, every one of
/// them is closed, and a newcomer is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_from_clients_that_never_read_keep_the_gateways_memory_bounded() {
    let gw = GatewayProcess::start(
        "[session]\nauth_timeout_ms = 60000\n[limits]\nwrite_timeout_ms = 1000\n",
        None,
    )
    .await;
    let before = gw.rss();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = {
        let (peak, pid) = (std::sync::Arc::clone(&peak), gw.child.id().unwrap());
        tokio::spawn(async move {
            loop {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kb * 1024, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let big_ping = Frame::new(Command::Ping, 1, vec![b'p'; 60_000])
        .to_bytes()
        .unwrap();
    let auth = Frame::new(Command::Auth, 1, r#"{"token":"mallory"}"#)
        .to_bytes()
        .unwrap();
    let ws_ping = HandWs::frame(0x9, &[b'p'; 125], true, false);
    let ws_pings: Vec<u8> = ws_ping
        .iter()
        .copied()
        .cycle()
        .take(ws_ping.len() * 256)
        .collect();
    let mut floods = Vec::new();
    for i in 0..24 {
        let (authenticated, tcp, ws) = (i % 2 == 1, gw.tcp, gw.ws);
        let (big_ping, auth, ws_pings) = (big_ping.clone(), auth.clone(), ws_pings.clone());
        floods.push(tokio::spawn(async move {
            if i % 4 < 2 {
                let mut stream = tight_tcp(tcp).await;
                if authenticated {
                    stream.write_all(&auth).await.unwrap();
                }
                write_until_closed(&mut stream, &big_ping, WAIT * 4).await;
            } else {
                let mut ws = HandWs::connect(ws, "/ws").await;
                if authenticated {
                    ws.stream
                        .write_all(&HandWs::frame(0x2, &auth, true, false))
                        .await
                        .unwrap();
                }
                write_until_closed(&mut ws.stream, &ws_pings, WAIT * 4).await;
            }
        }));
    }
    // Served meanwhile.
    let mut newcomer = Raw::tcp(gw.tcp).await;
    newcomer.auth("alice").await;
    for flood in floods {
        flood.await.unwrap();
    }
    sampling.abort();
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    eprintln!(
        "24 flooding clients: the gateway's RSS went from {} to at most {} MB (+{} MB)",
        before >> 20,
        (before + grew) >> 20,
        grew >> 20
    );
    assert!(grew < 200 << 20, "the gateway grew by {} MB", grew >> 20);
    assert_eq!(newcomer.request(Command::Ping, 5, "").await.cmd, Command::Pong);
}

/// Under a low open-file limit, `max_connections` is lowered to fit it
/// (clients over it are refused, not starved of descriptors); out of
/// descriptors anyway (a flood on the admin port, which is not counted),
/// the gateway says so once, recovers when the requests time out, and
/// serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_open_file_limit_lowers_max_connections_and_running_out_is_logged_once() {
    let gw = GatewayProcess::start("[session]\nhandshake_timeout_ms = 1000\n", Some("ulimit -n 128;")).await;
    assert_eq!(
        gw.log_lines("limits.max_connections is above what the open-file limit allows"),
        1
    );
    let mut loris = Vec::new();
    for target in [gw.ws, gw.admin] {
        for _ in 0..150 {
            if let Ok(Ok(mut stream)) = tokio::time::timeout(WAIT, TcpStream::connect(target)).await {
                let _ = stream.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await;
                loris.push(stream);
            }
        }
    }
    // Once the half-sent requests are dropped, the kernel's backlog is
    // accepted and the gateway serves a newcomer.
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let mut served = false;
    while !served && tokio::time::Instant::now() < deadline {
        let mut raw = Raw::tcp(gw.tcp).await;
        raw.send_body(Command::Ping, 1, "").await;
        served = matches!(
            tokio::time::timeout(WAIT, raw.next_inner()).await,
            Ok(Ok(frame)) if frame.cmd == Command::Pong
        );
    }
    assert!(served, "never served again");
    drop(loris);
    let starved = gw.log_lines("out of file descriptors");
    eprintln!("open-file limit 128: 'out of file descriptors' logged {starved} times");
    assert!(starved >= 1, "running out was not logged");
    // Once per episode, not per failed accept: for each listener, "out of
    // file descriptors" and "accepting connections again" alternate.
    let log = gw.log.lines();
    for listener in ["tcp", "websocket", "admin"] {
        let tag = format!("listener=\"{listener}\"");
        let mut starving = false;
        for line in log.iter().filter(|l| l.contains(&tag)) {
            if line.contains("out of file descriptors") {
                assert!(!starving, "{listener}: logged twice in one episode");
                starving = true;
            } else if line.contains("accepting connections again") {
                assert!(starving, "{listener}: 'again' without an episode");
                starving = false;
            }
        }
    }
    assert_eq!(gw.log_lines("accept failed"), 0);
    // A log file gets no terminal colour codes.
    assert!(
        !log.iter().any(|l| l.contains('\u{1b}')),
        "colour codes in a log file"
    );
}

/// SIGTERM: the listeners close first, so a successor can bind their
/// ports while this gateway still drains its connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_stopped_with_sigterm_frees_its_ports_before_draining() {
    let gw = GatewayProcess::start("[session]\nshutdown_grace_ms = 10000\n", None).await;
    // A client that never reads, until the path back to it is full: its
    // session's writes block, and it drains until the grace period ends.
    let mut stuck = tight_tcp(gw.tcp).await;
    let ping = Frame::new(Command::Ping, 1, vec![b'p'; 60_000])
        .to_bytes()
        .unwrap();
    let full = std::time::Duration::from_millis(500);
    while tokio::time::timeout(full, stuck.write_all(&ping)).await.is_ok() {}
    let listening = listening_ports(gw.child.id().unwrap());
    assert!(
        [gw.tcp, gw.ws, gw.admin]
            .iter()
            .all(|a| listening.contains(&a.port())),
        "the gateway's listeners are seen: {listening:?}"
    );
    gw.signal("-TERM");
    gw.wait_log("listeners closed, their ports are free").await;
    // Bound as a successor gateway binds them. Another test running beside
    // this one may have taken such an ephemeral port meanwhile: then the
    // port must at least not be the draining gateway's.
    let pid = gw.child.id().unwrap();
    for addr in [gw.tcp, gw.ws, gw.admin] {
        if let Err(e) = tokio::net::TcpListener::bind(addr).await {
            let held = listening_ports(pid);
            assert!(!held.contains(&addr.port()), "{addr} still the gateway's: {e}");
        }
    }
}

/// The TCP ports process `pid` listens on (its sockets' inodes, found in
/// /proc/net/tcp and tcp6 in the LISTEN state).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(link.strip_prefix("socket:[")?.trim_end_matches(']').to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 (HEX_IP:HEX_PORT), st field 3, inode field 9.
            if fields.len() > 9
                && fields[3] == "0A"
                && inodes.iter().any(|i| i == fields[9])
                && let Some(port) = fields[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// SIGHUP reloads the certificate (its files' times unchanged, so only
/// the signal can tell), and the banner says which listeners are
/// encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_the_banner_shows_what_is_encrypted() {
    use jim_test_util::tls::{TestCa, was_given};
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.issue(&["127.0.0.1"], "first");
    let (cert, key) = first.write(dir.path());
    let config = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\nplaintext = [\"admin\"]\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let gw = GatewayProcess::start(&config, None).await;
    let [tcp, websocket, admin] = &gw.listeners;
    assert!(tcp.ends_with(" (TLS)"), "{tcp}");
    assert!(websocket.starts_with("wss://"), "{websocket}");
    assert!(admin.starts_with("http://"), "{admin}");
    let stream = ca.connect(gw.tcp, "127.0.0.1", &[]).await.unwrap();
    assert!(was_given(&stream, &first));

    let times = |path: &std::path::Path| std::fs::metadata(path).unwrap().modified().unwrap();
    let (cert_time, key_time) = (times(&cert), times(&key));
    let second = ca.issue(&["127.0.0.1"], "second");
    second.write(dir.path());
    for (path, time) in [(&cert, cert_time), (&key, key_time)] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    gw.signal("-HUP");
    gw.wait_log("TLS certificate reloaded").await;
    assert_eq!(gw.log_lines("why=\"SIGHUP\""), 1, "{:?}", gw.log.lines());
    let stream = ca.connect(gw.tcp, "127.0.0.1", &[]).await.unwrap();
    assert!(was_given(&stream, &second));
}

/// What `jim-gateway gentoken ARGS` prints.
fn gentoken(args: &[&str]) -> String {
    let out = gateway().arg("gentoken").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// SIGHUP never ends a gateway, whatever it runs with (here: no TLS, no
/// JWKS, in development mode). It reads the configuration file again and
/// applies its log filter, and says what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_never_ends_a_plaintext_gateway_and_applies_the_files_log_filter() {
    let mut gw = GatewayProcess::start("", None).await;
    let mut alice = Raw::tcp(gw.tcp).await;
    alice.auth("alice").await;
    gw.signal("-HUP");
    gw.wait_log("SIGHUP: nothing to reload").await;
    assert!(gw.is_running());
    // The session it had goes on; new ones are served.
    let pong = alice.request(Command::Ping, 7, "").await;
    assert_eq!((pong.cmd, pong.seq), (Command::Pong, 7));

    std::fs::write(&gw.config, "log = \"jim_gateway=debug,info\"\n").unwrap();
    gw.signal("-HUP");
    gw.wait_log("SIGHUP: reloaded").await;
    assert_eq!(
        gw.log_lines(r#"reloaded=log filter "jim_gateway=debug,info""#),
        1,
        "{:#?}",
        gw.log.lines()
    );
    // Debug lines from now on (a sign-in says "authenticated" at debug).
    Raw::tcp(gw.tcp).await.auth("bob").await;
    gw.wait_log("authenticated").await;
    assert!(gw.is_running());

    // A file that no longer loads changes nothing, and ends nothing.
    std::fs::write(&gw.config, "log = 5\n").unwrap();
    gw.signal("-HUP");
    gw.wait_log("the configuration does not load").await;
    assert!(gw.is_running());
    let pong = alice.request(Command::Ping, 8, "").await;
    assert_eq!((pong.cmd, pong.seq), (Command::Pong, 8));
}

/// A production gateway with a JWKS file reads it again on SIGHUP: a key
/// published there is accepted at once, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_jwks_file_again() {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let jwks_of = |kid: &str, pem: &str| {
        let jwks = gentoken(&[
            "--key",
            &format!("{keys}/{pem}"),
            "--alg",
            "EdDSA",
            "--kid",
            kid,
            "--jwks",
        ]);
        serde_json::from_str::<serde_json::Value>(&jwks).unwrap()["keys"][0].clone()
    };
    let (a, b) = (jwks_of("a", "ed-a.pem"), jwks_of("b", "ed-b.pem"));
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [a] }).to_string()).unwrap();
    let config = format!(
        "[auth]\njwks = {:?}\njwks_refresh_secs = 3600\njwks_unknown_kid_secs = 3600\n[admin]\nkey = \"{}\"\n",
        jwks.display().to_string(),
        "k".repeat(32)
    );
    let mut gw = jim_test_util::process::GatewayProcess::launch(BIN, &config, "", None).await;
    let token = |kid: &str, pem: &str| {
        gentoken(&[
            "--key",
            &format!("{keys}/{pem}"),
            "--alg",
            "EdDSA",
            "--kid",
            kid,
            "--user",
            "alice",
            "--ttl",
            "600",
        ])
    };
    let attempt = |token: String| {
        let tcp = gw.tcp;
        async move {
            let mut raw = Raw::tcp(tcp).await;
            raw.request(
                Command::Auth,
                1,
                &serde_json::json!({ "token": token }).to_string(),
            )
            .await
            .cmd
        }
    };
    assert_eq!(attempt(token("a", "ed-a.pem")).await, Command::AuthOk);
    assert_eq!(attempt(token("b", "ed-b.pem")).await, Command::AuthFailed);

    std::fs::write(&jwks, serde_json::json!({ "keys": [a, b] }).to_string()).unwrap();
    gw.signal("-HUP");
    gw.wait_log("SIGHUP: reloaded").await;
    assert_eq!(gw.log_lines("(2 keys)"), 1, "{:#?}", gw.log.lines());
    assert_eq!(attempt(token("b", "ed-b.pem")).await, Command::AuthOk);
    assert!(gw.is_running());
}

/// A mistyped flag gets the nearest one, a flag spelt otherwise here gets a
/// tip, and the usage is the whole of it, not the part already typed.
#[test]
fn mistyped_flags_are_explained() {
    for (args, says) in [
        (&["--dve"][..], "a similar argument exists: '--dev'"),
        (
            &["--dev", "--adimn", "off"][..],
            "a similar argument exists: '--admin'",
        ),
        (
            &["--dev", "--port", "9800"][..],
            "--tcp ADDR, --ws ADDR, --admin ADDR",
        ),
    ] {
        let out = gateway().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            stderr.contains("Usage: jim-gateway [OPTIONS]"),
            "{args:?}: {stderr}"
        );
    }
}

/// `check-config FILE` reads the file as a start would (with what it names:
/// keys, certificate, the backend's settings) and starts nothing.
#[test]
fn check_config_says_whether_a_file_would_start() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let file = dir.path().join("jim.toml");
        std::fs::write(&file, text).unwrap();
        let out = gateway()
            .args(["check-config", file.to_str().unwrap()])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), said)
    };
    let (code, said) = check("[auth]\ndev = true\n[listen]\ntcp = \"127.0.0.1:1\"\n");
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("jim.toml: ok (local mode, DEVELOPMENT auth, inbox memory"),
        "{said}"
    );
    // Nothing was started: port 1 was never bound (it would need root).
    for (text, says) in [
        (
            "[auth]\ndev = true\n[listen]\ntcpp = \"x\"\n",
            "unknown field `tcpp`",
        ),
        ("[admin]\nkey = \"k\"\n", "no token key"),
        (
            "[auth]\ndev = true\n[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
            "/nonexistent/cert.pem",
        ),
        (
            "[auth]\njwks = \"/nonexistent/jwks.json\"\n[admin]\nkey = \"k\"\n",
            "/nonexistent/jwks.json",
        ),
        (
            "mode = \"grpc\"\n[auth]\ndev = true\n[grpc]\nrouter = \"not a url\"\n",
            "grpc.router",
        ),
    ] {
        let (code, said) = check(text);
        assert_eq!(code, Some(78), "{text}: {said}");
        assert!(said.contains(says), "{text}: {said}");
    }
    if cfg!(feature = "kafka") {
        let (code, said) = check("mode = \"kafka\"\n[auth]\ndev = true\n");
        assert_eq!(code, Some(78), "{said}");
        assert!(said.contains("kafka mode keeps inboxes in Redis"), "{said}");
    }
}

/// Two gateways on one inbox directory would number the same inboxes and
/// overwrite each other's acked messages: the second is refused (78),
/// naming the directory and the process that has it; the first goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_inbox_directory_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[inbox]\nstore = \"disk\"\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let first = GatewayProcess::start(&config, None).await;
    // Refused at once; were it not, it would serve (and this would wait).
    let second = tokio::process::Command::from(gateway())
        .args(["--dev", "--config"])
        .arg(&first.config)
        .args([
            "--tcp",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, second)
        .await
        .expect("the second gateway was not refused")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    assert!(
        stderr.contains(&format!(
            "the inbox directory {} is in use by process {}",
            canonical.display(),
            first.child.id().unwrap()
        )),
        "{stderr}"
    );
    // The first still serves, its inbox its own.
    let mut alice = Raw::tcp(first.tcp).await;
    alice.auth("alice").await;
    let pong = alice.request(Command::Ping, 3, "").await;
    assert_eq!(pong.cmd, Command::Pong);
}

/// However many sessions a user has, the gateway keeps at most
/// `inbox.dedupe_per_user` of its `client_msg_id`s: the oldest forgotten
/// first, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senders_retry_records_are_bounded_and_the_forgotten_counted() {
    let gw = GatewayProcess::start("[inbox]\ndedupe_per_user = 2\n", None).await;
    let mut alice = Raw::tcp(gw.tcp).await;
    alice.auth("alice").await;
    let mut again = Raw::tcp(gw.tcp).await;
    again.auth("alice").await;
    let send = |id: &str| {
        format!(r#"{{"type":"text","data":{{"receiver_id":"bob","content":"x","client_msg_id":"{id}"}}}}"#)
    };
    let mut ids = Vec::new();
    for (seq, id) in [(2, "c1"), (3, "c2"), (4, "c3")] {
        let raw = if seq % 2 == 0 { &mut alice } else { &mut again };
        let reply = raw.request(Command::C2C, seq, &send(id)).await;
        ids.push(assert_ack(&reply, Command::C2C, seq, "bob"));
    }
    // c3 is still known; c1, the oldest, is not: a new message.
    let reply = again.request(Command::C2C, 5, &send("c3")).await;
    assert_eq!(assert_ack(&reply, Command::C2C, 5, "bob"), ids[2]);
    let reply = alice.request(Command::C2C, 6, &send("c1")).await;
    assert_ne!(assert_ack(&reply, Command::C2C, 6, "bob"), ids[0]);
    let (_, metrics) = http(gw.admin, "GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("jim_inbox_dedupe_forgotten_total 2"),
        "{metrics}"
    );
}
