//! Stopping on SIGINT and SIGTERM.

/// SIGINT and SIGTERM, caught from the moment this is made: a signal that
/// comes before anyone waits is not lost (nor does it kill the process).
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let stop = jim_service::StopSignals::install()?;
/// println!("ready"); // whoever reads this may signal at once
/// stop.received().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (within a tokio runtime).
    ///
    /// # Errors
    /// The operating system refused.
    pub fn install() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    /// Resolves on the first SIGINT or SIGTERM since [`install`](Self::install).
    pub async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGHUP, caught from the moment this is made: each one asks the process
/// to reload what it can (certificates, key files, the log filter). A
/// process that holds one never dies of a SIGHUP, whatever it serves.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let mut hangups = jim_service::Hangups::install()?;
/// loop {
///     hangups.next().await;
///     println!("reloading");
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Hangups {
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Hangups {
    /// Installs the handler (within a tokio runtime).
    ///
    /// # Errors
    /// The operating system refused.
    pub fn install() -> std::io::Result<Hangups> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Hangups {
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Hangups {})
        }
    }

    /// Resolves on the next SIGHUP (several received meanwhile count as
    /// one); never, where there are no such signals.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        {
            if self.hangup.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            std::future::pending::<()>().await;
        }
    }
}
