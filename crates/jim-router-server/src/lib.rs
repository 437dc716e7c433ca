//! The `jim-router` binary: the central router of Jim's `grpc` mode
//! ([`jim_router_grpc::CentralRouter`]), run alone, with a gRPC listener
//! for the gateways and an HTTP one for health and Prometheus metrics.
//! Configuration from a TOML file, the environment (`JIM_*`) and flags, like
//! the gateway's; logs, metrics, the banner and stop signals as the gateway
//! has them (`jim-service`).
//!
//! To embed the router in a service of your own instead, mount
//! [`CentralRouter::service`](jim_router_grpc::CentralRouter::service) on
//! your tonic server.

#![warn(missing_docs)]

mod admission;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;
use jim_router_grpc::{CentralConfig, CentralRouter};
use jim_service::{Hangups, LogFilter, Registry, StopSignals, print_table};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Why the router could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid; the message says how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The router refused its configuration.
    #[error("router: {0}")]
    Router(#[from] jim_router::RouterError),
    /// I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The central router's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// The router's node id (for pushed messages' ids), unique among the
    /// gateways' node ids.
    pub node_id: u16,
    /// The bearer key of gateways and admin callers. Prefer `JIM_ROUTER_KEY`.
    pub key: Option<String>,
    /// The gRPC listener.
    pub grpc: SocketAddr,
    /// `[tls]`: the gRPC listener's certificate chain and key (PEM); the
    /// gateways then link with `https://`. Read again on SIGHUP and when
    /// the files change.
    pub tls: Option<jim_service::tls::TlsFiles>,
    /// The HTTP listener for `/healthz`, `/readyz`, `/metrics` (`None`,
    /// written `"off"`: none).
    #[serde(with = "jim_service::listen_addr")]
    pub http: Option<SocketAddr>,
    /// How long gateway links get to close on shutdown.
    pub shutdown_grace_ms: u64,
    /// The largest stamped body of a pushed message (the gateways'
    /// `limits.max_body`).
    pub max_body: usize,
    /// For this long after start, messages to users no gateway has
    /// announced yet get 5000 instead of an ack: gateways are re-linking.
    /// At least the gateways' longest reconnect delay (7.5 s by default).
    pub settle_ms: u64,
    /// gRPC connections served at once (gateways' links and admin
    /// callers); more are closed at accept.
    pub max_connections: usize,
    /// How long a new gRPC connection has to start speaking HTTP/2.
    pub handshake_timeout_ms: u64,
    /// How often an idle gRPC connection is pinged; one that has not
    /// answered within as long again is closed.
    pub keepalive_ms: u64,
    /// `[inbox]`: the router owns every user's inbox in grpc mode.
    pub inbox: jim_router::inbox::InboxSettings,
    /// `[typing]`: where typing is relayed (the gateways' do not count in
    /// grpc mode).
    pub typing: jim_router::TypingSettings,
    /// `[receipts]`: who sees read receipts.
    pub receipts: jim_router::ReceiptSettings,
    /// `[hooks]`: in grpc mode the router sends the events (it alone sees
    /// every message and every gateway's sessions); the gateways call the
    /// before-send hook.
    pub hooks: jim_hooks::HooksConfig,
    /// The log filter (`tracing`'s syntax), read again on SIGHUP; `--log`
    /// and `JIM_LOG` win over it.
    pub log: String,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            node_id: jim_model::MAX_NODE,
            key: None,
            grpc: SocketAddr::from(([127, 0, 0, 1], 9093)),
            tls: None,
            http: Some(SocketAddr::from(([127, 0, 0, 1], 9094))),
            shutdown_grace_ms: 5_000,
            max_body: jim_protocol::DEFAULT_MAX_BODY,
            settle_ms: jim_router_grpc::DEFAULT_SETTLE.as_millis() as u64,
            max_connections: 1024,
            handshake_timeout_ms: 10_000,
            keepalive_ms: 10_000,
            inbox: jim_router::inbox::InboxSettings::default(),
            typing: jim_router::TypingSettings::default(),
            receipts: jim_router::ReceiptSettings::default(),
            hooks: jim_hooks::HooksConfig::default(),
            log: "info".to_owned(),
        }
    }
}

