//! The UDP impairment engine for one direction of one client flow: sans-IO, no
//! socket, no clock, every random choice from a seeded ChaCha generator
//! (DESIGN habits 3 and 9). The proxy (`udp.rs`) feeds it datagrams with the time
//! they arrived and sends what it emits when it is due.
//!
//! Per datagram, in this order (spec: impair.md, UDP):
//! 1. drop it if it is the Nth of this direction (`drop_nth`, 1-based);
//! 2. drop it if it contains the pattern (`drop_match`, optionally only the first
//!    `drop_match_limit` matches);
//! 3. drop it with probability `loss`;
//! 4. flip one byte with probability `corrupt`;
//! 5. send two copies with probability `duplicate`;
//! 6. delay it by `delay` ± `jitter` (uniform, never negative), then pace it to
//!    `rate` bytes per second;
//! 7. with probability `reorder`, hold it back and send it right after the next
//!    datagram of this direction (or after `reorder_timeout` if none comes).
//!
//! The same draws are made for every datagram whichever rules are on, so the same
//! seed and the same traffic give the same decisions, and turning one rule on does
//! not change the choices of the others.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::stats::{UdpCounters, bump};
use crate::units::Probability;

/// Datagrams one direction may have waiting at once before new ones are
/// dropped, unless the rules say otherwise (`queue`).
pub const QUEUE_LIMIT: usize = 4096;

/// The rules of one direction of a UDP proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpRules {
    /// Probability of dropping a datagram.
    pub loss: Probability,
    /// Probability of sending a datagram twice.
    pub duplicate: Probability,
    /// Probability of flipping one byte of a datagram.
    pub corrupt: Probability,
    /// Probability of holding a datagram back behind its successor.
    pub reorder: Probability,
    /// How long a held datagram waits for a successor.
    pub reorder_timeout: Duration,
    /// Fixed delay added to every datagram.
    pub delay: Duration,
    /// Random extra delay: uniform in `-jitter..=jitter`, the total never below 0.
    pub jitter: Duration,
    /// Rate limit in bytes per second.
    pub rate: Option<u64>,
    /// 1-based indices of datagrams to drop.
    pub drop_nth: Vec<u64>,
    /// Drop datagrams containing these bytes.
    pub drop_match: Option<Vec<u8>>,
    /// Drop only this many matching datagrams.
    pub drop_match_limit: Option<u64>,
    /// Datagrams waiting at once (delayed, paced or held) before new ones are
    /// dropped at the tail and counted (`dropped_queue`).
    pub queue: usize,
}

impl Default for UdpRules {
    fn default() -> Self {
        Self {
            loss: Probability::ZERO,
            duplicate: Probability::ZERO,
            corrupt: Probability::ZERO,
            reorder: Probability::ZERO,
            reorder_timeout: Duration::from_millis(50),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate: None,
            drop_nth: Vec::new(),
            drop_match: None,
            drop_match_limit: None,
            queue: QUEUE_LIMIT,
        }
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// It was the Nth.
    Nth,
    /// It matched the pattern.
    Match,
    /// The queue was full.
    Queue,
}

impl DropReason {
    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Loss => "loss",
            DropReason::Nth => "nth",
            DropReason::Match => "match",
            DropReason::Queue => "queue",
        }
    }
}

/// What the engine decided for one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not sent.
    Drop(DropReason),
    /// Sent.
    Deliver {
        /// 1, or 2 when duplicated.
        copies: u8,
        /// Delay before sending (delay, jitter and rate together).
        delay: Duration,
        /// Offset of the flipped byte, if corrupted.
        corrupted: Option<usize>,
        /// Held back to be sent after its successor.
        reordered: bool,
    },
}

