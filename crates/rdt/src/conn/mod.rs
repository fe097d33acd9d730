//! The sans-IO connection core (spec "Design", DESIGN habit 3): it takes
//! `(now, segment)` and timer expiries, and yields segments to send, the next
//! deadline and notes. It never touches a socket, the clock or a random source.
//!
//! Stop & Wait (the seed): one segment in flight at a time; every segment that
//! needs an answer (SYN, SYN-ACK, data, FIN, FIN-ACK) is retransmitted on a
//! fixed timeout, each retry loop with a bound (spec "Loss handling").
//!
//! Split by role (DESIGN "Growing rdt"): `handshake` (SYN-SENT,
//! SYN-RECEIVED), `send` (the segment in flight, its ACK, retransmission),
//! `recv` (in-order data, ACKs), `close` (FIN, FIN-ACK, the final ACKs);
//! `write` cuts the application's messages into segments, `outward` holds
//! what the shell gets back (outputs, counters, the ending), `numbering`
//! the shared-counter rule of the seed's reading.
//! How numbers advance is the peer's reading of the course header
//! ([`crate::dialect`]): learned segment by segment, or forced; the binary
//! format has one reading, one sequence space per side. See
//! `docs/protocols/rdt.md`.

mod close;
mod handshake;
mod inbox;
mod note;
mod numbering;
mod outward;
mod recv;
mod send;
mod state;
mod timer;
mod window;
mod write;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

pub use inbox::Read;
pub use note::{Answer, Ignore, Note};
pub use outward::{Ending, Output, Stats};
pub use state::State;
pub use timer::Timer;

use crate::config::Config;
use crate::dialect::{Counter, Dialect, Learned};
use crate::error::Error;
use crate::segment::{Kind, Segment};
use crate::seq::Seq;
use crate::wire::Format;
use inbox::Inbox;
use timer::Timers;
use window::{Reassembly, Sender};

/// The segment waiting for its acknowledgment (a window of one).
#[derive(Debug)]
struct Flight {
    segment: Segment,
    first_sent: Instant,
    timeouts: u32,
}

/// A start the peer's (or our) first data may have, and what it would mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Start {
    seq: Seq,
    /// The handshake ACK consumed a number (`Some(true)`), did not, or says nothing.
    ack_consumes: Option<bool>,
    counter: Option<Counter>,
}

/// One end of a connection.
#[derive(Debug)]
pub struct Connection {
    cfg: Config,
    dialect: Dialect,
    state: State,
    isn: Seq,
    irs: Seq,
    snd_una: Seq,
    snd_nxt: Seq,
    rcv_nxt: Seq,
    /// Other numbers the peer's next segment may carry, while its reading is
    /// not settled (course format, auto).
    rcv_alts: Vec<Seq>,
    /// Where the peer's first data may start, each with what it would teach.
    rcv_first: Vec<Start>,
    /// The last in-order data segment taken: (seq, data length, wire length).
    rcv_last: Option<(Seq, usize, usize)>,
    /// The ACK numbers it may want, one per reading still possible, and the
    /// one we answer with now (its duplicates get the next one in turn).
    rcv_last_acks: Vec<Seq>,
    rcv_last_ack: usize,
    /// The first data taken, and the other starts it might have had: a copy
    /// of it at one of those (a client trying both starts) is not new data.
    rcv_first_taken: Option<(Vec<Seq>, Bytes)>,
    /// Where our first data may start (the first is in use), while unsettled.
    snd_first: Vec<Start>,
    /// An ACK number that would settle a reading other than the guess, seen
    /// once for the segment in flight: a second copy settles it (once may be
    /// a stale number from a peer still guessing ours).
    snd_other_seen: Option<Seq>,
    /// Numbers a peer still guessing our reading may have sent for segments
    /// already acknowledged (the other readings' ACKs of them): a copy held
    /// back by the network could pass for the ACK of a later segment, so an
    /// ACK with one of these numbers counts on its second copy.
    snd_stale: Vec<Seq>,
    /// Payloads not yet sent: length segments (sent whole) and message
    /// bodies (cut into MSS pieces as they go).
    unsent: VecDeque<(Bytes, bool)>,
    /// Bytes of the message begun last that the shell has yet to add
    /// (`write_more`): while any are owed, no FIN goes out.
    unwritten: usize,
    flight: Option<Flight>,
    /// Windowed modes: the data segments in flight (made at the first data).
    sender: Option<Sender>,
    /// Selective repeat: data held ahead of the next expected number.
    reasm: Reassembly,
    /// Windowed modes: data came that the next poll acknowledges.
    ack_pending: bool,
    close_requested: bool,
    peer_fin: bool,
    /// Our SYN-ACK (server), answered again to duplicate SYNs.
    synack: Option<Segment>,
    /// Our handshake ACKs (client), sent again when the SYN-ACK comes again.
    handshake_acks: Vec<Segment>,
    /// TIME-WAIT: final ACKs still to send, and the number they carry.
    final_acks_left: u32,
    final_ack: Seq,
    inbox: Inbox,
    /// Segments to send and notes, in the order they happened.
    outputs: VecDeque<Output>,
    timers: Timers,
    error: Option<Error>,
    ending: Option<Ending>,
    stats: Stats,
}

