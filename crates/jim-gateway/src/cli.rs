//! The `jim-gateway` command line: configuration from a TOML file, the
//! environment (`JIM_*`) and flags, in rising order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::auth::{SigningKey, claims_for};
use crate::{Config, GatewayError, Mode, RunningGateway, StopSignals};
use jim_service::{Hangups, LogFilter};

/// The Jim IM gateway.
#[derive(Debug, Parser)]
#[command(name = "jim-gateway", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (what happens without a subcommand).
    Run(RunArgs),
    /// Mint a client token for a user: HS256 with the gateway's secret, or signed with a private key.
    Gentoken(GentokenArgs),
    /// Print the effective configuration as TOML (secrets hidden) and exit.
    Config(RunArgs),
    /// Check a configuration file (with the environment and flags, as a
    /// start would take them) and what it names (keys, certificate, the
    /// backend's settings) without starting anything; exit 0 if it is
    /// good, 78 saying what to fix if not.
    CheckConfig(CheckConfigArgs),
}

#[derive(Debug, Args)]
struct CheckConfigArgs {
    /// The configuration file.
    file: PathBuf,
    #[command(flatten)]
    run: RunArgs,
}

/// How to run the gateway.
#[derive(Debug, Clone, Default, Args)]
struct RunArgs {
    /// A TOML configuration file.
    #[arg(short, long, env = "JIM_CONFIG")]
    config: Option<PathBuf>,
    /// Development mode: any non-empty token is the user id, and the admin API needs no key.
    #[arg(long)]
    dev: bool,
    /// Routing backend.
    #[arg(long, env = "JIM_MODE", value_enum)]
    mode: Option<Mode>,
    /// This gateway's node id (0 to 1023), unique in the deployment.
    #[arg(long, env = "JIM_NODE_ID")]
    node_id: Option<u16>,
    /// TCP listener address, or `off`.
    #[arg(long, env = "JIM_TCP", value_parser = parse_listen)]
    tcp: Option<Listener>,
    /// WebSocket listener address, or `off`.
    #[arg(long, env = "JIM_WS", value_parser = parse_listen)]
    ws: Option<Listener>,
    /// Admin HTTP API address, or `off`.
    #[arg(long, env = "JIM_ADMIN", value_parser = parse_listen)]
    admin: Option<Listener>,
    /// The HS256 secret of client tokens (32+ bytes).
    #[arg(long, env = "JIM_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// The listeners' TLS certificate chain (PEM); with `--tls-key`.
    #[arg(long, env = "JIM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The listeners' TLS private key (PEM).
    #[arg(long, env = "JIM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A JWKS of client token keys: a file, or an identity provider's
    /// `http(s)://` URL.
    #[arg(long, env = "JIM_JWKS")]
    jwks: Option<String>,
    /// The admin API's bearer key.
    #[arg(long, env = "JIM_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// The central router (`grpc` mode), e.g. `http://127.0.0.1:9093`.
    #[arg(long, env = "JIM_ROUTER")]
    router: Option<String>,
    /// The central router's bearer key.
    #[arg(long, env = "JIM_ROUTER_KEY", hide_env_values = true)]
    router_key: Option<String>,
    /// The CA (PEM) an `https://` router's certificate must come from.
    #[arg(long, env = "JIM_ROUTER_CA")]
    router_ca: Option<PathBuf>,
    /// Kafka's bootstrap servers (`kafka` mode).
    #[arg(long, env = "JIM_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: Option<String>,
    /// Prefix of the Kafka topic names (`kafka` mode).
    #[arg(long, env = "JIM_KAFKA_PREFIX")]
    kafka_prefix: Option<String>,
    /// The inbox store: `memory`, `disk` (in `--inbox-dir`), `redis` (at `--inbox-redis`) or `off`.
    #[arg(long, env = "JIM_INBOX")]
    inbox: Option<jim_router::inbox::InboxStore>,
    /// The `disk` inbox store's directory.
    #[arg(long, env = "JIM_INBOX_DIR")]
    inbox_dir: Option<PathBuf>,
    /// The `redis` inbox store's server, `redis://[:password@]host:port[/db]`.
    #[arg(long, env = "JIM_INBOX_REDIS", hide_env_values = true)]
    inbox_redis: Option<String>,
    /// The application's before-send hook (`hooks.before_send_url`).
    #[arg(long, env = "JIM_HOOKS_BEFORE_SEND_URL")]
    hooks_before_send_url: Option<String>,
    #[command(flatten)]
    hooks: jim_hooks::EventFlags,
    /// Maximum open client connections.
    #[arg(long, env = "JIM_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Runtime worker threads (default: one per CPU core).
    #[arg(long, env = "JIM_WORKERS")]
    workers: Option<usize>,
    /// Write this process's id to this file while it runs (to signal it:
    /// `kill -HUP "$(cat FILE)"`).
    #[arg(long, env = "JIM_PID_FILE")]
    pid_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `jim_gateway=debug` (default: the file's
    /// `log`, else `info`).
    #[arg(long, env = "JIM_LOG")]
    log: Option<String>,
}

#[derive(Debug, Args)]
struct GentokenArgs {
    /// The user id (the token's subject).
    #[arg(short, long, required_unless_present = "jwks")]
    user: Option<String>,
    /// Display name, stamped as `sender_name` on the user's messages.
    #[arg(long)]
    name: Option<String>,
    /// Avatar URL, stamped as `sender_avatar`.
    #[arg(long)]
    avatar: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    ttl: u64,
    /// The signing secret; defaults to the gateway's (flag, `JIM_JWT_SECRET`, or config file).
    #[arg(long, env = "JIM_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Sign with this private key (PKCS#8 PEM) instead of the secret.
    #[arg(long, requires = "alg")]
    key: Option<PathBuf>,
    /// The private key's algorithm: `RS256`, `ES256` or `EdDSA`.
    #[arg(long, requires = "key")]
    alg: Option<String>,
    /// The key id (`kid`) to name in the token.
    #[arg(long)]
    kid: Option<String>,
    /// The issuer (`iss`).
    #[arg(long)]
    iss: Option<String>,
    /// The audience (`aud`).
    #[arg(long)]
    aud: Option<String>,
    /// Print the private key's public half as a JWKS document, not a token.
    #[arg(long, requires = "key")]
    jwks: bool,
    /// A TOML configuration file to take the secret from.
    #[arg(short, long, env = "JIM_CONFIG")]
    config: Option<PathBuf>,
}

/// A listener address, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
struct Listener(Option<SocketAddr>);

fn parse_listen(value: &str) -> Result<Listener, String> {
    jim_service::listen_addr::parse(value).map(Listener)
}

impl RunArgs {
    /// The configuration: file (or defaults), then environment and flags.
    fn config(&self) -> Result<Config, GatewayError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.auth.dev |= self.dev;
        if let Some(mode) = self.mode {
            config.mode = mode;
        }
        if let Some(node) = self.node_id {
            config.node_id = node;
        }
        for (flag, slot) in [
            (self.tcp, &mut config.listen.tcp),
            (self.ws, &mut config.listen.ws),
            (self.admin, &mut config.listen.admin),
        ] {
            if let Some(Listener(addr)) = flag {
                *slot = addr;
            }
        }
        if let Some(secret) = &self.jwt_secret {
            config.auth.jwt_secret = Some(secret.clone());
        }
        if let Some(cert) = &self.tls_cert {
            config.tls.cert = Some(cert.clone());
        }
        if let Some(key) = &self.tls_key {
            config.tls.key = Some(key.clone());
        }
        if let Some(jwks) = &self.jwks {
            config.auth.jwks = Some(jwks.clone());
        }
        if let Some(key) = &self.admin_key {
            config.admin.key = Some(key.clone());
        }
        if let Some(router) = &self.router {
            config.grpc.router = router.clone();
        }
        if let Some(key) = &self.router_key {
            config.grpc.key = Some(key.clone());
        }
        if let Some(ca) = &self.router_ca {
            config.grpc.ca = Some(ca.clone());
        }
        if let Some(bootstrap) = &self.kafka_bootstrap {
            config.kafka.bootstrap.clone_from(bootstrap);
        }
        if let Some(prefix) = &self.kafka_prefix {
            config.kafka.topic_prefix.clone_from(prefix);
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
        if self.hooks_before_send_url.is_some() {
            config
                .hooks
                .before_send_url
                .clone_from(&self.hooks_before_send_url);
        }
        self.hooks.apply(&mut config.hooks);
        if let Some(max) = self.max_connections {
            config.limits.max_connections = max;
        }
        if let Some(log) = &self.log {
            config.log.clone_from(log);
        }
        config.validate()?;
        Ok(config)
    }
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    use clap::CommandFactory;
    let cli = Cli::try_parse().unwrap_or_else(|e| jim_service::explain_cli_error(e, &Cli::command()).exit());
    let (command, run) = match cli.command {
        Some(Command::Run(args)) => (None, args),
        Some(other) => (Some(other), RunArgs::default()),
        None => (None, cli.run),
    };
    let result = match command {
        Some(Command::Gentoken(args)) => gentoken(&args),
        Some(Command::Config(args)) => print_config(&args),
        Some(Command::CheckConfig(args)) => check_config(args),
        Some(Command::Run(_)) | None => run_gateway(&run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ GatewayError::Config(_)) => {
            eprintln!("jim-gateway: {error}");
            ExitCode::from(78) // EX_CONFIG
        }
        Err(error) => {
            eprintln!("jim-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

fn gentoken(args: &GentokenArgs) -> Result<(), GatewayError> {
    let signing = match (&args.key, &args.alg) {
        (Some(path), Some(alg)) => {
            let pem = std::fs::read(path)
                .map_err(|e| GatewayError::Config(format!("cannot read {}: {e}", path.display())))?;
            SigningKey::private_pem(alg, &pem, args.kid.as_deref())?
        }
        _ => SigningKey::secret(gentoken_secret(args)?.as_bytes()),
    };
    if args.jwks {
        let jwks = signing
            .public_jwks()
            .ok_or_else(|| GatewayError::Config("this key has no public half".into()))?;
        println!("{jwks}");
        return Ok(());
    }
    let user = args.user.as_deref().unwrap_or_default();
    if user.is_empty() {
        return Err(GatewayError::Config("--user must not be empty".into()));
    }
    let mut claims = claims_for(user, args.ttl, args.name.as_deref(), args.avatar.as_deref());
    claims.iss.clone_from(&args.iss);
    claims.aud.clone_from(&args.aud);
    println!("{}", signing.mint(&claims)?);
    Ok(())
}

/// The HS256 secret: the flag (or `JIM_JWT_SECRET`), or the config file's.
fn gentoken_secret(args: &GentokenArgs) -> Result<String, GatewayError> {
    let secret = match (&args.secret, &args.config) {
        (Some(secret), _) => secret.clone(),
        (None, Some(path)) => Config::from_file(path)?
            .auth
            .jwt_secret
            .ok_or_else(|| GatewayError::Config(format!("{} has no auth.jwt_secret", path.display())))?,
        (None, None) => {
            return Err(GatewayError::Config(
                "no secret: pass --secret, set JIM_JWT_SECRET, or --config a file with auth.jwt_secret (or sign with --key and --alg)"
                    .into(),
            ));
        }
    };
    if secret.len() < 32 {
        return Err(GatewayError::Config(format!(
            "the secret is {} bytes; HS256 needs at least 32",
            secret.len()
        )));
    }
    Ok(secret)
}

fn print_config(args: &RunArgs) -> Result<(), GatewayError> {
    let mut config = args.config()?;
    for secret in [
        &mut config.auth.jwt_secret,
        &mut config.admin.key,
        &mut config.hooks.secret,
        &mut config.hooks.previous_secret,
    ] {
        if secret.is_some() {
            *secret = Some("<hidden>".into());
        }
    }
    print!(
        "{}",
        toml::to_string(&config).map_err(|e| GatewayError::Config(e.to_string()))?
    );
    Ok(())
}

fn check_config(args: CheckConfigArgs) -> Result<(), GatewayError> {
    let file = args.file.clone();
    let run = RunArgs {
        config: Some(args.file),
        ..args.run
    };
    let config = run.config()?;
    // What a start reads before it listens: the token keys (PEM files, a
    // JWKS file), the certificate, the backend's settings.
    crate::auth::Authenticator::from_config(&config.auth)?;
    if let Some(files) = config.tls.files() {
        jim_service::tls::ServerTls::load(&files).map_err(|e| GatewayError::Config(e.to_string()))?;
    }
    crate::compose::check_backend(&config)?;
    println!(
        "{}: ok ({} mode, {}, inbox {})",
        file.display(),
        config.mode.as_str(),
        if config.auth.dev {
            "DEVELOPMENT auth"
        } else {
            "tokens checked"
        },
        inbox(&config)
    );
    Ok(())
}

fn run_gateway(args: &RunArgs) -> Result<(), GatewayError> {
    let parsed = args.config()?;
    let logs = jim_service::init_logging(&parsed.log);
    let mut config = parsed.clone();
    fit_open_file_limit(&mut config);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers.filter(|w| *w > 0) {
        runtime.worker_threads(workers);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        // First: a SIGHUP while starting (a slow broker, a JWKS URL) must
        // not end the process either.
        let mut hangups = Hangups::install()?;
        let running = crate::start(config.clone()).await?;
        // Before the banner: whoever reads it may signal at once.
        let stop = StopSignals::install()?;
        let _pid_file = args
            .pid_file
            .as_deref()
            .map(jim_service::PidFile::write)
            .transpose()
            .map_err(|e| GatewayError::Config(format!("--pid-file: {e}")))?;
        print_banner(&config, &running);
        if config.auth.dev {
            tracing::warn!(
                "DEVELOPMENT MODE: any non-empty token is accepted as the user id, and the admin API \
                 needs no key unless one is set. Never expose this gateway."
            );
        }
        let stopped = stop.received();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = &mut stopped => break,
                () = hangups.next() => reload(args, &parsed, &running, &logs).await,
            }
        }
        tracing::info!("shutting down");
        let clean = running.shutdown().await;
        if !clean {
            tracing::warn!("some connections did not close within the shutdown grace period");
        }
        Ok(())
    })
}

/// SIGHUP: the configuration file is read again and its log filter
/// applied; the TLS pair and the JWKS are read again. Nothing else changes
/// while running, and nothing here stops the gateway.
async fn reload(args: &RunArgs, started: &Config, running: &RunningGateway, logs: &LogFilter) {
    let mut reload = jim_service::Reload::default();
    let config = args.config().map_err(|e| e.to_string());
    let read = config.as_ref().map(|config| {
        let rest_changed = Config {
            log: started.log.clone(),
            ..config.clone()
        } != *started;
        (config.log.as_str(), rest_changed)
    });
    reload.configuration(logs, read.map_err(Clone::clone));
    for line in running.reload("SIGHUP").await {
        reload.read(line);
    }
    reload.finish();
}

/// Raises the soft open-file limit to the hard one, and keeps
/// `limits.max_connections` within it: past the limit, accepting fails
/// (EMFILE) for client and admin connections alike, where a connection
/// over `max_connections` is told why and closed. A 64th of the
/// descriptors (at least 64) stays for listeners, admin calls and the
/// backend.
fn fit_open_file_limit(config: &mut Config) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return;
        }
    };
    let usable = limit.saturating_sub((limit / 64).max(64)).max(1);
    if config.limits.max_connections as u64 > usable {
        tracing::warn!(
            configured = config.limits.max_connections,
            open_file_limit = limit,
            using = usable,
            "limits.max_connections is above what the open-file limit allows: lowered (raise `ulimit -n` for more)"
        );
        config.limits.max_connections = usize::try_from(usable).unwrap_or(usize::MAX);
    }
}