/// The central router of Jim's `grpc` mode: gateways link to it, it keeps
/// presence and group membership, and routes every message to the
/// gateways that hold its recipients.
#[derive(Debug, Parser)]
#[command(name = "jim-router", version)]
struct Args {
    /// A TOML configuration file.
    #[arg(short, long, env = "JIM_CONFIG")]
    config: Option<PathBuf>,
    /// The gRPC listener.
    #[arg(long, env = "JIM_GRPC")]
    grpc: Option<SocketAddr>,
    /// The HTTP listener (health, metrics), or `off`.
    #[arg(long, env = "JIM_HTTP")]
    http: Option<String>,
    /// The bearer key of gateways and admin callers.
    #[arg(long, env = "JIM_ROUTER_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The router's node id (0 to 1023), unique among the gateways'.
    #[arg(long, env = "JIM_NODE_ID")]
    node_id: Option<u16>,
    /// Milliseconds after start during which messages to users not yet
    /// announced by any gateway get 5000 (gateways are re-linking).
    #[arg(long, env = "JIM_SETTLE_MS")]
    settle_ms: Option<u64>,
    /// The gRPC listener's TLS certificate chain (PEM); with `--tls-key`.
    #[arg(long, env = "JIM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The gRPC listener's TLS private key (PEM).
    #[arg(long, env = "JIM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The inbox store: `memory`, `disk` (in `--inbox-dir`), `redis` (at `--inbox-redis`) or `off`.
    #[arg(long, env = "JIM_INBOX")]
    inbox: Option<jim_router::inbox::InboxStore>,
    /// The `disk` inbox store's directory.
    #[arg(long, env = "JIM_INBOX_DIR")]
    inbox_dir: Option<PathBuf>,
    /// The `redis` inbox store's server, `redis://[:password@]host:port[/db]`.
    #[arg(long, env = "JIM_INBOX_REDIS", hide_env_values = true)]
    inbox_redis: Option<String>,
    #[command(flatten)]
    hooks: jim_hooks::EventFlags,
    /// Write this process's id to this file while it runs (to signal it:
    /// `kill -HUP "$(cat FILE)"`).
    #[arg(long, env = "JIM_PID_FILE")]
    pid_file: Option<PathBuf>,
    /// Log filter (default: the file's `log`, else `info`).
    #[arg(long, env = "JIM_LOG")]
    log: Option<String>,
}

impl Args {
    fn config(&self) -> Result<RouterConfig, ServerError> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?
            }
            None => RouterConfig::default(),
        };
        if let Some(grpc) = self.grpc {
            config.grpc = grpc;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(jim_service::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        if let Some(http) = &self.http {
            config.http = jim_service::listen_addr::parse(http)
                .map_err(|e| ServerError::Config(format!("--http {e}")))?;
        }
        if let Some(key) = &self.key {
            config.key = Some(key.clone());
        }
        if let Some(node) = self.node_id {
            config.node_id = node;
        }
        if let Some(settle) = self.settle_ms {
            config.settle_ms = settle;
        }
        if let Some(store) = self.inbox {
            config.inbox.store = store;
        }
        if let Some(dir) = &self.inbox_dir {
            config.inbox.dir = dir.clone();
        }
        if let Some(url) = &self.inbox_redis {
            config.inbox.redis_url = url.clone();
        }
        if let Some(log) = &self.log {
            config.log.clone_from(log);
        }
        self.hooks.apply(&mut config.hooks);
        config.inbox.check().map_err(ServerError::Config)?;
        config
            .hooks
            .validate()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        if config.hooks.before_send_url.is_some() {
            return Err(ServerError::Config(
                "hooks.before_send_url: the gateways call the before-send hook (each message is checked where it arrives): set it in the gateways' configuration; the router sends the events (hooks.events_url)".into(),
            ));
        }
        if config
            .key
            .as_deref()
            .is_some_and(|key| key.to_ascii_lowercase().contains("change-me"))
        {
            return Err(ServerError::Config(
                "key is still the example's placeholder: set a random value (head -c 32 /dev/urandom | base64), in the file or JIM_ROUTER_KEY".into(),
            ));
        }
        if config.max_connections == 0 || config.handshake_timeout_ms == 0 || config.keepalive_ms == 0 {
            return Err(ServerError::Config(
                "max_connections, handshake_timeout_ms and keepalive_ms must be above 0".into(),
            ));
        }
        if config.node_id > jim_model::MAX_NODE {
            return Err(ServerError::Config(format!(
                "node_id {} is out of range (0..=1023)",
                config.node_id
            )));
        }
        Ok(config)
    }
}

