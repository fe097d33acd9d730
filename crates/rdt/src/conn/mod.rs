//! The sans-IO connection core (spec "Design", DESIGN habit 3): it takes
//! `(now, segment)` and timer expiries, and yields segments to send, the next
//! deadline and notes. It never touches a socket, the clock or a random source.
//!
//! Stop & Wait (the seed): one segment in flight at a time; every segment that
//! needs an answer (SYN, SYN-ACK, data, FIN, FIN-ACK) is retransmitted on a
//! fixed timeout, each retry loop with a bound (spec "Loss handling").
//!
//! Numbering. Binary format: one sequence space per direction, as TCP; the
//! handshake ACK consumes nothing. Course format: the seed's single counter
//! shared by both sides — every acknowledged number becomes both ends' next
//! number (`tie`), the handshake ACK consumes one (SYN x, SYN-ACK x+1, ACK x+2,
//! data from x+2) — and we accept peers whose ACK does not (ACK x+1, data from
//! x+1). See `docs/protocols/rdt.md`.

mod inbox;
mod note;
mod state;
mod timer;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

pub use inbox::Read;
pub use note::Note;
pub use state::State;
pub use timer::Timer;

use crate::config::Config;
use crate::error::Error;
use crate::segment::{Kind, Segment};
use crate::seq::Seq;
use crate::wire::Format;
use inbox::Inbox;
use timer::Timers;

/// The segment waiting for its acknowledgment (a window of one).
#[derive(Debug)]
struct Flight {
    segment: Segment,
    first_sent: Instant,
    timeouts: u32,
}

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
}

/// What the core produced: a segment for the wire or a note for the reader.
#[derive(Debug, Clone)]
pub enum Output {
    Transmit(Segment),
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

/// One end of a connection.
#[derive(Debug)]
pub struct Connection {
    cfg: Config,
    /// Course numbering: one counter for both directions.
    shared: bool,
    state: State,
    irs: Seq,
    snd_una: Seq,
    snd_nxt: Seq,
    rcv_nxt: Seq,
    /// Payloads not yet sent, each at most one MSS.
    unsent: VecDeque<Bytes>,
    flight: Option<Flight>,
    close_requested: bool,
    peer_fin: bool,
    /// Our SYN-ACK (server) and handshake ACK (client), answered again to duplicates.
    synack: Option<Segment>,
    handshake_ack: Option<Segment>,
    /// TIME-WAIT: final ACKs still to send.
    final_acks_left: u32,
    inbox: Inbox,
    /// Segments to send and notes, in the order they happened.
    outputs: VecDeque<Output>,
    timers: Timers,
    error: Option<Error>,
    ending: Option<Ending>,
    stats: Stats,
}

impl Connection {
    /// The client side: SYN-SENT, with the SYN queued.
    pub fn connect(cfg: Config, now: Instant, isn: Seq) -> Connection {
        let mut conn = Connection::new(cfg, now, State::SynSent);
        conn.snd_una = isn;
        conn.snd_nxt = isn;
        conn.send_reliable(now, Segment::syn(isn));
        conn
    }

    /// The server side, from a SYN the listener received: SYN-RECEIVED, with
    /// the SYN-ACK queued. In course numbering the SYN-ACK carries the SYN's
    /// number plus one and `isn` is not used.
    pub fn accept(cfg: Config, now: Instant, syn: &Segment, isn: Seq) -> Connection {
        let mut conn = Connection::new(cfg, now, State::SynReceived);
        conn.irs = syn.seq;
        conn.rcv_nxt = syn.seq.plus(1);
        let iss = if conn.shared { conn.rcv_nxt } else { isn };
        conn.snd_una = iss;
        conn.snd_nxt = iss;
        let synack = Segment::syn_ack(iss, conn.rcv_nxt);
        conn.synack = Some(synack.clone());
        conn.send_reliable(now, synack);
        conn
    }

    fn new(cfg: Config, now: Instant, state: State) -> Connection {
        let mut timers = Timers::default();
        timers.set(Timer::Idle, now + cfg.idle_limit);
        Connection {
            shared: cfg.format == Format::Course,
            cfg,
            state,
            irs: Seq(0),
            snd_una: Seq(0),
            snd_nxt: Seq(0),
            rcv_nxt: Seq(0),
            unsent: VecDeque::new(),
            flight: None,
            close_requested: false,
            peer_fin: false,
            synack: None,
            handshake_ack: None,
            final_acks_left: 0,
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
        self.unsent.is_empty()
            && self
                .flight
                .as_ref()
                .is_none_or(|f| f.segment.data.is_empty())
            && !matches!(self.state, State::SynSent | State::SynReceived)
    }

    /// The next segment to put on the wire, or note to show, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
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

    /// Queues one message: its length segment, then its data in MSS pieces
    /// (the seed's `send`).
    pub fn write_message(&mut self, now: Instant, message: &[u8]) -> Result<(), Error> {
        if !matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established
        ) || self.close_requested
        {
            return Err(Error::Closed);
        }
        self.unsent
            .push_back(Bytes::from(message.len().to_string()));
        let whole = Bytes::copy_from_slice(message);
        let mut at = 0;
        while at < whole.len() {
            let end = (at + self.cfg.mss).min(whole.len());
            self.unsent.push_back(whole.slice(at..end));
            at = end;
        }
        self.push_next(now);
        Ok(())
    }