/// Where messages are routed, for the banner.
fn routing(config: &Config) -> String {
    match config.mode {
        Mode::Local => "in this process".to_owned(),
        Mode::Grpc => format!("router {}", config.grpc.router),
        Mode::Kafka => format!("kafka {}", config.kafka.bootstrap),
    }
}

/// The inbox store, for the banner.
fn inbox(config: &Config) -> String {
    match config.mode {
        Mode::Local => config.inbox.describe(),
        Mode::Grpc => "kept by the router (its [inbox])".to_owned(),
        Mode::Kafka => config.inbox.describe(),
    }
}

fn print_banner(config: &Config, running: &RunningGateway) {
    let show = |addr: Option<SocketAddr>, scheme: &str, path: &str| match addr {
        Some(addr) => format!("{scheme}{addr}{path}"),
        None => "off".to_owned(),
    };
    let auth = running.auth().to_owned();
    let tls = |listener: &str| config.tls.encrypts(listener);
    let rows = [
        ("mode", config.mode.as_str().to_owned()),
        ("node id", config.node_id.to_string()),
        (
            "tcp",
            show(running.tcp_addr(), "", if tls("tcp") { " (TLS)" } else { "" }),
        ),
        (
            "websocket",
            show(
                running.ws_addr(),
                if tls("ws") { "wss://" } else { "ws://" },
                &config.listen.ws_path,
            ),
        ),
        (
            "admin api",
            show(
                running.admin_addr(),
                if tls("admin") { "https://" } else { "http://" },
                "",
            ),
        ),
        ("auth", auth),
        ("routing", routing(config)),
        ("inbox", inbox(config)),
        ("max body", format!("{} bytes", config.limits.max_body)),
    ];
    let footer = config
        .auth
        .dev
        .then_some("!!! DEVELOPMENT MODE: do not expose this gateway; use a JWT secret in production !!!");
    jim_service::print_table(
        &format!("Jim gateway {}", env!("CARGO_PKG_VERSION")),
        &rows,
        footer,
    );
}
