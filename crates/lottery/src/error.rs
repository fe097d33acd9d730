//! The one error type of the `lottery` crate.

use std::io;

/// Everything that can go wrong in the lottery system.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Framing or socket errors from the shared toolkit (limits, EOF mid-frame).
    #[error(transparent)]
    Net(#[from] netkit::Error),

    /// A socket or file error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),

    /// The embedded store failed.
    #[error("store error: {0}")]
    Store(#[from] rusqlite::Error),

    /// The peer sent a message this protocol does not have.
    #[error("unknown message code {code} (header {header:02x?})")]
    UnknownCode {
        /// The code byte.
        code: u8,
        /// The whole header, for the log.
        header: Vec<u8>,
    },

    /// A message whose payload does not fit its code's layout.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What is wrong.
        why: String,
    },

    /// The server answered with an error reply.
    #[error("server refused: {0}")]
    Refused(String),

    /// A data set could not be read.
    #[error("data set {path}: {why}")]
    Dataset {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },

    /// A transaction failed; nothing of its batches was stored.
    #[error("commit failed: {0}")]
    Commit(String),

    /// Another server holds the database file.
    #[error(
        "{0} is in use by another lottery server (it holds the file's lock); stop that server or give this one another --db"
    )]
    Locked(String),

    /// The server holds bets for this agency that are not this client's.
    #[error(
        "the server holds {stored} bets of agency {agency} that differ from this data set ({why}); nothing was sent. Another client sent them as agency {agency}, or the data set changed"
    )]
    NotOurs {
        /// The agency.
        agency: u8,
        /// Bets the server holds from place 0.
        stored: u32,
        /// How they differ.
        why: String,
    },

    /// Another live connection speaks for this agency.
    #[error("the server refused the connection: {0}")]
    AgencyTaken(String),

    /// The store's writer is gone (the server is shutting down).
    #[error("the store is closed")]
    StoreClosed,

    /// A bet too long to fit in one message.
    #[error("bet {index} is {len} bytes, too long for one {max}-byte message")]
    BetTooLong {
        /// 0-based index in the agency's list.
        index: usize,
        /// Its encoded length.
        len: usize,
        /// The message payload budget.
        max: usize,
    },

    /// A store URL that cannot be used.
    #[error("bad store URL {url}: {why} (expected postgres://USER@HOST:PORT/DB)")]
    StoreUrl {
        /// The URL, its password hidden.
        url: String,
        /// What is wrong.
        why: String,
    },

    /// The database cannot be reached.
    #[error("cannot reach PostgreSQL at {target}: {why}")]
    Unreachable {
        /// Where it was looked for (no password).
        target: String,
        /// The driver's reason.
        why: String,
    },

    /// PostgreSQL refused or failed a statement.
    #[error("PostgreSQL: {0}")]
    Postgres(String),

    /// The database's schema is newer than this program.
    #[error(
        "the database's lottery schema is version {found}, newer than this program knows ({known}); upgrade protolab or use another database"
    )]
    SchemaNewer {
        /// The version found.
        found: i32,
        /// The newest this program knows.
        known: i32,
    },

    /// The shared lottery waits for another number of agencies.
    #[error(
        "the lottery in this database waits for {stored} agencies, this server for {ours}; start it with --agencies {stored} or use another database"
    )]
    ExpectedMismatch {
        /// The lottery's count.
        stored: usize,
        /// This server's.
        ours: usize,
    },

    /// The server could not store a batch now (its database is unreachable);
    /// nothing of it was acknowledged, and it may be sent again.
    #[error("the server could not store the batch: {0}")]
    Unavailable(String),

    /// A throwaway PostgreSQL cluster could not be made or run.
    #[error("throwaway PostgreSQL: {0}")]
    Sandbox(String),

    /// A scenario (several servers, a kill) did not hold.
    #[error("{0}")]
    Scenario(String),

    /// Gave up after retrying.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}
