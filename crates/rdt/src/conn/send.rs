//! The sending side of Stop & Wait (seed step 5): one segment in flight, its
//! acknowledgment, retransmission on a fixed timeout, every retry loop bounded.
//!
//! Course readings number data differently (bytes, segments, or whole encoded
//! segments; see `dialect.rs`): an ACK that any still-possible reading would
//! send for the segment in flight acknowledges it, and settles the reading (a
//! reading other than the current guess on its second copy); our next number
//! is the ACK's. While our first data's start is unsettled (the
//! handshake ACK may or may not have consumed a number) it goes from x + 2; an
//! ACK of x + 1 is the server saying it expects x + 1 (a Stop & Wait receiver
//! answers a segment it does not expect with its cumulative ACK, on every
//! copy): the segment goes again from there, and the start is settled. A
//! timeout never tries the other start blindly: with some readings an ACK of
//! x + 2 after a try at x + 1 would mean either "took it" or "not that one".

use std::time::Instant;

use super::{Connection, Flight, State, Timer};
use crate::conn::Ending;
use crate::conn::note::{Ignore, Note};
use crate::error::Error;
use crate::few::Few;
use crate::segment::{Kind, Segment};
use crate::seq::Seq;
use crate::wire::Format;

impl Connection {
    /// Sends the next queued payload, or the FIN once all is acknowledged.
    pub(super) fn push_next(&mut self, now: Instant) {
        if self.flight.is_some() || !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        if self.windowed() && !self.push_windowed(now) {
            return;
        }
        if let Some(payload) = self.next_piece() {
            let seg = Segment::data(self.snd_nxt, payload);
            self.send_reliable(now, seg);
        } else if self.unwritten > 0 {
            // The rest of the message is on its way from the shell.
        } else if self.state == State::CloseWait {
            self.send_fin(now, true);
        } else if self.close_requested {
            self.send_fin(now, false);
        }
    }

    pub(super) fn send_reliable(&mut self, now: Instant, mut seg: Segment) {
        seg.window = self.window();
        self.snd_other_seen = None;
        self.snd_nxt = seg.seq.plus(seg.len());
        self.flight = Some(Flight {
            segment: seg.clone(),
            first_sent: now,
            timeouts: 0,
        });
        self.timers.set(Timer::Retransmit, now + self.cfg.timeout);
        self.transmit(seg);
    }

    /// The numbers an ACK of `seg` may carry, one per reading still possible.
    fn acks_of(&self, seg: &Segment) -> Few<Seq> {
        if seg.data.is_empty() || self.cfg.format == Format::Binary {
            return Few::one(seg.seq.plus(seg.len()));
        }
        let wire = crate::wire::course::encoded_len(seg);
        self.dialect
            .advances(seg.data.len(), wire)
            .map(|a| seg.seq.plus(a as usize))
    }

    pub(super) fn on_ack(&mut self, now: Instant, seg: &Segment) {
        let Some(flight) = &self.flight else {
            if seg.data.is_empty() && !seg.flags.fin {
                self.stats.duplicates += 1;
            }
            return;
        };
        // What the ACK is checked against, not a copy of the segment: a
        // clone and its drop would touch the payload's reference count on
        // every ACK of the round trip.
        let took = &flight.segment;
        let (took_seq, took_len, was_fin) = (took.seq, took.data.len(), took.flags.fin);
        let wire = (took_len > 0 && self.cfg.format == Format::Course)
            .then(|| crate::wire::course::encoded_len(took));
        let acks = self.acks_of(took);
        let Some(pos) = acks.iter().position(|a| *a == seg.ack) else {
            self.not_our_ack(now, seg, took_seq);
            return;
        };
        let doubtful = pos > 0 || self.snd_stale.contains(&seg.ack);
        if doubtful && self.snd_other_seen != Some(seg.ack) {
            // Another reading's number, or one a peer still guessing ours
            // sent for an earlier segment, the first time: a peer of that
            // reading sends it for every copy of our segment, while a stale
            // copy comes once (and would pass for the ACK of a segment the
            // peer never got). Taken on its second copy.
            self.snd_other_seen = Some(seg.ack);
            self.note(Note::Ignored {
                got: seg.clone(),
                why: Ignore::OtherReadingsNumber,
            });
            return;
        }
        if acks.len() > 1 {
            self.snd_stale
                .extend(acks.iter().filter(|a| **a != seg.ack));
        }
        if !self.snd_first.is_empty() {
            self.settle_first_start(took_seq, seg);
        }
        // The binary format has one reading: nothing to learn.
        if let Some(wire) = wire {
            let by = seg.ack.0.wrapping_sub(took_seq.0);
            if let Some(l) = self.dialect.observe_advance(took_len, wire, by) {
                self.learned(l, seg);
            }
        }
        self.stats.bytes_acked += took_len as u64;
        self.acknowledged(seg.ack);
        self.after_our_ack(seg.ack);
        if was_fin {
            self.our_fin_acked(now, seg);
        } else {
            self.push_next(now);
        }
    }

