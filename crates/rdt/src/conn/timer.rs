//! The connection's one timer table (DESIGN habit 4): every deadline the core
//! keeps, by kind, so `poll_timeout` is a minimum over a fixed array.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The segment in flight is resent when this passes.
    Retransmit,
    /// TIME-WAIT's next final ACK, or the end of FIN-WAIT-2's wait.
    Linger,
    /// Nothing heard from the peer for `idle_limit`.
    Idle,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::Retransmit, Timer::Linger, Timer::Idle];

    pub fn name(self) -> &'static str {
        match self {
            Timer::Retransmit => "retransmit",
            Timer::Linger => "linger",
            Timer::Idle => "idle",
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Timers {
    deadlines: [Option<Instant>; 3],
}

impl Timers {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; 3];
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Removes and returns one timer whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .find(|&t| self.deadlines[t as usize].is_some_and(|at| at <= now))?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn next_is_the_earliest_and_expired_ones_pop_once() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Idle, t0 + Duration::from_secs(30));
        timers.set(Timer::Retransmit, t0 + Duration::from_millis(200));
        assert_eq!(timers.next(), Some(t0 + Duration::from_millis(200)));
        assert_eq!(timers.pop_expired(t0), None);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(timers.pop_expired(later), Some(Timer::Retransmit));
        assert_eq!(timers.pop_expired(later), None);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(30)));
    }
}
