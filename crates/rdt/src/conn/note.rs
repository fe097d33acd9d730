//! What a connection observed and did, for `--debug` output and traces (the
//! seed asks to show every segment, timeout, retransmission and detected loss,
//! and how it was handled). The core only records notes; the shell prints them.

use std::fmt;

use super::state::State;
use super::timer::Timer;
use crate::cc::CcState;
use crate::dialect::Learned;
use crate::segment::Segment;

/// What a duplicate was answered with (every duplicate is answered, in
/// every state: spec "Loss handling").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A duplicate SYN: the SYN-ACK we sent before.
    SameSynAck,
    /// A duplicate SYN-ACK: our handshake ACK again.
    HandshakeAck,
    /// Old or future data: the cumulative ACK.
    CumulativeAck,
    /// Data taken before, whose ACK the peer did not take: the next reading's number.
    NextReadingsAck,
    /// A duplicate FIN in LAST-ACK: our FIN-ACK again.
    FinAck,
    /// A duplicate after the close began: the ACK again.
    Ack,
    /// A duplicate FIN-ACK in TIME-WAIT: the final ACK again.
    FinalAck,
}

impl Answer {
    pub fn text(self) -> &'static str {
        match self {
            Answer::SameSynAck => "same SYN-ACK sent again",
            Answer::HandshakeAck => "handshake ACK sent again",
            Answer::CumulativeAck => "cumulative ACK sent again",
            Answer::NextReadingsAck => "ACK sent again, with the next reading's number",
            Answer::FinAck => "FIN-ACK sent again",
            Answer::Ack => "ACK sent again",
            Answer::FinalAck => "final ACK sent again",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

#[derive(Debug, Clone)]
pub enum Note {
    State {
        from: State,
        to: State,
    },
    Timeout {
        timer: Timer,
        count: u32,
    },
    Retransmit(Segment),
    /// A segment we had already seen, and what we answered.
    Duplicate {
        got: Segment,
        answer: Answer,
    },
    /// The seed's edge case: data (or FIN) in SYN-RECEIVED stood for the lost ACK.
    ImplicitAck(Segment),
    Ignored {
        got: Segment,
        why: &'static str,
    },
    /// A retry loop reached its bound.
    GaveUp {
        what: &'static str,
        outcome: String,
    },
    /// Something about the peer's reading of the course header, and the
    /// segment that showed it.
    Learned {
        what: Learned,
        from: Segment,
    },
    /// Windowed modes: a segment found lost before its timer, and how.
    Lost {
        seg: Segment,
        how: &'static str,
    },
    /// The congestion controller after an event: cwnd, ssthresh, phase.
    Congestion(CcState),
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::State { from, to } => write!(f, "state {from} => {to}"),
            Note::Timeout { timer, count } => write!(f, "timeout ({}) #{count}", timer.name()),
            Note::Retransmit(s) => write!(f, "retransmit {s}"),
            Note::Duplicate { got, answer } => write!(f, "duplicate {got}: {answer}"),
            Note::ImplicitAck(s) => write!(
                f,
                "handshake ACK lost: {s} taken as the implicit ACK, data kept"
            ),
            Note::Ignored { got, why } => write!(f, "ignored {got}: {why}"),
            Note::GaveUp { what, outcome } => write!(f, "gave up on {what}: {outcome}"),
            Note::Learned { what, from } => write!(f, "learned: {what} (from {from})"),
            Note::Lost { seg, how } => write!(f, "lost {seg}: {how}"),
            Note::Congestion(state) => write!(f, "congestion {state}"),
        }
    }
}
