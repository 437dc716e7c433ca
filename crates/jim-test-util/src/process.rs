//! Our own binaries run as processes: their stderr collected line by line,
//! a gateway started on ephemeral loopback ports and found by its banner.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::{WAIT, banner_rows};

/// Every line a process wrote to a stream (its stderr: the log), as they
/// come.
#[derive(Clone)]
pub struct ProcessLog {
    lines: watch::Receiver<Vec<String>>,
}

impl ProcessLog {
    /// Reads `stream` to its end in the background.
    pub fn capture(stream: impl AsyncRead + Unpin + Send + 'static) -> ProcessLog {
        let (lines_read, lines) = watch::channel(Vec::new());
        let mut reader = BufReader::new(stream).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                lines_read.send_modify(|lines| lines.push(line));
            }
        });
        ProcessLog { lines }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.borrow().clone()
    }

    /// How many lines so far contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.lines.borrow().iter().filter(|l| l.contains(text)).count()
    }

    /// Waits until `count` lines contain `text`.
    pub async fn wait_count(&self, text: &str, count: usize) {
        let mut lines = self.lines.clone();
        let seen = |lines: &Vec<String>| lines.iter().filter(|l| l.contains(text)).count() >= count;
        tokio::time::timeout(WAIT, lines.wait_for(seen))
            .await
            .unwrap_or_else(|_| panic!("the log never said {text:?} {count} time(s): {:#?}", self.lines()))
            .unwrap_or_else(|_| {
                panic!(
                    "the log ended without {text:?} {count} time(s): {:#?}",
                    self.lines()
                )
            });
    }

    /// Waits until a line contains `text`.
    pub async fn wait_for(&self, text: &str) {
        self.wait_count(text, 1).await;
    }
}

/// The gateway binary, started with a configuration file and flags on
/// ephemeral loopback ports; its stderr lines are collected.
pub struct GatewayProcess {
    pub child: tokio::process::Child,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub admin: SocketAddr,
    pub log: ProcessLog,
    /// The banner's tcp, websocket and admin api rows.
    pub listeners: [String; 3],
    /// Its configuration file (rewrite it, then signal `-HUP`).
    pub config: std::path::PathBuf,
}

impl GatewayProcess {
    /// Starts `bin` (the gateway's binary) with `config` in a file of its
    /// own, `flags` (space-separated: `--dev`, `--mode grpc`, ...) and
    /// ephemeral listeners; `wrapper`, if given, is a shell prefix
    /// (`ulimit -Hn 256;` say). Returns once the banner is printed.
    pub async fn launch(bin: &str, config: &str, flags: &str, wrapper: Option<&str>) -> GatewayProcess {
        let path = std::env::temp_dir().join(format!(
            "jim-gw-{}-{}.toml",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, config).unwrap();
        let args = format!(
            "{flags} --config {} --tcp 127.0.0.1:0 --ws 127.0.0.1:0 --admin 127.0.0.1:0",
            path.display()
        );
        let mut command = match wrapper {
            Some(prefix) => {
                let mut sh = tokio::process::Command::new("sh");
                sh.args(["-c", &format!("{prefix} exec {bin} {args}")]);
                sh
            }
            None => {
                let mut direct = tokio::process::Command::new(bin);
                direct.args(args.split(' ').filter(|a| !a.is_empty()));
                direct
            }
        };
        // Keep the caller's JIM_* settings out of the test.
        for (key, _) in std::env::vars() {
            if key.starts_with("JIM_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = ProcessLog::capture(child.stderr.take().unwrap());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (rows, _) = banner_rows(&mut lines, &["tcp", "websocket", "admin api"], WAIT).await;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = |row: &str| -> SocketAddr {
            let shown = rows[row].trim_end_matches(" (TLS)").trim_end_matches("/ws");
            shown.rsplit("://").next().unwrap().parse().unwrap()
        };
        GatewayProcess {
            tcp: addr("tcp"),
            ws: addr("websocket"),
            admin: addr("admin api"),
            listeners: ["tcp", "websocket", "admin api"].map(|row| rows[row].clone()),
            child,
            log,
            config: path,
        }
    }

    /// Sends it a signal (`-TERM`, `-HUP`).
    pub fn signal(&self, signal: &str) {
        signal_process(self.child.id().expect("the gateway is running"), signal);
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its resident memory now, in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id().unwrap())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Log lines containing `text`.
    pub fn log_lines(&self, text: &str) -> usize {
        self.log.count(text)
    }

    /// Waits until the log has a line containing `text`.
    pub async fn wait_log(&self, text: &str) {
        self.log.wait_for(text).await;
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Sends process `pid` a signal (`-TERM`, `-HUP`, `-STOP`), by `kill`.
pub fn signal_process(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}: {status}");
}
