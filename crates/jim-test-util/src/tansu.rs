//! A real Kafka-protocol broker for tests: tansu, on a free loopback port,
//! in its own scratch directory (it reads `./.env`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command as Std, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where `scripts/install-tools.sh` puts tools, `target/tools` of the
/// workspace (found by its `Cargo.lock`).
fn tools_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(manifest);
    root.join("target/tools")
}

/// The tansu binary: `$TANSU`, then `target/tools/bin/tansu`,
/// `~/.cargo/bin/tansu`, `PATH`. Tests do not install it (that takes
/// minutes, silently): `scripts/install-tools.sh` does, and
/// `scripts/test.sh` runs that first.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let installed = tools_dir().join("bin/tansu");
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    if let Some(path) = [Some(installed), home]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
    {
        return path;
    }
    if Std::new("tansu")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return PathBuf::from("tansu");
    }
    panic!(
        "tansu, the Kafka-protocol broker of the kafka tests, is not installed: \
         run scripts/install-tools.sh (it installs tansu 0.6.0 into target/tools, once), \
         or run the whole suite with scripts/test.sh"
    );
}

/// A running broker at a stable address. tansu sets no `SO_REUSEADDR`, so
/// it cannot listen on its old port for a minute after a stop (TIME_WAIT);
/// a real broker restarts at the same address. So clients reach tansu
/// through a relay of ours on the broker's port (and tansu advertises that
/// port): a restart is a new tansu behind the same address, and while the
/// broker is stopped, nothing listens there (connections are refused).
pub struct Broker {
    /// The port clients connect to.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    relay: Option<tokio::task::JoinHandle<()>>,
}

/// Where a broker's output goes: its scratch directory (kept with
/// `JIM_TEST_LOGS`, for post-mortems).
fn log_file(dir: &Path, port: u16, stream: &str) -> Stdio {
    match File::create(dir.join(format!("tansu-{port}.{stream}"))) {
        Ok(file) => Stdio::from(file),
        Err(_) => Stdio::null(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How often a relay tries its port again while the kernel still holds it.
const BIND_AGAIN: Duration = Duration::from_millis(50);

/// Listens on `port` again (it was the broker's before a stop).
async fn bind_again(port: u16) -> tokio::net::TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return listener,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(BIND_AGAIN).await,
            Err(e) => panic!("the broker's relay cannot listen on port {port} again: {e}"),
        }
    }
}

/// Relays every connection to `listener` to tansu on `backend` until
/// aborted (which drops the listener and every relayed connection: what
/// clients see of a broker going down).
fn relay(listener: tokio::net::TcpListener, backend: u16) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { continue };
                    connections.spawn(async move {
                        if let Ok(mut broker) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await {
                            let _ = client.set_nodelay(true);
                            let _ = broker.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                        }
                    });
                }
                Some(_) = connections.join_next() => {}
            }
        }
    })
}

impl Broker {
    pub async fn start() -> Broker {
        let dir =
            std::env::temp_dir().join(format!("jim-tansu-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut broker = Broker {
            port: listener.local_addr().unwrap().port(),
            dir,
            child: None,
            relay: None,
        };
        broker.start_behind(Some(listener)).await;
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again), at the same address, with empty storage.
    pub async fn restart(&mut self) {
        self.start_behind(None).await;
    }

    /// Starts an empty tansu, reached through `listener` (or the broker's
    /// port again once tansu is up: until then, connections are refused).
    async fn start_behind(&mut self, listener: Option<tokio::net::TcpListener>) {
        let backend = free_port();
        let listen = format!("tcp://127.0.0.1:{backend}");
        let advertised = format!("tcp://127.0.0.1:{}", self.port);
        let mut child = Command::new(binary())
            .args([
                "broker",
                "--listener-url",
                &listen,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&self.dir)
            .stdout(Stdio::piped())
            .stderr(log_file(&self.dir, backend, "err"))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // tansu prints `ready in …` on stdout once its listener is bound.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let came_up = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("ready in") {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(matches!(came_up, Ok(true)), "tansu did not come up");
        // Keep reading, so that a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        let listener = match listener {
            Some(listener) => listener,
            None => bind_again(self.port).await,
        };
        self.relay = Some(relay(listener, backend));
    }

    /// Stops it with SIGTERM (its memory storage is gone with it); its
    /// address refuses connections until [`restart`](Self::restart).
    pub async fn stop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
            let _ = relay.await;
        }
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Std::new("kill").args(["-TERM", &pid.to_string()]).status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
        }
        if std::env::var_os("JIM_TEST_LOGS").is_some() {
            eprintln!("broker logs kept in {}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
