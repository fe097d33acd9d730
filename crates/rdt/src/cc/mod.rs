//! Congestion control for the windowed modes (spec "Modes", issue #15),
//! sans-IO like the rest of the core: the sender tells the controller what
//! happened (bytes newly acknowledged, a loss found by duplicate ACKs or
//! SACKs, a timeout, the end of recovery) and reads back `cwnd` in bytes.
//!
//! - **Tahoe**: cwnd starts at 1 MSS; slow start adds the bytes acknowledged
//!   (doubling each round) up to ssthresh; congestion avoidance adds 1 MSS per
//!   cwnd of bytes acknowledged (appropriate byte counting, RFC 3465, so the
//!   count is exact for any MSS); any loss → ssthresh = max(cwnd/2, 2 MSS),
//!   cwnd = 1 MSS, slow start again.
//! - **Reno**: Tahoe, but a loss found by duplicate ACKs (or SACKs) enters fast
//!   recovery (RFC 5681 §3.2): ssthresh = max(cwnd/2, 2 MSS), cwnd =
//!   ssthresh + 3 MSS, +1 MSS per further duplicate ACK, cwnd = ssthresh when
//!   the recovery ends; a timeout is Tahoe's.
//! - **CUBIC** (RFC 9438, `cubic.rs`): Reno's recovery with β = 0.7 and the
//!   cubic growth function in congestion avoidance, never slower than Reno's.
//! - **none**: cwnd is unlimited; the window and the peer's limit alone apply.

mod cubic;

use std::fmt;
use std::time::{Duration, Instant};

use crate::mode::CcKind;
use cubic::Cubic;

/// Where the controller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    SlowStart,
    Avoidance,
    Recovery,
    /// `--cc none`.
    Unlimited,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::SlowStart => "slow start",
            Phase::Avoidance => "congestion avoidance",
            Phase::Recovery => "fast recovery",
            Phase::Unlimited => "no congestion control",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The controller's figures after an event, for `--debug` and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcState {
    pub event: &'static str,
    pub cwnd: usize,
    pub ssthresh: usize,
    pub phase: Phase,
}

impl fmt::Display for CcState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ss = if self.ssthresh == usize::MAX {
            "∞".to_string()
        } else {
            self.ssthresh.to_string()
        };
        write!(
            f,
            "{}: cwnd {} ssthresh {} ({})",
            self.event, self.cwnd, ss, self.phase
        )
    }
}

/// One connection's congestion controller.
#[derive(Debug, Clone)]
pub struct Controller {
    kind: CcKind,
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    phase: Phase,
    /// Bytes acknowledged in congestion avoidance not yet worth a whole MSS.
    ca_acked: usize,
    cubic: Cubic,
}

/// cwnd never exceeds this (the sequence space's half is far above it).
const CWND_CAP: usize = 1 << 30;

impl Controller {
    pub fn new(kind: CcKind, mss: usize) -> Controller {
        let mss = mss.max(1);
        let (cwnd, phase) = match kind {
            CcKind::None => (CWND_CAP, Phase::Unlimited),
            _ => (mss, Phase::SlowStart),
        };
        Controller {
            kind,
            mss,
            cwnd,
            ssthresh: usize::MAX,
            phase,
            ca_acked: 0,
            cubic: Cubic::default(),
        }
    }

    pub fn kind(&self) -> CcKind {
        self.kind
    }

