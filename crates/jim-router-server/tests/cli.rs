//! The `jim-router` binary's command line.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_jim-router");

fn router() -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("JIM_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn it_describes_itself() {
    let out = router().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        help.starts_with("The central router of Jim's `grpc` mode"),
        "{help}"
    );
    assert!(help.contains("--settle-ms"), "{help}");
}

#[test]
fn configuration_errors_exit_78_with_a_clear_message() {
    let before_send = std::env::temp_dir().join(format!("jim-router-hooks-{}.toml", std::process::id()));
    std::fs::write(
        &before_send,
        "[hooks]\nbefore_send_url = \"http://127.0.0.1:9/hook\"\nsecret = \"0123456789abcdef\"\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--config", "/nonexistent/router.toml"],
            "cannot read /nonexistent/router.toml",
        ),
        (&["--node-id", "4000"], "node_id 4000 is out of range"),
        (&["--key", "CHANGE-ME"], "key is still the example's placeholder"),
        (
            &["--hooks-events-url", "http://127.0.0.1:9/events"],
            "hooks.secret is required",
        ),
        (
            &["--config", before_send.to_str().unwrap()],
            "hooks.before_send_url: the gateways call the before-send hook",
        ),
    ];
    for (args, message) in cases {
        let out = router().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {stderr}");
        assert!(stderr.starts_with("jim-router: configuration: "), "{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_file(before_send);
}
