//! What every session and the admin API share: the configuration, the
//! routing backend, authentication, ids, metrics, the connection limit
//! and the shutdown signal. Its own module, below the listeners
//! (`server`), the sessions and the admin API, which all use it.

use std::sync::Arc;

use jim_model::MessageIdGenerator;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;
use crate::auth::Authenticator;
use crate::metrics::Metrics;

/// What every session and the admin API share.
pub(crate) struct Shared<R> {
    pub(crate) config: Config,
    pub(crate) router: R,
    pub(crate) auth: Authenticator,
    /// Client addresses: limits per address, trusted proxies.
    pub(crate) addresses: Arc<crate::addresses::Addresses>,
    /// The listeners' certificate, when any listener is encrypted.
    pub(crate) tls: Option<Arc<jim_service::tls::ServerTls>>,
    pub(crate) ids: MessageIdGenerator,
    /// Recipients per second: each user's budget, and the gateway's.
    pub(crate) fanout: crate::fanout::Fanout,
    /// When each user's typing was last relayed, per conversation.
    pub(crate) typing: crate::typing::TypingGate,
    /// Device labels, one allocation per label rather than per session.
    pub(crate) devices: crate::devices::Devices,
    pub(crate) metrics: Metrics,
    /// `[hooks]`: the before-send hook and the events (flushed at shutdown).
    pub(crate) hooks: jim_hooks::Hooks,
    /// The hook's verdicts, for retries.
    pub(crate) verdicts: crate::verdicts::Verdicts,
    pub(crate) connection_slots: Arc<Semaphore>,
    /// What sessions keep their times on.
    pub(crate) clock: crate::clock::Clock,
    /// Parked sessions' deadlines (one sweeper, no timer per session).
    pub(crate) alarms: crate::alarms::Alarms,
    /// Cancelled when the gateway is told to stop: sessions take no more
    /// messages and answer those in flight.
    pub(crate) shutdown: CancellationToken,
    /// What may still route a message: every session while it drives, and
    /// every admin push. At shutdown, sessions say goodbye once it is
    /// empty, so that none closes while another still routes to it.
    pub(crate) routing: TaskTracker,
    /// Cancelled at shutdown once nothing routes any more (or the grace
    /// period is over): every session then writes what it has and its `A999`.
    pub(crate) goodbye: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// Where sessions run: a parked session's socket or outbox may wake it
    /// from any thread, and it is given a task here. Set by the first.
    pub(crate) runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}