    /// The congestion window in bytes.
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }

    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn in_recovery(&self) -> bool {
        self.phase == Phase::Recovery
    }

    fn state(&self, event: &'static str) -> CcState {
        CcState {
            event,
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            phase: self.phase,
        }
    }

    /// `acked` bytes newly acknowledged (cumulatively or selectively), outside
    /// recovery. Returns the new state when the phase changed.
    pub fn on_ack(
        &mut self,
        now: Instant,
        acked: usize,
        srtt: Option<Duration>,
    ) -> Option<CcState> {
        match self.phase {
            Phase::Unlimited | Phase::Recovery => None,
            Phase::SlowStart => {
                self.cwnd = (self.cwnd + acked).min(CWND_CAP);
                if self.cwnd >= self.ssthresh {
                    // What passed ssthresh counts toward avoidance's first MSS.
                    self.ca_acked = self.cwnd - self.ssthresh;
                    self.cwnd = self.ssthresh;
                    self.phase = Phase::Avoidance;
                    return Some(self.state("ssthresh reached"));
                }
                None
            }
            Phase::Avoidance => {
                if self.kind == CcKind::Cubic {
                    self.cwnd = self
                        .cubic
                        .grow(now, self.cwnd, self.mss, acked, srtt)
                        .min(CWND_CAP);
                    return None;
                }
                self.ca_acked += acked;
                while self.ca_acked >= self.cwnd {
                    self.ca_acked -= self.cwnd;
                    self.cwnd = (self.cwnd + self.mss).min(CWND_CAP);
                }
                None
            }
        }
    }

    /// A further duplicate ACK during Reno's fast recovery: one more segment left the network.
    pub fn on_dup_ack(&mut self) {
        if self.phase == Phase::Recovery {
            self.cwnd = (self.cwnd + self.mss).min(CWND_CAP);
        }
    }

    /// A loss found by duplicate ACKs or SACKs (fast retransmit).
    pub fn on_loss(&mut self, now: Instant) -> Option<CcState> {
        match self.kind {
            CcKind::None => None,
            CcKind::Tahoe => {
                self.collapse();
                Some(self.state("loss detected"))
            }
            CcKind::Reno | CcKind::Cubic => {
                self.ssthresh = self.reduced();
                if self.kind == CcKind::Cubic {
                    self.cubic.on_loss(now, self.cwnd, self.mss);
                }
                self.cwnd = self.ssthresh + 3 * self.mss;
                self.ca_acked = 0;
                self.phase = Phase::Recovery;
                Some(self.state("loss detected: fast recovery"))
            }
        }
    }

    /// Every segment outstanding at the loss is acknowledged: recovery ends.
    pub fn on_recovery_end(&mut self) -> Option<CcState> {
        if self.phase != Phase::Recovery {
            return None;
        }
        self.cwnd = self.ssthresh;
        self.phase = Phase::Avoidance;
        Some(self.state("recovery over"))
    }

    /// The retransmission timer expired.
    pub fn on_timeout(&mut self, now: Instant) -> Option<CcState> {
        if self.kind == CcKind::None {
            return None;
        }
        if self.kind == CcKind::Cubic {
            self.cubic.on_loss(now, self.cwnd, self.mss);
        }
        self.collapse();
        Some(self.state("timeout"))
    }

    /// ssthresh halved (CUBIC: × 0.7), never under 2 MSS.
    fn reduced(&self) -> usize {
        let target = if self.kind == CcKind::Cubic {
            self.cwnd / 10 * 7
        } else {
            self.cwnd / 2
        };
        target.max(2 * self.mss)
    }

    fn collapse(&mut self) {
        self.ssthresh = self.reduced();
        self.cwnd = self.mss;
        self.ca_acked = 0;
        self.phase = Phase::SlowStart;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One round: a whole cwnd of segments acknowledged one by one.
    fn round(cc: &mut Controller, mss: usize, now: Instant) {
        for _ in 0..cc.cwnd() / mss {
            cc.on_ack(now, mss, None);
        }
    }

    /// The walk-through, for several MSS values: 3 rounds of ACKs →
    /// 8 MSS; a timeout → 1 MSS, ssthresh 4 MSS; 3 more rounds (two of slow
    /// start, one of avoidance) → 5 MSS.
    #[test]
    fn tahoe_step_by_step() {
        let now = Instant::now();
        for mss in [1, 16, 536, 1_400, 8_192, 65_487] {
            let mut cc = Controller::new(CcKind::Tahoe, mss);
            assert_eq!(cc.cwnd(), mss, "starts at 1 MSS");
            assert_eq!(cc.ssthresh(), usize::MAX);
            assert_eq!(cc.phase(), Phase::SlowStart);
            let mut seen = Vec::new();
            for _ in 0..3 {
                round(&mut cc, mss, now);
                seen.push(cc.cwnd() / mss);
            }
            assert_eq!(seen, [2, 4, 8], "mss {mss}");
            let s = cc.on_timeout(now).unwrap();
            assert_eq!((s.cwnd, s.ssthresh), (mss, 4 * mss), "mss {mss}");
            assert_eq!(s.phase, Phase::SlowStart);
            let mut seen = Vec::new();
            for _ in 0..3 {
                round(&mut cc, mss, now);
                seen.push((cc.cwnd() / mss, cc.phase()));
            }
            assert_eq!(
                seen,
                [
                    (2, Phase::SlowStart),
                    (4, Phase::Avoidance),
                    (5, Phase::Avoidance)
                ],
                "mss {mss}"
            );
            assert_eq!(cc.cwnd() % mss, 0, "whole segments only");
        }
    }

    #[test]
    fn tahoe_treats_duplicate_acks_as_a_timeout() {
        let now = Instant::now();
        let mut cc = Controller::new(CcKind::Tahoe, 100);
        for _ in 0..4 {
            round(&mut cc, 100, now);
        }
        assert_eq!(cc.cwnd(), 1_600);
        let s = cc.on_loss(now).unwrap();
        assert_eq!((s.cwnd, s.ssthresh, s.phase), (100, 800, Phase::SlowStart));
    }

    #[test]
    fn reno_recovers_fast_and_deflates() {
        let now = Instant::now();
        let mut cc = Controller::new(CcKind::Reno, 100);
        for _ in 0..4 {
            round(&mut cc, 100, now);
        }
        let s = cc.on_loss(now).unwrap();
        assert_eq!((s.cwnd, s.ssthresh, s.phase), (1_100, 800, Phase::Recovery));
        cc.on_dup_ack();
        assert_eq!(cc.cwnd(), 1_200);
        assert_eq!(cc.on_ack(now, 100, None), None, "no growth in recovery");
        let s = cc.on_recovery_end().unwrap();
        assert_eq!((s.cwnd, s.phase), (800, Phase::Avoidance));
        // Avoidance: 8 ACKs of 1 MSS add one MSS.
        round(&mut cc, 100, now);
        assert_eq!(cc.cwnd(), 900);
        let s = cc.on_timeout(now).unwrap();
        assert_eq!((s.cwnd, s.ssthresh), (100, 450));
    }

    #[test]
    fn ssthresh_never_goes_under_two_segments() {
        let mut cc = Controller::new(CcKind::Reno, 1_000);
        let s = cc.on_timeout(Instant::now()).unwrap();
        assert_eq!(s.ssthresh, 2_000);
    }

    #[test]
    fn no_controller_never_limits() {
        let now = Instant::now();
        let mut cc = Controller::new(CcKind::None, 1_000);
        assert_eq!(cc.on_timeout(now), None);
        assert_eq!(cc.on_loss(now), None);
        assert!(cc.cwnd() >= 1 << 30);
    }

    #[test]
    fn cubic_backs_off_by_three_tenths_and_grows_back_past_its_old_peak() {
        let t0 = Instant::now();
        let mss = 1_000;
        let mut cc = Controller::new(CcKind::Cubic, mss);
        while cc.cwnd() < 100 * mss {
            round(&mut cc, mss, t0);
        }
        let before = cc.cwnd();
        let s = cc.on_loss(t0).unwrap();
        assert_eq!(s.ssthresh, before / 10 * 7);
        cc.on_recovery_end();
        assert_eq!(cc.cwnd(), before / 10 * 7);
        // Ten simulated seconds of rounds 10 ms apart.
        let mut t = t0;
        for _ in 0..1_000 {
            t += Duration::from_millis(10);
            round(&mut cc, mss, t);
        }
        assert!(cc.cwnd() > before, "{} <= {before}", cc.cwnd());
    }
}
