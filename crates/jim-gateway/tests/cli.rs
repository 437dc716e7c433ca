//! The `jim-gateway` binary itself answers for its name, version and
//! subcommands. (Everything it does over real sockets is tested end to end
//! by the `jim-e2e` package; the TypeScript SDK's tests run this binary.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_jim-gateway");

#[test]
fn the_binary_says_its_version_and_lists_its_subcommands() {
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("jim-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for listed in ["gentoken", "config", "check-config", "--pid-file", "--mode"] {
        assert!(help.contains(listed), "{listed} in:\n{help}");
    }
}
