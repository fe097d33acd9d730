//! Several flows over one bottleneck (issue #15, fairness): N client →
//! server connections whose data crosses one link of `rate` bytes per second
//! with a drop-tail queue and a one-way delay; ACKs come back after the delay
//! without queueing. Segments cross as values (the codecs are the other
//! simulator's business), on a virtual clock, deterministically. The figure
//! is each flow's in-order goodput over a measurement window that starts
//! after a warm-up, so slow start's race does not count.
//!
//! Why not impair's datagram engine (which the two-end simulator uses): the
//! fairness test needs one drop-tail queue, counted in bytes, shared by every
//! flow and apart from the propagation delay; the engine is one direction of
//! one flow, and its queue limit counts every datagram not yet delivered,
//! those in propagation included. This file models a router, not impairments.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Config;
use crate::conn::{Connection, Output, Read};
use crate::segment::{Kind, Segment};
use crate::seq::Seq;

/// The shared link.
#[derive(Debug, Clone, Copy)]
pub struct Bottleneck {
    /// Bytes per second the link drains from its queue.
    pub rate: u64,
    /// Bytes the queue holds; a segment that does not fit is dropped.
    pub queue: usize,
    /// One-way propagation delay, both ways.
    pub delay: Duration,
}

/// What each flow moved.
#[derive(Debug, Clone)]
pub struct Shares {
    /// In-order bytes each server read during the measurement window.
    pub bytes: Vec<u64>,
    /// Segments the queue dropped.
    pub dropped: u64,
}

impl Shares {
    /// Each flow's part of the total, 0 to 1.
    pub fn fractions(&self) -> Vec<f64> {
        let total: u64 = self.bytes.iter().sum();
        self.bytes
            .iter()
            .map(|b| *b as f64 / total.max(1) as f64)
            .collect()
    }
}

/// A segment on its way, ordered by arrival (then by sending order).
struct Arrival {
    at: Instant,
    order: u64,
    flow: usize,
    to_server: bool,
    seg: Segment,
}

impl PartialEq for Arrival {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Arrival {}

impl PartialOrd for Arrival {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Arrival {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// Everything on its way, both directions.
#[derive(Default)]
struct Wire {
    heap: BinaryHeap<Reverse<Arrival>>,
    order: u64,
}

impl Wire {
    fn put(&mut self, at: Instant, flow: usize, to_server: bool, seg: Segment) {
        self.order += 1;
        self.heap.push(Reverse(Arrival {
            at,
            order: self.order,
            flow,
            to_server,
            seg,
        }));
    }
}

/// When the flows start and how long they are watched.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Flow i starts at i × `stagger`: a late flow must win its share from
    /// one that holds the link.
    pub stagger: Duration,
    /// Goodput counts from here on.
    pub warmup: Duration,
    pub run: Duration,
}

/// The link's drop-tail queue: what is in it, and when it is free again.
struct DropTail {
    link: Bottleneck,
    /// (leaves at, bytes) of what is queued, in order.
    queue: VecDeque<(Instant, usize)>,
    queued: usize,
    free_at: Instant,
}

impl DropTail {
    fn new(link: Bottleneck, start: Instant) -> DropTail {
        DropTail {
            link,
            queue: VecDeque::new(),
            queued: 0,
            free_at: start,
        }
    }

