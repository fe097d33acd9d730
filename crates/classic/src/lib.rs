//! Echo, math and position-broadcast servers and clients (seed 004, spec:
//! `classic.md`), byte-compatible with the Python originals, with their faults
//! fixed: whole messages out of any segmentation, bounded lengths, unique ids, a
//! safe client list, dead and slow clients removed without affecting others.
//!
//! - [`math`], [`positions`], [`pyfloat`]: the wire formats, pure;
//! - [`registry`]: the client list;
//! - [`server`] and [`client`]: the programs' cores;
//! - [`web`]: the positions map page and its WebSocket (`--web`);
//! - [`bench`]: the benchmark.

pub mod bench;
pub mod client;
pub mod error;
pub mod math;
pub mod positions;
pub mod pyfloat;
pub mod registry;
pub mod server;
pub mod web;

pub use error::Error;

/// Default port of all three (one at a time), as in the originals.
pub const DEFAULT_PORT: u16 = 9000;
/// What the echo client sends.
pub const TEST_PACKET: &[u8] = b"Test Packet";

/// Which of the three examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// "Test packets": echo.
    Echo,
    /// The math server.
    Math,
    /// Position broadcasting.
    Positions,
}

impl Kind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Math => "math",
            Kind::Positions => "positions",
        }
    }
}
