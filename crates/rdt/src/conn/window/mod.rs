//! The windowed modes inside the connection (spec "Modes", issue #15):
//! go-back-n and selective repeat carry the data phase; the handshake and
//! the close stay Stop & Wait's (one SYN, one FIN in flight). The sender's
//! bookkeeping is in [`sender`], the receiver's buffer in [`reassembly`];
//! this file moves segments between them and the connection.
//!
//! ACKs of data are coalesced: data handled between two polls of the output
//! is acknowledged once, when the output is polled (a shell that drains every
//! waiting datagram before sending gets one ACK per batch; the simulator,
//! polling after each delivery instant, one per instant). Selective repeat's
//! ACK names the segment that came last in its first SACK block.
//!
//! The advertised window counts KiB ([`sender::WINDOW_UNIT`]): the free
//! receive buffer, so a sender never has more in flight than the receiver
//! can hold.

mod reassembly;
mod sender;

use std::time::Instant;

use bytes::Bytes;

pub(crate) use reassembly::Reassembly;
pub(crate) use sender::{Event, Sender, WINDOW_UNIT};

use super::{Connection, Ignore, Note, Output, Timer};
use crate::error::Error;
use crate::mode::Mode;
use crate::segment::Segment;
use crate::wire::Format;
use reassembly::Arrival;

impl Connection {
    /// Windowed modes: the sender, once the handshake is over.
    pub(super) fn windowed(&self) -> bool {
        self.cfg.mode.windowed()
    }

    /// No data segment of ours waits for an acknowledgment.
    pub(super) fn sender_idle(&self) -> bool {
        self.flight.is_none() && self.sender.as_ref().is_none_or(Sender::is_empty)
    }

    /// Fills the window: segments waiting to go again first, then new ones.
    /// Returns true when the window holds nothing (the FIN may go).
    pub(super) fn push_windowed(&mut self, now: Instant) -> bool {
        let window = self.window();
        if self.sender.is_none() {
            self.sender = Some(Sender::new(&self.cfg));
        }
        if let Some(sender) = self.sender.as_mut() {
            sender.resend_waiting(now, window);
        }
        while let Some(len) = self.next_piece_len() {
            if !self.sender.as_ref().is_some_and(|s| s.room_for_new(len)) {
                break;
            }
            let Some(payload) = self.next_piece() else {
                break;
            };
            let mut seg = Segment::data(self.snd_nxt, payload);
            seg.window = window;
            self.snd_nxt = seg.seq.plus(seg.data.len());
            if let Some(sender) = self.sender.as_mut() {
                sender.send_new(now, seg);
            }
        }
        let empty = self.sender.as_ref().is_none_or(Sender::is_empty);
        self.drain_sender();
        empty
    }

    /// An ACK while data of ours is in the window.
    pub(super) fn on_window_ack(&mut self, now: Instant, seg: &Segment) {
        let window = self.window();
        let snd_nxt = self.snd_nxt;
        let Some(sender) = self.sender.as_mut() else {
            return;
        };
        let before = sender.una().unwrap_or(snd_nxt);
        sender.on_ack(now, seg, snd_nxt, window);
        let after = sender.una().unwrap_or(snd_nxt);
        self.stats.bytes_acked += u64::from(after.0.wrapping_sub(before.0));
        self.snd_una = after;
        self.peer_follows(snd_nxt);
        self.drain_sender();
        self.push_next(now);
    }

    /// The retransmission timer of the window.
    pub(super) fn on_window_timeout(&mut self, now: Instant) {
        let snd_nxt = self.snd_nxt;
        let window = self.window();
        if let Some(sender) = self.sender.as_mut() {
            sender.on_timeout(now, snd_nxt, window);
        }
        self.drain_sender();
        if !self.is_closed() {
            self.push_next(now);
        }
    }

