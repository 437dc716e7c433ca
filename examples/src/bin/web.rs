//! Serves the browser chat page (`examples/web/index.html`), which speaks
//! `jim1` over WebSocket straight to the gateway.
//!
//! ```sh
//! cargo run -p jim-gateway -- --dev            # the gateway, ws://127.0.0.1:9000/ws
//! cargo run -p jim-examples --bin web          # the page, http://127.0.0.1:8080
//! ```

use std::net::SocketAddr;

use axum::response::Html;
use axum::routing::get;
use clap::Parser;

const PAGE: &str = include_str!("../../web/index.html");

#[derive(Debug, Parser)]
#[command(about = "Serve the Jim browser chat page")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences, not Debug output.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("web: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let app = axum::Router::new().route("/", get(|| async { Html(PAGE) }));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "open http://{} (the gateway's WebSocket must be running)",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
