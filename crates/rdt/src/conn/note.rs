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

/// Why a segment was not taken (or taken only in part): a [`Note::Ignored`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignore {
    /// A segment before the SYN-ACK of our SYN.
    WaitingForSynAck,
    /// A SYN-ACK acknowledging another SYN than ours.
    SynAckOfAnotherSyn,
    /// A SYN-ACK whose number is not ours + 1, where the reading needs it.
    SynAckWithoutOurNumber,
    /// A SYN-ACK sent to a server.
    SynAckOnServerSide,
    /// A segment a server cannot take before the handshake ACK.
    WaitingForHandshakeAck,
    /// A SYN with another initial number than this connection's.
    SynOfAnotherConnection,
    /// Flags no reading uses together.
    UnusedFlags,
    /// Data after the peer's FIN.
    DataAfterFin,
    /// Data beyond the receive window.
    BeyondWindow,
    /// Data the full receive buffer cannot take (left unacknowledged).
    BufferFull,
    /// A FIN out of sequence.
    FinOutOfSequence,
    /// A FIN with a number we did not expect, taken as the peer's FIN all the same.
    FinNumberUnexpected,
    /// An ACK that is not the last ACK of our FIN.
    NotTheLastAck,
    /// An ACK with another reading's number: taken if it comes again.
    OtherReadingsNumber,
    /// The peer expects our data from another number: sent again from there.
    PeerExpectsFrom,
    /// An ACK that does not acknowledge the segment in flight.
    NotInFlight,
}

impl Ignore {
    pub fn text(self) -> &'static str {
        match self {
            Ignore::WaitingForSynAck => "waiting for the SYN-ACK of our SYN",
            Ignore::SynAckOfAnotherSyn => "SYN-ACK of another SYN",
            Ignore::SynAckWithoutOurNumber => "SYN-ACK without our number + 1",
            Ignore::SynAckOnServerSide => "SYN-ACK on the server side",
            Ignore::WaitingForHandshakeAck => "waiting for the handshake ACK",
            Ignore::SynOfAnotherConnection => "SYN of another connection",
            Ignore::UnusedFlags => "flag combination we never use",
            Ignore::DataAfterFin => "data after the peer's FIN",
            Ignore::BeyondWindow => "beyond the receive window",
            Ignore::BufferFull => "receive buffer full; left unacknowledged",
            Ignore::FinOutOfSequence => "FIN out of sequence",
            Ignore::FinNumberUnexpected => {
                "FIN with a number we did not expect: taken as the peer's FIN"
            }
            Ignore::NotTheLastAck => "not the last ACK of our FIN",
            Ignore::OtherReadingsNumber => "another reading's number: taken if it comes again",
            Ignore::PeerExpectsFrom => {
                "the peer expects our data from this number: sent again from there"
            }
            Ignore::NotInFlight => "does not acknowledge the segment in flight",
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
        why: Ignore,
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
            Note::Ignored { got, why } => write!(f, "ignored {got}: {}", why.text()),
            Note::GaveUp { what, outcome } => write!(f, "gave up on {what}: {outcome}"),
            Note::Learned { what, from } => write!(f, "learned: {what} (from {from})"),
            Note::Lost { seg, how } => write!(f, "lost {seg}: {how}"),
            Note::Congestion(state) => write!(f, "congestion {state}"),
        }
    }
}
