//! The byte arithmetic of the TCP proxy, sans-IO (spec: impair.md, TCP).
//!
//! For one direction of one connection:
//! - [`Shaper::plan`] says how many bytes of a chunk may be written before a
//!   byte-count rule (stall, close, reset after N bytes) fires, so the receiver gets
//!   *exactly* N bytes before the rule takes effect;
//! - [`pieces`] chops a write into pieces of at most K bytes;
//! - [`Pacer`] spaces writes to a bandwidth limit;
//! - [`Latency`] stamps each chunk with the time it may be delivered (latency ±
//!   jitter, seeded, never reordering the stream).

use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::units::Trigger;

/// The rules of one direction of a TCP proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpRules {
    /// Write at most this many bytes per write call.
    pub chop: Option<usize>,
    /// Pause between the pieces of a chopped write.
    pub chop_pause: Duration,
    /// Fixed delay of every byte.
    pub latency: Duration,
    /// Random extra delay per chunk, uniform in `-jitter..=jitter`.
    pub jitter: Duration,
    /// Bandwidth limit in bytes per second.
    pub bandwidth: Option<u64>,
    /// Gather what arrives within this window into one write.
    pub coalesce: Option<Duration>,
    /// Stop forwarding after N bytes or T.
    pub stall: Option<Trigger>,
    /// How long a stall lasts (`None`: until the connection ends).
    pub stall_for: Option<Duration>,
    /// Close both sides (FIN) after N bytes or T.
    pub close: Option<Trigger>,
    /// Reset both sides (RST) after N bytes or T.
    pub reset: Option<Trigger>,
}

impl TcpRules {
    /// Writes of at most `k` bytes, `pause` apart (to expose short-read bugs).
    pub fn chopped(k: usize, pause: Duration) -> Self {
        Self {
            chop: Some(k),
            chop_pause: pause,
            ..Self::default()
        }
    }

    /// What arrives within `window` of the first chunk goes out in one write.
    pub fn coalesced(window: Duration) -> Self {
        Self {
            coalesce: Some(window),
            ..Self::default()
        }
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop forwarding this direction for a while (`None`: for good).
    Stall(Option<Duration>),
    /// Close the connection gracefully, both sides.
    Close,
    /// Reset the connection, both sides.
    Reset,
}

impl Action {
    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stall(_) => "stall",
            Action::Close => "close",
            Action::Reset => "reset",
        }
    }
}

/// Byte-count bookkeeping of one direction.
#[derive(Debug)]
pub struct Shaper {
    /// Pending byte triggers, sorted by threshold; reset before close before stall
    /// at equal thresholds.
    triggers: Vec<(u64, Action)>,
    forwarded: u64,
}

impl Shaper {
    /// The shaper for these rules.
    pub fn new(rules: &TcpRules) -> Self {
        let mut triggers = Vec::new();
        if let Some(Trigger::Bytes(n)) = rules.reset {
            triggers.push((n, Action::Reset));
        }
        if let Some(Trigger::Bytes(n)) = rules.close {
            triggers.push((n, Action::Close));
        }
        if let Some(Trigger::Bytes(n)) = rules.stall {
            triggers.push((n, Action::Stall(rules.stall_for)));
        }
        // Stable: equal thresholds keep the priority order above.
        triggers.sort_by_key(|(n, _)| *n);
        Self {
            triggers,
            forwarded: 0,
        }
    }

    /// Bytes forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// Of a chunk of `len` bytes, how many to write now, and the action to take
    /// once they are written (if a trigger's threshold is reached).
    pub fn plan(&self, len: usize) -> (usize, Option<Action>) {
        match self.triggers.first() {
            Some(&(at, action)) if at <= self.forwarded + len as u64 => {
                ((at.saturating_sub(self.forwarded)) as usize, Some(action))
            }
            _ => (len, None),
        }
    }

    /// Records `n` bytes written; if `fired`, the first trigger is used up.
    pub fn advance(&mut self, n: usize, fired: bool) {
        self.forwarded += n as u64;
        if fired && !self.triggers.is_empty() {
            self.triggers.remove(0);
        }
    }
}

/// Sizes of the pieces a write of `len` bytes is chopped into (at most `max`).
pub fn pieces(len: usize, max: Option<usize>) -> impl Iterator<Item = usize> {
    let max = max.unwrap_or(usize::MAX).max(1);
    let mut left = len;
    std::iter::from_fn(move || {
        (left > 0).then(|| {
            let n = left.min(max);
            left -= n;
            n
        })
    })
}

/// Spaces writes so that the average rate stays at `rate` bytes per second.
#[derive(Debug)]
pub struct Pacer {
    rate: u64,
    next_free: Option<Instant>,
}

