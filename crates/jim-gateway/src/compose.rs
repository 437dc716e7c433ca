//! The composition root: a gateway built from its [`Config`] alone, in the
//! mode the configuration names, with the backend and the inbox store it
//! names. The `jim-gateway` binary only turns flags into a `Config` and
//! calls [`start`]; a service embedding the gateway does the same.

use crate::{Config, Gateway, GatewayError, Mode, RunningGateway};

/// Builds and starts a gateway as `config` says: local mode with its
/// inbox store, grpc mode linked to its router, or kafka mode on its
/// cluster (each as this build has it: see [`check_backend`]).
///
/// ```no_run
/// # async fn run() -> Result<(), jim_gateway::GatewayError> {
/// let mut config = jim_gateway::Config::ephemeral_dev();
/// config.mode = jim_gateway::Mode::Grpc;
/// config.grpc.router = "http://127.0.0.1:9093".into();
/// let gateway = jim_gateway::start(config).await?;
/// println!("clients connect to {}", gateway.tcp_addr().unwrap());
/// gateway.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`GatewayError::Config`] for an invalid configuration (or a mode this
/// build lacks, saying how to build it); the backend's error if it cannot
/// start (Kafka unreachable within its start-up timeout, say); a listener
/// that cannot be bound.
pub async fn start(config: Config) -> Result<RunningGateway, GatewayError> {
    config.validate()?;
    check_backend(&config)?;
    let metrics = crate::metrics::Metrics::new();
    // The gateway's sessions, which the backend of any mode delivers into.
    let hub = std::sync::Arc::new(jim_router::Hub::new());
    let hooks = jim_hooks::Hooks::start(&config.hooks, metrics.hooks())
        .map_err(|e| GatewayError::Config(e.to_string()))?;
    // Events come from the routing of the mode that plans messages here
    // (local, kafka); in grpc mode the router sends them.
    let observers = hooks.observers();
    match config.mode {
        Mode::Local => {
            let inbox = config
                .inbox
                .open(metrics.inbox())
                .await
                .map_err(GatewayError::Config)?;
            let routing = jim_router::Routing::open(inbox, observers)
                .await
                .map_err(|e| GatewayError::Config(format!("[inbox]: {e}")))?
                .sender_copy(config.inbox.sender_copy)
                .typing(config.typing)
                .receipts(config.receipts);
            let router = jim_router::LocalRouter::with_hub(hub, routing);
            Gateway::with_metrics(config, router, metrics)?
                .with_hooks(hooks)
                .start()
                .await
        }
        #[cfg(feature = "grpc")]
        Mode::Grpc => {
            let link = jim_router_grpc::BackendConfig::linked(config.grpc.clone(), config.node_id);
            let backend = jim_router_grpc::GrpcBackend::start(link, hub)?;
            Gateway::with_metrics(config, backend, metrics)?
                .with_hooks(hooks)
                .start()
                .await
        }
        #[cfg(feature = "kafka")]
        Mode::Kafka => {
            let inbox = config
                .inbox
                .open(metrics.inbox())
                .await
                .map_err(GatewayError::Config)?;
            let backend = jim_router_kafka::KafkaBackend::start(
                config.kafka.clone(),
                config.node_id,
                jim_router::Routing::new(inbox, observers)
                    .sender_copy(config.inbox.sender_copy)
                    .typing(config.typing)
                    .receipts(config.receipts),
                hub,
            )
            .await
            .map_err(|e| match e {
                jim_router_kafka::KafkaError::Config(message) => GatewayError::Config(message),
                other => GatewayError::Backend(Box::new(other)),
            })?;
            // The events topic has every message; presence and pushes too.
            hooks.mirror_events(Box::new(backend.event_writer()));
            Gateway::with_metrics(config, backend, metrics)?
                .with_hooks(hooks)
                .start()
                .await
        }
        #[allow(unreachable_patterns)]
        Mode::Grpc | Mode::Kafka => Err(not_compiled(config.mode)),
    }
}

/// Checks the mode's own settings as [`start`] would before connecting to
/// anything: the router's address (grpc), the `[kafka]` section and the
/// inbox store kafka mode can use (kafka), and that this build has the
/// mode at all.
///
/// # Errors
/// [`GatewayError::Config`] saying what to fix.
pub fn check_backend(config: &Config) -> Result<(), GatewayError> {
    match config.mode {
        Mode::Local => Ok(()),
        #[cfg(feature = "grpc")]
        Mode::Grpc => jim_router_grpc::BackendConfig::new(config.grpc.router.clone(), config.node_id)
            .endpoint()
            .map(|_| ())
            .map_err(|e| GatewayError::Config(format!("grpc.router: {e}"))),
        #[cfg(feature = "kafka")]
        Mode::Kafka => {
            use jim_router::inbox::InboxStore;
            config
                .kafka
                .validate()
                .map_err(|e| GatewayError::Config(format!("[kafka]: {e}")))?;
            if matches!(config.inbox.store, InboxStore::Memory | InboxStore::Disk) {
                return Err(GatewayError::Config(format!(
                    "kafka mode keeps inboxes in Redis, shared by every gateway: set inbox.store = \"redis\" \
                     (and inbox.redis_url), or \"off\" for no inbox; not \"{}\" (JIM_INBOX, --inbox)",
                    config.inbox.store.as_str()
                )));
            }
            Ok(())
        }
        #[allow(unreachable_patterns)]
        Mode::Grpc | Mode::Kafka => Err(not_compiled(config.mode)),
    }
}

/// A mode this build lacks, and the command that builds it.
fn not_compiled(mode: Mode) -> GatewayError {
    GatewayError::Config(format!(
        "mode `{}` is not compiled into this binary: rebuild it with \
         `cargo build --release -p jim-gateway -p jim-router-server --features {}`",
        mode.as_str(),
        mode.as_str()
    ))
}
