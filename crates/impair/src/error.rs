//! The one error type of `impair`.

use std::io;
use std::net::SocketAddr;

/// Everything that can go wrong configuring or running a proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule value could not be parsed.
    #[error("invalid {what} {input:?}: {why}")]
    BadValue {
        /// What kind of value (`duration`, `probability`...).
        what: &'static str,
        /// The text given.
        input: String,
        /// What is wrong with it.
        why: String,
    },

    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },

    /// An error of the shared runtime (binding the TCP listener).
    #[error(transparent)]
    Net(#[from] netkit::Error),

    /// Setting up, running or removing an `impair link` failed.
    #[error("{0}")]
    Link(String),

    /// This user may not make namespaces or TUN devices.
    #[error("impair link needs root or CAP_NET_ADMIN: {0}")]
    NotPermitted(String),

    /// Any other socket error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}
