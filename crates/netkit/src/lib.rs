//! Building blocks that every protolab system shares.
//!
//! - [`frame`]: length-prefixed binary frames in buffered decoders (the
//!   announced length checked against a named [`Limit`] as soon as the header
//!   is in, before the body is waited for or allocated).
//! - [`line`]: a sans-IO bounded reader for CR LF text protocols.
//! - [`server`]: the TCP server runtime (connection limit taken before `accept`, a
//!   tracing span per connection, backoff on accept errors, graceful shutdown).
//! - [`activity`]: which connections are idle, and closing the oldest idle one
//!   to make room at the connection limit.
//! - [`shutdown`]: the process-wide shutdown signal (SIGINT or SIGTERM).
//! - [`stall`]: a writer that gives up on a peer that stopped reading.
//! - [`units`]: durations, sizes and probabilities as typed on command lines.
//! - [`logfmt`]: the `action: X | result: Y | key: value` log line format.
//! - [`ceiling`]: the machine's loopback request/response ceiling, for benchmarks.
//! - [`peer`]: another program speaking a protocol, run beside ours (reference peers).
//! - [`process`]: one of our servers as a process (benchmarks, multi-server scenarios).
//! - `testing` (feature `test-util`): the wire tests' server harness.

pub mod activity;
pub mod bench;
pub mod ceiling;
pub mod connect;
pub mod error;
pub mod frame;
pub mod json;
pub mod line;
pub mod logfmt;
pub mod peer;
pub mod process;
pub mod server;
pub mod shutdown;
pub mod stall;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod units;

pub use error::Error;
pub use frame::Limit;
pub use line::{Head, Line, LineReader, LineSink, Overflow};
pub use logfmt::{LogLine, Outcome};
pub use stall::StallGuard;
