//! Hooks and events for the application's backend (contract section 9).
//!
//! - [`BeforeSend`]: every B101/B102 is shown to the application before
//!   it is stored; it allows, denies or rewrites it. A timeout or failure
//!   is decided by `on_error`, and a breaker stops calling a dead hook.
//! - Events ([`Notifier`], an [`Observer`](jim_router::Observer) of a
//!   backend's routing): `message.accepted`, `user.online`/`user.offline`
//!   (per user, the offline delayed), `push.needed` (a message stored for
//!   a user with no session), POSTed in signed batches, retried with
//!   backoff, in a bounded queue.
//! - [`sign`] and [`verify`]: `Jim-Signature`, HMAC-SHA256 over
//!   `"<t>.<body>"`, for receivers written in Rust.
//!
//! ```
//! use jim_hooks::{Hooks, HooksConfig, HooksMetrics};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let config = HooksConfig {
//!     events_url: Some("http://127.0.0.1:9100/events".into()),
//!     secret: Some("a long shared secret".into()),
//!     ..HooksConfig::default()
//! };
//! let hooks = Hooks::start(&config, HooksMetrics::default())?;
//! assert!(hooks.before_send().is_none());
//! assert_eq!(hooks.observers().len(), 1); // for the backend's routing
//! hooks.close(std::time::Duration::from_millis(10)).await;
//! # Ok::<(), jim_hooks::HooksError>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

mod before_send;
mod config;
mod error;
mod events;
#[cfg(feature = "cli")]
mod flags;
mod metrics;
mod notifier;
mod presence;
mod signature;

use std::sync::Arc;
use std::time::Duration;

pub use before_send::{BeforeSend, PROTECTED_FIELDS, Proposed, Verdict, parse_verdict, replaced};
pub use config::{HooksConfig, MIN_SECRET_LEN, OnError, PushPreview};
pub use error::HooksError;
pub use events::{Events, Mirror};
#[cfg(feature = "cli")]
pub use flags::EventFlags;
pub use metrics::HooksMetrics;
pub use notifier::Notifier;
use signature::Secrets;
pub use signature::{SIGNATURE_HEADER, sign, verify};

/// `[hooks]` running: the before-send hook's client and the events'
/// sender, sharing one HTTP client (one pool of kept-alive connections).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    before_send: Option<Arc<BeforeSend>>,
    events: Option<Events>,
    notifier: Option<Arc<Notifier>>,
}

impl Hooks {
    /// Checks `config` and starts what it asks for (nothing when both URLs
    /// are unset). Call within a Tokio runtime.
    ///
    /// # Errors
    /// [`HooksError::Config`] for a configuration that cannot work;
    /// [`HooksError::Client`] if the HTTP client cannot be made.
    pub fn start(config: &HooksConfig, metrics: HooksMetrics) -> Result<Hooks, HooksError> {
        config.validate()?;
        if !config.is_on() {
            return Ok(Hooks::default());
        }
        // rustls with ring, as the listeners (the first call wins).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| HooksError::Client {
                reason: e.to_string(),
            })?;
        let secrets = Arc::new(Secrets::new(
            config.secret.clone().unwrap_or_default(),
            config.previous_secret.clone(),
        ));
        let before_send = config.before_send_url.is_some().then(|| {
            Arc::new(BeforeSend::new(
                config,
                client.clone(),
                Arc::clone(&secrets),
                metrics.clone(),
            ))
        });
        let events = config
            .events_url
            .is_some()
            .then(|| Events::start(config, client, secrets, metrics));
        let notifier = events.as_ref().map(|events| {
            let presence = presence::Presence::new(config.offline_delay(), events.clone());
            Arc::new(Notifier::new(events.clone(), presence, config.push_preview))
        });
        Ok(Hooks {
            before_send,
            events,
            notifier,
        })
    }

    /// The before-send hook, when `hooks.before_send_url` is set.
    pub fn before_send(&self) -> Option<&Arc<BeforeSend>> {
        self.before_send.as_ref()
    }

    /// The observers a backend's routing takes: the events' notifier, when
    /// events are on; none otherwise.
    pub fn observers(&self) -> Vec<Arc<dyn jim_router::Observer>> {
        self.notifier
            .iter()
            .map(|n| Arc::clone(n) as Arc<dyn jim_router::Observer>)
            .collect()
    }

    /// Writes `user.online`, `user.offline` and `push.needed` to `mirror`
    /// too (kafka mode: the events topic, which has every message
    /// already). `false` when events are off or a mirror was set.
    pub fn mirror_events(&self, mirror: Mirror) -> bool {
        self.events
            .as_ref()
            .is_some_and(|events| events.mirror_to(mirror))
    }

    /// Sends the events still queued, within `grace`.
    pub async fn close(&self, grace: Duration) {
        if let Some(events) = &self.events {
            events.close(grace).await;
        }
    }
}
