//! An application's own gRPC server with the Jim router mounted in it: the
//! application observes every message crossing its gateways (history) and
//! pushes system messages, without any HTTP call.
//!
//! ```sh
//! cargo run -p jim-examples --bin router_embed                     # the router, on 127.0.0.1:9093
//! cargo run -p jim-gateway --features grpc -- --dev --mode grpc    # a gateway linked to it
//! cargo run -p jim-examples --bin chat -- --user alice --to bob
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jim_model::{Message, MessageIdGenerator, Text};
use jim_router::{ChannelObserver, Observed, Outgoing, Target};
use jim_router_grpc::{CentralConfig, CentralRouter};
use tokio_stream::wrappers::TcpListenerStream;

#[derive(Debug, Parser)]
#[command(about = "An application hosting the Jim router in its own gRPC server")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9093")]
    grpc: SocketAddr,
    /// Push the time to everyone this often (seconds; 0: never).
    #[arg(long, default_value_t = 60)]
    tick: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences, not Debug output.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("router_embed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (history, mut events) = ChannelObserver::new(1024);
    let router = CentralRouter::new(CentralConfig::new(1000), vec![Arc::new(history)])?;

    // The application's server: the router's service beside its own ones.
    let listener = tokio::net::TcpListener::bind(args.grpc).await?;
    println!("router embedded at http://{}", listener.local_addr()?);
    let service = router.service();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });

    // The application pushes with its own ids (its own node id).
    let ids = MessageIdGenerator::new(1001)?;
    let mut ticker = tokio::time::interval(Duration::from_secs(args.tick.max(1)));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticker.tick(), if args.tick > 0 => {
                let now = jim_model::unix_ms_now();
                let body = Message::Text(Text::new("*", format!("server time {now}"))).to_vec();
                router.route(Outgoing::push(Target::Everyone, &body, "clock", &ids)?).await?;
            }
            Some(event) = events.recv() => match event {
                Observed::Message(message) => {
                    println!("history: {} {} {}", message.cmd, message.message_id, String::from_utf8_lossy(&message.body));
                    // Thank whoever writes, from the application itself.
                    if let Some(sender) = &message.sender {
                        let thanks = Message::Text(Text::new(&*sender.user, "message received by the app")).to_vec();
                        router.route(Outgoing::push(Target::User(Arc::clone(&sender.user)), &thanks, "app", &ids)?).await?;
                    }
                }
                Observed::Ack(ack) => println!("history: {} read {}", ack.user, ack.message_id),
            },
        }
    }
}
