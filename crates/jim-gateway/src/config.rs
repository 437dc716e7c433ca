//! The gateway's configuration: one TOML file, every field defaulted to the
//! contract's values, overridden by environment and command line (see
//! `cli.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::GatewayError;

/// Everything a gateway needs to start.
///
/// ```
/// let config: jim_gateway::Config = toml::from_str(r#"
///     node_id = 3
///     [auth]
///     dev = true
///     [listen]
///     tcp = "0.0.0.0:7001"
/// "#).unwrap();
/// assert_eq!(config.listen.tcp.unwrap().port(), 7001);
/// assert_eq!(config.listen.ws.unwrap().port(), 9000); // the default
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This gateway's node id (0 to 1023), unique in the deployment: it is
    /// part of every message id and session id.
    pub node_id: u16,
    /// The routing backend: `local`, `grpc` or `kafka`.
    pub mode: Mode,
    /// Where to listen.
    pub listen: Listen,
    /// TLS on the listeners.
    pub tls: Tls,
    /// How clients authenticate.
    pub auth: Auth,
    /// The admin HTTP API.
    pub admin: Admin,
    /// Per-connection and per-process limits.
    pub limits: Limits,
    /// Timers of the session life.
    pub session: SessionTimers,
    /// `[inbox]`: where acknowledged messages wait for their recipients.
    pub inbox: jim_router::inbox::InboxSettings,
    /// `[typing]`: where typing is relayed (local and kafka mode; in grpc
    /// mode the router's counts).
    pub typing: jim_router::TypingSettings,
    /// `[receipts]`: who sees read receipts (local and kafka mode; in grpc
    /// mode the router's counts).
    pub receipts: jim_router::ReceiptSettings,
    /// The central router (`grpc` mode).
    pub grpc: jim_router_grpc::LinkConfig,
    /// `[kafka]` (`kafka` mode): the Kafka backend's own settings, read
    /// and checked whether or not this build has the backend.
    pub kafka: jim_router_kafka::KafkaConfig,
    /// `[hooks]`: the application's before-send hook and events (in grpc
    /// mode the router sends the events).
    pub hooks: jim_hooks::HooksConfig,
    /// The binary's log filter (`tracing`'s syntax: `info`,
    /// `jim_gateway=debug`), read again on SIGHUP; `--log` and `JIM_LOG`
    /// win over it.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 0,
            mode: Mode::Local,
            listen: Listen::default(),
            tls: Tls::default(),
            auth: Auth::default(),
            admin: Admin::default(),
            limits: Limits::default(),
            session: SessionTimers::default(),
            inbox: jim_router::inbox::InboxSettings::default(),
            typing: jim_router::TypingSettings::default(),
            receipts: jim_router::ReceiptSettings::default(),
            grpc: jim_router_grpc::LinkConfig::default(),
            kafka: jim_router_kafka::KafkaConfig::default(),
            hooks: jim_hooks::HooksConfig::default(),
            log: "info".to_owned(),
        }
    }
}

/// The routing backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In-process: one gateway.
    Local,
    /// Through a central gRPC router.
    Grpc,
    /// Through Kafka.
    Kafka,
}

impl Mode {
    /// `local`, `grpc` or `kafka`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Grpc => "grpc",
            Mode::Kafka => "kafka",
        }
    }
}

/// Listener addresses; `None` (written `"off"` in the file) turns a
/// listener off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// WebSocket listener.
    #[serde(with = "jim_service::listen_addr")]
    pub ws: Option<SocketAddr>,
    /// The WebSocket path.
    pub ws_path: String,
    /// TCP listener.
    #[serde(with = "jim_service::listen_addr")]
    pub tcp: Option<SocketAddr>,
    /// Admin HTTP API listener.
    #[serde(with = "jim_service::listen_addr")]
    pub admin: Option<SocketAddr>,
    /// The web origins (`https://chat.example.com`, or `*` for any) whose
    /// pages may open WebSocket sessions; the browser sends its page's
    /// origin, and an upgrade from another gets 403. Clients that are not
    /// browsers send none and are not concerned. Empty: any origin in
    /// development mode, none in production.
    pub allowed_origins: Vec<String>,
    /// Proxies (addresses or prefixes, `10.0.0.0/8`) in front of the
    /// gateway whose word on the client's address is taken: on TCP, a
    /// PROXY protocol header (v1 or v2) they must send first; on
    /// WebSocket, `X-Forwarded-For`. Limits and logs then see the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            ws: Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
            ws_path: "/ws".to_owned(),
            tcp: Some(SocketAddr::from(([127, 0, 0, 1], 9001))),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 9002))),
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// TLS on the listeners: with a certificate and key, every listener is
/// encrypted (`jim1` over TLS, `wss://`, `https://`) but those named in
/// `plaintext`. The files are read again on SIGHUP and when they change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// The certificate chain, leaf first (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// Listeners left in plaintext though a certificate is set: any of
    /// `tcp`, `ws`, `admin` (say, the admin API on loopback).
    pub plaintext: Vec<String>,
}

