//! The one error type of the `hftp` crate.

use crate::proto::Status;

/// Everything that can go wrong talking HFTP.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or file error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The server could not be reached (the address and the likely cause).
    #[error(transparent)]
    Net(#[from] netkit::Error),
    /// The download's output cannot be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// Where the download was going.
        path: std::path::PathBuf,
        /// Why it cannot.
        source: std::io::Error,
    },
    /// The server answered with an error status.
    #[error("{}", status_message(*.0, .1))]
    Status(Status, String),
    /// The server's answer does not follow the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A time limit passed.
    #[error("no answer within {wait:?}: timed out {what}")]
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// The limit.
        wait: std::time::Duration,
    },
    /// The server refused `get_slice ... raw` with 201: it has no raw mode.
    #[error(
        "the server refused the raw form of get_slice for {0:?} (201): it has no raw mode (the older lab); download without --raw (base64)"
    )]
    RawRefused(String),
}

/// One clear line per status, naming what it was about.
fn status_message(status: Status, about: &str) -> String {
    let code = status.code();
    match status {
        Status::FileNotFound => format!("the server has no file {about:?} ({code})"),
        Status::BadOffset => format!("the range asked of {about:?} goes past its end ({code})"),
        Status::InternalError => format!("the server cannot read {about:?} ({code})"),
        Status::InvalidArguments => format!(
            "the server rejected the arguments of {about} ({code}): file names may only use A-Z a-z 0-9 . - _"
        ),
        Status::InvalidCommand => format!("the server does not know the command {about} ({code})"),
        Status::BadEol | Status::BadRequest => format!(
            "the server found the request {about} malformed ({code}) and closed the connection"
        ),
        Status::Ok => format!("ok ({about})"),
    }
}
