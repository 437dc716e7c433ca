//! Accepting connections without spinning when the process runs out of
//! file descriptors.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Pause after an accept that failed for want of file descriptors.
const STARVED_PAUSE: Duration = Duration::from_millis(100);

/// One listener's accept loop.
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let stop = tokio_util::sync::CancellationToken::new();
/// let mut acceptor = jim_service::Acceptor::new(listener, "tcp");
/// while let Some((stream, peer)) = acceptor.next(&stop).await {
///     drop((stream, peer)); // serve it
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    name: &'static str,
    /// Accepting fails for want of file descriptors (logged once per episode).
    starved: bool,
}

impl Acceptor {
    /// Accepts from `listener`; `name` names it in the log.
    pub fn new(listener: TcpListener, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            name,
            starved: false,
        }
    }

    /// The next connection, or `None` once `shutdown` is cancelled (the
    /// listener is then dropped by the caller: the port is free at once).
    ///
    /// Out of file descriptors, the kernel keeps the connection in its
    /// backlog: this says so once, pauses, and tries again, instead of
    /// spinning and logging every attempt.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return None,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok(accepted) => {
                    if self.starved {
                        self.starved = false;
                        tracing::info!(listener = self.name, "accepting connections again");
                    }
                    return Some(accepted);
                }
                Err(error) if out_of_descriptors(&error) => {
                    if !self.starved {
                        self.starved = true;
                        tracing::warn!(
                            listener = self.name,
                            error = %error,
                            "out of file descriptors: new connections wait until some close \
                             (raise the open-file limit, `ulimit -n`, or lower the connection limit)"
                        );
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(STARVED_PAUSE) => {}
                    }
                }
                // The client gave up before we took it (ECONNABORTED and the like).
                Err(error) => tracing::debug!(listener = self.name, error = %error, "accept failed"),
            }
        }
    }
}

fn out_of_descriptors(error: &io::Error) -> bool {
    // EMFILE (the process's limit) and ENFILE (the system's).
    matches!(error.raw_os_error(), Some(24 | 23))
}
