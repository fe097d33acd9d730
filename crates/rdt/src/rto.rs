//! The retransmission timeout (spec "Modes": fixed, or adaptive by RFC 6298).
//!
//! Adaptive, RFC 6298 §2: the first sample R sets SRTT = R, RTTVAR = R/2;
//! each later one RTTVAR = ¾·RTTVAR + ¼·|SRTT − R|, then SRTT = ⅞·SRTT + ⅛·R;
//! RTO = SRTT + max(G, 4·RTTVAR), kept within [min, max]. §5.5: each timeout
//! doubles the RTO (up to max) until a new sample comes. Karn's rule (§3) is
//! the caller's: no sample from a segment that was sent more than once.
//! Fixed: the configured timeout, never backed off (the seed's).

use std::time::Duration;

use crate::mode::RtoChoice;

#[derive(Debug, Clone)]
pub struct Rto {
    choice: RtoChoice,
    srtt: Option<Duration>,
    rttvar: Duration,
    current: Duration,
    min: Duration,
    max: Duration,
    /// Clock granularity G.
    granularity: Duration,
}

impl Rto {
    /// `initial` is the RTO before any sample (and the fixed one).
    pub fn new(choice: RtoChoice, initial: Duration, min: Duration, max: Duration) -> Rto {
        Rto {
            choice,
            srtt: None,
            rttvar: Duration::ZERO,
            current: initial,
            min,
            max: max.max(min),
            granularity: Duration::from_micros(1),
        }
    }

    /// The same with clock granularity `g` (RFC 6298's G).
    #[must_use]
    pub fn with_granularity(mut self, g: Duration) -> Rto {
        self.granularity = g;
        self
    }

    /// The timeout to arm now.
    pub fn current(&self) -> Duration {
        self.current
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// A round-trip measurement of a segment sent once.
    pub fn sample(&mut self, r: Duration) {
        if self.choice == RtoChoice::Fixed {
            // Kept for --debug and the congestion controller, not for the timeout.
            self.srtt = Some(self.srtt.map_or(r, |s| (s * 7 + r) / 8));
            return;
        }
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.current = (srtt + self.granularity.max(self.rttvar * 4)).clamp(self.min, self.max);
    }

    /// A retransmission timer expired: back off (adaptive only).
    pub fn back_off(&mut self) {
        if self.choice == RtoChoice::Adaptive {
            self.current = (self.current * 2).min(self.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Worked by hand from RFC 6298 §2 with G = 100 ms, min 1 s, max 60 s.
    #[test]
    fn follows_rfc_6298_step_by_step() {
        let mut rto = Rto::new(RtoChoice::Adaptive, ms(1_000), ms(1_000), ms(60_000))
            .with_granularity(ms(100));
        assert_eq!(
            rto.current(),
            ms(1_000),
            "before any sample: the initial RTO"
        );
        // R = 500: SRTT 500, RTTVAR 250, RTO = 500 + max(100, 1000) = 1500.
        rto.sample(ms(500));
        assert_eq!((rto.srtt(), rto.rttvar()), (Some(ms(500)), ms(250)));
        assert_eq!(rto.current(), ms(1_500));
        // R = 300: RTTVAR = 3/4·250 + 1/4·200 = 237.5, SRTT = 7/8·500 + 1/8·300
        // = 475, RTO = 475 + 950 = 1425.
        rto.sample(ms(300));
        assert_eq!(rto.rttvar(), Duration::from_micros(237_500));
        assert_eq!(rto.srtt(), Some(ms(475)));
        assert_eq!(rto.current(), ms(1_425));
        // R = 475 (no change in SRTT): RTTVAR = 3/4·237.5 = 178.125,
        // RTO = 475 + 712.5 = 1187.5.
        rto.sample(ms(475));
        assert_eq!(rto.rttvar(), Duration::from_micros(178_125));
        assert_eq!(rto.current(), Duration::from_micros(1_187_500));
        // A small steady RTT: the floor of 1 s holds.
        for _ in 0..50 {
            rto.sample(ms(10));
        }
        assert_eq!(rto.current(), ms(1_000));
    }

    #[test]
    fn backs_off_by_doubling_up_to_the_cap_and_a_sample_resets_it() {
        let mut rto = Rto::new(RtoChoice::Adaptive, ms(200), ms(10), ms(1_000));
        for expected in [400, 800, 1_000, 1_000] {
            rto.back_off();
            assert_eq!(rto.current(), ms(expected));
        }
        rto.sample(ms(20));
        // 20 + 4·10 = 60.
        assert_eq!(rto.current(), ms(60));
    }

    #[test]
    fn the_fixed_timeout_never_moves() {
        let mut rto = Rto::new(RtoChoice::Fixed, ms(200), ms(10), ms(1_000));
        rto.sample(ms(5));
        rto.back_off();
        assert_eq!(rto.current(), ms(200));
        assert_eq!(rto.srtt(), Some(ms(5)));
    }
}