impl Tls {
    /// The certificate and key, if both are set.
    pub fn files(&self) -> Option<jim_service::tls::TlsFiles> {
        Some(jim_service::tls::TlsFiles {
            cert: self.cert.clone()?,
            key: self.key.clone()?,
        })
    }

    /// Whether the listener named `listener` (`tcp`, `ws`, `admin`) is
    /// encrypted.
    pub fn encrypts(&self, listener: &str) -> bool {
        self.files().is_some() && !self.plaintext.iter().any(|p| p == listener)
    }
}

impl Config {
    /// The listeners on an address other hosts can reach (not loopback)
    /// that are not encrypted: the start-up log warns about each.
    pub fn exposed_plaintext(&self) -> Vec<(&'static str, SocketAddr)> {
        let listen = &self.listen;
        [("tcp", listen.tcp), ("ws", listen.ws), ("admin", listen.admin)]
            .into_iter()
            .filter_map(|(name, addr)| Some((name, addr?)))
            .filter(|(name, addr)| !addr.ip().is_loopback() && !self.tls.encrypts(name))
            .collect()
    }
}

/// Client authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Development mode: any non-empty token is the user id. Never in
    /// production.
    pub dev: bool,
    /// The HS256 secret of client tokens (at least 32 bytes). Prefer the
    /// `JIM_JWT_SECRET` environment variable to writing it here.
    pub jwt_secret: Option<String>,
    /// Public keys of RS256, ES256 and EdDSA tokens (`[[auth.keys]]`),
    /// chosen by the token's `kid`. Several at once: keys rotate without
    /// downtime.
    pub keys: Vec<PublicKey>,
    /// A JWKS document of public keys: a file, or an `http(s)://` URL
    /// (an identity provider's `jwks_uri`).
    pub jwks: Option<String>,
    /// The CA (PEM) an `https://` JWKS server's certificate must come from;
    /// unset: Mozilla's roots (what public identity providers use).
    pub jwks_ca: Option<PathBuf>,
    /// How often the JWKS is read again, in seconds.
    pub jwks_refresh_secs: u64,
    /// A token naming a key not in the JWKS has it read again, at most
    /// once per this many seconds.
    pub jwks_unknown_kid_secs: u64,
    /// The `iss` tokens must carry, if set.
    pub issuer: Option<String>,
    /// The `aud` tokens must name, if set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Tokens expiring further than this from now are refused (an `exp` of
    /// 2^64-1 is no expiry at all), in seconds.
    pub max_token_lifetime_secs: u64,
    /// Whether a client's own `sender_name` / `sender_avatar` are relayed
    /// when its token carries none. Unset: yes in development mode, no
    /// otherwise (the profile comes from the token, or is absent: no
    /// display-name spoofing).
    pub client_profiles: Option<bool>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            dev: false,
            jwt_secret: None,
            keys: Vec::new(),
            jwks: None,
            jwks_ca: None,
            jwks_refresh_secs: 300,
            jwks_unknown_kid_secs: 10,
            issuer: None,
            audience: None,
            leeway_secs: 5,
            max_token_lifetime_secs: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
            client_profiles: None,
        }
    }
}

impl Auth {
    /// Whether clients' own profile fields are relayed (see
    /// [`client_profiles`](Self::client_profiles)).
    pub fn client_profiles(&self) -> bool {
        self.client_profiles.unwrap_or(self.dev)
    }
}