impl Connection {
    fn new(cfg: Config, now: Instant, state: State) -> Connection {
        let mut timers = Timers::default();
        timers.set(Timer::Idle, now + cfg.idle_limit);
        let dialect = match cfg.format {
            Format::Course => Dialect::new(cfg.dialect),
            Format::Binary => Dialect::binary(),
        };
        Connection {
            cfg,
            dialect,
            state,
            isn: Seq(0),
            irs: Seq(0),
            snd_una: Seq(0),
            snd_nxt: Seq(0),
            rcv_nxt: Seq(0),
            rcv_alts: Vec::new(),
            rcv_first: Vec::new(),
            rcv_last: None,
            rcv_last_acks: Vec::new(),
            rcv_last_ack: 0,
            rcv_first_taken: None,
            snd_first: Vec::new(),
            snd_other_seen: None,
            snd_stale: Vec::new(),
            unsent: VecDeque::new(),
            unwritten: 0,
            flight: None,
            sender: None,
            reasm: Reassembly::default(),
            ack_pending: false,
            close_requested: false,
            peer_fin: false,
            synack: None,
            handshake_acks: Vec::new(),
            final_acks_left: 0,
            final_ack: Seq(0),
            inbox: Inbox::default(),
            outputs: VecDeque::new(),
            timers,
            error: None,
            ending: None,
            stats: Stats::default(),
        }
    }

    // ----- what the shell asks -----

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// What this connection knows (or was told) of the peer's reading.
    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// (oldest unacknowledged, next to send, next expected) — for tests and debugging.
    pub fn numbers(&self) -> (Seq, Seq, Seq) {
        (self.snd_una, self.snd_nxt, self.rcv_nxt)
    }

