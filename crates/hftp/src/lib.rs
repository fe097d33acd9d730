//! HFTP, the Home-made File Transfer Protocol of seed 001 (spec: `hftp.md`): a
//! drop-in replacement for the course's file server.
//!
//! - [`request`]: what is kept of a request line (constant memory, any length);
//! - [`proto`]: commands, status codes, the check order (pure);
//! - [`server`]: the server;
//! - [`resolve`]: which file a name means (never one outside the directory);
//! - [`slice`]: streaming a slice with bounded memory and threads;
//! - [`client`]: the client (list, metadata, sliced downloads).

pub mod bench;
pub mod check;
pub mod client;
pub mod error;
mod output;
pub mod proto;
pub mod request;
pub mod resolve;
pub mod server;
pub mod slice;

/// Default port, as the course's server.
pub const DEFAULT_PORT: u16 = 19500;
pub use error::Error;
