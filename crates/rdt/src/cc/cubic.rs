//! CUBIC's window growth in congestion avoidance (RFC 9438 §4): after a loss
//! at window W_max, the window follows W(t) = C·(t − K)³ + W_max with
//! K = ∛(W_max·(1 − β)/C), C = 0.4, β = 0.7 — fast while far below W_max,
//! flat near it, probing beyond it — and never grows slower than Reno would
//! (§4.3, the Reno-friendly estimate W_est). Fast convergence (§4.7): a loss
//! below the previous W_max releases bandwidth by remembering a lower peak.

use std::time::{Duration, Instant};

const C: f64 = 0.4;
const BETA: f64 = 0.7;

#[derive(Debug, Clone, Default)]
pub(super) struct Cubic {
    /// Segments at the last loss (0 before any).
    w_max: f64,
    /// When this avoidance epoch started, and its K and origin.
    epoch: Option<(Instant, f64, f64)>,
    /// The Reno-friendly estimate, in segments.
    w_est: f64,
    /// The window in segments with its fraction (the byte window rounds it).
    w: f64,
}

impl Cubic {
    pub(super) fn on_loss(&mut self, _now: Instant, cwnd: usize, mss: usize) {
        let w = cwnd as f64 / mss as f64;
        self.w_max = if w < self.w_max {
            w * (1.0 + BETA) / 2.0
        } else {
            w
        };
        self.epoch = None;
    }

    /// The window after `acked` bytes were acknowledged at `now`.
    pub(super) fn grow(
        &mut self,
        now: Instant,
        cwnd: usize,
        mss: usize,
        acked: usize,
        srtt: Option<Duration>,
    ) -> usize {
        let mssf = mss as f64;
        let current = cwnd as f64 / mssf;
        if (self.w - current).abs() >= 1.0 {
            // The controller moved the window (a loss or recovery's end).
            self.w = current;
        }
        let (start, k, origin) = *self.epoch.get_or_insert_with(|| {
            self.w_est = current;
            if current < self.w_max {
                (now, ((self.w_max - current) / C).cbrt(), self.w_max)
            } else {
                (now, 0.0, current)
            }
        });
        let rtt = srtt.map_or(0.0, |d| d.as_secs_f64());
        let t = now.saturating_duration_since(start).as_secs_f64() + rtt;
        let target = (C * (t - k).powi(3) + origin).clamp(self.w, 1.5 * self.w);
        let segments = acked as f64 / mssf;
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * segments / self.w.max(1.0);
        let cubic_w = self.w + (target - self.w) / self.w.max(1.0) * segments;
        self.w = cubic_w.max(self.w_est).max(self.w);
        (self.w * mssf) as usize
    }
}
