//! What a connection gives its shell: outputs (segments, notes), counters,
//! and how it ended (spec "Programs": the line each program prints at the end).

use std::fmt;

use crate::segment::Segment;

use super::Note;

/// Counters a caller can print after a session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub segments_sent: u64,
    pub segments_received: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
    pub duplicates: u64,
    /// Data bytes the peer received in order (length segments included).
    pub bytes_delivered: u64,
    /// Our data bytes the peer has acknowledged (length segments included).
    pub bytes_acked: u64,
    /// The longest data field the peer sent in one segment.
    pub largest_received: usize,
}

/// What the core produced: a segment for the wire or a note for the reader.
#[derive(Debug, Clone)]
pub enum Output {
    /// To the peer.
    Transmit(Segment),
    /// To the address the client connected to (the listening socket), not the
    /// per-connection port: a handshake ACK for peers that read it there.
    TransmitToListener(Segment),
    Note(Note),
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every FIN answered and acknowledged.
    Graceful,
    /// `close()` saw no FIN-ACK in its timeouts and assumed the peer closed (seed rule).
    FinUnanswered,
    /// `recv_close()` saw no last ACK in its timeouts and closed anyway (seed rule).
    LastAckMissing,
    /// The connection failed with an error.
    Failed,
}

impl Ending {
    /// What happened, in a sentence for the user, with the number of
    /// timeouts the close waited (`Config::close_timeouts`).
    pub fn describe(self, close_timeouts: u32) -> String {
        match self {
            Ending::Graceful => "closed gracefully".into(),
            Ending::FinUnanswered => format!(
                "closed: FIN unanswered after {close_timeouts} timeouts, peer assumed closed"
            ),
            Ending::LastAckMissing => {
                format!("closed: last ACK never came in {close_timeouts} timeouts, closed anyway")
            }
            Ending::Failed => "failed".into(),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ending::Graceful => "graceful close",
            Ending::FinUnanswered => "FIN unanswered: peer assumed closed",
            Ending::LastAckMissing => "last ACK missing: closed anyway",
            Ending::Failed => "failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Ending;

    #[test]
    fn the_ending_says_how_many_timeouts_the_close_waited() {
        assert_eq!(
            Ending::FinUnanswered.describe(5),
            "closed: FIN unanswered after 5 timeouts, peer assumed closed"
        );
        assert!(Ending::LastAckMissing.describe(3).contains("in 3 timeouts"));
        assert_eq!(Ending::Graceful.describe(3), "closed gracefully");
    }
}
