//! The end of a connection (seed steps 6 and 8): `close()` sends FIN and waits
//! at most `close_timeouts` timeouts for the FIN-ACK, then sends the final ACK
//! `close_timeouts` times, one timeout apart; `recv_close()` answers the FIN
//! and waits at most `close_timeouts` timeouts for the last ACK.
//!
//! Course readings close differently (see `dialect.rs`): in three segments
//! (FIN, FIN-ACK, ACK) or four (FIN, ACK, FIN, ACK), and some send their final
//! ACK with the FIN flag set, or with a number of their own counter. We accept
//! all of these: any ACK in LAST-ACK is the last one (learned: its flags), a
//! plain ACK of our FIN means a four-segment close (FIN-WAIT-2), and after
//! that any FIN is the peer's. A forced reading closes its own way and expects
//! exactly its own numbers.

use std::time::Instant;

use super::{Connection, Ending, State, Timer};
use crate::conn::note::{Answer, Ignore, Note};
use crate::segment::Segment;

impl Connection {
    /// FIN (we close first: FIN-WAIT-1) or the answer to theirs (LAST-ACK):
    /// a FIN-ACK, or, in the forced four-way reading, an ACK and then a FIN.
    pub(super) fn send_fin(&mut self, now: Instant, answering: bool) {
        let filler = self.dialect.filler(true);
        let seg = if !answering {
            Segment::fin(self.snd_nxt)
        } else if self.dialect.is_forced() && self.dialect.reading().four_way_close {
            self.send_ack_of(self.rcv_nxt, false);
            Segment::fin(self.snd_nxt)
        } else {
            Segment::fin_ack(self.snd_nxt, self.rcv_nxt)
        };
        self.send_reliable(now, seg.with_filler(filler));
        self.set_state(if answering {
            State::LastAck
        } else {
            State::FinWait1
        });
    }

    /// Our FIN is acknowledged by `seg`.
    pub(super) fn our_fin_acked(&mut self, now: Instant, seg: &Segment) {
        if self.state != State::FinWait1 {
            return;
        }
        if seg.flags.fin && !self.peer_fin {
            // A FIN-ACK: their FIN rides on it, numbered where their counter is.
            self.take_peer_fin(self.rcv_nxt);
            self.enter_time_wait(now);
        } else if self.peer_fin {
            self.enter_time_wait(now);
        } else {
            if let Some(l) = self.dialect.observe_four_way() {
                self.learned(l, seg);
            }
            self.set_state(State::FinWait2);
            // close() waits for the peer's FIN no longer than it waited for the ACK.
            self.timers.set(
                Timer::Linger,
                now + self.cfg.timeout * self.cfg.close_timeouts,
            );
        }
    }

    /// Records the peer's FIN at number `at`.
    fn take_peer_fin(&mut self, at: crate::seq::Seq) {
        self.peer_fin = true;
        self.inbox.peer_closed();
        self.rcv_nxt = at.plus(1);
        self.rcv_alts.clear();
        self.rcv_first.clear();
    }

    pub(super) fn on_fin(&mut self, now: Instant, seg: &Segment) {
        if self.peer_fin {
            return;
        }
        let expected = self.is_expected(seg.seq);
        if expected {
            self.learn_from_number(seg);
        } else if self.dialect.is_forced() || self.cfg.format == crate::wire::Format::Binary {
            self.ignore(seg.clone(), Ignore::FinOutOfSequence);
            return;
        } else {
            // Stop & Wait: a peer sends FIN only once we acknowledged all its
            // data, so a FIN numbered otherwise is still its FIN.
            self.note(Note::Ignored {
                got: seg.clone(),
                why: Ignore::FinNumberUnexpected,
            });
        }
        self.take_peer_fin(seg.seq);
        match self.state {
            State::Established | State::CloseWait => {
                self.tie_at_peer_fin(self.rcv_nxt);
                if self.written_out() && self.sender_idle() {
                    self.send_fin(now, true);
                } else {
                    self.send_ack_of(self.rcv_nxt, false);
                    self.set_state(State::CloseWait);
                }
            }
            // Both closed at once: acknowledge theirs, keep waiting for ours.
            State::FinWait1 => self.send_ack_of(self.rcv_nxt, false),
            // The four-segment close: their FIN after their ACK of ours.
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    /// A segment once the close is under way (LAST-ACK, TIME-WAIT, or a FIN
    /// again after theirs): the last ACK, or a copy to answer again.
    pub(super) fn on_closing_segment(&mut self, now: Instant, seg: Segment) {
        if !seg.data.is_empty() {
            self.stats.duplicates += 1;
            self.note(Note::Duplicate {
                got: seg,
                answer: Answer::CumulativeAck,
            });
            self.send_cumulative_acks();
            return;
        }
        match self.state {
            State::LastAck if seg.flags.ack => self.on_last_ack(&seg),
            State::TimeWait if seg.flags.fin => {
                self.stats.duplicates += 1;
                self.note(Note::Duplicate {
                    got: seg,
                    answer: Answer::FinalAck,
                });
                let nth = self.cfg.close_timeouts - self.final_acks_left;
                self.send_ack_of(self.final_ack, self.dialect.fin_on_final_ack(nth));
            }
            _ if seg.flags.fin => self.answer_duplicate_fin(seg),
            _ => {
                if seg.flags.ack {
                    self.on_ack(now, &seg);
                }
            }
        }
    }

    /// LAST-ACK: the final ACK. Any ACK is it (with or without the FIN flag,
    /// with the number of any reading); a forced reading wants its own number.
    fn on_last_ack(&mut self, seg: &Segment) {
        if self.dialect.is_forced() || self.cfg.format == crate::wire::Format::Binary {
            if seg.ack != self.snd_nxt {
                self.ignore(seg.clone(), Ignore::NotTheLastAck);
                return;
            }
        } else if seg.flags.fin
            && let Some(l) = self.dialect.observe_fin_on_final_ack()
        {
            self.learned(l, seg);
        }
        self.finish(Ending::Graceful);
    }

    fn answer_duplicate_fin(&mut self, seg: Segment) {
        self.stats.duplicates += 1;
        let answer = if let (Some(f), State::LastAck) = (&self.flight, self.state) {
            let again = f.segment.clone();
            if again.flags.ack {
                self.transmit(again);
            } else {
                // Four-way: the ACK of theirs, then our FIN again.
                self.send_ack_of(self.rcv_nxt, false);
                self.transmit(again);
            }
            Answer::FinAck
        } else {
            self.send_ack_of(self.rcv_nxt, false);
            Answer::Ack
        };
        self.note(Note::Duplicate { got: seg, answer });
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(State::TimeWait);
        self.timers.stop(Timer::Retransmit);
        self.final_acks_left = self.cfg.close_timeouts;
        self.final_ack = self.rcv_nxt;
        self.on_linger(now);
    }

    pub(super) fn on_linger(&mut self, now: Instant) {
        match self.state {
            State::TimeWait => {
                // The seed: the final ACK goes out three times, one timeout apart.
                let nth = self.cfg.close_timeouts - self.final_acks_left;
                self.send_ack_of(self.final_ack, self.dialect.fin_on_final_ack(nth));
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
                    outcome: "our FIN was acknowledged but theirs never came; closed".into(),
                });
                self.finish(Ending::FinUnanswered);
            }
            _ => {}
        }
    }
}