/// One decision, with the datagram's index (1-based) in its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// 1-based index of the datagram in this direction.
    pub index: u64,
    /// Its length.
    pub len: usize,
    /// What happens to it.
    pub verdict: Verdict,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Drop(r) => write!(
                f,
                "n: {} | len: {} | verdict: drop | reason: {}",
                self.index,
                self.len,
                r.as_str()
            ),
            Verdict::Deliver {
                copies,
                delay,
                corrupted,
                reordered,
            } => {
                write!(
                    f,
                    "n: {} | len: {} | verdict: deliver | copies: {copies} | delay_us: {}",
                    self.index,
                    self.len,
                    delay.as_micros()
                )?;
                if let Some(at) = corrupted {
                    write!(f, " | corrupted_at: {at}")?;
                }
                if *reordered {
                    f.write_str(" | reordered: true")?;
                }
                Ok(())
            }
        }
    }
}

/// The random numbers drawn for every datagram, whatever the rules.
struct Draws {
    loss: f64,
    duplicate: f64,
    corrupt: f64,
    reorder: f64,
    jitter: f64,
    corrupt_at: u64,
    corrupt_mask: u8,
}

/// A datagram waiting to be sent, with what its owner attached to it.
#[derive(Debug)]
struct Queued<M> {
    due: Instant,
    seq: u64,
    data: Bytes,
    meta: M,
}

// Queue order: due time, then arrival; the attachment plays no part.
impl<M> PartialEq for Queued<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<M> Eq for Queued<M> {}
impl<M> PartialOrd for Queued<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Queued<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// A datagram held back for reordering.
#[derive(Debug)]
struct Held<M> {
    copies: Vec<Bytes>,
    meta: M,
    release_at: Instant,
}

/// One direction's engine. See the module docs. `M` is whatever the owner
/// attaches to each datagram and gets back with it (the link keeps checksum
/// offload details there); the proxy attaches nothing.
#[derive(Debug)]
pub struct DatagramEngine<M = ()> {
    rules: UdpRules,
    rng: ChaCha8Rng,
    counters: Arc<UdpCounters>,
    index: u64,
    matches: u64,
    seq: u64,
    next_free: Option<Instant>,
    queue: BinaryHeap<Reverse<Queued<M>>>,
    held: Option<Held<M>>,
}

impl DatagramEngine<()> {
    /// A datagram arrived at `now`: decide its fate and queue what is to be sent.
    pub fn on_datagram(&mut self, now: Instant, data: Bytes) -> Decision {
        self.on_datagram_with(now, data, ())
    }

    /// The next datagram due at or before `now`, in due order (ties: arrival order).
    pub fn poll_emit(&mut self, now: Instant) -> Option<Bytes> {
        self.poll_emit_with(now).map(|(data, ())| data)
    }
}

impl<M: Clone> DatagramEngine<M> {
    /// An engine with these rules, drawing from `rng`, counting into `counters`.
    pub fn new(rules: UdpRules, rng: ChaCha8Rng, counters: Arc<UdpCounters>) -> Self {
        Self {
            rules,
            rng,
            counters,
            index: 0,
            matches: 0,
            seq: 0,
            next_free: None,
            queue: BinaryHeap::new(),
            held: None,
        }
    }

    fn draw(&mut self) -> Draws {
        Draws {
            loss: self.rng.random(),
            duplicate: self.rng.random(),
            corrupt: self.rng.random(),
            reorder: self.rng.random(),
            jitter: self.rng.random_range(-1.0..=1.0),
            corrupt_at: self.rng.random(),
            corrupt_mask: self.rng.random_range(1..=255),
        }
    }

    /// The rules it applies.
    pub fn rules(&self) -> &UdpRules {
        &self.rules
    }

    /// A datagram arrived at `now` with `meta` attached: decide its fate and
    /// queue what is to be sent.
    pub fn on_datagram_with(&mut self, now: Instant, data: Bytes, meta: M) -> Decision {
        self.index += 1;
        let len = data.len();
        let c = &self.counters;
        bump(&c.seen, 1);
        bump(&c.bytes_seen, len as u64);
        let d = self.draw();
        let verdict = self.decide(now, data, meta, &d);
        Decision {
            index: self.index,
            len,
            verdict,
        }
    }