    /// Up to `max` bytes of the current message (the seed's `recv`).
    pub fn read(&mut self, max: usize) -> Result<Read, Error> {
        self.inbox.read(max)
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
        match self.state {
            State::SynSent => self.on_syn_sent(now, seg),
            State::SynReceived => self.on_syn_received(now, seg),
            _ => self.on_synchronized(now, seg),
        }
    }

    fn on_syn_sent(&mut self, now: Instant, seg: Segment) {
        if seg.kind() != Kind::SynAck || seg.ack != self.snd_nxt {
            self.ignore(seg, "waiting for the SYN-ACK of our SYN");
            return;
        }
        self.acknowledged(seg.ack);
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq.plus(1);
        let ack = Segment::ack(self.snd_nxt, self.rcv_nxt);
        self.handshake_ack = Some(ack.clone());
        self.transmit(ack);
        if self.shared {
            // The seed's counter: the handshake ACK used x+2, data continues there.
            self.tie(self.rcv_nxt);
        }
        self.set_state(State::Established);
        self.push_next(now);
    }

    fn on_syn_received(&mut self, now: Instant, seg: Segment) {
        match seg.kind() {
            Kind::Syn if seg.seq == self.irs => self.answer_duplicate_syn(seg),
            Kind::Ack if self.handshake_acked_by(seg.ack) => {
                self.acknowledged(self.snd_nxt);
                if self.shared {
                    self.tie(seg.ack);
                }
                self.set_state(State::Established);
                self.push_next(now);
            }
            Kind::Data | Kind::Fin if self.first_number_expected(seg.seq) => {
                // The seed's edge case: the handshake ACK was lost and the
                // client went on; its first segment stands for the ACK and is kept.
                self.note(Note::ImplicitAck(seg.clone()));
                self.acknowledged(self.snd_nxt);
                if self.shared {
                    self.tie(seg.seq);
                }
                self.set_state(State::Established);
                self.on_synchronized(now, seg);
                self.push_next(now);
            }
            _ => self.ignore(seg, "waiting for the handshake ACK"),
        }
    }

    /// Course peers differ on whether the handshake ACK consumes a number: accept both.
    fn handshake_acked_by(&self, ack: Seq) -> bool {
        ack == self.snd_nxt || (self.shared && ack == self.snd_nxt.minus(1))
    }

    fn first_number_expected(&self, seq: Seq) -> bool {
        seq == self.rcv_nxt || (self.shared && seq == self.rcv_nxt.plus(1))
    }

    /// Every state after the handshake.
    fn on_synchronized(&mut self, now: Instant, seg: Segment) {
        match seg.kind() {
            Kind::Syn => {
                if seg.seq == self.irs && self.synack.is_some() {
                    self.answer_duplicate_syn(seg);
                } else {
                    self.ignore(seg, "SYN of another connection");
                }
                return;
            }
            Kind::SynAck => {
                // Our handshake ACK was lost: the server still resends its SYN-ACK.
                if let Some(ack) = self.handshake_ack.clone() {
                    self.stats.duplicates += 1;
                    self.note(Note::Duplicate {
                        got: seg,
                        answer: "handshake ACK sent again",
                    });
                    self.transmit(ack);
                } else {
                    self.ignore(seg, "SYN-ACK on the server side");
                }
                return;
            }
            Kind::Odd => {
                self.ignore(seg, "flag combination we never use");
                return;
            }
            _ => {}
        }
        if seg.flags.ack {
            self.on_ack(now, &seg);
        }
        if !seg.data.is_empty() {
            self.on_data(&seg);
        }
        if seg.flags.fin && self.state != State::Closed {
            self.on_fin(now, seg);
        }
    }