/// The `jim-router` binary's entry point: exit status 78 for a bad
/// configuration, 1 for any other failure.
pub fn main() -> ExitCode {
    use clap::CommandFactory;
    let args =
        Args::try_parse().unwrap_or_else(|e| jim_service::explain_cli_error(e, &Args::command()).exit());
    let result = args.config().and_then(|config| {
        let logs = jim_service::init_logging(&config.log);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(run(config, &args, &logs))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ ServerError::Config(_)) => {
            eprintln!("jim-router: {error}");
            ExitCode::from(78)
        }
        Err(error) => {
            eprintln!("jim-router: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: RouterConfig, args: &Args, logs: &LogFilter) -> Result<(), ServerError> {
    // First: a SIGHUP while starting must not end the process either.
    let mut hangups = Hangups::install()?;
    let metrics = RouterMetrics::new();
    let inbox = config
        .inbox
        .open(metrics.inbox())
        .await
        .map_err(ServerError::Config)?;
    let hooks = jim_hooks::Hooks::start(&config.hooks, metrics.hooks())
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let observers = hooks.observers();
    let routing = jim_router::Routing::open(inbox, observers)
        .await?
        .sender_copy(config.inbox.sender_copy)
        .typing(config.typing)
        .receipts(config.receipts);
    let router = CentralRouter::with_routing(
        CentralConfig {
            key: config.key.clone(),
            max_body: config.max_body,
            settle: Duration::from_millis(config.settle_ms),
            ..CentralConfig::new(config.node_id)
        },
        routing,
    )?;
    let stop = CancellationToken::new();
    let grpc = tokio::net::TcpListener::bind(config.grpc)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.grpc,
            source,
        })?;
    let grpc_addr = grpc.local_addr()?;
    let http = match config.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?,
        ),
        None => None,
    };
    let http_addr = http
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()?;
    // Before the banner: whoever reads it may signal at once.
    let signals = StopSignals::install()?;
    let _pid_file = args
        .pid_file
        .as_deref()
        .map(jim_service::PidFile::write)
        .transpose()
        .map_err(|e| ServerError::Config(format!("--pid-file: {e}")))?;
    print_banner(&config, grpc_addr, http_addr);
    if config.tls.is_none() && !grpc_addr.ip().is_loopback() {
        tracing::warn!(
            addr = %grpc_addr,
            "the gRPC listener is reachable from other hosts and NOT encrypted: set [tls] cert and key, or keep it on a private network"
        );
    }

    let server_tls = match &config.tls {
        Some(files) => {
            let tls = std::sync::Arc::new(
                jim_service::tls::ServerTls::load(files).map_err(|e| ServerError::Config(e.to_string()))?,
            );
            tokio::spawn(std::sync::Arc::clone(&tls).watch(stop.clone(), jim_service::Outcomes::default()));
            Some(tls)
        }
        None => None,
    };
    let tls = server_tls.as_ref().map(|tls| tls.acceptor(&[b"h2"]));
    // Histogram samples wait for a scrape otherwise: with nobody scraping,
    // without end.
    let upkeep = (std::sync::Arc::clone(&metrics.registry), stop.clone());
    tokio::spawn(async move { upkeep.0.keep_up(jim_service::UPKEEP_PERIOD, &upkeep.1).await });
    let service = router.service();
    let limits = admission::Limits {
        max_connections: config.max_connections,
        handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
    };
    let keepalive = Duration::from_millis(config.keepalive_ms);
    // No graceful-shutdown signal for tonic: it would keep the listener
    // (and the port) until every link is gone. The listener is dropped
    // the moment the shutdown starts; the links are ended below.
    let grpc_task = tokio::spawn(
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(keepalive))
            .add_service(service)
            .serve_with_incoming(admission::admitted(grpc, limits, tls, stop.clone())),
    );
    if let Some(listener) = http {
        let router = router.clone();
        let app =
            axum::Router::new()
                .route("/healthz", get(|| async { "ok\n" }))
                .route("/readyz", get(|| async { "{\"ready\":true}" }))
                .route(
                    "/metrics",
                    get(move || {
                        let text = metrics.render(&router);
                        async move {
                            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                        }
                    }),
                );
        let http_stop = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(http_stop.cancelled_owned())
                .await;
        });
    }

    let stopped = signals.received();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => break,
            () = hangups.next() => reload(args, &config, server_tls.as_deref(), logs),
        }
    }
    tracing::info!("shutting down");
    stop.cancel();
    if let Ok(Err(e)) = grpc_task.await {
        tracing::warn!(error = %e, "gRPC server ended with an error");
    }
    tracing::info!("gRPC listener closed, its port is free; ending the gateway links");
    // The gateways reconnect (with backoff, to a successor on the same
    // port if there is one); the process waits for them to leave, within
    // the grace period.
    router.close_links();
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let links_gone = async {
        while router.stats().gateways > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(grace, links_gone).await.is_err() {
        tracing::info!("gateway links still open after the grace period; closing them");
    }
    // What the last messages and sessions gave, sent now.
    hooks.close(Duration::from_secs(5)).await;
    Ok(())
}

