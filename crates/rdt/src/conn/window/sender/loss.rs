//! Loss detection of the windowed sender (spec "Modes", issue #15):
//! selective repeat's SACK- and time-based rule (RFC 6675's duplicate
//! threshold, RFC 8985's RACK for lost retransmissions), go-back-n's
//! duplicate ACKs and rewind, and the one-reduction-per-window recovery point.

use std::time::Instant;

use super::{Event, Sender};
use crate::segment::Segment;
use crate::seq::Seq;

impl Sender {
    /// A segment last sent at `sent_at` arrived.
    pub(super) fn delivered(&mut self, sent_at: Instant) {
        if self.delivered_sent_at.is_none_or(|d| sent_at > d) {
            self.delivered_sent_at = Some(sent_at);
        }
    }

    /// Selective repeat: a segment with `dup_thresh` later segments
    /// acknowledged selectively is lost; it goes again now, once.
    pub(super) fn detect_sacked_losses(&mut self, now: Instant, snd_nxt: Seq, window: u16) {
        let (Some(high), Some(newest)) = (self.highest_sacked, self.delivered_sent_at) else {
            return;
        };
        if self.scanned == Some((high, newest)) || high < self.first_id {
            return;
        }
        self.scanned = Some((high, newest));
        // A segment sent before one that arrived, by more than this, is lost
        // (RACK's reordering window: a quarter of the least RTT seen; the
        // smoothed one grows with the queue a window builds).
        let reordering = self.min_rtt.unwrap_or_default() / 4;
        let top = (high - self.first_id) as usize;
        let mut later = 0;
        let mut lost = Vec::new();
        for i in (0..=top.min(self.queue.len().saturating_sub(1))).rev() {
            let s = &self.queue[i];
            if s.sacked {
                later += 1;
            } else if later >= self.dup_thresh && !s.needs_send && s.last_sent + reordering < newest
            {
                lost.push(i);
            }
        }
        for &i in lost.iter().rev() {
            let again = self.queue[i].sends > 1;
            let seg = Segment::data(self.queue[i].seq, self.queue[i].data.clone());
            self.events.push_back(Event::Lost {
                seg,
                how: if again {
                    "its retransmission was lost too: segments sent after it arrived"
                } else {
                    "later segments acknowledged selectively (the duplicate threshold)"
                },
            });
            self.loss_event(now, snd_nxt);
            self.resend_lost(now, i, window);
        }
    }

    /// Selective repeat with a peer that sends no SACK blocks (a go-back-n
    /// or Stop & Wait receiver, a course program): `dup_thresh` duplicate
    /// ACKs mark the oldest segment lost, and in the recovery that follows
    /// each partial ACK marks the next one lost (RFC 6582's NewReno: such a
    /// receiver may have dropped everything after the hole).
    pub(super) fn detect_unsacked_loss(
        &mut self,
        now: Instant,
        snd_nxt: Seq,
        window: u16,
        advanced: bool,
    ) {
        if self.highest_sacked.is_some() {
            return;
        }
        let Some(front) = self.queue.front() else {
            return;
        };
        let partial = advanced && self.recover.is_some_and(|r| front.seq.before(r));
        if !(self.dup_acks == self.dup_thresh || partial) || front.needs_send || front.sends > 1 {
            return;
        }
        let seg = Segment::data(front.seq, front.data.clone());
        self.events.push_back(Event::Lost {
            seg,
            how: if partial {
                "a partial ACK in recovery (the peer sends no SACK blocks)"
            } else {
                "duplicate ACKs reached the threshold (the peer sends no SACK blocks)"
            },
        });
        self.loss_event(now, snd_nxt);
        self.resend_lost(now, 0, window);
    }

    /// Go-back-n: `dup_thresh` duplicate ACKs: every segment from the
    /// oldest goes again (the receiver dropped them all).
    pub(super) fn detect_gbn_loss(&mut self, now: Instant, snd_nxt: Seq) {
        if self.dup_acks < self.dup_thresh || self.queue.is_empty() {
            return;
        }
        if self.dup_acks > self.dup_thresh {
            self.cc.on_dup_ack();
            return;
        }
        // In recovery, duplicates of the ACK the last rewind answered are
        // the old copies' echo; at a later number they mean a new loss (the
        // receiver dropped everything after it again): go back again.
        if self.recover.is_some() && self.una() == self.rewound_at {
            return;
        }
        if let Some(front) = self.queue.front() {
            let seg = Segment::data(front.seq, front.data.clone());
            self.events.push_back(Event::Lost {
                seg,
                how: "duplicate ACKs reached the threshold: the window goes again",
            });
        }
        self.loss_event(now, snd_nxt);
        self.rewind();
    }

    /// One loss event per window: the controller reduces once until
    /// everything sent before it is acknowledged.
    pub(super) fn loss_event(&mut self, now: Instant, snd_nxt: Seq) {
        if self.recover.is_some() {
            return;
        }
        self.recover = Some(snd_nxt);
        if let Some(change) = self.cc.on_loss(now) {
            self.events.push_back(Event::Congestion(change));
        }
    }

    /// Every unacknowledged segment waits to go again (go-back-n).
    pub(super) fn rewind(&mut self) {
        self.rewound_at = self.una();
        for s in &mut self.queue {
            if !s.needs_send && !s.sacked {
                s.needs_send = true;
                self.to_resend += 1;
            }
        }
        self.in_flight = 0;
        self.flight_segs = 0;
        self.gbn_deadline = None;
    }
}
