//! One gateway of a multi-gateway deployment as the grpc and kafka tests
//! see it: where it listens, and presence as it reports it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Kind, Raw, admin_request};

/// Where one gateway listens. The tests' gateway handles deref to it, so
/// `gateway.user(..)` and `gateway.admin(..)` read the same everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub admin: SocketAddr,
}

impl Listeners {
    /// A client of this gateway, authenticated as `user`.
    pub async fn user(&self, kind: Kind, user: &str) -> Raw {
        let mut raw = match kind {
            Kind::Tcp => Raw::tcp(self.tcp).await,
            Kind::Ws => Raw::ws(&format!("ws://{}/ws", self.ws)).await,
        };
        raw.auth(user).await;
        raw
    }

    /// One call to this gateway's admin API.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        admin_request(self.admin, method, path, body, None).await
    }
}

/// Waits until the gateway whose admin API is at `admin` sees `count`
/// sessions of `user`; returns how long that took. Presence spreads from
/// other processes (a router, a broker), which signal nothing here: this
/// asks the admin API again every 20 ms until `within` has passed.
pub async fn wait_presence(admin: SocketAddr, user: &str, count: usize, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (_, body) = admin_request(admin, "GET", &format!("/v1/users/{user}/sessions"), None, None).await;
        if body["sessions"].as_array().is_some_and(|s| s.len() == count) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{user} never had {count} sessions: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The gateway nodes of the sessions in a `/v1/users/{user}/sessions`
/// reply, sorted.
pub fn session_nodes(body: &Value) -> Vec<u64> {
    let mut nodes: Vec<u64> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_u64().unwrap())
        .collect();
    nodes.sort();
    nodes
}
