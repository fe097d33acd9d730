//! The one error type of the `classic` crate.

/// Everything that can go wrong in the classic servers and clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Framing errors from the shared toolkit (a length over its limit).
    #[error(transparent)]
    Net(#[from] netkit::Error),
    /// A socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer does not speak the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server went away.
    #[error("the server closed the connection")]
    ServerClosed,
}
