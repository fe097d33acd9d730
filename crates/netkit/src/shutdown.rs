//! The process-wide shutdown signal (DESIGN habit 11).
//!
//! Servers take "a future that completes when it is time to stop" as a parameter;
//! the binary passes [`signal`], tests pass whatever they like (a
//! `CancellationToken`, a oneshot). Completing on SIGINT *or* SIGTERM is what lets
//! `kill` and Ctrl-C both end a server with exit code 0.

use std::io;

/// Which signal asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// `kill` / service manager stop.
    Terminate,
}

impl Signal {
    /// The usual name (`SIGINT`, `SIGTERM`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Installs the handlers now and returns a future that completes on the first
/// SIGINT or SIGTERM.
///
/// The handlers are installed before this returns, so a signal that arrives after
/// the call and before the future is polled is not lost.
pub fn signal() -> io::Result<impl Future<Output = Signal>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
        }
    })
}