/// SIGHUP: the configuration file is read again and its log filter
/// applied, the TLS pair read again; nothing else changes while running,
/// and nothing here stops the router.
fn reload(args: &Args, started: &RouterConfig, tls: Option<&jim_service::tls::ServerTls>, logs: &LogFilter) {
    let mut reload = jim_service::Reload::default();
    let config = args.config().map_err(|e| e.to_string());
    let read = config.as_ref().map(|config| {
        let rest_changed = RouterConfig {
            log: started.log.clone(),
            ..config.clone()
        } != *started;
        (config.log.as_str(), rest_changed)
    });
    reload.configuration(logs, read.map_err(Clone::clone));
    if let Some(tls) = tls {
        reload.read(
            match tls.reload_because("SIGHUP", &jim_service::Outcomes::default()) {
                Ok(()) => format!("TLS certificate {}", tls.files().cert.display()),
                Err(e) => format!("TLS certificate NOT reloaded ({e}; keeping the one in use)"),
            },
        );
    }
    reload.finish();
}

fn print_banner(config: &RouterConfig, grpc: SocketAddr, http: Option<SocketAddr>) {
    let rows = [
        ("role", "central router (grpc mode)".to_owned()),
        ("node id", config.node_id.to_string()),
        (
            "grpc",
            format!("{}://{grpc}", if config.tls.is_some() { "https" } else { "http" }),
        ),
        (
            "http",
            http.map_or_else(|| "off".to_owned(), |a| format!("http://{a}")),
        ),
        (
            "key",
            if config.key.is_some() {
                "required"
            } else {
                "none (open)"
            }
            .to_owned(),
        ),
        ("inbox", config.inbox.describe()),
    ];
    print_table(&format!("Jim router {}", env!("CARGO_PKG_VERSION")), &rows, None);
    if config.key.is_none() {
        tracing::warn!("no router key: any gateway or admin caller that reaches the gRPC port is trusted");
    }
}

/// Reads one number out of the router's counters.
type StatReader = fn(&jim_router_grpc::RouterStats) -> u64;

