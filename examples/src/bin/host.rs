//! A service of your own with the gateway inside it, in whichever mode its
//! configuration says (local, grpc or kafka): `jim_gateway::start`, the
//! library's composition root, beside the service's own HTTP endpoint.
//!
//! ```sh
//! cargo run -p jim-examples --bin host                                   # local mode
//! cargo run -p jim-examples --bin host -- --mode grpc --router http://127.0.0.1:9093
//! cargo run -p jim-examples --features kafka --bin host -- --mode kafka --kafka-bootstrap 127.0.0.1:9092
//! cargo run -p jim-examples --bin host -- --config jim.toml              # any mode, from a file
//! ```
//!
//! It runs until Ctrl-C or the end of its input, then stops the gateway
//! (every session told `A999` 1001) and itself.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::routing::get;
use clap::Parser;
use jim_gateway::{Config, Mode};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Parser)]
#[command(about = "A service with the Jim gateway inside, in any mode")]
struct Args {
    /// The gateway's configuration file (default: development mode, every
    /// other setting at its default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The gateway's mode, over the file's.
    #[arg(long, value_parser = ["local", "grpc", "kafka"])]
    mode: Option<String>,
    /// grpc mode: the central router.
    #[arg(long)]
    router: Option<String>,
    /// kafka mode: the brokers.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// kafka mode: the topics' prefix.
    #[arg(long)]
    kafka_prefix: Option<String>,
    /// The gateway's node id (unique in a deployment).
    #[arg(long)]
    node_id: Option<u16>,
    /// The gateway's client and admin listeners on ephemeral loopback
    /// ports (several hosts on one machine, tests).
    #[arg(long)]
    ephemeral: bool,
    /// The service's own HTTP endpoint.
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: SocketAddr,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences, not Debug output.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("host: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn config(args: &Args) -> Result<Config, Box<dyn std::error::Error>> {
    let mut config = match &args.config {
        Some(path) => toml::from_str(&std::fs::read_to_string(path)?)?,
        None => {
            let mut config = Config::default();
            config.auth.dev = true;
            config
        }
    };
    if args.ephemeral {
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        (config.listen.tcp, config.listen.ws, config.listen.admin) = (any, any, any);
    }
    config.mode = match args.mode.as_deref() {
        Some("grpc") => Mode::Grpc,
        Some("kafka") => Mode::Kafka,
        Some(_) => Mode::Local,
        None => config.mode,
    };
    if let Some(router) = &args.router {
        config.grpc.router.clone_from(router);
    }
    if let Some(bootstrap) = &args.kafka_bootstrap {
        config.kafka.bootstrap.clone_from(bootstrap);
    }
    if let Some(prefix) = &args.kafka_prefix {
        config.kafka.topic_prefix.clone_from(prefix);
    }
    if config.mode == Mode::Kafka && args.config.is_none() {
        // kafka mode keeps inboxes in Redis; without one, none.
        config.inbox.store = jim_router::inbox::InboxStore::Off;
    }
    if let Some(node) = args.node_id {
        config.node_id = node;
    }
    Ok(config)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = config(&args)?;
    let mode = config.mode;
    // The gateway, as the configuration says: the one call for any mode.
    let gateway = jim_gateway::start(config).await?;
    let show = |addr: Option<SocketAddr>| addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let (tcp, ws, admin) = (
        show(gateway.tcp_addr()),
        show(gateway.ws_addr()),
        show(gateway.admin_addr()),
    );

    // The service's own endpoint, telling where its gateway is.
    let status = serde_json::json!({ "mode": mode.as_str(), "tcp": tcp, "ws": ws, "admin": admin });
    let app = axum::Router::new().route(
        "/gateway",
        get(move || {
            let status = status.clone();
            async move { axum::Json(status) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http))?;
    let http = listener.local_addr()?;
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    println!(
        "host: gateway in {} mode, tcp {tcp}, websocket {ws}, admin {admin}; service http://{http}/gateway",
        mode.as_str()
    );

    // Until Ctrl-C or the end of input.
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { while let Ok(Some(_)) = input.next_line().await {} } => {}
    }
    let clean = gateway.shutdown().await;
    serving.abort();
    println!(
        "host: stopped ({})",
        if clean {
            "every session closed"
        } else {
            "some sessions cut at the grace period"
        }
    );
    Ok(())
}
