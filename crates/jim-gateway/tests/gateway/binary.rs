//! The `jim-gateway` binary: banner, gentoken, config errors, SIGTERM.

use std::net::SocketAddr;
use std::process::{Command as Process, Stdio};

use jim_gateway::auth::Authenticator;
use jim_protocol::Command;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_jim-gateway");

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
fn configuration_errors_exit_78_with_a_clear_message() {
    let mut cases: Vec<(&[&str], &str)> = vec![
        (&[], "no token secret: set auth.jwt_secret or JIM_JWT_SECRET"),
        (
            &["--config", "/nonexistent/jim.toml"],
            "cannot read /nonexistent/jim.toml",
        ),
        (
            &["gentoken", "--user", "a", "--secret", "short"],
            "HS256 needs at least 32",
        ),
    ];
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
