//! rdt: reliable, connection-oriented transport over UDP (seed 003,
//! `docs/protocols/rdt.md`).
//!
//! - [`conn`]: the sans-IO Stop & Wait connection core.
//! - [`wire`]: the `course` and `binary` formats.
//! - [`sim`]: a deterministic network simulator over two cores.

pub mod config;
pub mod conn;
pub mod error;
pub mod isn;
pub mod segment;
pub mod seq;
pub mod sim;
pub mod wire;

pub use config::Config;
pub use conn::{Connection, Ending, Note, Read, State, Stats};
pub use error::Error;
pub use segment::{Flags, Kind, Segment};
pub use seq::Seq;
pub use wire::Format;