    /// Turns the sender's events into segments, notes and counts, and
    /// re-arms the retransmission timer.
    fn drain_sender(&mut self) {
        let Some(sender) = self.sender.as_mut() else {
            return;
        };
        let mut events = std::mem::take(&mut sender.events);
        for event in events.drain(..) {
            match event {
                Event::Transmit { seg, again } => {
                    if again {
                        self.stats.retransmissions += 1;
                        self.note(Note::Retransmit(seg.clone()));
                    }
                    self.transmit(seg);
                }
                Event::Lost { seg, how } => self.note(Note::Lost { seg, how }),
                Event::Timeout { count } => {
                    self.stats.timeouts += 1;
                    self.note(Note::Timeout {
                        timer: Timer::Retransmit,
                        count,
                    });
                }
                Event::Congestion(state) => self.note(Note::Congestion(state)),
                Event::GaveUp { tries, elapsed } => {
                    self.fail(Error::GaveUp {
                        what: "DATA",
                        tries,
                        elapsed,
                    });
                    return;
                }
            }
        }
        // Keep the allocation for the next turn.
        if let Some(sender) = self.sender.as_mut() {
            sender.events = events;
            match sender.deadline() {
                Some(at) => self.timers.set(Timer::Retransmit, at),
                None if self.flight.is_none() => self.timers.stop(Timer::Retransmit),
                None => {}
            }
        }
    }

    /// A data segment in a windowed mode: go-back-n keeps it only in order,
    /// selective repeat inside the window; either way it is acknowledged.
    pub(super) fn on_window_data(&mut self, seg: &mut Segment) {
        self.ack_pending = true;
        let in_order = seg.seq == self.rcv_nxt;
        self.take_window_data(seg);
        // Out of order or a copy: acknowledged at once (RFC 5681 §4.2), so
        // each one is a duplicate ACK the sender can count. Not when SACK
        // blocks say what arrived (selective repeat in the binary format):
        // the one ACK after the datagrams that came together tells it all,
        // where an ACK each would double the packets on a lossy path.
        let sack = self.cfg.mode == Mode::SelectiveRepeat && self.cfg.format == Format::Binary;
        if !in_order
            && !sack
            && let Some(ack) = self.take_pending_ack()
        {
            self.outputs.push_back(ack);
        }
    }

    /// Moves `seg`'s data on (into the inbox or the reassembly), or leaves
    /// it in `seg` for the note of a segment refused.
    fn take_window_data(&mut self, seg: &mut Segment) {
        if self.peer_fin {
            self.ignore(seg.clone(), Ignore::DataAfterFin);
            return;
        }
        // Room beyond the next expected number: the receive buffer less what
        // the application has not read (held pieces count inside `arrive`).
        let room = self.cfg.recv_buffer.saturating_sub(self.inbox.buffered());
        let len = seg.data.len();
        let (seq, data) =
            reassembly::trim_old(self.rcv_nxt, seg.seq, std::mem::take(&mut seg.data));
        let (first, joined) = match self.cfg.mode {
            Mode::SelectiveRepeat => match self.reasm.arrive(self.rcv_nxt, seq, data, room) {
                Arrival::Ready(first, joined) => (first, joined),
                Arrival::Held => return,
                Arrival::Duplicate => {
                    self.stats.duplicates += 1;
                    return;
                }
                Arrival::Beyond(data) => {
                    seg.data = data;
                    self.ignore(seg.clone(), Ignore::BeyondWindow);
                    return;
                }
            },
            _ if seq != self.rcv_nxt => {
                self.stats.duplicates += 1;
                return;
            }
            _ if data.len() > room => {
                seg.data = data;
                self.ignore(seg.clone(), Ignore::BufferFull);
                return;
            }
            _ => (data, Vec::new()),
        };
        self.stats.largest_received = self.stats.largest_received.max(len);
        self.take_in_order(first);
        for piece in joined {
            self.take_in_order(piece);
        }
    }

    fn take_in_order(&mut self, piece: Bytes) {
        let len = piece.len();
        if let Err(err) = self.inbox.deliver(piece) {
            self.fail(err);
            return;
        }
        self.stats.bytes_delivered += len as u64;
        self.rcv_nxt = self.rcv_nxt.plus(len);
        self.follow_peer(self.rcv_nxt);
    }

    /// The coalesced ACK of the data handled since the last poll.
    pub(super) fn take_pending_ack(&mut self) -> Option<Output> {
        if !self.ack_pending {
            return None;
        }
        self.ack_pending = false;
        let filler = self.dialect.filler(self.closing());
        let mut ack = Segment::ack(self.snd_nxt, self.rcv_nxt).with_filler(filler);
        ack.window = self.window();
        if self.cfg.mode == Mode::SelectiveRepeat {
            ack.sack = self.reasm.sack(self.rcv_nxt);
        }
        self.stats.segments_sent += 1;
        Some(Output::Transmit(ack))
    }

    /// The congestion window in bytes, if a windowed sender exists.
    pub fn cwnd(&self) -> Option<usize> {
        self.sender.as_ref().map(|s| s.cc.cwnd())
    }
}