impl Pacer {
    /// A pacer for `rate` bytes per second (`rate` ≥ 1).
    pub fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            next_free: None,
        }
    }

    /// Largest piece worth sending at once: 10 ms worth of bytes.
    pub fn piece(&self) -> usize {
        (self.rate / 100).max(1) as usize
    }

    /// Reserves the link for `n` bytes; returns when their write may start.
    pub fn reserve(&mut self, now: Instant, n: usize) -> Instant {
        let start = self.next_free.map_or(now, |t| t.max(now));
        self.next_free = Some(start + Duration::from_secs_f64(n as f64 / self.rate as f64));
        start
    }
}

/// Delivery times for chunks: arrival + latency ± jitter, never earlier than the
/// previous chunk's (a stream is not reordered).
#[derive(Debug)]
pub struct Latency {
    base: Duration,
    jitter: Duration,
    rng: ChaCha8Rng,
    last: Option<Instant>,
}

impl Latency {
    /// Latency and jitter from the rules; `rng` draws the jitter.
    pub fn new(rules: &TcpRules, rng: ChaCha8Rng) -> Self {
        Self {
            base: rules.latency,
            jitter: rules.jitter,
            rng,
            last: None,
        }
    }

    /// When a chunk that arrived at `arrived` may be delivered.
    pub fn due(&mut self, arrived: Instant) -> Instant {
        let u: f64 = self.rng.random_range(-1.0..=1.0);
        let d = (self.base.as_secs_f64() + self.jitter.as_secs_f64() * u).max(0.0);
        let due = (arrived + Duration::from_secs_f64(d)).max(self.last.unwrap_or(arrived));
        self.last = Some(due);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn plan_stops_exactly_at_the_threshold() {
        let rules = TcpRules {
            reset: Some(Trigger::Bytes(100)),
            ..TcpRules::default()
        };
        let mut s = Shaper::new(&rules);
        assert_eq!(s.plan(60), (60, None));
        s.advance(60, false);
        assert_eq!(s.plan(60), (40, Some(Action::Reset)));
        s.advance(40, true);
        assert_eq!(s.forwarded(), 100);
        assert_eq!(s.plan(60), (60, None));
    }

    #[test]
    fn triggers_fire_in_threshold_order_with_reset_first_on_ties() {
        let rules = TcpRules {
            stall: Some(Trigger::Bytes(10)),
            stall_for: Some(Duration::from_millis(5)),
            close: Some(Trigger::Bytes(20)),
            reset: Some(Trigger::Bytes(20)),
            ..TcpRules::default()
        };
        let mut s = Shaper::new(&rules);
        assert_eq!(
            s.plan(100),
            (10, Some(Action::Stall(Some(Duration::from_millis(5)))))
        );
        s.advance(10, true);
        assert_eq!(s.plan(90), (10, Some(Action::Reset)));
    }

    #[test]
    fn time_triggers_are_not_byte_triggers() {
        let rules = TcpRules {
            close: Some(Trigger::After(Duration::from_secs(1))),
            ..TcpRules::default()
        };
        assert_eq!(Shaper::new(&rules).plan(5000), (5000, None));
    }

    #[test]
    fn zero_byte_trigger_fires_before_any_byte() {
        let rules = TcpRules {
            close: Some(Trigger::Bytes(0)),
            ..TcpRules::default()
        };
        assert_eq!(Shaper::new(&rules).plan(5), (0, Some(Action::Close)));
    }

    #[test]
    fn chopping() {
        assert_eq!(pieces(5, Some(1)).collect::<Vec<_>>(), vec![1; 5]);
        assert_eq!(pieces(10, Some(4)).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert_eq!(pieces(10, None).collect::<Vec<_>>(), vec![10]);
        assert_eq!(pieces(0, Some(3)).count(), 0);
        assert_eq!(pieces(3, Some(0)).collect::<Vec<_>>(), vec![1; 3]);
    }

    #[test]
    fn pacer_spaces_writes() {
        let t = Instant::now();
        let mut p = Pacer::new(1000);
        assert_eq!(p.piece(), 10);
        assert_eq!(p.reserve(t, 500), t);
        assert_eq!(p.reserve(t, 500), t + Duration::from_millis(500));
        assert_eq!(
            p.reserve(t + Duration::from_secs(5), 1),
            t + Duration::from_secs(5)
        );
    }

    #[test]
    fn latency_is_monotone_and_within_jitter() {
        let rules = TcpRules {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..TcpRules::default()
        };
        let mut l = Latency::new(&rules, ChaCha8Rng::seed_from_u64(1));
        let t = Instant::now();
        let mut last = t;
        for i in 0..1000 {
            let arrived = t + Duration::from_micros(i * 100);
            let due = l.due(arrived);
            assert!(due >= last, "stream order kept");
            assert!(due <= arrived + Duration::from_millis(30));
            last = due;
        }
        // Same seed, same times.
        let mut a = Latency::new(&rules, ChaCha8Rng::seed_from_u64(9));
        let mut b = Latency::new(&rules, ChaCha8Rng::seed_from_u64(9));
        assert!((0..100).all(|_| a.due(t) == b.due(t)));
    }
}
