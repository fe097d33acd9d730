//! The sending side of go-back-n and selective repeat (spec "Modes", issue
//! #15): the segments in flight, their acknowledgments, the timers, loss
//! detection and the congestion controller's events. Pure bookkeeping: the
//! connection hands it segments and ACKs and sends what it says.
//!
//! - **Go-back-n**: one timer, for the oldest unacknowledged segment,
//!   restarted when an ACK acknowledges new data. The receiver keeps only
//!   in-order data, so a loss (the timer, or `dup_thresh` duplicate ACKs)
//!   means every segment from the oldest on is sent again: they are marked
//!   to resend and go out as the window allows.
//! - **Selective repeat**: a timer per segment (deadlines in one heap, the
//!   earliest is the connection's retransmit timer); ACKs are cumulative
//!   plus SACK blocks; a segment with `dup_thresh` segments after it
//!   acknowledged selectively is lost (RFC 6675's rule) and sent again at
//!   once; a timer resends only its own segment.
//! - Both: flight size ≤ min(window × MSS, cwnd, the peer's window) (one
//!   segment always, so a closed window is probed); RTT samples only from
//!   segments sent once (Karn); a recovery point (`recover`, RFC 6582) so one
//!   loss event reduces the window once.

mod loss;
mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cc::{CcState, Controller};
use crate::config::Config;
use crate::mode::Mode;
use crate::rto::Rto;
use crate::segment::Segment;
use crate::seq::Seq;

/// One data segment not yet acknowledged.
#[derive(Debug)]
struct Unacked {
    seq: Seq,
    data: Bytes,
    first_sent: Instant,
    last_sent: Instant,
    deadline: Instant,
    sends: u32,
    timeouts: u32,
    /// Acknowledged by a SACK block (selective repeat).
    sacked: bool,
    /// Found lost or timed out, waiting for room to go again.
    needs_send: bool,
    /// Sent again by loss detection and watched by a short timer (two round
    /// trips): if this copy is lost too and nothing sent later arrives to
    /// show it, the probe finds it instead of a full RTO.
    probe: bool,
}

impl Unacked {
    fn end(&self) -> Seq {
        self.seq.plus(self.data.len())
    }
}

/// What the sender wants the connection to do or record.
#[derive(Debug)]
pub(crate) enum Event {
    /// Send this segment; `again` when it is a retransmission.
    Transmit {
        seg: Segment,
        again: bool,
    },
    /// A segment found lost before its timer, and how.
    Lost {
        seg: Segment,
        how: &'static str,
    },
    Timeout {
        count: u32,
    },
    Congestion(CcState),
    /// A segment reached its retry bound: the connection fails.
    GaveUp {
        tries: u32,
        elapsed: Duration,
    },
}

#[derive(Debug)]
pub(crate) struct Sender {
    mode: Mode,
    window: usize,
    queue: VecDeque<Unacked>,
    /// The id of `queue[0]` (ids count segments, never wrap).
    first_id: u64,
    /// Selective repeat: (deadline, id) of every timer set; stale ones are
    /// skipped when they come up.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Go-back-n: the timer of the oldest segment.
    gbn_deadline: Option<Instant>,
    /// Bytes neither acknowledged (selectively too) nor waiting to resend.
    in_flight: usize,
    /// Those segments, counted.
    flight_segs: usize,
    to_resend: usize,
    pub(crate) rto: Rto,
    pub(crate) cc: Controller,
    peer_window: usize,
    /// How far past the oldest unacknowledged number selective repeat goes
    /// at most whatever the peer advertises: our own receive buffer's size,
    /// so a peer that SACKs everything but one hole (and never fills it)
    /// cannot make the sender hold more than the user allowed.
    span_limit: usize,
    dup_acks: u32,
    recover: Option<Seq>,
    /// The highest id acknowledged selectively.
    highest_sacked: Option<u64>,
    /// The latest send time among segments that arrived (RACK, RFC 8985):
    /// a segment sent well before it and still missing is lost, whether a
    /// first copy or a retransmission.
    delivered_sent_at: Option<Instant>,
    /// What loss detection last looked at.
    scanned: Option<(u64, Instant)>,
    /// The least round trip sampled.
    min_rtt: Option<Duration>,
    dup_thresh: u32,
    max_retries: u32,
    /// When an ACK last acknowledged new data (selective repeat's timers
    /// count from it, as RFC 6298 §5.3 restarts the one timer).
    last_progress: Option<Instant>,
    /// Go-back-n: the oldest number when the window last went back.
    rewound_at: Option<Seq>,
    pub(crate) events: VecDeque<Event>,
}