    /// The SYN-ACK a server connection answers duplicate SYNs with.
    pub fn syn_ack(&self) -> Option<&Segment> {
        self.synack.as_ref()
    }

    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }

    /// The handshake is over and the connection has not ended.
    pub fn is_established(&self) -> bool {
        !matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Closed
        )
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Everything written so far has been acknowledged.
    pub fn all_acked(&self) -> bool {
        self.written_out()
            && self.sender.as_ref().is_none_or(Sender::is_empty)
            && self
                .flight
                .as_ref()
                .is_none_or(|f| f.segment.data.is_empty())
            && !matches!(self.state, State::SynSent | State::SynReceived)
    }

    /// The next segment to put on the wire, or note to show, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front().or_else(|| self.take_pending_ack())
    }

    /// The earliest moment `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The error that ended the connection, once.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    // ----- what the application does -----

    /// Up to `max` bytes of the current message (the seed's `recv`).
    pub fn read(&mut self, max: usize) -> Result<Read, Error> {
        self.inbox.read(max)
    }

    /// [`Connection::read`] into `buf` (at most `buf.len()` bytes): `Some(n)`
    /// copied, `Some(0)` at the end, `None` if not enough is here yet.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        self.inbox.read_into(buf)
    }

    /// Starts the close once everything written is acknowledged (the seed's `close()`).
    pub fn close(&mut self, now: Instant) {
        self.close_requested = true;
        self.push_next(now);
    }

    // ----- events -----

    /// Handles every expired timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Retransmit if self.flight.is_none() && self.windowed() => {
                    self.on_window_timeout(now);
                }
                Timer::Retransmit => self.on_retransmit_timeout(now),
                Timer::Linger => self.on_linger(now),
                Timer::Idle => {
                    self.note(Note::Timeout { timer, count: 1 });
                    self.fail(Error::PeerSilent(self.cfg.idle_limit));
                }
            }
        }
    }

    /// Handles one segment from the peer.
    pub fn handle_segment(&mut self, now: Instant, seg: Segment) {
        if self.state == State::Closed {
            return;
        }
        self.stats.segments_received += 1;
        self.timers.set(Timer::Idle, now + self.cfg.idle_limit);
        if self.state == State::FinWait2 {
            // A peer still sending before its FIN is alive: keep waiting for it.
            self.timers.set(
                Timer::Linger,
                now + self.cfg.timeout * self.cfg.close_timeouts,
            );
        }
        if !seg.filler.is_empty() {
            let closing = seg.flags.fin || self.closing();
            if let Some(l) = self.dialect.observe_filler(&seg.filler, closing) {
                self.learned(l, &seg);
            }
        }
        match self.state {
            State::SynSent => self.on_syn_sent(now, seg),
            State::SynReceived => self.on_syn_received(now, seg),
            _ => self.on_synchronized(now, seg),
        }
    }

    /// Every state after the handshake.
    fn on_synchronized(&mut self, now: Instant, mut seg: Segment) {
        match seg.kind() {
            Kind::Syn => {
                if seg.seq == self.irs && self.synack.is_some() {
                    self.answer_duplicate_syn(seg);
                } else {
                    self.ignore(seg, Ignore::SynOfAnotherConnection);
                }
                return;
            }
            Kind::SynAck => {
                self.on_stale_syn_ack(seg);
                return;
            }
            Kind::Odd => {
                self.ignore(seg, Ignore::UnusedFlags);
                return;
            }
            _ => {}
        }
        if matches!(self.state, State::LastAck | State::TimeWait)
            || (self.peer_fin && seg.flags.fin)
        {
            self.on_closing_segment(now, seg);
            return;
        }
        if seg.flags.ack {
            if self.sender.as_ref().is_some_and(|s| !s.is_empty()) {
                self.on_window_ack(now, &seg);
            } else {
                self.on_ack(now, &seg);
            }
        }
        if !seg.data.is_empty() {
            if self.windowed() {
                self.on_window_data(&mut seg);
            } else {
                self.on_data(&mut seg);
            }
        }
        if seg.flags.fin && self.state != State::Closed {
            self.on_fin(now, &seg);
        }
    }

    // ----- bookkeeping -----

    /// A state in which the close has begun.
    fn closing(&self) -> bool {
        matches!(
            self.state,
            State::FinWait1 | State::FinWait2 | State::CloseWait | State::LastAck | State::TimeWait
        )
    }

    /// The segment in flight is acknowledged up to `upto`.
    fn acknowledged(&mut self, upto: Seq) {
        self.flight = None;
        self.snd_una = upto;
        self.timers.stop(Timer::Retransmit);
    }

    fn transmit(&mut self, seg: Segment) {
        // A coalesced ACK waiting goes first, so segments leave in order.
        if let Some(ack) = self.take_pending_ack() {
            self.outputs.push_back(ack);
        }
        self.stats.segments_sent += 1;
        self.outputs.push_back(Output::Transmit(seg));
    }

    fn transmit_to_listener(&mut self, seg: Segment) {
        if let Some(ack) = self.take_pending_ack() {
            self.outputs.push_back(ack);
        }
        self.stats.segments_sent += 1;
        self.outputs.push_back(Output::TransmitToListener(seg));
    }

    fn note(&mut self, note: Note) {
        self.outputs.push_back(Output::Note(note));
    }

    /// The first data came from `s`: learns what that start meant (the
    /// counter, whether the handshake ACK consumed a number), shown by `seg`.
    fn settle_start(&mut self, s: Start, seg: &Segment) {
        if let Some(c) = s.counter
            && let Some(l) = self.dialect.set_counter(c)
        {
            self.learned(l, seg);
        }
        if let Some(consumes) = s.ack_consumes
            && let Some(l) = self.dialect.set_ack_consumes(consumes)
        {
            self.learned(l, seg);
        }
    }

    fn learned(&mut self, what: Learned, from: &Segment) {
        self.note(Note::Learned {
            what,
            from: from.clone(),
        });
    }

    fn ignore(&mut self, got: Segment, why: Ignore) {
        self.note(Note::Ignored { got, why });
    }

    fn finish(&mut self, ending: Ending) {
        self.ending = Some(ending);
        self.flight = None;
        self.timers.stop_all();
        self.set_state(State::Closed);
    }

    fn fail(&mut self, err: Error) {
        self.error = Some(err);
        self.finish(Ending::Failed);
    }

    /// The one place the state changes (DESIGN habit 5).
    fn set_state(&mut self, to: State) {
        if self.state != to {
            self.note(Note::State {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }
}
