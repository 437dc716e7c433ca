//! A real Redis for tests: Debian's `redis-server`, on a free loopback port,
//! in its own scratch directory, with its append-only file on (so a restart
//! keeps what was acknowledged, as a production Redis would).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    cluster: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one; panics saying how to install it if it is missing.
    pub async fn start() -> RedisServer {
        RedisServer::start_as(false).await
    }

    async fn start_as(cluster: bool) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("jim-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut server = RedisServer {
            port,
            dir,
            cluster,
            child: None,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again) on the same port and directory.
    pub async fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir);
        if self.cluster {
            command.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): the redis tests use Debian's redis-server \
                     (apt-get install redis-server; .ci/run installs it)"
                )
            });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Ready to accept connections") {
                    return true;
                }
            }
            false
        };
        let started = tokio::time::timeout(Duration::from_secs(10), ready).await;
        assert!(
            matches!(started, Ok(true)),
            "redis-server did not start on port {}",
            self.port
        );
        // Keep reading what it prints, so it never writes to a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// Kills it (SIGKILL): what it acknowledged is in its append-only file.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// `FLUSHALL` (RESP over a socket): the server loses its data, as if
/// restarted without persistence.
pub fn flush_all(url: &str) {
    assert_eq!(command(url, &["FLUSHALL"]), "+OK");
}

/// Sends one command (RESP over a socket) and returns the first line of
/// its reply, e.g. `+OK`.
pub fn command(url: &str, args: &[&str]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).expect("redis");
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).expect("a command to redis");
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .expect("redis's reply");
    reply.trim_end().to_owned()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters on free loopback ports (no replicas):
/// enough for a user's keys to land on one node and another user's on
/// another.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, joins them (`redis-cli --cluster create`), and
    /// waits until every node says the cluster is ok.
    pub async fn start() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(RedisServer::start_as(true).await);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli (Debian's redis-tools, installed with redis-server)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        // The nodes agree on their slots by gossip, which signals nothing
        // here: ask each until it says ok.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .await
                    .expect("redis-cli");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the cluster never became ok"
                );
                tokio::time::sleep(CLUSTER_POLL).await;
            }
        }
        RedisCluster { nodes }
    }

    /// The seed nodes, comma-separated, as `inbox.redis_url` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How often a forming cluster is asked whether it is ok.
const CLUSTER_POLL: Duration = Duration::from_millis(50);