/// The shortest probe timer of a segment sent again by loss detection.
const MIN_PROBE: Duration = Duration::from_millis(1);

/// Units of the binary header's window field.
pub(crate) const WINDOW_UNIT: usize = 1024;

impl Sender {
    pub(crate) fn new(cfg: &Config) -> Sender {
        Sender {
            mode: cfg.mode,
            window: cfg.window.max(1),
            queue: VecDeque::new(),
            first_id: 0,
            heap: BinaryHeap::new(),
            gbn_deadline: None,
            in_flight: 0,
            flight_segs: 0,
            to_resend: 0,
            rto: Rto::new(cfg.rto, cfg.timeout, cfg.min_rto, cfg.max_rto),
            cc: Controller::new(cfg.cc, cfg.mss),
            peer_window: cfg.recv_buffer,
            span_limit: cfg.recv_buffer,
            dup_acks: 0,
            recover: None,
            highest_sacked: None,
            delivered_sent_at: None,
            scanned: None,
            min_rtt: None,
            dup_thresh: cfg.dup_thresh.max(1),
            max_retries: cfg.max_retries,
            last_progress: None,
            rewound_at: None,
            events: VecDeque::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The oldest unacknowledged number, if any.
    pub(crate) fn una(&self) -> Option<Seq> {
        self.queue.front().map(|s| s.seq)
    }

    /// Whether `len` more bytes may go now.
    fn room(&self, len: usize) -> bool {
        if self.in_flight == 0 {
            return true;
        }
        let allowed = self.cc.cwnd().min(self.peer_window);
        self.in_flight + len <= allowed
    }

    /// A new segment fits: the window of segments has a place and the flight room.
    ///
    /// Go-back-n's window is `window` segments from the oldest
    /// unacknowledged one. Selective repeat's counts the segments in
    /// flight: a segment the peer acknowledged selectively has left it, as
    /// TCP with SACK counts its pipe (RFC 6675), so a hole being repaired
    /// does not hold the window's left edge for the round trips the repair
    /// takes. What may be outstanding from that edge is the peer's
    /// advertised window (it holds what arrives out of order in it), never
    /// more than our own receive buffer's size. With a peer that sends no
    /// SACK blocks, the two windows are the same.
    pub(crate) fn room_for_new(&self, len: usize) -> bool {
        let window = match self.mode {
            Mode::SelectiveRepeat => {
                let span = self.peer_window.min(self.span_limit).max(len);
                self.flight_segs < self.window && self.span() + len <= span
            }
            _ => self.queue.len() < self.window,
        };
        self.to_resend == 0 && window && self.room(len)
    }

    /// Bytes from the oldest unacknowledged number to the next new one.
    fn span(&self) -> usize {
        match (self.queue.front(), self.queue.back()) {
            (Some(first), Some(last)) => last.end().since(first.seq).max(0) as usize,
            _ => 0,
        }
    }

    /// Sends a new data segment (its number is the connection's next).
    pub(crate) fn send_new(&mut self, now: Instant, seg: Segment) {
        let deadline = now + self.rto.current();
        let id = self.first_id + self.queue.len() as u64;
        self.queue.push_back(Unacked {
            seq: seg.seq,
            data: seg.data.clone(),
            first_sent: now,
            last_sent: now,
            deadline,
            sends: 1,
            timeouts: 0,
            sacked: false,
            needs_send: false,
            probe: false,
        });
        self.in_flight += seg.data.len();
        self.flight_segs += 1;
        self.arm(id, deadline);
        self.events.push_back(Event::Transmit { seg, again: false });
    }

    fn arm(&mut self, id: u64, deadline: Instant) {
        match self.mode {
            Mode::SelectiveRepeat => self.heap.push(Reverse((deadline, id))),
            _ => {
                if self.gbn_deadline.is_none() {
                    self.gbn_deadline = Some(deadline);
                }
            }
        }
    }

    /// Sends segments waiting to go again, in order, while there is room.
    pub(crate) fn resend_waiting(&mut self, now: Instant, window: u16) {
        let mut i = 0;
        while self.to_resend > 0 && i < self.queue.len() {
            if self.queue[i].needs_send {
                let len = self.queue[i].data.len();
                if !self.room(len) {
                    return;
                }
                self.resend(now, i, window);
            }
            i += 1;
        }
    }

    /// Sends `queue[i]` again now, its timer a full RTO.
    fn resend(&mut self, now: Instant, i: usize, window: u16) {
        let deadline = now + self.rto.current();
        self.resend_until(now, i, window, deadline, false);
    }

    /// Sends `queue[i]` again now, found lost by ACKs: its timer is two
    /// round trips (at least [`MIN_PROBE`], at most the RTO).
    fn resend_lost(&mut self, now: Instant, i: usize, window: u16) {
        let rto = self.rto.current();
        let probe = self
            .rto
            .srtt()
            .map_or(rto, |s| (s * 2).max(MIN_PROBE).min(rto));
        self.resend_until(
            now,
            i,
            window,
            now + probe,
            self.mode == Mode::SelectiveRepeat,
        );
    }

    fn resend_until(
        &mut self,
        now: Instant,
        i: usize,
        window: u16,
        deadline: Instant,
        probe: bool,
    ) {
        let s = &mut self.queue[i];
        s.probe = probe;
        if s.needs_send {
            s.needs_send = false;
            self.to_resend -= 1;
            self.in_flight += s.data.len();
            self.flight_segs += 1;
        }
        s.sends += 1;
        s.last_sent = now;
        s.deadline = deadline;
        let mut seg = Segment::data(s.seq, s.data.clone());
        seg.window = window;
        self.arm(self.first_id + i as u64, deadline);
        self.events.push_back(Event::Transmit { seg, again: true });
    }

    /// An ACK (with SACK blocks perhaps); `snd_nxt` bounds what it may acknowledge.
    pub(crate) fn on_ack(&mut self, now: Instant, seg: &Segment, snd_nxt: Seq, window: u16) {
        let Some(una) = self.una() else { return };
        let ack = seg.ack;
        if ack.after(snd_nxt) {
            return;
        }
        if !ack.before(una) {
            // An older ACK the network held back says an older window.
            self.peer_window = usize::from(seg.window) * WINDOW_UNIT;
        }
        let mut newly = 0;
        let mut sample = None;
        let advanced = ack.after(una);
        if advanced {
            while self.queue.front().is_some_and(|s| !s.end().after(ack)) {
                let Some(s) = self.queue.pop_front() else {
                    break;
                };
                self.first_id += 1;
                if s.needs_send {
                    self.to_resend -= 1;
                } else if !s.sacked {
                    self.in_flight -= s.data.len();
                    self.flight_segs -= 1;
                }
                if !s.sacked {
                    newly += s.data.len();
                    self.delivered(s.last_sent);
                }
                // Karn, strictly: only the segment this ACK names the end
                // of, sent once and never given up for lost, times a round
                // trip (an ACK the resend of an earlier segment released
                // would time the wait, not the path).
                sample = (s.end() == ack && s.sends == 1 && !s.needs_send && !s.sacked)
                    .then(|| now.saturating_duration_since(s.last_sent));
            }
            self.dup_acks = 0;
            self.reneged();
            if self.queue.is_empty() {
                self.gbn_deadline = None;
            } else if self.mode == Mode::GoBackN {
                self.gbn_deadline = Some(now + self.rto.current());
            }
        } else if ack == una && seg.data.is_empty() && !seg.flags.fin && !seg.flags.syn {
            self.dup_acks += 1;
        }
        if self.mode == Mode::SelectiveRepeat && !seg.sack.is_empty() {
            let (n, s) = self.take_sack(now, seg);
            newly += n;
            sample = s.or(sample);
        }
        if let Some(r) = sample {
            self.rto.sample(r);
            self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        }
        if newly > 0 {
            self.last_progress = Some(now);
        }
        if newly > 0 && !self.cc.in_recovery() {
            let srtt = self.rto.srtt();
            if let Some(change) = self.cc.on_ack(now, newly, srtt) {
                self.events.push_back(Event::Congestion(change));
            }
        }
        if let Some(r) = self.recover
            && !ack.before(r)
        {
            self.recover = None;
            if let Some(change) = self.cc.on_recovery_end() {
                self.events.push_back(Event::Congestion(change));
            }
        }
        match self.mode {
            Mode::SelectiveRepeat => {
                self.detect_sacked_losses(now, snd_nxt, window);
                self.detect_unsacked_loss(now, snd_nxt, window, advanced);
            }
            _ => self.detect_gbn_loss(now, snd_nxt),
        }
    }

    /// The cumulative ACK stopped at a segment the peer had said it held (a
    /// SACK block): it dropped it after all (reneged, RFC 2018 §8) or never
    /// had it. Its SACK no longer counts: it goes again, as lost.
    fn reneged(&mut self) {
        if let Some(front) = self.queue.front_mut()
            && front.sacked
        {
            front.sacked = false;
            front.needs_send = true;
            self.to_resend += 1;
        }
    }

    /// Marks segments inside the SACK blocks; returns the bytes newly
    /// acknowledged and an RTT sample.
    fn take_sack(&mut self, now: Instant, seg: &Segment) -> (usize, Option<Duration>) {
        let Some(una) = self.una() else {
            return (0, None);
        };
        let mut newly = 0;
        let mut sample = None;
        for (nth, &(a, b)) in seg.sack.blocks().iter().enumerate() {
            if !a.after(una) || !b.after(a) {
                continue;
            }
            let from = self.queue.partition_point(|s| s.seq.before(a));
            for i in from..self.queue.len() {
                let s = &mut self.queue[i];
                if s.end().after(b) {
                    break;
                }
                if s.sacked {
                    continue;
                }
                s.sacked = true;
                if s.needs_send {
                    s.needs_send = false;
                    self.to_resend -= 1;
                } else {
                    self.in_flight -= s.data.len();
                    self.flight_segs -= 1;
                }
                newly += s.data.len();
                // The first block holds the segment whose arrival sent this ACK.
                if nth == 0 && s.sends == 1 && s.end() == b {
                    sample = Some(now.saturating_duration_since(s.last_sent));
                }
                let sent_at = s.last_sent;
                self.delivered(sent_at);
                let id = self.first_id + i as u64;
                self.highest_sacked = Some(self.highest_sacked.map_or(id, |h| h.max(id)));
            }
        }
        (newly, sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::CcKind;

    const MSS: usize = 100;

    fn sender(mode: Mode) -> Sender {
        let cfg = Config {
            mode,
            cc: CcKind::Tahoe,
            mss: MSS,
            window: 64,
            ..Config::new(crate::wire::Format::Binary)
        };
        Sender::new(&cfg)
    }

    fn ack(n: Seq) -> Segment {
        let mut a = Segment::ack(Seq(0), n);
        a.window = u16::MAX;
        a
    }

    /// Sends new segments while the window allows; returns the next number.
    fn fill(s: &mut Sender, now: Instant, mut next: Seq) -> Seq {
        while s.room_for_new(MSS) {
            s.send_new(now, Segment::data(next, Bytes::from(vec![0; MSS])));
            next = next.plus(MSS);
        }
        next
    }

    /// cwnd grows to 8 MSS, 8 segments go, the timer shrinks cwnd to 1 MSS;
    /// then the ACK of all 8 (their first copies arrived) comes: taken whole.
    #[test]
    fn an_ack_beyond_a_window_that_just_shrank_is_taken() {
        for mode in [Mode::GoBackN, Mode::SelectiveRepeat] {
            let t0 = Instant::now();
            let mut s = sender(mode);
            let mut una = Seq(u32::MAX - 250);
            let mut next = una;
            for _ in 0..3 {
                next = fill(&mut s, t0, next);
                s.on_ack(t0, &ack(next), next, 100);
                una = next;
            }
            assert_eq!(s.cc.cwnd(), 8 * MSS, "{mode:?}");
            next = fill(&mut s, t0, una);
            assert_eq!(next.since(una), 8 * MSS as i32, "{mode:?}: 8 in flight");
            let late = t0 + Duration::from_secs(1);
            s.on_timeout(late, next, 100);
            assert_eq!(s.cc.cwnd(), MSS, "{mode:?}");
            assert_eq!(s.cc.ssthresh(), 4 * MSS, "{mode:?}");
            s.resend_waiting(late, 100);
            s.on_ack(late, &ack(next), next, 100);
            assert!(s.is_empty(), "{mode:?}");
            assert_eq!(
                (s.in_flight, s.flight_segs, s.to_resend),
                (0, 0, 0),
                "{mode:?}"
            );
            // Slow start from 1 MSS took the 8 segments' bytes: past ssthresh.
            assert_eq!(s.cc.cwnd(), 4 * MSS, "{mode:?}");
            assert_eq!(
                s.deadline(),
                None,
                "{mode:?}: no timer with nothing in flight"
            );
            let again = fill(&mut s, late, next);
            assert_eq!(
                again.since(next),
                4 * MSS as i32,
                "{mode:?}: the window recomputed"
            );
        }
    }

    /// A fast retransmission that is lost too, with nothing sent after it
    /// to show it: found by its two-round-trip probe, not a full RTO, and
    /// without the timeout's backoff.
    #[test]
    fn a_lost_fast_retransmission_is_found_by_its_probe() {
        let t0 = Instant::now();
        let cfg = Config {
            mode: Mode::SelectiveRepeat,
            mss: MSS,
            window: 5,
            rto: crate::mode::RtoChoice::Adaptive,
            timeout: Duration::from_millis(200),
            min_rto: Duration::from_millis(100),
            ..Config::new(crate::wire::Format::Binary)
        };
        let mut s = Sender::new(&cfg);
        let mut next = Seq(0);
        for i in 0..5 {
            let at = t0 + Duration::from_micros(300 * i);
            s.send_new(at, Segment::data(next, Bytes::from(vec![0; MSS])));
            next = next.plus(MSS);
        }
        // Segments 2..=5 arrive (1 ms round trip; sent 300 µs apart, more
        // than RACK's reordering window of a quarter RTT): 1 is lost.
        let t1 = t0 + Duration::from_millis(2);
        let mut a = ack(Seq(0));
        a.sack.push(Seq(MSS as u32), next);
        s.on_ack(t1, &a, next, 100);
        let lost = s
            .events
            .iter()
            .filter(|e| matches!(e, Event::Lost { .. }))
            .count();
        assert_eq!(lost, 1);
        let rto = s.rto.current();
        let probe_at = s.deadline().unwrap();
        assert!(probe_at < t1 + rto, "a probe, not a full RTO");
        s.events.clear();
        s.on_timeout(probe_at, next, 100);
        assert!(
            s.events
                .iter()
                .any(|e| matches!(e, Event::Lost { how, .. } if how.contains("unanswered")))
        );
        assert!(!s.events.iter().any(|e| matches!(e, Event::Timeout { .. })));
        assert_eq!(s.rto.current(), rto, "no backoff");
        let again = s
            .events
            .iter()
            .filter(|e| matches!(e, Event::Transmit { again: true, .. }))
            .count();
        assert_eq!(again, 1);
        // Sent again on a full RTO this time.
        assert!(s.deadline().unwrap() >= probe_at + rto);
    }

    /// The peer SACKs segment 2, then its cumulative ACK stops at 2: it
    /// dropped it (or lied). Segment 2 goes again instead of waiting for a
    /// SACK that made it look delivered.
    #[test]
    fn a_sacked_segment_the_peer_drops_is_sent_again() {
        let t0 = Instant::now();
        let mut s = sender(Mode::SelectiveRepeat);
        let mut next = Seq(0);
        for _ in 0..3 {
            s.send_new(t0, Segment::data(next, Bytes::from(vec![0; MSS])));
            next = next.plus(MSS);
        }
        let mut a = ack(Seq(0));
        a.sack.push(Seq(MSS as u32), Seq(2 * MSS as u32));
        s.on_ack(t0, &a, next, 100);
        assert_eq!(s.in_flight, 2 * MSS, "segment 2 counted as arrived");
        s.events.clear();
        s.on_ack(t0, &ack(Seq(MSS as u32)), next, 100);
        assert_eq!(s.to_resend, 1);
        s.resend_waiting(t0, 100);
        let again: Vec<Seq> = s
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Transmit { seg, again: true } => Some(seg.seq),
                _ => None,
            })
            .collect();
        assert_eq!(again, [Seq(MSS as u32)]);
        assert!(s.deadline().is_some(), "and it has a timer again");
    }

    /// Selective repeat's window counts what is in flight: with the first
    /// segment missing and the other 63 SACKed, 63 more go (a go-back-n
    /// window stays shut); the peer's advertised window bounds how far past
    /// the hole they may go, and our own receive buffer's size bounds it
    /// whatever the peer advertises.
    #[test]
    fn a_selective_window_counts_segments_in_flight_up_to_the_peer_window() {
        let ours = Config::new(crate::wire::Format::Binary).recv_buffer;
        for (mode, peer_window, recv_buffer, more) in [
            (Mode::SelectiveRepeat, u16::MAX, ours, 63),
            (Mode::GoBackN, u16::MAX, ours, 0),
            // 8 KiB advertised: 81 segments of 100 bytes from the hole.
            (Mode::SelectiveRepeat, 8, ours, 81 - 64),
            // 64 MiB advertised, ours 8 KiB: the same 81.
            (Mode::SelectiveRepeat, u16::MAX, 8_192, 81 - 64),
        ] {
            let t0 = Instant::now();
            let mut s = Sender::new(&Config {
                mode,
                cc: CcKind::None,
                mss: MSS,
                window: 64,
                recv_buffer,
                ..Config::new(crate::wire::Format::Binary)
            });
            let next = fill(&mut s, t0, Seq(0));
            assert_eq!(next, Seq(64 * MSS as u32));
            let mut a = ack(Seq(0));
            a.window = peer_window;
            a.sack.push(Seq(MSS as u32), next);
            s.on_ack(t0, &a, next, 100);
            let after = fill(&mut s, t0, next);
            assert_eq!(
                after.since(next) as usize / MSS,
                more,
                "{mode:?}, peer window {peer_window} KiB, ours {recv_buffer} B"
            );
            assert!(s.flight_segs <= 64);
        }
    }

    /// An older ACK the network held back does not shrink the window.
    #[test]
    fn a_stale_ack_does_not_set_the_peer_window() {
        let t0 = Instant::now();
        let mut s = sender(Mode::SelectiveRepeat);
        let next = fill(&mut s, t0, Seq(0));
        s.on_ack(t0, &ack(next), next, 100);
        let before = s.peer_window;
        let mut old = ack(Seq(0));
        old.window = 0;
        s.send_new(t0, Segment::data(next, Bytes::from(vec![0; MSS])));
        s.on_ack(t0, &old, next.plus(MSS), 100);
        assert_eq!(s.peer_window, before);
    }

    #[test]
    fn an_ack_of_numbers_never_sent_is_ignored() {
        let t0 = Instant::now();
        let mut s = sender(Mode::SelectiveRepeat);
        let next = fill(&mut s, t0, Seq(0));
        s.on_ack(t0, &ack(next.plus(1)), next, 100);
        assert!(!s.is_empty());
        assert_eq!(s.in_flight, MSS);
    }
}
