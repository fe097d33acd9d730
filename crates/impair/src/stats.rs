//! Counters of what a proxy saw and did, and the summary printed on exit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::direction::{Direction, PerDir};

macro_rules! counters {
    ($(#[$m:meta])* $name:ident, $snap:ident { $($(#[$fm:meta])* $field:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: AtomicU64,)*
        }

        /// A point-in-time copy of the counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $snap {
            $($(#[$fm])* pub $field: u64,)*
        }

        impl $name {
            /// Reads every counter.
            pub fn snapshot(&self) -> $snap {
                $snap { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }

        impl $snap {
            /// `(name, value)` of every counter, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field),)*]
            }
        }
    };
}

counters!(
    /// One direction of a UDP proxy.
    UdpCounters, UdpSnapshot {
        /// Datagrams received from the sender.
        seen,
        /// Their bytes.
        bytes_seen,
        /// Datagrams sent on (duplicates included).
        delivered,
        /// Their bytes.
        bytes_delivered,
        /// Dropped by the random loss rule.
        dropped_loss,
        /// Dropped by the drop-nth rule.
        dropped_nth,
        /// Dropped by the drop-match rule.
        dropped_match,
        /// Dropped because the delay queue was full.
        dropped_queue,
        /// Extra copies made.
        duplicated,
        /// Datagrams with a byte flipped.
        corrupted,
        /// Datagrams held back and sent after their successor.
        reordered,
        /// Datagrams sent later than they arrived (delay, jitter or rate).
        delayed,
    }
);

counters!(
    /// One direction of a TCP proxy.
    TcpCounters, TcpSnapshot {
        /// Bytes read from the sender.
        bytes_in,
        /// Bytes written to the receiver.
        bytes_out,
        /// Write calls made (a chopped stream makes many).
        writes,
        /// Stalls that began.
        stalls,
        /// Connections closed by a close rule.
        closes,
        /// Connections reset by a reset rule.
        resets,
    }
);

/// Increments a counter.
pub(crate) fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// Summary of a UDP proxy's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpSummary {
    /// Distinct client addresses seen.
    pub flows: u64,
    /// Datagrams from new clients refused because `max_flows` were open.
    pub flows_refused: u64,
    /// Per direction counters.
    pub dirs: PerDir<UdpSnapshot>,
}

/// Summary of a TCP proxy's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpSummary {
    /// Connections accepted.
    pub connections: u64,
    /// Connections whose upstream could not be reached.
    pub upstream_failures: u64,
    /// Per direction counters.
    pub dirs: PerDir<TcpSnapshot>,
}

fn table(f: &mut fmt::Formatter<'_>, up: &[(&str, u64)], down: &[(&str, u64)]) -> fmt::Result {
    table_with(f, ["up", "down"], up, down)
}

/// The per-direction counters side by side, under the given column names.
pub(crate) fn table_with(
    f: &mut fmt::Formatter<'_>,
    names: [&str; 2],
    up: &[(&str, u64)],
    down: &[(&str, u64)],
) -> fmt::Result {
    writeln!(f, "  {:<16} {:>14} {:>14}", "", names[0], names[1])?;
    for ((name, u), (_, d)) in up.iter().zip(down) {
        writeln!(f, "  {name:<16} {u:>14} {d:>14}")?;
    }
    Ok(())
}

impl fmt::Display for UdpSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "impair udp summary: {} client address(es), {} datagram(s) refused at the flow limit",
            self.flows, self.flows_refused
        )?;
        table(
            f,
            &self.dirs.get(Direction::Up).fields(),
            &self.dirs.get(Direction::Down).fields(),
        )
    }
}

impl fmt::Display for TcpSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "impair tcp summary: {} connection(s), {} upstream connect failure(s)",
            self.connections, self.upstream_failures
        )?;
        table(
            f,
            &self.dirs.get(Direction::Up).fields(),
            &self.dirs.get(Direction::Down).fields(),
        )
    }
}
