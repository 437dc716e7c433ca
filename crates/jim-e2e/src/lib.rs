//! Jim end to end: the gateway and the router over real sockets, in this
//! process ([`Gw`]) and as processes (the `e2e-gateway` and `e2e-router`
//! binaries of this package, the same programs as `jim-gateway` and
//! `jim-router`), in every mode. The tests are this package's; what they
//! share of the outside world (Redis, tansu, a test CA, raw clients) is
//! `jim-test-util`'s, which depends on none of Jim's higher crates.

#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod receiver;
pub mod stopping;

use std::net::SocketAddr;
use std::time::Duration;

use jim_client::Client;
use jim_gateway::{Config, Gateway, RunningGateway};
use jim_router::{LocalRouter, Observer};
use jim_test_util::{Kind, Raw, WAIT, admin_request, http};
use serde_json::Value;

/// The gateway binary these tests run (a path; in this package's tests).
#[macro_export]
macro_rules! gateway_bin {
    () => {
        env!("CARGO_BIN_EXE_e2e-gateway")
    };
}

/// The router binary these tests run (a path; in this package's tests).
#[macro_export]
macro_rules! router_bin {
    () => {
        env!("CARGO_BIN_EXE_e2e-router")
    };
}

/// A gateway running in this process with the local router.
pub struct Gw {
    running: Option<RunningGateway>,
    pub router: LocalRouter,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub admin: SocketAddr,
    pub admin_key: Option<String>,
}

impl Gw {
    pub async fn start() -> Gw {
        Gw::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Gw {
        Gw::with_router(LocalRouter::new(), adjust).await
    }

    pub async fn with_observer(observer: std::sync::Arc<dyn Observer>) -> Gw {
        Gw::with_router(LocalRouter::with_observers(vec![observer]), |_| {}).await
    }

    pub async fn with_router(router: LocalRouter, adjust: impl FnOnce(&mut Config)) -> Gw {
        let mut config = Config::ephemeral_dev();
        config.session.shutdown_grace_ms = 2_000;
        adjust(&mut config);
        let admin_key = config.admin.key.clone();
        let running = Gateway::new(config, router.clone())
            .unwrap()
            .start()
            .await
            .unwrap();
        Gw {
            tcp: running.tcp_addr().unwrap(),
            ws: running.ws_addr().unwrap(),
            admin: running.admin_addr().unwrap(),
            running: Some(running),
            router,
            admin_key,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.ws)
    }

    pub async fn raw(&self, kind: Kind) -> Raw {
        match kind {
            Kind::Tcp => Raw::tcp(self.tcp).await,
            Kind::Ws => Raw::ws(&self.ws_url()).await,
        }
    }

    /// A raw connection, authenticated as `user`.
    pub async fn user(&self, kind: Kind, user: &str) -> Raw {
        let mut raw = self.raw(kind).await;
        raw.auth(user).await;
        raw
    }

    /// An SDK client, authenticated as `user` (development tokens).
    pub async fn client(&self, kind: Kind, user: &str) -> Client {
        let mut client = match kind {
            Kind::Tcp => Client::connect_tcp(self.tcp).await.unwrap(),
            Kind::Ws => Client::connect_ws(&self.ws_url()).await.unwrap(),
        };
        client.authenticate(user, Some("test")).await.unwrap();
        client
    }

    /// Sends an admin API request; returns status and JSON body.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let key = self.admin_key.clone();
        admin_request(self.admin, method, path, body, key.as_deref()).await
    }

    /// Waits until `/metrics` has `line` (say `jim_connections_parked 2`).
    /// For what the gateway does inside and tells no client: this asks
    /// again every 20 ms until [`WAIT`] has passed.
    pub async fn wait_metric(&self, line: &str) {
        let start = std::time::Instant::now();
        loop {
            let (_, text) = http(self.admin, "GET", "/metrics", None, None).await;
            if text.lines().any(|l| l == line) {
                return;
            }
            assert!(start.elapsed() < WAIT, "never `{line}` in:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(mut self) -> bool {
        self.running.take().unwrap().shutdown().await
    }
}

/// A metric's value in Prometheus text (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the metric `name` (labels included) of the admin API at
/// `admin` reaches `at_least`; returns its value. For what a process
/// counts and tells no client: `/metrics` is read again every 20 ms until
/// 4 x [`WAIT`] has passed.
pub async fn wait_metric_at_least(admin: SocketAddr, name: &str, at_least: f64) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let (_, text) = http(admin, "GET", "/metrics", None, None).await;
        let value = metric(&text, name);
        if value >= at_least {
            return value;
        }
        assert!(start.elapsed() < WAIT * 4, "{name} stayed at {value}:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
