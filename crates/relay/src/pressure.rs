//! Backpressure on senders (spec: relay.md, "Liveness"; hostile input: a
//! sender pacing itself just under the cut-off got clients that read steadily
//! cut off as too slow).
//!
//! Every client's outbox has a [`Level`]: it rises when the outbox passes half
//! its capacity and falls again below a quarter (so it does not flap). While
//! any outbox is high, no chat is sequenced: each sender's connection waits
//! before taking its next line, so its TCP window closes and the sender slows
//! to what the slowest reading client takes. A client that stops reading does
//! not hold everyone for ever: its writes are bounded in time
//! ([`netkit::StallGuard`]), it is cut, and its level falls with it.
//! The outbox-full cut stays as the last resort (joins and leaves are not held
//! back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How many outboxes are high, server-wide.
#[derive(Debug, Default)]
pub struct Pressure {
    high: AtomicUsize,
    calm: Notify,
}

impl Pressure {
    /// Outboxes above their high mark now.
    pub fn high(&self) -> usize {
        self.high.load(Ordering::Acquire)
    }

    /// Waits until no outbox is high. Returns how long it waited.
    pub async fn wait_calm(&self) -> Duration {
        let start = tokio::time::Instant::now();
        loop {
            let calm = self.calm.notified();
            tokio::pin!(calm);
            // Register before checking, so a fall in between is not missed.
            calm.as_mut().enable();
            if self.high() == 0 {
                return start.elapsed();
            }
            calm.await;
        }
    }
}

/// One outbox's level, shared by the fan-out (which raises it) and the
/// client's writer (which lowers it). Dropping the last handle lowers it.
#[derive(Debug)]
pub struct Level {
    high: AtomicBool,
    capacity: usize,
    pressure: Arc<Pressure>,
}

impl Level {
    /// The level of an outbox of `capacity` events.
    pub fn new(capacity: usize, pressure: Arc<Pressure>) -> Self {
        Self {
            high: AtomicBool::new(false),
            capacity,
            pressure,
        }
    }

    /// The outbox now holds `queued` events: rise past half the capacity.
    pub fn queued(&self, queued: usize) {
        if queued > self.capacity / 2 && !self.high.swap(true, Ordering::AcqRel) {
            self.pressure.high.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The writer drained the outbox to `queued` events: fall below a quarter.
    pub fn drained(&self, queued: usize) {
        if queued <= self.capacity / 4 {
            self.lower();
        }
    }

    fn lower(&self) {
        if self.high.swap(false, Ordering::AcqRel) {
            self.pressure.high.fetch_sub(1, Ordering::AcqRel);
            self.pressure.calm.notify_waiters();
        }
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        self.lower();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn senders_wait_while_an_outbox_is_high_and_go_on_when_it_drains() {
        let p = Arc::new(Pressure::default());
        let level = Arc::new(Level::new(100, Arc::clone(&p)));
        level.queued(50);
        assert_eq!(p.high(), 0, "half is not above half");
        level.queued(51);
        level.queued(90);
        assert_eq!(p.high(), 1, "counted once");
        let waiter = tokio::spawn({
            let p = Arc::clone(&p);
            async move { p.wait_calm().await }
        });
        tokio::task::yield_now().await;
        level.drained(40);
        assert_eq!(p.high(), 1, "above a quarter it stays high");
        assert!(!waiter.is_finished());
        level.drained(25);
        assert_eq!(p.high(), 0);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_client_that_goes_takes_its_level_with_it() {
        let p = Arc::new(Pressure::default());
        let level = Level::new(10, Arc::clone(&p));
        level.queued(9);
        assert_eq!(p.high(), 1);
        drop(level);
        assert_eq!(p.high(), 0);
        // Calm at once: no wait for a notification.
        tokio::time::timeout(Duration::from_secs(5), p.wait_calm())
            .await
            .unwrap();
    }
}
