//! `jim-bench`: see `jim-bench --help` and `docs/benchmarks.md`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use jim_bench::BenchError;
use jim_bench::conn::{Target, Transport};
use jim_bench::idle::Connecting;
use jim_bench::messaging::{Load, Messaging};

/// Longest run accepted, in seconds.
const MAX_SECONDS: f64 = 600.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Clients send to uniformly random other clients.
    C2c,
    /// Clients send to their group; every other member gets it.
    C2g,
    /// Hold authenticated connections open; memory per connection.
    Idle,
    /// Connect and authenticate as fast as possible.
    Connect,
    /// Send to offline recipients (stored in their inboxes), then bring
    /// them back with `since`: store and replay rates.
    Offline,
    /// Ask for a conversation's history and the conversation list (`B105`)
    /// at `--rate` requests a second: their latencies.
    History,
}

/// Load generator for the Jim gateway (loopback only).
#[derive(Debug, Parser)]
#[command(name = "jim-bench", version, about)]
struct Args {
    /// What to run.
    #[arg(value_enum)]
    workload: Workload,
    /// Transport.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: Transport,
    /// The gateway's TCP listener; several, comma-separated, spread the
    /// clients over several gateways.
    #[arg(long, default_value = "127.0.0.1:9001", value_delimiter = ',')]
    tcp: Vec<SocketAddr>,
    /// The gateway's WebSocket listener(s).
    #[arg(long, default_value = "127.0.0.1:9000", value_delimiter = ',')]
    ws: Vec<SocketAddr>,
    /// The WebSocket path.
    #[arg(long, default_value = "/ws")]
    ws_path: String,
    /// The admin API (c2g creates its groups there).
    #[arg(long, default_value = "http://127.0.0.1:9002")]
    admin: String,
    /// The admin key, if the gateway has one.
    #[arg(long, env = "JIM_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Clients (c2c, c2g; the senders of offline).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Group size (c2g).
    #[arg(long, default_value_t = 100)]
    group_size: usize,
    /// Closed loop: unacknowledged messages per sender.
    #[arg(long, default_value_t = 16, conflicts_with = "rate")]
    window: usize,
    /// Open loop: total messages per second (instead of a window).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of sending (c2c, c2g) or holding (idle).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for deliveries after sending stops.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Bytes per message body.
    #[arg(long, default_value_t = 200)]
    body_size: usize,
    /// Recipients, offline while sending (offline).
    #[arg(long, default_value_t = 100)]
    recipients: usize,
    /// Recipients mark what they get read (c2c, c2g; contract v1.2
    /// receipts), at most one receipt per conversation a second.
    #[arg(long)]
    receipts: bool,
    /// Conversations in each user's inbox (history).
    #[arg(long, default_value_t = 100)]
    conversations: usize,
    /// Entries of the conversation whose page is asked for, and the page's
    /// limit (history).
    #[arg(long, default_value_t = 50)]
    entries: usize,
    /// Messages in all (offline).
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Beside c2c or c2g: a flood by one member of a group of this many
    /// (the others not connected: inbox entries), at `--flood-rate`.
    #[arg(long, requires = "flood_rate")]
    flood_group_size: Option<usize>,
    /// The flood's group messages per second.
    #[arg(long, requires = "flood_group_size")]
    flood_rate: Option<f64>,
    /// Connections (idle, connect).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// The CA (PEM) a `--transport tls` connection trusts: the gateway's
    /// certificate, or what issued it.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Connections being set up at once (idle, connect).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// The gateway's process id: report its CPU per message and memory per connection.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Prefix of user and group ids (random by default, so runs do not mix).
    #[arg(long)]
    run_id: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jim-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                println!("{report}");
            }
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e @ BenchError::Usage(_)) => {
            eprintln!("jim-bench: {e}");
            ExitCode::from(64)
        }
        Err(e) => {
            eprintln!("jim-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<jim_bench::report::Report, BenchError> {
    if !args.tcp.iter().chain(&args.ws).all(|a| a.ip().is_loopback()) {
        return Err(BenchError::Usage(
            "jim-bench loads gateways on loopback addresses only".into(),
        ));
    }
    if !(args.duration > 0.0
        && args.duration <= MAX_SECONDS
        && args.drain >= 0.0
        && args.drain <= MAX_SECONDS)
    {
        return Err(BenchError::Usage(format!(
            "--duration and --drain must be within 0..{MAX_SECONDS} s"
        )));
    }
    let peer = args.transport.peer().is_some();
    if peer
        && (!matches!(args.workload, Workload::C2c | Workload::Idle | Workload::Connect)
            || args.receipts
            || args.flood_group_size.is_some())
    {
        return Err(BenchError::Usage(
            "--transport mqtt and nats run c2c, idle and connect only (no groups, receipts or floods)".into(),
        ));
    }
    let sockets = match args.workload {
        Workload::C2c | Workload::C2g => args.clients,
        Workload::Idle | Workload::Connect => args.connections,
        Workload::Offline => args.clients + args.recipients,
        Workload::History => args.clients + args.conversations,
    };
    raise_file_limit(sockets)?;
    let target = Target {
        tcp: args.tcp.clone(),
        ws: args.ws.clone(),
        ws_path: args.ws_path.clone(),
        tls: args.ca.as_deref().map(jim_bench::conn::trusting).transpose()?,
    };
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| format!("bench{}", fastrand::u32(..)));
    match args.workload {
        Workload::C2c | Workload::C2g => {
            let load = match args.rate {
                Some(rate) => Load::Open { rate },
                None => Load::Closed { window: args.window },
            };
            let flooding = match (args.flood_group_size, args.flood_rate) {
                (Some(group_size), Some(rate)) => Some(
                    jim_bench::flood::Flood {
                        group_size,
                        rate,
                        run_id: format!("{run_id}-flood"),
                        admin: (args.admin.clone(), args.admin_key.clone()),
                    }
                    .start(&target, args.transport)
                    .await?,
                ),
                _ => None,
            };
            let mut report = Messaging {
                target,
                transport: args.transport,
                clients: args.clients,
                group_size: (args.workload == Workload::C2g).then_some(args.group_size),
                load,
                duration: Duration::from_secs_f64(args.duration),
                body_size: args.body_size,
                drain: Duration::from_secs_f64(args.drain),
                run_id,
                // A peer has no admin API (nor presence to wait for).
                admin: (!peer).then(|| (args.admin.clone(), args.admin_key.clone())),
                server_pid: args.server_pid,
                progress: !args.quiet,
                receipts: args.receipts,
            }
            .run()
            .await?;
            if let Some(flooding) = flooding {
                report.flood = Some(flooding.finish().await?);
            }
            Ok(report)
        }
        Workload::Offline => {
            jim_bench::offline::Offline {
                target,
                transport: args.transport,
                senders: args.clients,
                recipients: args.recipients,
                messages: args.messages,
                window: args.window,
                body_size: args.body_size,
                drain: Duration::from_secs_f64(args.drain),
                run_id,
                server_pid: args.server_pid,
                progress: !args.quiet,
            }
            .run()
            .await
        }
        Workload::History => {
            jim_bench::history::History {
                target,
                transport: args.transport,
                users: args.clients,
                conversations: args.conversations,
                entries: args.entries,
                rate: args.rate.unwrap_or(1000.0),
                duration: Duration::from_secs_f64(args.duration),
                run_id,
                server_pid: args.server_pid,
                progress: !args.quiet,
            }
            .run()
            .await
        }
        Workload::Idle | Workload::Connect => {
            let connecting = Connecting {
                target,
                transport: args.transport,
                count: args.connections,
                concurrency: args.concurrency,
                run_id,
                server_pid: args.server_pid,
                progress: !args.quiet,
            };
            if args.workload == Workload::Idle {
                connecting.idle(Duration::from_secs_f64(args.duration)).await
            } else {
                connecting.connect_rate().await
            }
        }
    }
}

/// Raises the open-file limit to the hard limit, and checks `sockets` fit.
fn raise_file_limit(sockets: usize) -> Result<(), BenchError> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard, hard)?;
    let needed = sockets as u64 + 64;
    if needed > hard {
        return Err(BenchError::Usage(format!(
            "{sockets} connections need {needed} open files; this process may hold {hard}"
        )));
    }
    Ok(())
}
