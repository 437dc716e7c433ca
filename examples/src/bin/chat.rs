//! A terminal chat client, like the seed's `tcp_send`.
//!
//! ```sh
//! cargo run -p jim-examples --bin chat -- --user alice --to bob
//! cargo run -p jim-examples --bin chat -- --user bob --to alice --url ws://127.0.0.1:9000/ws
//! ```
//!
//! Over TLS: `--url tls://HOST:PORT` or `wss://HOST:PORT/ws`, and `--ca`
//! for a gateway whose certificate is not from a CA the system trusts.
//!
//! Type a line and press Enter to send it; incoming messages are printed as
//! they arrive. `/quit` (or end of input) leaves. Messages sent to you
//! while you were away arrive when you come back (the gateway's inbox), and
//! a lost connection is re-made by itself.

use clap::Parser;
use jim_client::{Endpoint, Event, Session};
use jim_model::{Message, Text};
use jim_protocol::Command;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Parser)]
#[command(about = "Chat through a Jim gateway from the terminal")]
struct Args {
    /// Who you are (in development mode the token is the user id).
    #[arg(long)]
    user: String,
    /// A token; defaults to the user id (development mode).
    #[arg(long)]
    token: Option<String>,
    /// Who to talk to (a user id).
    #[arg(long, conflicts_with = "group")]
    to: Option<String>,
    /// A group to talk to instead.
    #[arg(long)]
    group: Option<String>,
    /// The gateway: `tcp://HOST:PORT`, `tls://HOST:PORT`,
    /// `ws://HOST:PORT/ws` or `wss://HOST:PORT/ws`.
    #[arg(long, default_value = "tcp://127.0.0.1:9001")]
    url: String,
    /// Over TLS, the CA (PEM) the gateway's certificate must come from;
    /// by default the system's roots.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors as sentences, not Debug output.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (cmd, receiver) = match (&args.to, &args.group) {
        (Some(user), None) => (Command::C2C, user.clone()),
        (None, Some(group)) => (Command::C2G, group.clone()),
        _ => return Err("give --to USER or --group GROUP".into()),
    };
    let token = args.token.as_deref().unwrap_or(&args.user);
    // Everything the inbox still holds, as a new device would.
    let options = jim_client::Options {
        ca: args.ca.clone(),
        ..jim_client::Options::default()
    };
    let mut session = Session::builder(Endpoint::parse(&args.url), token)
        .options(options)
        .device("terminal")
        .from_start()
        .connect()
        .await?;
    println!("* signed in as {}; talking to {receiver}", args.user);

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // The first sign-in asks for everything kept (a new device): nothing is
    // missing then. Afterwards the session resumes from where it was.
    let mut first_sign_in = true;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let line = line.trim();
                if line == "/quit" {
                    break;
                }
                if line.is_empty() {
                    continue;
                }
                let message = Message::Text(Text::new(receiver.as_str(), line));
                match session.send(cmd, &message).await {
                    Ok(ack) => println!("* sent ({})", ack.message_id),
                    Err(e) => println!("* not sent: {e}"),
                }
            }
            event = session.next() => match event? {
                Event::Resumed { inbox } => {
                    match inbox {
                        Some(inbox) if first_sign_in && inbox.offset > 0 => {
                            println!("* catching up on what your inbox holds");
                        }
                        Some(inbox) if !first_sign_in && !inbox.recovered => {
                            println!("* back; some messages sent while you were away may be gone (older than the inbox keeps)");
                        }
                        _ => {}
                    }
                    first_sign_in = false;
                }
                Event::Message { cmd, message, .. } => print_message(cmd, &message),
                Event::Typing { sender_id, on: true, .. } => println!("* {sender_id} is typing..."),
                Event::Typing { .. } => {}
                Event::Disconnected { reason, retry_in } => {
                    println!("* {reason}; reconnecting in {} ms", retry_in.as_millis());
                }
            },
        }
    }
    let status = session.close().await?;
    println!("* bye ({} {})", status.code, status.reason);
    Ok(())
}

fn print_message(cmd: Command, message: &Message) {
    let Some(common) = message.common() else { return };
    let from = common
        .sender_name
        .as_deref()
        .or(common.sender_id.as_deref())
        .unwrap_or("?");
    let place = if cmd == Command::C2G {
        format!(" in {}", common.receiver_id)
    } else {
        String::new()
    };
    let what = match message {
        Message::Text(text) => text.content.clone(),
        Message::Face(face) => face.symbol.clone(),
        Message::Location(loc) => format!("[location {} {}]", loc.lat, loc.lng),
        Message::Image(image) => format!("[image {}]", image.big_url),
        Message::Sound(sound) => format!("[sound {}]", sound.url),
        Message::File(file) => format!("[file {}]", file.name),
        Message::Video(video) => format!("[video {}]", video.url),
        Message::Ack(_) | Message::Error(_) => return,
    };
    if cmd == Command::S2C {
        // The usual pusher is the system itself: no need to say it twice.
        match from {
            "system" => println!("<push> {what}"),
            other => println!("<push from {other}> {what}"),
        }
    } else {
        println!("<{from}{place}> {what}");
    }
}
