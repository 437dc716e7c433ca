//! A service that embeds Jim: the gateway and its router run inside the
//! application's own process, which observes every message (history),
//! vetoes some (moderation), manages a group and pushes system messages.
//!
//! ```sh
//! cargo run -p jim-examples --bin embed
//! # then, in two terminals:
//! cargo run -p jim-examples --bin chat -- --user alice --group lobby
//! cargo run -p jim-examples --bin chat -- --user bob --group lobby
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use jim_gateway::{Config, Gateway};
use jim_model::{Message, MessageIdGenerator, Text};
use jim_router::{ChannelObserver, Directory, LocalRouter, Observed, Observer, Outgoing, Router, Target};

#[derive(Debug, Parser)]
#[command(about = "An application with Jim embedded")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9001")]
    tcp: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:9000")]
    ws: SocketAddr,
    /// Users put in the `lobby` group at start.
    #[arg(long, value_delimiter = ',', default_value = "alice,bob,carol")]
    lobby: Vec<String>,
}

/// Moderation: refuses messages containing a banned word.
struct Moderation;

impl Observer for Moderation {
    fn on_message(&self, message: &Outgoing) -> Result<(), String> {
        if String::from_utf8_lossy(&message.body).contains("forbidden") {
            return Err("that word is not allowed here".into());
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences, not Debug output.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("embed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // History: every accepted message arrives on a channel.
    let (history, mut events) = ChannelObserver::new(1024);
    let router = LocalRouter::with_observers(vec![Arc::new(Moderation), Arc::new(history)]);
    let lobby: Vec<_> = args.lobby.iter().map(|u| u.as_str().into()).collect();
    router.add_members("lobby", &lobby).await?;

    let mut config = Config::ephemeral_dev();
    config.listen.tcp = Some(args.tcp);
    config.listen.ws = Some(args.ws);
    config.listen.admin = None; // this service has its own API
    config.node_id = 1;
    let gateway = Gateway::new(config, router.clone())?.start().await?;
    println!(
        "embedded gateway: tcp {} ws ws://{}/ws (development auth; the lobby is {:?})",
        gateway.tcp_addr().unwrap(),
        gateway.ws_addr().unwrap(),
        args.lobby
    );

    // The service's own message ids come from its own node id.
    let ids = MessageIdGenerator::new(2)?;
    let mut greeted = HashSet::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            Some(event) = events.recv() => match event {
                Observed::Message(message) => {
                    let sender = message.sender.as_ref().map_or("(service)".into(), |s| s.user.to_string());
                    println!("history: {} {} from {sender}: {}", message.cmd, message.message_id,
                        String::from_utf8_lossy(&message.body));
                    // Greet each user the first time they speak.
                    if message.sender.is_some() && greeted.insert(sender.clone()) {
                        let body = Message::Text(Text::new(sender.as_str(), format!("welcome, {sender}!"))).to_vec();
                        let push = Outgoing::push(Target::User(sender.as_str().into()), &body, "concierge", &ids)?;
                        router.route(push).await?;
                    }
                }
                Observed::Ack(ack) => println!("history: {} read {}", ack.user, ack.message_id),
            },
        }
    }
    gateway.shutdown().await;
    Ok(())
}
