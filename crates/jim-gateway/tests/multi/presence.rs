//! Presence as a multi-gateway deployment shows it, for the grpc and
//! kafka tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::admin_request;

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