/// A public key of signed tokens, from a PEM file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    /// The `kid` tokens signed with it carry (optional with one key of
    /// its algorithm).
    pub kid: Option<String>,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// The PEM file of the public key (`-----BEGIN PUBLIC KEY-----`).
    pub pem: PathBuf,
}

/// The admin HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// The bearer key callers must present. Required unless `auth.dev`.
    /// Prefer the `JIM_ADMIN_KEY` environment variable.
    pub key: Option<String>,
}

/// Limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum frame body in bytes, both ways.
    pub max_body: usize,
    /// Maximum open client connections (TCP and WebSocket together).
    pub max_connections: usize,
    /// Sustained B101/B102 messages per second per session.
    pub messages_per_sec: u32,
    /// Messages a session may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Frames queued for one session before it is closed as a slow consumer.
    pub outbox_frames: usize,
    /// Messages of one session the backend may be routing at once; past
    /// that the session reads no more until one is answered.
    pub routes_in_flight: usize,
    /// How long one write to a client may block (its socket not draining)
    /// before the connection is closed as a slow consumer, in milliseconds.
    pub write_timeout_ms: u64,
    /// Open connections from one address (prefix) at once; 0: no limit.
    pub connections_per_address: usize,
    /// New connections from one address (prefix) per second, sustained
    /// and in a burst; 0: no limit.
    pub connections_per_address_per_sec: u32,
    /// IPv4 addresses count together by this prefix (32: each alone).
    pub address_prefix_v4: u8,
    /// IPv6 addresses count together by this prefix (64: a host's
    /// usual allocation).
    pub address_prefix_v6: u8,
    /// Recipients one user's messages may reach per second, sustained (a
    /// message to a group of N members counts N); 0: no limit. Past it,
    /// 4029 until the budget refills.
    pub fanout_per_sec: u32,
    /// Recipients one user's messages may reach in a burst above
    /// `fanout_per_sec`.
    pub fanout_burst: u32,
    /// Recipients all of this gateway's messages may reach per second
    /// (a second's worth in a burst); past it, group messages get 4029
    /// until it refills (one-to-one messages still pass); 0: no limit.
    pub gateway_fanout_per_sec: u32,
    /// Sessions of one user on this gateway at once; 0: no limit.
    pub sessions_per_user: usize,
    /// At `sessions_per_user`: `kick_oldest` (the new session takes the
    /// oldest one's place) or `refuse_new`.
    pub sessions_over_limit: SessionsOverLimit,
}

/// What a user's session past `limits.sessions_per_user` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionsOverLimit {
    /// The oldest session is closed (`A999` 1008 "kicked: ...").
    #[default]
    KickOldest,
    /// The new one is refused (`B003` 4029).
    RefuseNew,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: jim_protocol::DEFAULT_MAX_BODY,
            max_connections: 100_000,
            messages_per_sec: 100,
            message_burst: 200,
            outbox_frames: jim_router::DEFAULT_OUTBOX_FRAMES,
            routes_in_flight: 64,
            write_timeout_ms: 10_000,
            connections_per_address: 0,
            connections_per_address_per_sec: 0,
            address_prefix_v4: 32,
            address_prefix_v6: 64,
            fanout_per_sec: 5_000,
            fanout_burst: 20_000,
            gateway_fanout_per_sec: 100_000,
            sessions_per_user: 16,
            sessions_over_limit: SessionsOverLimit::KickOldest,
        }
    }
}