    fn decide(&mut self, now: Instant, data: Bytes, meta: M, d: &Draws) -> Verdict {
        let c = Arc::clone(&self.counters);
        if self.rules.drop_nth.contains(&self.index) {
            bump(&c.dropped_nth, 1);
            return Verdict::Drop(DropReason::Nth);
        }
        if let Some(pat) = &self.rules.drop_match {
            let under_limit = self.rules.drop_match_limit.is_none_or(|l| self.matches < l);
            if under_limit && contains(&data, pat) {
                self.matches += 1;
                bump(&c.dropped_match, 1);
                return Verdict::Drop(DropReason::Match);
            }
        }
        if d.loss < self.rules.loss.get() {
            bump(&c.dropped_loss, 1);
            return Verdict::Drop(DropReason::Loss);
        }
        if self.pending() >= self.rules.queue {
            bump(&c.dropped_queue, 1);
            return Verdict::Drop(DropReason::Queue);
        }
        let mut data = data;
        let mut corrupted = None;
        if d.corrupt < self.rules.corrupt.get() && !data.is_empty() {
            let at = (d.corrupt_at % data.len() as u64) as usize;
            let mut v = data.to_vec();
            v[at] ^= d.corrupt_mask;
            data = Bytes::from(v);
            corrupted = Some(at);
            bump(&c.corrupted, 1);
        }
        let copies: u8 = if d.duplicate < self.rules.duplicate.get() {
            bump(&c.duplicated, 1);
            2
        } else {
            1
        };
        let mut due = now + self.jittered_delay(d.jitter);
        if let Some(rate) = self.rules.rate.filter(|r| *r > 0) {
            due = due.max(self.next_free.unwrap_or(due));
            let wire =
                Duration::from_secs_f64((data.len() * usize::from(copies)) as f64 / rate as f64);
            self.next_free = Some(due + wire);
        }
        let delay = due - now;
        if delay > Duration::ZERO {
            bump(&c.delayed, 1);
        }
        let batch: Vec<Bytes> = (0..copies).map(|_| data.clone()).collect();
        let reordered = d.reorder < self.rules.reorder.get() && self.held.is_none();
        if reordered {
            bump(&c.reordered, 1);
            self.held = Some(Held {
                copies: batch,
                meta,
                release_at: due.max(now + self.rules.reorder_timeout),
            });
        } else {
            for b in batch {
                self.push(due, b, meta.clone());
            }
            // The held datagram goes right after this one.
            if let Some(h) = self.held.take() {
                for b in h.copies {
                    self.push(due, b, h.meta.clone());
                }
            }
        }
        Verdict::Deliver {
            copies,
            delay,
            corrupted,
            reordered,
        }
    }

    fn jittered_delay(&self, unit: f64) -> Duration {
        let base = self.rules.delay.as_secs_f64();
        let j = self.rules.jitter.as_secs_f64() * unit;
        Duration::from_secs_f64((base + j).max(0.0))
    }

    fn push(&mut self, due: Instant, data: Bytes, meta: M) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            due,
            seq: self.seq,
            data,
            meta,
        }));
    }

    /// Time passed: releases a held datagram whose successor never came.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.held.as_ref().is_some_and(|h| h.release_at <= now)
            && let Some(h) = self.held.take()
        {
            for b in h.copies {
                self.push(now, b, h.meta.clone());
            }
        }
    }

    /// The next datagram due at or before `now` and what was attached to it,
    /// in due order (ties: arrival order).
    pub fn poll_emit_with(&mut self, now: Instant) -> Option<(Bytes, M)> {
        if self.queue.peek().is_some_and(|Reverse(q)| q.due <= now) {
            let Reverse(q) = self.queue.pop()?;
            bump(&self.counters.delivered, 1);
            bump(&self.counters.bytes_delivered, q.data.len() as u64);
            return Some((q.data, q.meta));
        }
        None
    }

    /// When the engine next needs attention (a datagram due, a hold expiring).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let q = self.queue.peek().map(|Reverse(q)| q.due);
        let h = self.held.as_ref().map(|h| h.release_at);
        match (q, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Datagrams waiting (queued or held).
    pub fn pending(&self) -> usize {
        self.queue.len() + self.held.as_ref().map_or(0, |h| h.copies.len())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
