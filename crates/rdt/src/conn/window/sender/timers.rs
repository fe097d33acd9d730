//! The windowed sender's retransmission timers (spec "Modes"): go-back-n's
//! one timer for the oldest segment, selective repeat's timer per segment
//! (deadlines in one heap, stale entries skipped), backoff, the retry bound.

use std::cmp::Reverse;
use std::time::Instant;

use super::{Event, Sender};
use crate::mode::Mode;
use crate::segment::Segment;
use crate::seq::Seq;

impl Sender {
    /// The earliest retransmission deadline.
    pub(crate) fn deadline(&mut self) -> Option<Instant> {
        match self.mode {
            Mode::SelectiveRepeat => {
                while let Some(&Reverse((at, id))) = self.heap.peek() {
                    if self.live(at, id) {
                        return Some(at);
                    }
                    self.heap.pop();
                }
                None
            }
            _ => self.gbn_deadline,
        }
    }

    /// The heap entry is the current timer of a segment still waiting for its ACK.
    pub(super) fn live(&self, at: Instant, id: u64) -> bool {
        id >= self.first_id
            && self
                .queue
                .get((id - self.first_id) as usize)
                .is_some_and(|s| !s.sacked && !s.needs_send && s.deadline == at)
    }

    /// The retransmission timer expired at `now`.
    pub(crate) fn on_timeout(&mut self, now: Instant, snd_nxt: Seq, window: u16) {
        let mut expired = Vec::new();
        let mut probes = Vec::new();
        match self.mode {
            Mode::SelectiveRepeat => {
                while let Some(&Reverse((at, id))) = self.heap.peek() {
                    if at > now {
                        break;
                    }
                    self.heap.pop();
                    if !self.live(at, id) {
                        continue;
                    }
                    let i = (id - self.first_id) as usize;
                    if self.queue[i].probe {
                        probes.push(i);
                        continue;
                    }
                    // ACKs of new data came within an RTO: the segment is
                    // waiting behind a burst, not lost (yet). Its timer runs
                    // from that ACK, as the one timer restarts on new data.
                    let rearm = self.last_progress.map(|p| p + self.rto.current());
                    if let Some(later) = rearm.filter(|&t| t > now && t > at) {
                        self.queue[i].deadline = later;
                        self.heap.push(Reverse((later, id)));
                    } else {
                        expired.push(i);
                    }
                }
            }
            _ => {
                if self.gbn_deadline.is_some_and(|at| at <= now) && !self.queue.is_empty() {
                    expired.push(0);
                }
            }
        }
        probes.sort_unstable();
        probes.dedup();
        for i in probes {
            // A fast retransmission unanswered for two round trips: lost
            // too. Sent again, on a full RTO now; not a timeout (no backoff).
            let seg = Segment::data(self.queue[i].seq, self.queue[i].data.clone());
            self.events.push_back(Event::Lost {
                seg,
                how: "its retransmission went unanswered for two round trips",
            });
            self.loss_event(now, snd_nxt);
            self.resend(now, i, window);
        }
        if expired.is_empty() {
            return;
        }
        // A segment sent twice in one instant has two equal heap entries.
        expired.sort_unstable();
        expired.dedup();
        let mut worst = 0;
        for &i in &expired {
            let s = &mut self.queue[i];
            s.timeouts += 1;
            worst = worst.max(s.timeouts);
            if s.timeouts >= self.max_retries {
                let elapsed = now.saturating_duration_since(s.first_sent);
                self.events.push_back(Event::GaveUp {
                    tries: s.timeouts,
                    elapsed,
                });
                return;
            }
        }
        self.events.push_back(Event::Timeout { count: worst });
        self.rto.back_off();
        if let Some(change) = self.cc.on_timeout(now) {
            self.events.push_back(Event::Congestion(change));
        }
        // Duplicate ACKs of what was in flight must not start a second recovery.
        self.recover = Some(snd_nxt);
        self.dup_acks = 0;
        if self.mode == Mode::SelectiveRepeat {
            for i in expired {
                let s = &mut self.queue[i];
                s.needs_send = true;
                self.to_resend += 1;
                self.in_flight -= s.data.len();
                self.flight_segs -= 1;
            }
        } else {
            self.rewind();
            self.gbn_deadline = Some(now + self.rto.current());
        }
    }
}
