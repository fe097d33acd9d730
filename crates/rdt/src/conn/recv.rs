//! The receiving side of Stop & Wait (seed step 5): in-order data goes to the
//! message inbox and is acknowledged; anything else is answered with the
//! cumulative ACK in every state (a lost last ACK must not livelock both ends).
//!
//! While the peer's course reading is not settled, its next segment may carry
//! any of a few numbers (its data counted in bytes, segments or encoded
//! lengths; its first data from x + 1 or x + 2): every candidate is accepted,
//! and the one that comes settles the question (`dialect.rs`). A segment
//! taken is acknowledged with one number, the current guess (the seed's,
//! bytes, first); if the same segment comes again, the peer did not take that
//! number, and the copy is answered with the next reading's, in turn. One
//! number at a time, never several at once: a stale ACK of one reading could
//! otherwise carry exactly the number that acknowledges the peer's next
//! segment in another (with numbers under 10, the encoded length of a
//! length segment equals its length plus 16), and a strict peer would take it
//! for the ACK of a segment we never received.

use super::Connection;
use crate::conn::note::{Answer, Ignore, Note};
use crate::few::Few;
use crate::segment::Segment;
use crate::seq::Seq;
use crate::wire::Format;

impl Connection {
    /// Whether `seq` is a number the peer's next in-order segment may carry
    /// (the guess, or another reading's).
    pub(super) fn is_expected(&self, seq: Seq) -> bool {
        seq == self.rcv_nxt || self.rcv_alts.contains(&seq)
    }

    /// Learns what `seg`'s number says of the reading (its start or the last
    /// segment's advance), if it is one of the expected numbers.
    pub(super) fn learn_from_number(&mut self, seg: &Segment) {
        if !self.rcv_first.is_empty() {
            self.learn_first_start(seg.seq, seg);
        } else if let Some((last, len, wire)) = self.rcv_last {
            let by = seg.seq.0.wrapping_sub(last.0);
            if let Some(l) = self.dialect.observe_advance(len, wire, by) {
                self.learned(l, seg);
            }
        }
    }

    /// Takes `seg`'s data into the inbox when it is the next in order (the
    /// payload moves: a clone of a freshly decoded buffer would allocate
    /// its shared count, on the path to the ACK).
    pub(super) fn on_data(&mut self, seg: &mut Segment) {
        // A copy of the first data sent from its other possible start is the
        // same segment again, not the next one.
        let probe_copy = self
            .rcv_first_taken
            .as_ref()
            .is_some_and(|(others, data)| others.contains(&seg.seq) && *data == seg.data);
        if probe_copy || !self.is_expected(seg.seq) {
            // Old (our ACK was lost, or not the number the peer wants) or from
            // the future: answer with the cumulative ACK in every state, or a
            // lost last ACK livelocks both ends.
            self.stats.duplicates += 1;
            let again = self.rcv_last.is_some_and(|(s, _, _)| s == seg.seq);
            let answer = if again && self.rcv_last_acks.len() > 1 {
                self.rcv_last_ack = (self.rcv_last_ack + 1) % self.rcv_last_acks.len();
                Answer::NextReadingsAck
            } else {
                Answer::CumulativeAck
            };
            self.note(Note::Duplicate {
                got: seg.clone(),
                answer,
            });
            self.send_cumulative_acks();
            return;
        }
        if self.peer_fin {
            self.ignore(seg.clone(), Ignore::DataAfterFin);
            return;
        }
        if self.inbox.buffered() + seg.data.len() > self.cfg.recv_buffer {
            self.ignore(seg.clone(), Ignore::BufferFull);
            return;
        }
        if self.rcv_last.is_some() {
            self.rcv_first_taken = None;
        }
        self.learn_from_number(seg);
        let len = seg.data.len();
        let wire = if seg.wire_len > 0 {
            seg.wire_len
        } else {
            crate::wire::course::encoded_len(seg)
        };
        if let Err(err) = self.inbox.deliver(std::mem::take(&mut seg.data)) {
            self.fail(err);
            return;
        }
        self.stats.bytes_delivered += len as u64;
        self.stats.largest_received = self.stats.largest_received.max(len);
        // Where the next one may start: one number per reading still possible.
        let next = if self.cfg.format == Format::Binary {
            Few::one(seg.seq.plus(len))
        } else {
            self.dialect
                .advances(len, wire)
                .map(|a| seg.seq.plus(a as usize))
        };
        self.rcv_last = Some((seg.seq, len, wire));
        self.rcv_nxt = next[0];
        self.rcv_alts.clear();
        self.rcv_alts.extend_from_slice(&next[1..]);
        self.rcv_last_acks.clear();
        self.rcv_last_acks.extend_from_slice(&next);
        self.rcv_last_ack = 0;
        self.follow_peer(self.rcv_nxt);
        self.send_cumulative_acks();
    }

    /// The ACK of the last segment taken, with the number in turn (or the
    /// plain cumulative ACK).
    pub(super) fn send_cumulative_acks(&mut self) {
        let n = self
            .rcv_last_acks
            .get(self.rcv_last_ack)
            .copied()
            .unwrap_or(self.rcv_nxt);
        let filler = self.dialect.filler(self.closing());
        let mut ack = Segment::ack(self.snd_nxt, n).with_filler(filler);
        ack.window = self.window();
        self.transmit(ack);
    }

    /// One ACK of `n` (FIN-ACKs' and final ACKs' numbers are single).
    pub(super) fn send_ack_of(&mut self, n: Seq, fin: bool) {
        let filler = self.dialect.filler(true);
        let mut ack = if fin {
            Segment::fin_ack(self.snd_nxt, n)
        } else {
            Segment::ack(self.snd_nxt, n)
        }
        .with_filler(filler);
        ack.window = self.window();
        self.transmit(ack);
    }
}