impl Limits {
    /// Each session's message rate.
    pub(crate) fn message_rate(&self) -> crate::limits::Rate {
        crate::limits::Rate {
            per_sec: self.messages_per_sec,
            burst: self.message_burst,
        }
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

/// Timers of the session life, in milliseconds (heartbeat in seconds, as
/// on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionTimers {
    /// A connection must authenticate within this.
    pub auth_timeout_ms: u64,
    /// Told to clients in `B002`: ping about this often.
    pub heartbeat_secs: u32,
    /// A session with nothing received for this long is closed.
    pub idle_timeout_ms: u64,
    /// A session with nothing to do for this long parks: it gives back its
    /// buffers and driving state until something wakes it (it parks right
    /// after logging in too). Checking costs a wake-up per period.
    pub park_after_ms: u64,
    /// On shutdown, how long sessions get to flush before the process exits.
    pub shutdown_grace_ms: u64,
    /// An HTTP request (a WebSocket upgrade, an admin API call) must arrive
    /// whole within this: its head from the connection's start (or the end
    /// of the previous request), the admin API's body too.
    pub handshake_timeout_ms: u64,
}

impl Default for SessionTimers {
    fn default() -> Self {
        SessionTimers {
            auth_timeout_ms: 10_000,
            heartbeat_secs: 30,
            idle_timeout_ms: 90_000,
            park_after_ms: 5_000,
            shutdown_grace_ms: 10_000,
            handshake_timeout_ms: 10_000,
        }
    }
}

impl SessionTimers {
    /// The auth timeout.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// How long a session waits with nothing to do before it parks.
    pub fn park_after(&self) -> Duration {
        Duration::from_millis(self.park_after_ms)
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
}

impl Config {
    /// Reads a TOML file (feature `cli`).
    ///
    /// # Errors
    /// [`GatewayError::Config`] naming the file and the problem.
    #[cfg(feature = "cli")]
    pub fn from_file(path: &std::path::Path) -> Result<Config, GatewayError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))
    }

    /// A configuration for tests and embedding: development auth, every
    /// listener on an ephemeral loopback port.
    pub fn ephemeral_dev() -> Config {
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        Config {
            listen: Listen {
                ws: any,
                tcp: any,
                admin: any,
                ..Listen::default()
            },
            auth: Auth {
                dev: true,
                ..Auth::default()
            },
            ..Config::default()
        }
    }

    /// Checks what serde cannot.
    ///
    /// # Errors
    /// [`GatewayError::Config`] saying what is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let fail = |msg: String| Err(GatewayError::Config(msg));
        self.inbox.check().map_err(GatewayError::Config)?;
        self.hooks
            .validate()
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        if self.mode == Mode::Grpc && self.hooks.events_url.is_some() {
            return fail(
                "hooks.events_url: in grpc mode the router sends the events (it sees every gateway's sessions and every message): set it in the router's configuration, not the gateway's; the gateway keeps hooks.before_send_url"
                    .into(),
            );
        }
        if self.node_id > jim_model::MAX_NODE {
            return fail(format!(
                "node_id {} is out of range (0..={})",
                self.node_id,
                jim_model::MAX_NODE
            ));
        }
        for (setting, value) in [
            ("auth.jwt_secret", &self.auth.jwt_secret),
            ("admin.key", &self.admin.key),
            ("grpc.key", &self.grpc.key),
            ("hooks.secret", &self.hooks.secret),
        ] {
            if value.as_deref().is_some_and(is_placeholder) {
                return fail(format!(
                    "{setting} is still the example's placeholder: set a random value (head -c 32 /dev/urandom | base64), in the file or its JIM_* environment variable"
                ));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return fail("tls.cert and tls.key go together: set both, or neither".into());
        }
        if let Some(odd) = self
            .tls
            .plaintext
            .iter()
            .find(|p| !["tcp", "ws", "admin"].contains(&p.as_str()))
        {
            return fail(format!(
                "tls.plaintext: {odd:?} is not a listener (tcp, ws, admin)"
            ));
        }
        for key in &self.auth.keys {
            parse_alg(&key.alg)
                .map_err(|e| GatewayError::Config(format!("auth.keys {}: {e}", key.pem.display())))?;
        }
        if self.auth.jwks.is_some() && (self.auth.jwks_refresh_secs == 0) {
            return fail("auth.jwks_refresh_secs must be positive".into());
        }
        if !self.auth.dev {
            let public_keys = !self.auth.keys.is_empty() || self.auth.jwks.is_some();
            match &self.auth.jwt_secret {
                None if public_keys => {}
                None => {
                    return fail(
                        "no token key: set auth.jwt_secret or JIM_JWT_SECRET (32+ bytes), auth.keys or auth.jwks, or run with --dev"
                            .into(),
                    );
                }
                Some(secret) if secret.len() < 32 => {
                    return fail(format!(
                        "auth.jwt_secret is {} bytes; HS256 needs at least 32 (256 bits)",
                        secret.len()
                    ));
                }
                Some(_) => {}
            }
            if self.listen.admin.is_some() && self.admin.key.as_deref().is_none_or(str::is_empty) {
                return fail(
                    "no admin key: set admin.key or JIM_ADMIN_KEY, turn the admin listener off, or run with --dev"
                        .into(),
                );
            }
        }
        if self.auth.max_token_lifetime_secs == 0 {
            return fail("auth.max_token_lifetime_secs must be positive".into());
        }
        if self.listen.tcp.is_none() && self.listen.ws.is_none() {
            return fail("no client listener: configure listen.tcp or listen.ws".into());
        }
        if !self.listen.ws_path.starts_with('/') {
            return fail(format!(
                "listen.ws_path {:?} must start with '/'",
                self.listen.ws_path
            ));
        }
        if self.limits.max_body == 0 || self.limits.max_body > u32::MAX as usize {
            return fail(format!(
                "limits.max_body {} must be between 1 and 2^32-1",
                self.limits.max_body
            ));
        }
        if self.limits.outbox_frames == 0
            || self.limits.max_connections == 0
            || self.limits.routes_in_flight == 0
        {
            return fail(
                "limits.outbox_frames, limits.max_connections and limits.routes_in_flight must be positive"
                    .into(),
            );
        }
        if self.limits.address_prefix_v4 > 32 || self.limits.address_prefix_v6 > 128 {
            return fail(format!(
                "limits.address_prefix_v4 ({}) must be at most 32, limits.address_prefix_v6 ({}) at most 128",
                self.limits.address_prefix_v4, self.limits.address_prefix_v6
            ));
        }
        if self.limits.write_timeout_ms == 0 {
            return fail("limits.write_timeout_ms must be positive".into());
        }
        if self.limits.messages_per_sec == 0 {
            return fail("limits.messages_per_sec must be positive".into());
        }
        if self.session.heartbeat_secs == 0
            || self.session.idle_timeout_ms == 0
            || self.session.park_after_ms == 0
            || self.session.auth_timeout_ms == 0
            || self.session.handshake_timeout_ms == 0
        {
            return fail("session timers must be positive".into());
        }
        Ok(())
    }
}

