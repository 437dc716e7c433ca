//! jim-bench against a real gateway in this process: every workload runs,
//! its checks hold on a clean run, and a run with refusals is reported so.

use std::time::Duration;

use jim_bench::conn::{Target, Transport};
use jim_bench::idle::Connecting;
use jim_bench::messaging::{Load, Messaging};
use jim_gateway::{Config, Gateway, RunningGateway};
use jim_router::LocalRouter;

async fn gateway(adjust: impl FnOnce(&mut Config)) -> (RunningGateway, Target, String) {
    let mut config = Config::ephemeral_dev();
    config.limits.messages_per_sec = 1_000_000;
    config.limits.message_burst = 1_000_000;
    adjust(&mut config);
    let running = Gateway::new(config, LocalRouter::new())
        .unwrap()
        .start()
        .await
        .unwrap();
    let target = Target::single(running.tcp_addr().unwrap(), running.ws_addr().unwrap());
    let admin = format!("http://{}", running.admin_addr().unwrap());
    (running, target, admin)
}

fn messaging(target: Target, admin: String, transport: Transport, load: Load) -> Messaging {
    Messaging {
        target,
        transport,
        clients: 20,
        group_size: None,
        load,
        duration: Duration::from_millis(500),
        body_size: 200,
        drain: Duration::from_secs(5),
        run_id: format!("t{}", fastrand::u32(..)),
        admin: Some((admin, None)),
        // This process hosts the gateway: its CPU and memory stand in.
        server_pid: Some(std::process::id()),
        progress: false,
        receipts: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_c2c_over_both_transports_is_clean() {
    let (gw, target, admin) = gateway(|_| {}).await;
    for transport in [Transport::Tcp, Transport::Ws] {
        let report = messaging(
            target.clone(),
            admin.clone(),
            transport,
            Load::Closed { window: 4 },
        )
        .run()
        .await
        .unwrap();
        let counts = report.counts.unwrap();
        assert!(report.is_clean(), "{report}");
        assert!(counts.acked > 0 && counts.sent == counts.acked, "{report}");
        assert_eq!(counts.delivered, counts.expected, "{report}");
        assert!(report.throughput > 0.0 && report.latency.unwrap().count == counts.delivered);
        assert!(report.server.unwrap().cpu_us_per_message.is_some());
        assert!(report.send_lag.is_none(), "closed loop has no schedule");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate_and_reports_latency_and_lag() {
    let (gw, target, admin) = gateway(|_| {}).await;
    // Over WebSocket the clock thread frames and masks the frames itself:
    // the gateway accepting them is the check of that framing.
    for transport in [Transport::Tcp, Transport::Ws] {
        let report = messaging(
            target.clone(),
            admin.clone(),
            transport,
            Load::Open { rate: 400.0 },
        )
        .run()
        .await
        .unwrap();
        let counts = report.counts.unwrap();
        assert!(report.is_clean(), "{report}");
        // 400 messages per second for half a second.
        assert!((150..=250).contains(&counts.sent), "{report}");
        assert_eq!(counts.delivered, counts.sent, "{report}");
        assert_eq!(report.latency.unwrap().count, counts.delivered);
        assert_eq!(report.send_lag.unwrap().count, counts.sent);
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2g_delivers_each_message_to_every_other_member() {
    let (gw, target, admin) = gateway(|_| {}).await;
    let mut plan = messaging(target, admin, Transport::Ws, Load::Closed { window: 2 });
    plan.group_size = Some(5);
    let report = plan.run().await.unwrap();
    let counts = report.counts.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(counts.expected, counts.acked * 4, "{report}");
    assert_eq!(counts.delivered, counts.expected);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_reported_not_hidden() {
    let (gw, target, admin) = gateway(|c| {
        c.limits.messages_per_sec = 5;
        c.limits.message_burst = 5;
    })
    .await;
    let report = messaging(target, admin, Transport::Tcp, Load::Closed { window: 4 })
        .run()
        .await
        .unwrap();
    let counts = report.counts.unwrap();
    assert!(counts.errors > 0, "{report}");
    assert!(!report.is_clean());
    assert!(report.to_string().contains("YES: lost 0"), "{report}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_connect_open_every_connection() {
    let (gw, target, _) = gateway(|_| {}).await;
    for transport in [Transport::Tcp, Transport::Ws] {
        let connecting = Connecting {
            target: target.clone(),
            transport,
            count: 100,
            concurrency: 16,
            run_id: "idle".into(),
            server_pid: Some(std::process::id()),
            progress: false,
        };
        let report = connecting.clone().idle(Duration::from_millis(100)).await.unwrap();
        assert_eq!(report.connections.unwrap().established, 100, "{report}");
        assert!(report.server.unwrap().rss_bytes_per_connection.is_some());
        let report = connecting.connect_rate().await.unwrap();
        let connections = report.connections.unwrap();
        assert_eq!((connections.established, connections.failed), (100, 0));
        assert!(connections.per_second > 0.0);
        assert!(report.is_clean());
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_parameters_are_refused() {
    let (gw, target, admin) = gateway(|_| {}).await;
    let mut plan = messaging(target, admin, Transport::Tcp, Load::Closed { window: 4 });
    plan.group_size = Some(3); // does not divide 20
    assert!(
        plan.clone()
            .run()
            .await
            .unwrap_err()
            .to_string()
            .contains("must be at least 2 and divide")
    );
    plan.group_size = None;
    plan.clients = 1;
    assert!(plan.run().await.is_err());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calibration_relay_runs_c2c_cleanly_in_both_loops() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = tokio::spawn(jim_bench::relay::serve(listener));
    // The relay has no WebSocket listener and no admin API: c2c over TCP only.
    let target = Target {
        tcp: vec![addr],
        ws: vec![],
        ws_path: "/ws".to_owned(),
        tls: None,
    };
    for load in [Load::Closed { window: 4 }, Load::Open { rate: 400.0 }] {
        let mut plan = messaging(target.clone(), String::new(), Transport::Tcp, load);
        plan.admin = None;
        let report = plan.run().await.unwrap();
        let counts = report.counts.unwrap();
        assert!(report.is_clean(), "{report}");
        assert!(counts.sent > 0 && counts.acked == counts.sent, "{report}");
        assert_eq!(counts.delivered, counts.sent, "{report}");
    }
    relay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_c2c_and_connect_over_tls_are_clean() {
    let ca = jim_test_util::tls::TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue(&["127.0.0.1"], "gateway").write(dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let (gw, mut target, admin) = gateway(|c| {
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
        c.tls.plaintext = vec!["admin".into()];
    })
    .await;
    target.tls = Some(jim_bench::conn::trusting(&ca_file).unwrap());
    let report = messaging(target.clone(), admin, Transport::Tls, Load::Closed { window: 4 })
        .run()
        .await
        .unwrap();
    let counts = report.counts.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(counts.delivered, counts.expected, "{report}");
    let report = Connecting {
        target,
        transport: Transport::Tls,
        count: 50,
        concurrency: 8,
        run_id: format!("t{}", fastrand::u32(..)),
        server_pid: None,
        progress: false,
    }
    .connect_rate()
    .await
    .unwrap();
    assert!(report.is_clean(), "{report}");
    gw.shutdown().await;
}

/// A Debian server binary (in `/usr/sbin`, which a user's `PATH` may lack).
fn debian_binary(name: &str) -> std::path::PathBuf {
    let sbin = std::path::Path::new("/usr/sbin").join(name);
    if sbin.exists() { sbin } else { name.into() }
}

/// A peer's server process, killed when dropped.
struct PeerServer {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// mosquitto on a free loopback port (it cannot pick one itself: a port
/// taken meanwhile makes it exit, and another is tried). Ready once its
/// log says it runs.
fn mosquitto() -> PeerServer {
    use std::io::BufRead;
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nlog_dest stderr\nlog_type information\nlog_type error\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new(debian_binary("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto (Debian package mosquitto; .ci/run installs it)");
        // Killed and waited for by its drop, whatever happens next.
        let mut server = PeerServer {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            _dir: dir,
        };
        let mut lines = std::io::BufReader::new(server.child.stderr.take().unwrap()).lines();
        // Its log ends (it exited) if the port was taken meanwhile.
        for line in lines.by_ref() {
            if line.unwrap().contains(" running") {
                // Its log is read on: a server writing to a closed pipe would die.
                std::thread::spawn(move || lines.for_each(drop));
                return server;
            }
        }
    }
    panic!("mosquitto did not start");
}

/// nats-server on a port of its own choosing (`-p -1`), read from its log.
fn nats_server() -> PeerServer {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(debian_binary("nats-server"))
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nats-server (Debian package nats-server; .ci/run installs it)");
    // Killed and waited for by its drop, whatever happens next.
    let mut server = PeerServer {
        child,
        addr: ([127, 0, 0, 1], 0).into(),
        _dir: dir,
    };
    let log = std::io::BufReader::new(server.child.stderr.take().unwrap());
    const LISTENING: &str = "Listening for client connections on ";
    let mut lines = log.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.find(LISTENING) {
            server.addr = line[at + LISTENING.len()..].trim().parse().unwrap();
            // Its log is read on: a server writing to a closed pipe would die.
            std::thread::spawn(move || lines.for_each(drop));
            return server;
        }
    }
    panic!("nats-server ended before listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peers_run_c2c_and_idle_cleanly_over_their_own_protocols() {
    for (server, transport) in [(mosquitto(), Transport::Mqtt), (nats_server(), Transport::Nats)] {
        let target = Target {
            tcp: vec![server.addr],
            ws: vec![],
            ws_path: "/ws".to_owned(),
            tls: None,
        };
        for load in [Load::Closed { window: 4 }, Load::Open { rate: 400.0 }] {
            let mut plan = messaging(target.clone(), String::new(), transport, load);
            plan.admin = None;
            plan.server_pid = Some(server.child.id());
            let report = plan.run().await.unwrap();
            let counts = report.counts.unwrap();
            assert!(report.is_clean(), "{transport:?}: {report}");
            assert!(
                counts.sent > 0 && counts.acked == counts.sent,
                "{transport:?}: {report}"
            );
            assert_eq!(counts.delivered, counts.sent, "{transport:?}: {report}");
        }
        let report = Connecting {
            target: target.clone(),
            transport,
            count: 50,
            concurrency: 8,
            run_id: format!("t{}", fastrand::u32(..)),
            server_pid: Some(server.child.id()),
            progress: false,
        }
        .idle(Duration::from_millis(100))
        .await
        .unwrap();
        assert_eq!(
            report.connections.unwrap().established,
            50,
            "{transport:?}: {report}"
        );
    }
}

/// Signs every client in, then never acks nor delivers a message.
async fn swallowing_server(listener: tokio::net::TcpListener) {
    use jim_protocol::{Command, Frame, FrameCodec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let codec = FrameCodec::new();
            let mut input = bytes::BytesMut::with_capacity(16 * 1024);
            loop {
                match stream.read_buf(&mut input).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while let Ok(Some(frame)) = codec.decode_from(&mut input) {
                    if frame.cmd == Command::Auth {
                        let ok = Frame::new(Command::AuthOk, frame.seq, "{}").to_bytes().unwrap();
                        let _ = stream.write_all(&ok).await;
                    }
                }
                input.reserve(16 * 1024);
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_whose_acks_never_come_still_ends_and_says_so() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target {
        tcp: vec![listener.local_addr().unwrap()],
        ws: vec![],
        ws_path: "/ws".to_owned(),
        tls: None,
    };
    let server = tokio::spawn(swallowing_server(listener));
    let mut plan = messaging(target, String::new(), Transport::Tcp, Load::Closed { window: 4 });
    plan.admin = None;
    plan.drain = Duration::from_millis(200);
    // Before: every sender waited for its window forever.
    let report = tokio::time::timeout(Duration::from_secs(60), plan.run())
        .await
        .expect("the run ends")
        .unwrap();
    let counts = report.counts.unwrap();
    assert_eq!(counts.acked, 0, "{report}");
    assert_eq!(counts.sent, 20 * 4, "each sender sent its window: {report}");
    assert!(!report.is_clean(), "{report}");
    server.abort();
}