    /// A datagram of `len` bytes offered at `now`: when it leaves the link,
    /// or `None` if the full queue drops it.
    fn offer(&mut self, now: Instant, len: usize) -> Option<Instant> {
        while self.queue.front().is_some_and(|(left, _)| *left <= now) {
            if let Some((_, gone)) = self.queue.pop_front() {
                self.queued -= gone;
            }
        }
        if self.queued + len > self.link.queue {
            return None;
        }
        let per_byte = 1.0 / self.link.rate as f64;
        let leaves = self.free_at.max(now) + Duration::from_secs_f64(len as f64 * per_byte);
        self.free_at = leaves;
        self.queue.push_back((leaves, len));
        self.queued += len;
        Some(leaves)
    }
}

/// The next moment anything happens: a datagram arrives, a timer fires, a
/// flow starts.
fn next_event(
    wire: &Wire,
    clients: &[Option<Connection>],
    servers: &[Option<Connection>],
    starts: &[Instant],
) -> Option<Instant> {
    [
        wire.heap.peek().map(|Reverse(a)| a.at),
        clients
            .iter()
            .flatten()
            .filter_map(Connection::poll_timeout)
            .min(),
        starts
            .iter()
            .zip(clients)
            .filter(|(_, c)| c.is_none())
            .map(|(at, _)| *at)
            .min(),
        servers
            .iter()
            .flatten()
            .filter_map(Connection::poll_timeout)
            .min(),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Runs `flows` connections with `cfg` over `link` as `plan` says.
pub fn run(cfg: &Config, flows: usize, link: Bottleneck, plan: Schedule) -> Shares {
    let start = Instant::now();
    let mut now = start;
    let starts: Vec<Instant> = (0..flows)
        .map(|i| start + plan.stagger * i as u32)
        .collect();
    let mut clients: Vec<Option<Connection>> = (0..flows).map(|_| None).collect();
    // More than the run can move: a sender is never short of data.
    let big = Bytes::from(vec![
        0u8;
        (link.rate as usize) * (plan.run.as_secs() as usize + 1)
    ]);
    let mut servers: Vec<Option<Connection>> = (0..flows).map(|_| None).collect();
    let mut wire = Wire::default();
    let mut queue = DropTail::new(link, start);
    let mut shares = Shares {
        bytes: vec![0; flows],
        dropped: 0,
    };
    let end = start + plan.run;
    let from = start + plan.warmup;
    loop {
        for (flow, at) in starts.iter().enumerate() {
            if clients[flow].is_none() && *at <= now {
                let isn = Seq(1_000 + flow as u32 * 7_919);
                let mut c = Connection::connect(cfg.clone(), now, isn);
                let _ = c.write_bytes(now, big.clone());
                clients[flow] = Some(c);
            }
        }
        // Every end's output onto the link.
        for flow in 0..flows {
            let Some(client) = clients[flow].as_mut() else {
                continue;
            };
            while let Some(out) = client.poll_output() {
                let (Output::Transmit(seg) | Output::TransmitToListener(seg)) = out else {
                    continue;
                };
                match queue.offer(now, seg.data.len() + 20) {
                    Some(leaves) => wire.put(leaves + link.delay, flow, true, seg),
                    None => shares.dropped += 1,
                }
            }
            if let Some(server) = &mut servers[flow] {
                while let Some(out) = server.poll_output() {
                    let (Output::Transmit(seg) | Output::TransmitToListener(seg)) = out else {
                        continue;
                    };
                    wire.put(now + link.delay, flow, false, seg);
                }
                // The application reads everything that is ready.
                while let Ok(Read::Data(d)) = server.read(16 << 10) {
                    if now >= from {
                        shares.bytes[flow] += d.len() as u64;
                    }
                }
            }
        }
        let next = next_event(&wire, &clients, &servers, &starts);
        let Some(next) = next else { break };
        if next > end {
            break;
        }
        now = now.max(next);
        while wire.heap.peek().is_some_and(|Reverse(a)| a.at <= now) {
            let Some(Reverse(a)) = wire.heap.pop() else {
                break;
            };
            let seg = a.seg;
            if !a.to_server {
                if let Some(c) = clients[a.flow].as_mut() {
                    c.handle_segment(now, seg);
                }
            } else if let Some(server) = &mut servers[a.flow] {
                server.handle_segment(now, seg);
            } else if seg.kind() == Kind::Syn {
                servers[a.flow] = Some(Connection::accept(
                    cfg.clone(),
                    now,
                    &seg,
                    Seq(50_000 + a.flow as u32),
                ));
            }
        }
        for c in clients.iter_mut().flatten() {
            c.handle_timeout(now);
        }
        for s in servers.iter_mut().flatten() {
            s.handle_timeout(now);
        }
    }
    shares
}