/// Whether a secret is the placeholder of the example files, which must
/// never run as a real secret.
pub(crate) fn is_placeholder(secret: &str) -> bool {
    secret.to_ascii_lowercase().contains("change-me")
}

/// The default of `auth.max_token_lifetime_secs`: 30 days.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 30 * 24 * 3600;

/// The algorithm of a public key: `RS256`, `ES256` or `EdDSA`.
///
/// # Errors
/// [`GatewayError::Config`] for any other name.
pub fn parse_alg(name: &str) -> Result<jsonwebtoken::Algorithm, GatewayError> {
    match name {
        "RS256" => Ok(jsonwebtoken::Algorithm::RS256),
        "ES256" => Ok(jsonwebtoken::Algorithm::ES256),
        "EdDSA" => Ok(jsonwebtoken::Algorithm::EdDSA),
        other => Err(GatewayError::Config(format!(
            "key algorithm {other:?}: use RS256, ES256 or EdDSA (HS256 takes auth.jwt_secret)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/jim.toml.example");

    /// Every key of the configuration, as a dotted path, from its TOML.
    fn key_paths(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            match value {
                toml::Value::Table(inner) => key_paths(inner, &format!("{path}."), out),
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn listeners_others_can_reach_in_plaintext_are_named() {
        let mut config = Config::default();
        assert!(config.exposed_plaintext().is_empty(), "loopback only by default");
        config.listen.tcp = Some("0.0.0.0:9001".parse().unwrap());
        config.listen.ws = Some("[::]:9000".parse().unwrap());
        let names = |c: &Config| {
            c.exposed_plaintext()
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&config), ["tcp", "ws"]);
        config.tls.cert = Some("cert.pem".into());
        config.tls.key = Some("key.pem".into());
        assert!(names(&config).is_empty(), "encrypted");
        config.tls.plaintext = vec!["ws".into()];
        assert_eq!(names(&config), ["ws"]);
    }

    #[test]
    fn the_example_file_has_every_key_with_its_default() {
        let example: Config = toml::from_str(EXAMPLE).unwrap();
        let mut expected = Config::default();
        expected.auth.jwt_secret = example.auth.jwt_secret.clone();
        expected.admin.key = example.admin.key.clone();
        assert_eq!(example, expected, "the example's values are the defaults");
        // Every key of the defaults is in the example (commented out when it has no default).
        let defaults: toml::Table = toml::from_str(&toml::to_string(&Config::default()).unwrap()).unwrap();
        let mut keys = Vec::new();
        key_paths(&defaults, "", &mut keys);
        let documented = [
            "tls.cert",
            "tls.key",
            "auth.client_profiles",
            "auth.jwks",
            "auth.jwks_ca",
            "auth.issuer",
            "auth.audience",
            "grpc.ca",
            "grpc.key",
        ];
        for key in keys {
            let name = key.rsplit('.').next().unwrap();
            assert!(
                EXAMPLE.contains(&format!("\n{name} = ")),
                "{key} is not in deploy/jim.toml.example"
            );
        }
        for key in documented {
            let name = key.rsplit('.').next().unwrap();
            assert!(
                EXAMPLE.contains(&format!("# {name} = ")),
                "{key} is not in deploy/jim.toml.example"
            );
        }
    }

    #[test]
    fn the_deployed_configuration_is_valid_with_its_secrets_from_the_environment() {
        let mut deployed: Config = toml::from_str(include_str!("../../../deploy/jim-gateway.toml")).unwrap();
        deployed.auth.jwt_secret = Some("s".repeat(32));
        deployed.admin.key = Some("k".into());
        deployed.validate().unwrap();
        assert!(!deployed.auth.dev);
        assert!(deployed.listen.admin.unwrap().ip().is_loopback());
    }

    #[test]
    fn the_example_files_kafka_section_is_the_kafka_defaults() {
        let example: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(example.kafka, jim_router_kafka::KafkaConfig::default());
    }

    #[test]
    fn the_examples_placeholder_secrets_are_refused() {
        let mut example: Config = toml::from_str(EXAMPLE).unwrap();
        let err = example.validate().unwrap_err().to_string();
        assert!(
            err.contains("auth.jwt_secret is still the example's placeholder"),
            "{err}"
        );
        example.auth.jwt_secret = Some("x".repeat(32));
        let err = example.validate().unwrap_err().to_string();
        assert!(
            err.contains("admin.key is still the example's placeholder"),
            "{err}"
        );
        example.admin.key = Some("a real key".into());
        example.validate().unwrap();
    }

    #[test]
    fn defaults_are_the_contract_defaults() {
        let config = Config::default();
        assert_eq!(config.listen.ws, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(config.listen.tcp, Some("127.0.0.1:9001".parse().unwrap()));
        assert_eq!(config.listen.admin, Some("127.0.0.1:9002".parse().unwrap()));
        assert_eq!(config.listen.ws_path, "/ws");
        assert_eq!(config.limits.max_body, 64 * 1024);
        assert_eq!(config.session.auth_timeout(), Duration::from_secs(10));
        assert_eq!(config.session.heartbeat_secs, 30);
        assert_eq!(config.session.idle_timeout(), Duration::from_secs(90));
    }

    #[test]
    fn production_needs_secrets() {
        let mut config = Config::default();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("JIM_JWT_SECRET"), "{err}");
        config.auth.jwt_secret = Some("short".into());
        assert!(config.validate().unwrap_err().to_string().contains("at least 32"));
        config.auth.jwt_secret = Some("x".repeat(32));
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("JIM_ADMIN_KEY")
        );
        config.admin.key = Some("k".into());
        config.validate().unwrap();
    }

    #[test]
    fn listeners_can_be_turned_off() {
        let config: Config = toml::from_str("[listen]\ntcp = \"off\"\nws = \"127.0.0.1:1\"").unwrap();
        assert_eq!(config.listen.tcp, None);
        assert_eq!(config.listen.ws, Some("127.0.0.1:1".parse().unwrap()));
        let written = toml::to_string(&config).unwrap();
        assert!(written.contains("tcp = \"off\""), "{written}");
        assert_eq!(toml::from_str::<Config>(&written).unwrap(), config);
        assert!(toml::from_str::<Config>("[listen]\ntcp = \"nope\"").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("[listen]\ntcpp = \"1.2.3.4:5\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `tcpp`"), "{err}");
    }
}
