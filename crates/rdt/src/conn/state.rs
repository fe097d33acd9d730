//! Connection states, named after TCP's (RFC 793 §3.2) as the spec asks.
//! LISTEN is the listener's, not a connection's: a connection is born in
//! SYN-SENT (client) or SYN-RECEIVED (server, from a SYN the listener got).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    SynSent,
    SynReceived,
    Established,
    /// Our FIN is out, not yet acknowledged (the seed's `close()`).
    FinWait1,
    /// Our FIN is acknowledged by a plain ACK (a four-segment close); waiting for theirs.
    FinWait2,
    /// Their FIN arrived while we still had data to send.
    CloseWait,
    /// Our FIN-ACK is out, waiting for the last ACK (the seed's `recv_close()`).
    LastAck,
    /// Sending the final ACK three times, one timeout apart.
    TimeWait,
    Closed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
            State::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
