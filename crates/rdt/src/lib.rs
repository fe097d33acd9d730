//! rdt: reliable, connection-oriented transport over UDP (seed 003,
//! `docs/protocols/rdt.md`).
//!
//! - [`conn`]: the sans-IO Stop & Wait connection core.
//! - [`wire`]: the `course` and `binary` formats.
//! - [`dialect`]: the course's readings of the header, learned or forced.
//! - [`sim`]: a deterministic network simulator over two cores.
//! - [`socket`]: the seed's `SocketTCP` over std UDP sockets ([`RdtSocket`]).
//! - [`trace`]: sequence diagrams of real sessions.
//! - [`check`]: the conformance checker for other implementations.

mod batch;
pub mod bench;
pub mod cc;
pub mod check;
pub mod config;
pub mod conn;
pub mod cwnd_trace;
pub mod dialect;
mod endpoint;
pub mod error;
pub mod few;
pub mod isn;
mod link;
mod listener;
pub mod mode;
mod parts;
pub mod plot;
pub mod rto;
pub mod segment;
pub mod seq;
pub mod sim;
pub mod socket;
pub mod trace;
mod wait;
pub mod wire;

pub use config::Config;
pub use conn::{Answer, Connection, Ending, Ignore, Note, Output, Read, State, Stats};
pub use cwnd_trace::CwndTrace;
pub use dialect::{DialectChoice, Learned, Reading};
pub use error::Error;
pub use link::{DropKind, Options, Way};
pub use mode::{CcKind, Mode, RtoChoice};
pub use segment::{Flags, Kind, Sack, Segment};
pub use seq::Seq;
pub use socket::RdtSocket;
pub use trace::Trace;
pub use wire::Format;