/// The router's Prometheus metrics, read from its counters when scraped.
#[derive(Clone)]
struct RouterMetrics {
    registry: std::sync::Arc<Registry>,
    gauges: Vec<(metrics::Gauge, StatReader)>,
    counters: Vec<(metrics::Counter, StatReader)>,
}

impl RouterMetrics {
    fn new() -> RouterMetrics {
        let registry = Registry::new();
        let gauges: Vec<(metrics::Gauge, StatReader)> = vec![
            (registry.gauge("jim_router_gateways", "Gateways linked"), |s| {
                s.gateways
            }),
            (
                registry.gauge("jim_router_sessions", "Sessions on all gateways"),
                |s| s.sessions,
            ),
            (registry.gauge("jim_router_groups", "Groups with members"), |s| {
                s.groups
            }),
        ];
        let counters: Vec<(metrics::Counter, StatReader)> = vec![
            (
                registry.counter("jim_router_messages_routed_total", "Messages routed", &[]),
                |s| s.routed,
            ),
            (
                registry.counter("jim_router_deliveries_total", "Deliveries sent to gateways", &[]),
                |s| s.deliveries,
            ),
            (
                registry.counter(
                    "jim_router_dropped_links_total",
                    "Gateway links dropped for falling behind",
                    &[],
                ),
                |s| s.dropped_links,
            ),
        ];
        RouterMetrics {
            registry: std::sync::Arc::new(registry),
            gauges,
            counters,
        }
    }

    /// The inbox store's metrics, in the router's registry.
    fn hooks(&self) -> jim_hooks::HooksMetrics {
        jim_hooks::HooksMetrics::register(&self.registry)
    }

    fn inbox(&self) -> jim_router::inbox::InboxMetrics {
        let r = &self.registry;
        jim_router::inbox::InboxMetrics::register(
            |name, help| r.counter(name, help, &[]),
            |name, help| r.histogram(name, help),
        )
    }

    fn render(&self, router: &CentralRouter) -> String {
        let stats = router.stats();
        for (gauge, read) in &self.gauges {
            gauge.set(read(&stats) as f64);
        }
        for (counter, read) in &self.counters {
            counter.absolute(read(&stats));
        }
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_configuration_reads() {
        let deployed: RouterConfig = toml::from_str(include_str!("../../../deploy/jim-router.toml")).unwrap();
        assert_eq!(deployed.grpc.port(), 9093);
        assert!(deployed.http.unwrap().ip().is_loopback());
        assert_eq!(
            deployed.settle_ms,
            jim_router_grpc::DEFAULT_SETTLE.as_millis() as u64
        );
        assert_eq!(
            (
                deployed.max_connections,
                deployed.handshake_timeout_ms,
                deployed.keepalive_ms
            ),
            (1024, 10_000, 10_000)
        );
    }

    fn from_file(toml: &str) -> Result<RouterConfig, ServerError> {
        let file = std::env::temp_dir().join(format!(
            "jim-router-config-{}-{}.toml",
            std::process::id(),
            content_hash(toml)
        ));
        std::fs::write(&file, toml).unwrap();
        let args = Args::try_parse_from(["jim-router", "--config", file.to_str().unwrap()]).unwrap();
        let config = args.config();
        std::fs::remove_file(&file).unwrap();
        config
    }

    /// Tests run in parallel: one file name per content.
    fn content_hash(toml: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        toml.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn the_http_listener_is_turned_off_in_the_file_as_on_the_command_line() {
        assert_eq!(from_file("http = \"off\"\n").unwrap().http, None);
        let bad = from_file("http = \"localhost\"\n").unwrap_err().to_string();
        assert!(bad.contains("expected \"IP:PORT\" or \"off\""), "{bad}");
    }

    #[test]
    fn connection_limits_must_be_above_zero() {
        for key in ["max_connections", "handshake_timeout_ms", "keepalive_ms"] {
            let refused = from_file(&format!("{key} = 0\n")).unwrap_err();
            assert!(matches!(refused, ServerError::Config(_)), "{key}: {refused}");
            assert!(
                refused.to_string().contains("must be above 0"),
                "{key}: {refused}"
            );
        }
    }
}