    fn on_ack(&mut self, now: Instant, seg: &Segment) {
        let Some(flight) = &self.flight else {
            if seg.data.is_empty() && !seg.flags.fin {
                self.stats.duplicates += 1;
            }
            return;
        };
        let end = flight.segment.seq.plus(flight.segment.len());
        if seg.ack != end {
            if seg.kind() == Kind::Ack {
                self.stats.duplicates += 1;
                self.note(Note::Ignored {
                    got: seg.clone(),
                    why: "does not acknowledge the segment in flight",
                });
            }
            return;
        }
        let was_fin = flight.segment.flags.fin;
        self.stats.bytes_acked += flight.segment.data.len() as u64;
        self.acknowledged(end);
        if self.shared {
            self.tie(end);
        }
        if was_fin {
            match self.state {
                State::FinWait1 if self.peer_fin || seg.flags.fin => {}
                State::FinWait1 => {
                    self.set_state(State::FinWait2);
                    // close() waits for the peer's FIN no longer than it waited for the ACK.
                    self.timers.set(
                        Timer::Linger,
                        now + self.cfg.timeout * self.cfg.close_timeouts,
                    );
                }
                State::LastAck => self.finish(Ending::Graceful),
                _ => {}
            }
            if self.state == State::FinWait1 && self.peer_fin {
                self.enter_time_wait(now);
            }
        } else {
            self.push_next(now);
        }
    }

    fn on_data(&mut self, seg: &Segment) {
        if seg.seq != self.rcv_nxt {
            // Old (our ACK was lost) or from the future: answer with the
            // cumulative ACK in every state, or a lost last ACK livelocks both ends.
            self.stats.duplicates += 1;
            self.note(Note::Duplicate {
                got: seg.clone(),
                answer: "cumulative ACK sent again",
            });
            self.send_ack();
            return;
        }
        if self.peer_fin {
            self.ignore(seg.clone(), "data after the peer's FIN");
            return;
        }
        if self.inbox.buffered() + seg.data.len() > self.cfg.recv_buffer {
            self.ignore(seg.clone(), "receive buffer full; left unacknowledged");
            return;
        }
        if let Err(err) = self.inbox.deliver(seg.data.clone()) {
            self.fail(err);
            return;
        }
        self.stats.bytes_delivered += seg.data.len() as u64;
        self.rcv_nxt = self.rcv_nxt.plus(seg.data.len());
        if self.shared && self.flight.is_none() {
            self.tie(self.rcv_nxt);
        }
        self.send_ack();
    }

