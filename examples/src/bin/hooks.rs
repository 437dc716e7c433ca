//! A small moderation-and-push service for Jim's hooks and events
//! (contract section 9): what an application's backend does with them.
//!
//! ```sh
//! JIM_HOOKS_SECRET="a long shared secret" cargo run -p jim-examples --bin hooks
//! ```
//!
//! - `POST /hook`, the before-send hook: denies a message holding the
//!   word (`--deny`, default `spam`) with code 4403, rewrites each link to
//!   `[link]`, allows the rest.
//! - `POST /events`: prints what it would push to phones (`push.needed`)
//!   and a line for each other event.
//!
//! Both check `Jim-Signature` first (a request that does not carry a
//! valid one gets 401): only the gateway, which has the secret, can call.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clap::Parser;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "A moderation-and-push service for Jim's hooks and events")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: std::net::SocketAddr,
    /// The secret the gateway signs with (its `hooks.secret`).
    #[arg(long, env = "JIM_HOOKS_SECRET", hide_env_values = true)]
    secret: String,
    /// Messages holding this word are refused.
    #[arg(long, default_value = "spam")]
    deny: String,
}

struct Service {
    secret: String,
    deny: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let service = Arc::new(Service {
        secret: args.secret,
        deny: args.deny.to_lowercase(),
    });
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .route("/events", post(events))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("hooks service listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

impl Service {
    /// Whether the request came from the gateway: signed with our secret,
    /// within 5 minutes.
    fn signed(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = headers
            .get(jim_hooks::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        jim_hooks::verify(header, body, &self.secret, now, 300).is_ok()
    }
}

async fn hook(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    if !service.signed(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON".into());
    };
    let content = request["message"]["data"]["content"].as_str().unwrap_or("");
    let verdict = if content.to_lowercase().contains(&service.deny) {
        json!({"verdict": "deny", "code": 4403, "reason": format!("messages may not contain \"{}\"", service.deny)})
    } else if content.contains("http://") || content.contains("https://") {
        let rewritten: Vec<&str> = content
            .split(' ')
            .map(|word| {
                if word.starts_with("http://") || word.starts_with("https://") {
                    "[link]"
                } else {
                    word
                }
            })
            .collect();
        json!({"verdict": "replace", "data": {"content": rewritten.join(" ")}})
    } else {
        json!({"verdict": "allow"})
    };
    println!(
        "hook: {} -> {}: {content:?}: {}",
        request["sender"], request["conversation"], verdict["verdict"]
    );
    (StatusCode::OK, verdict.to_string())
}

async fn events(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !service.signed(&headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(batch) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    for event in batch["events"].as_array().into_iter().flatten() {
        match event["type"].as_str().unwrap_or("") {
            "push.needed" => println!(
                "push to {}: {}: {}",
                event["user"].as_str().unwrap_or("?"),
                event["sender"].as_str().unwrap_or("?"),
                event["preview"].as_str().unwrap_or("(new message)")
            ),
            "message.accepted" => println!(
                "event: message {} from {} to {}",
                event["message_id"].as_str().unwrap_or("?"),
                event["sender"].as_str().unwrap_or("?"),
                event["conversation"]
            ),
            other => println!("event: {other} {}", event["user"].as_str().unwrap_or("")),
        }
    }
    // 2xx: taken. Anything else, and Jim sends the batch again (events
    // carry an `id` for the receiver to drop repeats).
    StatusCode::NO_CONTENT
}
