//! The one error type of `netkit`.

use std::io;
use std::net::SocketAddr;

/// Everything that can go wrong in the shared building blocks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),

    /// A value typed on a command line could not be parsed.
    #[error("invalid {what} {input:?}: {why}")]
    BadValue {
        /// What kind of value (`duration`, `probability`...).
        what: &'static str,
        /// The text given.
        input: String,
        /// What is wrong with it.
        why: String,
    },

    /// A server process (ours, under test) could not be started or said
    /// nothing usable.
    #[error("{0}")]
    Process(String),

    /// A client could not reach its server.
    #[error("cannot connect to {addr}: {why}")]
    Connect {
        /// The address as given (`host:port`).
        addr: String,
        /// Why, in words (see [`crate::connect::reason`]).
        why: String,
    },

    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why (address in use, permission denied...).
        source: io::Error,
    },

    /// The peer closed the connection in the middle of a frame or header.
    #[error("connection closed mid-{part}: got {got} of {expected} bytes")]
    UnexpectedEof {
        /// Which part of the message was being read (`header`, `body`).
        part: &'static str,
        /// Bytes received of that part before EOF.
        got: usize,
        /// Bytes the part needed.
        expected: usize,
    },

    /// A length announced by the peer is over a named limit; nothing was allocated.
    #[error("{name} of {announced} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The limit's name, e.g. `lottery batch`.
        name: &'static str,
        /// The length the peer announced.
        announced: u64,
        /// The limit.
        max: usize,
    },

    /// A text line grew past the reader's limit before its CR LF.
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },

    /// A line feed that was not preceded by a carriage return.
    #[error("bare LF at byte {offset} of the line (CR LF expected)")]
    BareLf {
        /// Offset of the LF within the current line.
        offset: usize,
    },
}

impl Error {
    /// Whether this is a refused connect: nothing listened there, so nothing
    /// was sent (a client may safely try again).
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::Connect { why, .. } if why.starts_with("connection refused"))
    }

    /// True when the error means the peer went away (EOF mid-message or a reset),
    /// as opposed to the peer sending something malformed.
    pub fn is_disconnect(&self) -> bool {
        match self {
            Error::UnexpectedEof { .. } => true,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}