    /// An ACK that does not acknowledge the segment in flight: a duplicate,
    /// or the server naming the other start of our first data.
    fn not_our_ack(&mut self, now: Instant, seg: &Segment, sent: Seq) {
        let other_start = self
            .snd_first
            .iter()
            .find(|s| s.seq == seg.ack && s.seq != sent)
            .copied();
        if let Some(start) = other_start {
            self.note(Note::Ignored {
                got: seg.clone(),
                why: Ignore::PeerExpectsFrom,
            });
            // The server said where it expects us: no more trying the other start.
            self.snd_first.retain(|s| s.seq == start.seq);
            self.restart_first(now, start.seq);
            return;
        }
        if seg.kind() == Kind::Ack {
            self.stats.duplicates += 1;
            self.note(Note::Ignored {
                got: seg.clone(),
                why: Ignore::NotInFlight,
            });
        }
    }

    /// The segment in flight (our first data) now starts at `seq`.
    fn move_first(&mut self, seq: Seq) {
        let Some(flight) = &mut self.flight else {
            return;
        };
        flight.segment.seq = seq;
        self.snd_nxt = seq.plus(flight.segment.len());
        self.first_data_from(seq);
    }

    /// Sends the segment in flight again, starting at `seq`.
    fn restart_first(&mut self, now: Instant, seq: Seq) {
        self.move_first(seq);
        let Some(flight) = &self.flight else {
            return;
        };
        let again = flight.segment.clone();
        self.stats.retransmissions += 1;
        self.note(Note::Retransmit(again.clone()));
        self.timers.set(Timer::Retransmit, now + self.cfg.timeout);
        self.transmit(again);
    }

    /// Our first data was taken from `seq`: what that start meant.
    fn settle_first_start(&mut self, seq: Seq, seg: &Segment) {
        let starts = std::mem::take(&mut self.snd_first);
        if let Some(s) = starts.iter().find(|s| s.seq == seq) {
            self.settle_start(*s, seg);
        }
    }

    pub(super) fn on_retransmit_timeout(&mut self, now: Instant) {
        let Some(flight) = &mut self.flight else {
            return;
        };
        flight.timeouts += 1;
        let timeouts = flight.timeouts;
        let kind = flight.segment.kind();
        let elapsed = now.saturating_duration_since(flight.first_sent);
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
            let n = self.cfg.close_timeouts;
            match kind {
                Kind::Fin => {
                    self.note(Note::GaveUp {
                        what: "FIN",
                        outcome: format!("no FIN-ACK in {n} timeouts; peer assumed closed"),
                    });
                    self.finish(Ending::FinUnanswered);
                }
                Kind::FinAck => {
                    self.note(Note::GaveUp {
                        what: "FIN-ACK",
                        outcome: format!("no last ACK in {n} timeouts; closed anyway"),
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
        if self.snd_first.len() > 1 && timeouts % 2 == 0 {
            // A server silent to our first data may still wait for a
            // handshake ACK with the other number (a reading whose ACK
            // consumes none), reading nothing else, and time out slower than
            // we do, so it never sends its SYN-ACK again to tell us: every
            // second timeout, the other candidate ACKs go too. Once it has
            // its ACK it says where it wants our data (`not_our_ack`).
            self.send_other_handshake_acks();
        }
        let Some(flight) = &self.flight else { return };
        let again = flight.segment.clone();
        self.stats.retransmissions += 1;
        self.note(Note::Retransmit(again.clone()));
        self.timers.set(Timer::Retransmit, now + self.cfg.timeout);
        self.transmit(again);
    }

    /// The advertised window: the free receive buffer in KiB (binary header).
    pub(super) fn window(&self) -> u16 {
        let used = self.inbox.buffered() + self.reasm.held_bytes();
        (self.cfg.recv_buffer.saturating_sub(used) / super::window::WINDOW_UNIT)
            .min(usize::from(u16::MAX)) as u16
    }
}
