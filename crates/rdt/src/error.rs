//! The one error type of the rdt crate.

use std::io;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A datagram that is not a segment of the format in use; names the field.
    #[error("malformed {format} segment: {field} {problem}")]
    Malformed {
        format: &'static str,
        field: &'static str,
        problem: &'static str,
    },
    #[error(
        "binary segment checksum mismatch: header says {expected:#010x}, contents sum to {actual:#010x}"
    )]
    Checksum { expected: u32, actual: u32 },
    /// A retransmission loop reached its bound.
    #[error("no answer to {what} after {tries} tries ({elapsed:?}); is the peer running?")]
    GaveUp {
        what: &'static str,
        tries: u32,
        elapsed: Duration,
    },
    #[error("peer silent for {0:?}; giving up on the connection")]
    PeerSilent(Duration),
    #[error("message length segment is not a decimal number: {0:?}")]
    BadLength(String),
    #[error("a data segment runs {0} bytes past the announced message length")]
    Overrun(usize),
    #[error("the peer closed in the middle of a message ({missing} bytes never arrived)")]
    Truncated { missing: u64 },
    #[error("connection closed")]
    Closed,
    #[error("MSS {mss} out of range 1..={max} for the {format} format")]
    Mss {
        mss: usize,
        max: usize,
        format: &'static str,
    },
    /// A mode, window or format that cannot work together; says why.
    #[error("{0}")]
    Mode(String),
    /// An operation called on a socket in the wrong role (e.g. `send` before `connect`).
    #[error("socket is not {0}")]
    Usage(&'static str),
    /// The checker's `impair udp` proxy or the bench's `impair link` would not start.
    #[error("impair: {0}")]
    Proxy(#[from] impair::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
