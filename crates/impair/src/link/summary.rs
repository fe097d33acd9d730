//! What a link did, printed when it stops.

use std::fmt;

use crate::direction::PerDir;
use crate::stats::{UdpSnapshot, table_with};

/// Summary of a link's life: the datagram engine's counters per direction
/// (`up` is a → b) and what the devices saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSummary {
    /// The link's name.
    pub name: String,
    /// Its MTU.
    pub mtu: u32,
    /// Per direction counters (packets, not datagrams).
    pub dirs: PerDir<UdpSnapshot>,
    /// Largest packet read from either device.
    pub largest: u64,
    /// Packets read that were larger than the MTU.
    pub over_mtu: u64,
    /// Packets a device refused.
    pub write_errors: u64,
}

impl fmt::Display for LinkSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "impair link summary: {}, mtu {}, largest packet {} bytes, {} over the MTU, {} refused by a device",
            self.name, self.mtu, self.largest, self.over_mtu, self.write_errors
        )?;
        table_with(
            f,
            ["a2b", "b2a"],
            &self.dirs.up.fields(),
            &self.dirs.down.fields(),
        )
    }
}