    fn on_fin(&mut self, now: Instant, seg: Segment) {
        if seg.seq != self.rcv_nxt {
            if self.peer_fin && seg.seq == self.rcv_nxt.minus(1) {
                self.answer_duplicate_fin(seg);
            } else {
                self.ignore(seg, "FIN out of sequence");
            }
            return;
        }
        self.peer_fin = true;
        self.inbox.peer_closed();
        self.rcv_nxt = self.rcv_nxt.plus(1);
        match self.state {
            State::Established | State::CloseWait => {
                if self.shared && self.flight.is_none() {
                    self.tie(self.rcv_nxt);
                }
                if self.unsent.is_empty() && self.flight.is_none() {
                    self.send_fin(now, true);
                } else {
                    self.send_ack();
                    self.set_state(State::CloseWait);
                }
            }
            State::FinWait1 => {
                if self.flight.is_none() {
                    // Their FIN-ACK acknowledged ours (handled just before).
                    self.enter_time_wait(now);
                } else {
                    // Both closed at once: acknowledge theirs, keep waiting for ours.
                    self.send_ack();
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => self.ignore(seg, "FIN in a closing state"),
        }
    }

    fn answer_duplicate_syn(&mut self, seg: Segment) {
        self.stats.duplicates += 1;
        self.note(Note::Duplicate {
            got: seg,
            answer: "same SYN-ACK sent again",
        });
        if let Some(synack) = self.synack.clone() {
            self.transmit(synack);
        }
    }

    fn answer_duplicate_fin(&mut self, seg: Segment) {
        self.stats.duplicates += 1;
        let answer = if let (Some(f), State::LastAck) = (&self.flight, self.state) {
            let again = f.segment.clone();
            self.transmit(again);
            "FIN-ACK sent again"
        } else {
            self.send_ack();
            "ACK sent again"
        };
        self.note(Note::Duplicate { got: seg, answer });
    }

    // ----- sending -----

    /// Sends the next queued payload, or the FIN once all is acknowledged.
    fn push_next(&mut self, now: Instant) {
        if self.flight.is_some() || !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        if let Some(payload) = self.unsent.pop_front() {
            let seg = Segment::data(self.snd_nxt, payload);
            self.send_reliable(now, seg);
        } else if self.state == State::CloseWait {
            self.send_fin(now, true);
        } else if self.close_requested {
            self.send_fin(now, false);
        }
    }

    /// FIN (we close first: FIN-WAIT-1) or FIN-ACK (answering theirs: LAST-ACK).
    fn send_fin(&mut self, now: Instant, answering: bool) {
        let seg = if answering {
            Segment::fin_ack(self.snd_nxt, self.rcv_nxt)
        } else {
            Segment::fin(self.snd_nxt)
        };
        self.send_reliable(now, seg);
        self.set_state(if answering {
            State::LastAck
        } else {
            State::FinWait1
        });
    }

    fn send_reliable(&mut self, now: Instant, mut seg: Segment) {
        seg.window = self.window();
        self.snd_nxt = seg.seq.plus(seg.len());
        self.flight = Some(Flight {
            segment: seg.clone(),
            first_sent: now,
            timeouts: 0,
        });
        self.timers.set(Timer::Retransmit, now + self.cfg.timeout);
        self.transmit(seg);
    }

    fn send_ack(&mut self) {
        let mut ack = Segment::ack(self.snd_nxt, self.rcv_nxt);
        ack.window = self.window();
        self.transmit(ack);
    }

    fn transmit(&mut self, seg: Segment) {
        self.stats.segments_sent += 1;
        self.outputs.push_back(Output::Transmit(seg));
    }

    fn window(&self) -> u16 {
        (self.cfg.recv_buffer - self.inbox.buffered().min(self.cfg.recv_buffer))
            .min(usize::from(u16::MAX)) as u16
    }

    // ----- timers -----

    fn on_retransmit_timeout(&mut self, now: Instant) {
        let Some(flight) = &mut self.flight else {
            return;
        };
        flight.timeouts += 1;
        let timeouts = flight.timeouts;
        let kind = flight.segment.kind();
        let elapsed = now.saturating_duration_since(flight.first_sent);
        let again = flight.segment.clone();
        self.stats.timeouts += 1;
        self.note(Note::Timeout {
            timer: Timer::Retransmit,
            count: timeouts,
        });
        let limit = match kind {
            Kind::Syn | Kind::SynAck => self.cfg.syn_retries,
            Kind::Fin | Kind::FinAck => self.cfg.close_timeouts,
            _ => self.cfg.max_retries,
        };
        if timeouts >= limit {
            match kind {
                Kind::Fin => {
                    self.note(Note::GaveUp {
                        what: "FIN",
                        outcome: "no FIN-ACK in 3 timeouts; peer assumed closed",
                    });
                    self.finish(Ending::FinUnanswered);
                }
                Kind::FinAck => {
                    self.note(Note::GaveUp {
                        what: "FIN-ACK",
                        outcome: "no last ACK in 3 timeouts; closed anyway",
                    });
                    self.finish(Ending::LastAckMissing);
                }
                _ => self.fail(Error::GaveUp {
                    what: kind.name(),
                    tries: timeouts,
                    elapsed,
                }),
            }
            return;
        }
        self.stats.retransmissions += 1;
        self.note(Note::Retransmit(again.clone()));
        self.timers.set(Timer::Retransmit, now + self.cfg.timeout);
        self.transmit(again);
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(State::TimeWait);
        self.timers.stop(Timer::Retransmit);
        self.final_acks_left = self.cfg.close_timeouts;
        self.on_linger(now);
    }

    fn on_linger(&mut self, now: Instant) {
        match self.state {
            State::TimeWait => {
                // The seed: the final ACK goes out three times, one timeout apart.
                self.send_ack();
                self.final_acks_left = self.final_acks_left.saturating_sub(1);
                if self.final_acks_left == 0 {
                    self.finish(Ending::Graceful);
                } else {
                    self.timers.set(Timer::Linger, now + self.cfg.timeout);
                }
            }
            State::FinWait2 => {
                self.note(Note::GaveUp {
                    what: "peer FIN",
                    outcome: "our FIN was acknowledged but theirs never came; closed",
                });
                self.finish(Ending::FinUnanswered);
            }
            _ => {}
        }
    }

    // ----- bookkeeping -----

    /// The segment in flight is acknowledged up to `upto`.
    fn acknowledged(&mut self, upto: Seq) {
        self.flight = None;
        self.snd_una = upto;
        self.timers.stop(Timer::Retransmit);
    }

    /// Course numbering: both directions continue from `n`.
    fn tie(&mut self, n: Seq) {
        self.snd_una = n;
        self.snd_nxt = n;
        self.rcv_nxt = n;
    }

    fn note(&mut self, note: Note) {
        self.outputs.push_back(Output::Note(note));
    }

    fn ignore(&mut self, got: Segment, why: &'static str) {
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
