//! A connected endpoint (spec "Design": a thin shell over the sans-IO core):
//! one UDP link, the peer's address and the connection core; it moves
//! datagrams between them and waits until the core's next deadline. Below both
//! the socket (`socket.rs`) and the listener (`listener.rs`), which use it and
//! not each other.

use std::net::SocketAddr;
use std::time::Instant;

use crate::conn::{Connection, Output};
use crate::error::Error;
use crate::link::{Incoming, Link};
use crate::segment::{Kind, Segment};
use crate::wait::Until;

/// Datagrams taken in one turn before the core's answers go out.
const BURST: usize = 64;

/// A connected socket: its UDP link, the peer's address and the core.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) link: Link,
    pub(crate) peer: SocketAddr,
    pub(crate) conn: Connection,
    /// A client's: the address it connected to (the server's listening
    /// socket), where some readings want the handshake ACK.
    listener: Option<SocketAddr>,
    /// The clock when the last datagram was taken or timer run.
    last_now: Instant,
}

impl Endpoint {
    /// A server-side endpoint, talking to `peer` from its own port.
    pub(crate) fn new(link: Link, peer: SocketAddr, conn: Connection) -> Endpoint {
        Endpoint {
            link,
            peer,
            conn,
            listener: None,
            last_now: Instant::now(),
        }
    }

    /// A client, connecting to the listening socket at `server`.
    pub(crate) fn client(link: Link, server: SocketAddr, conn: Connection) -> Endpoint {
        Endpoint {
            link,
            peer: server,
            conn,
            listener: Some(server),
            last_now: Instant::now(),
        }
    }

    pub(crate) fn trace_hosts(&self) {
        self.link.trace_hosts(self.peer);
    }

    /// Runs the core until `step` returns a value, the connection fails, or it closes.
    pub(crate) fn drive<T>(
        &mut self,
        mut step: impl FnMut(&mut Connection) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        loop {
            self.flush()?;
            if let Some(t) = self.link.cwnd_trace() {
                t.record(
                    Instant::now(),
                    self.conn.cwnd(),
                    self.conn.stats().bytes_acked,
                );
            }
            let done = step(&mut self.conn)?;
            // What the step made the core send goes before any wait.
            self.flush()?;
            if let Some(done) = done {
                return Ok(done);
            }
            if let Some(err) = self.conn.take_error() {
                return Err(err);
            }
            if self.conn.is_closed() {
                return Err(Error::Closed);
            }
            // Timers are checked against the clock of the last event (read
            // once per datagram received): a timer due since then is found
            // by the wait below, which reads the clock only if it must block.
            let deadline = self.conn.poll_timeout();
            if deadline.is_some_and(|at| at <= self.last_now) {
                self.last_now = Instant::now();
                self.conn.handle_timeout(self.last_now);
                continue;
            }
            let until = deadline.map_or(Until::Forever, Until::At);
            match self.link.receive(until)? {
                Incoming::Segment(seg, from) => {
                    self.take(seg, from);
                    // Stop & Wait has one segment in flight: looking for a
                    // second would cost a system call per segment for nothing.
                    if self.conn.config().mode.windowed() {
                        self.take_waiting()?;
                    }
                }
                // Read the clock for these too: a flood of datagrams that do
                // not decode (or that the built-in loss takes) must not keep
                // the timers waiting on a stale clock.
                Incoming::Nothing => self.last_now = Instant::now(),
                Incoming::TimedOut => {
                    self.last_now = Instant::now();
                    self.conn.handle_timeout(self.last_now);
                }
            }
        }
    }

    /// Takes what else has arrived before answering (at most [`BURST`]
    /// datagrams): a window's worth of data gets one coalesced ACK, a burst
    /// of ACKs one refill of the window.
    fn take_waiting(&mut self) -> Result<(), Error> {
        for _ in 0..BURST {
            match self.link.receive(Until::Now)? {
                Incoming::Segment(seg, from) => self.take(seg, from),
                Incoming::Nothing => {}
                Incoming::TimedOut => break,
            }
        }
        Ok(())
    }

    /// One turn that never blocks (the listener runs every half-open
    /// handshake this way on its own thread): takes every datagram waiting,
    /// runs the timer if it is due, sends what the core wants.
    pub(crate) fn turn(&mut self) -> Result<(), Error> {
        loop {
            match self.link.receive(Until::Now)? {
                Incoming::Segment(seg, from) => self.take(seg, from),
                Incoming::Nothing => {}
                Incoming::TimedOut => break,
            }
        }
        let now = Instant::now();
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            self.conn.handle_timeout(now);
        }
        self.flush()
    }

    /// The core, to ask how it stands.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The core, to take its error.
    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The UDP socket, to watch it.
    pub(crate) fn udp(&self) -> &std::net::UdpSocket {
        &self.link.udp
    }

    /// A segment the listener received for this handshake at the listening
    /// address (the handshake ACK of readings that send it there).
    pub(crate) fn take_forwarded(&mut self, seg: Segment) -> Result<(), Error> {
        self.conn.handle_segment(Instant::now(), seg);
        self.flush()
    }

    fn take(&mut self, seg: Segment, from: SocketAddr) {
        self.last_now = Instant::now();
        if from == self.peer || Some(from) == self.listener {
            let syn_sent = self.conn.state() == crate::State::SynSent;
            self.conn.handle_segment(self.last_now, seg);
            // The server answers from its new per-connection socket: from now
            // on the client talks to that address, once the core took the
            // SYN-ACK (never on one it refused).
            if syn_sent && self.conn.state() != crate::State::SynSent {
                self.peer = from;
            }
        } else if self.conn.state() == crate::State::SynSent && seg.kind() == Kind::SynAck {
            self.conn.handle_segment(self.last_now, seg);
            if self.conn.state() != crate::State::SynSent {
                self.peer = from;
            }
        } else {
            tracing::debug!(target: "rdt", "ignored {seg} from {from}: not this connection's peer");
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        while let Some(output) = self.conn.poll_output() {
            match output {
                Output::Transmit(seg) => self.link.send(&seg, self.peer)?,
                Output::TransmitToListener(seg) => {
                    if let Some(l) = self.listener {
                        self.link.send(&seg, l)?;
                    }
                }
                Output::Note(note) => self.link.note(&note),
            }
        }
        self.link.flush()
    }
}
