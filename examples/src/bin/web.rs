//! Serves the browser chat (`examples/web/`), built on the TypeScript SDK
//! (`clients/typescript`), which speaks `jim1` over WebSocket straight to
//! the gateway.
//!
//! ```sh
//! npm --prefix clients/typescript ci           # the SDK, built into clients/typescript/dist
//! cargo run -p jim-gateway -- --dev            # the gateway, ws://127.0.0.1:9000/ws
//! cargo run -p jim-examples --bin web          # the page, http://127.0.0.1:8080
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use clap::Parser;

const PAGE: &str = include_str!("../../web/index.html");
const APP: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");
/// The page's icon: a speech bubble (browsers ask for `/favicon.ico`).
const ICON: &str = concat!(
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">",
    "<path fill=\"#2563eb\" d=\"M4 4h24a2 2 0 0 1 2 2v16a2 2 0 0 1-2 2H12l-6 5v-5H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z\"/>",
    "</svg>"
);

#[derive(Debug, Parser)]
#[command(about = "Serve the Jim browser chat")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The SDK's compiled modules (`npm --prefix clients/typescript ci` builds them).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/typescript/dist"))]
    sdk: PathBuf,
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
    if !args.sdk.join("index.js").is_file() {
        return Err(format!(
            "the SDK is not built: {} has no index.js (run `npm --prefix clients/typescript ci`, or pass --sdk)",
            args.sdk.display()
        )
        .into());
    }
    let app = axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/app.js", get(|| async { asset("text/javascript", APP) }))
        .route("/style.css", get(|| async { asset("text/css", STYLE) }))
        .route("/favicon.svg", get(|| async { asset("image/svg+xml", ICON) }))
        .route("/favicon.ico", get(|| async { asset("image/svg+xml", ICON) }))
        .route("/sdk/{*file}", get(sdk_file))
        .with_state(args.sdk);
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (another server there? pass --listen)",
            args.listen
        )
    })?;
    println!(
        "open http://{} (the gateway's WebSocket must be running)",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A module of the SDK: only plain names below `dir`, never `..`.
async fn sdk_file(State(dir): State<PathBuf>, UrlPath(file): UrlPath<String>) -> Response {
    let safe = file.split('/').all(|part| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    });
    let content_type = match Path::new(&file).extension().and_then(|e| e.to_str()) {
        Some("js") => "text/javascript",
        Some("map") => "application/json",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = dir.join(&file);
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
