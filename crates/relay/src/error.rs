//! The one error type of the `relay` crate.

/// Everything that can go wrong in the relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Framing errors from the shared toolkit (a length over its limit, EOF).
    #[error(transparent)]
    Net(#[from] netkit::Error),
    /// A socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame that does not follow the protocol; says which field.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which message or field.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {0} (this side speaks {version})", version = crate::proto::VERSION)]
    Version(u8),
    /// A message type this version does not have.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The durable log holds something this build cannot read.
    #[error(
        "cannot read the event log {path} at byte {at}: {why} (the file is left as it is; move it away to start afresh)"
    )]
    Log {
        /// The file.
        path: String,
        /// Where the bad record starts.
        at: usize,
        /// Why it does not decode.
        why: String,
    },
    /// The benchmark could not run (a server that would not start, a stalled run).
    #[error("bench: {0}")]
    Bench(String),
}
